-- Rule owners, evaluation as the owner, column privileges at definition,
-- pinned search_path and canonical rule text (issue 11, holes 1, 4, 5).
-- See docs/dba-guide.md#upgrade: review the owners after the update.

-- Every object with user-written code records the role it runs as. Rows
-- written by 0.1.0 get the author of their latest definition change when
-- that role still exists, else the extension's owner.
CREATE FUNCTION segment_internal._upgrade_owner(author name) RETURNS regrole
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT r.oid::regrole FROM pg_catalog.pg_roles r WHERE r.rolname = author),
                    (SELECT e.extowner::regrole FROM pg_catalog.pg_extension e WHERE e.extname = 'segment'))
$$;

ALTER TABLE segment.tag ADD COLUMN owner regrole;
UPDATE segment.tag t
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.tag_history h
                    WHERE h.tag_id = t.tag_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), t.updated_by));
ALTER TABLE segment.tag ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.segment ADD COLUMN owner regrole;
UPDATE segment.segment g
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.definition_history h
                    WHERE h.kind = 'segment' AND h.object_id = g.segment_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), g.updated_by));
ALTER TABLE segment.segment ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.scheme ADD COLUMN owner regrole;
UPDATE segment.scheme c
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.definition_history h
                    WHERE h.kind = 'scheme' AND h.object_id = c.scheme_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), c.updated_by));
ALTER TABLE segment.scheme ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.scorecard ADD COLUMN owner regrole;
UPDATE segment.scorecard c
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.definition_history h
                    WHERE h.kind = 'scorecard' AND h.object_id = c.scorecard_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), c.updated_by));
ALTER TABLE segment.scorecard ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.opportunity_rule ADD COLUMN owner regrole;
UPDATE segment.opportunity_rule r
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.opportunity_rule_history h
                    WHERE h.rule_id = r.rule_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), r.updated_by));
ALTER TABLE segment.opportunity_rule ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.event_rule ADD COLUMN owner regrole;
UPDATE segment.event_rule e SET owner = segment_internal._upgrade_owner(e.created_by);
ALTER TABLE segment.event_rule ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

DROP FUNCTION segment_internal._upgrade_owner(name);

-- The text to store for a rule: itself if it means the same under
-- search_path = pg_catalog, pg_temp, else deparsed with every object outside
-- pg_catalog schema-qualified (docs/dba-guide.md#rule-owners).
-- @function segment_internal._rule_canonical

-- Whether a stored goal ('goal') or event condition ('event') of an
-- opportunity rule is true for each row, evaluated as the rule's owner.
-- @function segment_internal._rule_matches

-- @function segment.create_tag

-- @function segment.alter_tag

-- @function segment.create_segment

-- @function segment.alter_segment

-- Validates a bucket list against the subject's table; returns the rows to
-- store. Raises the rule's own error (with position and context) for a bad
-- rule.
-- @function segment_internal._scheme_buckets

-- @function segment.create_scheme

-- @function segment.alter_scheme

-- @function segment_internal._scorecard_items

-- @function segment.create_scorecard

-- @function segment.alter_scorecard

-- Validates a rule as it would be after a create or alter and fills in the
-- derived columns (template_sql, template_columns, goal_columns, ...).
-- Raises on the first bad parameter; changes nothing.
-- @function segment_internal._check_opportunity_rule

-- @function segment.create_opportunity_rule

-- Every parameter NULL keeps the current value; '' removes a template or goal.
-- @function segment.alter_opportunity_rule

-- For every opportunity whose window has closed (valid_until < as_of) and
-- that has no outcome yet, treatment and control alike: goal_met = the
-- rule's goal IS TRUE on the customer's current row (false when the row is
-- gone), evaluated with segment.as_of() = as_of. A rule without a goal
-- takes the manager's word: goal_met = converted IS TRUE for treatment,
-- NULL for control (nobody reports on control customers). Each opportunity
-- is evaluated once; a rerun finds nothing left to do.
-- @function segment.evaluate_outcomes
