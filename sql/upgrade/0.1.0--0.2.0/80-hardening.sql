-- segment upgrade 0.1.0 -> 0.2.0, part 80: hardening (issue 11, items 3
-- and 6; holes 2, 3, 7; docs/security.md). The same changes as the install
-- parts 50, 85 and 86. Install part 95 (privileges: grant_role and the
-- revoke of PUBLIC's EXECUTE on internal functions) ends the upgrade as it is:
-- the Makefile appends it.

-- _rule_columns: NULL, bad OID and unreadable relation checked in C first
CREATE OR REPLACE FUNCTION segment_internal._rule_columns(relation regclass, rule text, what text DEFAULT NULL)
    RETURNS name[]
    AS 'MODULE_PATHNAME', 'segment_rule_columns_checked' LANGUAGE C STABLE;

-- live maintenance records the triggers it created (hole 2)
ALTER TABLE segment.live_subject ADD COLUMN triggers name[];
UPDATE segment.live_subject SET triggers = segment_internal._live_trigger_names(subject_id);
ALTER TABLE segment.live_subject ALTER COLUMN triggers SET NOT NULL;

CREATE OR REPLACE FUNCTION segment_internal._entry_before() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sid int;
    w record;
    before segment.memberset;
BEGIN
    IF TG_NAME <> 'segment_entry_before' OR TG_RELID NOT IN ('segment.tag_state'::regclass,
            'segment.bucket_state'::regclass, 'segment.score_state'::regclass, 'segment.subject_state'::regclass) THEN
        RAISE EXCEPTION 'trigger function segment_internal._entry_before() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.entry_rule) THEN
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'tag_state' THEN
        SELECT t.subject_id INTO sid FROM segment.tag t WHERE t.tag_id = NEW.tag_id;
    ELSIF TG_TABLE_NAME = 'bucket_state' THEN
        SELECT m.subject_id INTO sid FROM segment.scheme m WHERE m.scheme_id = NEW.scheme_id;
    ELSIF TG_TABLE_NAME = 'score_state' THEN
        SELECT c.subject_id INTO sid FROM segment.scorecard c WHERE c.scorecard_id = NEW.scorecard_id;
    ELSE
        sid := NEW.subject_id;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.entry_rule e WHERE e.subject_id = sid)
       OR NOT EXISTS (SELECT 1 FROM segment.run x WHERE x.run_id = NEW.run_id AND x.subject_id = sid
                                                     AND x.finished_at IS NULL) THEN
        RETURN NEW;     -- no entry rule, or not written by a refresh
    END IF;
    IF to_regclass('pg_temp._seg_entry_before') IS NULL THEN
        CREATE TEMP TABLE _seg_entry_before (subject_id int, run_id int8, audience text,
                                             members segment.memberset) ON COMMIT DROP;
    ELSIF EXISTS (SELECT 1 FROM pg_temp._seg_entry_before b WHERE b.run_id = NEW.run_id) THEN
        RETURN NEW;
    END IF;
    FOR w IN SELECT DISTINCT e.audience, s.name FROM segment.entry_rule e
               JOIN segment.subject s USING (subject_id) WHERE e.subject_id = sid
    LOOP
        BEGIN
            before := segment.audience(w.name, w.audience);
        EXCEPTION WHEN OTHERS THEN
            before := NULL;
        END;
        INSERT INTO pg_temp._seg_entry_before VALUES (sid, NEW.run_id, w.audience, before);
    END LOOP;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION segment_internal._entry_after() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    b record;
    after segment.memberset;
    sname name;
BEGIN
    IF TG_NAME <> 'segment_entry_after' OR TG_RELID <> 'segment.universe_history'::regclass THEN
        RAISE EXCEPTION 'trigger function segment_internal._entry_after() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    IF to_regclass('pg_temp._seg_entry_before') IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT x.name INTO sname FROM segment.subject x WHERE x.subject_id = NEW.subject_id;
    FOR b IN DELETE FROM pg_temp._seg_entry_before x WHERE x.run_id = NEW.run_id
             RETURNING x.audience, x.members
    LOOP
        CONTINUE WHEN b.members IS NULL;
        BEGIN
            after := segment.audience(sname, b.audience);
        EXCEPTION WHEN OTHERS THEN
            CONTINUE;
        END;
        -- a failing entry rule must not fail the refresh: it is reported
        BEGIN
            PERFORM segment_internal._fire_entries(NEW.subject_id, b.audience,
                                          after OPERATOR(segment.-) b.members, NEW.as_of);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'entry rules on % of subject "%" failed: %', quote_literal(b.audience), sname, SQLERRM
                USING DETAIL = format('SQLSTATE %s; the refresh goes on, no opportunity was made for this entry.', SQLSTATE);
        END;
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION segment_internal._opportunity_rule_drop_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE what text;
BEGIN
    IF TG_NAME <> 'segment_event_rule_guard' OR TG_RELID <> 'segment.opportunity_rule'::regclass THEN
        RAISE EXCEPTION 'trigger function segment_internal._opportunity_rule_drop_guard() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    SELECT string_agg(x, ', ') INTO what FROM (
        SELECT format('event table %s', e.event_table) AS x FROM segment.event_rule e WHERE e.rule_id = OLD.rule_id
        UNION ALL
        SELECT format('entry into %L', e.audience) FROM segment.entry_rule e WHERE e.rule_id = OLD.rule_id) y;
    IF what IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop opportunity rule "%": it fires on %', OLD.name, what
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Detach it first: segment.detach_event_rule(rule, event_table), segment.detach_entry_rule(rule, audience).';
    END IF;
    RETURN OLD;
END $$;
