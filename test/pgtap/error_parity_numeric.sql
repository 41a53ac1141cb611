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

\set ECHO none
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_STOP true

begin;
set local client_min_messages = error;
create extension if not exists pgtap;
create extension if not exists segment;
set local segment.progress_seconds = 0;
set local max_parallel_workers_per_gather = 0;
do $$ begin perform setseed(0.2727); end $$;

create schema en;

create function en.err(q text) returns text language plpgsql as $$
begin
    execute q;
    return 'ok';
exception when others then
    return sqlstate || ': ' || sqlerrm;
end $$;

create function en.pg_outcome(tab text, rule text) returns text language sql as $$
    select en.err(format('select count(*) from %s where (%s) is true', tab, rule))
$$;

create function en.pg_row(tab text, rule text, id int8) returns text language plpgsql as $$
declare
    v boolean;
begin
    execute format('select (%s) from %s where id = $1', rule, tab) into v using id;
    return coalesce(v::text, 'null');
exception when others then
    return sqlstate || ': ' || sqlerrm;
end $$;

create function en.sql_set(tab text, rule text) returns int8[] language plpgsql as $$
declare
    r int8[];
begin
    execute format('select coalesce(array_agg(id order by id), ''{}'') from %s where (%s) is true', tab, rule)
       into r;
    return r;
end $$;

create function en.seg_set(subject name, tag name) returns int8[] language sql as $$
    select coalesce(array_agg(m order by m), '{}') from segment.members(subject, tag) m
$$;

create function en.refresh_outcome(subject name, tag name) returns text language plpgsql as $$
declare
    failed boolean;
    msg text;
begin
    select r.members is null into failed from segment.refresh(subject) r where r.tag = refresh_outcome.tag;
    if not failed then
        return 'ok';
    end if;
    select substr(run.error, length(format('tag "%s": ', tag)) + 1) into msg
      from segment.run join segment.subject s using (subject_id)
     where s.name = subject order by run_id desc limit 1;
    return 'error: ' || msg;
end $$;

create function en.as_refresh(pg text) returns text language sql as $$
    select case when pg = 'ok' then 'ok' else 'error: ' || substr(pg, 8) end
$$;

create function en.parallel(on_ boolean) returns void language plpgsql as $$
begin
    perform set_config('parallel_setup_cost', case when on_ then '0' else '1000' end, true);
    perform set_config('parallel_tuple_cost', case when on_ then '0' else '0.1' end, true);
    perform set_config('min_parallel_table_scan_size', case when on_ then '0' else '8MB' end, true);
    perform set_config('max_parallel_workers_per_gather', case when on_ then '2' else '0' end, true);
end $$;

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

create function en.run_case(c en.cases) returns setof text language plpgsql as $f$
declare
    tab text := format('en.t%s', c.ord);
    subj name := format('en_c%s', c.ord);
    tag name := format('en_%s', c.name);
    label text := format('%s [%s | %s]', c.name, c.rule, c.poison);
    pg text;
    pg1 text;
    first int8[];
    now_sql int8[];
    got text;
begin
    execute format('create table %s (like en.safe including all)', tab);
    execute format('insert into %s select * from en.safe', tab);
    perform segment.register_subject(subj, tab::regclass, 'id');
    perform segment.create_tag(subj, tag, c.rule);
    perform en.parallel(false);
    perform segment.refresh(subj);
    first := en.seg_set(subj, tag);

    execute format('delete from %s where id %% 10 = 0', tab);
    execute format('insert into %s values (1000000, 12.5, 7.25, 7, 9, true)', tab);
    execute format('update %s set %s where id = 1000000', tab, c.poison);
    pg := en.pg_outcome(tab, c.rule);
    now_sql := case when pg = 'ok' then en.sql_set(tab, c.rule) end;
    return next is(split_part(pg, ':', 1), c.expect, label || ': PostgreSQL''s outcome');
    return next ok(cardinality(first) > 0 and
                   first <> en.sql_set(format('(select * from %s where id <> 1000000) x', tab), c.rule),
                   label || ': the first set is not empty, and not the set a refresh would make now');

    got := en.refresh_outcome(subj, tag);
    return next is(got, en.as_refresh(pg), label || ': serial refresh, same outcome');
    return next is(en.seg_set(subj, tag), coalesce(now_sql, first),
                   label || case when pg = 'ok' then ': serial refresh, members = plain SQL'
                                 else ': serial refresh, the tag keeps its previous members' end);

    execute format('delete from %s where id %% 10 = 5', tab);
    now_sql := case when pg = 'ok' then en.sql_set(tab, c.rule) end;
    perform en.parallel(true);
    got := en.refresh_outcome(subj, tag);
    perform en.parallel(false);
    return next is(got, en.as_refresh(pg), label || ': parallel refresh, same outcome');
    return next is(en.seg_set(subj, tag), coalesce(now_sql, first),
                   label || case when pg = 'ok' then ': parallel refresh, members = plain SQL'
                                 else ': parallel refresh, the tag keeps its previous members' end);

    pg1 := en.pg_row(tab, c.rule, 1000000);
    got := en.err(format('select segment.explain(%L, 1000000::int8, %L)', subj, tag));
    if got = 'ok' then
        execute format('select coalesce(segment.explain(%L, 1000000::int8, %L) ->> ''value'', ''null'')', subj, tag)
           into got;
    end if;
    return next is(got, pg1, label || ': explain of the poison row, as PostgreSQL on that row');

    perform segment.enable_live(subj);
    got := en.err(format('update %1$s set (n, m, a, b, flag) = '
                         '(select n, m, a, b, flag from %1$s where id = 1000000) where id = 1', tab));
    if got = 'ok' then
        got := coalesce(segment.has_tag(subj, 1::int8, tag)::text, 'null');
        pg1 := case pg1 when 'null' then 'false' else pg1 end;
    end if;
    return next is(got, pg1, label || ': live UPDATE into the poison values, as PostgreSQL on that row');
end
$f$;

select en.run_case(c) from en.cases c order by ord;

select * from finish();
rollback;
