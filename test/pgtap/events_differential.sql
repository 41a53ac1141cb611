-- Differential test of the event path (issue 15 item 4: the audience
-- evaluated within the event's customers, the staff loaded only for rules
-- that assign to managers, the condition read by the C trigger): the same
-- rule, the same customers and the same existing opportunities give the
-- same opportunities (member, period, control flag, owner/org/pool, manager,
-- reason, rendered message, priority, validity), the same generation
-- counters and the same render failures whether batch generate() makes them
-- or events do:
--   * ev_owner: owner assignment with a per-manager capacity that binds,
--     org-unit fallback, an inactive owner, a template (with one value that
--     does not render), a 30 % control group, an audience with "or not"
--     (the universe) - events in ONE multi-row INSERT (one generation, as
--     batch ranks them);
--   * ev_pool: pool assignment, 50 % control, "and not" - one INSERT per
--     customer (a generation per event: the OLTP path, decided by the
--     one-customer path of src/event_fast.c).
-- Then the one-customer path against the existing one (segment.event_fast_path
-- off): the same one-row events, every decision it takes (control, pool,
-- cool-down of 0 and more days, cap, a rendered template, a priority with
-- decimals, a customer without a row), and every case it leaves to the
-- existing path (a template value that does not render, an unknown key, an
-- audience that cannot be evaluated, an owner rule, several customers in
-- one statement, live maintenance's overlay), with the existing path's
-- calls counted to show which path decided.
-- Both see customers in cool-down (an earlier opportunity of the rule) and
-- at the contact cap (two opportunities of another rule in the window).
-- Method: generate() the rule in batch (not attached yet), keep what it
-- made, delete it (the state is as before), attach the rule and insert the
-- events, compare.

\ir ../fixtures/pgtap.psql

select plan(23);
-- _event_fire's calls in this transaction (pg_stat_xact_user_functions):
-- which event statements the one-customer path (src/event_fast.c) left to it
set local track_functions = 'all';

------------------------------------------------------------------------
-- Fixture: 60 customers of subject evd.
--   owner: 201 (ids 1-20), 202 (21-35, inactive), 203 (36-50), none (51-60)
--   org: 1 for ids <= 55, none after; bal: id * 10
--   due: '2026-04-01', except 17: 'garbage' (does not render)
-- Staff: 201, 202 (inactive), 203, 204, 205 - all org 1.
-- Contact policy 2 per 30 days. Period 2026-03-10.
------------------------------------------------------------------------
create schema evd;
create table evd.cust (id int primary key, owner int, org int, bal numeric, name text, due text);
insert into evd.cust
select i,
       case when i <= 20 then 201 when i <= 35 then 202 when i <= 50 then 203 end,
       case when i <= 55 then 1 end,
       i * 10,
       'Customer ' || i,
       case when i = 17 then 'garbage' else '2026-04-01' end
  from generate_series(1, 60) i;
create table evd.staff (mid int primary key, org int, active boolean);
insert into evd.staff values (201, 1, true), (202, 1, false), (203, 1, true), (204, 1, true), (205, 1, true);
select segment.register_subject('evd', 'evd.cust', 'id', org_column => 'org', owner_column => 'owner');
select segment.register_staff('evd', 'evd.staff', 'mid', 'org', active_column => 'active');
select segment.set_contact_policy('evd', 2, 30);
select segment.create_tag('evd', 'evd_rich', 'bal >= 150');
select segment.create_tag('evd', 'evd_org1', 'org = 1');
select count(*) from segment.refresh('evd', '2026-03-10');

select segment.create_opportunity_rule('evd', 'ev_owner', 'evd_rich or not evd_org1', 'mining', 'loan',
           template => '{name|mask}: due {due|date:DD.MM.YYYY}', holdout_pct => 30, capacity => 4,
           priority => 5, valid_days => 3) as owner_rule \gset
select segment.create_opportunity_rule('evd', 'ev_pool', 'evd_rich and not evd_org1 or evd_org1 and not evd_rich',
           'mining', 'card', assignment => 'pool', holdout_pct => 50) as pool_rule \gset
select segment.create_opportunity_rule('evd', 'ev_other', 'evd_org1', 'mining', 'fund') as other_rule \gset
select subject_id as sid from segment.subject where name = 'evd' \gset

-- cool-down: both rules made a lead 10 days ago for every 7th customer;
-- the cap: ev_other made two (5 and 3 days ago) for every 5th
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, assignment, pool_reason)
select v.r, 1, :sid, i, i::text, date '2026-03-10' - v.d, date '2026-03-10' - v.d + 6, false, 'pool', 'test'
  from generate_series(1, 60) i,
       (values (:owner_rule, 10, 7), (:pool_rule, 10, 7), (:other_rule, 5, 5), (:other_rule, 3, 5)) v(r, d, m)
 where i % v.m = 0;

create table evd.ev (ev_id serial primary key, cust_id int, kind text);
set local segment.as_of = '2026-03-10';

-- what is compared: every decision of generation
create temp view made as
select o.rule_id, o.member_id, o.key, o.period, o.valid_until, o.is_control, o.priority, o.message,
       o.org_unit, o.manager, o.assignment, o.pool_reason
  from segment.opportunity o where o.period = '2026-03-10';
create temp view counted as
select g.rule_id, g.candidates, g.generated, g.control, g.skipped_cooldown, g.skipped_cap,
       g.over_capacity, g.failed, g.error
  from segment.generation g where g.period = '2026-03-10';
create temp view failed as
select f.rule_id, f.member_id, f.key, f.sqlstate from segment.generation_failure f where f.period = '2026-03-10';

------------------------------------------------------------------------
-- ev_owner: batch, then one multi-row INSERT of events
------------------------------------------------------------------------
select count(*) from segment.generate('ev_owner', '2026-03-10');
create temp table b_made as select * from made where rule_id = :owner_rule;
create temp table b_counted as select * from counted where rule_id = :owner_rule;
create temp table b_failed as select * from failed where rule_id = :owner_rule;
delete from segment.opportunity where rule_id = :owner_rule and period = '2026-03-10';
delete from segment.generation where rule_id = :owner_rule and period = '2026-03-10';
delete from segment.generation_failure where rule_id = :owner_rule and period = '2026-03-10';

select segment.attach_event_rule('ev_owner', 'evd.ev', 'cust_id', 'kind = ''x''');
-- every customer (some twice, some with an event the condition refuses as
-- well), and an unknown customer, in ascending order as batch ranks them
insert into evd.ev (cust_id, kind)
select i, 'x' from generate_series(1, 60) i
union all select i, 'x' from generate_series(3, 60, 9) i
union all select i, 'y' from generate_series(2, 60, 4) i
union all select 999, 'x';

select ok((select count(*) from b_made) > 20
          and (select count(*) from b_made where is_control) > 0
          and (select count(*) from b_made where assignment = 'owner') > 0
          and (select count(*) from b_made where assignment = 'org') > 0
          and (select count(*) from b_made where assignment = 'pool') > 0
          and (select count(*) from b_failed) = 1
          and (select skipped_cooldown > 0 and skipped_cap > 0 and over_capacity > 0 from b_counted),
          'ev_owner in batch: controls, owner, org and pool leads, a render failure, cool-down, cap and capacity all happen');
select set_eq($$select * from made where rule_id = $$ || :owner_rule,
              $$select * from b_made$$,
              'ev_owner: one INSERT of events makes the opportunities batch generate() makes');
select set_eq($$select * from counted where rule_id = $$ || :owner_rule,
              $$select * from b_counted$$,
              'ev_owner: the same generation counters (candidates, cool-down, cap, capacity, control, failed)');
select set_eq($$select * from failed where rule_id = $$ || :owner_rule,
              $$select * from b_failed$$,
              'ev_owner: the same render failure recorded');
select segment.detach_event_rule('ev_owner', 'evd.ev');

------------------------------------------------------------------------
-- ev_pool: batch, then one INSERT per customer (a generation each)
------------------------------------------------------------------------
select count(*) from segment.generate('ev_pool', '2026-03-10');
create temp table p_made as select * from made where rule_id = :pool_rule;
create temp table p_counted as
select sum(candidates) as candidates, sum(generated) as generated, sum(control) as control,
       sum(skipped_cooldown) as cooldown, sum(skipped_cap) as cap
  from counted where rule_id = :pool_rule;
delete from segment.opportunity where rule_id = :pool_rule and period = '2026-03-10';
delete from segment.generation where rule_id = :pool_rule and period = '2026-03-10';

select segment.attach_event_rule('ev_pool', 'evd.ev', 'cust_id', 'kind = ''x''');
do $$
begin
    for i in 1 .. 60 loop
        insert into evd.ev (cust_id, kind) values (i, 'x');
    end loop;
    insert into evd.ev (cust_id, kind) values (7, 'x');   -- again: in cool-down now
end $$;

select ok((select count(*) from p_made where is_control) > 0
          and (select count(*) from p_made where not is_control) > 0
          and (select cooldown > 0 and cap > 0 from p_counted),
          'ev_pool in batch: controls, leads, cool-down and cap all happen');
select set_eq($$select * from made where rule_id = $$ || :pool_rule,
              $$select * from p_made$$,
              'ev_pool: one INSERT per customer makes the opportunities batch generate() makes');
-- a generation per event statement that reached it: the audience's
-- customers were candidates once each (customer 7 twice, then in cool-down)
select is((select (sum(candidates), sum(generated), sum(control), sum(skipped_cooldown), sum(skipped_cap))::text
             from counted where rule_id = :pool_rule),
          (select (candidates + 1, generated, control, cooldown + 1, cap)::text from p_counted),
          'ev_pool: the per-event counters add up to batch''s (plus the repeated event in cool-down)');
select is((select count(*) from counted where rule_id = :pool_rule and error is not null), 0::bigint,
          'ev_pool: no generation failed');

------------------------------------------------------------------------
-- The one-customer path against the existing path
------------------------------------------------------------------------
-- ev_fast: pool, a template (customer 17 does not render), 30 % control,
-- priority 2.5, cool-down 0 days, the audience "evd_org1 or not evd_org1";
-- ev_gone: pool over a tag never refreshed (its audience fails as a whole)
select segment.create_opportunity_rule('evd', 'ev_fast', 'evd_org1 or not evd_org1', 'mining', 'loan',
           template => '{name|mask}: due {due|date:DD.MM.YYYY}', assignment => 'pool', holdout_pct => 30,
           priority => 2.5, cooldown_days => 0, valid_days => 5) as fast_rule \gset
select segment.create_tag('evd', 'evd_later', 'bal > 100');
select segment.create_opportunity_rule('evd', 'ev_gone', 'evd_later', 'mining', 'loan',
           assignment => 'pool') as gone_rule \gset
-- cool-down for ev_fast: yesterday's lead of customer 13 is outside a
-- 0-day cool-down (one day counts), today's of customer 22 is inside
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, assignment, pool_reason)
values (:fast_rule, 1, :sid, 13, '13', '2026-03-09', '2026-03-12', false, 'pool', 'test'),
       (:fast_rule, 1, :sid, 22, '22', '2026-03-10', '2026-03-12', false, 'pool', 'test');
-- customer 58 is in the universe but its row is gone: a candidate without a lead
delete from evd.cust where id = 58;
-- what the sections above made today by events is not part of what follows
delete from segment.opportunity where period = '2026-03-10' and source <> 'batch';
delete from segment.generation where period = '2026-03-10';
delete from segment.generation_failure where period = '2026-03-10';
delete from segment.event_skip;
create table evd.ev2 (ev_id serial primary key, cust_id int8, kind text);

-- The events of a side: one INSERT per event, as an OLTP writer, then what
-- they made, kept in fast_out under the side's name, and removed
create temp table fast_out (side text, what text, row_text text);
create function pg_temp.run_side(side text, rules int[], multi boolean) returns void
language plpgsql as $$
begin
    perform set_config('segment.event_fast_path', (side = 'fast')::text, true);
    for i in 1 .. 60 loop
        insert into evd.ev2 (cust_id, kind) values (i, 'x');
    end loop;
    insert into evd.ev2 (cust_id, kind) values (7, 'x');      -- again: cool-down
    insert into evd.ev2 (cust_id, kind) values (999, 'x');    -- unknown
    insert into evd.ev2 (cust_id, kind) values (-5, 'x');     -- no member id
    insert into evd.ev2 (cust_id, kind) values (8, 'y');      -- the condition refuses it
    insert into evd.ev2 (cust_id, kind) values (9, 'x'), (9, 'x');   -- one customer, twice
    if multi then
        insert into evd.ev2 (cust_id, kind) values (3, 'x'), (33, 'x');   -- two customers
    end if;
    insert into fast_out
    select side, 'made', (o.rule_id, o.member_id, o.key, o.period, o.valid_until, o.is_control, o.priority,
                          o.message, o.org_unit, o.manager, o.assignment, o.pool_reason, o.source, o.rule_version)::text
      from segment.opportunity o where o.period = '2026-03-10' and o.rule_id = any (rules) and o.source <> 'batch'
    union all
    select side, 'counted', (g.rule_id, g.candidates, g.generated, g.control, g.skipped_cooldown, g.skipped_cap,
                             g.over_capacity, g.failed, g.error, g.period)::text
      from segment.generation g where g.period = '2026-03-10' and g.rule_id = any (rules)
    union all
    select side, 'failed', (f.rule_id, f.member_id, f.key, f.period, f.error, f.sqlstate)::text
      from segment.generation_failure f where f.period = '2026-03-10' and f.rule_id = any (rules)
    union all
    select side, 'skipped', (k.rule_id, k.event_table, k.unknown, k.sample_keys)::text
      from segment.event_skip k where k.rule_id = any (rules);
    delete from segment.opportunity o where o.period = '2026-03-10' and o.rule_id = any (rules) and o.source <> 'batch';
    delete from segment.generation g where g.period = '2026-03-10' and g.rule_id = any (rules);
    delete from segment.generation_failure f where f.period = '2026-03-10' and f.rule_id = any (rules);
    delete from segment.event_skip k where k.rule_id = any (rules);
end $$;
create function pg_temp.fire_calls() returns bigint language sql as $$
    select coalesce(sum(calls), 0)::bigint from pg_stat_xact_user_functions
     where schemaname = 'segment_internal' and funcname = '_event_fire'
$$;

-- ev_fast: fast side, then the existing path
select segment.attach_event_rule('ev_fast', 'evd.ev2', 'cust_id', 'kind = ''x''');
select pg_temp.fire_calls() as calls0 \gset
select pg_temp.run_side('fast', array[:fast_rule], true) \gset
select pg_temp.fire_calls() as calls1 \gset
select pg_temp.run_side('slow', array[:fast_rule], true) \gset
select pg_temp.fire_calls() as calls2 \gset
select segment.detach_event_rule('ev_fast', 'evd.ev2');

select ok((select count(*) from fast_out where side = 'slow' and what = 'made' and row_text like '%,t,%') > 0
          and (select count(*) from fast_out where side = 'slow' and what = 'made' and row_text like '%,f,%') > 0
          and (select count(*) from fast_out where side = 'slow' and what = 'failed') = 1
          and (select count(*) from fast_out where side = 'slow' and what = 'skipped') = 2,
          'ev_fast, existing path: controls, pool leads, a render failure and two skips happen');
select set_eq($$select what, row_text from fast_out where side = 'fast'$$,
              $$select what, row_text from fast_out where side = 'slow'$$,
              'ev_fast: the one-customer path makes what the existing path makes (leads, counters, failure, skips)');
select is((select count(*) from fast_out where side = 'fast' and what = 'counted'),
          (select count(*) from fast_out where side = 'slow' and what = 'counted'),
          'ev_fast: as many generations (one per statement that reached generation)');
-- left to the existing path: customer 17 (its message does not render),
-- 999 and -5 (unknown), the two-customer statement
select is((:calls1 - :calls0)::bigint, 4::bigint,
          'ev_fast: the one-customer path decided every one-customer event but a failed render and the unknown keys');
select is((:calls2 - :calls1)::bigint, 65::bigint, 'ev_fast: with segment.event_fast_path off, _event_fire decides every event statement');
select is((select row_text from fast_out where side = 'fast' and what = 'counted' and row_text like '(%,1,0,0,0,0,0,0,,%' limit 1) is not null,
          true, 'ev_fast: customer 58 (no row) was a candidate and made nothing');
select is((select count(*) from fast_out where side = 'fast' and what = 'made'
            and (row_text like '(' || :fast_rule || ',13,%' or row_text like '(' || :fast_rule || ',22,%')), 1::bigint,
          'ev_fast: a 0-day cool-down skips today''s lead (22) and not yesterday''s (13)');

-- ev_pool through the one-customer path against the existing one
-- (cool-down 30 days, 50 % control, cap)
select segment.attach_event_rule('ev_pool', 'evd.ev2', 'cust_id', 'kind = ''x''');
select pg_temp.run_side('fast', array[:pool_rule], false) \gset
select pg_temp.run_side('slow', array[:pool_rule], false) \gset
select segment.detach_event_rule('ev_pool', 'evd.ev2');
select set_eq($$select what, row_text from fast_out where side = 'fast' and row_text like '(' || $$ || :pool_rule || $$ || ',%'$$,
              $$select what, row_text from fast_out where side = 'slow' and row_text like '(' || $$ || :pool_rule || $$ || ',%'$$,
              'ev_pool: the one-customer path makes what the existing path makes (cool-down, cap, control)');
delete from fast_out;

-- ev_gone: the audience names a tag never refreshed; the rule fails as a
-- whole the existing path's way (a WARNING, the error in segment.generation)
select segment.attach_event_rule('ev_gone', 'evd.ev2', 'cust_id', 'kind = ''x''');
select pg_temp.fire_calls() as calls0 \gset
select pg_temp.run_side('fast', array[:gone_rule], false) \gset
select pg_temp.fire_calls() as calls1 \gset
select pg_temp.run_side('slow', array[:gone_rule], false) \gset
select segment.detach_event_rule('ev_gone', 'evd.ev2');
select ok((select count(*) from fast_out where side = 'slow' and what = 'counted' and row_text like '%refresh%') > 0,
          'ev_gone, existing path: the rule''s error is recorded');
select set_eq($$select what, row_text from fast_out where side = 'fast'$$,
              $$select what, row_text from fast_out where side = 'slow'$$,
              'ev_gone: the same errors recorded whichever path starts');
select is((:calls1 - :calls0)::bigint, 64::bigint, 'ev_gone: every event went to the existing path');
delete from fast_out;

-- ev_owner (owner assignment): left to the existing path
select segment.attach_event_rule('ev_owner', 'evd.ev2', 'cust_id', 'kind = ''x''');
select pg_temp.fire_calls() as calls0 \gset
select pg_temp.run_side('fast', array[:owner_rule], false) \gset
select pg_temp.fire_calls() as calls1 \gset
select pg_temp.run_side('slow', array[:owner_rule], false) \gset
select segment.detach_event_rule('ev_owner', 'evd.ev2');
select set_eq($$select what, row_text from fast_out where side = 'fast'$$,
              $$select what, row_text from fast_out where side = 'slow'$$,
              'ev_owner, one event per statement: the same whichever path starts');
select is((:calls1 - :calls0)::bigint, 64::bigint, 'ev_owner: an owner rule is left to the existing path');
delete from fast_out;

------------------------------------------------------------------------
-- The condition is planned once per backend (src/rule_matches.c): a
-- function it calls, replaced, is the new one at the next event statement
-- (an inlined SQL function's body is part of the plan)
------------------------------------------------------------------------
create function evd.counts(k text) returns boolean language sql immutable as $$ select k = 'x' $$;
select segment.attach_event_rule('ev_fast', 'evd.ev2', 'cust_id', 'evd.counts(kind)');
insert into evd.ev2 (cust_id, kind) values (41, 'x');
create or replace function evd.counts(k text) returns boolean language sql immutable as $$ select k = 'z' $$;
insert into evd.ev2 (cust_id, kind) values (42, 'x');
insert into evd.ev2 (cust_id, kind) values (43, 'z');
select is((select array_agg(o.member_id order by o.member_id) from segment.opportunity o
            where o.rule_id = :fast_rule and o.period = '2026-03-10' and o.source = 'event:evd.ev2'),
          '{41,43}'::int8[], 'the condition follows a replaced function at once (41 and 43 counted, 42 not)');
select is((select count(*) from segment.generation g where g.rule_id = :fast_rule and g.period = '2026-03-10'),
          2::bigint, 'two event statements reached generation');
select segment.detach_event_rule('ev_fast', 'evd.ev2');

select * from finish();
rollback;
