-- upgrade 0.1.0 -> 0.2.0, part 99: segment.generate refuses an infinite
-- as_of up front (22023), as refresh, expire_opportunities and report do;
-- 0.1.0 warned once per rule. The final body of sql/install/84-generate.sql.
CREATE OR REPLACE FUNCTION segment.generate(rule name DEFAULT NULL, as_of date DEFAULT current_date)
RETURNS TABLE (rule_name name, candidates bigint, generated bigint, control bigint,
               skipped_cooldown bigint, skipped_cap bigint, over_capacity bigint, failed bigint)
LANGUAGE plpgsql AS $$
DECLARE
    one segment.opportunity_rule;
    g record;
BEGIN
    as_of := coalesce(as_of, current_date);
    -- refused before anything is read or written: an infinite day has no
    -- audience, cool-down or validity window (each rule would fail alone)
    IF NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date, not %', as_of
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'generate() makes the opportunities of one day: give that day, or NULL for today.';
    END IF;
    IF rule IS NOT NULL THEN
        one := segment_internal._opportunity_rule(rule);
        IF NOT one.active THEN
            RAISE EXCEPTION 'opportunity rule "%" is not active', rule
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Activate it with segment.alter_opportunity_rule(name => ..., active => true).';
        END IF;
        -- an event or entry rule's audience is who may get the lead when the
        -- event happens: a batch run would give it to all of them (part 85)
        IF segment_internal._is_triggered(one.rule_id) THEN
            RAISE EXCEPTION 'opportunity rule "%" is made by events or audience entries, not by batch generation', rule
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'See segment.event_rule and segment.entry_rule; detach it to generate it in batch.';
        END IF;
    END IF;
    FOR g IN SELECT x.subject_id, array_agg(x.rule_id ORDER BY x.rule_id) AS ids
               FROM segment.opportunity_rule x
              WHERE x.active AND (one.rule_id IS NULL OR x.rule_id = one.rule_id)
                AND NOT segment_internal._is_triggered(x.rule_id)
              GROUP BY x.subject_id ORDER BY x.subject_id
    LOOP
        -- one generation per subject at a time: the second waits, then sees
        -- what the first made (cool-down and the unique key keep it from
        -- making it twice)
        PERFORM pg_advisory_xact_lock(24175, g.subject_id);
        RETURN QUERY SELECT * FROM segment_internal._generate(g.subject_id, g.ids, as_of);
    END LOOP;
END $$;
