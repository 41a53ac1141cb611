-- Snapshot subjects (issue 10, item 1): a subject over a daily snapshot
-- table reads the newest snapshot on or before as_of, only that snapshot's
-- partitions, keeps member sets per snapshot date, and every answer equals
-- plain SQL over `where data_dt = D`.
--
-- Tables (generated data, NULLs in every rule column):
--   snapt.daily   range-partitioned by data_dt, int8 key, PK (data_dt, customer_id):
--                 one partition per day 12-01, 12-02; 12-03 sub-partitioned by
--                 hash(customer_id) into two leaves; one partition [12-04, 12-08)
--                 holding 12-04 and 12-06; an empty pre-created 12-10; a default
--                 partition holding 11-15.
--   snapt.listed  list-partitioned by data_dt, text key: ('12-01'), ('12-02', '12-03').
--   snapt.plain   a plain table with an index on data_dt, int4 key.
--   snapt.mv      a materialized view over snapt.plain, with an index on data_dt.
--   snapt.monthly range by month, December sub-partitioned by day with a default.
--   snapt.guard   a small table for the DDL guard.
-- For each subject and several as_of dates: the snapshot read, the relations
-- recorded in segment.run, every tag's members and a few audiences against
-- plain SQL, the previous snapshot through as_of, transitions (entered /
-- exited) between consecutive snapshots, retention, missing snapshots,
-- duplicates (23505, nothing changed), bad inputs with their SQLSTATEs, and
-- that a refresh touches no other partition (pg_stat_get_xact_numscans).

\ir ../fixtures/pgtap.psql

select * from no_plan();

create schema snapt;

-- one customer row per (date, id): deterministic, with NULLs
create function snapt.rows(d date, n int)
returns table (data_dt date, customer_id int8, aum numeric, branch text, open_dt date, vip boolean)
language sql immutable as $$
    select d, g::int8,
           case when (g * 7 + extract(day from d)::int) % 11 = 0 then null
                else ((g * 37 + extract(day from d)::int * 101) % 10000)::numeric / 4 end,
           case when g % 13 = 0 then null else 'b' || ((g + extract(day from d)::int) % 4) end,
           case when g % 17 = 0 then null else date '2020-01-01' + ((g * 53) % 2500) end,
           case when g % 5 = 0 then null else (g + extract(day from d)::int) % 3 = 0 end
      from generate_series(1, n) g
$$;

create table snapt.daily (data_dt date not null, customer_id int8 not null, aum numeric,
                          branch text, open_dt date, vip boolean,
                          primary key (data_dt, customer_id)) partition by range (data_dt);
create table snapt.daily_1201 partition of snapt.daily for values from ('2026-12-01') to ('2026-12-02');
create table snapt.daily_1202 partition of snapt.daily for values from ('2026-12-02') to ('2026-12-03');
create table snapt.daily_1203 partition of snapt.daily for values from ('2026-12-03') to ('2026-12-04')
    partition by hash (customer_id);
create table snapt.daily_1203_h0 partition of snapt.daily_1203 for values with (modulus 2, remainder 0);
create table snapt.daily_1203_h1 partition of snapt.daily_1203 for values with (modulus 2, remainder 1);
create table snapt.daily_week partition of snapt.daily for values from ('2026-12-04') to ('2026-12-08');
create table snapt.daily_1210 partition of snapt.daily for values from ('2026-12-10') to ('2026-12-11');
create table snapt.daily_default partition of snapt.daily default;

insert into snapt.daily select * from snapt.rows('2026-11-15', 1500);
insert into snapt.daily select * from snapt.rows('2026-12-01', 2000);
insert into snapt.daily select * from snapt.rows('2026-12-02', 2100) where customer_id % 29 <> 3;  -- some leave
insert into snapt.daily select * from snapt.rows('2026-12-03', 2200);
insert into snapt.daily select * from snapt.rows('2026-12-04', 2300);
insert into snapt.daily select * from snapt.rows('2026-12-06', 2400);
-- a row with a NULL-ish everything
update snapt.daily set aum = null, branch = null, open_dt = null, vip = null
 where customer_id = 2 and data_dt = '2026-12-02';

create table snapt.listed (data_dt date not null, cust text not null, aum numeric, branch text,
                           open_dt date, vip boolean, unique (data_dt, cust)) partition by list (data_dt);
create table snapt.listed_a partition of snapt.listed for values in ('2026-12-01');
create table snapt.listed_b partition of snapt.listed for values in ('2026-12-02', '2026-12-03');
insert into snapt.listed select r.data_dt, 'c' || r.customer_id, r.aum, r.branch, r.open_dt, r.vip
  from generate_series(0, 2) k, snapt.rows(date '2026-12-01' + k, 900) r;

create table snapt.plain (id int4 not null, data_dt date not null, aum numeric, branch text,
                          open_dt date, vip boolean, unique (data_dt, id));
insert into snapt.plain select r.customer_id::int4, r.data_dt, r.aum, r.branch, r.open_dt, r.vip
  from generate_series(0, 2) k, snapt.rows(date '2026-12-01' + 2 * k, 1200) r;   -- 12-01, 12-03, 12-05

create materialized view snapt.mv as select * from snapt.plain;
create index on snapt.mv (data_dt);
analyze snapt.daily; analyze snapt.listed; analyze snapt.plain; analyze snapt.mv;

-- the rules, the same for every subject
create table snapt.rule (tag_suffix text, rule text);
insert into snapt.rule values
    ('rich', 'aum >= 1000'),
    ('poor', 'aum < 300 or aum is null'),
    ('b1', 'branch = ''b1'''),
    ('vip', 'vip'),
    ('old', 'segment.as_of() - open_dt > 1800'),
    ('mixed', 'not (aum > 500 and branch like ''b%'') and coalesce(vip, true)');

-- members of a tag or audience in snapshot d against plain SQL: the size of
-- the symmetric difference (0 = equal) and the plain count
create function snapt.diff(subject name, audience text, sql_rule text, d date, current boolean default false)
returns text language plpgsql as $$
declare
    s segment.subject;
    seg text[];
    plain text[];
    n_plain int;
    n_diff int;
begin
    select * into s from segment.subject x where x.name = subject;
    perform set_config('segment.as_of', d::text, true);
    execute format('select array_agg(%I::text) from %s where %I = %L and (%s) is true',
                   s.key_column, s.relation, s.snapshot_column, d, sql_rule) into plain;
    if current then
        select array_agg(m) into seg from segment.members_text(subject, audience) m;
    else
        select array_agg(m) into seg from segment.members_text(subject, audience, d) m;
    end if;
    n_plain := coalesce(cardinality(plain), 0);
    select count(*) into n_diff from (
        (select unnest(coalesce(plain, '{}')) except select unnest(coalesce(seg, '{}')))
        union all
        (select unnest(coalesce(seg, '{}')) except select unnest(coalesce(plain, '{}')))) x;
    return format('diff %s of %s', n_diff, n_plain);
end $$;

-- every tag of a subject in snapshot d, and two audiences: all equal?
create function snapt.check_all(subject name, d date, current boolean default false) returns setof text
language plpgsql as $$
declare r record;
begin
    for r in select * from snapt.rule order by tag_suffix loop
        return next is(snapt.diff(subject, subject || '_' || r.tag_suffix, r.rule, d, current)
                       ~ '^diff 0 of [1-9]', true,
                       format('%s: tag %s_%s as of %s%s equals plain SQL (%s)', subject, subject, r.tag_suffix, d,
                              case when current then ' (current)' else '' end,
                              snapt.diff(subject, subject || '_' || r.tag_suffix, r.rule, d, current)));
    end loop;
    return next is(snapt.diff(subject, format('%1$s_rich and not %1$s_b1 or %1$s_vip', subject),
                              '((aum >= 1000) is true and (branch = ''b1'') is not true) or vip', d, current)
                   ~ '^diff 0 of [1-9]', true, format('%s: audience rich and not b1 or vip as of %s', subject, d));
    return next is(snapt.diff(subject, format('not %1$s_poor', subject), '(aum < 300 or aum is null) is not true',
                              d, current) ~ '^diff 0 of [1-9]', true,
                   format('%s: audience not poor as of %s', subject, d));
end $$;

create function snapt.make_tags(subject name) returns void language plpgsql as $$
declare r record;
begin
    for r in select * from snapt.rule loop
        perform segment.create_tag(subject, (subject || '_' || r.tag_suffix)::name, r.rule);
    end loop;
end $$;

------------------------------------------------------------------------------
-- Registration: good and bad

select lives_ok($$select segment.register_subject('sd', 'snapt.daily', 'customer_id', snapshot_column => 'data_dt')$$,
                'register a range-partitioned snapshot table (PK (data_dt, customer_id))');
select lives_ok($$select segment.register_subject('sl', 'snapt.listed', 'cust', snapshot_column => 'data_dt', snapshot_retention => 3)$$,
                'register a list-partitioned snapshot table with a text key');
select lives_ok($$select segment.register_subject('sp', 'snapt.plain', 'id', snapshot_column => 'data_dt')$$,
                'register a plain table with an index on its snapshot column');
select lives_ok($$select segment.register_subject('sm', 'snapt.mv', 'id', snapshot_column => 'data_dt')$$,
                'register a materialized view with an index on its snapshot column');
select is((select snapshot_retention from segment.subject where name = 'sd'), 2, 'default retention is 2');

create table snapt.noindex (id int, data_dt date);
create view snapt.v as select * from snapt.plain;
select throws_ok($$select segment.register_subject('bad', 'snapt.daily', 'customer_id', snapshot_column => 'nope')$$,
                 '42703', null, 'unknown snapshot column: 42703');
select throws_ok($$select segment.register_subject('bad', 'snapt.daily', 'customer_id', snapshot_column => 'branch')$$,
                 '42804', 'snapshot column "branch" has type text, not date', 'a text snapshot column: 42804');
select throws_ok($$select segment.register_subject('bad', 'snapt.daily', 'customer_id', snapshot_column => 'customer_id')$$,
                 '42804', null, 'a bigint snapshot column: 42804');
select throws_ok($$select segment.register_subject('bad', 'snapt.noindex', 'id', snapshot_column => 'data_dt')$$,
                 '0A000', 'cannot find the newest snapshot of "snapt.noindex" without scanning it',
                 'a plain table without an index on the snapshot column: 0A000');
select throws_ok($$select segment.register_subject('bad', 'snapt.v', 'id', snapshot_column => 'data_dt')$$,
                 '0A000', null, 'a view as a snapshot subject: 0A000');
select throws_ok($$select segment.register_subject('bad', 'snapt.plain', 'id', snapshot_column => 'data_dt', snapshot_retention => 0)$$,
                 '22023', null, 'retention 0: 22023');
select is((select count(*)::int from segment.subject where name = 'bad'), 0, 'no failed registration left a subject');
-- a plain subject over the daily table is still refused: the key is not unique without the snapshot
select throws_ok($$select segment.register_subject('bad', 'snapt.daily_1201', 'customer_id')$$,
                 '42P10', null, 'one partition without snapshot_column: key not unique (42P10)');

select lives_ok($$select snapt.make_tags('sd'); select snapt.make_tags('sl'); select snapt.make_tags('sp'); select snapt.make_tags('sm')$$,
                'six tags on each subject');

------------------------------------------------------------------------------
-- Finding the snapshot

select is(segment.latest_snapshot('sd', '2026-12-02'), '2026-12-02'::date, 'latest_snapshot: the day itself');
select is(segment.latest_snapshot('sd', '2026-12-05'), '2026-12-04'::date, 'latest_snapshot inside a multi-day partition');
select is(segment.latest_snapshot('sd', '2026-12-09'), '2026-12-06'::date, 'latest_snapshot: newest date of a multi-day partition');
select is(segment.latest_snapshot('sd', '2026-12-31'), '2026-12-06'::date, 'latest_snapshot skips an empty pre-created partition');
select is(segment.latest_snapshot('sd', '2026-11-30'), '2026-11-15'::date, 'latest_snapshot finds a snapshot in the default partition');
select is(segment.latest_snapshot('sd', '2026-11-01'), null, 'latest_snapshot before the first snapshot: NULL');
select is(segment.latest_snapshot('sl', '2026-12-31'), '2026-12-03'::date, 'latest_snapshot of the list-partitioned table');
select is(segment.latest_snapshot('sp', '2026-12-04'), '2026-12-03'::date, 'latest_snapshot of the plain table (index probe)');
select throws_ok($$select segment.refresh('sd', '2026-11-01')$$, 'P0002',
                 'subject "sd" has no snapshot on or before 2026-11-01', 'refresh before the first snapshot: P0002');

------------------------------------------------------------------------------
-- The range-partitioned subject, date by date

-- refresh 12-02 touches no other partition: sequential and index scans
create function snapt.other_scans(keep text[]) returns bigint language sql as $$
    select sum(pg_stat_get_xact_numscans(c.oid) + coalesce((select sum(pg_stat_get_xact_numscans(i.indexrelid))
                                                              from pg_index i where i.indrelid = c.oid), 0))::bigint
      from pg_partition_tree('snapt.daily') t join pg_class c on c.oid = t.relid
     where t.isleaf and not c.relname = any (keep)
$$;
create table snapt.scans (n bigint);
insert into snapt.scans select snapt.other_scans('{daily_1202}');
create table snapt.r2 as select * from segment.refresh('sd', '2026-12-02');
select is(snapt.other_scans('{daily_1202}'), (select n from snapt.scans),
          'refresh of 12-02 scanned no partition but daily_1202');
select is((select read_relations from segment.run r join segment.subject s using (subject_id)
            where s.name = 'sd' order by run_id desc limit 1), '{snapt.daily_1202}'::text[],
          'segment.run records the one leaf read');
select is((select (snapshot_date, as_of)::text from segment.run r join segment.subject s using (subject_id)
            where s.name = 'sd' order by run_id desc limit 1), '(2026-12-02,2026-12-02)',
          'segment.run records the snapshot date');
select * from snapt.check_all('sd', '2026-12-02');
select * from snapt.check_all('sd', '2026-12-02', true);

-- 12-03: two hash sub-partitions
create table snapt.r3 as select * from segment.refresh('sd', '2026-12-03');
select is((select read_relations from segment.run r join segment.subject s using (subject_id)
            where s.name = 'sd' order by run_id desc limit 1), '{snapt.daily_1203_h0,snapt.daily_1203_h1}'::text[],
          '12-03 reads both hash sub-partitions');
select * from snapt.check_all('sd', '2026-12-03');

-- transitions between consecutive snapshots (refresh's entered / exited, and tag_snapshot's)
create function snapt.plain_set(rule text, d date) returns int8[] language plpgsql as $$
declare r int8[];
begin
    perform set_config('segment.as_of', d::text, true);
    execute format('select coalesce(array_agg(customer_id), ''{}'') from snapt.daily where data_dt = %L and (%s) is true', d, rule) into r;
    return r;
end $$;
select is((select array_agg(format('%s %s/%s', r3.tag, r3.entered, r3.exited) order by r3.tag) from snapt.r3),
          (select array_agg(format('sd_%s %s/%s', x.tag_suffix,
                     (select count(*) from (select unnest(snapt.plain_set(x.rule, '2026-12-03')) except select unnest(snapt.plain_set(x.rule, '2026-12-02'))) e),
                     (select count(*) from (select unnest(snapt.plain_set(x.rule, '2026-12-02')) except select unnest(snapt.plain_set(x.rule, '2026-12-03'))) e))
                     order by 'sd_' || x.tag_suffix) from snapt.rule x),
          'entered / exited from 12-02 to 12-03 equal plain SQL set differences, every tag');
select is((select array_agg(format('%s %s/%s', t.name, s.entered, s.exited) order by t.name)
             from segment.tag_snapshot s join segment.tag t using (tag_id)
            where t.subject_id = (select subject_id from segment.subject where name = 'sd') and s.snapshot_date = '2026-12-03'),
          (select array_agg(format('%s %s/%s', r3.tag, r3.entered, r3.exited) order by r3.tag) from snapt.r3),
          'tag_snapshot keeps the same transitions');
select is((select count(*)::int from segment.size_snapshot z join segment.subject s using (subject_id)
            where s.name = 'sd' and z.as_of = '2026-12-03' and z.kind = 'tag'), 6,
          'tag history (size_snapshot) has every tag for the snapshot date');

-- refreshing the same snapshot again (a nightly retry) reports the same transitions
select is((select array_agg(format('%s %s/%s/%s', r.tag, r.members, r.entered, r.exited) order by r.tag)
             from segment.refresh('sd', '2026-12-03') r),
          (select array_agg(format('%s %s/%s/%s', r3.tag, r3.members, r3.entered, r3.exited) order by r3.tag) from snapt.r3),
          'a second refresh of 12-03: entered / exited still since 12-02');

-- the previous snapshot stays readable
select is(segment.count('sd', 'sd_rich', '2026-12-02'),
          (select count(*) from snapt.daily where data_dt = '2026-12-02' and aum >= 1000),
          'count(..., as_of => previous snapshot) equals plain SQL');
select is(segment.count('sd', 'sd_rich'),
          (select count(*) from snapt.daily where data_dt = '2026-12-03' and aum >= 1000),
          'count() without as_of reads the newest refreshed snapshot');
select * from snapt.check_all('sd', '2026-12-02');
select is(array(select segment.members('sd', 'sd_b1', '2026-12-02')),
          array(select customer_id from snapt.daily where data_dt = '2026-12-02' and branch = 'b1' order by 1),
          'members(..., as_of) returns the keys of that snapshot, ascending');
select is(segment.audience('sd', 'sd_vip', '2026-12-02') operator(segment.=) segment.memberset_agg(customer_id), true,
          'audience(..., as_of) is that snapshot''s set')
  from snapt.daily where data_dt = '2026-12-02' and vip;

-- as_of 12-05 reads 12-04 from the multi-day partition (filtered to that date)
select lives_ok($$create table snapt.r5 as select * from segment.refresh('sd', '2026-12-05')$$,
                'refresh for 12-05 (no snapshot that day) reads 12-04');
select is((select (snapshot_date, as_of, read_relations, rows_scanned)::text from segment.run r join segment.subject s using (subject_id)
            where s.name = 'sd' order by run_id desc limit 1),
          '(2026-12-04,2026-12-04,{snapt.daily_week},2300)',
          'segment.run: snapshot 12-04 of daily_week, only its 2300 rows');
select * from snapt.check_all('sd', '2026-12-04');

-- retention 2: 12-02 is gone, 12-03 and 12-04 remain
select is(array(select snapshot_date from segment.snapshots('sd')), '{2026-12-04,2026-12-03}'::date[],
          'retention keeps the 2 newest snapshots');
select throws_ok($$select segment.count('sd', 'sd_rich', '2026-12-02')$$, 'P0002',
                 'subject "sd" has no retained snapshot of 2026-12-02', 'a pruned snapshot: P0002');
select throws_ok($$select segment.count('sd', 'sd_rich', '2026-12-24')$$, 'P0002', null,
                 'a date never refreshed: P0002');
-- an infinite date is no snapshot: 22023 up front (as refresh), not P0002,
-- also for an unknown subject or one that keeps no snapshots
select throws_ok($$select segment.count('sd', 'sd_rich', 'infinity')$$, '22023',
                 'as_of must be a finite date, not infinity', 'count as of infinity: 22023');
select throws_ok($$select segment.count('nosuch', 'sd_rich', '-infinity')$$, '22023',
                 'as_of must be a finite date, not -infinity', 'count as of -infinity, before the subject: 22023');
select throws_ok($$select * from segment.members('sd', 'sd_rich', 'infinity')$$, '22023', null,
                 'members as of infinity: 22023');
select throws_ok($$select * from segment.members_text('sd', 'sd_rich', 'infinity')$$, '22023', null,
                 'members_text as of infinity: 22023');
select throws_ok($$select segment.audience('sd', 'sd_rich', 'infinity')$$, '22023', null,
                 'audience as of infinity: 22023');
select lives_ok($$select segment.set_snapshot_retention('sd', 1)$$, 'set_snapshot_retention 1');
select is(array(select snapshot_date from segment.snapshots('sd')), '{2026-12-04}'::date[], 'retention 1 prunes at once');
select throws_ok($$select segment.set_snapshot_retention('sd', 0)$$, '22023', null, 'retention 0: 22023');
select throws_ok($$select segment.set_snapshot_retention('nosuch', 3)$$, '42704', null, 'unknown subject: 42704');
select lives_ok($$select segment.set_snapshot_retention('sd', 3)$$, 'set_snapshot_retention 3');

-- refresh() with the default as_of (current_date, after every snapshot here) reads 12-06
select lives_ok($$create table snapt.r6 as select * from segment.refresh('sd')$$, 'refresh() reads the newest snapshot');
select is((select snapshot_date from segment.run r join segment.subject s using (subject_id)
            where s.name = 'sd' order by run_id desc limit 1), '2026-12-06'::date, 'refresh() read 12-06');
select * from snapt.check_all('sd', '2026-12-06', true);
select * from snapt.check_all('sd', '2026-12-06');

-- as_of 11-20: the snapshot in the default partition
select lives_ok($$create table snapt.r11 as select * from segment.refresh('sd', '2026-11-20')$$,
                'refresh of an older snapshot (a back-fill)');
select is((select read_relations from segment.run r join segment.subject s using (subject_id)
            where s.name = 'sd' order by run_id desc limit 1), '{snapt.daily_default}'::text[],
          'the 11-15 snapshot is read from the default partition');
select * from snapt.check_all('sd', '2026-11-15');
select is(segment.count('sd', 'sd_rich'), (select count(*) from snapt.daily where data_dt = '2026-12-06' and aum >= 1000),
          'a back-fill leaves the current state on the newest snapshot');

------------------------------------------------------------------------------
-- The list-partitioned subject with text keys, and the plain table

select lives_ok($$select segment.refresh('sl', '2026-12-01'); select segment.refresh('sl', '2026-12-02')$$, 'refresh sl 12-01, 12-02');
select is((select read_relations from segment.run r join segment.subject s using (subject_id)
            where s.name = 'sl' order by run_id desc limit 1), '{snapt.listed_b}'::text[],
          '12-02 of the list table reads listed_b (filtered to 12-02)');
select * from snapt.check_all('sl', '2026-12-01');
select * from snapt.check_all('sl', '2026-12-02');
select lives_ok($$select segment.refresh('sl', '2026-12-25')$$, 'refresh sl for 12-25 reads 12-03');
select * from snapt.check_all('sl', '2026-12-03', true);
select is(array(select snapshot_date from segment.snapshots('sl')), '{2026-12-03,2026-12-02,2026-12-01}'::date[],
          'retention 3 keeps three snapshots');

select lives_ok($$select segment.refresh('sp', '2026-12-01'); select segment.refresh('sp', '2026-12-04')$$, 'refresh sp 12-01, 12-04');
select is((select (snapshot_date, read_relations)::text from segment.run r join segment.subject s using (subject_id)
            where s.name = 'sp' order by run_id desc limit 1), '(2026-12-03,{snapt.plain})',
          'the plain table: 12-04 reads snapshot 12-03');
select * from snapt.check_all('sp', '2026-12-01');
select * from snapt.check_all('sp', '2026-12-03');

select lives_ok($$select segment.refresh('sm', '2026-12-05')$$, 'refresh the materialized view subject');
select * from snapt.check_all('sm', '2026-12-05', true);

------------------------------------------------------------------------------
-- Two levels on the snapshot column: months, then days (and a default day)

create table snapt.monthly (data_dt date not null, customer_id int8 not null, aum numeric,
                            branch text, open_dt date, vip boolean,
                            primary key (data_dt, customer_id)) partition by range (data_dt);
create table snapt.monthly_11 partition of snapt.monthly for values from ('2026-11-01') to ('2026-12-01');
create table snapt.monthly_12 partition of snapt.monthly for values from ('2026-12-01') to ('2027-01-01')
    partition by range (data_dt);
create table snapt.monthly_1201 partition of snapt.monthly_12 for values from ('2026-12-01') to ('2026-12-02');
create table snapt.monthly_1202 partition of snapt.monthly_12 for values from ('2026-12-02') to ('2026-12-03');
create table snapt.monthly_12_rest partition of snapt.monthly_12 default;
insert into snapt.monthly select * from snapt.rows('2026-11-30', 700);
insert into snapt.monthly select * from snapt.rows('2026-12-01', 800);
insert into snapt.monthly select * from snapt.rows('2026-12-02', 900);
insert into snapt.monthly select * from snapt.rows('2026-12-09', 1000);
select lives_ok($$select segment.register_subject('mo', 'snapt.monthly', 'customer_id', snapshot_column => 'data_dt');
                  select snapt.make_tags('mo')$$, 'register a table partitioned by month, then by day');
select is(segment.latest_snapshot('mo', '2026-12-05'), '2026-12-02'::date, 'latest_snapshot through two levels');
select is(segment.latest_snapshot('mo', '2026-12-31'), '2026-12-09'::date, 'latest_snapshot in a default sub-partition');
select is(segment.latest_snapshot('mo', '2026-12-01'), '2026-12-01'::date, 'latest_snapshot on the first day of a month');
select is(segment.latest_snapshot('mo', '2026-11-30'), '2026-11-30'::date, 'latest_snapshot in the month partition');
select lives_ok($$select segment.refresh('mo', '2026-12-02')$$, 'refresh mo for 12-02');
select is((select read_relations from segment.run r join segment.subject s using (subject_id)
            where s.name = 'mo' order by run_id desc limit 1), '{snapt.monthly_1202}'::text[],
          '12-02 is read from its day sub-partition only');
select * from snapt.check_all('mo', '2026-12-02', true);
select lives_ok($$select segment.refresh('mo', '2026-12-20')$$, 'refresh mo for 12-20');
select is((select (snapshot_date, read_relations)::text from segment.run r join segment.subject s using (subject_id)
            where s.name = 'mo' order by run_id desc limit 1), '(2026-12-09,{snapt.monthly_12_rest})',
          '12-20 reads 12-09 from the default sub-partition');
select * from snapt.check_all('mo', '2026-12-09', true);
select lives_ok($$select segment.set_snapshot_retention('mo', 3); select segment.refresh('mo', '2026-11-30')$$,
                'retention 3, then refresh mo for 11-30 (a back-fill)');
select * from snapt.check_all('mo', '2026-11-30');

------------------------------------------------------------------------------
-- Missing snapshot in the nightly run, live refused, duplicates

select throws_ok($$select segment_internal._nightly_step('refresh', 'sd', '2026-12-07', 0)$$, 'P0002',
                 'subject "sd": the snapshot of 2026-12-07 is not loaded yet',
                 'the nightly refresh step refuses a missing snapshot (no reuse of 12-06)');
select lives_ok($$select segment_internal._nightly_step('refresh', 'sd', '2026-12-06', 0)$$,
                'the nightly refresh step runs when the snapshot is there');
select throws_ok($$select segment.enable_live('sp')$$, '0A000', null, 'enable_live on a snapshot subject: 0A000');
select lives_ok($$select segment.register_subject('vw', 'snapt.v', 'id')$$, 'a view as a (plain) subject');
select throws_ok($$select segment.enable_live('vw')$$, '0A000', null, 'enable_live on a view: 0A000');

create table snapt.before as
    select (select count(*) from segment.run) runs,
           (select array_agg((tag_id, snapshot_date, member_count)::text order by 1) from segment.tag_snapshot) snaps,
           (select array_agg((tag_id, member_count)::text order by 1) from segment.tag_state) states;
alter table snapt.listed drop constraint listed_data_dt_cust_key;  -- the ETL loaded a table without one
insert into snapt.listed values ('2026-12-03', 'c7', 1, 'b1', null, null);
select throws_ok($$select segment.refresh('sl', '2026-12-03')$$, '23505',
                 'key c7 appears in more than one row of "listed" for data_dt 2026-12-03, the relation of subject "sl"',
                 'a duplicate key within one snapshot: 23505 naming the key');
select is((select (runs, snaps, states)::text from snapt.before),
          (select ((select count(*) from segment.run),
                   (select array_agg((tag_id, snapshot_date, member_count)::text order by 1) from segment.tag_snapshot),
                   (select array_agg((tag_id, member_count)::text order by 1) from segment.tag_state))::text),
          'after the refused refresh nothing changed');
-- the same key on another date is fine
select lives_ok($$select segment.refresh('sl', '2026-12-01')$$, 'a key in several snapshots is not a duplicate');

-- entry rules and generation over a snapshot subject read the current snapshot's rows
select lives_ok($$select segment.create_opportunity_rule('sd', 'sd_up', 'sd_rich', 'maintenance', 'call',
                      assignment => 'pool', cooldown_days => 60, template => 'aum {aum}')$$,
                'an opportunity rule with a template on the snapshot subject');
select lives_ok($$select segment.attach_entry_rule('sd_up', 'sd_rich')$$, 'fire it on entry into sd_rich');

-- a day's partition attached later with another column order: read through SQL, same answers
create table snapt.daily_1208 (vip boolean, customer_id int8 not null, branch text, aum numeric,
                               data_dt date not null, open_dt date);
insert into snapt.daily_1208 (data_dt, customer_id, aum, branch, open_dt, vip)
    select * from snapt.rows('2026-12-08', 2500);
alter table snapt.daily attach partition snapt.daily_1208 for values from ('2026-12-08') to ('2026-12-09');
select lives_ok($$select segment.refresh('sd', '2026-12-08')$$, 'refresh a partition attached with another column order');
select is((select read_relations from segment.run r join segment.subject s using (subject_id)
            where s.name = 'sd' order by run_id desc limit 1), '{snapt.daily_1208}'::text[],
          '12-08 is read from the attached partition');
select * from snapt.check_all('sd', '2026-12-08', true);

select is((select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'sd_up' and o.source = 'entered:sd_rich'),
          (select count(*) from (select unnest(snapt.plain_set('aum >= 1000', '2026-12-08'))
                                 except select unnest(snapt.plain_set('aum >= 1000', '2026-12-06'))) x),
          'entry rule: one lead per customer who entered sd_rich between the snapshots 12-06 and 12-08');
select is((select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'sd_up'
              and o.message is distinct from segment.render('sd_up', o.key)), 0::bigint,
          'each lead''s message is the template over the 12-08 row');
select is(segment.render('sd_up', '7'), (select 'aum ' || aum from snapt.daily where data_dt = '2026-12-08' and customer_id = 7),
          'render reads the row of the current snapshot');
select is(segment.explain('sd', 7, 'sd_rich') -> 'why' -> 'columns' ->> 'aum',
          (select aum::text from snapt.daily where data_dt = '2026-12-08' and customer_id = 7),
          'explain reads the row of the current snapshot');
select is(segment.explain('sd', 7, 'sd_rich') ->> 'as_of', '2026-12-08', 'explain evaluates as of the snapshot date');

select lives_ok($$select segment.create_opportunity_rule('sd', 'sd_batch', 'sd_vip and not sd_b1', 'mining', 'fund',
                      assignment => 'pool', template => 'branch {branch}')$$, 'a batch opportunity rule on the snapshot subject');
select is((select sum(generated)::bigint from segment.generate('sd_batch', '2026-12-08')),
          (select count(*) from snapt.daily where data_dt = '2026-12-08' and vip and (branch = 'b1') is not true),
          'generate: one lead per member of the audience in the current snapshot');
select is((select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'sd_batch' and o.message is distinct from segment.render('sd_batch', o.key)), 0::bigint,
          'generated messages come from the current snapshot''s rows');

-- a duplicate in a one-day partition (read straight from its heap)
alter table snapt.daily drop constraint daily_pkey;
create table snapt.before2 as
    select (select count(*) from segment.run) runs,
           (select array_agg((tag_id, snapshot_date, member_count)::text order by 1) from segment.tag_snapshot) snaps,
           (select array_agg((tag_id, member_count)::text order by 1) from segment.tag_state) states;
insert into snapt.daily select * from snapt.rows('2026-12-08', 40) where customer_id = 33;
select throws_ok($$select segment.refresh('sd', '2026-12-08')$$, '23505',
                 'key 33 appears in more than one row of "daily" for data_dt 2026-12-08, the relation of subject "sd"',
                 'a duplicate key in a one-day partition: 23505 naming the key');
select is((select (runs, snaps, states)::text from snapt.before2),
          (select ((select count(*) from segment.run),
                   (select array_agg((tag_id, snapshot_date, member_count)::text order by 1) from segment.tag_snapshot),
                   (select array_agg((tag_id, member_count)::text order by 1) from segment.tag_state))::text),
          'after the refused refresh nothing changed');
delete from snapt.daily where data_dt = '2026-12-08' and customer_id = 33;
insert into snapt.daily select * from snapt.rows('2026-12-02', 40) where customer_id = 34;
select throws_ok($$select segment.refresh('sd', '2026-12-02')$$, '23505',
                 'key 34 appears in more than one row of "daily" for data_dt 2026-12-02, the relation of subject "sd"',
                 'a duplicate key in an older snapshot (a back-fill): 23505');

-- the DDL guard keeps the snapshot column
create table snapt.guard (id int primary key, d date);
create index on snapt.guard (d);
select lives_ok($$select segment.register_subject('sg', 'snapt.guard', 'id', snapshot_column => 'd')$$,
                'register a small snapshot table');
select throws_ok($$alter table snapt.guard drop column d$$, '2BP01',
                 'cannot change table "snapt.guard": column "d" is the snapshot column of subject "sg"',
                 'dropping the snapshot column of a subject: 2BP01');
select throws_ok($$alter table snapt.guard rename column d to dd$$, '2BP01', null, 'renaming it: 2BP01');
select throws_ok($$alter table snapt.guard alter column d type timestamp$$, '2BP01', null, 'retyping it: 2BP01');

-- readers' bad inputs
select throws_ok($$select segment.count('vw', 'vw_x', '2026-12-01')$$, '0A000', null,
                 'as_of on a subject that is not a snapshot subject: 0A000');
select throws_ok($$select segment.latest_snapshot('vw', '2026-12-01')$$, '42809', null,
                 'latest_snapshot of a subject that is not a snapshot subject: 42809');
select throws_ok($$select segment.count('sd', 'nosuch', '2026-12-06')$$, '42704', null,
                 'unknown tag as of a retained snapshot: 42704');

select * from finish();
rollback;
