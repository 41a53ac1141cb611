-- 0.2.0: subjects over partitioned tables, views, materialized views, foreign
-- tables and Citus tables (read through SQL); live maintenance and event rules
-- refuse what they cannot trigger on (0A000).

CREATE FUNCTION segment._relation_kind(relation regclass) RETURNS text
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
COMMENT ON FUNCTION segment._relation_kind(regclass) IS
    'how segment reads a relation: table, matview, partitioned, view, foreign, citus; NULL when it cannot';


CREATE OR REPLACE FUNCTION segment.register_subject(subject name, relation regclass, key_column name,
                                         org_column name DEFAULT NULL,
                                         owner_column name DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    ktype regtype;
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
    -- a view or a foreign table has no index, and a Citus table distributed on
    -- another column cannot have one on the key: their keys are checked at every refresh
    IF kind NOT IN ('view', 'foreign', 'citus') AND NOT EXISTS (SELECT 1 FROM pg_index i
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
    INSERT INTO segment.subject (name, relation, key_column, key_type, org_column, owner_column)
    VALUES (subject, relation, key_column, ktype, org_column, owner_column)
    RETURNING subject_id INTO id;
    RETURN id;
END $$;


CREATE OR REPLACE FUNCTION segment.enable_live(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment._subject_id(subject);
    s segment.subject;
    names name[] := segment._live_trigger_names(sid);
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
    -- one enable/disable/refresh of a subject at a time
    PERFORM pg_advisory_xact_lock(24173, sid);
    IF EXISTS (SELECT 1 FROM segment.live_subject l WHERE l.subject_id = sid) THEN
        RAISE EXCEPTION 'live maintenance of subject "%" is already enabled', subject
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Turn it off with segment.disable_live(%L).', subject);
    END IF;
    IF s.key_type NOT IN ('int4'::regtype, 'int8'::regtype) THEN
        RAISE EXCEPTION 'live maintenance supports integer-keyed subjects only; subject "%" is keyed by %',
                        subject, s.key_type
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'A new text key would need a new member id from segment.keymap, a single point every writer would wait on.',
                  HINT = 'Keep the subject current with segment.refresh().';
    END IF;
    IF segment._relation_kind(s.relation) IS DISTINCT FROM 'table' THEN
        RAISE EXCEPTION 'live maintenance needs an ordinary table; the relation of subject "%" is a %',
                        subject, segment._relation_kind(s.relation)
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = CASE segment._relation_kind(s.relation)
                           WHEN 'citus' THEN 'Live maintenance uses triggers with transition tables, which Citus does not run on distributed tables.'
                           WHEN 'view' THEN 'A view has no rows of its own to put triggers on.'
                           ELSE 'Live maintenance uses statement triggers with transition tables on the subject table.' END,
                  HINT = format('Keep the subject current with segment.refresh(%L), e.g. scheduled after the load.', subject);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.subject_state x WHERE x.subject_id = sid) THEN
        RAISE EXCEPTION 'subject "%" has not been refreshed', subject
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Live changes are evaluated as of the date of the last refresh and merged over its sets.',
                  HINT = format('Run segment.refresh(%L) first.', subject);
    END IF;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS segment_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment._live_trigger(%L)', names[1], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING NEW TABLE AS segment_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment._live_trigger(%L)', names[2], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %I ON %s FOR EACH ROW '
                   'WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION segment._live_key_change(%L, %L)',
                   names[4], s.key_column, s.relation, s.key_column, s.key_column, sid, s.key_column);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS segment_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment._live_trigger(%L)', names[3], s.relation, sid);
    INSERT INTO segment.live_subject (subject_id) VALUES (sid);
END $$;

CREATE OR REPLACE FUNCTION segment.attach_event_rule(rule name, event_table regclass, key_column name,
                                          condition text DEFAULT 'true')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
    s segment.subject;
    kind "char";
    ktype regtype;
    cols name[];
    trg name;
BEGIN
    IF rule IS NULL OR event_table IS NULL OR key_column IS NULL THEN
        RAISE EXCEPTION 'rule, event_table and key_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM segment._lock_definitions();
    r := segment._opportunity_rule(rule, true);
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = event_table;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', event_table
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Events are rows inserted into an ordinary or partitioned table.';
    END IF;
    IF segment._relation_kind(event_table) = 'citus' THEN
        RAISE EXCEPTION 'event rules cannot watch the Citus table %', event_table
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'An event rule is a statement trigger with a transition table, which Citus does not run on distributed tables.',
                  HINT = 'Insert events into a local table on the coordinator, or generate from a refreshed audience with segment.generate().';
    END IF;
    IF EXISTS (SELECT 1 FROM segment.event_rule e WHERE e.rule_id = r.rule_id AND e.event_table = attach_event_rule.event_table) THEN
        RAISE EXCEPTION 'opportunity rule "%" is already attached to table %', rule, event_table
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Detach it first with segment.detach_event_rule() to change the key or the condition.';
    END IF;
    SELECT a.atttypid::regtype INTO ktype FROM pg_attribute a
     WHERE a.attrelid = event_table AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF ktype IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', key_column, event_table
            USING ERRCODE = 'undefined_column',
                  HINT = 'key_column is the event column that holds the customer key.';
    END IF;
    IF NOT segment._event_key_ok(s.key_type, ktype) THEN
        RAISE EXCEPTION 'key column "%" of % has type %, but subject "%" is keyed by %',
                        key_column, event_table, ktype, s.name, s.key_type
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Integer subjects take an int2, int4 or int8 event key; text subjects a text or varchar key.';
    END IF;
    IF condition IS NULL OR btrim(condition) = '' THEN
        RAISE EXCEPTION 'the condition of an event rule must not be empty'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Write ''true'' to make every event count.';
    END IF;
    cols := segment._rule_columns(event_table, condition,
                                  format('event rule "%s" on %s', rule, event_table));
    -- the trigger reads the new rows under the table's own name: a column
    -- may be written "status" or "loan_application.status", not with its schema
    EXECUTE format('SELECT 1 FROM ONLY %s AS %I WHERE (%s) IS TRUE LIMIT 0',
                   event_table, (SELECT c.relname FROM pg_class c WHERE c.oid = event_table), condition);
    trg := format('segment_event_rule_%s', r.rule_id);
    INSERT INTO segment.event_rule (rule_id, event_table, key_column, key_type, condition,
                                    columns, column_types, trigger_name)
    VALUES (r.rule_id, event_table, key_column, ktype, condition, cols,
            segment._column_types(event_table, cols), trg);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS segment_new_events
                    FOR EACH STATEMENT EXECUTE FUNCTION segment._event_trigger(%L)',
                   trg, event_table, r.rule_id);
END $$;

