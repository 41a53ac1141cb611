-- segment upgrade 0.1.0 -> 0.2.0, part 80: hardening (issue 11, items 3
-- and 6; holes 2, 3, 7; docs/security.md). The same changes as the install
-- parts 50, 85 and 86. Install part 95 (privileges: grant_role and the
-- revoke of PUBLIC's EXECUTE on internal functions) ends the upgrade as it is:
-- the Makefile appends it.

-- _rule_columns: NULL, bad OID and unreadable relation checked in C first
-- @function segment_internal._rule_columns

-- live maintenance records the triggers it created (hole 2)
ALTER TABLE segment.live_subject ADD COLUMN triggers name[];
UPDATE segment.live_subject SET triggers = segment_internal._live_trigger_names(subject_id);
ALTER TABLE segment.live_subject ALTER COLUMN triggers SET NOT NULL;

-- @function segment_internal._opportunity_rule_drop_guard
