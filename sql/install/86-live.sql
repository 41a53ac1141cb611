-- segment install script, part 86: live maintenance (docs/live.md).
-- enable_live(subject) installs statement-level triggers with transition
-- tables on the subject's table; for every statement they write one row per
-- changed customer into the overlay segment.live_member (part 71, with the
-- _live_* functions through which readers merge it over the sets of the
-- last refresh); a refresh folds the overlay rows it has seen (C, live_fold).

-- Subjects with live maintenance on (dumped: a restore recreates the
-- triggers with the table, and this row says they belong to segment).
CREATE TABLE segment.live_subject (
    subject_id int PRIMARY KEY REFERENCES segment.subject ON DELETE CASCADE,
    enabled_at timestamptz NOT NULL DEFAULT now(),
    enabled_by name NOT NULL DEFAULT current_user,
    -- the triggers enable_live created on the subject's table: the trigger
    -- functions refuse to run from any other trigger (names, not OIDs, so
    -- that a dump and restore keeps them valid)
    triggers   name[] NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('segment.live_subject', '');

CREATE FUNCTION segment_internal._live_rows()
RETURNS TABLE (subject_id int, member_id int8, deleted boolean, tags int4[],
               buckets jsonb, scores jsonb, as_of date)
    AS 'MODULE_PATHNAME', 'segment_live_rows' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION segment_internal._live_rows() IS
    'internal: the overlay rows of the statement the live trigger is processing';

-- Runs as the owner of this function (the extension's owner), so that
-- writers need no rights on segment's tables; under search_path =
-- pg_catalog, pg_temp wherever it resolves a name, so that a writer cannot
-- make the rules it parses call functions of the writer's choosing. Rules
-- must therefore name functions outside pg_catalog with their schema (as
-- segment.as_of() is). Both are done in C (src/live_trigger.c), not by
-- SECURITY DEFINER and a SET clause, which would save and restore every
-- setting in each statement even when nothing is resolved by name.
CREATE FUNCTION segment_internal._live_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'segment_live_trigger' LANGUAGE C;

-- A live writer's share of the subject's live lock (class 24178, held to the
-- end of the transaction; a refresh that moves the date takes it
-- exclusively), then the date of the subject's state as committed now, not
-- as of the caller's snapshot: the date an overlay row must be evaluated at.
-- NULL when the subject was never refreshed. For the key-change trigger; the
-- statement trigger does the same in C.
CREATE FUNCTION segment_internal._live_writer_as_of(sid int) RETURNS date
    AS 'MODULE_PATHNAME', 'segment_live_writer_as_of' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION segment_internal._live_writer_as_of(int) IS
    'internal: take a live writer''s share of the subject''s live lock; the date of its state as committed now';
REVOKE EXECUTE ON FUNCTION segment_internal._live_writer_as_of(int) FROM PUBLIC;

-- A key changed by an UPDATE: the old key leaves the table. A row trigger
-- that fires only when the key column changes, so that the statement
-- trigger on UPDATE needs no OLD TABLE (capturing the old rows of every
-- bulk UPDATE would cost more than this rare case).
CREATE FUNCTION segment_internal._live_key_change() RETURNS trigger
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

-- Installing and removing the triggers ---------------------------------------

CREATE FUNCTION segment_internal._live_trigger_names(sid int) RETURNS name[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[format('segment_live_%s_insert', sid), format('segment_live_%s_update', sid),
                 format('segment_live_%s_delete', sid), format('segment_live_%s_key', sid)]::name[]
$$;

CREATE FUNCTION segment_internal._live_drop_triggers(sid int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel regclass;
    t name;
BEGIN
    SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
    IF rel IS NULL THEN
        RETURN;
    END IF;
    FOR t IN SELECT g.tgname FROM pg_catalog.pg_trigger g
              WHERE g.tgrelid = rel AND g.tgname = ANY (segment_internal._live_trigger_names(sid))
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, rel);
    END LOOP;
END $$;

CREATE FUNCTION segment.enable_live(subject name) RETURNS void
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
COMMENT ON FUNCTION segment.enable_live(name) IS
    'keep the subject''s tags, buckets and scores current on every INSERT, UPDATE and DELETE';

CREATE FUNCTION segment.disable_live(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
BEGIN
    PERFORM pg_advisory_xact_lock(24173, sid);
    IF NOT EXISTS (SELECT 1 FROM segment.live_subject l WHERE l.subject_id = sid) THEN
        RAISE EXCEPTION 'live maintenance of subject "%" is not enabled', subject
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Turn it on with segment.enable_live(%L).', subject);
    END IF;
    PERFORM segment_internal._live_drop_triggers(sid);
    DELETE FROM segment.live_subject l WHERE l.subject_id = sid;
END $$;
COMMENT ON FUNCTION segment.disable_live(name) IS
    'stop live maintenance; changes made so far stay visible until the next refresh folds them';

-- Entry rules (part 85) fired from live maintenance: the live trigger of a
-- subject with entry rules evaluates each watched audience over the
-- statement's customers before and after writing the overlay, and calls
-- segment_internal._fire_entries with those who entered, for the period
-- segment.as_of() (the day of the write, as event rules). Like a refresh, a failing
-- entry is reported with a WARNING and does not fail the writing statement.
CREATE FUNCTION segment_internal._live_entry_before(sid int, changed segment.memberset)
RETURNS TABLE (audience text, members segment.memberset)
LANGUAGE sql AS $$
    SELECT * FROM segment_internal._entry_audiences(sid, changed)
$$;

CREATE FUNCTION segment_internal._live_entry_after(sid int, changed segment.memberset, audiences text[],
                                          befores segment.memberset[])
RETURNS bigint LANGUAGE sql AS $$
    -- period: segment.as_of() now, as for event rules (not the refresh's date)
    SELECT f.made FROM segment_internal._fire_entered(sid, changed, audiences, befores, NULL, 'write') f
$$;
