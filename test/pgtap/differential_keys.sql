-- Differential test for the other key types: a text-keyed, a varchar-keyed
-- and an int4-keyed subject (about 20,000 rows each), over a subset of the
-- rules of test/fixtures/difftest.psql, through three refreshes:
--   run 1  refresh(null, 2026-11-22): every subject at once
--   run 2  after DELETE / UPDATE / INSERT (new keys), refresh per subject at 2026-11-29
--   run 3  after re-inserting the deleted keys with other values, at 2026-11-29
-- For each run and tag: members_text (and members for int4) equal the keys
-- for which (rule) is true in plain SQL; the refresh's members / entered /
-- exited equal the plain-SQL count and set differences against the run before.
-- Also: audiences (and / or / not, parentheses, precedence not > and > or)
-- against the same boolean combination in SQL, and manual tags on text and
-- int4 keys (including the empty-string key and keys differing only by a
-- trailing space).
--
-- Assumptions (API.md):
--   * members_text works for every key type; members for integer keys.
--   * First refresh: entered = members, exited = 0.
--   * A manual tag set with set_tag counts at once (no refresh needed) and
--     after a refresh; set_tag(..., false) removes it; audiences can name it.
--   * has_tag / tags take a text key for text subjects and bigint for int4.
-- No SQLSTATEs are asserted here (no error is expected).

\ir ../fixtures/pgtap.psql

set local timezone = 'Asia/Shanghai';
do $$ begin perform setseed(0.1717); end $$;

\ir ../fixtures/difftest.psql

do $$ begin perform difftest.fill(1, 20000, '{0,4294967295}'); end $$;

-- Text keys: case, unicode, spaces (leading, inner, trailing), tab, quote,
-- LIKE characters, leading zeros; plus special keys below.
create function difftest.text_key(id int8) returns text language sql immutable as $$
    select case id % 9
        when 0 then 'c' || id
        when 1 then 'C' || id
        when 2 then '客户-' || id
        when 3 then ' k ' || id || ' '
        when 4 then lpad(id::text, 12, '0')
        when 5 then E'tab\t' || id
        when 6 then 'Ключ' || id
        when 7 then id::text || ''''
        else 'x_' || id || '%'
    end
$$;

create table difftest.kt as
    select difftest.text_key(id) as k, t.* from difftest.t t;
insert into difftest.kt
    select s.k, t.*
      from (values (1, ''), (2, ' '), (3, 'a'), (4, 'A'), (5, 'a '), (6, '0'), (7, '00'),
                   (8, '-1'), (9, 'NULL'), (10, repeat('long', 100)), (11, 'X')) s(n, k),
           lateral (select * from difftest.t order by id offset s.n * 17 limit 1) t;
alter table difftest.kt add primary key (k);

create table difftest.kv as
    select k::varchar(40) as k, id, aum, amt, i2, i4, i8, f8, d, d2, ts, flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
      from difftest.kt where length(k) <= 40 and id % 4 = 1;
alter table difftest.kv add primary key (k);

-- int4 keys up to 2147483647 (0 and the maximum included).
create table difftest.ki as
    select case when id = 4294967295 then 2147483647
                else ((id / 35000) * 107000 + (id / 35000) % 3)::int4 end as k,
           t.*
      from difftest.t t;
alter table difftest.ki add primary key (k);

analyze difftest.kt;
analyze difftest.kv;
analyze difftest.ki;

-- The rules used here (a subset of difftest.rules).
create table difftest.krules as
    select ord, tag, rule from difftest.rules
     where tag in ('aum_ge_500k', 'aum_is_null', 'amt_nan', 'amt_ge_995', 'i4_gt_i8', 'f8_gt_zero',
                   'd_maturing', 'd_last90', 'ts_month', 'flag_bare', 'not_flag', 'nested_3vl',
                   'name_lt', 'name_gt_icu', 'name_ilike', 'pat_has_percent', 'case_bool',
                   'arr_any', 'cnt_not_in', 'const_true');

-- subject, tag prefix, the relation as compare() sees it (a text key column
-- named key_text), the table itself
create table difftest.subjects (subject name, prefix text, rel text, tbl text, int_keys boolean);
insert into difftest.subjects values
    ('keys_text',    'tx_', '(select k as key_text, * from difftest.kt) r', 'difftest.kt', false),
    ('keys_varchar', 'vc_', '(select k::text as key_text, * from difftest.kv) r', 'difftest.kv', false),
    ('keys_int4',    'ik_', '(select k::text as key_text, * from difftest.ki) r', 'difftest.ki', true);

-- 1 + 3 per tag, subject and run (3 x 3) + 1 per tag (members on int4)
-- + 1 guard + 1 set_tag + 8 audience + 9 manual
select plan((select 1 + 3 * 3 * 3 * n + n + 1 + 1 + 8 + 9 from (select count(*)::int n from difftest.krules) r));

select lives_ok($q$do $d$
    declare s record; r record;
    begin
        for s in select * from difftest.subjects loop
            perform segment.register_subject(s.subject, s.tbl::regclass, 'k');
            for r in select * from difftest.krules order by ord loop
                perform segment.create_tag(s.subject, s.prefix || r.tag, r.rule);
            end loop;
        end loop;
        perform segment.create_tag('keys_text', 'tx_manual', null, 'manual');
        perform segment.create_tag('keys_int4', 'ik_manual', null, 'manual');
    end $d$$q$,
    'register the text, varchar and int4 subjects and their tags');

create table difftest.kres (run int, subject name, tag name, members bigint, entered bigint, exited bigint);

-- One run's checks for every subject and rule tag. before_suffix names the
-- copy of the tables taken before the run (null: first run).
create function difftest.check_run(run int, as_of date, before_suffix text, before_as_of date)
returns setof text language plpgsql as $f$
declare
    s  record;
    r  record;
    st record;
    c  difftest.cmp;
begin
    for s in select * from difftest.subjects order by subject loop
        for r in select * from difftest.krules order by ord loop
            c := difftest.compare(s.rel, 'key_text', r.rule, as_of,
                                  difftest.members_text_of(s.subject, s.prefix || r.tag),
                                  replace(s.rel, s.tbl, s.tbl || before_suffix), r.rule, before_as_of);
            return next difftest.report(c, format('run %s %s %s: members_text = (%s) is true',
                                                  run, s.subject, s.prefix || r.tag, r.rule),
                                        s.rel, 'key_text', r.rule);
            select * into st from difftest.kres k
             where k.run = check_run.run and k.subject = s.subject and k.tag = s.prefix || r.tag;
            return next is(st.members, c.sql_count,
                           format('run %s %s %s: refresh reports %s members', run, s.subject, s.prefix || r.tag, c.sql_count));
            return next is(format('entered %s, exited %s', st.entered, st.exited),
                           format('entered %s, exited %s', c.sql_entered, c.sql_exited),
                           format('run %s %s %s: entered / exited', run, s.subject, s.prefix || r.tag));
        end loop;
    end loop;
end
$f$;

------------------------------------------------------------------------------
-- Run 1: every subject in one call.

set local segment.as_of = '1999-01-01';
select difftest.try($$insert into difftest.kres select 1, * from segment.refresh(null, '2026-11-22'::date)$$);

select * from difftest.check_run(1, '2026-11-22', null, null);

-- members (bigint) on the int4 subject
create function difftest.check_int_members() returns setof text language plpgsql as $f$
declare
    r record;
    c difftest.cmp;
begin
    for r in select * from difftest.krules order by ord loop
        c := difftest.compare('difftest.ki', 'k', r.rule, '2026-11-22',
                              difftest.members_of('keys_int4', 'ik_' || r.tag));
        return next difftest.report(c, format('keys_int4 ik_%s: members (bigint) = (%s) is true', r.tag, r.rule),
                                    'difftest.ki', 'k', r.rule);
    end loop;
end
$f$;
select * from difftest.check_int_members();

select is(
    (select string_agg(format('%s %s (%s)', subject, tag, members), ', ')
       from difftest.kres k
      where run = 1 and tag not like '%const_true' and subject in (select subject from difftest.subjects)
        and (members = 0 or members = case subject when 'keys_text' then (select count(*) from difftest.kt)
                                                   when 'keys_varchar' then (select count(*) from difftest.kv)
                                                   else (select count(*) from difftest.ki) end)),
    null,
    'generator: every non-constant rule selects some but not all keys of each subject');

------------------------------------------------------------------------------
-- Audiences against the same combination in SQL (run 1 state; as_of 2026-11-22).

create function difftest.check_audience(subject name, rel text, audience text, sql_where text)
returns setof text language plpgsql as $f$
declare
    c difftest.cmp;
begin
    c := difftest.compare(rel, 'key_text', sql_where, '2026-11-22',
                          difftest.members_text_of(subject, audience));
    return next difftest.report(c, format('%s: members_text(%L) = %s', subject, audience, sql_where),
                                rel, 'key_text', sql_where);
    return next is(difftest.count_of(subject, audience), c.sql_count,
                   format('%s: count(%L) = %s', subject, audience, c.sql_count));
end
$f$;

select lives_ok($q$do $d$ begin
        perform segment.set_tag('keys_text', '', 'tx_manual');
        perform segment.set_tag('keys_text', 'a ', 'tx_manual');
        perform segment.set_tag('keys_text', 'X', 'tx_manual');
        perform segment.set_tag('keys_int4', 2147483647::bigint, 'ik_manual');
        perform segment.set_tag('keys_int4', '0', 'ik_manual');
    end $d$$q$,
    'set_tag on text keys (empty, trailing space) and int4 keys (0, 2147483647)');

select * from difftest.check_audience('keys_text', '(select k as key_text, * from difftest.kt) r',
    'tx_aum_ge_500k and not tx_flag_bare',
    $w$(aum >= 500000) is true and not ((flag) is true)$w$);
select * from difftest.check_audience('keys_text', '(select k as key_text, * from difftest.kt) r',
    'tx_d_maturing or tx_amt_nan and not tx_name_lt',
    $w$(d - segment.as_of() in (30, 15, 7, 1)) is true or ((amt = 'NaN') is true and not ((cust_name < 'b') is true))$w$);
select * from difftest.check_audience('keys_text', '(select k as key_text, * from difftest.kt) r',
    '(tx_aum_is_null or tx_manual) and not (tx_f8_gt_zero or tx_name_ilike)',
    $w$((aum is null) or k in ('', 'a ', 'X')) and not ((f8 > 0) is true or (cust_name ilike 'ali%') is true)$w$);
select * from difftest.check_audience('keys_int4', '(select k::text as key_text, * from difftest.ki) r',
    'not (ik_flag_bare or ik_not_flag) and ik_cnt_not_in or ik_manual',
    $w$(flag is null and (cnt not in (1, 3, 5, 7)) is true) or k in (0, 2147483647)$w$);

------------------------------------------------------------------------------
-- Manual tags by key.

select is(difftest.sorted(difftest.members_text_of('keys_text', 'tx_manual')),
          difftest.sorted(array['', 'a ', 'X']),
          'manual tag on text keys: members_text, no refresh needed after set_tag');
select is(difftest.sorted(difftest.members_of('keys_int4', 'ik_manual')),
          array[0, 2147483647]::int8[],
          'manual tag on int4 keys: members');
select is(difftest.has_tag_text_of('keys_text', '', 'tx_manual'), true, 'has_tag on the empty-string key');
select is(difftest.has_tag_text_of('keys_text', 'a', 'tx_manual'), false, 'has_tag: ''a'' is not ''a '' (trailing space)');
select ok('tx_manual' = any(difftest.tags_text_of('keys_text', 'a ')), 'tags(''a '') lists the manual tag');
select ok(not 'tx_manual' = any(difftest.tags_text_of('keys_text', 'A')), 'tags(''A'') does not list it');
select lives_ok($$select segment.set_tag('keys_text', 'a ', 'tx_manual', false)$$, 'set_tag(..., false)');
select is(difftest.sorted(difftest.members_text_of('keys_text', 'tx_manual')),
          difftest.sorted(array['', 'X']),
          'set_tag(..., false) removes the key');
select is(difftest.has_tag_of('keys_int4', 2147483647, 'ik_manual'), true, 'has_tag on int4 key 2147483647');

------------------------------------------------------------------------------
-- Run 2: change rows (delete, update, insert new keys), refresh per subject.

create table difftest.kt_1 as select * from difftest.kt;
create table difftest.kv_1 as select * from difftest.kv;
create table difftest.ki_1 as select * from difftest.ki;

create table difftest.kt_deleted as select * from difftest.kt where id % 10 = 3 or k in ('', 'a', '0');
delete from difftest.kt where k in (select k from difftest.kt_deleted);
create table difftest.kv_deleted as select * from difftest.kv where id % 10 = 3 or k = 'a';
delete from difftest.kv where k in (select k from difftest.kv_deleted);
create table difftest.ki_deleted as select * from difftest.ki where id % 10 = 3 or k in (0, 2147483647);
delete from difftest.ki where k in (select k from difftest.ki_deleted);

update difftest.kt set aum = coalesce(aum, 0) + 300000, flag = not flag, d = d + 7, cust_name = lower(cust_name), cnt = cnt + 1
 where id % 10 = 4;
update difftest.kv set aum = coalesce(aum, 0) + 300000, flag = not flag, d = d + 7, cust_name = lower(cust_name), cnt = cnt + 1
 where id % 10 = 4;
update difftest.ki set aum = coalesce(aum, 0) + 300000, flag = not flag, d = d + 7, cust_name = lower(cust_name), cnt = cnt + 1
 where id % 10 = 4;

insert into difftest.kt select 'new ' || k, id, aum, amt, i2, i4, i8, -f8, d + 3, d2, ts, not flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
  from difftest.kt_1 where id % 10 = 5;
insert into difftest.kt values ('Ω', 1, 600000) , ('ω', 2, null);
insert into difftest.kv select ('new ' || k)::varchar(40), id, aum, amt, i2, i4, i8, -f8, d + 3, d2, ts, not flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
  from difftest.kv_1 where id % 10 = 5 and length(k) <= 36;
insert into difftest.ki select k + 1, id, aum, amt, i2, i4, i8, -f8, d + 3, d2, ts, not flag, flag2, cust_name, code, pat, arr, cnt, bal_a, bal_b
  from difftest.ki_1 where id % 10 = 5 and k < 2147483647;

set local segment.as_of = '1999-01-01';
select difftest.try($$insert into difftest.kres select 2, * from segment.refresh('keys_text', '2026-11-29'::date)$$);
select difftest.try($$insert into difftest.kres select 2, * from segment.refresh('keys_varchar', '2026-11-29'::date)$$);
select difftest.try($$insert into difftest.kres select 2, * from segment.refresh('keys_int4', '2026-11-29'::date)$$);

select * from difftest.check_run(2, '2026-11-29', '_1', '2026-11-22');

------------------------------------------------------------------------------
-- Run 3: the deleted keys come back (other values); same as_of.

create table difftest.kt_2 as select * from difftest.kt;
create table difftest.kv_2 as select * from difftest.kv;
create table difftest.ki_2 as select * from difftest.ki;

insert into difftest.kt select k, id, aum, amt, i2, i4, i8, f8, d - 5, d2, ts, not flag, flag2, upper(cust_name), code, pat, arr, cnt + 2, bal_a, bal_b
  from difftest.kt_deleted;
insert into difftest.kv select k, id, aum, amt, i2, i4, i8, f8, d - 5, d2, ts, not flag, flag2, upper(cust_name), code, pat, arr, cnt + 2, bal_a, bal_b
  from difftest.kv_deleted;
insert into difftest.ki select k, id, aum, amt, i2, i4, i8, f8, d - 5, d2, ts, not flag, flag2, upper(cust_name), code, pat, arr, cnt + 2, bal_a, bal_b
  from difftest.ki_deleted;

set local segment.as_of = '1999-01-01';
select difftest.try($$insert into difftest.kres select 3, * from segment.refresh('keys_text', '2026-11-29'::date)$$);
select difftest.try($$insert into difftest.kres select 3, * from segment.refresh('keys_varchar', '2026-11-29'::date)$$);
select difftest.try($$insert into difftest.kres select 3, * from segment.refresh('keys_int4', '2026-11-29'::date)$$);

select * from difftest.check_run(3, '2026-11-29', '_2', '2026-11-29');

select * from finish();
rollback;
