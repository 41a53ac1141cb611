-- segment install script, part 76: reading what refresh stores for schemes
-- and scorecards (docs/segmentation.md): bucket_of, score, top, transitions, and the view
-- size_history (refresh fills size_snapshot and universe_history). Part 92
-- (governance) gives top its final, scope-aware body.

-- The scheme of a subject, ready to read: exists, belongs to the subject,
-- active, refreshed at least once.
CREATE FUNCTION segment_internal._readable_scheme(sid int, subject name, scheme name) RETURNS segment.scheme
LANGUAGE plpgsql STABLE AS $$
DECLARE s segment.scheme := segment_internal._scheme(scheme);
BEGIN
    IF s.subject_id <> sid THEN
        RAISE EXCEPTION 'scheme "%" does not belong to subject "%"', scheme, subject
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT s.active THEN
        RAISE EXCEPTION 'scheme "%" is inactive', scheme
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Activate it with segment.alter_scheme(%L, active => true).', scheme);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.bucket_state b WHERE b.scheme_id = s.scheme_id) THEN
        RAISE EXCEPTION 'scheme "%" has not been refreshed', scheme
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Run segment.refresh(%L) first.', subject);
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION segment_internal._readable_scorecard(sid int, subject name, scorecard name) RETURNS segment.scorecard
LANGUAGE plpgsql STABLE AS $$
DECLARE s segment.scorecard := segment_internal._scorecard(scorecard);
BEGIN
    IF s.subject_id <> sid THEN
        RAISE EXCEPTION 'scorecard "%" does not belong to subject "%"', scorecard, subject
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT s.active THEN
        RAISE EXCEPTION 'scorecard "%" is inactive', scorecard
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Activate it with segment.alter_scorecard(%L, active => true).', scorecard);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.score_state x WHERE x.scorecard_id = s.scorecard_id) THEN
        RAISE EXCEPTION 'scorecard "%" has not been refreshed', scorecard
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Run segment.refresh(%L) first.', subject);
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION segment.bucket_of(subject name, key text, scheme name) RETURNS name
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    s segment.scheme := segment_internal._readable_scheme(sid, subject, scheme);
    mid int8 := segment_internal._member_id(sid, key, false);
    b name;
BEGIN
    IF mid IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT x.bucket INTO b FROM segment.bucket_state x
     WHERE x.scheme_id = s.scheme_id AND segment_internal._live_in_bucket(x.members, x.scheme_id, x.bucket, mid)
     ORDER BY x.bucket LIMIT 1;
    RETURN b;
END $$;
CREATE FUNCTION segment.bucket_of(subject name, key bigint, scheme name) RETURNS name
LANGUAGE sql STABLE STRICT AS $$ SELECT segment.bucket_of(subject, key::text, scheme) $$;
COMMENT ON FUNCTION segment.bucket_of(name, text, name) IS
    'the bucket of the scheme the customer is in after the last refresh; NULL when in none';
COMMENT ON FUNCTION segment.bucket_of(name, bigint, name) IS
    'the bucket of the scheme the customer is in after the last refresh; NULL when in none';

CREATE FUNCTION segment.score(subject name, key text, scorecard name) RETURNS numeric
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    s segment.scorecard := segment_internal._readable_scorecard(sid, subject, scorecard);
    mid int8 := segment_internal._member_id(sid, key, false);
    v numeric;
BEGIN
    IF mid IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT x.score INTO v FROM segment_internal._live_scores(s.scorecard_id, sid) x
     WHERE x.members OPERATOR(segment.@>) mid
     ORDER BY x.score DESC LIMIT 1;
    RETURN v;
END $$;
CREATE FUNCTION segment.score(subject name, key bigint, scorecard name) RETURNS numeric
LANGUAGE sql STABLE STRICT AS $$ SELECT segment.score(subject, key::text, scorecard) $$;
COMMENT ON FUNCTION segment.score(name, text, name) IS
    'the customer''s score after the last refresh; NULL when not scored (no row)';
COMMENT ON FUNCTION segment.score(name, bigint, name) IS
    'the customer''s score after the last refresh; NULL when not scored (no row)';

-- The n highest-scoring members of an audience (NULL: every scored
-- customer), highest first, ties by key. Walks the distinct scores downwards
-- and stops as soon as it has n. Governance: a customer-level list, for
-- segment_exporter only and audited (part 13).
CREATE FUNCTION segment.top(subject name, scorecard name, audience text, n int)
RETURNS TABLE (key text, score numeric)
LANGUAGE plpgsql STABLE ROWS 100 AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    s segment.scorecard := segment_internal._readable_scorecard(sid, subject, scorecard);
    int_keys boolean;
    aud segment.memberset;
    part segment.memberset;
    r record;
    c int8;
    left_ int8 := n;
BEGIN
    IF n IS NULL THEN
        RAISE EXCEPTION 'n must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF n < 0 THEN
        RAISE EXCEPTION 'n must not be negative, got %', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- governance: a customer-level list (docs/security.md#export-control)
    PERFORM segment_internal._check_export('segment.top');
    IF n = 0 THEN
        RETURN;
    END IF;
    SELECT x.key_type IN ('int4'::regtype, 'int8'::regtype) INTO int_keys
      FROM segment.subject x WHERE x.subject_id = sid;
    IF audience IS NOT NULL THEN
        aud := segment.audience(subject, audience);
    END IF;
    FOR r IN SELECT x.score, x.members FROM segment_internal._live_scores(s.scorecard_id, sid) x
              ORDER BY x.score DESC
    LOOP
        part := CASE WHEN aud IS NULL THEN r.members ELSE r.members OPERATOR(segment.&) aud END;
        c := segment.cardinality(part);
        CONTINUE WHEN c = 0;
        IF int_keys AND c <= 50000000 THEN
            -- member id = key, ids ascending: the first ones are the lowest
            -- keys; slicing the array is much faster than a set-returning scan
            RETURN QUERY SELECT m::text, r.score
                           FROM unnest((segment.to_array(part))[1:left_]) m;
        ELSIF int_keys THEN
            RETURN QUERY SELECT m::text, r.score
                           FROM segment.member_ids(part) WITH ORDINALITY AS x(m, o)
                          ORDER BY x.o LIMIT left_;
        ELSE
            RETURN QUERY SELECT k, r.score FROM segment.keys(subject, part) k
                          ORDER BY k LIMIT left_;
        END IF;
        left_ := left_ - least(c, left_);
        EXIT WHEN left_ = 0;
    END LOOP;
    PERFORM segment_internal._audit_export('segment.top', subject, coalesce(audience, '(every scored customer)'), n - left_);
END $$;
COMMENT ON FUNCTION segment.top(name, name, text, int) IS
    'the n highest-scoring members of an audience (NULL: all), highest first, ties by key';

-- The transition matrix of a scheme between the snapshots in force at two
-- dates (the latest refresh on or before each).
CREATE FUNCTION segment.transitions(subject name, scheme name, from_date date, to_date date)
RETURNS TABLE (from_bucket text, to_bucket text, customers bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    s segment.scheme := segment_internal._scheme(scheme);
    dates date[] := ARRAY[from_date, to_date];
    snap date[] := '{}';
    d date;
    first_ date;
BEGIN
    IF s.subject_id <> sid THEN
        RAISE EXCEPTION 'scheme "%" does not belong to subject "%"', scheme, subject
            USING ERRCODE = 'undefined_object';
    END IF;
    IF from_date IS NULL OR to_date IS NULL THEN
        RAISE EXCEPTION 'from_date and to_date must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOREACH d IN ARRAY dates LOOP
        snap := snap || (SELECT max(h.as_of) FROM segment.bucket_history h
                          WHERE h.scheme_id = s.scheme_id AND h.as_of <= d);
        IF snap[array_upper(snap, 1)] IS NULL THEN
            SELECT min(h.as_of) INTO first_ FROM segment.bucket_history h WHERE h.scheme_id = s.scheme_id;
            RAISE EXCEPTION 'scheme "%" has no history on or before %', scheme, to_char(d, 'YYYY-MM-DD')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = CASE WHEN first_ IS NULL THEN 'The scheme has never been refreshed.'
                                    ELSE format('Its first recorded refresh is as of %s.', to_char(first_, 'YYYY-MM-DD')) END,
                      HINT = 'Each segment.refresh() records the buckets as of its as_of date.';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM segment.universe_history u
                        WHERE u.subject_id = sid AND u.as_of = snap[array_upper(snap, 1)]) THEN
            RAISE EXCEPTION 'subject "%" has no universe recorded as of %', subject,
                            to_char(snap[array_upper(snap, 1)], 'YYYY-MM-DD')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = format('Scheme "%s" has buckets recorded as of %s but the subject''s universe is missing.',
                                      scheme, to_char(snap[array_upper(snap, 1)], 'YYYY-MM-DD'));
        END IF;
    END LOOP;
    RETURN QUERY
    WITH u AS (
        SELECT (SELECT x.universe FROM segment.universe_history x
                 WHERE x.subject_id = sid AND x.as_of = snap[1]) AS u1,
               (SELECT x.universe FROM segment.universe_history x
                 WHERE x.subject_id = sid AND x.as_of = snap[2]) AS u2
    ), h AS (
        SELECT x.as_of, x.bucket::text AS bucket, x.members FROM segment.bucket_history x
         WHERE x.scheme_id = s.scheme_id AND x.as_of IN (snap[1], snap[2])
    ), side1 AS (
        SELECT h.bucket, h.members FROM h WHERE h.as_of = snap[1]
        UNION ALL
        SELECT '(none)', u.u1 OPERATOR(segment.-)
               coalesce((SELECT segment.union_agg(h.members) FROM h WHERE h.as_of = snap[1]),
                        '{}'::segment.memberset)
          FROM u
        UNION ALL
        SELECT '(entered)', u.u2 OPERATOR(segment.-) u.u1 FROM u
    ), side2 AS (
        SELECT h.bucket, h.members FROM h WHERE h.as_of = snap[2]
        UNION ALL
        SELECT '(none)', u.u2 OPERATOR(segment.-)
               coalesce((SELECT segment.union_agg(h.members) FROM h WHERE h.as_of = snap[2]),
                        '{}'::segment.memberset)
          FROM u
        UNION ALL
        SELECT '(exited)', u.u1 OPERATOR(segment.-) u.u2 FROM u
    ), pos AS (
        SELECT b.name::text AS bucket, b.position FROM segment.scheme_bucket b
         WHERE b.scheme_id = s.scheme_id
    ), cells AS (
        SELECT a.bucket AS f, b.bucket AS t,
               segment.cardinality(a.members OPERATOR(segment.&) b.members) AS n
          FROM side1 a CROSS JOIN side2 b
    )
    SELECT c.f, c.t, c.n
      FROM cells c
      LEFT JOIN pos pf ON pf.bucket = c.f
      LEFT JOIN pos pt ON pt.bucket = c.t
     WHERE c.n > 0
     ORDER BY CASE c.f WHEN '(entered)' THEN 0 WHEN '(none)' THEN 3
                       ELSE CASE WHEN pf.position IS NULL THEN 2 ELSE 1 END END,
              pf.position, c.f,
              CASE c.t WHEN '(none)' THEN 3 WHEN '(exited)' THEN 4
                       ELSE CASE WHEN pt.position IS NULL THEN 2 ELSE 1 END END,
              pt.position, c.t;
END $$;
COMMENT ON FUNCTION segment.transitions(name, name, date, date) IS
    'customers per (from bucket, to bucket) between the snapshots in force at two dates, with (entered), (exited) and (none)';

-- Daily sizes of every tag, segment, bucket and band, for trend charts.
CREATE VIEW segment.size_history AS
SELECT z.as_of, s.name AS subject, z.kind, z.name, z.members
  FROM segment.size_snapshot z JOIN segment.subject s USING (subject_id);
COMMENT ON VIEW segment.size_history IS
    'members of every tag, segment, scheme.bucket and scorecard.band per subject and as_of date';

