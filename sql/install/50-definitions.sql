-- segment install script, part 50: subjects and tags (definitions).
-- Orchestration is PL/pgSQL; rule analysis is C (segment_internal._rule_columns).

CREATE FUNCTION segment.as_of() RETURNS date
    AS 'MODULE_PATHNAME', 'segment_as_of' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.as_of() IS
    'Evaluation date of rules: the refresh''s as_of inside a refresh, else the GUC segment.as_of, else current_date';

-- Validates a rule against a table; returns the columns it reads. NULL
-- arguments, OIDs of no relation and relations the caller may not read are
-- refused before the relation is opened (src/relcheck.c). With what
-- (definition time): as written under the caller's search_path, and the
-- caller must have SELECT on every column it reads (42501).
CREATE FUNCTION segment_internal._rule_columns(relation regclass, rule text, what text DEFAULT NULL)
    RETURNS name[]
    AS 'MODULE_PATHNAME', 'segment_rule_columns_checked' LANGUAGE C STABLE;

-- The text to store for a rule: itself if it means the same under
-- search_path = pg_catalog, pg_temp, else deparsed with every object outside
-- pg_catalog schema-qualified (docs/dba-guide.md#rule-owners).
CREATE FUNCTION segment_internal._rule_canonical(relation regclass, rule text) RETURNS text
    AS 'MODULE_PATHNAME', 'segment_rule_canonical' LANGUAGE C STABLE STRICT;

-- Whether a stored goal ('goal') or event condition ('event') of an
-- opportunity rule is true for each row, evaluated as the rule's owner.
CREATE FUNCTION segment_internal._rule_matches(kind text, rule_id int, relation regclass, rows anyarray)
    RETURNS boolean[]
    AS 'MODULE_PATHNAME', 'segment_rule_matches' LANGUAGE C STABLE STRICT;

-- Current types of a table's columns, in the order given (NULL where missing).
CREATE FUNCTION segment_internal._column_types(relation regclass, cols name[]) RETURNS regtype[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(a.atttypid::regtype ORDER BY c.n), '{}')
      FROM unnest(cols) WITH ORDINALITY AS c(col, n)
      LEFT JOIN pg_catalog.pg_attribute a
        ON a.attrelid = relation AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- Names usable in audiences: identifier-like, no keywords of the audience language.
CREATE FUNCTION segment_internal._check_name(kind text, n name) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF n IS NULL OR n !~ '^[A-Za-z_\u0080-\uFFFF][A-Za-z0-9_\u0080-\uFFFF]*$' THEN
        RAISE EXCEPTION 'invalid % name "%"', kind, n
            USING ERRCODE = 'invalid_name',
                  HINT = 'Use letters, digits and underscores, starting with a letter or underscore.';
    END IF;
    IF lower(n) IN ('and', 'or', 'not') THEN
        RAISE EXCEPTION 'invalid % name "%"', kind, n
            USING ERRCODE = 'invalid_name',
                  DETAIL = 'and, or and not are keywords of the audience language.';
    END IF;
END $$;

-- How segment reads a relation's rows (src/subject_source.c decides the same
-- way): 'table' and 'matview' from their heap; 'partitioned', 'view',
-- 'foreign' and 'citus' (a Citus table: its coordinator shell holds no rows)
-- through SQL. NULL for kinds that have no rows to read.
CREATE FUNCTION segment_internal._relation_kind(relation regclass) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k "char";
    citus boolean := false;
BEGIN
    SELECT c.relkind INTO k FROM pg_catalog.pg_class c WHERE c.oid = relation;
    IF k IN ('r', 'm', 'p', 'f') AND pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)'
           INTO citus USING relation;
    END IF;
    RETURN CASE WHEN citus THEN 'citus'
                WHEN k = 'r' THEN 'table' WHEN k = 'm' THEN 'matview' WHEN k = 'p' THEN 'partitioned'
                WHEN k = 'v' THEN 'view' WHEN k = 'f' THEN 'foreign' END;
END $$;
COMMENT ON FUNCTION segment_internal._relation_kind(regclass) IS
    'how segment reads a relation: table, matview, partitioned, view, foreign, citus; NULL when it cannot';

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

-- segment.unregister_subject (it reaches every feature's definitions) and
-- segment.create_tag (its name check reads the namespace of part 72) are in
-- part 93.

CREATE FUNCTION segment_internal._tag(tag name) RETURNS segment.tag
LANGUAGE plpgsql STABLE AS $$
DECLARE t segment.tag;
BEGIN
    SELECT * INTO t FROM segment.tag x WHERE x.name = tag;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tag "%" does not exist', tag USING ERRCODE = 'undefined_object';
    END IF;
    RETURN t;
END $$;

CREATE FUNCTION segment.alter_tag(tag name, rule text DEFAULT NULL, description text DEFAULT NULL,
                                  active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.tag := segment_internal._tag(tag);
    rel regclass;
    cols name[] := old.columns;
BEGIN
    IF rule IS NOT NULL THEN
        IF old.rule IS NULL THEN
            RAISE EXCEPTION 'tag "%" is a manual tag', tag
                USING ERRCODE = 'wrong_object_type',
                      HINT = 'Manual tags have no rule; create a rule tag instead.';
        END IF;
        SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = old.subject_id;
        cols := segment_internal._rule_columns(rel, rule, format('tag "%s"', tag));
        rule := segment_internal._rule_canonical(rel, rule);
    END IF;
    IF rule IS NOT DISTINCT FROM NULL AND description IS NULL AND active IS NULL THEN
        RAISE EXCEPTION 'nothing to change for tag "%"', tag
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass rule, description or active.';
    END IF;
    UPDATE segment.tag t
       SET rule = coalesce(alter_tag.rule, t.rule),
           description = coalesce(alter_tag.description, t.description),
           active = coalesce(alter_tag.active, t.active),
           columns = cols,
           column_types = segment_internal._column_types(
               (SELECT s.relation FROM segment.subject s WHERE s.subject_id = old.subject_id), cols),
           version = t.version + 1,
           updated_at = now(), updated_by = current_user,
           -- a new rule runs as whoever wrote it
           owner = CASE WHEN alter_tag.rule IS NULL THEN t.owner ELSE quote_ident(current_user)::regrole END
     WHERE t.tag_id = old.tag_id;
    INSERT INTO segment.tag_history (tag_id, tag, action, old_rule, new_rule,
                                     old_description, new_description, old_active, new_active)
    VALUES (old.tag_id, tag, 'alter', old.rule, coalesce(rule, old.rule),
            old.description, coalesce(description, old.description),
            old.active, coalesce(active, old.active));
END $$;

-- segment.drop_tag is in part 93 (what dropping a name reaches).

-- Member id of a key; for text keys, assigns one if create (under the subject lock).
-- Governance: refused (42501) for a customer outside the caller's scope
-- (_check_customer, part 13); the check shares the first statement's line so
-- that the error positions of the body stay those of 0.1.0's.
CREATE FUNCTION segment_internal._member_id(sid int, key text, "create" boolean) RETURNS int8
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

CREATE FUNCTION segment.set_tag(subject name, key text, tag name, "on" boolean DEFAULT true,
                                expires_at timestamptz DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    t segment.tag := segment_internal._tag(tag);
    mid int8;
BEGIN
    IF t.subject_id <> sid THEN
        RAISE EXCEPTION 'tag "%" does not belong to subject "%"', tag, subject
            USING ERRCODE = 'undefined_object';
    END IF;
    IF t.rule IS NOT NULL THEN
        RAISE EXCEPTION 'tag "%" is a rule tag', tag
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = 'Its members come from its rule at each refresh.',
                  HINT = 'Create a manual tag (rule NULL) with segment.create_tag() and set that.';
    END IF;
    IF key IS NULL THEN
        RAISE EXCEPTION 'key must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF "on" IS NULL THEN
        RAISE EXCEPTION '"on" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF expires_at IS NOT NULL AND expires_at <= now() AND "on" THEN
        RAISE EXCEPTION 'expires_at % is not in the future', expires_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    mid := segment_internal._member_id(sid, key, "on");
    IF "on" THEN
        INSERT INTO segment.manual_tag AS m (tag_id, key, member_id, expires_at)
        VALUES (t.tag_id, key, mid, set_tag.expires_at)
        ON CONFLICT (tag_id, member_id) DO UPDATE
           SET expires_at = excluded.expires_at, set_at = now(), set_by = current_user;
    ELSIF mid IS NOT NULL THEN
        DELETE FROM segment.manual_tag m WHERE m.tag_id = t.tag_id AND m.member_id = mid;
    END IF;
END $$;

CREATE FUNCTION segment.set_tag(subject name, key bigint, tag name, "on" boolean DEFAULT true,
                                expires_at timestamptz DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
    SELECT segment.set_tag(subject, key::text, tag, "on", expires_at)
$$;
