-- Member ids collected in any scan order (src/id_window.c).
--
-- A refresh collects the ids of a batch of rows that fall into one chunk of
-- 65536 ids into a bitset of that chunk, and turns the bitset into a CRoaring
-- container when the scan leaves the chunk; batches spanning chunks go
-- through roaring_bitmap_add_many. The table below is laid out in heap
-- order so that every path is taken, for sets dense enough to become bitset
-- containers (more than 4096 members in a chunk) and sparse ones (array
-- containers):
--   ids 0 .. 69999 ascending (consecutive batches; one batch spans the
--     chunks 0 and 1), then ids 200000 .. 229999 in random order (one chunk,
--     not consecutive), then 70000 .. 99999 ascending with every third id
--     missing (chunk 1 again: a second container ORed into the first), then
--     2000 ids scattered between 4294000000 and 4294967295 (batches spanning
--     chunks).
-- Phase 1 refreshes and compares every tag's members, count and the
-- universe (count of "not tag") with plain SQL. Phase 2 updates 10% of the
-- rows (they move to the end of the heap, out of order), deletes some,
-- inserts 5000 ids of a new chunk in random order and 10000 ids of chunk 1
-- in descending order, refreshes and compares again, with entered / exited
-- against phase 1.
-- Runtime: about 10 s.

\ir ../fixtures/pgtap.psql

set local timezone = 'Asia/Shanghai';
set local max_parallel_workers_per_gather = 0;
do $$ begin perform setseed(0.3131); end $$;

\ir ../fixtures/difftest.psql

-- 137,000 source rows; their ids are replaced below
do $$ begin perform difftest.fill(1, 137000); end $$;

create table difftest.src as select row_number() over (order by id) as n, t.* from difftest.t t;
create table difftest.dense (like difftest.t);
insert into difftest.dense select n - 1, aum, amt, i2, i4, i8, f8, d, d2, ts, flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
  from difftest.src where n <= 70000 order by n;
insert into difftest.dense select 200000 + n - 70001, aum, amt, i2, i4, i8, f8, d, d2, ts, flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
  from difftest.src where n between 70001 and 100000 order by random();
insert into difftest.dense select 70000 + (n - 100001) * 3 / 2, aum, amt, i2, i4, i8, f8, d, d2, ts, flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
  from difftest.src where n between 100001 and 120000 order by n;
insert into difftest.dense select 4294000000 + (n - 120001) * 483, aum, amt, i2, i4, i8, f8, d, d2, ts, flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
  from difftest.src where n between 120001 and 122000 order by random();
alter table difftest.dense add primary key (id);
analyze difftest.dense;

create table difftest.drules as
    select ord, tag, rule from difftest.rules
     where tag in ('aum_not_null', 'aum_is_null', 'aum_ge_500k', 'flag_bare', 'f8_gt_zero', 'i4_ge_rev',
                   'amt_ge_thr', 'name_eq', 'd_maturing', 'num_ratio', 'text_in_mixed', 'cnt_in',
                   'const_true');

-- per rule: 3 (phase 1) + 3 (phase 2); plus 3; plus 2 x 3 for the view
select plan((select 3 + 6 * count(*)::int + 6 from difftest.drules));

select lives_ok($q$do $d$
    declare r record;
    begin
        perform segment.register_subject('dense', 'difftest.dense', 'id');
        for r in select * from difftest.drules order by ord loop
            perform segment.create_tag('dense', 'dn_' || r.tag, r.rule);
        end loop;
    end $d$$q$,
    'register the dense subject and its tags');

create table difftest.dres (run int, tag name, members bigint, entered bigint, exited bigint);
insert into difftest.dres select 1, tag, members, entered, exited from segment.refresh('dense', '2026-11-22');
set local segment.as_of = '2026-11-22';

create function difftest.dense_check(run int, as_of date, before_rel text) returns setof text
language plpgsql as $f$
declare
    r  record;
    st record;
    c  difftest.cmp;
begin
    for r in select * from difftest.drules order by ord loop
        c := difftest.compare('difftest.dense', 'id', r.rule, as_of,
                              difftest.members_of('dense', 'dn_' || r.tag),
                              before_rel, case when before_rel is not null then r.rule end, '2026-11-22');
        return next difftest.report(c, format('run %s, dn_%s: members = (%s) is true', run, r.tag, r.rule),
                                    'difftest.dense', 'id', r.rule);
        select * into st from difftest.dres d where d.run = dense_check.run and d.tag = ('dn_' || r.tag)::name;
        return next is(format('%s members, entered %s, exited %s', st.members, st.entered, st.exited),
                       format('%s members, entered %s, exited %s', c.sql_count,
                              case when before_rel is null then c.sql_count else c.sql_entered end,
                              case when before_rel is null then 0 else c.sql_exited end),
                       format('run %s, dn_%s: refresh counts', run, r.tag));
        return next is(difftest.count_of('dense', 'not dn_' || r.tag),
                       (select count(*) from difftest.dense) - c.sql_count,
                       format('run %s, dn_%s: count of "not" it (the universe) = rows - members', run, r.tag));
    end loop;
end
$f$;

select * from difftest.dense_check(1, '2026-11-22', null);

-- The same rows read through SQL (a view): the scan adds ids from inside
-- SPI calls, whose memory SPI frees; a window's bitset must not live there.
create view difftest.dense_v as select * from difftest.dense;
do $$ begin
    perform segment.register_subject('dense_v', 'difftest.dense_v', 'id');
    perform segment.create_tag('dense_v', 'dv_aum_not_null', 'aum is not null');
    perform segment.create_tag('dense_v', 'dv_flag_bare', 'flag');
    perform segment.create_tag('dense_v', 'dv_const_true', 'true');
end $$;
create function difftest.view_check(run int) returns setof text language plpgsql as $f$
declare
    r record;
    c difftest.cmp;
begin
    perform segment.refresh('dense_v', '2026-11-22');
    for r in select * from (values ('dv_aum_not_null', 'aum is not null'), ('dv_flag_bare', 'flag'),
                                   ('dv_const_true', 'true')) v(tag, rule) loop
        c := difftest.compare('difftest.dense', 'id', r.rule, '2026-11-22', difftest.members_of('dense_v', r.tag));
        return next difftest.report(c, format('run %s, %s over a view: members = (%s) is true', run, r.tag, r.rule),
                                    'difftest.dense', 'id', r.rule);
    end loop;
end
$f$;
select * from difftest.view_check(1);

select cmp_ok((select count(*) from difftest.dense where id < 65536 and aum is not null), '>', 4096::bigint,
              'data: dn_aum_not_null has more than 4096 members in chunk 0 (a bitset container)');

-- Phase 2: rows move to the end of the heap, keys come and go.
create table difftest.dense1 as select * from difftest.dense;
update difftest.dense set aum = aum + 400000, flag = not flag, cnt = cnt + 1, f8 = -f8
 where id % 10 = 3;
delete from difftest.dense where id % 17 = 0;
insert into difftest.dense select 300000 + n - 122001, aum, amt, i2, i4, i8, f8, d, d2, ts, flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
  from difftest.src where n between 122001 and 127000 order by random();
insert into difftest.dense select 100000 + (n - 127001), aum, amt, i2, i4, i8, f8, d, d2, ts, flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
  from difftest.src where n between 127001 and 137000 order by n desc;
analyze difftest.dense;

insert into difftest.dres select 2, tag, members, entered, exited from segment.refresh('dense', '2026-11-22');
select * from difftest.dense_check(2, '2026-11-22', 'difftest.dense1');
select * from difftest.view_check(2);

select is((select count(*) from difftest.dres where run = 2 and members is null), 0::bigint,
          'run 2: every tag refreshed');

select * from finish();
rollback;
