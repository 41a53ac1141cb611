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
