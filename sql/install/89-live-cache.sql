-- segment install script, part 89: invalidation of the definitions that
-- live maintenance caches per backend (src/live.c). A statement on any
-- table those definitions come from sends a relcache invalidation of
-- segment.live_subject: every backend rebuilds its cached rules, date and
-- trigger names at the next live statement after the change commits (the
-- backend that made it, at once).

CREATE FUNCTION segment._live_defs_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'segment_live_defs_changed' LANGUAGE C;
COMMENT ON FUNCTION segment._live_defs_changed() IS
    'internal: tells live maintenance in every backend that its cached definitions are stale';

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['subject', 'subject_state', 'tag', 'scheme', 'scheme_bucket',
                             'scorecard', 'scorecard_item', 'entry_rule', 'live_subject']
    LOOP
        EXECUTE format('CREATE TRIGGER segment_live_defs AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
                       'ON segment.%I FOR EACH STATEMENT EXECUTE FUNCTION segment._live_defs_changed()', t);
    END LOOP;
END $$;
