-- Rules never run with more rights than their author; a rule means the same
-- on every path; rules over columns the author may not read are refused
-- (issue 11, holes 1, 4 and 5).
--
-- sec_mallory has the author grants of docs/dba-guide.md#security and SELECT
-- on columns id and aum only. She writes sec_m.f(numeric), STABLE, which
-- calls the volatile sec_m.pwn() doing ALTER ROLE sec_mallory SUPERUSER, and
-- a tag sec_m.f(aum). Before rules ran as their owner, a superuser's refresh
-- (serial or parallel), any writer's UPDATE under live maintenance, explain,
-- evaluate_outcomes and an event insert made her superuser. Now each of them
-- reports the rule failed with 42501 and she never becomes superuser.
-- sec_m.who() returns current_user: a tag over it shows who the rule ran as.
-- A low role that may create in public adds public.>=(numeric, integer):
-- results stay those of plain SQL. The owner losing a column grant or being
-- dropped fails the unit (42501 / 42704) and keeps its previous members.

\ir ../fixtures/pgtap.psql
set local client_min_messages = error;

select plan(58);

create role sec_mallory;
create role sec_app;
create role sec_low;
create schema sec;
create table sec.cust (id int8 primary key, aum numeric, salary numeric, phone text);
insert into sec.cust select g, g * 100, g, 'p' || g from generate_series(1, 3000) g;
select segment.register_subject('sec', 'sec.cust', 'id');

-- 'ok', or 'SQLSTATE|message' of the error (a subtransaction: the user id
-- and settings are restored as on any error)
create function sec.err(q text) returns text language plpgsql as $$
begin
    execute q;
    return 'ok';
exception when others then
    return sqlstate || '|' || sqlerrm;
end $$;
grant execute on function sec.err(text) to public;
grant usage on schema sec to public;
create function sec.super() returns boolean language sql as
    $$ select rolsuper from pg_roles where rolname = 'sec_mallory' $$;

-- the documented author grants, plus what opportunity rules and event rules
-- need, plus the columns she may read
grant usage on schema segment to sec_mallory;
grant select on all tables in schema segment to sec_mallory;
grant insert, update, delete on segment.tag, segment.tag_history, segment.manual_tag, segment.keymap,
      segment.segment, segment.definition_history, segment.scheme, segment.scheme_bucket,
      segment.scorecard, segment.scorecard_item, segment.scorecard_band, segment.opportunity_rule,
      segment.opportunity_rule_history, segment.event_rule to sec_mallory;
grant usage on all sequences in schema segment to sec_mallory;
-- (a stronger attacker than any documented role: every function of segment)
grant execute on all functions in schema segment to sec_mallory;
grant usage on schema segment_internal to sec_mallory;
grant execute on all functions in schema segment_internal to sec_mallory;
grant select (id, aum) on sec.cust to sec_mallory;
create schema sec_m authorization sec_mallory;

set local session authorization sec_mallory;
create function sec_m.pwn() returns void language plpgsql volatile as
    $$ begin execute 'alter role sec_mallory superuser'; end $$;
create function sec_m.f(numeric) returns boolean language plpgsql stable as
    $$ begin perform sec_m.pwn(); return $1 > 0; end $$;
create function sec_m.who(numeric) returns text language sql stable as $$ select current_user::text $$;
create function sec_m.half(numeric) returns numeric language sql immutable as $$ select $1 / 2 $$;
select segment.create_tag('sec', 'sec_pwn', 'sec_m.f(aum)');
select segment.create_tag('sec', 'sec_who', $$sec_m.who(aum) = 'sec_mallory'$$);
select segment.create_tag('sec', 'sec_rich', 'aum >= 150000');
set local search_path = sec_m, public;
select segment.create_tag('sec', 'sec_canon', 'half(aum) >= 100000');
reset search_path;

-- hole 5: columns she may not read, on every definition path; nothing written
select is(split_part(sec.err($$select segment.create_tag('sec', 'sec_sal', 'salary > 10')$$), '|', 1),
          '42501', 'create_tag over an unreadable column: 42501');
select matches(sec.err($$select segment.create_tag('sec', 'sec_sal', 'salary > 10')$$),
               'column "salary".*tag "sec_sal"', 'the error names the column and the tag');
select is(split_part(sec.err($$select segment.alter_tag('sec_rich', rule => 'salary > 10')$$), '|', 1),
          '42501', 'alter_tag to an unreadable column: 42501');
select is((select rule from segment.tag where name = 'sec_rich'), 'aum >= 150000', 'the tag is unchanged');
select is(split_part(sec.err($$select segment.create_scheme('sec', 'sec_sch', array[['a', 'phone = ''x'''], ['b', 'true']])$$), '|', 1),
          '42501', 'create_scheme with a bucket over an unreadable column: 42501');
select is(split_part(sec.err($$select segment.create_scorecard('sec', 'sec_card', 0, array[['salary > 5', '1']])$$), '|', 1),
          '42501', 'create_scorecard with an item over an unreadable column: 42501');
select is(split_part(sec.err($$select segment.create_opportunity_rule('sec', 'sec_o1', 'sec_rich', 'mining', 'p',
                                   assignment => 'pool', goal => 'salary > 0')$$), '|', 1),
          '42501', 'create_opportunity_rule with a goal over an unreadable column: 42501');
select is(split_part(sec.err($$select segment.create_opportunity_rule('sec', 'sec_o1', 'sec_rich', 'mining', 'p',
                                   assignment => 'pool', template => 'call {phone}')$$), '|', 1),
          '42501', 'create_opportunity_rule with a template over an unreadable column: 42501');
select is((select count(*) from segment.scheme where name = 'sec_sch')
          + (select count(*) from segment.scorecard where name = 'sec_card')
          + (select count(*) from segment.opportunity_rule where name = 'sec_o1')
          + (select count(*) from segment.tag where name = 'sec_sal'), 0::bigint, 'nothing was written');
select is(sec.err($$select segment.create_scheme('sec', 'sec_sch', array[['a', 'aum > 1000'], ['b', 'true']])$$),
          'ok', 'a scheme over the columns she may read is accepted');
reset session authorization;

-- event condition over a column of a table she may trigger but not read
create table sec.ev2 (cust_id int8, secret numeric);
grant trigger on sec.ev2 to sec_mallory;
grant select (cust_id) on sec.ev2 to sec_mallory;
set local session authorization sec_mallory;
select segment.create_opportunity_rule('sec', 'sec_opp', 'sec_rich', 'mining', 'p', assignment => 'pool',
                                       goal => 'sec_m.f(aum)');
select segment.create_opportunity_rule('sec', 'sec_opp2', 'sec_rich', 'mining', 'p', assignment => 'pool',
                                       goal => $$sec_m.who(aum) = 'sec_mallory'$$);
select is(split_part(sec.err($$select segment.attach_event_rule('sec_opp', 'sec.ev2', 'cust_id', 'secret > 0')$$), '|', 1),
          '42501', 'attach_event_rule with a condition over an unreadable column: 42501');
create table sec_m.ev (cust_id int8, amount numeric);
select segment.attach_event_rule('sec_opp', 'sec_m.ev', 'cust_id', 'sec_m.f(amount)');
reset session authorization;
select is((select count(*) from segment.event_rule where event_table = 'sec.ev2'::regclass), 0::bigint,
          'no event rule was attached');

-- owners and canonical text
select is((select array_agg(distinct owner::text) from segment.tag where name like 'sec\_%'),
          array['sec_mallory'], 'every tag records its author as owner');
select is((select owner::text from segment.scheme where name = 'sec_sch'), 'sec_mallory', 'the scheme too');
select is((select owner::text from segment.opportunity_rule where name = 'sec_opp'), 'sec_mallory', 'the opportunity rule too');
select is((select owner::text from segment.event_rule where rule_id = (select rule_id from segment.opportunity_rule where name = 'sec_opp')),
          'sec_mallory', 'the event rule too');
select is((select rule from segment.tag where name = 'sec_rich'), 'aum >= 150000',
          'a rule that means the same under the pinned search_path is stored as written');
select is((select rule from segment.tag where name = 'sec_canon'), '(sec_m.half(aum) >= (100000)::numeric)',
          'a rule using her search_path is stored schema-qualified');

-- hole 1, refresh by a superuser, serial
set local max_parallel_workers_per_gather = 0;
create temp table sec_r1 as select * from segment.refresh('sec');
select ok(not sec.super(), 'serial refresh: the author did not become superuser');
select ok((select members is null from sec_r1 where tag = 'sec_pwn'), 'serial refresh: the tag calling ALTER ROLE failed');
select matches((select error from segment.run order by run_id desc limit 1),
               'tag "sec_pwn": must be superuser to alter superuser roles', 'serial refresh: segment.run has the error of ALTER ROLE as the author (42501)');
select is(segment.count('sec', 'sec_who'), 3000::bigint, 'serial refresh: the rule ran as its owner (current_user = sec_mallory)');
select is(segment.count('sec', 'sec_rich'), (select count(*) from sec.cust where aum >= 150000::numeric), 'other tags are refreshed');
select is(segment.count('sec', 'sec_canon'), (select count(*) from sec.cust where aum / 2 >= 100000), 'the canonical rule works with the default search_path');

-- parallel workers
set local parallel_setup_cost = 0;
set local parallel_tuple_cost = 0;
set local min_parallel_table_scan_size = 0;
set local max_parallel_workers_per_gather = 2;
create temp table sec_r2 as select * from segment.refresh('sec');
select ok(not sec.super(), 'parallel refresh: the author did not become superuser');
select ok((select members is null from sec_r2 where tag = 'sec_pwn'), 'parallel refresh: the tag failed');
select is(segment.count('sec', 'sec_who'), 3000::bigint, 'parallel refresh: workers ran the rule as its owner');
reset max_parallel_workers_per_gather;

-- explain
select is(split_part(sec.err($$select segment.explain('sec', 1::bigint, 'sec_pwn')$$), '|', 1), '42501',
          'explain of the tag: 42501');
select ok(not sec.super(), 'explain: the author did not become superuser');
select is(segment.explain('sec', 1::bigint, 'sec_who') ->> 'value', 'true', 'explain runs the rule as its owner');

-- live maintenance, fired by another role's UPDATE
select segment.enable_live('sec');
grant update, select on sec.cust to sec_app;
set local session authorization sec_app;
select is(split_part(sec.err($$update sec.cust set aum = aum + 1 where id = 1$$), '|', 1), '42501',
          'live maintenance: the writer''s UPDATE fails on the rule (42501)');
reset session authorization;
select ok(not sec.super(), 'live maintenance: the author did not become superuser');

-- goals and event conditions
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, assignment)
select r.rule_id, 1, r.subject_id, 2000, '2000', '2026-01-01', '2026-01-05', false, 'pool'
  from segment.opportunity_rule r where r.name = 'sec_opp2';
select is(segment.evaluate_outcomes('2026-03-10'), 1::bigint, 'evaluate_outcomes evaluates the goal');
select is((select goal_met from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'sec_opp2'), true, 'the goal ran as its owner (current_user = sec_mallory)');
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, assignment)
select r.rule_id, 1, r.subject_id, 2000, '2000', '2026-01-01', '2026-01-05', false, 'pool'
  from segment.opportunity_rule r where r.name = 'sec_opp';
select is(split_part(sec.err($$select segment.evaluate_outcomes('2026-03-10')$$), '|', 1), '42501',
          'evaluate_outcomes with the goal calling ALTER ROLE: 42501');
select ok(not sec.super(), 'evaluate_outcomes: the author did not become superuser');
select is(split_part(sec.err($$insert into sec_m.ev values (2000, 5)$$), '|', 1), '42501',
          'an event whose condition calls ALTER ROLE: 42501, even inserted by a superuser');
select ok(not sec.super(), 'event condition: the author did not become superuser');

select segment.alter_tag('sec_pwn', active => false);

-- The live trigger is not SECURITY DEFINER: it becomes the extension's owner
-- in C and pins search_path wherever it resolves a name (docs/security.md).
-- sec_app, the writer, puts a schema of look-alikes first on her path: =
-- between int4s and int8s and now(), the names the trigger's catalog reads
-- and overlay upsert use; each records its call and tries ALTER ROLE sec_app
-- SUPERUSER, which only a superuser's call can do. Her own statements name
-- pg_catalog's operators. sec_mallory's tag sec_path calls a function that
-- points search_path at her schema in mid-statement, where her now() tries
-- ALTER ROLE sec_mallory SUPERUSER; sec_div fails on aum = 777.
create table sec.hits (who text, what text);
grant insert on sec.hits to public;
create schema sec_w authorization sec_app;
set local session authorization sec_app;
create function sec_w.escalate(what text) returns void language plpgsql volatile as $$
begin
    insert into sec.hits values (current_user, what);
    begin
        execute 'alter role sec_app superuser';
    exception when insufficient_privilege then null;
    end;
end $$;
create function sec_w.eq4(int4, int4) returns boolean language plpgsql immutable as
    $$ begin perform sec_w.escalate('int4 = int4'); return $1 operator(pg_catalog.=) $2; end $$;
create function sec_w.eq8(int8, int8) returns boolean language plpgsql immutable as
    $$ begin perform sec_w.escalate('int8 = int8'); return $1 operator(pg_catalog.=) $2; end $$;
create operator sec_w.= (leftarg = int4, rightarg = int4, function = sec_w.eq4);
create operator sec_w.= (leftarg = int8, rightarg = int8, function = sec_w.eq8);
create function sec_w.now() returns timestamptz language plpgsql stable as
    $$ begin perform sec_w.escalate('now()'); return pg_catalog.now(); end $$;
reset session authorization;
set local session authorization sec_mallory;
create function sec_m.setpath(numeric) returns boolean language plpgsql stable as
    $$ begin perform pg_catalog.set_config('search_path', 'sec_m, pg_catalog', false); return $1 > 0; end $$;
create function sec_m.now() returns timestamptz language plpgsql stable as
    $$ begin perform sec_m.pwn(); return pg_catalog.now(); end $$;
select segment.create_tag('sec', 'sec_div', '1000 / (aum - 777) > 0');
-- (after the last refresh: a refresh would run sec_path too)
select segment.create_tag('sec', 'sec_path', 'sec_m.setpath(aum)');
reset session authorization;
create function sec.who_after(q text) returns text language plpgsql as $$
begin
    execute q;
    return 'no error';
exception when others then
    return current_user || ' in the handler';
end $$;
grant execute on function sec.who_after(text) to public;

-- under her path (pgTAP's functions are not on it: results kept in psql variables)
set local session authorization sec_app;
set local search_path = sec_w, pg_catalog;
select 1 = 1 as probe \gset
reset search_path;
reset session authorization;
select ok((select count(*) from sec.hits) > 0, 'the writer''s search_path resolves = to her look-alike, which records its call');
delete from sec.hits;
set local session authorization sec_app;
set local search_path = sec_w, pg_catalog;
-- a one-row UPDATE that moves a customer: the overlay upsert
update sec.cust set aum = 200000 where id operator(pg_catalog.=) 1001;
select current_user as user1, current_setting('search_path') as path1 \gset
-- a bulk UPDATE (compared set by set through SQL)
update sec.cust set aum = aum operator(pg_catalog.+) 200000 where id operator(pg_catalog.>) 1100 and id operator(pg_catalog.<=) 1200;
-- a definition change: the next statement rebuilds the cached rules under her path
reset session authorization;
select segment.disable_live('sec');
select segment.enable_live('sec');
set local session authorization sec_app;
set local search_path = sec_w, pg_catalog;
update sec.cust set aum = 5 where id operator(pg_catalog.=) 1002;
select sec.who_after($$update sec.cust set aum = 777 where id operator(pg_catalog.=) 150$$) as handler,
       current_user as user2 \gset
reset session authorization;
reset search_path;
select is(:'user1'::text, 'sec_app', 'live, one row written: the writer is herself again after the statement');
select is(:'path1'::text, 'sec_w, pg_catalog', 'with her search_path, though a rule moved it in mid-statement');
select is(:'handler'::text, 'sec_app in the handler', 'live, a rule fails: the writer is herself again in the exception handler');
select is(:'user2'::text, 'sec_app', 'and after it');
select is((select count(*) from sec.hits), 0::bigint,
          'live under the writer''s search_path (one row, bulk, rebuild): no look-alike was called');
select ok(not (select rolsuper from pg_roles where rolname = 'sec_app'), 'the writer did not become superuser');
select ok(not sec.super(), 'a rule that moved search_path in mid-statement: its author did not become superuser');
select is(segment.count('sec', 'sec_rich'), (select count(*) from sec.cust where aum >= 150000::numeric),
          'live counts equal plain SQL after those writes');
select is(segment.has_tag('sec', 1001::bigint, 'sec_who'), true, 'live: the rules ran as their owner');
select is((select aum from sec.cust where id = 150), 15000::numeric, 'the failed statement changed nothing');
-- the same rule in a superuser's serial refresh and in explain: the SQL after
-- the scan is pinned again, and the caller's search_path is his own after
select current_setting('search_path') as path0 \gset
set local max_parallel_workers_per_gather = 0;
create temp table sec_r7 as select * from segment.refresh('sec');
reset max_parallel_workers_per_gather;
select ok(not sec.super(), 'refresh with a rule that moves search_path: its author did not become superuser');
select is(current_setting('search_path'), :'path0'::text, 'and the refresher''s search_path is his own after it');
select segment.explain('sec', 1::bigint, 'sec_path') is not null as explained \gset
select is(current_setting('search_path'), :'path0'::text, 'explain of that tag: the caller''s search_path is his own after it');
select segment.drop_tag('sec_path');
select segment.drop_tag('sec_div');
select segment.disable_live('sec');

-- hole 4: an operator in a writable public schema changes nothing
grant create on schema public to sec_low;
set local session authorization sec_low;
create function public.sec_true(numeric, integer) returns boolean language sql immutable as $$ select true $$;
create operator public.>= (leftarg = numeric, rightarg = integer, function = public.sec_true);
reset session authorization;
set local search_path = public, pg_catalog;
select is((select count(*) from sec.cust where aum >= 150000), 3000::bigint, 'the hijack works on plain SQL under this path');
create temp table sec_r3 as select * from segment.refresh('sec');
select is(segment.count('sec', 'sec_rich'), (select count(*) from sec.cust where aum >= 150000::numeric),
          'refresh under the hijacked path: the rule means what its author meant');
select is(segment.explain('sec', 1::bigint, 'sec_rich') ->> 'value', 'false', 'explain under the hijacked path too');
reset search_path;

-- the owner loses a column grant, or is dropped: the unit fails, keeps its members
revoke select (aum) on sec.cust from sec_mallory;
set local max_parallel_workers_per_gather = 0;
create temp table sec_r4 as select * from segment.refresh('sec');
select matches((select error from segment.run order by run_id desc limit 1),
               'tag "sec_rich": role "sec_mallory", owner of tag "sec_rich", may no longer read column "aum"',
               'owner without SELECT on a column: the tag fails (42501 message)');
select is(segment.count('sec', 'sec_rich'), (select count(*) from sec.cust where aum >= 150000::numeric),
          'and keeps its previous members');
update segment.tag set owner = 'sec_low'::regrole where name = 'sec_rich';
drop owned by sec_low;
drop role sec_low;
create temp table sec_r5 as select * from segment.refresh('sec');
select matches((select error from segment.run order by run_id desc limit 1),
               'tag "sec_rich": the owner of tag "sec_rich" \(role with OID [0-9]+\) no longer exists',
               'dropped owner: the tag fails (42704 message)');

select * from finish();
rollback;
