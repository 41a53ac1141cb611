-- segment install script, part 89: invalidation of the definitions that
-- live maintenance and event rules cache per backend (src/live_defs.c,
-- src/catalog_event.c). A statement on any table those definitions come
-- from sends a relcache invalidation of segment.live_subject: every backend
-- rebuilds its cached rules, date and trigger names, and forgets the event
-- rules' attachments (event_rule with its opportunity rule, subject and
-- contact policy), at the next live or event statement after the change
-- commits (the backend that made it, at once). A refresh, which moves the date, sends
-- the same invalidation itself: the step invalidate_live_definitions of the
-- refresh pipeline (src/refresh_pipeline.c), not a trigger on
-- segment.subject_state. And the overlay rows of a deleted subject, which
-- have no foreign key (part 71).

CREATE FUNCTION segment_internal._live_defs_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'segment_live_defs_changed' LANGUAGE C;
COMMENT ON FUNCTION segment_internal._live_defs_changed() IS
    'internal: tells live maintenance and event rules in every backend that their cached definitions are stale';

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['subject', 'tag', 'scheme', 'scheme_bucket',
                             'scorecard', 'scorecard_item', 'entry_rule', 'live_subject',
                             'opportunity_rule', 'event_rule', 'contact_policy']
    LOOP
        EXECUTE format('CREATE TRIGGER segment_live_defs AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
                       'ON segment.%I FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._live_defs_changed()', t);
    END LOOP;
END $$;

-- The overlay rows of deleted subjects, once their live writers are done
-- (the subject's live lock, exclusively: a writer holds its share to its
-- commit), so that none is left behind.
CREATE FUNCTION segment_internal._live_member_cleanup() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int;
BEGIN
    IF TG_NAME <> 'segment_live_member_cleanup' OR TG_RELID <> 'segment.subject'::regclass THEN
        RAISE EXCEPTION 'trigger function segment_internal._live_member_cleanup() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    FOR sid IN SELECT g.subject_id FROM segment_gone g ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(24178, sid);
        DELETE FROM segment.live_member l WHERE l.subject_id = sid;
    END LOOP;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION segment_internal._live_member_cleanup() IS
    'internal: deletes the live overlay rows of deleted subjects';
CREATE TRIGGER segment_live_member_cleanup AFTER DELETE ON segment.subject
    REFERENCING OLD TABLE AS segment_gone
    FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._live_member_cleanup();
