-- Error parity of the native numeric arithmetic and of value-op-value
-- comparisons (src/rule_numeric.c, eval_cmp2_batch in src/rule_batch.c).
--
-- numeric + - * run natively as scaled 128-bit integers; a row whose value
-- has no exact such form (NaN, infinities, more than 8 decimals, 10^20 and
-- beyond) is computed by PostgreSQL's own numeric function, and only where a
-- comparison evaluates that row. So an overflow of the numeric format
-- (9e131071 * 10000000000) must raise exactly where PostgreSQL raises it:
-- also where the other operand of a strict operator is NULL (PostgreSQL
-- evaluates every argument before it looks at NULLs), not where AND, OR or
-- CASE skip the expression. The same for comparisons of two values
-- (a * 1000000 > b with b NULL), native since issue 15.
--
-- Per case (one table and subject each, 2,000 safe rows with NULLs, then a
-- "poison" row: the base row with the case's SET clause applied):
--   * PostgreSQL's outcome is the expected one (the case documents it), and
--     the tag's first set is not empty and differs from what a refresh
--     would make now (so "keeps its previous members" means something);
--   * serial refresh: same outcome; failed: the tag keeps its members,
--     succeeded: members = plain SQL;
--   * parallel refresh (workers forced): the same;
--   * explain of the poison row: PostgreSQL's value or error on that row;
--   * live maintenance: an UPDATE into the poison values fails with
--     PostgreSQL's error, or has_tag equals the rule's value.
-- Every assertion can fail: computing slow rows for every row of the batch
-- (not only the evaluated ones) fails the *_skip cases; skipping slow rows
-- whose other operand is NULL fails the *_null cases.
-- Runtime: a few seconds.

\ir ../fixtures/pgtap.psql
set local client_min_messages = error;
set local max_parallel_workers_per_gather = 0;
do $$ begin perform setseed(0.2727); end $$;

create schema en;

\ir ../fixtures/parity.psql

create table en.safe (id int8 primary key, n numeric, m numeric, a int4, b int4, flag boolean);
insert into en.safe
select i,
       case when random() < 0.15 then null else round((random() * 1000000)::numeric, 2) end,
       case when random() < 0.15 then null else round((random() * 1000000)::numeric, 3) end,
       case when random() < 0.15 then null else 1 + floor(random() * 1000)::int end,
       case when random() < 0.15 then null else 1 + floor(random() * 1000)::int end,
       case when random() < 0.33 then null else random() < 0.5 end
  from generate_series(1, 2000) i;

-- base poison row: (n 12.5, m 7.25, a 7, b 9, flag true)
create table en.cases (ord serial, name text, rule text, poison text, expect text);
insert into en.cases (name, rule, poison, expect) values
('mul_overflow',        'n * 10000000000 > 0',                     'n = 9e131071',           '22003'),
('mul_overflow_null',   '(n * 10000000000) + m > 0',               'n = 9e131071, m = null', '22003'),
('add_null_left',       'm + (n * 10000000000) > 0',               'n = 9e131071, m = null', '22003'),
('sub_chain',           '(m - n) * 10000000000 < 0',               'n = 9e131071',           '22003'),
('null_operand_skips',  '(n * m) * 10000000000 > 0',               'n = null, m = 9e131071', 'ok'),
('cmp2_num_null',       'n * 10000000000 > m',                     'n = 9e131071, m = null', '22003'),
('cmp2_num_null_left',  'm < n * 10000000000',                     'n = 9e131071, m = null', '22003'),
('cmp2_num_both',       'n * 20000000000 > m * 10000000000',       'm = -9e131071',          '22003'),
('cmp2_int_null',       'a * 1000000 > b',                         'a = 5000, b = null',     '22003'),
('cmp2_int_null_left',  'b < a * 1000000',                         'a = 5000, b = null',     '22003'),
('in_list',             'n * 10000000000 in (1, 2.5) or n > 500000',             'n = 9e131071',           '22003'),
('and_skip',            'n < 500000 and n * 10000000000 > m',      'n = 9e131071, m = 1',    'ok'),
('and_null_evaluates',  'm < 500000 and n * 10000000000 > 0',      'n = 9e131071, m = null', '22003'),
('or_skip',             'flag or n * 10000000000 > m',             'n = 9e131071',           'ok'),
('case_skip',           'case when m is null then false else n * 10000000000 > m end', 'n = 9e131071, m = null', 'ok'),
('nan_infinity',        'n - m < 0 or n + m = n * 2',              $$n = 'Infinity', m = 'Infinity'$$, 'ok'),
('many_decimals',       'n * 0.5 > m',                             'n = 0.000000003, m = 0.0000000015', 'ok');

-- Tests: 8 per case.
select plan((select 8 * count(*)::int from en.cases));

select parity.run_case('en', '(1000000, 12.5, 7.25, 7, 9, true)', c.ord, c.name, c.rule, c.poison, c.expect)
  from en.cases c order by ord;

select * from finish();
rollback;
