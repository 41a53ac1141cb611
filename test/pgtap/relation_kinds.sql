-- Subjects over every kind of relation a warehouse reads customers from:
-- a view joining two tables, a materialized view, a partitioned table (range
-- partitions, a default partition) and a foreign table (file_fdw). For each,
-- every tag's member count and member list equal plain SQL's
-- `(rule) IS TRUE` over the same relation, on data with NULLs; explain reads
-- the row; generate makes opportunities; enable_live is refused with 0A000.
-- A view whose join duplicates a customer fails the refresh with 23505 and
-- keeps the previous sets; an unpopulated materialized view is refused with
-- 55000; a relation with no rows to read is refused at registration.

\ir ../fixtures/pgtap.psql
create extension if not exists file_fdw;

select plan(47);

create schema rk;
create table rk.cust (id int8 primary key, aum numeric, age int, opened date, city text);
insert into rk.cust
select n,
       case when n % 17 = 0 then null else (n * 7919) % 1000000 end,
       case when n % 11 = 0 then null else 18 + n % 70 end,
       case when n % 13 = 0 then null else date '2020-01-01' + (n * 37) % 2500 end,
       case n % 4 when 0 then 'Shanghai' when 1 then '上海' when 2 then null else 'beijing' end
  from generate_series(1, 4000) n;
create table rk.mart (id int8 primary key, score numeric, products int);
insert into rk.mart
select n, case when n % 7 = 0 then null else (n * 31) % 1000 / 10.0 end, n % 5
  from generate_series(1, 4000, 2) n;          -- half the customers have a mart row

-- the relations
create view rk.v as
    select c.id, c.aum, c.age, c.opened, c.city, m.score, m.products
      from rk.cust c left join rk.mart m using (id);
create materialized view rk.mv as select * from rk.v;
create unique index on rk.mv (id);
create table rk.part (id int8, aum numeric, age int, opened date, city text, score numeric, products int)
    partition by range (id);
create table rk.part_1 partition of rk.part for values from (0) to (1500);
create table rk.part_2 partition of rk.part for values from (1500) to (3000);
create table rk.part_d partition of rk.part default;
alter table rk.part add primary key (id);
insert into rk.part select * from rk.v;
create server rk_files foreign data wrapper file_fdw;
copy (select * from rk.v order by id) to '/tmp/segment_rk_customers.csv' with (format csv);
create foreign table rk.ft (id int8, aum numeric, age int, opened date, city text, score numeric, products int)
    server rk_files options (filename '/tmp/segment_rk_customers.csv', format 'csv');

-- one set of rules for every relation
create table rk.rules (tag text, rule text);
insert into rk.rules values
    ('rich',     'aum >= 500000'),
    ('scored',   'score > 50'),
    ('no_mart',  'products is null'),
    ('young',    'age < 30 and aum is not null'),
    ('veteran',  'opened < segment.as_of() - 1000'),
    ('sh',       'city in (''Shanghai'', ''上海'')'),
    ('mixed',    'coalesce(score, 0) * 1000 + coalesce(aum, 0) > 400000 or not (age >= 40)');

create function rk.setup(subject name, rel regclass) returns void language plpgsql as $$
declare r record;
begin
    perform segment.register_subject(subject, rel, 'id');
    for r in select * from rk.rules loop
        perform segment.create_tag(subject, subject || '_' || r.tag, r.rule);
    end loop;
end $$;

-- count and md5 of member list per tag, segment's way and SQL's way
create function rk.mismatches(subject name, rel regclass, as_of date default '2026-12-01') returns text language plpgsql as $$
declare r record; want_n bigint; want_md5 text; got_n bigint; got_md5 text; bad text := '';
begin
    perform set_config('segment.as_of', as_of::text, true);
    for r in select * from rk.rules loop
        execute format('select count(*), md5(coalesce(string_agg(id::text, '','' order by id), '''')) from %s where (%s) is true',
                       rel, r.rule) into want_n, want_md5;
        got_n := segment.count(subject, subject || '_' || r.tag);
        select md5(coalesce(string_agg(m::text, ',' order by m), '')) into got_md5
          from segment.members(subject, subject || '_' || r.tag) m;
        if got_n <> want_n or got_md5 <> want_md5 then
            bad := bad || format('%s: %s vs %s; ', r.tag, got_n, want_n);
        end if;
    end loop;
    return bad;
end $$;

select lives_ok($$select rk.setup('rk_view', 'rk.v')$$, 'a view without a unique index registers as a subject');
select lives_ok($$select rk.setup('rk_mv', 'rk.mv')$$, 'a materialized view registers');
select lives_ok($$select rk.setup('rk_part', 'rk.part')$$, 'a partitioned table with a primary key registers');
select lives_ok($$select rk.setup('rk_ft', 'rk.ft')$$, 'a foreign table registers');

select is(segment_internal._relation_kind('rk.v'), 'view', 'the view is read through SQL');
select is(segment_internal._relation_kind('rk.part'), 'partitioned', 'so is the partitioned table');
select is(segment_internal._relation_kind('rk.ft'), 'foreign', 'and the foreign table');
select is(segment_internal._relation_kind('rk.mv'), 'matview', 'the materialized view is read from its heap');

select lives_ok($$select count(*) from segment.refresh(null, '2026-12-01')$$, 'all four refresh');
select isnt((select sum(members) from segment.refresh('rk_view', '2026-12-01')), 0::numeric,
            'the view''s tags have members (not a silent 0)');
select is(rk.mismatches('rk_view', 'rk.v'), '', 'view: every tag equals (rule) IS TRUE over the view');
select is(rk.mismatches('rk_mv', 'rk.mv'), '', 'materialized view: every tag equals plain SQL');
select is(rk.mismatches('rk_part', 'rk.part'), '', 'partitioned table: every tag equals plain SQL');
select is(rk.mismatches('rk_ft', 'rk.ft'), '', 'foreign table: every tag equals plain SQL');
select is((select member_count from segment.subject_state s join segment.subject x using (subject_id)
            where x.name = 'rk_view'), 4000::bigint, 'the view''s universe holds every customer');
select is((select member_count from segment.subject_state s join segment.subject x using (subject_id)
            where x.name = 'rk_part'), 4000::bigint, 'the partitioned table''s universe too (all partitions read)');

-- schemes and scorecards over relations read through SQL (their score sets
-- are made while the rows are fetched) equal those over the heap-read
-- materialized view of the same rows
select lives_ok($$
    select segment.create_scheme(s, s || '_tier', array[['top', 'aum >= 800000'], ['mid', 'score > 50 or age > 60'], ['low', 'true']]),
           segment.create_scorecard(s, s || '_card', 5, array[['aum >= 500000', '10'], ['age < 30', '2.5'], ['products >= 2', '-1']])
      from unnest(array['rk_view', 'rk_part', 'rk_ft', 'rk_mv']) s;
    select count(*) from segment.refresh(null, '2026-12-01')$$, 'a scheme and a scorecard on every kind refresh');
select is((select string_agg(x.name || ':' || a.bucket || ':' || a.member_count, ' ' order by x.name, a.bucket)
             from segment.bucket_state a join segment.scheme x using (scheme_id)
             join segment.bucket_state b on b.bucket = a.bucket
              and b.scheme_id = (select scheme_id from segment.scheme where name = 'rk_mv_tier')
            where x.name <> 'rk_mv_tier' and segment.to_array(a.members) <> segment.to_array(b.members)), null,
          'every bucket over the view, the partitioned and the foreign table equals the materialized view''s');
select is((select count(*) from segment.score_state a join segment.scorecard x using (scorecard_id)
             left join segment.score_state b on b.score = a.score
              and b.scorecard_id = (select scorecard_id from segment.scorecard where name = 'rk_mv_card')
            where x.name <> 'rk_mv_card' and (b.members is null or segment.to_array(a.members) <> segment.to_array(b.members))),
          0::bigint, 'and so does every score''s member set');
select is((select count(distinct score)::int from segment.score_state a join segment.scorecard x using (scorecard_id)
            where x.name = 'rk_view_card'),
          (select count(distinct 5 + case when (aum >= 500000) is true then 10 else 0 end
                                  + case when (age < 30) is true then 2.5 else 0 end
                                  + case when (products >= 2) is true then -1 else 0 end)::int from rk.v),
          'the view''s scores are the distinct scores SQL computes');

-- an audience over a view
select is(segment.count('rk_view', 'rk_view_rich and not rk_view_no_mart'),
          (select count(*) from rk.v where (aum >= 500000) is true and not (products is null)),
          'an audience over the view equals SQL');

-- explain reads the row through SQL
select is((segment.explain('rk_view', 42, 'rk_view_scored') ->> 'row_found'), 'true',
          'explain finds the row of a view subject');
select is((segment.explain('rk_view', 53, 'rk_view_scored') ->> 'value'),
          (select (score > 50)::text from rk.v where id = 53),
          'and explains it the way SQL evaluates it (true)');
select is((segment.explain('rk_part', 2999, 'rk_part_rich') ->> 'row_found'), 'true',
          'explain finds a row of a partitioned subject');
select is((segment.explain('rk_ft', 7, 'rk_ft_young') ->> 'row_found'), 'true',
          'and of a foreign table');
select is((segment.explain('rk_view', 999999, 'rk_view_scored') ->> 'row_found'), 'false',
          'an unknown key is not found');

-- opportunities from a view subject
select lives_ok($$select segment.create_opportunity_rule('rk_view', 'rk_view_call', 'rk_view_rich and rk_view_scored',
                  'mining', 'wealth', cooldown_days => 1, assignment => 'pool')$$, 'an opportunity rule over a view subject');
select is((select sum(generated + control) from segment.generate('rk_view_call', '2026-12-01')),
          (select count(*) from rk.v where (aum >= 500000) is true and (score > 50) is true)::numeric,
          'generate makes one opportunity per customer of the audience');

-- live maintenance and event rules need an ordinary table
select throws_ok($$select segment.enable_live('rk_view')$$, '0A000', null, 'enable_live on a view: 0A000');
select throws_ok($$select segment.enable_live('rk_mv')$$, '0A000', null, 'on a materialized view: 0A000');
select throws_ok($$select segment.enable_live('rk_part')$$, '0A000', null, 'on a partitioned table: 0A000');
select throws_ok($$select segment.enable_live('rk_ft')$$, '0A000', null, 'on a foreign table: 0A000');
select is((select count(*) from segment.live_subject), 0::bigint, 'and nothing was enabled');
select is((select count(*) from pg_trigger t where t.tgrelid in ('rk.part'::regclass, 'rk.ft'::regclass, 'rk.mv'::regclass)
             and t.tgname like 'segment%'), 0::bigint, 'no trigger was created');

-- a view that duplicates a customer: the refresh fails, nothing changes
create table rk.extra (id int8, note text);
insert into rk.extra values (10, 'x'), (10, 'y');
create or replace view rk.v as
    select c.id, c.aum, c.age, c.opened, c.city, m.score, m.products
      from rk.cust c left join rk.mart m using (id) left join rk.extra e using (id);
create temp table before_dup as
    select t.name, s.members from segment.tag_state s join segment.tag t using (tag_id) where t.name like 'rk_view_%';
select throws_ok($$select * from segment.refresh('rk_view', '2026-12-02')$$, '23505',
                 'key 10 appears in more than one row of "v", the relation of subject "rk_view"',
                 'a duplicated key in a view fails the refresh with 23505 naming the key');
select is((select count(*) from segment.tag_state s join segment.tag t using (tag_id) join before_dup b on b.name = t.name
            where segment.memberset_send(s.members) = segment.memberset_send(b.members)), 7::bigint, 'every set of the subject is as before');
select is((select as_of from segment.subject_state s join segment.subject x using (subject_id) where x.name = 'rk_view'),
          date '2026-12-01', 'the subject still reads as of the previous refresh');
delete from rk.extra;

-- a view can change under the subject: refresh reads what it shows now
update rk.cust set aum = 900000 where id between 1 and 100;
select lives_ok($$select * from segment.refresh('rk_view', '2026-12-02')$$, 'refresh after the data changed');
select is(rk.mismatches('rk_view', 'rk.v', '2026-12-02'), '', 'the view subject follows the data');

-- an unpopulated materialized view is refused, not read as empty
create materialized view rk.mv2 as select * from rk.cust with no data;
create unique index on rk.mv2 (id);
select lives_ok($$select segment.register_subject('rk_mv2', 'rk.mv2', 'id')$$, 'an unpopulated materialized view registers');
select lives_ok($$select segment.create_tag('rk_mv2', 'rk_mv2_rich', 'aum >= 500000')$$, 'with a tag');
select throws_ok($$select * from segment.refresh('rk_mv2', '2026-12-01')$$, '55000', null,
                 'its refresh is refused with 55000, not read as empty');
refresh materialized view rk.mv2;
select is((select members from segment.refresh('rk_mv2', '2026-12-01')),
          (select count(*) from rk.cust where aum >= 500000), 'once populated it refreshes');

-- what segment cannot read is refused at registration
create type rk.t as (id int8);
create sequence rk.seq;
select throws_ok($$select segment.register_subject('rk_seq', 'rk.seq', 'id')$$, '42809', null,
                 'a sequence is not a subject (42809)');
select throws_ok($$select segment.register_subject('rk_type', 'rk.t', 'id')$$, '42809', null,
                 'nor a composite type');
create table rk.nokey (id int8, aum numeric) partition by list (id);
select throws_ok($$select segment.register_subject('rk_nokey', 'rk.nokey', 'id')$$, '42P10', null,
                 'a partitioned table needs a unique key on the key column');
select is((select count(*) from segment.subject where name in ('rk_seq', 'rk_type', 'rk_nokey')), 0::bigint,
          'nothing was registered');

select * from finish();
rollback;
