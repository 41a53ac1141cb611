-- Live maintenance of statements of a few rows (issue 15 item 3): each
-- customer is compared with what readers see now (its overlay row when it
-- has one, else the sets of the last refresh, which the backend keeps) and
-- written only when one of its tags, buckets or scores changes. An UPDATE
-- that changes nothing readers see writes no overlay row and leaves an
-- existing one as it is; a flip is seen, and so is the flip back; deletes,
-- inserts, a rolled-back change, a refresh between two statements and the
-- cache turned off. After every step, live membership of every tag, bucket
-- and score equals (rule) IS TRUE on the table (ls.wrong() names those that
-- differ).

\ir ../fixtures/pgtap.psql

select plan(34);

\o /dev/null
create schema ls;
create table ls.t (id int8 primary key, a int, b numeric, note text);
insert into ls.t select g, g % 10, g % 7, null from generate_series(1, 2000) g;
select segment.register_subject('ls', 'ls.t', 'id');
select segment.create_tag('ls', 'ls_pos', 'a >= 5');
select segment.create_tag('ls', 'ls_b', 'b > 3');
select segment.create_scheme('ls', 'ls_tier', array[['hi', 'a >= 8'], ['mid', 'a >= 3'], ['lo', 'true']]);
select segment.create_scorecard('ls', 'ls_score', 0, array[['a >= 5', '1'], ['b > 3', '2.5']]);
select count(*) from segment.refresh('ls');
select segment.enable_live('ls');

-- the live members of every tag, bucket and score against plain SQL on the table
create function ls.wrong() returns text language sql as $f$
    with live as (
        select t.name::text as n, segment.to_array(segment.audience('ls', t.name)) as m
          from unnest(array['ls_pos', 'ls_b', 'ls_tier.hi', 'ls_tier.mid', 'ls_tier.lo']) t(name)
        union all
        select 'score ' || trim_scale(x.score), segment.to_array(x.members)
          from segment_internal._live_scores((select scorecard_id from segment.scorecard where name = 'ls_score'),
                                             (select subject_id from segment.subject where name = 'ls')) x),
    truth as (
        select 'ls_pos' as n, coalesce(array_agg(id order by id) filter (where (a >= 5) is true), '{}') as m from ls.t
        union all
        select 'ls_b', coalesce(array_agg(id order by id) filter (where (b > 3) is true), '{}') from ls.t
        union all
        select 'ls_tier.hi', coalesce(array_agg(id order by id) filter (where (a >= 8) is true), '{}') from ls.t
        union all
        select 'ls_tier.mid', coalesce(array_agg(id order by id)
                                           filter (where (a >= 8) is not true and (a >= 3) is true), '{}') from ls.t
        union all
        select 'ls_tier.lo', coalesce(array_agg(id order by id)
                                          filter (where (a >= 8) is not true and (a >= 3) is not true), '{}') from ls.t
        union all
        select 'score ' || trim_scale(s), array_agg(id order by id)
          from (select id, case when (a >= 5) is true then 1 else 0 end
                           + case when (b > 3) is true then 2.5 else 0 end as s from ls.t) x
         group by s)
    select coalesce(string_agg(coalesce(l.n, r.n), ', ' order by coalesce(l.n, r.n)), '')
      from live l full join truth r using (n)
     where l.m is distinct from r.m
$f$;
create function ls.overlay_rows() returns int language sql as
    $$ select count(*)::int from segment.live_member $$;
create function ls.version(k int8) returns text language sql as
    $$ select xmin::text || ctid::text from segment.live_member where member_id = k $$;
\o

select is(ls.wrong(), '', 'after the refresh: live = plain SQL');

-- customer 100: a = 0, b = 2 (in no tag, bucket lo, score 0)
update ls.t set b = b + 0.5 where id = 100;
select is(ls.overlay_rows(), 0, 'a one-row UPDATE of a column rules read that changes no membership writes no overlay row');
select is(ls.wrong(), '', 'and readers are right');

update ls.t set a = 9 where id = 100;
select is(ls.overlay_rows(), 1, 'an UPDATE that flips a tag, a bucket and a score writes the customer''s overlay row');
select ok(segment.has_tag('ls', 100, 'ls_pos'), 'has_tag sees the flip');
select is(segment.bucket_of('ls', 100, 'ls_tier')::text, 'hi', 'bucket_of sees it');
select is(segment.score('ls', 100, 'ls_score'), 1::numeric, 'score sees it');
select is(ls.wrong(), '', 'and every set is right');

\o /dev/null
select ls.version(100) as v100 \gset
\o
update ls.t set a = 8 where id = 100;
select is(ls.version(100), :'v100', 'an UPDATE that keeps the customer''s overlay membership leaves its overlay row untouched');
select is(ls.wrong(), '', 'and readers are right');

update ls.t set a = 0 where id = 100;
select isnt(ls.version(100), :'v100', 'the flip back rewrites the overlay row');
select ok(not segment.has_tag('ls', 100, 'ls_pos'), 'has_tag sees the flip back');
select is(segment.bucket_of('ls', 100, 'ls_tier')::text, 'lo', 'bucket_of sees it');
select is(ls.wrong(), '', 'and every set is right');

-- a bucket alone changes (a: 3 -> 2; no tag, no score moves)
update ls.t set a = 2 where id = 3;
select is(segment.bucket_of('ls', 3, 'ls_tier')::text, 'lo', 'a bucket change alone is written');
-- a score alone changes through a tag's column (b: 3 -> 4 moves ls_b and the score)
update ls.t set b = 4 where id = 10;
select is(segment.score('ls', 10, 'ls_score'), 2.5::numeric, 'a score change is written');
select is(ls.wrong(), '', 'and every set is right');

-- 20 rows, all updated, a few of them change: only those are written
\o /dev/null
select ls.overlay_rows() as before_rows \gset
\o
update ls.t set b = b + 0.5 where id between 201 and 220;
select is(ls.overlay_rows() - :before_rows,
          (select count(*)::int from generate_series(201, 220) g where g % 7 = 3),
          'a statement of 20 rows writes only the customers whose membership changed (b 3 -> 3.5)');
select is(ls.wrong(), '', 'and every set is right');

-- deletes and inserts
delete from ls.t where id = 500;
select ok((select deleted from segment.live_member where member_id = 500), 'a deleted customer the refresh saw is written as deleted');
insert into ls.t values (5000, 9, 9, null);
select ok(segment.has_tag('ls', 5000, 'ls_pos'), 'an inserted customer is written');
insert into ls.t values (500, 0, 0, null);
select ok(not (select deleted from segment.live_member where member_id = 500), 'a deleted key inserted again is written again');
delete from ls.t where id = 5000;
select ok((select deleted from segment.live_member where member_id = 5000), 'a new key deleted again is written as deleted');
select is(ls.wrong(), '', 'and every set is right');

-- a change rolled back leaves nothing to compare with
savepoint s;
update ls.t set a = 9 where id = 700;
rollback to savepoint s;
update ls.t set note = 'x', b = b + 0.1 where id = 700;
select is((select count(*)::int from segment.live_member where member_id = 700), 0,
          'after a rolled-back flip, an UPDATE that changes nothing writes nothing');
select is(ls.wrong(), '', 'and every set is right');

-- a refresh between two statements: compared with its sets, not the old ones
update ls.t set a = 9 where id = 300;
\o /dev/null
select count(*) from segment.refresh('ls');
\o
select is(ls.overlay_rows(), 0, 'the refresh folded the overlay');
update ls.t set a = 8 where id = 300;
select is(ls.overlay_rows(), 0, 'an UPDATE that keeps what the new sets say writes nothing');
update ls.t set a = 0 where id = 300;
select ok(not segment.has_tag('ls', 300, 'ls_pos'), 'the flip out of the refreshed set is written');
select is(ls.wrong(), '', 'and every set is right');

-- the kept sets off (segment.audience_cache_size = 0): every customer is written, as before
set local segment.audience_cache_size = 0;
update ls.t set b = b + 0.1 where id = 1000;
select is((select count(*)::int from segment.live_member where member_id = 1000), 1,
          'with the cache off, a one-row UPDATE writes the customer without comparing');
select is(ls.wrong(), '', 'and every set is right');
reset segment.audience_cache_size;

-- a column no rule reads: nothing at all (the existing fast path)
\o /dev/null
select ls.overlay_rows() as before_rows \gset
\o
update ls.t set note = 'y' where id between 1 and 10;
select is(ls.overlay_rows(), :before_rows, 'an UPDATE of a column no rule reads writes nothing');
select is(ls.wrong(), '', 'and every set is right');

select * from finish();
rollback;
