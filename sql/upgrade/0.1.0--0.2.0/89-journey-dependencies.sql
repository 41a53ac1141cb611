-- 0.1.0 -> 0.2.0: dropping what a journey (part 87) uses is refused with
-- 2BP01 and names the journeys: a tag, segment, scheme or scorecard in a
-- journey's audiences or escalation, an opportunity rule a journey escalates
-- to. Final bodies of the two functions of part 81.

CREATE OR REPLACE FUNCTION segment_internal._refuse_if_rules_use(kind text, n name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    qualified boolean := kind IN ('scheme', 'scorecard');
    users text;
BEGIN
    SELECT string_agg(DISTINCT format('"%s"', r.name), ', ') INTO users
      FROM segment.opportunity_rule r
      LEFT JOIN segment.entry_rule e USING (rule_id)
     WHERE EXISTS (SELECT 1 FROM segment_internal._audience_names(r.audience) a
                    WHERE CASE WHEN qualified THEN a.qualifier = n
                               ELSE a.qualifier IS NULL AND a.name = n END)
        OR EXISTS (SELECT 1 FROM segment_internal._audience_names(e.audience) a
                    WHERE CASE WHEN qualified THEN a.qualifier = n
                               ELSE a.qualifier IS NULL AND a.name = n END)
        OR (_refuse_if_rules_use.kind = 'scorecard' AND r.priority_scorecard =
            (SELECT c.scorecard_id FROM segment.scorecard c WHERE c.name = n));
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop % "%" because opportunity rules use it', kind, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Used by opportunity rule(s) %s (audience, entry audience or priority scorecard).', users),
                  HINT = 'Change those rules with segment.alter_opportunity_rule() or drop them first; cascade does not drop opportunity rules.';
    END IF;
    -- journeys (part 87): entry, exit, goal, step conditions, escalation score
    SELECT string_agg(DISTINCT format('"%s"', j.name), ', ') INTO users
      FROM segment.journey j
     WHERE EXISTS (SELECT 1
                     FROM unnest(ARRAY[j.entry, j.exit, j.goal]
                                 || ARRAY(SELECT st.condition FROM segment.journey_step st
                                           WHERE st.journey_id = j.journey_id)) AS u(audience),
                          segment_internal._audience_names(u.audience) a
                    WHERE CASE WHEN qualified THEN a.qualifier = n
                               ELSE a.qualifier IS NULL AND a.name = n END)
        OR (_refuse_if_rules_use.kind = 'scorecard' AND EXISTS (
                SELECT 1 FROM segment.journey_escalation e JOIN segment.scorecard c USING (scorecard_id)
                 WHERE e.journey_id = j.journey_id AND c.name = n));
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop % "%" because journeys use it', kind, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Used by journey(s) %s (entry, exit, goal, a step''s condition or the escalation scorecard).', users),
                  HINT = 'Change those journeys with segment.alter_journey(), segment.drop_journey_step() or segment.set_journey_escalation(), or drop them first.';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION segment.drop_opportunity_rule(name name, "cascade" boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
    n bigint;
BEGIN
    PERFORM segment_internal._lock_definitions();
    r := segment_internal._opportunity_rule(name, true);
    SELECT count(*) INTO n FROM segment.opportunity o WHERE o.rule_id = r.rule_id;
    IF n > 0 AND NOT coalesce("cascade", false) THEN
        RAISE EXCEPTION 'cannot drop opportunity rule "%": it has % opportunities', name, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Deactivate it with segment.alter_opportunity_rule(name => ..., active => false) to keep its history, or drop it with "cascade" => true to delete its opportunities too.';
    END IF;
    -- a journey escalates to it (part 87): cascade never drops a journey's referral
    IF EXISTS (SELECT 1 FROM segment.journey_escalation e WHERE e.rule_id = r.rule_id) THEN
        RAISE EXCEPTION 'cannot drop opportunity rule "%" because journeys escalate to it', name
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Escalation of journey(s) %s.',
                                  (SELECT string_agg(format('"%s"', j.name), ', ' ORDER BY j.name)
                                     FROM segment.journey_escalation e JOIN segment.journey j USING (journey_id)
                                    WHERE e.rule_id = r.rule_id)),
                  HINT = 'Remove the escalation first with segment.set_journey_escalation(journey, NULL).';
    END IF;
    DELETE FROM segment.opportunity o WHERE o.rule_id = r.rule_id;
    DELETE FROM segment.generation g WHERE g.rule_id = r.rule_id;
    DELETE FROM segment.opportunity_rule x WHERE x.rule_id = r.rule_id;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action, old_definition)
    VALUES (r.rule_id, r.name, r.version, 'drop', segment_internal._opportunity_rule_definition(r));
END $$;
