-- Opportunity outcomes and review, behaviour:
-- * evaluate_outcomes(as_of) sets goal_met = (goal) IS TRUE on the
--   customer's current row for every opportunity whose window closed
--   (valid_until < as_of), treatment and control alike; NULL goal values and
--   customers gone from the table give false; valid_until = as_of is not yet
--   closed; a rerun changes nothing; goals see segment.as_of() = as_of and
--   the setting is put back; customer columns named like opportunity
--   columns (key, amount, status) do not clash; text keys; a rule without a
--   goal takes the manager's converted flag (control: NULL); a goal that
--   fails at run time names the rule and evaluates nothing.
-- * the statistics: normal CDF, and treatment 120/1000 against control
--   80/1000 checked against numbers computed by hand (below).
-- * rule_review, review() and manager_review on a fixture of 2010
--   opportunities whose every count is derived by hand in the comments.

\ir ../fixtures/pgtap.psql

select plan(42);

create schema oc;
-- key, amount and status are also column names of segment.opportunity
create table oc.c (id int8 primary key, bal numeric, matures date, key text, amount int, status text);
insert into oc.c values
    (1, 200000, '2026-03-15', 'k1', 1, 'x'),
    (2, 50,     '2026-03-01', 'k2', 1, 'x'),
    (3, null,   null,         'k3', 1, 'x'),
    (5, 300000, '2026-03-15', 'k5', 1, 'x'),
    (6, 10,     '2026-03-15', 'k6', 1, 'x');     -- customer 4 has left the table
create table oc.t (k text primary key, bal numeric);
insert into oc.t values ('a', 5), ('b', 0);
select segment.register_subject('oc', 'oc.c', 'id') \g /dev/null
select segment.register_subject('oct', 'oc.t', 'k') \g /dev/null

create function oc.rule(subject name, rname name, goal text) returns int language sql as $$
    insert into segment.opportunity_rule (subject_id, name, audience, kind, product, channel,
                                          valid_days, cooldown_days, holdout_pct, goal, assignment)
    select s.subject_id, rname, 'x', 'mining', 'deposit', 'manager', 7, 30, 10, goal, 'owner'
      from segment.subject s where s.name = subject
    returning rule_id
$$;
create function oc.opp(rname name, member int8, k text, until date, ctl boolean,
                       st text default 'generated', conv boolean default null) returns bigint language sql as $$
    insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period,
                                     valid_until, is_control, manager, assignment, status, converted)
    select r.rule_id, 1, r.subject_id, member, k, until - 6, until, ctl,
           case when ctl then null else 'mgr' end, case when ctl then 'control' else 'owner' end, st, conv
      from segment.opportunity_rule r where r.name = rname
    returning opportunity_id
$$;
create function oc.met(rname name) returns text language sql as $$
    select string_agg(o.key || '=' || coalesce(o.goal_met::text, 'null'), ' ' order by o.opportunity_id)
      from segment.opportunity o join segment.opportunity_rule r using (rule_id)
     where r.name = rname and o.evaluated_at is not null
$$;
create function oc.err(sql text) returns text language plpgsql as $$
declare st text; msg text;
begin
    execute sql;
    return 'ok';
exception when others then
    get stacked diagnostics st = returned_sqlstate, msg = message_text;
    return st || '|' || msg;
end $$;

select oc.rule('oc', 'oc_goal', 'bal >= 100000 and key is not null and amount = 1 and status = ''x''') \g /dev/null
select oc.rule('oc', 'oc_asof', 'matures > segment.as_of()') \g /dev/null
select oc.rule('oc', 'oc_none', null) \g /dev/null
select oc.rule('oct', 'oc_text', 'bal > 0') \g /dev/null

-- oc_goal: window 2026-03-03 .. 2026-03-09, closed at as_of 2026-03-10
select oc.opp('oc_goal', m, m::text, '2026-03-09', m >= 5) from generate_series(1, 6) m \g /dev/null
-- ... and one whose last day is as_of itself: not closed yet
select oc.opp('oc_goal', 1, 'late1', '2026-03-10', false) \g /dev/null
select oc.opp('oc_asof', m, m::text, '2026-03-09', false) from unnest(array[1, 2, 3]) m \g /dev/null
select oc.opp('oc_none', 1, 'yes', '2026-03-09', false, 'completed', true) \g /dev/null
select oc.opp('oc_none', 2, 'no', '2026-03-09', false, 'completed', false) \g /dev/null
select oc.opp('oc_none', 3, 'leaked', '2026-03-09', false, 'expired') \g /dev/null
select oc.opp('oc_none', 5, 'ctl', '2026-03-09', true, 'expired') \g /dev/null
select oc.opp('oc_text', m, k, '2026-03-09', false) from (values (1, 'a'), (2, 'b'), (3, 'zz')) v(m, k) \g /dev/null

set local segment.as_of = '';
select is(segment.evaluate_outcomes('2026-03-10'), 16::bigint, 'evaluate_outcomes: 6 + 3 + 4 + 3 closed windows');
select is(oc.met('oc_goal'), '1=true 2=false 3=false 4=false 5=true 6=false',
          'goal on the current row: true; false; NULL value -> false; customer gone -> false; control evaluated too');
select ok((select goal_met is null and evaluated_at is null from segment.opportunity where key = 'late1'),
          'valid_until = as_of: window not closed, not evaluated');
select is(oc.met('oc_asof'), '1=true 2=false 3=false', 'the goal sees segment.as_of() = as_of (2026-03-15 > 2026-03-10)');
select is(current_setting('segment.as_of'), '', 'segment.as_of is put back afterwards');
select is(oc.met('oc_none'), 'yes=true no=false leaked=false ctl=null',
          'no goal: the manager''s converted flag; not completed -> false; control -> NULL');
select is(oc.met('oc_text'), 'a=true b=false zz=false', 'text keys: joined on the key');

create temp table snap as select opportunity_id, goal_met, evaluated_at from segment.opportunity;
update oc.c set bal = 0 where id = 1;
select is(segment.evaluate_outcomes('2026-03-10'), 0::bigint, 'rerun: nothing left to evaluate');
select ok((select bool_and(s.goal_met is not distinct from o.goal_met and s.evaluated_at is not distinct from o.evaluated_at)
             from snap s join segment.opportunity o using (opportunity_id)),
          'rerun: outcomes unchanged even though the data changed (evaluated once)');
select is(segment.evaluate_outcomes('2026-03-11'), 1::bigint, 'a day later the last one is evaluated');
select is((select goal_met from segment.opportunity where key = 'late1'), false, '... on the current row (bal is now 0)');

-- A goal that fails at run time: named, and nothing evaluated (the good rule either).
select oc.rule('oc', 'oc_bad', 'bal / 0 > 1') \g /dev/null
select oc.opp('oc_bad', 1, 'bad1', '2026-04-09', false) \g /dev/null
select oc.opp('oc_goal', 2, 'good2', '2026-04-09', false) \g /dev/null
select is(oc.err('select segment.evaluate_outcomes(''2026-04-10'')'),
          '22012|could not evaluate the goal of opportunity rule "oc_bad": division by zero',
          'a failing goal: its SQLSTATE, the rule named');
select ok((select bool_and(evaluated_at is null) from segment.opportunity where key in ('bad1', 'good2')),
          '... and nothing was evaluated');
update segment.opportunity_rule set goal = 'bal > 1' where name = 'oc_bad';
select is(segment.evaluate_outcomes('2026-04-10'), 2::bigint, 'fixed goal: both evaluated');
select is(split_part(oc.err('select segment.evaluate_outcomes(null)'), '|', 1), '22023', 'evaluate_outcomes(NULL): 22023');

-- Statistics.
select is(segment_internal._normal_cdf(0), 0.5::float8, 'Phi(0) = 0.5');
select ok(abs(segment_internal._normal_cdf(1.959963984540054) - 0.975) < 1e-12, 'Phi(1.95996...) = 0.975');
-- Phi(-8) = 6.220960574271819e-16: a tail that 1 - Phi(8) would lose entirely
select ok(abs(segment_internal._normal_cdf(-8) / 6.220960574271819e-16 - 1) < 1e-9, 'Phi(-8) with full relative precision');
select ok(abs(segment_internal._normal_cdf(8) - 1) < 1e-15, 'Phi(8) = 1');

-- Treatment 120/1000, control 80/1000, by hand:
--   pt = 0.12, pc = 0.08, lift = 0.04, relative lift = 0.12/0.08 - 1 = 0.5
--   unpooled se = sqrt(0.12*0.88/1000 + 0.08*0.92/1000) = sqrt(0.0001792) = 0.0133865604245
--   95% CI = 0.04 -+ 1.959963984540054 * 0.0133865604245 = [0.0137628236910, 0.0662371763090]
--   pooled p = 200/2000 = 0.1, se0 = sqrt(0.1*0.9*(2/1000)) = sqrt(0.00018) = 0.0134164078650
--   z = 0.04 / 0.0134164078650 = 2.98142396999972
--   p-value = 2 * (1 - Phi(2.98142397)) = erfc(2.98142397 / sqrt 2) = 0.00286911279208
select ok(abs(s.treatment_rate - 0.12) < 1e-9 and abs(s.control_rate - 0.08) < 1e-9
          and abs(s.lift - 0.04) < 1e-9 and abs(s.relative_lift - 0.5) < 1e-9, '120/1000 vs 80/1000: rates and lifts')
  from segment_internal._two_proportions(120, 1000, 80, 1000) s;
select ok(abs(s.lift_low - 0.0137628236910) < 1e-6 and abs(s.lift_high - 0.0662371763090) < 1e-6, '... 95% Wald interval')
  from segment_internal._two_proportions(120, 1000, 80, 1000) s;
select ok(abs(s.z - 2.98142396999972) < 1e-6 and abs(s.p_value - 0.00286911279208) < 1e-6, '... z and two-sided p-value (pooled)')
  from segment_internal._two_proportions(120, 1000, 80, 1000) s;
-- Undefined quantities are NULL, never a division error.
select is((select row(s.lift, s.relative_lift, s.p_value is not null)::text from segment_internal._two_proportions(3, 10, 0, 10) s),
          row(0.3::float8, null::float8, true)::text, 'control rate 0: relative lift NULL, the rest defined');
select is((select row(s.lift, s.lift_low, s.lift_high, s.p_value)::text from segment_internal._two_proportions(0, 10, 0, 10) s),
          row(0::float8, 0::float8, 0::float8, null::float8)::text, 'no conversion at all: lift 0, interval [0, 0], p-value NULL');
select is((select row(s.treatment_rate, s.control_rate, s.lift, s.p_value)::text from segment_internal._two_proportions(0, 0, 2, 10) s),
          row(null::float8, 0.2::float8, null::float8, null::float8)::text, 'no treatment evaluated: NULL rate and lift');

-- Review fixture, rule oc_ab, treatment i = 1..1000, control i = 1001..2000,
-- generated in February 2026 (period 2026-02-01 + i % 28):
--   treatment status by i % 10: 0-4 completed (500), 5-6 expired (200; the
--   i % 10 = 5 ones had been dispatched first: a log row), 7 cancelled (100),
--   8 dispatched (100), 9 generated (100).
--   dispatched = 500 completed + 100 expired after dispatch + 100 dispatched = 700
--   leak rate = expired / (completed + expired) = 200 / 700 = 0.285714285714
--   converted (manager) = i % 10 = 0: 100, amount 1000 each = 100000
--   goal_met: treatment i <= 120 (120/1000), control i - 1000 <= 80 (80/1000)
--   manager: even i mgr_a, odd i mgr_b:
--     mgr_a: assigned 500, completed (0,2,4) 300, expired (6) 100 never dispatched,
--            dispatched 300 + 100 (status 8) = 400, cancelled 0, open (8) 100,
--            leak 100/400 = 0.25, converted 100 (rate 100/300), goal 60/500 = 0.12
--     mgr_b: assigned 500, completed (1,3) 200, expired (5) 100 after dispatch,
--            dispatched 200 + 100 = 300, cancelled (7) 100, open (9) 100,
--            leak 100/300, converted 0 (rate 0), goal 60/500 = 0.12
-- plus 10 treatment opportunities generated in March, still open, not evaluated.
select oc.rule('oc', 'oc_ab', 'true') \g /dev/null
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, manager, assignment, status, converted, amount, goal_met, evaluated_at)
select r.rule_id, 1, r.subject_id, i, i::text, date '2026-02-01' + i % 28, date '2026-02-01' + i % 28 + 6,
       i > 1000,
       case when i > 1000 then null when i % 2 = 0 then 'mgr_a' else 'mgr_b' end,
       case when i > 1000 then 'control' else 'owner' end,
       case when i > 1000 then 'expired'
            when i % 10 <= 4 then 'completed' when i % 10 <= 6 then 'expired'
            when i % 10 = 7 then 'cancelled' when i % 10 = 8 then 'dispatched' else 'generated' end,
       case when i <= 1000 and i % 10 <= 4 then i % 10 = 0 end,
       case when i <= 1000 and i % 10 = 0 then 1000 end,
       case when i <= 1000 then i <= 120 else i - 1000 <= 80 end,
       now()
  from segment.opportunity_rule r, generate_series(1, 2000) i where r.name = 'oc_ab';
insert into segment.opportunity_log (opportunity_id, from_status, to_status)
select o.opportunity_id, s, t
  from segment.opportunity o join segment.opportunity_rule r using (rule_id),
       (values ('generated', 'dispatched'), ('dispatched', 'expired')) v(s, t)
 where r.name = 'oc_ab' and o.member_id <= 1000 and o.member_id % 10 = 5;
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, manager, assignment)
select r.rule_id, 1, r.subject_id, i, i::text, '2026-03-05', '2026-03-11', false, 'mgr_a', 'owner'
  from segment.opportunity_rule r, generate_series(3001, 3010) i where r.name = 'oc_ab';

select is((select count(*) from segment.rule_review where rule = 'oc_ab'), 2::bigint, 'rule_review: one row per month');
select is((select row(period, generated, control, dispatched, executed, cancelled, expired, open,
                      reported_converted, amount, treatment_evaluated, treatment_converted,
                      control_evaluated, control_converted)::text
             from segment.rule_review where rule = 'oc_ab' and period = '2026-02-01'),
          row('2026-02-01'::date, 1000, 1000, 700, 500, 100, 200, 200, 100, 100000::numeric, 1000, 120, 1000, 80)::text,
          'rule_review February: the funnel counted by hand');
select ok((select abs(leak_rate - 200.0 / 700) < 1e-9 from segment.rule_review where rule = 'oc_ab' and period = '2026-02-01'),
          'leak rate 200/700');
select ok((select abs(treatment_rate - 0.12) < 1e-9 and abs(control_rate - 0.08) < 1e-9 and abs(lift - 0.04) < 1e-9
                  and abs(relative_lift - 0.5) < 1e-9
             from segment.rule_review where rule = 'oc_ab' and period = '2026-02-01'), 'conversion and lift');
select ok((select abs(lift_low - 0.0137628236910) < 1e-6 and abs(lift_high - 0.0662371763090) < 1e-6
                  and abs(p_value - 0.00286911279208) < 1e-6
             from segment.rule_review where rule = 'oc_ab' and period = '2026-02-01'), 'interval and p-value as by hand');
select is((select row(generated, control, dispatched, executed, open, leak_rate, treatment_rate, control_rate, lift,
                      lift_low, p_value)::text
             from segment.rule_review where rule = 'oc_ab' and period = '2026-03-01'),
          row(10, 0, 0, 0, 10, null::float8, null::float8, null::float8, null::float8, null::float8, null::float8)::text,
          'rule_review March: zero denominators give NULL');

select is((select row(period_from, period_to, generated, control, executed, open, treatment_evaluated)::text
             from segment.review('2026-02-01', '2026-03-31') where rule = 'oc_ab'),
          row('2026-02-01'::date, '2026-03-31'::date, 1010, 1000, 500, 210, 1000)::text, 'review() over both months');
-- 2026-02-01 .. 2026-02-07 holds periods of i % 28 in 0..6: 7 of 28 residues;
-- 1000 = 35*28 + 20, residues 1..20 get 36 values, the others 35:
-- residues 0..6 -> 35 + 6*36 = 251 treatment
select is((select generated from segment.review('2026-02-01', '2026-02-07') where rule = 'oc_ab'), 251::bigint,
          'review() of one week counts its periods only');
select is((select count(*) from segment.review('2027-01-01', '2027-01-31')), 0::bigint, 'review() of an empty window: no rows');
select is(split_part(oc.err('select * from segment.review(null, ''2026-01-01'')'), '|', 1), '22004', 'review(NULL, ...): 22004');
select is(split_part(oc.err('select * from segment.review(''2026-02-01'', ''2026-01-01'')'), '|', 1), '22023', 'review(from > to): 22023');

delete from segment.opportunity o using segment.opportunity_rule r where o.rule_id = r.rule_id and r.name <> 'oc_ab';
select is((select row(assigned, dispatched, executed, cancelled, expired, open, reported_converted, evaluated, goal_met)::text
             from segment.manager_review where manager = 'mgr_a' and period = '2026-02-01'),
          row(500, 400, 300, 0, 100, 100, 100, 500, 60)::text, 'manager_review mgr_a');
select ok((select abs(leak_rate - 0.25) < 1e-9 and abs(reported_conversion_rate - 100.0 / 300) < 1e-9
                  and abs(goal_rate - 0.12) < 1e-9
             from segment.manager_review where manager = 'mgr_a' and period = '2026-02-01'), 'mgr_a rates');
select is((select row(assigned, dispatched, executed, cancelled, expired, open, reported_converted, evaluated, goal_met)::text
             from segment.manager_review where manager = 'mgr_b' and period = '2026-02-01'),
          row(500, 300, 200, 100, 100, 100, 0, 500, 60)::text, 'manager_review mgr_b');
select ok((select abs(leak_rate - 100.0 / 300) < 1e-9 and reported_conversion_rate = 0 and abs(goal_rate - 0.12) < 1e-9
             from segment.manager_review where manager = 'mgr_b' and period = '2026-02-01'), 'mgr_b rates');
select is((select row(assigned, open, leak_rate, reported_conversion_rate, goal_rate)::text
             from segment.manager_review where manager = 'mgr_a' and period = '2026-03-01'),
          row(10, 10, null::float8, null::float8, null::float8)::text, 'manager_review: zero denominators give NULL');
select is((select count(*) from segment.manager_review where manager is null), 0::bigint,
          'control opportunities are not in manager_review');

select * from finish();
rollback;
