-- Error parity: a rule raises an error in segment exactly when it raises one
-- in PostgreSQL, with the same SQLSTATE and message, on every path.
--
-- PostgreSQL's behaviour is the oracle: for a rule R over a table T,
--     select count(*) from T where (R) is true
-- either errors (SQLSTATE, message) or does not. The contract
-- (docs/analyst-guide.md, "Refresh"): a refresh whose rule errors on some row
-- reports it (NULL sizes in its result, a WARNING with the rule's SQLSTATE --
-- shown by test/sql/012_error_parity.sql -- and the message in segment.run.error)
-- and the tag keeps its previous members; live maintenance fails the writing
-- statement with the rule's error (docs/live.md); explain raises it.
--
-- How PostgreSQL evaluates, which the native evaluator (src/rule_batch.c) must
-- mirror: a strict operator or function evaluates every argument, left to
-- right, before it looks at NULLs, so (a * 1000000) + b raises the overflow
-- of a * 1000000 even where b is NULL; AND stops at its first FALSE argument
-- and OR at its first TRUE one, but a NULL argument goes on to the next
-- (NULL AND 1/0 > 0 raises); CASE runs only the branch it takes; COALESCE
-- stops at its first non-NULL argument; planning folds constants (x OR true
-- is true without evaluating x).
--
-- Part 1, the issue's case: (1, 5, NULL), (2, 1, 1), (3, 2, 2) and
--   (a * 1000000000) + b > 0 (issue 15).
-- Part 2, targeted cases (ep.cases): one table per case, holding ep.safe
--   (3,000 generated rows, NULLs in every column, values on which no case
--   errors). Each case's tag is refreshed once (clean), then rows are deleted
--   (so that a successful refresh would change the set) and one "poison" row
--   is inserted: a base row with the case's SET clause applied (e.g.
--   a = 5000, b = null). Then, for each case:
--     * PostgreSQL's outcome on the table is the expected one (the case
--       documents PostgreSQL, and the test cannot pass by both sides being
--       wrong the same way);
--     * serial refresh: same outcome (failed with PostgreSQL's message in
--       segment.run.error and NULL sizes, or succeeded), members kept when
--       failed, equal to the plain-SQL set otherwise;
--     * parallel refresh (workers forced as in security_owner.sql): the same;
--     * explain of the poison row: PostgreSQL's SQLSTATE and message on that
--       row, or its value;
--     * live maintenance: an UPDATE that copies the poison row's values into
--       row 1 fails with PostgreSQL's SQLSTATE and message on that row, or
--       succeeds and has_tag equals the rule's value.
--   Most rules are compiled natively (integer/date arithmetic, coalesce with a
--   constant, comparisons, IN lists, AND/OR/NOT/CASE/IS UNKNOWN); the others
--   (division, modulo, unary minus, casts, numeric and int2 arithmetic) are
--   executor leaves under native AND/OR/CASE nodes.
-- Part 3, generated edge values: ep.gen = ep.safe + 600 rows drawn from
--   NULL, 0, -1, 1, 2, INT_MAX, INT_MIN, int8 and int2 limits, 2^31, large
--   and tiny numerics, NaN, +-Infinity, infinite and extreme dates; every
--   case rule as a tag of one subject. Serial and parallel: a tag fails iff
--   PostgreSQL errors on the table, its message is one PostgreSQL raises on
--   some row, it keeps its previous members; the others equal plain SQL.
--
-- Every assertion can fail: reverting the fix of src/rule_batch.c (errors
-- checked only on non-NULL rows) fails Part 1 and the cases of Part 2 named "null";
-- reverting the fix of src/explain.c fails the explain assertions of
-- or_skip, and_skip, fold_or_true and the other short-circuit cases;
-- reverting the fix of src/refresh_parallel.c (one shared "failed unit" for
-- all workers) makes part 3's parallel refresh fail some tag with another
-- tag's error now and then (it depends on which worker fails first).
-- Runtime: about 20 s on the 2-core dev machine.

\ir ../fixtures/pgtap.psql
-- the failing refreshes warn by design; their warnings are not the output
set local client_min_messages = error;
set local max_parallel_workers_per_gather = 0;
do $$ begin perform setseed(0.1515); end $$;

create schema ep;

\ir ../fixtures/parity.psql

create table ep.safe (
    id   int8 primary key,
    a    int4,
    b    int4,
    c    int8,
    s    int2,
    n    numeric,
    d    date,
    e    date,
    flag boolean
);
insert into ep.safe
select i,
       case when random() < 0.15 then null else 1 + floor(random() * 1000)::int end,
       case when random() < 0.15 then null else 1 + floor(random() * 1000)::int end,
       case when random() < 0.15 then null else 1 + floor(random() * 1000000)::int8 end,
       case when random() < 0.15 then null else 1 + floor(random() * 100)::int2 end,
       case when random() < 0.15 then null else round((random() * 1000000)::numeric, 2) end,
       case when random() < 0.15 then null else date '2026-11-22' + floor(random() * 800 - 400)::int end,
       case when random() < 0.15 then null else date '2026-11-22' + floor(random() * 800 - 400)::int end,
       case when random() < 0.33 then null else random() < 0.5 end
  from generate_series(1, 3000) i;

-- name, rule, the poison row's SET clause over the base row
-- (a 7, b 9, c 11, s 3, n 12.5, d 2026-11-22, e 2026-11-01, flag true),
-- PostgreSQL's outcome on the table with the poison row ('ok' or SQLSTATE).
-- "null" in a name: the error happens on a row where another operand, or an
-- earlier AND / OR argument, is NULL: the path issue 15 found unchecked.
create table ep.cases (ord serial, name text, rule text, poison text, expect text);
insert into ep.cases (name, rule, poison, expect) values
-- native integer arithmetic (int4, int8, int4 x int8), comparisons, IN
('i4_mul_add_null',      '(a * 1000000) + b > 0',                    'a = 5000, b = null', '22003'),
('i4_mul_add',           '(a * 1000000) + b > 0',                    'a = 5000',           '22003'),
('i4_add_mul_null',      'b + (a * 1000000) > 0',                    'a = 5000, b = null', '22003'),
('i4_add',               'a + b > 0',                                'a = 2147483647',     '22003'),
('i4_sub',               'a - b < 0',                                'a = -2147483648',    '22003'),
('i4_mul_not_in_null',   '(a * 1000) * b not in (1000, 2000)',       'a = 3000000, b = null', '22003'),
('i4_any_null_elem',     $$a * 1000000 > any ('{500000000,NULL}'::int4[])$$, 'a = 5000', '22003'),
('i4_any_empty',         $$not (a * 1000000 = any ('{}'::int4[]))$$, 'a = 5000',          '22003'),
('i4_is_unknown_null',   '((a * 1000000) + b > 0) is unknown',       'a = 5000, b = null', '22003'),
('i4_not_null',          'not ((a * 1000000) + b > 500000000)',      'a = 5000, b = null', '22003'),
('i4_null_operand',      '(a * b) * 1000 > 0',                       'a = null, b = 2147483647', 'ok'),
('i4_own_overflow',      '(a * b) * 1000 > 0',                       'a = 2, b = 2147483647', '22003'),
('i8_mul_add_null',      '(c * 1000000000000) + a > 0',              'c = 10000000, a = null', '22003'),
('i48_add',              'a + c > 0',                                'c = 9223372036854775807', '22003'),
('i84_mul_add_null',     '(c * a) + b > 0',                          'c = 9223372036854775807, a = 2, b = null', '22003'),
-- native date arithmetic
('date_mi_inf',          'd - e > 30',                               $$e = 'infinity'$$,   '22008'),
('date_mi_inf_null',     'd - e > 30',                               $$d = null, e = 'infinity'$$, 'ok'),
('date_mi_add_null',     '(d - e) + a > 30',                         $$e = 'infinity', a = null$$, '22008'),
('date_pli_range',       $$d + a > date '2026-01-01'$$,              'a = 2146000000',     '22008'),
('date_pli_sub_null',    '(d + a) - e > 0',                          'a = 2147483647, e = null', '22008'),
('date_mii_range',       $$d - a < date '2026-01-01'$$,              'a = 2000000000',     '22008'),
-- native coalesce(value, constant); coalesce with a column is an executor leaf
('coalesce_err',         'coalesce(a * 1000000, 0) > 0',             'a = 5000',           '22003'),
('coalesce_add_null',    'coalesce(a * 1000000, 0) + b > 0',         'a = 5000, b = null', '22003'),
('coalesce_skip',        'coalesce(b, a * 1000000) > 0',             'a = 5000',           'ok'),
('coalesce_no_skip_null','coalesce(b, a * 1000000) > 0',             'a = 5000, b = null', '22003'),
-- executor leaves: division, modulo, unary minus, int2, casts, numeric
('div_zero',             'a / b > 1',                                'b = 0',              '22012'),
('div_zero_null_arg',    'a / b > 1',                                'a = null, b = 0',    'ok'),
('div_add_null',         '(a / b) + c > 0',                          'b = 0, c = null',    '22012'),
('div_minint',           'a / b < 3',                                'a = -2147483648, b = -1', '22003'),
('mod_zero',             'a % b = 0',                                'b = 0',              '22012'),
('mod_minint',           'a % b = 0',                                'a = -2147483648, b = -1', 'ok'),
('neg_minint',           '-a < -500',                                'a = -2147483648',    '22003'),
('neg_int2',             '-s < -50',                                 's = -32768',         '22003'),
('int2_add',             's + s > 0',                                's = 20000',          '22003'),
('cast_int8_int4',       'c::int4 > 0',                              'c = 2147483648',     '22003'),
('cast_int8_int4_null',  'c::int4 + a > 0',                          'c = 2147483648, a = null', '22003'),
('cast_numeric_int4',    'n::int4 > 0',                              'n = 1e10',           '22003'),
('cast_numeric_int2',    '(n / 1000)::int2 > 0',                     'n = 40000000',       '22003'),
('cast_numeric_typmod',  '(n / 10000)::numeric(5,2) > 1',            'n = 100000000',      '22003'),
('numeric_div_zero',     'n / a > 1',                                'a = 0',              '22012'),
('numeric_overflow',     'n * 1e131000 > 0',                         'n = 1e100',          '22003'),
('numeric_overflow_null','(n * 1e131000) * c > 0',                   'n = 1e100, c = null', '22003'),
-- AND / OR / CASE: what PostgreSQL evaluates and what it skips
('or_skip',              'a = 0 or 10000 / a > 20',                  'a = 0',              'ok'),
('and_skip',             'a <> 0 and 10000 / a > 20',                'a = 0',              'ok'),
('and_null_evaluates',   'b < 500 and a * 1000000 > 0',              'a = 5000, b = null', '22003'),
('and_false_skips',      'b < 500 and a * 1000000 > 0',              'a = 5000, b = 900',  'ok'),
('or_true_skips',        'b > 500 or a * 1000000 > 500000000',       'a = 5000, b = 900',  'ok'),
('or_null_evaluates',    'b > 500 or a * 1000000 > 500000000',       'a = 5000, b = null', '22003'),
('flag_or_skips',        'flag or a * 1000000 > 0',                  'a = 5000',           'ok'),
('flag_or_null',         'flag or a * 1000000 > 0',                  'a = 5000, flag = null', '22003'),
('case_skips',           'case when b is null then false else (a * 1000000) + b > 0 end', 'a = 5000, b = null', 'ok'),
('case_evaluates',       'case when b is null then false else (a * 1000000) + b > 0 end', 'a = 5000', '22003'),
('case_when_errs',       'case when a * 1000000 > 0 then flag else false end', 'a = 5000', '22003'),
('case_when_null_skips', 'case when b > 0 then (a * 1000000) + b > 0 else false end', 'a = 5000, b = null', 'ok'),
('between_leaf_null',    'a * 1000000 between b and 2000000000',     'a = 5000, b = null', '22003'),
('between_native_null',  '(a * 1000000) + b between 0 and 2000000000', 'a = 5000, b = null', '22003'),
-- more NULL siblings (issue 15): int8 in OR, date in AND, int4 under NOT IN,
-- int8 in a CASE branch taken, division by zero in AND, and a short circuit
('i8_or_null',           'b > 500 or (c * 1000000000000) + a > 0',   'c = 10000000, a = null, b = null', '22003'),
('date_and_null',        'flag and d - e > 30',                      $$e = 'infinity', flag = null$$, '22008'),
('i4_not_in_null',       '(a * 1000000) + b not in (1, 2)',          'a = 5000, b = null', '22003'),
('i8_case_null',         'case when flag then (c * 1000000000000) + a > 0 else false end', 'c = 10000000, a = null', '22003'),
('div_zero_and_null',    'b < 500 and (a / b) + c > 0',              'b = 0, c = null',    '22012'),
('div_or_true_skips',    'flag or a / b > 1',                        'b = 0',              'ok'),
-- planning folds constants first (in a refresh as in a query)
('fold_false_and',       'flag or (false and a * 1000000 > 0)',      'a = 5000, flag = false', 'ok'),
('fold_or_true',         'a * 1000000 > 0 or true',                  'a = 5000',           'ok');

-- Tests: 2 (part 1) + 8 per case (part 2) + 4 per distinct rule + 2 (part 3).
select plan((select 6 + 8 * count(*)::int + 4 * count(distinct rule)::int + 2 from ep.cases));

------------------------------------------------------------------------------
-- Part 1: the issue's case

create table ep.issue (id int primary key, a int, b int);
insert into ep.issue values (2, 1, 1), (3, 2, 2), (4, 1, 1);
select segment.register_subject('ep_issue', 'ep.issue', 'id');
select segment.create_tag('ep_issue', 'ep_issue_tag', '(a * 1000000000) + b > 0');
select count(*) from segment.refresh('ep_issue');
-- now the issue's table: a refresh that succeeded would give {2,3}
delete from ep.issue where id = 4;
insert into ep.issue values (1, 5, null);
select is(parity.pg_outcome('ep.issue', '(a * 1000000000) + b > 0'), '22003: integer out of range',
          'issue 15: PostgreSQL raises integer out of range on row 1 (b is NULL)');
select is(parity.refresh_outcome('ep_issue', 'ep_issue_tag'), 'error: integer out of range',
          'issue 15: serial refresh fails the tag with the same error');
select is(parity.seg_set('ep_issue', 'ep_issue_tag'), '{2,3,4}',
          'issue 15: the tag keeps its previous members');
select parity.parallel(true);
select is(parity.refresh_outcome('ep_issue', 'ep_issue_tag'), 'error: integer out of range',
          'issue 15: parallel refresh fails the tag with the same error');
select parity.parallel(false);
select is(parity.err($$select segment.explain('ep_issue', 1, 'ep_issue_tag')$$), '22003: integer out of range',
          'issue 15: explain of row 1 raises it');
select is(parity.err($$select segment.explain('ep_issue', 2, 'ep_issue_tag') ->> 'value'$$), 'ok',
          'issue 15: explain of row 2 does not');

------------------------------------------------------------------------------
-- Part 2: targeted cases, one table and subject per case

select parity.run_case('ep', '(1000000, 7, 9, 11, 3, 12.5, ''2026-11-22'', ''2026-11-01'', true)', c.ord, c.name, c.rule, c.poison, c.expect)
  from ep.cases c order by ord;

------------------------------------------------------------------------------
-- Part 3: generated edge values, every rule as a tag of one subject

create table ep.gen (like ep.safe including all);
insert into ep.gen select * from ep.safe;
create table ep.edge (like ep.safe);
insert into ep.edge
select 2000000 + i,
       (array[null, 0, -1, 1, 2, 5000, 65536, 2147483647, -2147483648])[1 + floor(random() * 9)::int],
       (array[null, 0, -1, 1, 2, 5000, 65536, 2147483647, -2147483648])[1 + floor(random() * 9)::int],
       (array[null, 0, -1, 1, 2147483648, 10000000, 4611686018427387904,
              9223372036854775807, -9223372036854775808])[1 + floor(random() * 9)::int],
       (array[null, 0, -1, 1, 20000, 32767, -32768])[1 + floor(random() * 7)::int]::int2,
       (array[null, '0', '-1', '1000', '40000', '1e10', '1e100', '99999999999999999999.99999999',
              '0.00000000000000000001', 'NaN', 'Infinity', '-Infinity',
              '12345678901234567890123456789.5'])[1 + floor(random() * 13)::int]::numeric,
       (array[null, 'infinity', '-infinity', '5874897-12-31', '4713-01-01 BC', '2026-11-22',
              '2026-01-01'])[1 + floor(random() * 7)::int]::date,
       (array[null, 'infinity', '-infinity', '5874897-12-31', '4713-01-01 BC', '2026-11-22',
              '2026-01-01'])[1 + floor(random() * 7)::int]::date,
       (array[null, true, false])[1 + floor(random() * 3)::int]
  from generate_series(1, 600) i;

create table ep.rules as
    select row_number() over (order by min(ord)) as k, rule from ep.cases group by rule;
select segment.register_subject('ep_gen', 'ep.gen', 'id');
select count(segment.create_tag('ep_gen', 'ep_gen_' || k, rule)) from ep.rules;
select count(*) from segment.refresh('ep_gen');
create table ep.first as select k, parity.seg_set('ep_gen', ('ep_gen_' || k)::name) as members from ep.rules;

select is((select count(*) from ep.first where cardinality(members) > 0), (select count(*) from ep.rules),
          'part 3: every rule has members on the safe rows');

insert into ep.gen select * from ep.edge;
delete from ep.gen where id % 10 = 0 and id < 2000000;

-- per rule: PostgreSQL's outcome, and the messages its rows raise
create table ep.gen_pg as
    select k, rule, parity.pg_outcome('ep.gen', rule) as outcome from ep.rules;
create table ep.gen_msgs as
    select r.k, parity.pg_row('ep.edge', r.rule, e.id) as msg
      from ep.rules r join ep.gen_pg p using (k), ep.edge e
     where p.outcome <> 'ok';
delete from ep.gen_msgs where msg in ('true', 'false', 'null');

select cmp_ok((select count(*) from ep.gen_pg where outcome <> 'ok'), '>=',
              (select count(*) from ep.cases where expect <> 'ok') / 2,
              'part 3: the edge rows make many rules error');

create table ep.gen_run (path text, k int8, tag name, members bigint);
create function ep.gen_check(path text) returns setof text language plpgsql as $f$
declare
    r record;
    seg_msg text;
    err text;
begin
    perform parity.parallel(path = 'parallel');
    insert into ep.gen_run select path, null, x.tag, x.members from segment.refresh('ep_gen') x;
    perform parity.parallel(false);
    select error into err from segment.run join segment.subject s using (subject_id)
     where s.name = 'ep_gen' order by run_id desc limit 1;
    for r in select p.*, f.members as first from ep.gen_pg p join ep.first f using (k) order by k loop
        seg_msg := substring(err from format('tag "ep_gen_%s": ([^;]*)', r.k));
        return next is((select members is null from ep.gen_run g where g.path = gen_check.path
                         and g.tag = ('ep_gen_' || r.k)::name),
                       r.outcome <> 'ok',
                       format('part 3, %s: %s fails iff PostgreSQL errors (%s)', path, r.rule, r.outcome));
        if r.outcome = 'ok' then
            return next is(parity.seg_set('ep_gen', ('ep_gen_' || r.k)::name), parity.sql_set('ep.gen', r.rule),
                           format('part 3, %s: %s: members = plain SQL', path, r.rule));
        else
            return next ok(seg_msg is not null
                           and exists (select 1 from ep.gen_msgs m where m.k = r.k and substr(m.msg, 8) = seg_msg)
                           and parity.seg_set('ep_gen', ('ep_gen_' || r.k)::name) = r.first,
                           format('part 3, %s: %s: the error (%s) is one PostgreSQL raises on some row; keeps its %s members',
                                  path, r.rule, seg_msg, cardinality(r.first)));
        end if;
    end loop;
end
$f$;

select ep.gen_check('serial');
select ep.gen_check('parallel');

select * from finish();
rollback;
