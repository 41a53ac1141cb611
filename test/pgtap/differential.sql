-- Differential test: segment's membership against PostgreSQL itself.
--
-- For every rule in difftest.rules (178 rules in test/fixtures/difftest.psql,
-- one line per rule), over 100,002 generated rows (int8 keys up to 4294967295):
--   members('diff', tag)  =  select id from difftest.t where (rule) is true
-- with the rule evaluated by plain SQL under SET segment.as_of, and
-- segment.refresh() evaluating it with as_of passed as an argument (while the
-- GUC holds a different date, so a refresh that ignores its as_of fails).
--
-- Phase 1: first refresh (as_of 2026-11-22): sets, refresh counts,
--          segment.count, entered = members and exited = 0, and for sample
--          keys segment.tags / segment.has_tag.
-- Phase 2: DELETE / UPDATE / INSERT rows, alter two rules, add a tag, refresh
--          again (as_of 2026-11-23): sets, counts, and entered / exited equal
--          to the plain-SQL set differences against the first run.
--
-- Assumptions about the API (docs: /work/API.md):
--   * refresh(subject, as_of) returns one row per active tag of the subject.
--   * First refresh of a tag: entered = members, exited = 0.
--   * After alter_tag changes a rule, entered/exited are still counted
--     against the tag's previous member set.
--   * Inside a refresh segment.as_of() is the refresh's as_of, whatever the
--     GUC segment.as_of says; outside it is the GUC.
-- No SQLSTATEs are asserted here (no error is expected).
-- Runtime: about 40 s on the 2-core dev machine under load (generation ~1 s,
-- ~550 plain-SQL scans of 100k rows, two refreshes).

\ir ../fixtures/pgtap.psql

set local timezone = 'Asia/Shanghai';
do $$ begin perform setseed(0.4242); end $$;

\ir ../fixtures/difftest.psql

do $$ begin perform difftest.fill(1, 100000, '{0,4294967295}'); end $$;
analyze difftest.t;

-- Tests: 5 + 4 per rule + 2 (phase 1); 4 + 3 per rule incl. late_tag + 1 (phase 2).
select plan((select 5 + 4 * n + 2 + 4 + 3 * (n + 1) + 1 from (select count(*)::int n from difftest.rules) r));

------------------------------------------------------------------------------
-- Phase 1: define, refresh once, compare.

select lives_ok($$select segment.register_subject('diff', 'difftest.t', 'id')$$,
                'register_subject diff on difftest.t(id)');

create function difftest.create_all() returns text language plpgsql as $f$
declare
    r record;
    failures text;
begin
    for r in select * from difftest.rules order by ord loop
        begin
            perform segment.create_tag('diff', r.tag, r.rule, 'difftest', 'rule ' || r.ord);
        exception when others then
            failures := concat_ws(E'\n', failures, format('%s (%s): %s: %s', r.tag, r.rule, sqlstate, sqlerrm));
        end;
    end loop;
    return is(failures, null, 'create_tag accepts every rule');
end
$f$;
select difftest.create_all();

create table difftest.r1 (subject name, tag name, members bigint, entered bigint, exited bigint);

-- The GUC says another date: the refresh must use its as_of argument.
set local segment.as_of = '1999-01-01';
select lives_ok($$insert into difftest.r1 select * from segment.refresh('diff', '2026-11-22'::date)$$,
                'first refresh of diff (as_of 2026-11-22)');
set local segment.as_of = '2026-11-22';

select set_eq($$select tag from difftest.r1 where subject = 'diff'$$,
              $$select tag from difftest.rules$$,
              'first refresh reports one row per tag');

create table difftest.counts1 (tag name, n bigint);

create function difftest.phase1() returns setof text language plpgsql as $f$
declare
    r  record;
    st record;
    c  difftest.cmp;
begin
    for r in select * from difftest.rules order by ord loop
        c := difftest.compare('difftest.t', 'id', r.rule, '2026-11-22',
                              difftest.members_of('diff', r.tag::text));
        return next difftest.report(c, format('%s: members = (%s) is true', r.tag, r.rule),
                                    'difftest.t', 'id', r.rule);
        insert into difftest.counts1 values (r.tag, c.sql_count);
        select * into st from difftest.r1 where tag = r.tag;
        return next is(st.members, c.sql_count, format('%s: refresh reports %s members', r.tag, c.sql_count));
        return next is(difftest.count_of('diff', r.tag::text), c.sql_count, format('%s: segment.count', r.tag));
        return next is(format('%s/%s', st.entered, st.exited), format('%s/0', c.sql_count),
                       format('%s: first refresh: entered = members, exited = 0', r.tag));
    end loop;
end
$f$;

select * from difftest.phase1();

-- The comparison would prove little if a rule selected nothing or every row.
select is(
    (select string_agg(format('%s (%s rows)', r.tag, c.n), ', ' order by r.ord)
       from difftest.rules r join difftest.counts1 c using (tag)
      where not r.trivial and (c.n = 0 or c.n = (select count(*) from difftest.t))),
    null,
    'generator: every non-trivial rule selects some but not all rows');

-- Per-key reading functions on sample keys, including 0, 4294967295 and keys
-- above 2^31.
create table difftest.sample as
    select id from difftest.t where id in (0, 4294967295) or id % 1999 = 3 order by id;

create table difftest.sample_expected as
    select s.id, r.tag::text as tag
      from difftest.rules r,
           lateral unnest(difftest.sql_keys('(select * from difftest.t where id in (select id from difftest.sample)) x',
                                            'id', r.rule, '2026-11-22')) k(key)
      join difftest.sample s on s.id = k.key::int8;

select is(
    (select string_agg(format('%s: got %s, want %s', s.id, got, want), E'\n' order by s.id)
       from difftest.sample s,
            lateral (select difftest.tags_of('diff', s.id) as got,
                            array(select e.tag from difftest.sample_expected e where e.id = s.id order by 1) as want) g
      where got is distinct from want),
    null,
    'segment.tags(diff, key) lists exactly the rules true for the row (51 sample keys, 20 above 2^31)');

select is(
    (select string_agg(format('%s/%s: got %s', s.id, r.tag, difftest.has_tag_of('diff', s.id, r.tag)), E'\n')
       from difftest.sample s cross join difftest.rules r
      where difftest.has_tag_of('diff', s.id, r.tag) is distinct from
            exists (select from difftest.sample_expected e where e.id = s.id and e.tag = r.tag)),
    null,
    'segment.has_tag(diff, key, tag) is (rule) is true (51 sample keys x every tag)');

------------------------------------------------------------------------------
-- Phase 2: change rows and rules, refresh again at the next day.

create table difftest.t1 as select * from difftest.t;    -- the rows of run 1

create table difftest.rules2 as
    select ord, tag, rule as old_rule, rule as new_rule from difftest.rules;
update difftest.rules2 set new_rule = 'aum >= 400000' where tag = 'aum_ge_500k';
update difftest.rules2 set new_rule = $r$d - segment.as_of() in (30, 14, 7, 0)$r$ where tag = 'd_maturing';
insert into difftest.rules2 values (1000, 'late_tag', null, $r$i4 > 1000 and d > segment.as_of()$r$);

-- Deletes include keys 0 and 4294967295; updates move values across
-- thresholds; inserts add new ids.
delete from difftest.t where id % 11 = 0 or id = 4294967295;
update difftest.t
   set aum = aum + 400000, amt = amt - 1, i4 = -(i4 / 2), f8 = -f8, flag = not flag, flag2 = null,
       d = d + 1, ts = ts + interval '12 hours', cust_name = upper(cust_name),
       pat = pat || '%', arr = arr || 3, cnt = cnt + 1
 where id % 13 = 1;
do $$ begin perform difftest.fill(100001, 102000); end $$;
analyze difftest.t;

select lives_ok($q$do $d$ begin
        perform segment.alter_tag('aum_ge_500k', rule => 'aum >= 400000');
        perform segment.alter_tag('d_maturing', rule => $r$d - segment.as_of() in (30, 14, 7, 0)$r$);
        perform segment.create_tag('diff', 'late_tag', $r$i4 > 1000 and d > segment.as_of()$r$);
    end $d$$q$,
    'alter two rules and add a tag between refreshes');

create table difftest.r2 (subject name, tag name, members bigint, entered bigint, exited bigint);
set local segment.as_of = '1999-01-01';
select lives_ok($$insert into difftest.r2 select * from segment.refresh('diff', '2026-11-23'::date)$$,
                'second refresh of diff (as_of 2026-11-23)');
set local segment.as_of = '2026-11-23';

select set_eq($$select tag from difftest.r2 where subject = 'diff'$$,
              $$select tag from difftest.rules2$$,
              'second refresh reports one row per tag, the new one included');

select is((select count(*) from difftest.t where id = 0 or id = 4294967295), 0::bigint,
          'phase 2 deleted keys 0 and 4294967295');

create table difftest.moved (tag name, entered bigint, exited bigint);

create function difftest.phase2() returns setof text language plpgsql as $f$
declare
    r  record;
    st record;
    c  difftest.cmp;
begin
    for r in select * from difftest.rules2 order by ord loop
        c := difftest.compare('difftest.t', 'id', r.new_rule, '2026-11-23',
                              difftest.members_of('diff', r.tag::text),
                              'difftest.t1', r.old_rule, '2026-11-22');
        return next difftest.report(c, format('%s after DML: members = (%s) is true', r.tag, r.new_rule),
                                    'difftest.t', 'id', r.new_rule);
        select * into st from difftest.r2 where tag = r.tag;
        return next is(st.members, c.sql_count,
                       format('%s after DML: refresh reports %s members', r.tag, c.sql_count));
        insert into difftest.moved values (r.tag, c.sql_entered, c.sql_exited);
        return next is(format('entered %s, exited %s', st.entered, st.exited),
                       format('entered %s, exited %s', c.sql_entered, c.sql_exited),
                       format('%s after DML: entered / exited are the set differences', r.tag));
    end loop;
end
$f$;

select * from difftest.phase2();

-- Guard: the changes must actually move members in and out for most tags.
select cmp_ok(
    (select count(*) from difftest.moved m join difftest.rules2 r using (tag)
      left join difftest.rules x using (tag)
     where m.entered > 0 and m.exited > 0 and not coalesce(x.trivial, false)),
    '>=',
    (select (count(*) * 0.8)::bigint from difftest.rules where not trivial),
    'phase 2 moves members in and out of at least 80% of the non-trivial tags');

select * from finish();
rollback;
