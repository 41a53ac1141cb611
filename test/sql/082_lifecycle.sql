-- Part 82 (sql/install/82-lifecycle.sql): an opportunity's life:
-- generated -> dispatched -> in_progress -> completed, or cancelled, or
-- expired after its last day to act; evaluate_outcomes sets goal_met when
-- the window closes (treatment and control alike); review sums a window of
-- generation dates per rule. Forbidden transitions and bad inputs fail with
-- their SQLSTATE and change nothing.
\i test/fixtures/regress.psql

CREATE TABLE lc_cust (id int8 PRIMARY KEY, bal numeric);
INSERT INTO lc_cust SELECT g, g * 10 FROM generate_series(1, 40) g;
SELECT segment.register_subject('lc', 'lc_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('lc', 'lc_all', 'bal > 0') IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('lc');
SELECT segment.create_opportunity_rule('lc', 'lc_rule', 'lc_all', 'mining', 'fund', assignment => 'pool',
                                       valid_days => 5, holdout_pct => 25, goal => 'bal >= 1000') IS NOT NULL AS created;
-- (which customers are controls depends on the rule id and the day: only
-- the totals are printed)
SELECT generated + control AS made, control > 0 AS some_control FROM segment.generate('lc_rule', current_date);

-- the opportunities of keys 1..4 that are not controls, and one control
CREATE TEMP TABLE lc_o AS
SELECT row_number() OVER (ORDER BY member_id) AS n, opportunity_id AS id
  FROM segment.opportunity o JOIN segment.opportunity_rule r USING (rule_id)
 WHERE r.name = 'lc_rule' AND NOT is_control;
SELECT opportunity_id AS ctl FROM segment.opportunity o JOIN segment.opportunity_rule r USING (rule_id)
 WHERE r.name = 'lc_rule' AND is_control ORDER BY member_id LIMIT 1 \gset
SELECT id AS o1 FROM lc_o WHERE n = 1 \gset
SELECT id AS o2 FROM lc_o WHERE n = 2 \gset
SELECT id AS o3 FROM lc_o WHERE n = 3 \gset
SELECT id AS o4 FROM lc_o WHERE n = 4 \gset

-- the happy path
SELECT segment.opportunity_dispatch(:o1);
SELECT segment.opportunity_start(:o1);
SELECT segment.opportunity_complete(:o1, true, 5000, 'signed');
SELECT segment.opportunity_dispatch(ARRAY[:o2, :o3]);
SELECT segment.opportunity_cancel(:o3, 'customer moved');
CREATE FUNCTION pg_temp.lc_status() RETURNS TABLE (n bigint, status text, converted boolean, amount numeric,
                                                   note text, cancel_reason text, goal_met boolean)
LANGUAGE sql AS $$
    SELECT l.n, o.status, o.converted, o.amount, o.note, o.cancel_reason, o.goal_met
      FROM lc_o l JOIN segment.opportunity o ON o.opportunity_id = l.id WHERE l.n <= 4 ORDER BY l.n
$$;
SELECT * FROM pg_temp.lc_status();
SELECT o.from_status, o.to_status FROM segment.opportunity_log o WHERE o.opportunity_id = :o1 ORDER BY o.log_id;

-- forbidden transitions and bad inputs
SELECT regress.err(format('SELECT segment.opportunity_complete(%s, false)', :o1)) AS complete_completed;
SELECT regress.err(format('SELECT segment.opportunity_start(%s)', :o3)) AS start_cancelled;
SELECT regress.err(format('SELECT segment.opportunity_start(%s)', :o4)) AS start_not_dispatched;
SELECT regress.err(format('SELECT segment.opportunity_dispatch(%s)', :ctl)) AS dispatch_control;
SELECT regress.err(format('SELECT segment.opportunity_complete(%s, NULL)', :o2)) AS converted_null;
SELECT regress.err(format('SELECT segment.opportunity_complete(%s, true, -5)', :o2)) AS negative_amount;
SELECT regress.err(format('SELECT segment.opportunity_complete(%s, false, 10)', :o2)) AS amount_without_conversion;
SELECT regress.err(format('SELECT segment.opportunity_cancel(%s, NULL)', :o2)) AS cancel_without_reason;
SELECT regress.err('SELECT segment.opportunity_dispatch(NULL::bigint)') AS null_id;
SELECT regress.err('SELECT segment.opportunity_dispatch(ARRAY[1, NULL]::bigint[])') AS null_in_array;
SELECT regress.err('SELECT segment.opportunity_dispatch(-1)') AS unknown_id;
SELECT regress.err($$SELECT segment.expire_opportunities('infinity')$$) AS expire_infinity;
SELECT regress.err($$SELECT * FROM segment.review(NULL, current_date)$$) AS review_null;
SELECT regress.err($$SELECT * FROM segment.review('2026-07-01', '2026-06-01')$$) AS review_reversed;
SELECT * FROM pg_temp.lc_status();

-- expire: open ones (controls too) past their last day; valid_days 5 counts
-- the generation day, so the last day is day + 4
SELECT segment.expire_opportunities(current_date + 4) AS expired_on_last_day;
SELECT segment.expire_opportunities(current_date + 5) AS expired_after_it;
SELECT segment.expire_opportunities(current_date + 6) AS expired_again;
SELECT regress.err(format('SELECT segment.opportunity_start(%s)', :o2)) AS start_expired;
SELECT * FROM pg_temp.lc_status();

-- outcomes: goal bal >= 1000 on the current rows, treatment and control
UPDATE lc_cust SET bal = 2000 WHERE id IN (SELECT member_id FROM segment.opportunity WHERE opportunity_id IN (:o1, :ctl));
SELECT segment.evaluate_outcomes(current_date + 10) > 0 AS evaluated;
SELECT * FROM pg_temp.lc_status();
SELECT goal_met FROM segment.opportunity WHERE opportunity_id = :ctl;

-- review of the window
SELECT rule, generated + control AS made, dispatched, executed, cancelled, expired = generated - 2 AS other_expired,
       open, reported_converted, amount, treatment_evaluated = generated AS all_evaluated, treatment_converted,
       control_evaluated = control AS all_controls_evaluated, control_converted
  FROM segment.review(current_date, current_date) WHERE rule = 'lc_rule';

SELECT segment.drop_opportunity_rule('lc_rule', "cascade" => true);
SELECT segment.unregister_subject('lc');
DROP TABLE lc_cust;
