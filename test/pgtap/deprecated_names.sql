-- The 0.1.0 names of renamed API functions (issue 16, naming pass) still
-- work in 0.2.0, as one-line wrappers of the new functions, marked
-- deprecated: each old name is called here (tools/api-rename.sh leaves this
-- file alone) and must do what the new name does, errors included. The
-- list must match docs/reference.md "Deprecated names (removed in 0.3.0)".

\ir ../fixtures/pgtap.psql

select plan(22);

create schema dn;
create table dn.c (id int8 primary key, bal numeric);
insert into dn.c select g, g * 1000 from generate_series(1, 10) g;
select segment.register_subject('dn', 'dn.c', 'id') is not null as registered \gset
select segment.create_tag('dn', 'dn_rich', 'bal >= 5000') is not null as tagged \gset
select segment.create_opportunity_rule('dn', 'dn_rule', 'dn_rich', 'maintenance', 'deposit',
                                       assignment => 'pool') is not null as ruled \gset
create sequence dn.member;
-- a new opportunity in the given status
create function dn.mk(st text, until date default current_date + 3) returns bigint
language sql as $$
    insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period,
                                     valid_until, is_control, manager, assignment, status, status_at)
    select r.rule_id, 1, r.subject_id, m, m::text, until - 6, until, false, 'mgr_a', 'owner',
           st, '2000-01-01'
      from segment.opportunity_rule r, nextval('dn.member') m where r.name = 'dn_rule'
    returning opportunity_id
$$;
create function dn.status(id bigint) returns text language sql as $$
    select o.status from segment.opportunity o where o.opportunity_id = id
$$;

-- the wrappers: SQL, old signature, deprecated in their comment
select set_eq(
    $$select p.oid::regprocedure::text from pg_proc p
       where p.pronamespace = 'segment'::regnamespace
         and obj_description(p.oid, 'pg_proc') like 'deprecated (removed in 0.3.0): use segment.%'$$,
    array['segment.dispatch(bigint)', 'segment.dispatch(bigint[])', 'segment.start(bigint)',
          'segment.complete(bigint,boolean,numeric,text)', 'segment.cancel(bigint,text)',
          'segment.expire(date)', 'segment.fire_on_entry(name,text)',
          'segment.stop_fire_on_entry(name,text)'],
    'the eight 0.1.0 names are deprecated wrappers');
select is((select count(*) from pg_proc p
            where p.pronamespace = 'segment'::regnamespace
              and p.proname in ('dispatch', 'start', 'complete', 'cancel', 'expire', 'fire_on_entry', 'stop_fire_on_entry')
              and p.prolang = (select oid from pg_language where lanname = 'sql')
              and p.prosrc ~ '^ SELECT segment\.\w+\([a-z_, ]*\) $'), 8::bigint,
          'each is a one-line SQL function calling the new one');

-- dispatch, start, complete, cancel: the row moves as with the new names
select dn.mk('generated') as o1 \gset
select lives_ok(format('select segment.dispatch(%s::bigint)', :o1), 'dispatch(bigint) works');
select is(dn.status(:o1), 'dispatched', '... the opportunity is dispatched');
select lives_ok(format('select segment.start(%s)', :o1), 'start(bigint) works');
select is(dn.status(:o1), 'in_progress', '... in progress');
select lives_ok(format('select segment.complete(%s, true, 250, %L)', :o1, 'signed'), 'complete works');
select is((select o.status || ' ' || o.converted || ' ' || o.amount || ' ' || o.note
             from segment.opportunity o where o.opportunity_id = :o1),
          'completed true 250 signed', '... completed with its outcome');
select dn.mk('generated') as o2 \gset
select dn.mk('generated') as o3 \gset
select is(segment.dispatch(array[:o2, :o3]::bigint[]), 2::bigint, 'dispatch(bigint[]) returns the count');
select is(dn.status(:o2) || ' ' || dn.status(:o3), 'dispatched dispatched', '... and dispatches them all');
select lives_ok(format('select segment.cancel(%s, %L)', :o2, 'closed'), 'cancel works');
select is(dn.status(:o2), 'cancelled', '... cancelled');
-- errors are the new functions' errors
select throws_ok($$select segment.start(-1)$$, '42704', null, 'start of an unknown id: 42704 as opportunity_start');
select throws_ok(format('select segment.start(%s)', :o2), '55000', null, 'an illegal transition: 55000');
select throws_ok(format('select segment.cancel(%s, %L)', :o3, ' '), '22004', null, 'cancel without a reason: 22004 as opportunity_cancel');
select is(dn.status(:o3), 'dispatched', '... and the row is unchanged');

-- expire: as expire_opportunities
select dn.mk('generated', current_date - 1) as o4 \gset
select is(segment.expire(current_date), 1::bigint, 'expire(date) expires what is past its last day');
select is(dn.status(:o4), 'expired', '... expired');

-- fire_on_entry / stop_fire_on_entry: as attach_entry_rule / detach_entry_rule
select lives_ok($$select segment.fire_on_entry('dn_rule', 'dn_rich')$$, 'fire_on_entry works');
select is((select count(*) from segment.entry_rule e join segment.opportunity_rule r using (rule_id)
            where r.name = 'dn_rule' and e.audience = 'dn_rich'), 1::bigint, '... the entry rule is attached');
select lives_ok($$select segment.stop_fire_on_entry('dn_rule', 'dn_rich')$$, 'stop_fire_on_entry works');
select is((select count(*) from segment.entry_rule e join segment.opportunity_rule r using (rule_id)
            where r.name = 'dn_rule'), 0::bigint, '... and detached');

select * from finish();
rollback;
