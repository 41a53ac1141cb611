-- Differential test of schemes and scorecards against PostgreSQL itself, on
-- the NULL-heavy difftest data (test/fixtures/difftest.psql), refreshed in one pass
-- with tags:
--   * a scheme equals CASE WHEN r1 THEN 'b1' WHEN r2 THEN 'b2' ... END on
--     every row (first match wins; a row where every rule is false or NULL
--     is in no bucket), including a later rule that would raise an error on
--     rows an earlier bucket took (CASE never evaluates it there);
--   * a scorecard equals base + sum(CASE WHEN ri IS TRUE THEN pi ELSE 0 END)
--     on every row, with fractional and negative points;
--   * bands count the members whose score lies in [min, max);
--   * transitions between two refreshes equal a SQL diff of the two CASE
--     snapshots, entries and exits included.

\ir ../fixtures/pgtap.psql
set local timezone = 'Asia/Shanghai';
do $$ begin perform setseed(0.4242); end $$;

\ir ../fixtures/difftest.psql

do $$ begin perform difftest.fill(1, 60000); end $$;

select plan(8);

create temp table sd_setup as select segment.register_subject('seg_diff', 'difftest.t', 'id') as x
union all select segment.create_tag('seg_diff', 'sd_rich', 'aum >= 500000');

-- buckets in order; bucket 3 divides by cnt, which is 0 only where bucket 2
-- already took the row
insert into sd_setup select segment.create_scheme('seg_diff', 'sd_tier', array[
    ['top',    'aum >= 1000000 and flag'],
    ['zero',   'cnt = 0 or cnt is null'],
    ['ratio',  'bal_a / cnt > 10'],
    ['dated',  $r$d - segment.as_of() between -30 and 30$r$],
    ['named',  $r$cust_name like 'A%'$r$]]);
insert into sd_setup select segment.create_scheme('seg_diff', 'sd_all', array[
    ['neg', 'f8 < 0'],
    ['rest', 'true']]);
insert into sd_setup select segment.create_scorecard('seg_diff', 'sd_score', 12.5, array[
    ['flag', '10'],
    ['aum >= 100000', '7.25'],
    ['f8 > 0.5', '-3'],
    [$r$cust_name ilike '%a%'$r$, '0.125'],
    ['i4 between -100 and 100', '1000000']],
    array[['low', '', '15'], ['mid', '15', '1000000'], ['high', '1000000', '']]);

create temp table sd_expected_1 as
select id,
       case when aum >= 1000000 and flag then 'top'
            when cnt = 0 or cnt is null then 'zero'
            when bal_a / cnt > 10 then 'ratio'
            when d - date '2026-11-22' between -30 and 30 then 'dated'
            when cust_name like 'A%' then 'named' end as tier,
       case when f8 < 0 then 'neg' when true then 'rest' end as alltier,
       12.5 + (case when flag is true then 10 else 0 end)
            + (case when (aum >= 100000) is true then 7.25 else 0 end)
            + (case when (f8 > 0.5) is true then -3 else 0 end)
            + (case when (cust_name ilike '%a%') is true then 0.125 else 0 end)
            + (case when (i4 between -100 and 100) is true then 1000000 else 0 end) as score
  from difftest.t;

create temp table sd_run1 as select * from segment.refresh('seg_diff', '2026-11-22');

create temp table sd_got as
select b.bucket::text, k as id
  from segment.bucket_state b join segment.scheme s using (scheme_id),
       segment.member_ids(b.members) k
 where s.name = 'sd_tier';

select is((select count(*) from sd_expected_1 e full join sd_got g using (id)
            where e.tier is distinct from g.bucket)::int, 0,
          'scheme sd_tier equals CASE WHEN ... END on every row');
select ok((select count(*) from sd_got where bucket = 'ratio') > 0
          and (select count(*) from sd_got where bucket = 'zero') > 0,
          'the test can fail: both the guard bucket and the division bucket have members');
select is((select count(*) from sd_expected_1 e
             left join (select k as id, b.bucket::text from segment.bucket_state b
                          join segment.scheme s using (scheme_id),
                               segment.member_ids(b.members) k where s.name = 'sd_all') g using (id)
            where e.alltier is distinct from g.bucket)::int, 0,
          'a scheme ending in true places every customer');
select is((select count(*) from sd_expected_1 e
             full join (select k as id, s.score from segment.score_state s
                          join segment.scorecard c using (scorecard_id),
                               segment.member_ids(s.members) k where c.name = 'sd_score') g using (id)
            where e.score is distinct from g.score)::int, 0,
          'scorecard equals base + sum(CASE WHEN ri IS TRUE THEN pi ELSE 0 END) on every row');
select ok((select count(distinct score) from sd_expected_1) >= 8,
          'the scores are varied enough to tell');
select set_eq(
    $$select name, members from segment.size_snapshot where kind = 'band' and name like 'sd_score.%'$$,
    $$select 'sd_score.' || b, count(*) from (
          select case when score < 15 then 'low' when score < 1000000 then 'mid' else 'high' end b
            from sd_expected_1) x group by b$$,
    'bands count members with min <= score < max');

-- change data, refresh a week later, compare the transition matrix
update difftest.t set aum = aum * 3, flag = true where id % 7 = 1;
delete from difftest.t where id % 11 = 2;
do $$ begin perform difftest.fill(60001, 61000); end $$;

create temp table sd_expected_2 as
select id,
       case when aum >= 1000000 and flag then 'top'
            when cnt = 0 or cnt is null then 'zero'
            when bal_a / cnt > 10 then 'ratio'
            when d - date '2026-11-29' between -30 and 30 then 'dated'
            when cust_name like 'A%' then 'named' end as tier
  from difftest.t;
create temp table sd_run2 as select * from segment.refresh('seg_diff', '2026-11-29');

select set_eq(
    $$select from_bucket, to_bucket, customers
        from segment.transitions('seg_diff', 'sd_tier', '2026-11-22', '2026-11-29')$$,
    $$select coalesce(a.tier, case when a.id is null then '(entered)' else '(none)' end) as from_bucket,
             coalesce(b.tier, case when b.id is null then '(exited)' else '(none)' end) as to_bucket,
             count(*) as customers
        from sd_expected_1 a full join sd_expected_2 b using (id)
       group by 1, 2$$,
    'transitions equal a SQL diff of the two snapshots, entries and exits included');
select ok((select count(*) from segment.transitions('seg_diff', 'sd_tier', '2026-11-22', '2026-11-29')
            where from_bucket <> to_bucket) > 3,
          'the test can fail: customers moved between buckets');

select * from finish();
rollback;
