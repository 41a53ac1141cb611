-- The streaming member scan (issue 15, src/members_scan.c): segment.members
-- in a FROM clause planned as "Custom Scan (Segment Member Scan)" instead of
-- a function scan. Every query below runs twice, with
-- segment.stream_members on and off: the same rows (in the same order when
-- the query orders them, and members' own ascending order), and the plan
-- shows the scan when on and the function scan when off (so a hook that
-- silently did not apply fails). Where practical the rows are also those of
-- plain SQL over the tags' rules. Shapes: plain, count, a filter and
-- expressions, a join with the table, LATERAL over audiences of a table
-- (rescans with other arguments, a NULL one), a correlated subquery,
-- ORDER BY / LIMIT / OFFSET, UNION and UNION ALL, IN and NOT EXISTS, a
-- LEFT JOIN LATERAL whose constant column the scan computes, two
-- scans joined (a merge join that marks and restores), a nested loop that
-- rescans with the same arguments, a CTE, a window; a scrollable and a
-- plain cursor fetched backward; a PL/pgSQL function and a prepared
-- statement with its generic plan; the as_of variant; an empty audience;
-- the errors (bad audience, unknown subject, text keys, as_of) with the same
-- SQLSTATE and message; EXECUTE on the function revoked. Governance's
-- export check and audit row: test/shell/governance.sh; a re-created
-- extension: test/specs/extension_recreate.spec.

\ir ../fixtures/pgtap.psql

select plan(145);

create schema ms;
create table ms.t (id int8 primary key, a int, b int);
insert into ms.t select g, (g * 37) % 100, (g * 7) % 100 from generate_series(1, 60000) g;
-- a few ids far apart: several containers, some of them sparse
insert into ms.t select g, 1, 99 from generate_series(200000, 1400000, 99991) g;
analyze ms.t;
select segment.register_subject('ms', 'ms.t', 'id');
select segment.create_tag('ms', 'ms_a', 'a < 30');
select segment.create_tag('ms', 'ms_b', 'b >= 50');
select segment.create_tag('ms', 'ms_r', 'id between 1000 and 9000');
select count(*) from segment.refresh('ms');

create table ms.auds (k int, aud text);
insert into ms.auds values (1, 'ms_a'), (2, 'ms_b'), (3, 'ms_a and not ms_b'), (4, null), (5, 'ms_r or ms_a and ms_b'),
                           (6, 'ms_a and not ms_a');

-- a snapshot subject for the as_of variant
create table ms.daily (id int8, data_dt date, a int, primary key (id, data_dt));
create index on ms.daily (data_dt);
insert into ms.daily select g, d, (g * 31 + extract(day from d)::int * 13) % 100
  from generate_series(1, 5000) g, (values (date '2026-12-01'), (date '2026-12-02')) v(d);
select segment.register_subject('msd', 'ms.daily', 'id', snapshot_column => 'data_dt');
select segment.create_tag('msd', 'msd_a', 'a < 40');
select count(*) from segment.refresh('msd', '2026-12-01');
select count(*) from segment.refresh('msd', '2026-12-02');

-- a text-keyed subject
create table ms.tk (k text primary key, a int);
insert into ms.tk select 'K' || g, g % 10 from generate_series(1, 100) g;
select segment.register_subject('mstk', 'ms.tk', 'k');
select segment.create_tag('mstk', 'mstk_a', 'a < 3');
select count(*) from segment.refresh('mstk');

-- the rows of q (as text, in the order returned; sorted unless ordered)
create function ms.rows(q text, stream boolean, ordered boolean) returns text[] language plpgsql as $$
declare
    rec record;
    r text[] := '{}';
begin
    perform set_config('segment.stream_members', stream::text, true);
    for rec in execute q loop
        r := r || rec::text;
    end loop;
    perform set_config('segment.stream_members', 'on', true);
    if not ordered then
        r := array(select x from unnest(r) x order by x);
    end if;
    return r;
end $$;

create function ms.plan(q text, stream boolean) returns text language plpgsql as $$
declare
    l text;
    p text := '';
begin
    perform set_config('segment.stream_members', stream::text, true);
    for l in execute 'explain (costs off) ' || q loop
        p := p || l || E'\n';
    end loop;
    perform set_config('segment.stream_members', 'on', true);
    return p;
end $$;

-- SQLSTATE, message, detail and hint of q's error ('no error' if none)
create function ms.err(q text, stream boolean) returns text language plpgsql as $$
declare
    st text; msg text; det text; hint text;
begin
    perform set_config('segment.stream_members', stream::text, true);
    begin
        execute q;
    exception when others then
        get stacked diagnostics st = returned_sqlstate, msg = message_text,
                                det = pg_exception_detail, hint = pg_exception_hint;
        perform set_config('segment.stream_members', 'on', true);
        return concat_ws(' | ', st, msg, det, hint);
    end;
    perform set_config('segment.stream_members', 'on', true);
    return 'no error';
end $$;

select is(current_setting('segment.stream_members'), 'on', 'segment.stream_members is on by default');

------------------------------------------------------------------------------
-- Plan shapes: streamed and not, the same rows; plain SQL where practical

create table ms.cases (n int primary key, name text, q text, ordered boolean, plain text);
insert into ms.cases values
  (1, 'plain list (ascending)', $$select m from segment.members('ms', 'ms_a and ms_b') m$$, true,
      $$select id from ms.t where a < 30 and b >= 50 order by id$$),
  (2, 'count, sum, min, max', $$select count(*), sum(m), min(m), max(m) from segment.members('ms', 'ms_a or ms_b') m$$, true,
      $$select count(*), sum(id), min(id), max(id) from ms.t where a < 30 or b >= 50$$),
  (3, 'a filter and expressions', $$select m * 2 + 1, m::text || 'x' from segment.members('ms', 'ms_a') m where m % 1000 = 7$$, true,
      $$select id * 2 + 1, id::text || 'x' from ms.t where a < 30 and id % 1000 = 7 order by id$$),
  (4, 'join with the table', $$select t.id, t.a, t.b from segment.members('ms', 'ms_a and not ms_b') m join ms.t on t.id = m where t.a % 3 = 0$$, false,
      $$select id, a, b from ms.t where a < 30 and not b >= 50 and a % 3 = 0$$),
  (5, 'LATERAL over audiences of a table (a NULL one, an empty one)', $$select q.k, m from ms.auds q, lateral segment.members('ms', q.aud) m$$, false,
      $$select q.k, t.id from ms.auds q join ms.t on case q.k when 1 then t.a < 30 when 2 then t.b >= 50
                                                    when 3 then t.a < 30 and not t.b >= 50
                                                    when 5 then t.id between 1000 and 9000 or t.a < 30 and t.b >= 50
                                                    else false end$$),
  (6, 'LATERAL with ORDER BY DESC LIMIT per row', $$select q.k, x.m from ms.auds q cross join lateral (select m from segment.members('ms', q.aud) m order by m desc limit 3) x$$, false, null),
  (7, 'a correlated scalar subquery', $$select q.k, (select count(*) from segment.members('ms', q.aud)) from ms.auds q$$, false, null),
  (8, 'ORDER BY DESC LIMIT', $$select m from segment.members('ms', 'ms_b') m order by m desc limit 7$$, true,
      $$select id from ms.t where b >= 50 order by id desc limit 7$$),
  (9, 'ORDER BY LIMIT OFFSET', $$select m from segment.members('ms', 'ms_b') m order by m limit 5 offset 2000$$, true,
      $$select id from ms.t where b >= 50 order by id limit 5 offset 2000$$),
  (10, 'UNION', $$select m from segment.members('ms', 'ms_a') m union select m from segment.members('ms', 'ms_b') m$$, false,
      $$select id from ms.t where a < 30 or b >= 50$$),
  (11, 'UNION ALL', $$select m from segment.members('ms', 'ms_a') m union all select m from segment.members('ms', 'ms_r') m$$, false,
      $$select id from ms.t where a < 30 union all select id from ms.t where id between 1000 and 9000$$),
  (12, 'IN (subquery)', $$select id, a from ms.t where id in (select m from segment.members('ms', 'ms_a and ms_b') m) and b > 80$$, false,
      $$select id, a from ms.t where a < 30 and b >= 50 and b > 80$$),
  (13, 'NOT EXISTS', $$select count(*) from ms.t where not exists (select from segment.members('ms', 'ms_a') m where m = t.id)$$, true,
      $$select count(*) from ms.t where not a < 30$$),
  (14, 'two scans joined', $$select count(*), sum(m) from segment.members('ms', 'ms_a') m join segment.members('ms', 'ms_b') n on m = n$$, true,
      $$select count(*), sum(id) from ms.t where a < 30 and b >= 50$$),
  (15, 'a CTE', $$with x as materialized (select m from segment.members('ms', 'ms_r') m) select count(*), max(m) from x$$, true,
      $$select count(*), max(id) from ms.t where id between 1000 and 9000$$),
  (16, 'a window', $$select m, row_number() over (order by m), lag(m) over (order by m) from segment.members('ms', 'ms_r and ms_a') m$$, true,
      $$select id, row_number() over (order by id), lag(id) over (order by id) from ms.t where id between 1000 and 9000 and a < 30$$),
  (17, 'an empty audience', $$select m from segment.members('ms', 'ms_a and not ms_a') m$$, true,
      $$select id from ms.t where false$$),
  (18, 'a NULL audience from a subquery', $$select m from segment.members('ms', (select null::text)) m$$, true,
      $$select id from ms.t where false$$),
  (19, 'as_of', $$select m from segment.members('msd', 'msd_a', '2026-12-01') m$$, true,
      $$select id from ms.daily where data_dt = '2026-12-01' and a < 40 order by id$$),
  (20, 'as_of over LATERAL dates', $$select d, count(*), sum(m) from (values (date '2026-12-01'), (date '2026-12-02')) v(d), lateral segment.members('msd', 'msd_a', d) m group by d$$, false,
      $$select data_dt, count(*), sum(id) from ms.daily where a < 40 group by data_dt$$),
  (21, 'the sparse far ids', $$select m from segment.members('ms', 'ms_a and ms_b and not ms_r') m where m > 100000$$, true,
      $$select id from ms.t where id > 100000 order by id$$),
  (22, 'LEFT JOIN LATERAL with a constant column (a placeholder computed by the scan)',
      $$select t.id, s.m, s.one from ms.t left join lateral (select m, 1 as one from segment.members('ms', 'ms_r and ms_a') m where m = t.id) s on true where t.id between 990 and 1100$$, false,
      $$select id, case when id between 1000 and 9000 and a < 30 then id end, case when id between 1000 and 9000 and a < 30 then 1 end from ms.t where id between 990 and 1100$$);

select is(ms.rows(q, true, ordered), ms.rows(q, false, ordered), format('%s: the same rows streamed and not', name))
  from ms.cases order by n;
select ok(ms.plan(q, true) ~ 'Custom Scan \(Segment Member Scan\)', format('%s: streamed (EXPLAIN)', name))
  from ms.cases order by n;
select ok(ms.plan(q, false) !~ 'Segment Member Scan' and ms.plan(q, false) ~ 'Function Scan on members',
          format('%s: a function scan with segment.stream_members off', name))
  from ms.cases order by n;
select is(ms.rows(q, true, ordered), ms.rows(plain, true, ordered), format('%s: the rows of plain SQL', name))
  from ms.cases where plain is not null order by n;
select ok(cardinality(ms.rows(q, true, false)) > 0, format('%s: not empty', name))
  from ms.cases where n in (1, 4, 5, 12, 19, 21) order by n;

------------------------------------------------------------------------------
-- Plans that rescan, mark and restore

set local enable_hashjoin = off;
set local enable_nestloop = off;
set local enable_material = off;
select ok(ms.plan($$select count(*), sum(x) from (select id as x from ms.t union all select id from ms.t where a < 50) u join segment.members('ms', 'ms_b') m on u.x = m$$, true)
          ~ 'Merge Join.*\n.*Segment Member Scan', 'a merge join straight over the scan (mark and restore)');
select is(ms.rows($$select count(*), sum(x) from (select id as x from ms.t union all select id from ms.t where a < 50) u join segment.members('ms', 'ms_b') m on u.x = m$$, true, true),
          ms.rows($$select count(*), sum(id) from (select id, b from ms.t union all select id, b from ms.t where a < 50) u where b >= 50$$, true, true),
          '... its rows: every duplicate outer row matched (restored positions)');
reset enable_hashjoin;
reset enable_nestloop;
set local enable_hashjoin = off;
set local enable_mergejoin = off;
select ok(ms.plan($$select g, count(*), sum(m) from generate_series(1, 3) g, segment.members('ms', 'ms_r') m group by g$$, true)
          ~ 'Nested Loop.*\n.*\n.*Segment Member Scan', 'a nested loop rescans the scan (same arguments)');
select is(ms.rows($$select g, count(*), sum(m) from generate_series(1, 3) g, segment.members('ms', 'ms_r') m group by g$$, true, false),
          ms.rows($$select g, count(*), sum(m) from generate_series(1, 3) g, segment.members('ms', 'ms_r') m group by g$$, false, false),
          '... the same rows at every rescan');
select ok(ms.plan($$select q.k, count(m) from ms.auds q, lateral segment.members('ms', q.aud) m group by q.k$$, true)
          ~ 'Nested Loop.*\n.*\n.*Segment Member Scan', 'LATERAL: a nested loop with a parameter');
reset enable_hashjoin;
reset enable_mergejoin;
reset enable_material;
select ok(ms.plan($$select m from segment.members('ms', 'ms_b') m order by m$$, true) !~ 'Sort',
          'ORDER BY the member: no sort over the scan (it is in that order)');

------------------------------------------------------------------------------
-- Cursors: backward fetches

create function ms.cursor_walk(q text, stream boolean, scroll boolean) returns text[] language plpgsql as $$
declare
    c refcursor := 'ms_walk';
    r text[] := '{}';
    v record;
    steps text[] := array['next', 'next', 'next', 'prior', 'prior', 'prior', 'prior', 'next', 'absolute 2000',
                          'relative -1500', 'prior', 'relative 700', 'last', 'next', 'prior', 'prior', 'absolute -3',
                          'first', 'prior', 'next', 'absolute 1025', 'prior', 'absolute 1024', 'absolute 1023',
                          'relative 3000', 'relative -3000', 'absolute 999999', 'prior'];
    s text;
begin
    perform set_config('segment.stream_members', stream::text, true);
    if scroll then
        execute format('declare ms_walk scroll cursor for %s', q);
    else
        execute format('declare ms_walk cursor for %s', q);
    end if;
    perform set_config('segment.stream_members', 'on', true);
    foreach s in array steps loop
        execute format('fetch %s from ms_walk', s) into v;
        r := r || (s || ': ' || coalesce(v::text, 'none'));
    end loop;
    execute 'close ms_walk';
    return r;
end $$;

select is(ms.cursor_walk($$select m from segment.members('ms', 'ms_a or ms_b') m$$, true, true),
          ms.cursor_walk($$select m from segment.members('ms', 'ms_a or ms_b') m$$, false, true),
          'a scrollable cursor: the same rows at every fetch, backward and absolute');
select is(ms.cursor_walk($$select m, m % 7 from segment.members('ms', 'ms_b') m where m % 3 = 1$$, true, false),
          ms.cursor_walk($$select m, m % 7 from segment.members('ms', 'ms_b') m where m % 3 = 1$$, false, false),
          'a cursor declared without SCROLL fetched backward (as the function scan allows): the same rows');
select is(ms.cursor_walk($$select m from segment.members('ms', 'ms_a or ms_b') m$$, true, true),
          ms.cursor_walk($$select id from ms.t where a < 30 or b >= 50 order by id$$, true, true),
          '... and those of plain SQL');
select is(ms.cursor_walk($$select m from segment.members('ms', 'ms_r') m$$, true, true),
          ms.cursor_walk($$select id from ms.t where id between 1000 and 9000 order by id$$, true, true),
          'a scrollable cursor over a run of ids (a run container, read from the cache): the rows of plain SQL');
select is(ms.cursor_walk($$select m from segment.members('ms', 'ms_r or ms_a and ms_b and not ms_r') m$$, true, true),
          ms.cursor_walk($$select id from ms.t where id between 1000 and 9000 or a < 30 and b >= 50 order by id$$, true, true),
          'a scrollable cursor over runs, arrays and the sparse far ids: the rows of plain SQL');

------------------------------------------------------------------------------
-- PL/pgSQL and prepared statements (cached and generic plans)

create function ms.count_of(aud text) returns bigint language plpgsql as $$
begin
    return (select count(*) from segment.members('ms', aud));
end $$;
create function ms.counts_ok() returns boolean language plpgsql as $$
declare
    auds text[] := array['ms_a', 'ms_b', 'ms_r', 'ms_a and ms_b', 'ms_a', 'ms_r or ms_b', 'ms_b and not ms_a',
                         'ms_a and not ms_a', 'ms_r', 'ms_a or ms_b'];
    a text;
begin
    foreach a in array auds loop
        if ms.count_of(a) is distinct from segment.count('ms', a) then
            raise notice 'count_of(%) = %, count = %', a, ms.count_of(a), segment.count('ms', a);
            return false;
        end if;
    end loop;
    return true;
end $$;
select ok(ms.counts_ok(), 'a PL/pgSQL function (its plan cached, then generic): the counts of segment.count, ten calls');

prepare ms_p(text) as select count(*), sum(m) from segment.members('ms', $1) m;
set local plan_cache_mode = force_generic_plan;
create function ms.explain_p() returns text language plpgsql as $$
declare l text; p text := '';
begin
    for l in execute 'explain (costs off) execute ms_p(''ms_a'')' loop p := p || l || E'\n'; end loop;
    return p;
end $$;
select ok(ms.explain_p() ~ 'Segment Member Scan', 'a prepared statement''s generic plan streams');
select results_eq($$execute ms_p('ms_a')$$, $$select count(*), sum(id) from ms.t where a < 30$$,
                  'prepared, generic plan: ms_a');
select results_eq($$execute ms_p('ms_b and ms_r')$$, $$select count(*), sum(id) from ms.t where b >= 50 and id between 1000 and 9000$$,
                  'prepared, generic plan: another audience');
select results_eq($$execute ms_p(null)$$, $$values (0::bigint, null::numeric)$$,
                  'prepared, generic plan: NULL (no rows)');
reset plan_cache_mode;
deallocate ms_p;

------------------------------------------------------------------------------
-- Errors: the same SQLSTATE, message, detail and hint

create table ms.errs (n int primary key, name text, q text, state text);
insert into ms.errs values
  (1, 'a syntax error', $$select * from segment.members('ms', 'ms_a and')$$, '42601'),
  (2, 'an unknown name', $$select * from segment.members('ms', 'ms_a or nope')$$, '42704'),
  (3, 'an unknown subject', $$select * from segment.members('nope', 'ms_a')$$, '42704'),
  (4, 'a text-keyed subject', $$select * from segment.members('mstk', 'mstk_a')$$, '42804'),
  (5, 'as_of: an infinite date', $$select * from segment.members('msd', 'msd_a', 'infinity')$$, '22023'),
  (6, 'as_of: a date not retained', $$select * from segment.members('msd', 'msd_a', '2026-11-30')$$, 'P0002'),
  (7, 'as_of: not a snapshot subject', $$select * from segment.members('ms', 'ms_a', '2026-12-01')$$, '0A000'),
  (8, 'as_of: a text-keyed snapshot... subject first', $$select * from segment.members('mstk', 'mstk_a', '2026-12-01')$$, '0A000'),
  (9, 'an audience from a table, failing on its second row', $$select q.k, m from (values (1, 'ms_a'), (2, 'ms_a and (')) q(k, a), lateral segment.members('ms', q.a) m$$, '42601');

select is(ms.err(q, true), ms.err(q, false), format('%s: the same error streamed and not', name)) from ms.errs order by n;
select is(split_part(ms.err(q, true), ' | ', 1), state, format('%s: %s', name, state)) from ms.errs order by n;
select ok(ms.plan(q, true) ~ 'Segment Member Scan', format('%s: raised by the scan', name)) from ms.errs order by n;

-- EXECUTE on the function: checked when the plan starts, as for a function scan
create role ms_no_execute;
grant usage on schema segment, ms to ms_no_execute;
grant select on all tables in schema segment to ms_no_execute;
revoke execute on function segment.members(name, text) from public;
set local role ms_no_execute;
select is(ms.err($$select count(*) from segment.members('ms', 'ms_a')$$, true),
          ms.err($$select count(*) from segment.members('ms', 'ms_a')$$, false),
          'EXECUTE revoked: the same error streamed and not');
select matches(ms.err($$select count(*) from segment.members('ms', 'ms_a')$$, true), '^42501 \| permission denied for function members',
               '... 42501 permission denied for function members');
reset role;

------------------------------------------------------------------------------
-- When the function scan answers

select ok(ms.plan($$select m from segment.members('ms', 'ms_a') with ordinality m(m, i)$$, true) !~ 'Segment Member Scan',
          'WITH ORDINALITY: the function scan');
select ok(ms.plan($$select * from rows from (segment.members('ms', 'ms_a'), segment.members('ms', 'ms_b')) x$$, true) !~ 'Segment Member Scan',
          'ROWS FROM with two calls: the function scan');
select ok(ms.plan($$select segment.members('ms', 'ms_a')$$, true) !~ 'Segment Member Scan',
          'in the select list (ProjectSet): not a FROM item');
select ok(ms.plan($$update ms.t set a = a from segment.members('ms', 'ms_r') m where t.id = m$$, true) ~ 'Function Scan on members',
          'UPDATE ... FROM (a row copied for rechecks): the function scan');
select ok(ms.plan($$select t.id from ms.t join segment.members('ms', 'ms_r') m on t.id = m for update of t$$, true) ~ 'Function Scan on members',
          'SELECT ... FOR UPDATE OF the table (the member row copied for rechecks): the function scan');
alter function segment.members(name, text) set work_mem = '8MB';
select ok(ms.plan($$select count(*) from segment.members('ms', 'ms_a')$$, true) !~ 'Segment Member Scan',
          'ALTER FUNCTION ... SET: the function scan (it applies the setting)');
alter function segment.members(name, text) reset all;
select ok(ms.plan($$select count(*) from segment.members('ms', 'ms_a')$$, true) ~ 'Segment Member Scan',
          '... RESET: streamed again');

select * from finish();
rollback;
