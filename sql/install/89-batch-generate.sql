-- segment install script, part 89: batch generation, segment.generate.
-- Late on purpose: a batch run leaves alone the rules that something else
-- makes leads for, and those are attached by later features than
-- generation (part 84): event and entry rules (tables of part 80, attached
-- in part 85) and journeys' escalations (part 87). _is_triggered reads
-- their tables, so it and its caller come after all of them
-- (docs/architecture.md#sql-install-parts).

-- Whether a rule is made by events, audience entries or a journey's
-- escalation only: batch generate() with no rule name skips it (its audience
-- is who MAY get the lead when the event happens, not who gets it every
-- day).
CREATE FUNCTION segment_internal._is_triggered(rule_id int) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM segment.event_rule e WHERE e.rule_id = _is_triggered.rule_id)
        OR EXISTS (SELECT 1 FROM segment.entry_rule e WHERE e.rule_id = _is_triggered.rule_id)
        OR EXISTS (SELECT 1 FROM segment.journey_escalation e WHERE e.rule_id = _is_triggered.rule_id)
$$;

CREATE FUNCTION segment.generate(rule name DEFAULT NULL, as_of date DEFAULT current_date)
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
COMMENT ON FUNCTION segment.generate(name, date) IS
    'generates the opportunities of one rule (NULL: every active rule) for a day; idempotent';
