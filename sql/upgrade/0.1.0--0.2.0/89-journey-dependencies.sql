-- 0.1.0 -> 0.2.0: dropping what a journey (part 87) uses is refused with
-- 2BP01 and names the journeys: a tag, segment, scheme or scorecard in a
-- journey's audiences or escalation, an opportunity rule a journey escalates
-- to. Final bodies of the two functions of part 81.

-- @function segment_internal._refuse_if_rules_use

-- @function segment.drop_opportunity_rule
