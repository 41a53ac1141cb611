-- Schemes and scorecards: behaviour of the definition functions and of the
-- reading functions over state written by hand.
--
-- The state a refresh stores (bucket_state, score_state, bucket_history,
-- universe_history, size_snapshot) is built here in plain SQL from the
-- definitions' rules: a scheme is CASE WHEN r1 THEN 'b1' WHEN r2 ... END, a
-- scorecard is base + sum(CASE WHEN ri IS TRUE THEN pi ELSE 0 END). Then:
--   * bucket_of / score answer exactly that for every customer;
--   * top equals ORDER BY score DESC, key LIMIT n over the audience;
--   * transitions equal a plain SQL diff (full join) of two snapshots,
--     with (entered), (exited) and (none);
--   * every bad definition fails with its SQLSTATE and leaves the catalog
--     (sequences included) as it was;
--   * the DDL guard protects the columns buckets and items read;
--   * history records create / alter / drop, also through
--     unregister_subject.

\ir ../fixtures/pgtap.psql

select plan(90);

create schema st;
create table st.c (
    id         int8 primary key,
    aum        numeric(18,2),
    has_fund   boolean,
    products   int,
    visits     int,
    last_visit date,
    city       text,
    spare      int
);
-- deterministic pseudo-random data with NULLs in every rule column
insert into st.c
select n,
       case when n % 17 = 0 then null else ((n * 7919) % 1000) * 1000.25 end,
       case when n % 13 = 0 then null else (n * 31) % 3 = 0 end,
       case when n % 11 = 0 then null else (n * 13) % 5 end,
       (n * 17) % 7,
       case when n % 19 = 0 then null else date '2026-11-01' - (n * 37) % 120 end,
       (array['Shanghai', 'Beijing', 'Chengdu'])[1 + n % 3],
       n
  from generate_series(1, 2000) n;

create table st.acct (k text primary key, balance numeric, kind text);
insert into st.acct
select 'AC-' || lpad(n::text, 4, '0'), case when n % 9 = 0 then null else (n * 7717) % 200000 end,
       (array['current', 'saving'])[1 + n % 2]
  from generate_series(1, 300) n;

do $$ begin
    perform segment.register_subject('st_c', 'st.c', 'id');
    perform segment.register_subject('st_acct', 'st.acct', 'k');
    perform segment.create_tag('st_c', 'st_wealthy', 'aum >= 500000');
    perform segment.create_tag('st_c', 'st_fund', 'has_fund');
    perform segment.create_tag('st_acct', 'st_saving', $r$kind = 'saving'$r$);
end $$;

select lives_ok($$select segment.create_scheme('st_c', 'st_tier',
    array[['affluent', 'aum >= 800000'], ['emerging', 'aum >= 300000'], ['mass', 'aum >= 0']],
    'value tier, no catch-all: NULL aum is in no bucket')$$, 'create_scheme st_tier');
select lives_ok($$select segment.create_scheme('st_c', 'st_aipl',
    array[['loyalty',   'products >= 3 and visits >= 4'],
          ['purchase',  'products >= 1'],
          ['interest',  'visits >= 2 or last_visit >= segment.as_of() - 30'],
          ['awareness', 'true']])$$, 'create_scheme st_aipl (AIPL lifecycle)');
select lives_ok($$select segment.create_scorecard('st_c', 'st_score', 50,
    array[['has_fund', '20'], ['visits >= 3', '7.5'], ['products = 0', '-15'], ['aum > 500000', '12.25']],
    array[['low', null, '60'], ['mid', '60', '80'], ['high', '80', '']])$$, 'create_scorecard st_score');
select lives_ok($$select segment.create_scheme('st_acct', 'st_acct_tier',
    array[['big', 'balance >= 150000'], ['medium', 'balance >= 50000'], ['small', 'true']])$$,
    'create_scheme on a text-keyed subject');
select lives_ok($$select segment.create_scorecard('st_acct', 'st_acct_score', 0,
    array[['balance > 100000', '3'], [$r$kind = 'saving'$r$, '2'], ['balance is null', '-1']])$$,
    'create_scorecard on a text-keyed subject');

select results_eq(
    $$select b.position, b.name::text collate "default", b.rule, array_to_string(b.columns, ',') collate "default"
        from segment.scheme_bucket b join segment.scheme s using (scheme_id)
       where s.name = 'st_aipl' order by b.position$$,
    $$values (1, 'loyalty', 'products >= 3 and visits >= 4', 'products,visits'),
             (2, 'purchase', 'products >= 1', 'products'),
             (3, 'interest', 'visits >= 2 or last_visit >= segment.as_of() - 30', 'visits,last_visit'),
             (4, 'awareness', 'true', '')$$,
    'buckets are stored in order with the columns they read');
select results_eq(
    $$select i.position, i.points, array_to_string(i.column_types, ',')
        from segment.scorecard_item i join segment.scorecard s using (scorecard_id)
       where s.name = 'st_score' order by i.position$$,
    $$values (1, 20::numeric, 'boolean'), (2, 7.5, 'integer'), (3, -15, 'integer'),
             (4, 12.25, 'numeric')$$,
    'items are stored in order with numeric points and column types');
select results_eq(
    $$select b.name::text collate "default", b.min_score, b.max_score
        from segment.scorecard_band b join segment.scorecard s using (scorecard_id)
       where s.name = 'st_score' order by b.min_score nulls first$$,
    $$values ('low', null::numeric, 60::numeric), ('mid', 60, 80), ('high', 80, null)$$,
    'bands: NULL and empty bounds are open');

------------------------------------------------------------------------------
-- The truth in plain SQL, and state written from it.

-- One row per customer of a subject as of a date: its key, member id,
-- bucket in each scheme and score in each scorecard, by evaluating the
-- stored rules with PostgreSQL.
create table st.truth (subject name, as_of date, key text, member_id int8,
                       scheme name, bucket text, scorecard name, score numeric);

create function st.snapshot_truth(subj name, d date) returns void language plpgsql as $f$
declare
    sub segment.subject;
    keyexpr text;
    idexpr text;
    s record;
    q text;
begin
    select * into sub from segment.subject where name = subj;
    perform set_config('segment.as_of', d::text, true);
    keyexpr := format('%I::text', sub.key_column);
    idexpr := case when sub.key_type in ('int4'::regtype, 'int8'::regtype)
                   then format('%I::int8', sub.key_column)
                   else format('(select m.member_id from segment.keymap m where m.subject_id = %s and m.key = %I::text)',
                               sub.subject_id, sub.key_column) end;
    delete from st.truth t where t.subject = subj and t.as_of = d;
    for s in select m.name, string_agg(format('when (%s) then %L', b.rule, b.name), ' ' order by b.position) as cases
               from segment.scheme m join segment.scheme_bucket b using (scheme_id)
              where m.subject_id = sub.subject_id group by m.name
    loop
        q := format('insert into st.truth (subject, as_of, key, member_id, scheme, bucket)
                     select %L, %L, %s, %s, %L, case %s end from %s',
                    subj, d, keyexpr, idexpr, s.name, s.cases, sub.relation);
        execute q;
    end loop;
    for s in select c.name, c.base,
                    string_agg(format('case when (%s) is true then %s else 0 end', i.rule, i.points), ' + ') as terms
               from segment.scorecard c join segment.scorecard_item i using (scorecard_id)
              where c.subject_id = sub.subject_id group by c.name, c.base
    loop
        q := format('insert into st.truth (subject, as_of, key, member_id, scorecard, score)
                     select %L, %L, %s, %s, %L, %s + %s from %s',
                    subj, d, keyexpr, idexpr, s.name, s.base, s.terms, sub.relation);
        execute q;
    end loop;
    perform set_config('segment.as_of', '', true);
end $f$;

-- Writes what a refresh as of d stores, from st.truth: history rows for d
-- (every bucket, empty ones included) and, when current, the state tables.
create function st.write_state(subj name, d date, run bigint, current boolean) returns void language plpgsql as $f$
declare
    sid int := (select subject_id from segment.subject where name = subj);
begin
    delete from segment.universe_history where subject_id = sid and as_of = d;
    insert into segment.universe_history (subject_id, as_of, universe, member_count, run_id)
    select sid, d, segment.memberset_agg(u.member_id), count(*), run
      from (select distinct member_id from st.truth t where t.subject = subj and t.as_of = d) u;
    delete from segment.bucket_history h using segment.scheme m
     where h.scheme_id = m.scheme_id and m.subject_id = sid and h.as_of = d;
    insert into segment.bucket_history (scheme_id, as_of, bucket, members, member_count, run_id)
    select b.scheme_id, d, b.name,
           coalesce(segment.memberset_agg(t.member_id), '{}'::segment.memberset), count(t.member_id), run
      from segment.scheme m join segment.scheme_bucket b using (scheme_id)
      left join st.truth t on t.subject = subj and t.as_of = d and t.scheme = m.name and t.bucket = b.name
     where m.subject_id = sid
     group by b.scheme_id, b.name;
    delete from segment.size_snapshot z where z.subject_id = sid and z.as_of = d and z.kind = 'bucket';
    insert into segment.size_snapshot (subject_id, as_of, kind, name, members, run_id)
    select sid, d, 'bucket', m.name || '.' || h.bucket, h.member_count, run
      from segment.bucket_history h join segment.scheme m using (scheme_id)
     where m.subject_id = sid and h.as_of = d;
    if current then
        delete from segment.bucket_state x using segment.scheme m
         where x.scheme_id = m.scheme_id and m.subject_id = sid;
        insert into segment.bucket_state (scheme_id, bucket, members, member_count, as_of, run_id)
        select h.scheme_id, h.bucket, h.members, h.member_count, d, run
          from segment.bucket_history h join segment.scheme m using (scheme_id)
         where m.subject_id = sid and h.as_of = d;
        delete from segment.score_state x using segment.scorecard c
         where x.scorecard_id = c.scorecard_id and c.subject_id = sid;
        insert into segment.score_state (scorecard_id, score, members, member_count, as_of, run_id)
        select c.scorecard_id, t.score, segment.memberset_agg(t.member_id), count(*), d, run
          from st.truth t join segment.scorecard c on c.name = t.scorecard
         where t.subject = subj and t.as_of = d
         group by c.scorecard_id, t.score;
    end if;
end $f$;

-- Day 1: the table as generated.
do $$ begin
    perform segment.refresh('st_c', '2026-11-01');
    perform segment.refresh('st_acct', '2026-11-01');
    perform st.snapshot_truth('st_c', '2026-11-01');
    perform st.write_state('st_c', '2026-11-01', 1, false);
end $$;

-- Day 2: customers change, leave and arrive.
update st.c set aum = aum * 3 where id % 10 = 1;
update st.c set aum = null where id % 23 = 0;
update st.c set products = products + 2 where id % 6 = 0;
update st.c set has_fund = not has_fund where id % 5 = 0;
delete from st.c where id % 40 = 7;
insert into st.c (id, aum, has_fund, products, visits, last_visit, city, spare)
select n, case when n % 4 = 0 then null else (n % 1000) * 10030 end, n % 2 = 0, n % 4, n % 7,
       date '2026-12-01' - n % 50, 'Shanghai', n
  from generate_series(2001, 2060) n;
do $$ begin
    perform segment.refresh('st_c', '2026-12-01');
    perform st.snapshot_truth('st_c', '2026-12-01');
    perform st.write_state('st_c', '2026-12-01', 2, true);
    perform segment.refresh('st_acct', '2026-12-01');
    perform st.snapshot_truth('st_acct', '2026-12-01');
    perform st.write_state('st_acct', '2026-12-01', 3, true);
end $$;

select cmp_ok((select count(distinct bucket) from st.truth where scheme = 'st_tier' and as_of = '2026-12-01'),
              '>=', 3::bigint, 'the generated data fills several buckets');
select cmp_ok((select count(*) from st.truth where scheme = 'st_tier' and as_of = '2026-12-01' and bucket is null),
              '>', 0::bigint, 'and leaves some customers in no bucket');

------------------------------------------------------------------------------
-- bucket_of and score

select is((select count(*) from st.truth t
            where t.subject = 'st_c' and t.as_of = '2026-12-01' and t.scheme is not null
              and segment.bucket_of('st_c', t.key::bigint, t.scheme) is distinct from t.bucket),
          0::bigint, 'bucket_of = CASE WHEN ... END for every customer and both schemes (bigint keys)');
select is((select count(*) from st.truth t
            where t.subject = 'st_c' and t.as_of = '2026-12-01' and t.scheme = 'st_tier'
              and segment.bucket_of('st_c', t.key, t.scheme) is distinct from t.bucket),
          0::bigint, 'bucket_of with the key as text');
select is((select count(*) from st.truth t
            where t.subject = 'st_acct' and t.as_of = '2026-12-01' and t.scheme is not null
              and segment.bucket_of('st_acct', t.key, t.scheme) is distinct from t.bucket),
          0::bigint, 'bucket_of = CASE WHEN ... END for every account (text keys)');
select is(segment.bucket_of('st_c', 7, 'st_tier'), null, 'a customer who left is in no bucket');
select is(segment.bucket_of('st_c', 999999, 'st_aipl'), null, 'an unknown key is in no bucket');
select is(segment.bucket_of('st_acct', 'nobody', 'st_acct_tier'), null, 'an unknown text key is in no bucket');
select is(segment.bucket_of('st_c', null::bigint, 'st_tier'), null, 'NULL key: NULL');

select is((select count(*) from st.truth t
            where t.subject = 'st_c' and t.as_of = '2026-12-01' and t.scorecard = 'st_score'
              and segment.score('st_c', t.key::bigint, t.scorecard) is distinct from t.score),
          0::bigint, 'score = base + sum(CASE WHEN rule IS TRUE THEN points ELSE 0 END) for every customer');
select is((select count(*) from st.truth t
            where t.subject = 'st_acct' and t.as_of = '2026-12-01' and t.scorecard = 'st_acct_score'
              and segment.score('st_acct', t.key, t.scorecard) is distinct from t.score),
          0::bigint, 'score for every account (text keys)');
select is(segment.score('st_c', 7, 'st_score'), null, 'a customer who left has no score');

select throws_ok($$select segment.bucket_of('st_c', 1, 'st_acct_tier')$$, '42704', null,
                 'bucket_of: scheme of another subject');
select throws_ok($$select segment.bucket_of('st_c', 1, 'nosuch')$$, '42704', null, 'bucket_of: unknown scheme');
select throws_ok($$select segment.bucket_of('nosuch', 1, 'st_tier')$$, '42704', null, 'bucket_of: unknown subject');
select throws_ok($$select segment.bucket_of('st_c', 'x1', 'st_tier')$$, '22P02', null, 'bucket_of: bad integer key');
select throws_ok($$select segment.bucket_of('st_c', -1, 'st_tier')$$, '22003', null, 'bucket_of: key out of range');
select throws_ok($$select segment.score('st_c', 1, 'st_tier')$$, '42704', null, 'score: a scheme is not a scorecard');

------------------------------------------------------------------------------
-- top

create function st.sql_top(subj name, card name, keys text[], n int) returns table (key text, score numeric)
language sql as $$
    select t.key, t.score from st.truth t
     where t.subject = subj and t.as_of = '2026-12-01' and t.scorecard = card
       and (keys is null or t.key = any (keys))
     order by t.score desc,
              case when subj = 'st_c' then t.key::int8 end,
              t.key
     limit n
$$;

select results_eq($$select * from segment.top('st_c', 'st_score', null, 25)$$,
                  $$select * from st.sql_top('st_c', 'st_score', null, 25)$$,
                  'top 25 of everyone = ORDER BY score DESC, key LIMIT 25');
select results_eq($$select * from segment.top('st_c', 'st_score', null, 1)$$,
                  $$select * from st.sql_top('st_c', 'st_score', null, 1)$$, 'top 1');
select results_eq($$select * from segment.top('st_c', 'st_score', 'st_wealthy', 40)$$,
                  $$select * from st.sql_top('st_c', 'st_score',
                        array(select id::text from st.c where (aum >= 500000) is true), 40)$$,
                  'top 40 of an audience (a tag)');
select results_eq($$select * from segment.top('st_c', 'st_score', 'st_wealthy and not st_fund', 30)$$,
                  $$select * from st.sql_top('st_c', 'st_score',
                        array(select id::text from st.c
                               where (aum >= 500000) is true and not (has_fund is true)), 30)$$,
                  'top 30 of an audience with and / not');
select results_eq($$select * from segment.top('st_c', 'st_score', 'st_wealthy', 100000)$$,
                  $$select * from st.sql_top('st_c', 'st_score',
                        array(select id::text from st.c where (aum >= 500000) is true), 100000)$$,
                  'n larger than the audience: every member, in order');
select results_eq($$select * from segment.top('st_acct', 'st_acct_score', 'st_saving', 20)$$,
                  $$select * from st.sql_top('st_acct', 'st_acct_score',
                        array(select k from st.acct where kind = 'saving'), 20)$$,
                  'top on a text-keyed subject, ties by key text');
select is((select count(*) from segment.top('st_c', 'st_score', null, 0)), 0::bigint, 'top 0: nothing');
select throws_ok($$select * from segment.top('st_c', 'st_score', null, null)$$, '22004', null, 'top: n NULL');
select throws_ok($$select * from segment.top('st_c', 'st_score', null, -3)$$, '22023', null, 'top: n negative');
select throws_ok($$select * from segment.top('st_c', 'st_score', 'nosuch', 3)$$, '42704', null,
                 'top: unknown name in the audience');
select throws_ok($$select * from segment.top('st_c', 'st_acct_score', null, 3)$$, '42704', null,
                 'top: scorecard of another subject');

------------------------------------------------------------------------------
-- transitions = a SQL diff of the two snapshots

create function st.sql_transitions(sch name, d1 date, d2 date) returns table (f text, t text, n bigint)
language sql as $$
    with a as (select key, bucket from st.truth where scheme = sch and as_of = d1),
         b as (select key, bucket from st.truth where scheme = sch and as_of = d2)
    select case when a.key is null then '(entered)' else coalesce(a.bucket, '(none)') end,
           case when b.key is null then '(exited)' else coalesce(b.bucket, '(none)') end,
           count(*)
      from a full join b on a.key = b.key
     group by 1, 2
$$;

select set_eq($$select * from segment.transitions('st_c', 'st_tier', '2026-11-01', '2026-12-01')$$,
              $$select * from st.sql_transitions('st_tier', '2026-11-01', '2026-12-01')$$,
              'transitions of st_tier = SQL diff of the two snapshots');
select set_eq($$select * from segment.transitions('st_c', 'st_aipl', '2026-11-01', '2026-12-01')$$,
              $$select * from st.sql_transitions('st_aipl', '2026-11-01', '2026-12-01')$$,
              'transitions of st_aipl = SQL diff of the two snapshots');
select set_eq($$select * from segment.transitions('st_c', 'st_tier', '2026-12-01', '2026-11-01')$$,
              $$select * from st.sql_transitions('st_tier', '2026-12-01', '2026-11-01')$$,
              'transitions backwards in time: the same diff, reversed');
select set_eq($$select * from segment.transitions('st_c', 'st_tier', '2026-11-20', '2027-01-15')$$,
              $$select * from st.sql_transitions('st_tier', '2026-11-01', '2026-12-01')$$,
              'dates between refreshes use the latest snapshot on or before each');
select set_eq($$select * from segment.transitions('st_c', 'st_tier', '2026-12-01', '2026-12-01')$$,
              $$select coalesce(bucket, '(none)') f, coalesce(bucket, '(none)') t, count(*) from st.truth
                 where scheme = 'st_tier' and as_of = '2026-12-01' group by 1, 2$$,
              'the same date twice: the diagonal');
select is((select sum(customers) from segment.transitions('st_c', 'st_tier', '2026-11-01', '2026-12-01')),
          (select count(*) from (select key from st.truth where scheme = 'st_tier' and as_of = '2026-11-01'
                                  union select key from st.truth where scheme = 'st_tier' and as_of = '2026-12-01') x)::numeric,
          'every customer of either date is counted once');
select is((select customers from segment.transitions('st_c', 'st_tier', '2026-11-01', '2026-12-01')
            where from_bucket = '(entered)' and to_bucket = 'emerging'),
          (select count(*) from st.c where id > 2000 and aum >= 300000 and aum < 800000),
          '(entered) -> emerging: the new customers in that tier');
select is((select sum(customers) from segment.transitions('st_c', 'st_tier', '2026-11-01', '2026-12-01')
            where to_bucket = '(exited)'), 50::numeric, '... -> (exited): the 50 deleted customers');
select ok(not exists (select 1 from segment.transitions('st_c', 'st_tier', '2026-11-01', '2026-12-01')
                       where customers <= 0), 'only pairs with customers > 0');
select results_eq($$select from_bucket from segment.transitions('st_c', 'st_tier', '2026-11-01', '2026-12-01') limit 1$$,
                  $$values ('(entered)')$$, 'rows start with (entered)');
select throws_like($$select * from segment.transitions('st_c', 'st_tier', '2026-10-31', '2026-12-01')$$,
                   '%no history on or before 2026-10-31%', 'a date before the first snapshot: named in the error');
select throws_ok($$select * from segment.transitions('st_c', 'st_tier', '2026-10-31', '2026-12-01')$$,
                 '55000', null, '... with SQLSTATE 55000');
select throws_ok($$select * from segment.transitions('st_c', 'st_tier', null, '2026-12-01')$$,
                 '22004', null, 'transitions: NULL date');
select throws_ok($$select * from segment.transitions('st_acct', 'st_tier', '2026-11-01', '2026-12-01')$$,
                 '42704', null, 'transitions: scheme of another subject');

------------------------------------------------------------------------------
-- size_history

select set_eq($$select as_of, subject::text collate "default", kind, name, members from segment.size_history where subject = 'st_c' and kind = 'bucket'$$,
              $$select as_of, 'st_c' s, 'bucket' k, scheme || '.' || bucket n, count(*) c from st.truth
                 where subject = 'st_c' and scheme is not null and bucket is not null group by 1, 4
                union all
                select d, 'st_c', 'bucket', m.name || '.' || b.name, 0
                  from segment.scheme m join segment.scheme_bucket b using (scheme_id),
                       (values ('2026-11-01'::date), ('2026-12-01')) v(d)
                 where m.name in ('st_tier', 'st_aipl')
                   and not exists (select 1 from st.truth t where t.as_of = d and t.scheme = m.name
                                                              and t.bucket = b.name)$$,
              'size_history: one row per bucket and date with its size');

------------------------------------------------------------------------------
-- Inactive and never refreshed

select lives_ok($$select segment.alter_scheme('st_tier', active => false)$$, 'deactivate st_tier');
select throws_ok($$select segment.bucket_of('st_c', 1, 'st_tier')$$, '55000', null, 'bucket_of: inactive scheme');
select lives_ok($$select segment.alter_scheme('st_tier', active => true)$$, 'reactivate st_tier');
select is(segment.bucket_of('st_c', 2, 'st_tier'),
          (select bucket::name from st.truth where scheme = 'st_tier' and as_of = '2026-12-01' and key = '2'),
          'reactivated: reads its last state again');
select lives_ok($$select segment.alter_scorecard('st_score', active => false)$$, 'deactivate st_score');
select throws_ok($$select segment.score('st_c', 1, 'st_score')$$, '55000', null, 'score: inactive scorecard');
select throws_ok($$select * from segment.top('st_c', 'st_score', null, 1)$$, '55000', null, 'top: inactive scorecard');
select lives_ok($$select segment.alter_scorecard('st_score', active => true)$$, 'reactivate st_score');
select lives_ok($$select segment.create_scheme('st_c', 'st_new', array[['all', 'true']])$$, 'a new scheme');
select throws_ok($$select segment.bucket_of('st_c', 1, 'st_new')$$, '55000', null,
                 'bucket_of: scheme never refreshed');

------------------------------------------------------------------------------
-- Bad definitions: SQLSTATE, and nothing changes (sequences included)

create function st.catalog() returns text language sql as $$
    select md5(string_agg(x, E'\n' order by x)) from (
        select 'scheme ' || row(s.*)::text from segment.scheme s
        union all select 'bucket ' || row(b.*)::text from segment.scheme_bucket b
        union all select 'scorecard ' || row(c.*)::text from segment.scorecard c
        union all select 'item ' || row(i.*)::text from segment.scorecard_item i
        union all select 'band ' || row(b.*)::text from segment.scorecard_band b
        union all select 'history ' || row(h.*)::text from segment.definition_history h
        union all select 'tag ' || row(t.*)::text from segment.tag t
        union all select 'bucket_state ' || row(x.scheme_id, x.bucket, x.member_count)::text from segment.bucket_state x
        union all select 'score_state ' || row(x.scorecard_id, x.score, x.member_count)::text from segment.score_state x
        union all select 'seq ' || last_value || is_called from segment.scheme_scheme_id_seq
        union all select 'seq ' || last_value || is_called from segment.scorecard_scorecard_id_seq
        union all select 'seq ' || last_value || is_called from segment.definition_history_history_id_seq
    ) z(x)
$$;

create table st.cases (ord serial, what text, sql text, sqlstate text);
insert into st.cases (what, sql, sqlstate) values
('scheme: unknown subject',       $s$select segment.create_scheme('nosuch', 'x1', array[['a', 'true']])$s$, '42704'),
('scheme: bad name',              $s$select segment.create_scheme('st_c', 'x 1', array[['a', 'true']])$s$, '42602'),
('scheme: keyword name',          $s$select segment.create_scheme('st_c', 'not', array[['a', 'true']])$s$, '42602'),
('scheme: duplicate',             $s$select segment.create_scheme('st_c', 'st_tier', array[['a', 'true']])$s$, '42710'),
('scheme: a tag''s name',         $s$select segment.create_scheme('st_c', 'st_wealthy', array[['a', 'true']])$s$, '42710'),
('scheme: a scorecard''s name',   $s$select segment.create_scheme('st_c', 'st_score', array[['a', 'true']])$s$, '42710'),
('scheme: same name, other subject', $s$select segment.create_scheme('st_acct', 'st_tier', array[['a', 'true']])$s$, '42710'),
('scheme: empty list',            $s$select segment.create_scheme('st_c', 'x1', '{}')$s$, '22023'),
('scheme: NULL list',             $s$select segment.create_scheme('st_c', 'x1', null)$s$, '22004'),
('scheme: one-dimensional',       $s$select segment.create_scheme('st_c', 'x1', array['a', 'true'])$s$, '22023'),
('scheme: triples',               $s$select segment.create_scheme('st_c', 'x1', array[['a', 'true', 'x']])$s$, '22023'),
('scheme: single elements',       $s$select segment.create_scheme('st_c', 'x1', array[['a'], ['b']])$s$, '22023'),
('scheme: duplicate bucket',      $s$select segment.create_scheme('st_c', 'x1', array[['a', 'aum > 1'], ['b', 'true'], ['a', 'true']])$s$, '42710'),
('scheme: bad bucket name',       $s$select segment.create_scheme('st_c', 'x1', array[['1a', 'true']])$s$, '42602'),
('scheme: keyword bucket name',   $s$select segment.create_scheme('st_c', 'x1', array[['and', 'true']])$s$, '42602'),
('scheme: NULL bucket name',      $s$select segment.create_scheme('st_c', 'x1', array[[null, 'true']])$s$, '42602'),
('scheme: long bucket name',      $s$select segment.create_scheme('st_c', 'x1', array[[repeat('x', 64), 'true']])$s$, '42622'),
('scheme: NULL rule',             $s$select segment.create_scheme('st_c', 'x1', array[['a', 'aum > 1'], ['b', null]])$s$, '22004'),
('scheme: syntax error',          $s$select segment.create_scheme('st_c', 'x1', array[['a', 'aum > 1'], ['b', 'aum >']])$s$, '42601'),
('scheme: empty rule',            $s$select segment.create_scheme('st_c', 'x1', array[['a', '']])$s$, '42601'),
('scheme: unknown column',        $s$select segment.create_scheme('st_c', 'x1', array[['a', 'nosuch > 1']])$s$, '42703'),
('scheme: not boolean',           $s$select segment.create_scheme('st_c', 'x1', array[['a', 'aum']])$s$, '42804'),
('scheme: volatile',              $s$select segment.create_scheme('st_c', 'x1', array[['a', 'random() < 0.5']])$s$, '0A000'),
('scheme: subquery',              $s$select segment.create_scheme('st_c', 'x1', array[['a', 'aum > (select 1)']])$s$, '0A000'),
('scheme: aggregate',             $s$select segment.create_scheme('st_c', 'x1', array[['a', 'sum(aum) > 1']])$s$, '42803'),
('scheme: other table',           $s$select segment.create_scheme('st_c', 'x1', array[['a', 'st.acct.balance > 1']])$s$, '42P01'),
('alter_scheme: unknown',         $s$select segment.alter_scheme('nosuch', active => true)$s$, '42704'),
('alter_scheme: nothing',         $s$select segment.alter_scheme('st_tier')$s$, '22023'),
('alter_scheme: bad rule',        $s$select segment.alter_scheme('st_tier', buckets => array[['a', 'aum >= 1'], ['b', 'nosuch']])$s$, '42703'),
('alter_scheme: empty',           $s$select segment.alter_scheme('st_tier', buckets => '{}')$s$, '22023'),
('alter_scheme: duplicate bucket', $s$select segment.alter_scheme('st_tier', buckets => array[['a', 'true'], ['a', 'true']])$s$, '42710'),
('drop_scheme: unknown',          $s$select segment.drop_scheme('nosuch')$s$, '42704'),
('scorecard: unknown subject',    $s$select segment.create_scorecard('nosuch', 'x1', 0, array[['true', '1']])$s$, '42704'),
('scorecard: bad name',           $s$select segment.create_scorecard('st_c', 'x-1', 0, array[['true', '1']])$s$, '42602'),
('scorecard: duplicate',          $s$select segment.create_scorecard('st_c', 'st_score', 0, array[['true', '1']])$s$, '42710'),
('scorecard: a scheme''s name',   $s$select segment.create_scorecard('st_c', 'st_aipl', 0, array[['true', '1']])$s$, '42710'),
('scorecard: NULL base',          $s$select segment.create_scorecard('st_c', 'x1', null, array[['true', '1']])$s$, '22004'),
('scorecard: NaN base',           $s$select segment.create_scorecard('st_c', 'x1', 'NaN', array[['true', '1']])$s$, '22023'),
('scorecard: no items',           $s$select segment.create_scorecard('st_c', 'x1', 0, '{}')$s$, '22023'),
('scorecard: NULL items',         $s$select segment.create_scorecard('st_c', 'x1', 0, null)$s$, '22004'),
('scorecard: items not pairs',    $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1', '2']])$s$, '22023'),
('scorecard: points not a number', $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1'], ['has_fund', 'ten']])$s$, '22P02'),
('scorecard: points empty',       $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '']])$s$, '22P02'),
('scorecard: points NaN',         $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', 'NaN']])$s$, '22P02'),
('scorecard: points Infinity',    $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', 'Infinity']])$s$, '22P02'),
('scorecard: points NULL',        $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', null]])$s$, '22004'),
('scorecard: rule NULL',          $s$select segment.create_scorecard('st_c', 'x1', 0, array[[null, '1']])$s$, '22004'),
('scorecard: rule not boolean',   $s$select segment.create_scorecard('st_c', 'x1', 0, array[['visits', '1']])$s$, '42804'),
('scorecard: rule volatile',      $s$select segment.create_scorecard('st_c', 'x1', 0, array[['random() > 0.1', '1']])$s$, '0A000'),
('scorecard: bands overlap',      $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1']], array[['a', '0', '10'], ['b', '5', '20']])$s$, '22023'),
('scorecard: open bands overlap', $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1']], array[['a', null, '10'], ['b', '', '0']])$s$, '22023'),
('scorecard: band inside band',   $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1']], array[['a', '0', null], ['b', '5', '6']])$s$, '22023'),
('scorecard: empty band',         $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1']], array[['a', '5', '5']])$s$, '22023'),
('scorecard: band bound text',    $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1']], array[['a', 'low', '5']])$s$, '22P02'),
('scorecard: duplicate band',     $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1']], array[['a', '0', '5'], ['a', '5', '9']])$s$, '42710'),
('scorecard: bad band name',      $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1']], array[['a b', '0', '5']])$s$, '42602'),
('scorecard: bands not triples',  $s$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1']], array[['a', '0']])$s$, '22023'),
('alter_scorecard: unknown',      $s$select segment.alter_scorecard('nosuch', base => 1)$s$, '42704'),
('alter_scorecard: nothing',      $s$select segment.alter_scorecard('st_score')$s$, '22023'),
('alter_scorecard: bad points',   $s$select segment.alter_scorecard('st_score', base => 3, items => array[['true', 'x']])$s$, '22P02'),
('alter_scorecard: bad bands',    $s$select segment.alter_scorecard('st_score', items => array[['true', '1']], bands => array[['a', '0', '5'], ['b', '4', '9']])$s$, '22023'),
('alter_scorecard: infinite base', $s$select segment.alter_scorecard('st_score', base => 'Infinity')$s$, '22023'),
('drop_scorecard: unknown',       $s$select segment.drop_scorecard('nosuch')$s$, '42704');

create function st.run_cases() returns setof text language plpgsql as $f$
declare
    c record;
    before text;
    got text;
    msg text;
    bad text := '';
begin
    for c in select * from st.cases order by ord loop
        before := st.catalog();
        begin
            execute c.sql;
            got := 'no error';
            -- undo an unexpected success so that later cases are not affected
            raise exception using errcode = 'P0001', message = '__undo__';
        exception when others then
            if sqlerrm <> '__undo__' then
                got := sqlstate;
                msg := sqlerrm;
            end if;
        end;
        if got is distinct from c.sqlstate then
            bad := bad || format(E'\n    %s: expected %s, got %s (%s)', c.what, c.sqlstate, got, msg);
        elsif st.catalog() <> before then
            bad := bad || format(E'\n    %s: the catalog changed', c.what);
        end if;
    end loop;
    return next is(bad, '', format('%s bad definitions fail with their SQLSTATE and change nothing',
                                   (select count(*) from st.cases)));
end
$f$;
select * from st.run_cases();

select throws_like($$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1'], ['has_fund', 'ten']])$$,
                   'points "ten" of item 2 is not a number', 'non-numeric points: the message names the item');
select throws_like($$select segment.create_scorecard('st_c', 'x1', 0, array[['true', '1']],
                       array[['low', null, '60'], ['mid', '50', '80']])$$,
                   'bands "low" and "mid" of scorecard "x1" overlap', 'overlapping bands: the message names both');
select throws_like($$select segment.create_scheme('st_c', 'x1', array[['a', 'true'], ['a', 'true']])$$,
                   'bucket "a" appears twice in scheme "x1"', 'duplicate bucket: the message names it');
select lives_ok($$select segment.create_scorecard('st_c', 'st_adjacent', 0, array[['true', '1']],
                     array[['a', null, '0'], ['b', '0', '10'], ['c', '10', null]])$$,
                'adjacent bands (one ends where the next starts) are fine');

------------------------------------------------------------------------------
-- History

select lives_ok($$select segment.alter_scheme('st_aipl', description => 'AIPL lifecycle',
    buckets => array[['loyalty', 'products >= 3'], ['awareness', 'true']])$$, 'alter st_aipl');
select is((select h.old_definition from segment.definition_history h
            where h.name = 'st_aipl' and h.action = 'alter' order by h.history_id desc limit 1),
          '{"subject": "st_c", "description": null, "active": true,
            "buckets": [{"name": "loyalty", "rule": "products >= 3 and visits >= 4"},
                        {"name": "purchase", "rule": "products >= 1"},
                        {"name": "interest", "rule": "visits >= 2 or last_visit >= segment.as_of() - 30"},
                        {"name": "awareness", "rule": "true"}]}'::jsonb,
          'alter: the old definition in history');
select is((select h.new_definition from segment.definition_history h
            where h.name = 'st_aipl' and h.action = 'alter' order by h.history_id desc limit 1),
          '{"subject": "st_c", "description": "AIPL lifecycle", "active": true,
            "buckets": [{"name": "loyalty", "rule": "products >= 3"},
                        {"name": "awareness", "rule": "true"}]}'::jsonb,
          'alter: the new definition in history');
select is((select version from segment.scheme where name = 'st_aipl'), 2, 'alter: version 2');
select lives_ok($$select segment.alter_scorecard('st_score', base => 40, bands => '{}')$$, 'alter st_score: base, no bands');
select is((select h.new_definition -> 'base' from segment.definition_history h
            where h.name = 'st_score' order by h.history_id desc limit 1), '40'::jsonb, 'scorecard history: new base');
select is((select h.old_definition -> 'bands' -> 0 -> 'name' from segment.definition_history h
            where h.name = 'st_score' order by h.history_id desc limit 1), '"low"'::jsonb, 'scorecard history: old bands');
select is((select count(*) from segment.scorecard_band b join segment.scorecard c using (scorecard_id)
            where c.name = 'st_score'), 0::bigint, 'bands => ''{}'' removes the bands');
select lives_ok($$select segment.drop_scheme('st_new')$$, 'drop_scheme');
select is((select h.action || ' ' || (h.old_definition -> 'buckets' -> 0 ->> 'name') || ' ' || (h.new_definition is null)::text
             from segment.definition_history h where h.name = 'st_new' order by h.history_id desc limit 1),
          'drop all true', 'drop: the old definition in history, no new one');
select is((select count(*) from segment.bucket_state x where not exists
            (select 1 from segment.scheme m where m.scheme_id = x.scheme_id)), 0::bigint,
          'drop: no state left behind');

------------------------------------------------------------------------------
-- DDL guard

create function st.sqlstate_of(q text) returns text language plpgsql as $f$
begin
    execute q;
    return 'ok';
exception when others then
    return sqlstate || ' ' || sqlerrm;
end $f$;

select matches(st.sqlstate_of('alter table st.c drop column visits'), '^2BP01 .*scorecard "st_score" \(item 2\)',
               'drop a column only an item reads: 2BP01 naming the scorecard and item');
select matches(st.sqlstate_of('alter table st.c rename column products to prods'), '^2BP01 .*scheme "st_aipl" \(bucket "loyalty"\)',
               'rename a column a bucket reads: 2BP01 naming the scheme and bucket');
select matches(st.sqlstate_of('alter table st.c alter column visits type bigint'), '^2BP01 .*scorecard "st_score"',
               'retype a column an item reads: 2BP01 naming the scorecard');
select matches(st.sqlstate_of('alter table st.acct alter column balance type int'), '^2BP01 .*scheme "st_acct_tier"',
               'retype a column of a text-keyed subject read by a bucket: 2BP01');
select is(st.sqlstate_of('alter table st.c drop column spare'), 'ok', 'a column nothing reads can be dropped');
select lives_ok($$select segment.alter_scorecard('st_score', items => array[['has_fund', '20'], ['aum > 500000', '12.25']])$$,
                'st_score stops reading visits and products');
select is(st.sqlstate_of('alter table st.c alter column visits type bigint'), 'ok',
          'visits is free once no bucket or item reads it');
select matches(st.sqlstate_of('alter table st.c drop column products'), '^2BP01 .*scheme "st_aipl" \(bucket "loyalty"\)',
               'products is still read by st_aipl');

------------------------------------------------------------------------------
-- unregister_subject drops schemes and scorecards with history

select lives_ok($$select segment.unregister_subject('st_acct')$$, 'unregister st_acct');
select results_eq($$select kind, name::text collate "default", action from segment.definition_history
                    where coalesce(old_definition, new_definition) ->> 'subject' = 'st_acct'
                      and action = 'drop' order by history_id$$,
                  $$values ('scheme', 'st_acct_tier', 'drop'), ('scorecard', 'st_acct_score', 'drop')$$,
                  'unregister_subject: a drop row per scheme and scorecard');
select is((select count(*) from segment.scheme where name = 'st_acct_tier')
          + (select count(*) from segment.scorecard where name = 'st_acct_score'), 0::bigint,
          'unregister_subject: the definitions are gone');
select lives_ok($$select segment.create_scheme('st_c', 'st_acct_tier', array[['x', 'true']])$$,
                'and their names are free again');

select * from finish();
rollback;
