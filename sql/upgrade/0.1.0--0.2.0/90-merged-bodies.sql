-- 0.2.0: the final bodies of the functions that several 0.2.0 changes replace
-- (relation kinds, rule owners, live dates, hardening), as in sql/install; the
-- earlier parts leave them to this one.

CREATE OR REPLACE FUNCTION segment_internal._live_key_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := TG_ARGV[0]::int;
    old_key int8;
    d date;
BEGIN
    -- only from the trigger enable_live created on the subject's table
    IF NOT EXISTS (SELECT 1 FROM segment.live_subject l JOIN segment.subject s USING (subject_id)
                    WHERE l.subject_id = sid AND s.relation = TG_RELID AND TG_NAME = ANY (l.triggers)
                      AND s.key_column = TG_ARGV[1] AND TG_NARGS = 2) THEN
        RAISE EXCEPTION 'trigger function segment_internal._live_key_change() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass),
                  HINT = 'Live maintenance installs its triggers with segment.enable_live(subject).';
    END IF;
    old_key := (to_jsonb(OLD) ->> TG_ARGV[1])::int8;
    IF old_key BETWEEN 0 AND 4294967295 THEN
        d := segment_internal._live_writer_as_of(sid);
        IF d IS NOT NULL THEN
            INSERT INTO segment.live_member AS l (subject_id, member_id, deleted, tags, buckets, scores, as_of, changed_at)
            VALUES (sid, old_key, true, '{}', '{}', '{}', d, now())
            ON CONFLICT (subject_id, member_id) DO UPDATE SET deleted = true, tags = '{}', buckets = '{}',
                   scores = '{}', as_of = excluded.as_of, changed_at = excluded.changed_at;
        END IF;
    END IF;
    RETURN NULL;
END $$;


CREATE OR REPLACE FUNCTION segment.enable_live(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    s segment.subject;
    names name[] := segment_internal._live_trigger_names(sid);
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
    -- one enable/disable/refresh of a subject at a time
    PERFORM pg_advisory_xact_lock(24173, sid);
    IF EXISTS (SELECT 1 FROM segment.live_subject l WHERE l.subject_id = sid) THEN
        RAISE EXCEPTION 'live maintenance of subject "%" is already enabled', subject
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Turn it off with segment.disable_live(%L).', subject);
    END IF;
    IF s.snapshot_column IS NOT NULL THEN
        RAISE EXCEPTION 'live maintenance does not apply to snapshot subject "%"', subject
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Its table holds one snapshot per data date, loaded by the ETL: there is no row change to follow, and segment puts no trigger on a warehouse table.',
                  HINT = 'Chain segment.refresh() or CALL segment.run_all() after the ETL load (docs/dba-guide.md#snapshot-subjects).';
    END IF;
    IF s.key_type NOT IN ('int4'::regtype, 'int8'::regtype) THEN
        RAISE EXCEPTION 'live maintenance supports integer-keyed subjects only; subject "%" is keyed by %',
                        subject, s.key_type
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'A new text key would need a new member id from segment.keymap, a single point every writer would wait on.',
                  HINT = 'Keep the subject current with segment.refresh().';
    END IF;
    IF segment_internal._relation_kind(s.relation) IS DISTINCT FROM 'table' THEN
        RAISE EXCEPTION 'live maintenance needs an ordinary table; the relation of subject "%" is a %',
                        subject, segment_internal._relation_kind(s.relation)
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = CASE segment_internal._relation_kind(s.relation)
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
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._live_trigger(%L)', names[1], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING NEW TABLE AS segment_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._live_trigger(%L)', names[2], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %I ON %s FOR EACH ROW '
                   'WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION segment_internal._live_key_change(%L, %L)',
                   names[4], s.key_column, s.relation, s.key_column, s.key_column, sid, s.key_column);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS segment_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._live_trigger(%L)', names[3], s.relation, sid);
    INSERT INTO segment.live_subject (subject_id, triggers) VALUES (sid, names);
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
    PERFORM segment_internal._lock_definitions();
    r := segment_internal._opportunity_rule(rule, true);
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = event_table;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', event_table
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Events are rows inserted into an ordinary or partitioned table.';
    END IF;
    IF segment_internal._relation_kind(event_table) = 'citus' THEN
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
    IF NOT segment_internal._event_key_ok(s.key_type, ktype) THEN
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
    cols := segment_internal._rule_columns(event_table, condition,
                                  format('event rule "%s" on %s', rule, event_table));
    condition := segment_internal._rule_canonical(event_table, condition);
    -- the trigger reads the new rows under the table's own name: a column
    -- may be written "status" or "loan_application.status", not with its schema
    EXECUTE format('SELECT 1 FROM ONLY %s AS %I WHERE (%s) IS TRUE LIMIT 0',
                   event_table, (SELECT c.relname FROM pg_class c WHERE c.oid = event_table), condition);
    trg := format('segment_event_rule_%s', r.rule_id);
    INSERT INTO segment.event_rule (rule_id, event_table, key_column, key_type, condition,
                                    columns, column_types, trigger_name, owner)
    VALUES (r.rule_id, event_table, key_column, ktype, condition, cols,
            segment_internal._column_types(event_table, cols), trg, quote_ident(current_user)::regrole);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS segment_new_events
                    FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._event_trigger(%L)',
                   trg, event_table, r.rule_id);
END $$;
