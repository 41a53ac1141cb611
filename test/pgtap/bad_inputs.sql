-- Bad inputs: every rejection of DESIGN.md "Rules are SQL expressions" and of
-- the API's other entry points is an error with a specific SQLSTATE, and a
-- failed call leaves the catalog exactly as before (segment.subject, tag,
-- tag_history, tag_state, subject_state, manual_tag, keymap, run).
-- Column dependencies: dropping or retyping a column a rule uses is refused
-- naming the tag; unused columns can be dropped; dependencies follow
-- alter_tag and drop_tag.
--
-- SQLSTATEs assumed (change the expected code in bad.cases if the code
-- chooses otherwise):
--   42601 syntax_error            rule does not parse (incl. empty rule,
--                                 "true) or (true", "true; drop ...");
--                                 audience syntax error
--   42703 undefined_column        rule names an unknown column; register_subject
--                                 with a missing key / org / owner column
--   42804 datatype_mismatch       rule is not boolean; key column of a type
--                                 other than int4 / int8 / text / varchar
--   0A000 feature_not_supported   subquery, set-returning function, volatile
--                                 function
--   42803 grouping_error          aggregate (as in src/rule_parse.c)
--   42P20 windowing_error         window function (as in src/rule_parse.c)
--   42602 invalid_name            tag name that is not an identifier or is
--                                 and / or / not
--   22023 invalid_parameter_value alter_tag with nothing to change; set_tag
--                                 with an expiry in the past
--   42P10 invalid_column_reference  register_subject on a non-unique key column
--   42P01 undefined_table         rule refers to another table; register_subject
--                                 on a missing relation (regclass input)
--   42883 undefined_function      rule calls an unknown function
--   42P02 undefined_parameter     rule uses $1
--   22P02 invalid_text_representation  constant that does not fit the column
--                                 type ("aum > 'abc'"); set_tag with key 'abc'
--                                 on an integer subject
--   42704 undefined_object        unknown subject (create_tag, set_tag, refresh,
--                                 members, count, unregister_subject); unknown
--                                 tag (alter_tag, drop_tag, set_tag, audience)
--   42710 duplicate_object        duplicate tag name (also across subjects);
--                                 duplicate subject name
--   42809 wrong_object_type       set_tag on a rule tag
--   22003 numeric_value_out_of_range  integer key outside 0..4294967295 at
--                                 register or refresh
--   2BP01 dependent_objects_still_exist  ALTER TABLE drops, renames or
--                                 retypes a column used by a rule (message,
--                                 detail or hint names the tag), even when the
--                                 rule would still analyse (numeric -> int
--                                 silently rounds); DROP TABLE of a subject

\ir ../fixtures/pgtap.psql

create schema bad;
create table bad.c (
    id          int8 primary key,
    aum         numeric(18,2),
    d           date,
    flag        boolean,
    cust_name   text,
    unused_col  int,
    unused_txt  text,
    retype_col  int,
    col_a       int,
    col_b       int
);
insert into bad.c
select n, n * 1000.5, date '2026-11-22' + n % 60 - 30, n % 3 = 0, 'name ' || n, n, 'x', n % 10, n % 7, n % 5
  from generate_series(1, 200) n;
create table bad.other (x int);
create sequence bad.seq;
create table bad.numkey (k numeric primary key, v int);
create table bad.tk (k text primary key, v int);
insert into bad.tk values ('a', 1), ('b', 2);
create table bad.negkey (k int8 primary key, v int);
insert into bad.negkey values (1, 1), (-1, 2);
create table bad.bigkey (k int8 primary key, v int);
insert into bad.bigkey values (1, 1), (4294967296, 2);
create function bad.vol(int) returns boolean volatile language sql as 'select $1 > 0';

do $$ begin
    perform segment.register_subject('c', 'bad.c', 'id');
    perform segment.register_subject('c2', 'bad.tk', 'k');
    perform segment.create_tag('c', 'good', 'aum > 100000', 'value', 'a rule tag');
    perform segment.create_tag('c', 'uses_retype', 'retype_col > 5');
    perform segment.create_tag('c', 'alter_me', 'col_a > 0');
    perform segment.create_tag('c', 'manual_one', null, 'manual');
    perform segment.set_tag('c', '7', 'manual_one');
    perform segment.create_tag('c2', 'c2_tag', 'v > 1');
    perform segment.alter_tag('uses_retype', description => 'altered once');
    perform segment.refresh(null, '2026-11-22');
end $$;

-- Everything the extension keeps, as one text; a failed call must not
-- change it.
create function bad.snapshot() returns text language sql as $$
    select md5(string_agg(x, E'\n' order by x)) from (
        select 'subject ' || row(s.*)::text from segment.subject s
        union all select 'tag ' || row(t.*)::text from segment.tag t
        union all select 'history ' || row(h.*)::text from segment.tag_history h
        union all select 'tag_state ' || row(ts.*)::text from segment.tag_state ts
        union all select 'subject_state ' || row(ss.*)::text from segment.subject_state ss
        union all select 'manual ' || row(m.*)::text from segment.manual_tag m
        union all select 'keymap ' || row(k.*)::text from segment.keymap k
        union all select 'run ' || row(r.*)::text from segment.run r
    ) z(x)
$$;

-- Run sql and always roll it back. Returns its error as
-- "SQLSTATE: message | detail | hint" (or 'no error'), and whether the
-- catalog differed after it (only possible when it did not fail: a failed
-- statement is rolled back with its subtransaction). Rolling back every
-- attempt keeps one unexpected success from spoiling the cases after it.
create type bad.attempt as (err text, changed boolean);

create function bad.attempt(sql text) returns bad.attempt language plpgsql as $$
declare
    st text; msg text; det text; hin text;
    before text := bad.snapshot();
    after text;
    r bad.attempt;
begin
    begin
        execute sql;
        after := bad.snapshot();
        raise exception '__no_error__';
    exception when others then
        get stacked diagnostics st = returned_sqlstate, msg = message_text,
                                det = pg_exception_detail, hin = pg_exception_hint;
        if msg = '__no_error__' then
            r.err := 'no error';
            r.changed := after is distinct from before;
        else
            r.err := st || ': ' || msg || ' | ' || coalesce(det, '') || ' | ' || coalesce(hin, '');
            r.changed := bad.snapshot() is distinct from before;
        end if;
    end;
    return r;
end
$$;

create function bad.error_of(sql text) returns text language sql as $$
    select (bad.attempt(sql)).err
$$;

create table bad.cases (ord serial, what text, sql text, sqlstate char(5));
insert into bad.cases (what, sql, sqlstate) values
-- rules that do not parse
('rule: syntax error',                 $s$select segment.create_tag('c', 'x1', 'aum >')$s$, '42601'),
('rule: dangling and',                 $s$select segment.create_tag('c', 'x1', 'aum >= 500000 and')$s$, '42601'),
('rule: empty',                        $s$select segment.create_tag('c', 'x1', '')$s$, '42601'),
('rule: blank',                        $s$select segment.create_tag('c', 'x1', '   ')$s$, '42601'),
('rule: unbalanced parentheses',       $s$select segment.create_tag('c', 'x1', 'true) or (true')$s$, '42601'),
('rule: second statement',             $s$select segment.create_tag('c', 'x1', 'true; drop table bad.other')$s$, '42601'),
('rule: a whole query',                $s$select segment.create_tag('c', 'x1', 'select true')$s$, '42601'),
-- unknown names
('rule: unknown column',               $s$select segment.create_tag('c', 'x1', 'nosuch > 1')$s$, '42703'),
('rule: unknown column in a call',     $s$select segment.create_tag('c', 'x1', $r$lower(nosuch) = 'a'$r$)$s$, '42703'),
('rule: unknown function',             $s$select segment.create_tag('c', 'x1', 'nosuchfunc(aum) > 1')$s$, '42883'),
('rule: parameter',                    $s$select segment.create_tag('c', 'x1', 'aum > $1')$s$, '42P02'),
('rule: constant of the wrong type',   $s$select segment.create_tag('c', 'x1', $r$aum > 'abc'$r$)$s$, '22P02'),
-- not boolean
('rule: numeric column',               $s$select segment.create_tag('c', 'x1', 'aum')$s$, '42804'),
('rule: arithmetic',                   $s$select segment.create_tag('c', 'x1', 'aum + 1')$s$, '42804'),
('rule: text column',                  $s$select segment.create_tag('c', 'x1', 'cust_name')$s$, '42804'),
('rule: integer constant',             $s$select segment.create_tag('c', 'x1', '1')$s$, '42804'),
-- subqueries, aggregates, windows, set-returning functions
('rule: scalar subquery',              $s$select segment.create_tag('c', 'x1', 'aum > (select 1)')$s$, '0A000'),
('rule: exists subquery',              $s$select segment.create_tag('c', 'x1', 'exists (select 1 from bad.other)')$s$, '0A000'),
('rule: in subquery',                  $s$select segment.create_tag('c', 'x1', 'id in (select x from bad.other)')$s$, '0A000'),
('rule: count(*)',                     $s$select segment.create_tag('c', 'x1', 'count(*) > 1')$s$, '42803'),
('rule: sum()',                        $s$select segment.create_tag('c', 'x1', 'sum(aum) > 0')$s$, '42803'),
('rule: window function',              $s$select segment.create_tag('c', 'x1', 'row_number() over () > 1')$s$, '42P20'),
('rule: generate_series',              $s$select segment.create_tag('c', 'x1', 'generate_series(1, 2) > 1')$s$, '0A000'),
('rule: unnest',                       $s$select segment.create_tag('c', 'x1', 'unnest(array[1, 2]) > 1')$s$, '0A000'),
-- volatile functions
('rule: random()',                     $s$select segment.create_tag('c', 'x1', 'random() < 0.5')$s$, '0A000'),
('rule: random() inside arithmetic',   $s$select segment.create_tag('c', 'x1', 'aum > random() * 1000')$s$, '0A000'),
('rule: clock_timestamp()',            $s$select segment.create_tag('c', 'x1', $r$clock_timestamp() > '2026-01-01'$r$)$s$, '0A000'),
('rule: nextval()',                    $s$select segment.create_tag('c', 'x1', $r$nextval('bad.seq') > 0$r$)$s$, '0A000'),
('rule: volatile user function',       $s$select segment.create_tag('c', 'x1', 'bad.vol(retype_col)')$s$, '0A000'),
-- other tables
('rule: qualified column of another table', $s$select segment.create_tag('c', 'x1', 'bad.other.x > 1')$s$, '42P01'),
('rule: column of another table',      $s$select segment.create_tag('c', 'x1', 'other.x = 1')$s$, '42P01'),
-- the same checks on alter_tag
('alter_tag: volatile rule',           $s$select segment.alter_tag('good', rule => 'random() < 0.5')$s$, '0A000'),
('alter_tag: unknown column',          $s$select segment.alter_tag('good', rule => 'nosuch > 1')$s$, '42703'),
('alter_tag: not boolean',             $s$select segment.alter_tag('good', rule => 'aum')$s$, '42804'),
('alter_tag: syntax error',            $s$select segment.alter_tag('good', rule => 'aum >')$s$, '42601'),
-- names
('create_tag: unknown subject',        $s$select segment.create_tag('nosuch', 'x1', 'true')$s$, '42704'),
('create_tag: duplicate tag',          $s$select segment.create_tag('c', 'good', 'aum > 0')$s$, '42710'),
('create_tag: duplicate across subjects', $s$select segment.create_tag('c2', 'good', 'v > 0')$s$, '42710'),
('create_tag: duplicate manual tag',   $s$select segment.create_tag('c', 'manual_one', null)$s$, '42710'),
('create_tag: tag named like a keyword', $s$select segment.create_tag('c', 'and', 'true')$s$, '42602'),
('create_tag: tag name with a space',  $s$select segment.create_tag('c', 'high value', 'true')$s$, '42602'),
('alter_tag: nothing to change',       $s$select segment.alter_tag('good')$s$, '22023'),
('alter_tag: unknown tag',             $s$select segment.alter_tag('nosuch', rule => 'true')$s$, '42704'),
('alter_tag: unknown tag, active only', $s$select segment.alter_tag('nosuch', active => false)$s$, '42704'),
('drop_tag: unknown tag',              $s$select segment.drop_tag('nosuch')$s$, '42704'),
('set_tag: rule tag',                  $s$select segment.set_tag('c', '7', 'good')$s$, '42809'),
('set_tag: rule tag, bigint key',      $s$select segment.set_tag('c', 7::bigint, 'good')$s$, '42809'),
('set_tag: unknown tag',               $s$select segment.set_tag('c', '7', 'nosuch')$s$, '42704'),
('set_tag: unknown subject',           $s$select segment.set_tag('nosuch', '7', 'manual_one')$s$, '42704'),
('set_tag: non-integer key on an int8 subject', $s$select segment.set_tag('c', 'abc', 'manual_one')$s$, '22P02'),
('set_tag: expiry in the past',        $s$select segment.set_tag('c', '8', 'manual_one', true, now() - interval '1 day')$s$, '22023'),
-- subjects
('register_subject: numeric key',      $s$select segment.register_subject('s1', 'bad.numkey', 'k')$s$, '42804'),
('register_subject: date key',         $s$select segment.register_subject('s1', 'bad.c', 'd')$s$, '42804'),
('register_subject: missing key column', $s$select segment.register_subject('s1', 'bad.c', 'nosuch')$s$, '42703'),
('register_subject: missing org column', $s$select segment.register_subject('s1', 'bad.c', 'id', 'nosuch')$s$, '42703'),
('register_subject: missing owner column', $s$select segment.register_subject('s1', 'bad.c', 'id', null, 'nosuch')$s$, '42703'),
('register_subject: duplicate name',   $s$select segment.register_subject('c', 'bad.c', 'id')$s$, '42710'),
('register_subject: missing relation', $s$select segment.register_subject('s1', 'bad.nosuch', 'id')$s$, '42P01'),
('register_subject: key not unique',   $s$select segment.register_subject('s1', 'bad.c', 'retype_col')$s$, '42P10'),
('drop the table of a subject',        $s$drop table bad.tk$s$, '2BP01'),
('unregister_subject: unknown subject', $s$select segment.unregister_subject('nosuch')$s$, '42704'),
('negative int8 key (register + refresh)',
    $s$do $d$ begin perform segment.register_subject('s_neg', 'bad.negkey', 'k'); perform segment.refresh('s_neg', '2026-11-22'); end $d$$s$, '22003'),
('int8 key above 4294967295 (register + refresh)',
    $s$do $d$ begin perform segment.register_subject('s_big', 'bad.bigkey', 'k'); perform segment.refresh('s_big', '2026-11-22'); end $d$$s$, '22003'),
-- refresh and reading
('refresh: unknown subject',           $s$select * from segment.refresh('nosuch', '2026-11-22')$s$, '42704'),
('members: unknown subject',           $s$select * from segment.members('nosuch', 'good')$s$, '42704'),
('members: unknown tag',               $s$select * from segment.members('c', 'nosuch')$s$, '42704'),
('count: unknown tag in an expression', $s$select segment.count('c', 'good and not nosuch')$s$, '42704'),
('count: tag of another subject',      $s$select segment.count('c', 'c2_tag')$s$, '42704'),
('count: audience syntax error',       $s$select segment.count('c', 'good and')$s$, '42601'),
('count: unbalanced parenthesis',      $s$select segment.count('c', '(good or manual_one')$s$, '42601'),
('members_text: unknown subject',      $s$select * from segment.members_text('nosuch', 'good')$s$, '42704');

select plan((select 2 * count(*)::int + 22 from bad.cases));

create function bad.run_cases() returns setof text language plpgsql as $f$
declare
    c   record;
    a   bad.attempt;
    got text;
begin
    for c in select * from bad.cases order by ord loop
        a := bad.attempt(c.sql);
        got := split_part(a.err, ':', 1);
        return next is(got, c.sqlstate::text, format('%s: %s', c.what, c.sqlstate))
                    || case when got is distinct from c.sqlstate then E'\n' || diag('    error: ' || a.err) else '' end;
        return next ok(not a.changed, format('%s: catalog unchanged', c.what));
    end loop;
end
$f$;

select * from bad.run_cases();

-- Messages name what is wrong.
select matches(bad.error_of($$select segment.create_tag('c', 'x1', 'nosuch > 1')$$), 'nosuch',
               'unknown column: the message names the column');
select matches(bad.error_of($$select segment.create_tag('nosuch_subject', 'x1', 'true')$$), 'nosuch_subject',
               'unknown subject: the message names the subject');
select matches(bad.error_of($$select segment.create_tag('c', 'good', 'true')$$), 'good',
               'duplicate tag: the message names the tag');
select matches(bad.error_of($$select segment.create_tag('c', 'x1', 'random() < 0.5')$$), 'volatile',
               'volatile function: the message says so');
select doesnt_match(bad.error_of($$select segment.create_tag('c', 'x1', 'aum >')$$), '^XX',
               'syntax error is not an internal error');

------------------------------------------------------------------------------
-- Column dependencies.

select is(split_part(bad.error_of('alter table bad.c drop column aum'), ':', 1), '2BP01',
          'drop a column used by a rule: 2BP01');
select matches(bad.error_of('alter table bad.c drop column aum'), 'good',
               'drop a column used by a rule: the error names the tag');
select is(split_part(bad.error_of('alter table bad.c alter column aum type int'), ':', 1), '2BP01',
          'retype a column used by a rule (numeric to int): 2BP01');
select matches(bad.error_of('alter table bad.c alter column retype_col type text'), 'uses_retype',
               'retype a column used by a rule (int to text): the error names the tag');
select is(split_part(bad.error_of('alter table bad.c drop column aum cascade'), ':', 1), '2BP01',
          'drop ... cascade is refused too');
select is(split_part(bad.error_of('alter table bad.c rename column aum to aum2'), ':', 1), '2BP01',
          'rename a column used by a rule: 2BP01');

do $$ declare b text := bad.snapshot(); begin
    perform bad.error_of('alter table bad.c drop column aum');
    if bad.snapshot() <> b then raise exception 'catalog changed'; end if;
end $$;
select has_column('bad', 'c', 'aum', 'the refused drop left the column');

select lives_ok('alter table bad.c drop column unused_col', 'drop an unused column');
select lives_ok('alter table bad.c alter column unused_txt type varchar(10)', 'retype an unused column');
select hasnt_column('bad', 'c', 'unused_col', 'the unused column is gone');

-- Dependencies follow alter_tag: col_a is free once no rule uses it.
select lives_ok($$select segment.alter_tag('alter_me', rule => 'col_b > 0')$$, 'alter_me now uses col_b');
select lives_ok('alter table bad.c drop column col_a', 'drop col_a after the rule moved to col_b');
select is(split_part(bad.error_of('alter table bad.c drop column col_b'), ':', 1), '2BP01',
          'col_b is protected after alter_tag');

-- ... and drop_tag: retype_col is free once its only tag is dropped.
select lives_ok($$select segment.drop_tag('uses_retype')$$, 'drop_tag uses_retype');
select lives_ok('alter table bad.c alter column retype_col type bigint', 'retype retype_col after its tag is dropped');

-- The subject still refreshes after all of this.
select lives_ok($$select * from segment.refresh('c', '2026-11-22')$$, 'refresh after the refused and allowed DDL');
select is(segment.count('c', 'good'), (select count(*) from bad.c where aum > 100000),
          'good still counts what its rule says');

select * from finish();
rollback;
