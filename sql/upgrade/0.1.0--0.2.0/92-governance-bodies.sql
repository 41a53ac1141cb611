-- upgrade 0.1.0 -> 0.2.0, part 92 (bodies): the final bodies of three 0.1.0
-- functions that governance adds a check to, as in sql/install: _member_id
-- (part 50: the customer's scope; bucket_of, score, set_tag), top (part 76:
-- export control, audited) and render (part 84: scope and masking; also the
-- snapshot's row, see 93-snapshot-bodies). The checks they call are created
-- by 13-governance-checks.

CREATE OR REPLACE FUNCTION segment_internal._member_id(sid int, key text, "create" boolean) RETURNS int8
LANGUAGE plpgsql AS $$
DECLARE
    ktype regtype;
    id int8;
BEGIN
    SELECT s.key_type INTO ktype FROM segment.subject s WHERE s.subject_id = sid; PERFORM segment_internal._check_customer(sid, key);
    IF ktype IN ('int4'::regtype, 'int8'::regtype) THEN
        BEGIN
            id := key::int8;
        EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            RAISE EXCEPTION 'invalid key "%" for a subject with % keys', key, ktype
                USING ERRCODE = 'invalid_text_representation';
        END;
        IF id < 0 OR id > 4294967295 THEN
            RAISE EXCEPTION 'key % is outside the range of member ids', id
                USING ERRCODE = 'numeric_value_out_of_range',
                      DETAIL = 'Integer keys are used as member ids and must be between 0 and 4294967295.';
        END IF;
        RETURN id;
    END IF;
    SELECT m.member_id INTO id FROM segment.keymap m WHERE m.subject_id = sid AND m.key = _member_id.key;
    IF id IS NULL AND "create" THEN
        PERFORM pg_advisory_xact_lock(24173, sid);
        SELECT m.member_id INTO id FROM segment.keymap m WHERE m.subject_id = sid AND m.key = _member_id.key;
        IF id IS NULL THEN
            SELECT coalesce(max(m.member_id) + 1, 0) INTO id FROM segment.keymap m WHERE m.subject_id = sid;
            INSERT INTO segment.keymap (subject_id, key, member_id) VALUES (sid, key, id);
        END IF;
    END IF;
    RETURN id;
END $$;

CREATE OR REPLACE FUNCTION segment.top(subject name, scorecard name, audience text, n int)
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

CREATE OR REPLACE FUNCTION segment.render(rule name, key text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r segment.opportunity_rule := segment_internal._opportunity_rule(rule);
    s segment.subject;
    msg text;
    masked text;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    IF r.template_sql IS NULL THEN
        RETURN NULL;
    END IF;
    -- governance: the customer must be in the caller's scope, and personal
    -- columns are masked for a role without segment_exporter
    PERFORM segment_internal._check_customer(s.subject_id, key);
    SELECT string_agg(CASE WHEN m.column_name IS NULL THEN format('t0.%I', a.attname)
                           ELSE format('segment.mask(t0.%I::text) AS %I', a.attname, a.attname) END,
                      ', ' ORDER BY a.attnum)
      INTO masked
      FROM pg_attribute a
      LEFT JOIN segment.column_sensitivity m
        ON m.subject_id = s.subject_id AND m.column_name = a.attname AND segment_internal._masks_pii()
     WHERE a.attrelid = s.relation AND a.attnum > 0 AND NOT a.attisdropped;
    -- a snapshot subject: the row of the snapshot the current state holds
    EXECUTE format('SELECT %s FROM (SELECT %s FROM %s t0 WHERE t0.%I::text = $1%s) t',
                   r.template_sql, masked, s.relation, s.key_column,
                   segment_internal._snapshot_filter(s.subject_id, 't0'))
       INTO msg USING key;
    RETURN msg;
END $$;
