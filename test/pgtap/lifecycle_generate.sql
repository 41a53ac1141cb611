-- Opportunity lifecycle on opportunities made by segment.generate() (the
-- lead's rules and generation, issue 4 parts 1-6): the control group that
-- generate() sets aside cannot be worked; the treatment can go the whole way;
-- expire and evaluate_outcomes close the period; rule_review counts exactly
-- what generate() reported, and manager_review what each manager got.

\ir ../fixtures/pgtap.psql

select plan(11);

create schema lg;
create table lg.c (id int8 primary key, branch text, manager text, bal numeric);
insert into lg.c select n, 'b' || n % 2, 'm' || n % 2, n * 100 from generate_series(1, 400) n;
create table lg.staff (manager text primary key, branch text, cap int, active boolean);
insert into lg.staff values ('m0', 'b0', 1000, true), ('m1', 'b1', 1000, true);
select segment.register_subject('lg', 'lg.c', 'id', org_column => 'branch', owner_column => 'manager') \g /dev/null
select segment.register_staff('lg', 'lg.staff', 'manager', 'branch', 'cap', 'active') \g /dev/null
select segment.create_tag('lg', 'lg_all', 'bal > 0') \g /dev/null
select count(*) from segment.refresh('lg') \g /dev/null
select segment.create_opportunity_rule('lg', 'lg_rule', audience => 'lg_all', kind => 'mining', product => 'fund',
                                       valid_days => 3, holdout_pct => 25, goal => 'bal >= 20000') \g /dev/null
create temp table gen as select * from segment.generate('lg_rule', current_date);

select ok((select generated > 0 and control > 0 and generated + control = 400 from gen),
          'generate made treatment and control opportunities');
select is((select count(*) from segment.opportunity where is_control), (select control from gen),
          'control opportunities recorded');
select throws_ok(format('select segment.opportunity_dispatch(%s::bigint)',
                        (select min(opportunity_id) from segment.opportunity where is_control)),
                 '55000', null, 'a generated control opportunity cannot be dispatched');
select is(segment.opportunity_dispatch((select array_agg(opportunity_id) from segment.opportunity where not is_control)),
          (select generated from gen), 'every treatment opportunity dispatched in one batch');
select is((select count(*) from segment.opportunity where not is_control and status = 'dispatched'),
          (select generated from gen), '... all dispatched');
-- m0's customers: started and completed, converted when even id % 4 = 0
select count(segment.opportunity_start(opportunity_id)) from segment.opportunity where manager = 'm0' \g /dev/null
select count(segment.opportunity_complete(opportunity_id, member_id % 4 = 0)) from segment.opportunity where manager = 'm0' \g /dev/null
select is(segment.expire_opportunities(current_date + 3), (select count(*) from segment.opportunity where status <> 'completed'),
          'expire after the window: every opportunity not completed (m1''s and control)');
select is(segment.evaluate_outcomes(current_date + 3), 400::bigint, 'evaluate_outcomes: all 400, control included');
-- goal: bal >= 20000, i.e. id >= 200
select is((select count(*) from segment.opportunity where goal_met), 201::bigint, 'goal_met = id >= 200 (201 customers)');
select is((select row(generated, control, dispatched, executed, treatment_evaluated, control_evaluated)::text
             from segment.rule_review where rule = 'lg_rule'),
          (select row(g.generated, g.control, g.generated,
                      (select count(*) from segment.opportunity where manager = 'm0'), g.generated, g.control)::text from gen g),
          'rule_review counts what generate() reported');
select ok((select abs(lift - ((select avg(goal_met::int) from segment.opportunity where not is_control)
                             - (select avg(goal_met::int) from segment.opportunity where is_control))::float8) < 1e-12
             from segment.rule_review where rule = 'lg_rule'), 'lift = treatment rate - control rate');
select is((select string_agg(manager || ':' || executed || '/' || expired, ' ' order by manager) from segment.manager_review),
          (select string_agg(manager || ':' || case when manager = 'm0' then n || '/0' else '0/' || n end, ' ' order by manager)
             from (select manager, count(*) n from segment.opportunity where not is_control group by manager) x),
          'manager_review: m0 executed all, m1 leaked all');

select * from finish();
rollback;
