-- Opportunity rules and generation, on fixtures whose right answers are
-- worked out by hand in the comments:
--   * assignment: owner within capacity, else the least-loaded active
--     manager of the org unit, else the pool with its reason;
--   * cool-down (both directions in time), idempotent reruns;
--   * contact cap across rules, higher priority wins;
--   * control share within binomial tolerance on 100,000 candidates, and
--     the same members on a rerun;
--   * templates: masking, formats, NULLs, unicode, a value that does not
--     render (recorded, the others generated);
--   * bad parameters fail with their SQLSTATE and change nothing.

\ir ../fixtures/pgtap.psql

select plan(79);

------------------------------------------------------------------------
-- Fixture 1: assignment. 20 customers, all in the audience, same priority
-- (so candidates are taken in key order).
--   ids 1-6   owner 101 (org 1, capacity 3, active)
--   ids 7-10  owner 102 (org 1, inactive)
--   ids 11-14 no owner, org 1
--   ids 15-16 no owner, org 2 (its only manager is inactive)
--   ids 17-18 no owner, no org
--   ids 19-20 owner 103 (org 1, capacity 5, active)
-- Staff: 101 org1 cap3, 102 org1 cap5 inactive, 103 org1 cap5, 104 org1 cap4,
--        105 org2 cap5 inactive.
-- Owner pass: 1,2,3 -> 101 (full); 4,5,6 stay; 19,20 -> 103 (load 2).
-- Org 1 pass, candidates 4..14 in key order; free slots (load after, manager):
--   104: 1,2,3,4   103: 3,4,5   101: none
--   sorted: (1,104) (2,104) (3,103) (3,104) (4,103) (4,104) (5,103)
--   4->104 5->104 6->103 7->104 8->103 9->104 10->103; 11..14 pool (capacity)
-- 15,16: pool, no active manager; 17,18: pool, no owner and no org unit.
------------------------------------------------------------------------
create schema ofx;
create table ofx.cust (id int primary key, owner int, org int, name text, mobile text,
                       email text, bal numeric, due text, seg text);
insert into ofx.cust (id, owner, org, seg)
select i,
       case when i <= 6 then 101 when i <= 10 then 102 when i >= 19 then 103 end,
       case when i <= 14 or i >= 19 then 1 when i <= 16 then 2 end,
       case when i % 2 = 0 then 'a' else 'b' end
from generate_series(1, 20) i;
create table ofx.staff (mid int primary key, org int, cap int, active boolean);
insert into ofx.staff values (101, 1, 3, true), (102, 1, 5, false), (103, 1, 5, true),
                             (104, 1, 4, true), (105, 2, 5, false);

select segment.register_subject('ofx', 'ofx.cust', 'id', org_column => 'org', owner_column => 'owner');
select segment.create_tag('ofx', 'ofx_all', 'id > 0');
select segment.create_tag('ofx', 'ofx_even', 'seg = ''a''');
select count(*) from segment.refresh('ofx', '2026-01-10');

-- bad parameters first, while the catalog is empty of rules
create temp table before_bad as
select (select count(*) from segment.opportunity_rule) as rules,
       (select count(*) from segment.opportunity_rule_history) as hist;

select throws_ok($$select segment.create_opportunity_rule('ofx', 'fx_assign', 'ofx_all', 'mining', 'p')$$,
                 '55000', null, 'assignment owner without a staff table is refused');
select segment.register_staff('ofx', 'ofx.staff', 'mid', 'org', 'cap', 'active');

select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'upsell', 'p')$$,
                 '22023', null, 'kind must be maintenance or mining');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', holdout_pct => 60)$$,
                 '22023', null, 'holdout_pct above 50 is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', holdout_pct => -1)$$,
                 '22023', null, 'negative holdout_pct is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', valid_days => 0)$$,
                 '22023', null, 'valid_days 0 is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', cooldown_days => -3)$$,
                 '22023', null, 'negative cooldown is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', assignment => 'random')$$,
                 '22023', null, 'unknown assignment policy is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', capacity => -1)$$,
                 '22023', null, 'negative capacity is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', priority => 'NaN')$$,
                 '22023', null, 'NaN priority is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', priority_scorecard => 'nope')$$,
                 '42704', null, 'unknown priority scorecard is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all and nosuch', 'mining', 'p')$$,
                 '42704', null, 'an audience naming an unknown tag is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', '')$$,
                 '22004', null, 'empty product is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', goal => 'nosuch > 1')$$,
                 '42703', null, 'a goal naming an unknown column is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', goal => 'bal + 1')$$,
                 '42804', null, 'a goal that is not boolean is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', template => 'hi {nosuch}')$$,
                 '42703', null, 'an unknown placeholder is refused at creation');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', template => 'hi {name|shout}')$$,
                 '22023', null, 'an unknown format is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', template => 'hi {seg|amount:2}')$$,
                 '42804', null, 'a format with an argument it does not take is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', template => 'hi {org|date}')$$,
                 '42804', null, 'date format on an integer column is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'x', 'ofx_all', 'mining', 'p', template => 'hi {name')$$,
                 '42601', null, 'an unterminated placeholder is refused');
select throws_ok($$select segment.create_opportunity_rule('nosuch', 'x', 'ofx_all', 'mining', 'p')$$,
                 '42704', null, 'unknown subject is refused');
select throws_ok($$select segment.create_opportunity_rule('ofx', 'bad name', 'ofx_all', 'mining', 'p')$$,
                 '42602', null, 'invalid rule name is refused');
select is((select (count(*), (select count(*) from segment.opportunity_rule_history))::text
             from segment.opportunity_rule),
          (select (rules, hist)::text from before_bad),
          'no failed create left a rule or a history row');

select segment.create_opportunity_rule('ofx', 'fx_assign', 'ofx_all', 'maintenance', 'deposit',
                                       priority => 10, cooldown_days => 30);
select throws_ok($$select segment.create_opportunity_rule('ofx', 'fx_assign', 'ofx_all', 'mining', 'p')$$,
                 '42710', null, 'a duplicate rule name is refused');

select results_eq(
    $$select rule_name, candidates, generated, control, skipped_cooldown, skipped_cap, over_capacity, failed
        from segment.generate('fx_assign', '2026-01-10')$$,
    $$values ('fx_assign'::name, 20::bigint, 20::bigint, 0::bigint, 0::bigint, 0::bigint, 4::bigint, 0::bigint)$$,
    'generate reports candidates, generated and over-capacity as computed by hand');

select results_eq(
    $$select o.key::int, coalesce(o.manager, '-'), o.assignment, coalesce(o.pool_reason, '-')
        from segment.opportunity o join segment.opportunity_rule r using (rule_id)
       where r.name = 'fx_assign' order by o.key::int$$,
    $$values (1, '101', 'owner', '-'), (2, '101', 'owner', '-'), (3, '101', 'owner', '-'),
             (4, '104', 'org', '-'), (5, '104', 'org', '-'), (6, '103', 'org', '-'),
             (7, '104', 'org', '-'), (8, '103', 'org', '-'), (9, '104', 'org', '-'),
             (10, '103', 'org', '-'),
             (11, '-', 'pool', 'managers at capacity'), (12, '-', 'pool', 'managers at capacity'),
             (13, '-', 'pool', 'managers at capacity'), (14, '-', 'pool', 'managers at capacity'),
             (15, '-', 'pool', 'no active manager for the customer'),
             (16, '-', 'pool', 'no active manager for the customer'),
             (17, '-', 'pool', 'no owner and no org unit'), (18, '-', 'pool', 'no owner and no org unit'),
             (19, '103', 'owner', '-'), (20, '103', 'owner', '-')$$,
    'owner first, then the least-loaded active manager of the org unit, then the pool');

select is((select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'fx_assign' and o.valid_until = date '2026-01-16' and o.status = 'generated'
              and o.period = date '2026-01-10' and o.rule_version = 1),
          20::bigint, 'valid_until is period + valid_days - 1, status generated, rule version recorded');

-- idempotent: the same day again makes nothing, everything in cool-down
select results_eq(
    $$select generated, skipped_cooldown from segment.generate('fx_assign', '2026-01-10')$$,
    $$values (0::bigint, 20::bigint)$$, 'running generate again for the same day creates nothing');

-- the next day, capacity counts per day: managers are free again, but the
-- rule is in cool-down for everyone
select results_eq(
    $$select generated, skipped_cooldown from segment.generate('fx_assign', '2026-01-11')$$,
    $$values (0::bigint, 20::bigint)$$, 'cool-down holds the next day');

------------------------------------------------------------------------
-- Rule capacity: fx_cap gives each manager at most 1 of its leads a day.
-- Audience ofx_even (even ids). Owner pass: 2 -> 101 (101 already has 3
-- fx_assign leads on 2026-01-10, but this is 2026-01-12: load 0), 4, 6 are
-- over 101's rule capacity; 20 -> 103. Org 1 pass for 4,6,8,10,12,14
-- (8, 10 owner 102 inactive): managers with rule room: 104 (load 0)
-- -> 4; 101 and 103 have used their 1. So 6,8,10,12,14 pool (capacity),
-- 16 pool (no active manager), 18 pool (no owner no org).
------------------------------------------------------------------------
select segment.create_opportunity_rule('ofx', 'fx_cap', 'ofx_even', 'mining', 'card',
                                       capacity => 1, cooldown_days => 0);
select count(*) from segment.generate('fx_cap', '2026-01-12');
select results_eq(
    $$select o.key::int, coalesce(o.manager, '-'), o.assignment
        from segment.opportunity o join segment.opportunity_rule r using (rule_id)
       where r.name = 'fx_cap' order by o.key::int$$,
    $$values (2, '101', 'owner'), (4, '104', 'org'), (6, '-', 'pool'), (8, '-', 'pool'),
             (10, '-', 'pool'), (12, '-', 'pool'), (14, '-', 'pool'), (16, '-', 'pool'),
             (18, '-', 'pool'), (20, '103', 'owner')$$,
    'a rule''s capacity limits its leads per manager per day');
select is((select over_capacity from segment.generation g join segment.opportunity_rule r using (rule_id)
            where r.name = 'fx_cap'), 5::bigint, 'over_capacity counts 6, 8, 10, 12, 14');
-- cooldown_days 0: a new opportunity the next day, not the same day
select results_eq(
    $$select (select generated from segment.generate('fx_cap', '2026-01-12')),
             (select generated from segment.generate('fx_cap', '2026-01-13'))$$,
    $$values (0::bigint, 10::bigint)$$, 'cool-down 0: nothing twice a day, again the next day');

------------------------------------------------------------------------
-- Cool-down in both directions: fx_cool (cool-down 5, pool) on 2026-01-10.
-- 2026-01-14 is within 5 days after: nothing; 2026-01-15 is not: all again.
-- A back-fill for 2026-01-06 is within 5 days before the existing one:
-- nothing; 2026-01-05 is not.
------------------------------------------------------------------------
select segment.create_opportunity_rule('ofx', 'fx_cool', 'ofx_even', 'mining', 'fund',
                                       cooldown_days => 5, assignment => 'pool');
select results_eq(
    $$select g.d, (select generated from segment.generate('fx_cool', g.d))
        from (values (date '2026-01-10', 1), ('2026-01-14', 2), ('2026-01-15', 3),
                     ('2026-01-06', 4), ('2026-01-05', 5)) g(d, o) order by g.o$$,
    $$values (date '2026-01-10', 10::bigint), ('2026-01-14', 0), ('2026-01-15', 10),
             ('2026-01-06', 0), ('2026-01-05', 10)$$,
    'cool-down is measured from the nearest opportunity of the rule, before or after');
select is((select count(distinct pool_reason) || ':' || min(pool_reason)
             from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'fx_cool'), '1:rule assigns to the pool', 'pool rules say why');

------------------------------------------------------------------------
-- Fixture 2: contact cap, 2 per 30 days, three rules over 3 customers.
--   2026-01-01: r3 alone -> each customer has 1.
--   2026-01-10: r3 in cool-down (30 days); r1 (10) and r2 (30) compete for
--               the one remaining contact: r2 wins, r1 skipped by the cap.
--   2026-02-05: window (2026-01-06, 2026-02-05] holds the r2 ones (1 each);
--               r2 in cool-down; r3 (20) beats r1 (10) for the last one.
------------------------------------------------------------------------
create schema ofy;
create table ofy.cust (id int8 primary key, v int);
insert into ofy.cust select i, i from generate_series(1, 3) i;
select segment.register_subject('ofy', 'ofy.cust', 'id');
select segment.create_tag('ofy', 'ofy_all', 'v > 0');
select count(*) from segment.refresh('ofy', '2026-01-01');
select segment.set_contact_policy('ofy', 2, 30);
select segment.create_opportunity_rule('ofy', 'ofy_r1', 'ofy_all', 'mining', 'a', priority => 10, assignment => 'pool');
select segment.create_opportunity_rule('ofy', 'ofy_r2', 'ofy_all', 'mining', 'b', priority => 30, assignment => 'pool');
select segment.create_opportunity_rule('ofy', 'ofy_r3', 'ofy_all', 'mining', 'c', priority => 20, assignment => 'pool');

select is((select generated from segment.generate('ofy_r3', '2026-01-01')), 3::bigint, 'r3 alone first');
select results_eq(
    $$select rule_name, generated, skipped_cooldown, skipped_cap
        from segment.generate(null, '2026-01-10') where rule_name like 'ofy%' order by 1$$,
    $$values ('ofy_r1'::name, 0::bigint, 0::bigint, 3::bigint), ('ofy_r2', 3, 0, 0), ('ofy_r3', 0, 3, 0)$$,
    'contact cap: the higher priority rule takes the last contact');
select results_eq(
    $$select rule_name, generated, skipped_cooldown, skipped_cap
        from segment.generate(null, '2026-02-05') where rule_name like 'ofy%' order by 1$$,
    $$values ('ofy_r1'::name, 0::bigint, 0::bigint, 3::bigint), ('ofy_r2', 0, 3, 0), ('ofy_r3', 3, 0, 0)$$,
    'contact cap counts only the window; r3 out of cool-down beats r1');
select is((select max(n) from (select count(*) n from segment.opportunity o
                                 where o.subject_id = (select subject_id from segment.subject where name = 'ofy')
                                   and o.period > date '2026-02-05' - 30 and o.period <= '2026-02-05'
                                 group by o.member_id) x),
          2::bigint, 'no customer has more than the cap in the window');
select is((select count(*) from segment.generation g join segment.opportunity_rule r using (rule_id)
            where r.name like 'ofy%'), 7::bigint, 'every rule of every run is logged in segment.generation');

------------------------------------------------------------------------
-- Fixture 3: control groups on 100,000 candidates.
------------------------------------------------------------------------
create schema ofz;
create table ofz.cust (id int primary key);
insert into ofz.cust select generate_series(1, 100000);
select segment.register_subject('ofz', 'ofz.cust', 'id');
select segment.create_tag('ofz', 'ofz_all', 'true');
select segment.create_tag('ofz', 'ofz_few', 'id <= 300');
select count(*) from segment.refresh('ofz', '2026-03-01');
analyze ofz.cust;
select segment.create_opportunity_rule('ofz', 'ofz_ten', 'ofz_all', 'mining', 'a', holdout_pct => 10, assignment => 'pool');
select segment.create_opportunity_rule('ofz', 'ofz_half', 'ofz_all', 'mining', 'b', holdout_pct => 50, assignment => 'pool');
select segment.create_opportunity_rule('ofz', 'ofz_none', 'ofz_all', 'mining', 'c', holdout_pct => 0, assignment => 'pool');
select segment.create_opportunity_rule('ofz', 'ofz_few_r', 'ofz_few', 'mining', 'd', holdout_pct => 30, assignment => 'pool');
create temp table ofz_run1 as select * from segment.generate(null, '2026-03-01');
-- a small audience (300 of 100,000) is found by key lookups, a large one by
-- a scan: both draw the control group by the same formula
select set_eq($$select o.member_id from segment.opportunity o join segment.opportunity_rule r using (rule_id)
                where r.name = 'ofz_few_r' and o.is_control$$,
              $$select i::int8 from generate_series(1, 300) i
                 where segment_internal._in_control((select rule_id from segment.opportunity_rule where name = 'ofz_few_r'),
                                           i, '2026-03-01', 30)$$,
              'small audience: the control group is exactly the formula''s');
select is((select generated + control from ofz_run1 where rule_name = 'ofz_few_r'), 300::bigint,
          'small audience: every candidate got an opportunity');
select set_eq($$select o.member_id from segment.opportunity o join segment.opportunity_rule r using (rule_id)
                where r.name = 'ofz_ten' and o.is_control$$,
              $$select i::int8 from generate_series(1, 100000) i
                 where segment_internal._in_control((select rule_id from segment.opportunity_rule where name = 'ofz_ten'),
                                           i, '2026-03-01', 10)$$,
              'large audience: the control group is exactly the formula''s');
-- binomial: n = 100000, p = 0.1 -> sd 94.9, 5 sd = 474; p = 0.5 -> sd 158, 5 sd = 791
select ok((select control between 10000 - 474 and 10000 + 474 and generated + control = 100000
             from ofz_run1 where rule_name = 'ofz_ten'),
          'holdout 10%: control share within 5 standard deviations of 10,000');
select ok((select control between 50000 - 791 and 50000 + 791 from ofz_run1 where rule_name = 'ofz_half'),
          'holdout 50%: control share within 5 standard deviations of 50,000');
select is((select control from ofz_run1 where rule_name = 'ofz_none'), 0::bigint, 'holdout 0: no control');
select is((select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name like 'ofz%' and o.is_control
              and (o.assignment <> 'control' or o.manager is not null or o.status <> 'generated')),
          0::bigint, 'control opportunities are recorded, unassigned');
-- the two rules draw independently: overlap of the control groups ~ 5%
select ok((select count(*) between 5000 - 350 and 5000 + 350
             from (select o.member_id from segment.opportunity o join segment.opportunity_rule r using (rule_id)
                    where r.name = 'ofz_ten' and o.is_control
                   intersect
                   select o.member_id from segment.opportunity o join segment.opportunity_rule r using (rule_id)
                    where r.name = 'ofz_half' and o.is_control) x),
          'control groups of two rules are independent draws');
create temp table ofz_ctl1 as
select member_id from segment.opportunity o join segment.opportunity_rule r using (rule_id)
 where r.name = 'ofz_ten' and o.is_control;
delete from segment.opportunity o using segment.opportunity_rule r
 where r.rule_id = o.rule_id and r.name like 'ofz%';
select count(*) from segment.generate(null, '2026-03-01');
select set_eq($$select member_id from segment.opportunity o join segment.opportunity_rule r using (rule_id)
                where r.name = 'ofz_ten' and o.is_control$$,
              $$select member_id from ofz_ctl1$$,
              'a rerun of the same day puts the same customers in control');
select count(*) from segment.generate('ofz_ten', '2026-06-01');
select ok((select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id)
             join ofz_ctl1 c using (member_id)
            where r.name = 'ofz_ten' and o.is_control and o.period = '2026-06-01')
          between 1000 - 200 and 1000 + 200,
          'another period: about 10% of the old control group is control again');

------------------------------------------------------------------------
-- Text keys: member ids come from the key map; the key stored is the text.
------------------------------------------------------------------------
create schema oft;
create table oft.cust (k text primary key, v int);
insert into oft.cust select 'c-' || i, i from generate_series(1, 50) i;
select segment.register_subject('oft', 'oft.cust', 'k');
select segment.create_tag('oft', 'oft_big', 'v > 10');
select count(*) from segment.refresh('oft', '2026-03-01');
select segment.create_opportunity_rule('oft', 'oft_r', 'oft_big', 'mining', 'x', assignment => 'pool',
                                       template => 'Hello {k|upper} ({v})');
select is((select generated + control from segment.generate('oft_r', '2026-03-01')), 40::bigint,
          'text keys: every member of the audience gets one');
select set_eq($$select o.key from segment.opportunity o join segment.opportunity_rule r using (rule_id)
                where r.name = 'oft_r'$$,
              $$select k from oft.cust where v > 10$$, 'text keys: the keys are the table''s');
select is((select o.message from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'oft_r' and o.key = 'c-11'), 'Hello C-11 (11)', 'text keys: the message is the customer''s');

------------------------------------------------------------------------
-- Templates.
------------------------------------------------------------------------
update ofx.cust set name = case id when 1 then '王小明' when 2 then 'Zoë Smith' when 3 then null else 'Li' end,
                   mobile = case id when 1 then '13812345678' when 2 then '+86 138 1234 5678' end,
                   email = case id when 1 then 'wang@example.cn' end,
                   bal = case id when 1 then 1234567.5 when 2 then 0 when 3 then -12.345 end,
                   due = case id when 1 then '2026-02-03' when 2 then '2026-13-45' end;
select results_eq(
    $$select segment.mask(v) from unnest(array['王小明', 'Zoë Smith', '13812345678', '+86 138 1234 5678',
                                                'wang@example.cn', 'A', '', '1234567']) v$$,
    $$values ('王**'), ('Z********'), ('138****5678'), ('+86**********5678'), ('w***@example.cn'),
             ('A'), (''), ('1******')$$,
    'mask: numbers keep 3 + 4, e-mails the first character and the domain, names the first character');
select is(segment.mask(null), null, 'mask(NULL) is NULL');
select segment.create_opportunity_rule('ofx', 'fx_msg', 'ofx_all', 'mining', 'wealth', assignment => 'pool',
    template => '{{Hi}} {name|mask}, {mobile|mask} {email|mask} owes {bal|amount} by {due|date:DD/MM/YYYY}; {name|upper}');
select is(
    array(select segment.render('fx_msg', k) from unnest(array['1', '3', '4']) k),
    array['{Hi} 王**, 138****5678 w***@example.cn owes 1,234,567.50 by 03/02/2026; 王小明',
          '{Hi} ,   owes -12.35 by ; ',
          '{Hi} L*,   owes  by ; LI'],
    'render fills placeholders, formats amounts and dates, masks, and renders NULL as empty');
select throws_ok($$select segment.render('fx_msg', '2')$$, '22008', null,
                 'a value that does not render raises in render()');
select results_eq(
    $$select generated, failed from segment.generate('fx_msg', '2026-01-10')$$,
    $$values (19::bigint, 1::bigint)$$,
    'generate: one customer''s template failure is recorded, the other 19 are generated');
select results_eq(
    $$select key, sqlstate from segment.generation_failure f join segment.opportunity_rule r using (rule_id)
       where r.name = 'fx_msg'$$,
    $$values ('2', '22008')$$, 'the failure names the customer and the SQLSTATE');
select is((select message from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'fx_msg' and o.key = '1'),
          segment.render('fx_msg', '1'), 'the stored message is the rendered one');

------------------------------------------------------------------------
-- alter / drop, versions and history.
------------------------------------------------------------------------
select segment.alter_opportunity_rule('fx_cool', holdout_pct => 20, template => 'Hello {name}');
select results_eq(
    $$select version, holdout_pct, template::text from segment.opportunity_rule where name = 'fx_cool'$$,
    $$values (2, 20::numeric, 'Hello {name}')$$, 'alter makes a new version');
select is((select count(*) from segment.opportunity_rule_history h join segment.opportunity_rule r using (rule_id)
            where r.name = 'fx_cool'), 2::bigint, 'history has create and alter');
select throws_ok($$select segment.alter_opportunity_rule('fx_cool', holdout_pct => 20)$$, '22023', null,
                 'an alter that changes nothing is refused');
select throws_ok($$select segment.alter_opportunity_rule('fx_cool', template => '{nope}')$$, '42703', null,
                 'alter validates like create');
select is((select version from segment.opportunity_rule where name = 'fx_cool'), 2, 'a failed alter changes nothing');
select throws_ok($$select segment.drop_opportunity_rule('fx_cool')$$, '2BP01', null,
                 'a rule with opportunities is not dropped without cascade');
select segment.alter_opportunity_rule('fx_cool', active => false);
select throws_ok($$select * from segment.generate('fx_cool', '2026-04-01')$$, '55000', null,
                 'generating an inactive rule by name is refused');
select lives_ok($$select segment.drop_opportunity_rule('fx_cool', "cascade" => true)$$, 'drop with cascade');
select is((select count(*) from segment.opportunity o where not exists
             (select 1 from segment.opportunity_rule r where r.rule_id = o.rule_id)), 0::bigint,
          'cascade took its opportunities');

-- the DDL guard covers goals and templates
select segment.alter_opportunity_rule('fx_cap', goal => 'bal > 0');
select throws_ok($$alter table ofx.cust drop column bal$$, '2BP01', null,
                 'dropping a column a goal reads is refused');
select throws_ok($$alter table ofx.cust drop column due$$, '2BP01', null,
                 'dropping a column a template reads is refused');

-- a rule that fails as a whole is logged and the others are generated
select segment.create_tag('ofx', 'ofx_new', 'id > 5');          -- not refreshed yet
select segment.create_opportunity_rule('ofx', 'fx_broken', 'ofx_new', 'mining', 'p', assignment => 'pool');
select segment.create_opportunity_rule('ofx', 'fx_fine', 'ofx_even', 'mining', 'p', assignment => 'pool');
select results_eq(
    $$select rule_name, generated from segment.generate(null, '2026-04-02')
       where rule_name in ('fx_broken', 'fx_fine') order by 1$$,
    $$values ('fx_broken'::name, 0::bigint), ('fx_fine', 10)$$,
    'a rule whose audience cannot be read makes nothing, the others are generated');
select ok((select error like '%has not been refreshed%' from segment.generation g
             join segment.opportunity_rule r using (rule_id) where r.name = 'fx_broken'),
          'its error is kept in segment.generation');

-- a non-finite date is refused up front (22023, with a hint), before any
-- rule is looked at: nothing generated, nothing logged (it used to fail
-- each rule alone, with a WARNING per rule)
create temp table ofx_before as
    select (select count(*) from segment.opportunity) as opps, (select count(*) from segment.generation) as gens;
select throws_ok($$select * from segment.generate(null, 'infinity')$$, '22023',
                 'as_of must be a finite date, not infinity', 'generate of every rule as of infinity: 22023');
select throws_ok($$select * from segment.generate('fx_fine', '-infinity')$$, '22023',
                 'as_of must be a finite date, not -infinity', 'generate of one rule as of -infinity: 22023');
select throws_ok($$select * from segment.generate('nosuch', 'infinity')$$, '22023', null,
                 'the date is checked before the rule name');
create function pg_temp.hint_of(q text) returns text language plpgsql as $f$
declare
    h text;
begin
    execute q;
    return null;
exception when others then
    get stacked diagnostics h = pg_exception_hint;
    return h;
end $f$;
select ok(pg_temp.hint_of($$select * from segment.generate(null, 'infinity')$$) like '%give that day%',
          'the error has a hint');
select results_eq($$select (select count(*) from segment.opportunity), (select count(*) from segment.generation)$$,
                  $$select opps, gens from ofx_before$$, 'a refused generate changes nothing');

-- what a rule's audience uses is not dropped, not even by cascade
select throws_ok($$select segment.drop_tag('ofx_all', "cascade" => true)$$, '2BP01', null,
                 'a tag an opportunity rule uses is not dropped');
select segment.create_segment('ofx', 'ofx_seg', 'ofx_even');
select segment.alter_opportunity_rule('fx_cap', audience => 'ofx_seg');
select throws_ok($$select segment.drop_tag('ofx_even', "cascade" => true)$$, '2BP01', null,
                 'nor one whose cascade would drop a segment a rule uses');
select is((select count(*) from segment.segment where name = 'ofx_seg')
          + (select count(*) from segment.tag where name = 'ofx_even'), 2::bigint,
          'after the refused drop the segment and the tag are still there');

select * from finish();
rollback;
