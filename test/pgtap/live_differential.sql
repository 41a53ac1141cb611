-- Live maintenance differential test: after INSERT / UPDATE / DELETE / COPY
-- batches with live maintenance on, the live membership of every tag (the
-- 178 differential rules of test/fixtures/difftest.psql), every scheme bucket, every
-- scorecard band and score, and the universe, equals what a full refresh
-- with the same as_of computes on the same data. Twice: the second round
-- runs after a refresh has folded the first round's overlay.
--
-- While the writes run the GUC segment.as_of holds another date: live must
-- evaluate as of the last refresh (2026-11-22), so a trigger that used the
-- GUC or today's date fails the date rules.

\ir ../fixtures/pgtap.psql

set local timezone = 'Asia/Shanghai';
do $$ begin perform setseed(0.2718); end $$;

\ir ../fixtures/difftest.psql

do $$ begin perform difftest.fill(1, 20000, '{0,4294967295}'); end $$;
analyze difftest.t;

select plan((select 2 * n + 25 from (select count(*)::int n from difftest.rules) r));

\o /dev/null
select segment.register_subject('live', 'difftest.t', 'id');
select count(*) from (select segment.create_tag('live', 'lv_' || tag, rule) from difftest.rules) x;
select segment.create_scheme('live', 'lv_scheme', array[
    ['big', 'aum >= 500000'], ['pos', 'f8 > 0'], ['flagged', 'flag']]);   -- no catch-all: some in none
select segment.create_scorecard('live', 'lv_score', 1.5, array[
    ['aum >= 100000', '10'], ['flag2', '2.25'], ['d > segment.as_of()', '-3'],
    ['cust_name like ''a%''', '0.125'], ['i4 > 0', '0.00000001']],
    array[['low', '', '5'], ['high', '5', '']]);
select count(*) from segment.refresh('live', '2026-11-22');
\o

select lives_ok($$select segment.enable_live('live')$$, 'enable_live');

-- Every name's live set, the scores, and per-key answers for sample keys.
create table difftest.live_sets (round int, kind text, name text, members segment.memberset);
create table difftest.live_keys (round int, id int8, tags text[], bucket name, score numeric);

create function difftest.capture(rnd int) returns void language plpgsql as $f$
begin
    insert into difftest.live_sets
    select rnd, 'tag', 'lv_' || tag, segment.audience('live', 'lv_' || tag) from difftest.rules
    union all
    select rnd, 'bucket', b, segment.audience('live', 'lv_scheme.' || b) from unnest(array['big', 'pos', 'flagged']) b
    union all
    select rnd, 'band', b, segment.audience('live', 'lv_score.' || b) from unnest(array['low', 'high']) b
    union all
    select rnd, 'universe', '', segment.audience('live', 'not lv_aum_is_null or lv_aum_is_null')
    union all
    select rnd, 'score', x.score::text, x.members
      from segment_internal._live_scores((select scorecard_id from segment.scorecard where name = 'lv_score'),
                                (select subject_id from segment.subject where name = 'live')) x;
    -- sample keys: changed ones (in the overlay) and others, deleted ones included
    insert into difftest.live_keys
    select rnd, k, segment.tags('live', k), segment.bucket_of('live', k, 'lv_scheme'),
           segment.score('live', k, 'lv_score')
      from (select member_id k from segment.live_member order by member_id limit 300) s
     union all
    select rnd, k, segment.tags('live', k), segment.bucket_of('live', k, 'lv_scheme'),
           segment.score('live', k, 'lv_score')
      from (select id k from difftest.t where id % 97 = 0) s;
end $f$;

-- After the refresh: the same questions answered from the refreshed state.
create function difftest.compare(rnd int) returns setof text language plpgsql as $f$
declare
    r record;
    now_set segment.memberset;
begin
    for r in select * from difftest.live_sets where round = rnd and kind <> 'score' order by kind, name loop
        now_set := case r.kind
            when 'tag' then segment.audience('live', r.name)
            when 'bucket' then segment.audience('live', 'lv_scheme.' || r.name)
            when 'band' then segment.audience('live', 'lv_score.' || r.name)
            else segment.audience('live', 'not lv_aum_is_null or lv_aum_is_null') end;
        return next ok(r.members operator(segment.=) now_set,
                       format('round %s: live %s %s = refresh (%s live, %s refreshed)', rnd, r.kind, r.name,
                              segment.cardinality(r.members), segment.cardinality(now_set)));
    end loop;
    return next set_eq(format($$select name::numeric, segment.to_array(members) from difftest.live_sets
                                where round = %s and kind = 'score'$$, rnd),
                       $$select x.score, segment.to_array(x.members) from segment.score_state x
                          join segment.scorecard c using (scorecard_id) where c.name = 'lv_score'$$,
                       format('round %s: live score sets = refreshed score_state', rnd));
    return next set_eq(format($$select id, tags, bucket, score from difftest.live_keys where round = %s$$, rnd),
                       format($$select id, segment.tags('live', id), segment.bucket_of('live', id, 'lv_scheme'),
                                       segment.score('live', id, 'lv_score')
                                  from (select distinct id from difftest.live_keys where round = %s) s$$, rnd),
                       format('round %s: tags, bucket_of and score of sample keys = after refresh', rnd));
end $f$;

-- The writes of one round (r = 1, 2), with the GUC holding another date.
create function difftest.writes(r int) returns void language plpgsql as $f$
begin
    set local segment.as_of = '2027-03-01';
    -- multi-row UPDATE with NULLs, flags, dates
    update difftest.t set aum = case when random() < 0.3 then null else round((random() * 1e6)::numeric, 2) end,
                          flag = not flag, d = d + 20, f8 = case when random() < 0.2 then 'NaN' else -f8 end
     where id % 5 = r;
    -- single-row UPDATEs
    update difftest.t set cust_name = null, i4 = null where id = (select min(id) from difftest.t where id % 3 = r);
    update difftest.t set aum = 500000 where id = (select max(id) from difftest.t where id % 7 = r);
    -- DELETE
    delete from difftest.t where id % 11 = r + 2;
    -- INSERT (multi-row, generated)
    perform difftest.fill(20000 + r * 1000 + 1, 20000 + r * 1000 + 500);
    -- UPDATE that changes keys
    update difftest.t set id = id + 17 where id % 9 = r and id < 4294967000 and id % 35000 < 10;
    -- an UPDATE that touches nothing
    update difftest.t set aum = 0 where id = -1;
    -- delete and re-insert a customer in one statement pair
    delete from difftest.t where id = (select min(id) from difftest.t where id % 13 = r);
end $f$;

-- Round 1 --------------------------------------------------------------------
\o /dev/null
select difftest.writes(1);
-- COPY: rows written out, deleted, loaded back changed
\copy (select id, aum, amt, i2, i4, i8, f8, d - 40, d2, ts, not flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b from difftest.t where id % 17 = 4) to '/tmp/segment_live_diff.copy'
delete from difftest.t where id % 17 = 4;
\copy difftest.t from '/tmp/segment_live_diff.copy'
\o

select cmp_ok((select count(*) from segment.live_member)::int, '>', 3000, 'round 1: the overlay holds the changed customers');
select ok((select count(*) from segment.live_member where deleted) > 100, 'round 1: deleted keys are marked');
\o /dev/null
select difftest.capture(1);
\o
select ok((select count(*) from difftest.live_sets l join segment.tag t on t.name = l.name
            join segment.tag_state s using (tag_id)
           where l.round = 1 and not l.members operator(segment.=) s.members) > 100,
          'round 1: live sets differ from the stored ones for most tags (the test has teeth)');
\o /dev/null
select count(*) from segment.refresh('live', '2026-11-22');
\o
select is((select count(*) from segment.live_member)::int, 0, 'round 1: the refresh folded the overlay');
select * from difftest.compare(1);

-- Round 2: live after a refresh ---------------------------------------------
\o /dev/null
select difftest.writes(2);
\o
select cmp_ok((select count(*) from segment.live_member)::int, '>', 3000, 'round 2: the overlay holds the changed customers');
\o /dev/null
select difftest.capture(2);
select count(*) from segment.refresh('live', '2026-11-22');
\o
select is((select count(*) from segment.live_member)::int, 0, 'round 2: the refresh folded the overlay');
select * from difftest.compare(2);

select lives_ok($$select segment.disable_live('live')$$, 'disable_live');
select is((select count(*) from pg_trigger where tgrelid = 'difftest.t'::regclass and tgname like 'segment_live%')::int,
          0, 'disable_live dropped the triggers');

select * from finish();
rollback;
\! rm -f /tmp/segment_live_diff.copy
