-- segment install script, part 82: the life of an opportunity
-- (docs/opportunity-lifecycle.md). The state machine (opportunity_dispatch,
-- _start, _complete, _cancel, expire_opportunities), every transition logged
-- in segment.opportunity_log; the outcome of each opportunity once its
-- window closes (evaluate_outcomes); and the review: per rule and month,
-- treatment against control with lift, its 95% interval and p-value; per
-- manager, executed, converted and leaked.
--
--   generated --dispatch--> dispatched --start--> in_progress --complete--> completed
--       |                       |                      |
--       +-----------------------+----------------------+--cancel--> cancelled
--       +-----------------------+----------------------+--expire--> expired
--
-- completed, expired and cancelled are final. Control opportunities are
-- never dispatched, started or completed; they can be cancelled or expire.
-- dispatch, start, complete and cancel act only up to the last day to act
-- (valid_until, compared with current_date): after it, the only way out is
-- expire(), so that a missed deadline always shows as a leak.

-- The normal distribution function (src/stats.c, erfc from the C library).
CREATE FUNCTION segment_internal._normal_cdf(x float8) RETURNS float8
    AS 'MODULE_PATHNAME', 'segment_normal_cdf' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment_internal._normal_cdf(float8) IS
    'P(Z <= x) for a standard normal Z (internal: used by the review views)';

-- Locks one opportunity and checks that verb may move it from its status
-- to to_status now; returns the locked row. Errors: 22004 (NULL id), 42704
-- (unknown id), 55000 (wrong status, control, deadline passed).
CREATE FUNCTION segment_internal._lock_for(opportunity_id bigint, verb text, allowed_from text[],
                                  to_status text, control_allowed boolean)
RETURNS segment.opportunity LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    IF opportunity_id IS NULL THEN
        RAISE EXCEPTION 'opportunity_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO o FROM segment.opportunity x WHERE x.opportunity_id = _lock_for.opportunity_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'opportunity % does not exist', opportunity_id
            USING ERRCODE = 'undefined_object',
                  HINT = 'Opportunities are listed in segment.opportunity.';
    END IF;
    IF NOT o.status = ANY (allowed_from) THEN
        RAISE EXCEPTION 'cannot % opportunity %: it is %', verb, opportunity_id, o.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The transition from "%s" to "%s" is not allowed.', o.status, to_status),
                  HINT = CASE
                      WHEN o.status IN ('completed', 'expired', 'cancelled')
                          THEN 'Completed, expired and cancelled opportunities are final.'
                      ELSE format('%s applies to an opportunity that is %s.', verb,
                                  array_to_string(allowed_from, ', ', '') || CASE
                                      WHEN to_status = 'in_progress' THEN ' (dispatch it first)'
                                      WHEN to_status = 'completed' THEN ' (start it first with segment.opportunity_start())'
                                      ELSE '' END)
                  END;
    END IF;
    IF o.is_control AND NOT control_allowed THEN
        RAISE EXCEPTION 'cannot % opportunity %: it is a control opportunity', verb, opportunity_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The transition from "%s" to "%s" is not allowed for the control group.', o.status, to_status),
                  HINT = 'Control opportunities measure what happens without contact: they are never dispatched, started or completed, only cancelled or expired.';
    END IF;
    IF o.valid_until < current_date THEN
        RAISE EXCEPTION 'cannot % opportunity %: its last day to act was %', verb, opportunity_id, o.valid_until
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The transition from "%s" to "%s" is not allowed after valid_until.', o.status, to_status),
                  HINT = 'A missed deadline is closed by segment.expire_opportunities(), which marks the opportunity expired.';
    END IF;
    RETURN o;
END $$;

-- Records one transition of a row already locked and updated.
CREATE FUNCTION segment_internal._log_transition(opportunity_id bigint, from_status text, to_status text, note text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO segment.opportunity_log (opportunity_id, from_status, to_status, changed_at, changed_by, note)
    VALUES (opportunity_id, from_status, to_status, now(), current_user, note);
$$;

CREATE FUNCTION segment.opportunity_dispatch(opportunity_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    o := segment_internal._lock_for(opportunity_id, 'dispatch', '{generated}', 'dispatched', false);
    UPDATE segment.opportunity x SET status = 'dispatched', status_at = now()
     WHERE x.opportunity_id = o.opportunity_id;
    PERFORM segment_internal._log_transition(o.opportunity_id, o.status, 'dispatched', NULL);
END $$;
COMMENT ON FUNCTION segment.opportunity_dispatch(bigint) IS
    'generated -> dispatched (not for control opportunities, not after valid_until)';

-- A batch: all or nothing. Rows are locked in id order (no deadlock between
-- two batches); an id given twice counts once. Returns how many were dispatched.
CREATE FUNCTION segment.opportunity_dispatch(opportunity_ids bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    id bigint;
    n bigint := 0;
BEGIN
    IF opportunity_ids IS NULL THEN
        RAISE EXCEPTION 'opportunity_ids must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF array_position(opportunity_ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'opportunity_ids must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  DETAIL = format('Element %s is NULL.', array_position(opportunity_ids, NULL));
    END IF;
    FOR id IN SELECT DISTINCT u FROM unnest(opportunity_ids) u ORDER BY u LOOP
        PERFORM segment.opportunity_dispatch(id);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION segment.opportunity_dispatch(bigint[]) IS
    'Dispatches every opportunity of the array, or none if one cannot be; returns the count';

CREATE FUNCTION segment.opportunity_start(opportunity_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    o := segment_internal._lock_for(opportunity_id, 'start', '{dispatched}', 'in_progress', false);
    UPDATE segment.opportunity x SET status = 'in_progress', status_at = now()
     WHERE x.opportunity_id = o.opportunity_id;
    PERFORM segment_internal._log_transition(o.opportunity_id, o.status, 'in_progress', NULL);
END $$;
COMMENT ON FUNCTION segment.opportunity_start(bigint) IS
    'dispatched -> in_progress: the manager is working the opportunity';

CREATE FUNCTION segment.opportunity_complete(opportunity_id bigint, converted boolean,
                                 amount numeric DEFAULT NULL, note text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    IF converted IS NULL THEN
        RAISE EXCEPTION 'converted must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Say whether the customer took the product: true or false.';
    END IF;
    IF amount < 0 OR amount IN ('NaN'::numeric, 'Infinity'::numeric) THEN
        RAISE EXCEPTION 'amount must be a finite number, zero or positive, not %', amount
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT converted AND amount <> 0 THEN
        RAISE EXCEPTION 'amount % given for an opportunity that did not convert', amount
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Leave amount NULL (or 0) when converted is false.';
    END IF;
    o := segment_internal._lock_for(opportunity_id, 'complete', '{in_progress}', 'completed', false);
    UPDATE segment.opportunity x
       SET status = 'completed', status_at = now(),
           converted = opportunity_complete.converted, amount = opportunity_complete.amount, note = opportunity_complete.note
     WHERE x.opportunity_id = o.opportunity_id;
    PERFORM segment_internal._log_transition(o.opportunity_id, o.status, 'completed', note);
END $$;
COMMENT ON FUNCTION segment.opportunity_complete(bigint, boolean, numeric, text) IS
    'in_progress -> completed, with the manager''s outcome (converted, amount, note)';

CREATE FUNCTION segment.opportunity_cancel(opportunity_id bigint, reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'a reason is required to cancel an opportunity'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Say why, e.g. segment.opportunity_cancel(42, ''customer asked not to be contacted'').';
    END IF;
    o := segment_internal._lock_for(opportunity_id, 'cancel', '{generated,dispatched,in_progress}', 'cancelled', true);
    UPDATE segment.opportunity x
       SET status = 'cancelled', status_at = now(), cancel_reason = reason
     WHERE x.opportunity_id = o.opportunity_id;
    PERFORM segment_internal._log_transition(o.opportunity_id, o.status, 'cancelled', reason);
END $$;
COMMENT ON FUNCTION segment.opportunity_cancel(bigint, text) IS
    'Any open state -> cancelled, with a reason (control opportunities too; not after valid_until)';

-- Every open opportunity whose last day to act is before as_of becomes
-- expired, control ones included. Safe to run concurrently with the others:
-- rows are locked, and one completed meanwhile is left alone.
CREATE FUNCTION segment.expire_opportunities(as_of date DEFAULT current_date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date, not %', coalesce(as_of::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH due AS (
        SELECT o.opportunity_id, o.status, o.valid_until
          FROM segment.opportunity o
         WHERE o.status IN ('generated', 'dispatched', 'in_progress')
           AND o.valid_until < expire_opportunities.as_of
         ORDER BY o.opportunity_id
           FOR UPDATE
    ), moved AS (
        UPDATE segment.opportunity o SET status = 'expired', status_at = now()
          FROM due
         WHERE o.opportunity_id = due.opportunity_id
        RETURNING due.opportunity_id, due.status AS from_status, due.valid_until
    )
    INSERT INTO segment.opportunity_log (opportunity_id, from_status, to_status, changed_at, changed_by, note)
    SELECT m.opportunity_id, m.from_status, 'expired', now(), current_user,
           format('last day to act %s passed (expire as of %s)', m.valid_until, expire_opportunities.as_of)
      FROM moved m;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
COMMENT ON FUNCTION segment.expire_opportunities(date) IS
    'Open opportunities with valid_until < as_of -> expired; returns how many';

-- For every opportunity whose window has closed (valid_until < as_of) and
-- that has no outcome yet, treatment and control alike: goal_met = the
-- rule's goal IS TRUE on the customer's current row (false when the row is
-- gone), evaluated with segment.as_of() = as_of. A rule without a goal
-- takes the manager's word: goal_met = converted IS TRUE for treatment,
-- NULL for control (nobody reports on control customers). Each opportunity
-- is evaluated once; a rerun finds nothing left to do.
CREATE FUNCTION segment.evaluate_outcomes(as_of date DEFAULT current_date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint;
    total bigint := 0;
    old_as_of text;
    key_expr text;
    opp_key text;
    msg text;
    state text;
BEGIN
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date, not %', coalesce(as_of::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    old_as_of := current_setting('segment.as_of', true);
    PERFORM set_config('segment.as_of', to_char(as_of, 'YYYY-MM-DD'), true);

    FOR r IN
        SELECT ru.rule_id, ru.name, ru.goal, s.relation, s.key_column, s.key_type,
               segment_internal._snapshot_filter(s.subject_id, 't') AS snapshot_filter
          FROM segment.opportunity_rule ru
          JOIN segment.subject s ON s.subject_id = ru.subject_id
         WHERE EXISTS (SELECT 1 FROM segment.opportunity o
                        WHERE o.rule_id = ru.rule_id AND o.valid_until < evaluate_outcomes.as_of
                          AND o.evaluated_at IS NULL)
         ORDER BY ru.rule_id
    LOOP
        IF r.goal IS NULL THEN
            WITH due AS (
                SELECT o.opportunity_id FROM segment.opportunity o
                 WHERE o.rule_id = r.rule_id AND o.valid_until < evaluate_outcomes.as_of
                   AND o.evaluated_at IS NULL
                 ORDER BY o.opportunity_id
                   FOR UPDATE
            )
            UPDATE segment.opportunity o
               SET goal_met = CASE WHEN o.is_control THEN NULL ELSE o.converted IS TRUE END,
                   evaluated_at = now()
              FROM due WHERE o.opportunity_id = due.opportunity_id;
            GET DIAGNOSTICS n = ROW_COUNT;
        ELSE
            -- Integer keys are the member ids; other keys compare as text.
            IF r.key_type IN ('int4'::regtype, 'int8'::regtype) THEN
                key_expr := format('t.%I', r.key_column);
                opp_key := 'member_id';
            ELSIF r.key_type = 'text'::regtype THEN
                key_expr := format('t.%I', r.key_column);
                opp_key := 'key';
            ELSE
                key_expr := format('t.%I::text', r.key_column);
                opp_key := 'key';
            END IF;
            -- The goal runs as its owner (segment_internal._rule_matches) over the
            -- rows of the due customers, which we read with our own rights.
            BEGIN
                EXECUTE format($q$
                    WITH due AS (
                        SELECT o.opportunity_id, o.%1$I AS k FROM segment.opportunity o
                         WHERE o.rule_id = $1 AND o.valid_until < $2 AND o.evaluated_at IS NULL
                         ORDER BY o.opportunity_id
                           FOR UPDATE
                    ), due_rows AS (
                        SELECT array_agg(%2$s) AS keys, array_agg(t) AS rows
                          FROM %3$s t
                         WHERE %2$s IN (SELECT due.k FROM due)%5$s
                    ), met AS (
                        SELECT u.k, u.met
                          FROM due_rows d,
                               unnest(d.keys, segment_internal._rule_matches('goal', $1, %4$L::regclass, d.rows)) AS u(k, met)
                    )
                    UPDATE segment.opportunity o
                       SET goal_met = coalesce(met.met, false), evaluated_at = now()
                      FROM due LEFT JOIN met ON met.k = due.k
                     WHERE o.opportunity_id = due.opportunity_id$q$,
                    opp_key, key_expr, r.relation, r.relation::oid, r.snapshot_filter)
                USING r.rule_id, as_of;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
                RAISE EXCEPTION 'could not evaluate the goal of opportunity rule "%": %', r.name, msg
                    USING ERRCODE = state,
                          DETAIL = format('Goal: %s', r.goal),
                          HINT = 'Fix the goal with segment.alter_opportunity_rule(); nothing was evaluated.';
            END;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;
        total := total + n;
    END LOOP;

    PERFORM set_config('segment.as_of', coalesce(old_as_of, ''), true);
    RETURN total;
END $$;
COMMENT ON FUNCTION segment.evaluate_outcomes(date) IS
    'Sets goal_met for every opportunity whose window closed before as_of and that has no outcome yet; returns how many';

-- The two-proportion comparison of treatment (xt converted of nt) against
-- control (xc of nc): rates, absolute lift with its 95% Wald interval
-- (unpooled standard error), relative lift, and the two-sided p-value of
-- the z-test with the pooled standard error. NULL where undefined.
CREATE FUNCTION segment_internal._two_proportions(xt bigint, nt bigint, xc bigint, nc bigint,
    OUT treatment_rate float8, OUT control_rate float8, OUT lift float8,
    OUT relative_lift float8, OUT lift_low float8, OUT lift_high float8,
    OUT z float8, OUT p_value float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    pt float8;
    pc float8;
    pp float8;
    se float8;
    se0 float8;
BEGIN
    IF nt > 0 THEN pt := xt::float8 / nt; END IF;
    IF nc > 0 THEN pc := xc::float8 / nc; END IF;
    treatment_rate := pt;
    control_rate := pc;
    IF pt IS NULL OR pc IS NULL THEN
        RETURN;
    END IF;
    lift := pt - pc;
    IF pc > 0 THEN relative_lift := pt / pc - 1; END IF;
    se := sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc);
    -- 1.959963984540054 = the 97.5% quantile of the standard normal
    lift_low := lift - 1.959963984540054 * se;
    lift_high := lift + 1.959963984540054 * se;
    pp := (xt + xc)::float8 / (nt + nc);
    se0 := sqrt(pp * (1 - pp) * (1.0 / nt + 1.0 / nc));
    IF se0 > 0 THEN
        z := lift / se0;
        p_value := 2 * segment_internal._normal_cdf(-abs(z));
    END IF;
END $$;

-- One row per opportunity with what the reviews count.
CREATE VIEW segment_internal._opportunity_facts AS
SELECT o.opportunity_id, o.rule_id, o.subject_id, o.period,
       date_trunc('month', o.period)::date AS month,
       o.is_control, o.manager, o.org_unit, o.status,
       (o.status IN ('dispatched', 'in_progress', 'completed')
        OR (o.status IN ('expired', 'cancelled')
            AND EXISTS (SELECT 1 FROM segment.opportunity_log l
                         WHERE l.opportunity_id = o.opportunity_id AND l.to_status = 'dispatched')))
           AS was_dispatched,
       o.converted, o.amount, o.goal_met, o.evaluated_at IS NOT NULL AS evaluated
  FROM segment.opportunity o;

-- Aggregates of the facts per rule over a set of periods (month NULL: all).
CREATE FUNCTION segment_internal._rule_review_rows(from_period date, to_period date, by_month boolean)
RETURNS TABLE (rule name, rule_id int, period date, generated bigint, control bigint,
               dispatched bigint, executed bigint, cancelled bigint, expired bigint,
               open bigint, leak_rate float8, reported_converted bigint, amount numeric,
               treatment_evaluated bigint, treatment_converted bigint,
               control_evaluated bigint, control_converted bigint,
               treatment_rate float8, control_rate float8, lift float8, relative_lift float8,
               lift_low float8, lift_high float8, p_value float8)
LANGUAGE sql STABLE AS $$
    SELECT r.name, a.rule_id, a.month, a.generated, a.control, a.dispatched, a.executed,
           a.cancelled, a.expired, a.open,
           a.expired::float8 / nullif(a.executed + a.expired, 0),
           a.reported_converted, a.amount,
           a.t_n, a.t_x, a.c_n, a.c_x,
           s.treatment_rate, s.control_rate, s.lift, s.relative_lift, s.lift_low, s.lift_high, s.p_value
      FROM (SELECT f.rule_id, CASE WHEN by_month THEN f.month END AS month,
                   count(*) FILTER (WHERE NOT f.is_control) AS generated,
                   count(*) FILTER (WHERE f.is_control) AS control,
                   count(*) FILTER (WHERE NOT f.is_control AND f.was_dispatched) AS dispatched,
                   count(*) FILTER (WHERE NOT f.is_control AND f.status = 'completed') AS executed,
                   count(*) FILTER (WHERE NOT f.is_control AND f.status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE NOT f.is_control AND f.status = 'expired') AS expired,
                   count(*) FILTER (WHERE NOT f.is_control
                                      AND f.status IN ('generated', 'dispatched', 'in_progress')) AS open,
                   count(*) FILTER (WHERE NOT f.is_control AND f.converted) AS reported_converted,
                   sum(f.amount) FILTER (WHERE NOT f.is_control AND f.converted) AS amount,
                   count(*) FILTER (WHERE NOT f.is_control AND f.goal_met IS NOT NULL) AS t_n,
                   count(*) FILTER (WHERE NOT f.is_control AND f.goal_met) AS t_x,
                   count(*) FILTER (WHERE f.is_control AND f.goal_met IS NOT NULL) AS c_n,
                   count(*) FILTER (WHERE f.is_control AND f.goal_met) AS c_x
              FROM segment_internal._opportunity_facts f
             WHERE (from_period IS NULL OR f.period >= from_period)
               AND (to_period IS NULL OR f.period <= to_period)
             GROUP BY 1, 2) a
      JOIN segment.opportunity_rule r ON r.rule_id = a.rule_id
     CROSS JOIN LATERAL segment_internal._two_proportions(a.t_x, a.t_n, a.c_x, a.c_n) s
$$;

-- Per rule and calendar month of generation (opportunity.period).
CREATE VIEW segment.rule_review AS
SELECT * FROM segment_internal._rule_review_rows(NULL, NULL, true);
COMMENT ON VIEW segment.rule_review IS
    'Per opportunity rule and month of generation: funnel, leak rate, treatment against control conversion, lift, 95% interval, p-value';

-- The same for any window of generation dates (inclusive), one row per rule.
CREATE FUNCTION segment.review(from_period date, to_period date)
RETURNS TABLE (rule name, rule_id int, period_from date, period_to date, generated bigint,
               control bigint, dispatched bigint, executed bigint, cancelled bigint,
               expired bigint, open bigint, leak_rate float8, reported_converted bigint,
               amount numeric, treatment_evaluated bigint, treatment_converted bigint,
               control_evaluated bigint, control_converted bigint,
               treatment_rate float8, control_rate float8, lift float8, relative_lift float8,
               lift_low float8, lift_high float8, p_value float8)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF from_period IS NULL OR to_period IS NULL THEN
        RAISE EXCEPTION 'from_period and to_period must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF from_period > to_period THEN
        RAISE EXCEPTION 'from_period % is after to_period %', from_period, to_period
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT x.rule, x.rule_id, review.from_period, review.to_period, x.generated, x.control,
           x.dispatched, x.executed, x.cancelled, x.expired, x.open, x.leak_rate,
           x.reported_converted, x.amount, x.treatment_evaluated, x.treatment_converted,
           x.control_evaluated, x.control_converted, x.treatment_rate, x.control_rate,
           x.lift, x.relative_lift, x.lift_low, x.lift_high, x.p_value
      FROM segment_internal._rule_review_rows(review.from_period, review.to_period, false) x
     ORDER BY x.rule;
END $$;
COMMENT ON FUNCTION segment.review(date, date) IS
    'segment.rule_review over the opportunities generated from from_period to to_period (inclusive), one row per rule';

-- Per manager and month: the treatment opportunities assigned to them. The
-- unassigned pool is the row with manager NULL.
CREATE VIEW segment.manager_review AS
SELECT f.manager, f.month AS period,
       count(*) AS assigned,
       count(*) FILTER (WHERE f.was_dispatched) AS dispatched,
       count(*) FILTER (WHERE f.status = 'completed') AS executed,
       count(*) FILTER (WHERE f.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE f.status = 'expired') AS expired,
       count(*) FILTER (WHERE f.status IN ('generated', 'dispatched', 'in_progress')) AS open,
       count(*) FILTER (WHERE f.status = 'expired')::float8
           / nullif(count(*) FILTER (WHERE f.status IN ('completed', 'expired')), 0) AS leak_rate,
       count(*) FILTER (WHERE f.converted) AS reported_converted,
       count(*) FILTER (WHERE f.converted)::float8
           / nullif(count(*) FILTER (WHERE f.status = 'completed'), 0) AS reported_conversion_rate,
       sum(f.amount) FILTER (WHERE f.converted) AS amount,
       count(*) FILTER (WHERE f.goal_met IS NOT NULL) AS evaluated,
       count(*) FILTER (WHERE f.goal_met) AS goal_met,
       count(*) FILTER (WHERE f.goal_met)::float8
           / nullif(count(*) FILTER (WHERE f.goal_met IS NOT NULL), 0) AS goal_rate
  FROM segment_internal._opportunity_facts f
 WHERE NOT f.is_control
 GROUP BY f.manager, f.month;
COMMENT ON VIEW segment.manager_review IS
    'Per manager (NULL: the pool) and month of generation: assigned, dispatched, executed, expired, leak rate, converted';
