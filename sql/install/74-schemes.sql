-- segment install script, part 74: schemes and scorecards (issue 3, parts 2-4).
-- Definitions (create/alter/drop with validation and history) and the
-- functions that read what refresh stores: bucket_of, score, top,
-- transitions, and the view size_history. The tables are in part 70;
-- refresh (C) fills bucket_state, score_state, bucket_history,
-- universe_history and size_snapshot. See docs/segmentation.md.

-- Names --------------------------------------------------------------------

-- A name taken from a text array (bucket, band): the name type would
-- silently cut it at 63 bytes.
CREATE FUNCTION segment_internal._check_part_name(kind text, n text) RETURNS name
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF octet_length(n) > 63 THEN
        RAISE EXCEPTION '% name "%" is too long', kind, n
            USING ERRCODE = 'name_too_long',
                  DETAIL = 'Names are at most 63 bytes.';
    END IF;
    PERFORM segment_internal._check_name(kind, n::name);
    RETURN n::name;
END $$;

-- A numeric given as text (points, band bounds): finite, or an error saying
-- which one it is.
CREATE FUNCTION segment_internal._parse_number(v text, what text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE x numeric;
BEGIN
    BEGIN
        x := v::numeric;
    EXCEPTION WHEN invalid_text_representation THEN
        x := NULL;
    END;
    IF x IS NULL OR x IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric) THEN
        RAISE EXCEPTION '% is not a number', format(what, v)
            USING ERRCODE = 'invalid_text_representation',
                  HINT = 'Write a finite decimal number such as 25, -10 or 2.5.';
    END IF;
    RETURN x;
END $$;

-- Checks that a definition array (buckets, items, bands) is a non-empty
-- two-dimensional array of entries of width elements; raises 22004 / 22023.
CREATE FUNCTION segment_internal._check_entries(a text[], arg text, owner text, width int, shape text,
                                       example text, allow_empty boolean) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF a IS NULL THEN
        RAISE EXCEPTION '% of % must not be NULL', arg, owner
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF coalesce(array_ndims(a), 0) = 0 THEN
        IF allow_empty THEN
            RETURN;
        END IF;
        RAISE EXCEPTION '% has no %', owner, arg
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Give at least one, e.g. %s.', example);
    END IF;
    IF array_ndims(a) <> 2 OR array_length(a, 2) <> width THEN
        RAISE EXCEPTION '% of % must be % of % elements', arg, owner, shape, width
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = CASE WHEN array_ndims(a) <> 2
                                THEN format('Got a %s-dimensional array.', array_ndims(a))
                                WHEN array_length(a, 2) = 1 THEN 'Each entry has 1 element.'
                                ELSE format('Each entry has %s elements.', array_length(a, 2)) END,
                  HINT = format('Pass a two-dimensional array, e.g. %s.', example);
    END IF;
END $$;

-- Schemes ------------------------------------------------------------------

-- Validates a bucket list against the subject's table; returns the rows to
-- store. Raises the rule's own error (with position and context) for a bad
-- rule.
CREATE FUNCTION segment_internal._scheme_buckets(rel regclass, scheme name, buckets text[])
RETURNS TABLE (ord int, name name, rule text, columns name[], column_types regtype[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lo int;
    c int;
    i int;
    n int := 0;
    bname name;
    brule text;
    seen name[] := '{}';
BEGIN
    PERFORM segment_internal._check_entries(buckets, 'buckets', format('scheme "%s"', scheme), 2,
                                   '(name, rule) pairs', $e$ARRAY[['affluent', 'aum >= 500000'], ['mass', 'true']]$e$, false);
    c := array_lower(buckets, 2);
    lo := array_lower(buckets, 1);
    FOR i IN lo .. array_upper(buckets, 1) LOOP
        n := n + 1;
        bname := segment_internal._check_part_name('bucket', buckets[i][c]);
        IF bname = ANY (seen) THEN
            RAISE EXCEPTION 'bucket "%" appears twice in scheme "%"', bname, scheme
                USING ERRCODE = 'duplicate_object',
                      DETAIL = format('Buckets %s and %s have the same name.',
                                      array_position(seen, bname), n);
        END IF;
        seen := seen || bname;
        brule := buckets[i][c + 1];
        IF brule IS NULL THEN
            RAISE EXCEPTION 'rule of bucket "%" of scheme "%" is NULL', bname, scheme
                USING ERRCODE = 'null_value_not_allowed',
                      HINT = 'Write true for a bucket that takes everyone left.';
        END IF;
        ord := n;
        name := bname;
        columns := segment_internal._rule_columns(rel, brule, format('bucket "%s" of scheme "%s"', bname, scheme));
        rule := segment_internal._rule_canonical(rel, brule);
        column_types := segment_internal._column_types(rel, columns);
        RETURN NEXT;
    END LOOP;
END $$;

-- A scheme's definition as stored in segment.definition_history.
CREATE FUNCTION segment_internal._scheme_definition(id int) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
               'subject', sub.name,
               'description', s.description,
               'active', s.active,
               'buckets', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', b.name, 'rule', b.rule)
                                                     ORDER BY b.position), '[]')
                             FROM segment.scheme_bucket b WHERE b.scheme_id = s.scheme_id))
      FROM segment.scheme s JOIN segment.subject sub USING (subject_id)
     WHERE s.scheme_id = id
$$;

CREATE FUNCTION segment_internal._scheme(scheme name, for_update boolean DEFAULT false) RETURNS segment.scheme
LANGUAGE plpgsql AS $$
DECLARE s segment.scheme;
BEGIN
    IF for_update THEN
        SELECT * INTO s FROM segment.scheme x WHERE x.name = scheme FOR UPDATE;
    ELSE
        SELECT * INTO s FROM segment.scheme x WHERE x.name = scheme;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'scheme "%" does not exist', scheme USING ERRCODE = 'undefined_object';
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION segment.create_scheme(subject name, scheme name, buckets text[],
                                      description text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    rel regclass;
    defs segment.scheme_bucket[];
    id int;
BEGIN
    PERFORM segment_internal._check_name('scheme', scheme);
    PERFORM segment_internal._check_name_free('scheme', scheme);   -- one namespace of audience names
    SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
    -- validate everything before writing anything (no sequence value is used up)
    defs := ARRAY(SELECT ROW(0, b.ord, b.name, b.rule, b.columns, b.column_types)::segment.scheme_bucket
                    FROM segment_internal._scheme_buckets(rel, scheme, buckets) b);
    INSERT INTO segment.scheme (subject_id, name, description, owner)
    VALUES (sid, scheme, description, quote_ident(current_user)::regrole)
    RETURNING scheme_id INTO id;
    INSERT INTO segment.scheme_bucket (scheme_id, position, name, rule, columns, column_types)
    SELECT id, d.position, d.name, d.rule, d.columns, d.column_types FROM unnest(defs) d;
    INSERT INTO segment.definition_history (kind, object_id, name, action, new_definition)
    VALUES ('scheme', id, scheme, 'create', segment_internal._scheme_definition(id));
    RETURN id;
END $$;
COMMENT ON FUNCTION segment.create_scheme(name, name, text[], text) IS
    'ordered (bucket, rule) pairs: each customer lands in the first bucket whose rule is true';

CREATE FUNCTION segment.alter_scheme(scheme name, buckets text[] DEFAULT NULL,
                                     description text DEFAULT NULL, active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.scheme := segment_internal._scheme(scheme, true);
    old_def jsonb := segment_internal._scheme_definition(old.scheme_id);
    rel regclass;
    defs segment.scheme_bucket[];
BEGIN
    IF buckets IS NULL AND description IS NULL AND active IS NULL THEN
        RAISE EXCEPTION 'nothing to change for scheme "%"', scheme
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass buckets, description or active.';
    END IF;
    IF buckets IS NOT NULL THEN
        SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = old.subject_id;
        defs := ARRAY(SELECT ROW(old.scheme_id, b.ord, b.name, b.rule, b.columns, b.column_types)::segment.scheme_bucket
                        FROM segment_internal._scheme_buckets(rel, scheme, buckets) b);
        DELETE FROM segment.scheme_bucket b WHERE b.scheme_id = old.scheme_id;
        INSERT INTO segment.scheme_bucket SELECT * FROM unnest(defs);
    END IF;
    UPDATE segment.scheme s
       SET description = coalesce(alter_scheme.description, s.description),
           active = coalesce(alter_scheme.active, s.active),
           version = s.version + 1,
           updated_at = now(), updated_by = current_user,
           -- new buckets run as whoever wrote them
           owner = CASE WHEN alter_scheme.buckets IS NULL THEN s.owner ELSE quote_ident(current_user)::regrole END
     WHERE s.scheme_id = old.scheme_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition, new_definition)
    VALUES ('scheme', old.scheme_id, scheme, 'alter', old_def, segment_internal._scheme_definition(old.scheme_id));
END $$;

CREATE FUNCTION segment.drop_scheme(scheme name, "cascade" boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old segment.scheme := segment_internal._scheme(scheme, true);
BEGIN
    -- segments that name its buckets or bands: refuse, or drop them too
    PERFORM segment_internal._drop_segments_using('scheme', scheme, "cascade");
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    VALUES ('scheme', old.scheme_id, scheme, 'drop', segment_internal._scheme_definition(old.scheme_id));
    DELETE FROM segment.scheme s WHERE s.scheme_id = old.scheme_id;
END $$;

-- Scorecards ---------------------------------------------------------------

CREATE FUNCTION segment_internal._scorecard_items(rel regclass, scorecard name, items text[])
RETURNS TABLE (ord int, rule text, points numeric, columns name[], column_types regtype[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c int;
    i int;
    n int := 0;
    irule text;
BEGIN
    PERFORM segment_internal._check_entries(items, 'items', format('scorecard "%s"', scorecard), 2,
                                   '(rule, points) pairs', $e$ARRAY[['aum >= 500000', '40'], ['has_fund', '15']]$e$, false);
    c := array_lower(items, 2);
    FOR i IN array_lower(items, 1) .. array_upper(items, 1) LOOP
        n := n + 1;
        irule := items[i][c];
        IF irule IS NULL THEN
            RAISE EXCEPTION 'rule of item % of scorecard "%" is NULL', n, scorecard
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF items[i][c + 1] IS NULL THEN
            RAISE EXCEPTION 'points of item % of scorecard "%" are NULL', n, scorecard
                USING ERRCODE = 'null_value_not_allowed',
                      HINT = 'Give the points as a number, e.g. ''25''.';
        END IF;
        points := segment_internal._parse_number(items[i][c + 1],
                                        format('points "%%s" of item %s', n));
        ord := n;
        columns := segment_internal._rule_columns(rel, irule, format('item %s of scorecard "%s"', n, scorecard));
        rule := segment_internal._rule_canonical(rel, irule);
        column_types := segment_internal._column_types(rel, columns);
        RETURN NEXT;
    END LOOP;
END $$;

-- Validates bands (name, min_score, max_score); NULL or '' is an open bound.
-- A band holds min_score <= score < max_score; bands must not overlap.
CREATE FUNCTION segment_internal._scorecard_bands(scorecard name, bands text[])
RETURNS TABLE (name name, min_score numeric, max_score numeric)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    c int;
    i int;
    bname name;
    lo numeric;
    hi numeric;
    names name[] := '{}';
    ranges numrange[] := '{}';
    r numrange;
    j int;
BEGIN
    PERFORM segment_internal._check_entries(bands, 'bands', format('scorecard "%s"', scorecard), 3,
                                   '(name, min_score, max_score) triples', $e$ARRAY[['low', NULL, '600'], ['high', '600', NULL]]$e$, true);
    IF coalesce(array_ndims(bands), 0) = 0 THEN
        RETURN;
    END IF;
    c := array_lower(bands, 2);
    FOR i IN array_lower(bands, 1) .. array_upper(bands, 1) LOOP
        bname := segment_internal._check_part_name('band', bands[i][c]);
        IF bname = ANY (names) THEN
            RAISE EXCEPTION 'band "%" appears twice in scorecard "%"', bname, scorecard
                USING ERRCODE = 'duplicate_object';
        END IF;
        lo := CASE WHEN nullif(btrim(bands[i][c + 1]), '') IS NOT NULL
                   THEN segment_internal._parse_number(bands[i][c + 1], format('min_score "%%s" of band "%s"', bname)) END;
        hi := CASE WHEN nullif(btrim(bands[i][c + 2]), '') IS NOT NULL
                   THEN segment_internal._parse_number(bands[i][c + 2], format('max_score "%%s" of band "%s"', bname)) END;
        IF lo >= hi THEN
            RAISE EXCEPTION 'band "%" of scorecard "%" is empty', bname, scorecard
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('A band holds the scores s with min_score <= s < max_score; here min_score is %s and max_score %s.', lo, hi);
        END IF;
        r := numrange(lo, hi, '[)');
        FOR j IN 1 .. coalesce(array_length(names, 1), 0) LOOP
            IF ranges[j] && r THEN
                RAISE EXCEPTION 'bands "%" and "%" of scorecard "%" overlap', names[j], bname, scorecard
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = format('"%s" holds scores in %s and "%s" in %s (min_score included, max_score excluded).',
                                          names[j], ranges[j], bname, r),
                          HINT = 'Let each band start where another ends, e.g. [''low'', NULL, ''600''], [''high'', ''600'', NULL].';
            END IF;
        END LOOP;
        names := names || bname;
        ranges := ranges || r;
        name := bname;
        min_score := lo;
        max_score := hi;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION segment_internal._scorecard_definition(id int) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
               'subject', sub.name,
               'base', s.base,
               'description', s.description,
               'active', s.active,
               'items', (SELECT coalesce(jsonb_agg(jsonb_build_object('rule', i.rule, 'points', i.points)
                                                   ORDER BY i.position), '[]')
                           FROM segment.scorecard_item i WHERE i.scorecard_id = s.scorecard_id),
               'bands', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', b.name, 'min_score', b.min_score,
                                                                      'max_score', b.max_score)
                                                   ORDER BY b.min_score NULLS FIRST), '[]')
                           FROM segment.scorecard_band b WHERE b.scorecard_id = s.scorecard_id))
      FROM segment.scorecard s JOIN segment.subject sub USING (subject_id)
     WHERE s.scorecard_id = id
$$;

CREATE FUNCTION segment_internal._scorecard(scorecard name, for_update boolean DEFAULT false) RETURNS segment.scorecard
LANGUAGE plpgsql AS $$
DECLARE s segment.scorecard;
BEGIN
    IF for_update THEN
        SELECT * INTO s FROM segment.scorecard x WHERE x.name = scorecard FOR UPDATE;
    ELSE
        SELECT * INTO s FROM segment.scorecard x WHERE x.name = scorecard;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'scorecard "%" does not exist', scorecard USING ERRCODE = 'undefined_object';
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION segment_internal._check_base(scorecard name, base numeric) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF base IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric) THEN
        RAISE EXCEPTION 'base of scorecard "%" must be a finite number, not %', scorecard, base
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

CREATE FUNCTION segment.create_scorecard(subject name, scorecard name, base numeric, items text[],
                                         bands text[] DEFAULT NULL, description text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    rel regclass;
    item_defs segment.scorecard_item[];
    band_defs segment.scorecard_band[];
    id int;
BEGIN
    PERFORM segment_internal._check_name('scorecard', scorecard);
    PERFORM segment_internal._check_name_free('scorecard', scorecard);
    IF base IS NULL THEN
        RAISE EXCEPTION 'base of scorecard "%" must not be NULL', scorecard
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use 0 for a score that is the sum of the points alone.';
    END IF;
    PERFORM segment_internal._check_base(scorecard, base);
    SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
    -- validate everything before writing anything (no sequence value is used up)
    item_defs := ARRAY(SELECT ROW(0, i.ord, i.rule, i.points, i.columns, i.column_types)::segment.scorecard_item
                         FROM segment_internal._scorecard_items(rel, scorecard, items) i);
    band_defs := ARRAY(SELECT ROW(0, b.name, b.min_score, b.max_score)::segment.scorecard_band
                         FROM segment_internal._scorecard_bands(scorecard, coalesce(bands, '{}')) b);
    INSERT INTO segment.scorecard (subject_id, name, base, description, owner)
    VALUES (sid, scorecard, base, description, quote_ident(current_user)::regrole)
    RETURNING scorecard_id INTO id;
    INSERT INTO segment.scorecard_item (scorecard_id, position, rule, points, columns, column_types)
    SELECT id, d.position, d.rule, d.points, d.columns, d.column_types FROM unnest(item_defs) d;
    INSERT INTO segment.scorecard_band (scorecard_id, name, min_score, max_score)
    SELECT id, d.name, d.min_score, d.max_score FROM unnest(band_defs) d;
    INSERT INTO segment.definition_history (kind, object_id, name, action, new_definition)
    VALUES ('scorecard', id, scorecard, 'create', segment_internal._scorecard_definition(id));
    RETURN id;
END $$;
COMMENT ON FUNCTION segment.create_scorecard(name, name, numeric, text[], text[], text) IS
    'score = base + the points of every item whose rule is true; optional bands (name, min, max)';

CREATE FUNCTION segment.alter_scorecard(scorecard name, base numeric DEFAULT NULL,
                                        items text[] DEFAULT NULL, bands text[] DEFAULT NULL,
                                        description text DEFAULT NULL, active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.scorecard := segment_internal._scorecard(scorecard, true);
    old_def jsonb := segment_internal._scorecard_definition(old.scorecard_id);
    rel regclass;
    item_defs segment.scorecard_item[];
    band_defs segment.scorecard_band[];
BEGIN
    IF base IS NULL AND items IS NULL AND bands IS NULL AND description IS NULL AND active IS NULL THEN
        RAISE EXCEPTION 'nothing to change for scorecard "%"', scorecard
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass base, items, bands, description or active.';
    END IF;
    PERFORM segment_internal._check_base(scorecard, base);
    IF items IS NOT NULL THEN
        SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = old.subject_id;
        item_defs := ARRAY(SELECT ROW(old.scorecard_id, i.ord, i.rule, i.points, i.columns, i.column_types)::segment.scorecard_item
                             FROM segment_internal._scorecard_items(rel, scorecard, items) i);
    END IF;
    IF bands IS NOT NULL THEN
        band_defs := ARRAY(SELECT ROW(old.scorecard_id, b.name, b.min_score, b.max_score)::segment.scorecard_band
                             FROM segment_internal._scorecard_bands(scorecard, bands) b);
    END IF;
    IF items IS NOT NULL THEN
        DELETE FROM segment.scorecard_item i WHERE i.scorecard_id = old.scorecard_id;
        INSERT INTO segment.scorecard_item SELECT * FROM unnest(item_defs);
    END IF;
    IF bands IS NOT NULL THEN
        DELETE FROM segment.scorecard_band b WHERE b.scorecard_id = old.scorecard_id;
        INSERT INTO segment.scorecard_band SELECT * FROM unnest(band_defs);
    END IF;
    UPDATE segment.scorecard s
       SET base = coalesce(alter_scorecard.base, s.base),
           description = coalesce(alter_scorecard.description, s.description),
           active = coalesce(alter_scorecard.active, s.active),
           version = s.version + 1,
           updated_at = now(), updated_by = current_user,
           -- new items run as whoever wrote them
           owner = CASE WHEN alter_scorecard.items IS NULL THEN s.owner ELSE quote_ident(current_user)::regrole END
     WHERE s.scorecard_id = old.scorecard_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition, new_definition)
    VALUES ('scorecard', old.scorecard_id, scorecard, 'alter', old_def,
            segment_internal._scorecard_definition(old.scorecard_id));
END $$;

CREATE FUNCTION segment.drop_scorecard(scorecard name, "cascade" boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old segment.scorecard := segment_internal._scorecard(scorecard, true);
BEGIN
    -- segments that name its buckets or bands: refuse, or drop them too
    PERFORM segment_internal._drop_segments_using('scorecard', scorecard, "cascade");
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    VALUES ('scorecard', old.scorecard_id, scorecard, 'drop', segment_internal._scorecard_definition(old.scorecard_id));
    DELETE FROM segment.scorecard s WHERE s.scorecard_id = old.scorecard_id;
END $$;

-- Reading ------------------------------------------------------------------

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
-- and stops as soon as it has n.
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

-- The DDL guard for scheme buckets and scorecard items (called by
-- segment_internal._check_rules_of after the tags): refuse an ALTER TABLE after which
-- a bucket or item rule no longer analyses or a column it reads has another
-- type.
CREATE FUNCTION segment_internal._check_scheme_rules_of(rel oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT 'scheme' AS kind, m.name AS owner, b.position,
                    format('scheme "%s" (bucket "%s")', m.name, b.name) AS what,
                    b.rule, b.columns, b.column_types, s.relation, s.name AS subject
               FROM segment.scheme m JOIN segment.scheme_bucket b USING (scheme_id)
               JOIN segment.subject s ON s.subject_id = m.subject_id
              WHERE s.relation = rel
             UNION ALL
             SELECT 'scorecard', c.name, i.position, format('scorecard "%s" (item %s)', c.name, i.position),
                    i.rule, i.columns, i.column_types, s.relation, s.name
               FROM segment.scorecard c JOIN segment.scorecard_item i USING (scorecard_id)
               JOIN segment.subject s ON s.subject_id = c.subject_id
              WHERE s.relation = rel
              ORDER BY 1, 2, 3
    LOOP
        BEGIN
            PERFORM segment_internal._rule_columns(t.relation, t.rule, NULL);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": % of subject "%" depends on it', t.relation, t.what, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s would fail: %s', t.rule, SQLERRM),
                      HINT = format('Alter the %1$s''s %2$s or drop the %1$s first (segment.alter_%1$s, segment.drop_%1$s).',
                                    t.kind, CASE t.kind WHEN 'scheme' THEN 'buckets' ELSE 'items' END);
        END;
        IF segment_internal._column_types(t.relation, t.columns) IS DISTINCT FROM t.column_types THEN
            RAISE EXCEPTION 'cannot change the type of a column that % of subject "%" reads', t.what, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s was written for columns %s of types %s, now %s.',
                                      t.rule, t.columns, t.column_types,
                                      segment_internal._column_types(t.relation, t.columns)),
                      HINT = format('Drop the %1$s, change the column, and create the %1$s again (or alter its %2$s to the new type first).',
                                    t.kind, CASE t.kind WHEN 'scheme' THEN 'buckets' ELSE 'items' END);
        END IF;
    END LOOP;
END $$;
