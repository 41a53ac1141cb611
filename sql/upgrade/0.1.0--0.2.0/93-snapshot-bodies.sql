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
    PERFORM segment_internal._check_name('subject', subject);
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
    kind := segment_internal._relation_kind(relation);
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

-- _nightly_step's final body (the snapshot check of the refresh step, and
-- the journeys step) is in part 94

-- generate and its staff loading read the rows of a snapshot subject's
-- current snapshot only: their final bodies are in part 96

-- segment.render's final body (the snapshot's row, masked) is in part 92
-- (92-governance-bodies)

-- the DDL guard also protects a snapshot subject's date column: the final
-- body of _check_rules_of is in part 91 (= install part 91)
