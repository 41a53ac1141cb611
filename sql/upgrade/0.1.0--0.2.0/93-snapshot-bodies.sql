-- 0.2.0: daily snapshot subjects (install part 33). register_subject gains
-- snapshot_column and snapshot_retention (a new signature: the old one is
-- dropped); enable_live refuses snapshot subjects (its final body is in
-- 90-merged-bodies.sql); the nightly refresh step refuses a missing snapshot.

DROP FUNCTION segment.register_subject(name, regclass, name, name, name);

CREATE FUNCTION segment.register_subject(subject name, relation regclass, key_column name,
                                         org_column name DEFAULT NULL,
                                         owner_column name DEFAULT NULL,
                                         snapshot_column name DEFAULT NULL,
                                         snapshot_retention int DEFAULT 2)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    ktype regtype;
    stype regtype;
    snum int2;
    col name;
    id int;
BEGIN
    PERFORM segment._check_name('subject', subject);
    IF relation IS NULL OR key_column IS NULL THEN
        RAISE EXCEPTION 'relation and key_column must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT 1 FROM segment.subject s WHERE s.name = subject) THEN
        RAISE EXCEPTION 'subject "%" already exists', subject USING ERRCODE = 'duplicate_object';
    END IF;
    IF NOT has_table_privilege(relation, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', relation
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A subject''s rules read every row: its table must be readable by you.';
    END IF;
    kind := segment._relation_kind(relation);
    IF kind IS NULL THEN
        RAISE EXCEPTION '"%" is not a table or view', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'A subject is a table, partitioned table, view, materialized view or foreign table.';
    END IF;
    SELECT a.atttypid::regtype INTO ktype FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF ktype IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', key_column, relation
            USING ERRCODE = 'undefined_column';
    END IF;
    IF ktype NOT IN ('int4'::regtype, 'int8'::regtype, 'text'::regtype, 'varchar'::regtype) THEN
        RAISE EXCEPTION 'key column "%" has type %, not integer, bigint or text', key_column, ktype
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Register the subject on a column of type integer, bigint, text or varchar.';
    END IF;
    -- a daily snapshot subject (part 33): one row per key per snapshot date
    IF snapshot_column IS NOT NULL THEN
        SELECT a.atttypid::regtype, a.attnum INTO stype, snum FROM pg_attribute a
         WHERE a.attrelid = relation AND a.attname = snapshot_column AND a.attnum > 0 AND NOT a.attisdropped;
        IF stype IS NULL THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', snapshot_column, relation
                USING ERRCODE = 'undefined_column';
        END IF;
        IF stype <> 'date'::regtype THEN
            RAISE EXCEPTION 'snapshot column "%" has type %, not date', snapshot_column, stype
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'The snapshot column holds each row''s data date (type date), e.g. data_dt.';
        END IF;
        IF snapshot_column = key_column THEN
            RAISE EXCEPTION 'the snapshot column cannot be the key column'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF snapshot_retention IS NULL OR snapshot_retention < 1 OR snapshot_retention > 3660 THEN
            RAISE EXCEPTION 'snapshot_retention must be between 1 and 3660, not %', coalesce(snapshot_retention::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF kind NOT IN ('table', 'partitioned', 'matview') THEN
            RAISE EXCEPTION 'a snapshot subject must be a table, partitioned table or materialized view; "%" is a %', relation, kind
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Register the partitioned snapshot table itself (or a materialized view over it): segment finds the newest snapshot through its partition bounds or an index, which a view does not offer.';
        END IF;
        -- the newest snapshot must be found without a scan: partition bounds
        -- on the column, or an index that leads with it
        IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table p
                        WHERE p.partrelid = relation AND p.partstrat IN ('r', 'l')
                          AND p.partnatts = 1 AND p.partattrs[0] = snum)
           AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                            WHERE i.indrelid = relation AND i.indkey[0] = snum AND i.indpred IS NULL
                              AND c.relam = (SELECT m.oid FROM pg_am m WHERE m.amname = 'btree')) THEN
            RAISE EXCEPTION 'cannot find the newest snapshot of "%" without scanning it', relation
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = format('"%s" is not partitioned by range or list on %s, and no btree index leads with that column.', relation, snapshot_column),
                      HINT = format('CREATE INDEX ON %s (%I), or partition the table by range or list on %I.', relation, snapshot_column, snapshot_column);
        END IF;
    END IF;
    -- a view or a foreign table has no index, and a Citus table distributed on
    -- another column cannot have one on the key: their keys are checked at every
    -- refresh, as are the keys of each snapshot of a snapshot subject
    IF snapshot_column IS NULL AND kind NOT IN ('view', 'foreign', 'citus') AND NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = relation AND i.indisunique AND i.indnkeyatts = 1
                      AND i.indpred IS NULL AND i.indexprs IS NULL
                      AND i.indkey[0] = (SELECT a.attnum FROM pg_attribute a
                                          WHERE a.attrelid = relation AND a.attname = key_column)) THEN
        RAISE EXCEPTION 'key column "%" of "%" is not unique', key_column, relation
            USING ERRCODE = 'invalid_column_reference',
                  HINT = 'Add a primary key or unique index on the key column (a view''s keys are checked at every refresh instead).';
    END IF;
    FOREACH col IN ARRAY ARRAY[org_column, owner_column] LOOP
        IF col IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_attribute a
             WHERE a.attrelid = relation AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, relation
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    INSERT INTO segment.subject (name, relation, key_column, key_type, org_column, owner_column,
                                 snapshot_column, snapshot_retention)
    VALUES (subject, relation, key_column, ktype, org_column, owner_column,
            snapshot_column, coalesce(snapshot_retention, 2))
    RETURNING subject_id INTO id;
    RETURN id;
END $$;

CREATE OR REPLACE FUNCTION segment._nightly_step(step text, subject name, as_of date, run_id bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    result jsonb;
    n bigint;
    refresh_run bigint;
    sid int;
    s record;
    snap date;
BEGIN
    IF step = 'refresh' THEN
        SELECT x.subject_id INTO sid FROM segment.subject x WHERE x.name = _nightly_step.subject;
        -- a snapshot subject (part 33): the night's snapshot must be loaded;
        -- never silently yesterday's again
        IF (SELECT x.snapshot_column FROM segment.subject x WHERE x.subject_id = sid) IS NOT NULL THEN
            snap := segment.latest_snapshot(_nightly_step.subject, _nightly_step.as_of);
            IF snap IS DISTINCT FROM _nightly_step.as_of THEN
                RAISE EXCEPTION 'subject "%": the snapshot of % is not loaded yet',
                                _nightly_step.subject, to_char(_nightly_step.as_of, 'YYYY-MM-DD')
                    USING ERRCODE = 'no_data_found',
                          DETAIL = CASE WHEN snap IS NULL THEN 'The table has no snapshot on or before that date.'
                                        ELSE format('The newest snapshot is %s; the nightly run does not reuse an older snapshot.',
                                                    to_char(snap, 'YYYY-MM-DD')) END,
                          HINT = 'Run the nightly run after the ETL load (docs/dba-guide.md#snapshot-subjects); segment.refresh(subject, as_of) reads an older snapshot deliberately.';
            END IF;
        END IF;
        SELECT jsonb_build_object(
                   'results', count(*),
                   'failed_rules', count(*) FILTER (WHERE r.members IS NULL),
                   'entered', coalesce(sum(r.entered), 0),
                   'exited', coalesce(sum(r.exited), 0))
          INTO result
          FROM segment.refresh(_nightly_step.subject, _nightly_step.as_of) r;
        SELECT r.run_id, r.rows_scanned, r.error INTO s
          FROM segment.run r WHERE r.subject_id = sid ORDER BY r.run_id DESC LIMIT 1;
        RETURN result || jsonb_build_object('refresh_run_id', s.run_id, 'rows_scanned', s.rows_scanned)
                      || CASE WHEN s.error IS NULL THEN '{}'::jsonb
                              ELSE jsonb_build_object('rule_errors', s.error) END;
    ELSIF step = 'expire' THEN
        EXECUTE 'SELECT segment.expire($1)' INTO n USING as_of;
        RETURN jsonb_build_object('expired', n);
    ELSIF step = 'evaluate_outcomes' THEN
        EXECUTE 'SELECT segment.evaluate_outcomes($1)' INTO n USING as_of;
        RETURN jsonb_build_object('evaluated', n);
    ELSIF step = 'generate' THEN
        -- columns read by name from the row as jsonb: the rule's name is the
        -- first column (rule_name), the counts are bigint columns
        EXECUTE $q$
            WITH g AS (SELECT to_jsonb(g) AS j, (to_jsonb(g) ->> (SELECT k FROM jsonb_object_keys(to_jsonb(g)) k
                                                                   WHERE k IN ('rule_name', 'rule') LIMIT 1)) AS rule
                         FROM segment.generate(NULL, $1) g)
            SELECT jsonb_build_object('rules', count(*))
                   || (SELECT jsonb_object_agg(c, coalesce(s, 0)) FROM
                         (SELECT c, sum((g.j ->> c)::bigint) AS s
                            FROM unnest(ARRAY['candidates', 'generated', 'control', 'skipped_cooldown',
                                              'skipped_cap', 'over_capacity', 'failed']) c
                            LEFT JOIN g ON g.j ? c GROUP BY c) t)
                   || jsonb_build_object('by_rule', coalesce(jsonb_object_agg(g.rule, g.j - 'rule_name' - 'rule')
                                                             FILTER (WHERE g.rule IS NOT NULL), '{}'))
              FROM g $q$
          INTO result USING as_of;
        RETURN result;
    ELSIF step = 'size_snapshots' THEN
        -- refresh writes segment.size_snapshot (and universe_history) for its
        -- as_of; this step checks that every subject refreshed in this run
        -- has them (from its refresh or a later one of the same date)
        result := '{}';
        FOR s IN SELECT t.subject, (t.counts ->> 'refresh_run_id')::bigint AS refresh_run, x.subject_id
                   FROM segment.nightly_step t JOIN segment.subject x ON x.name = t.subject
                  WHERE t.run_id = _nightly_step.run_id AND t.step = 'refresh' AND t.status = 'succeeded'
                  ORDER BY t.step_no
        LOOP
            IF NOT EXISTS (SELECT 1 FROM segment.universe_history u
                            WHERE u.subject_id = s.subject_id AND u.as_of = _nightly_step.as_of
                              AND u.run_id >= s.refresh_run) THEN
                RAISE EXCEPTION 'subject "%" has no size snapshot for %', s.subject, as_of
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = format('Its refresh (segment.run %s) succeeded but segment.universe_history has no row for that date from it or a later refresh.', s.refresh_run),
                          HINT = 'Something removed the snapshot after the refresh; run the nightly run for this date again.';
            END IF;
            SELECT count(*) INTO n FROM segment.size_snapshot z
             WHERE z.subject_id = s.subject_id AND z.as_of = _nightly_step.as_of;
            result := result || jsonb_build_object(s.subject, n);
        END LOOP;
        RETURN jsonb_build_object('subjects', (SELECT count(*) FROM jsonb_object_keys(result)),
                                  'rows', (SELECT coalesce(sum(v::bigint), 0) FROM jsonb_each_text(result) e(k, v)),
                                  'by_subject', result);
    END IF;
    RAISE EXCEPTION 'unknown nightly step "%"', step USING ERRCODE = 'invalid_parameter_value';
END $$;
