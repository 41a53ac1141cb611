-- The refresh pipeline (src/refresh_pipeline.c, docs/dba-guide.md#the-refresh-pipeline):
-- no trigger on segment's own state tables; a refresh logs its steps in
-- order, with durations, in segment.run_step; entries are the audience
-- after the refresh minus before it (checked against plain SQL over the
-- customer table); a failing entry rule and a failing step are reported
-- and the refresh keeps its state; a rolled-back refresh leaves no step
-- rows; the live definitions cache sees the refresh's new date.

\ir ../fixtures/pgtap.psql
set local client_min_messages = error;

select plan(27);

------------------------------------------------------------------------
-- No trigger on the tables a refresh writes.
------------------------------------------------------------------------
select is((select count(*) from pg_trigger g
            where not g.tgisinternal
              and g.tgrelid in ('segment.tag_state'::regclass, 'segment.bucket_state'::regclass,
                                'segment.score_state'::regclass, 'segment.subject_state'::regclass,
                                'segment.universe_history'::regclass, 'segment.bucket_history'::regclass,
                                'segment.size_snapshot'::regclass, 'segment.tag_snapshot'::regclass,
                                'segment.subject_snapshot'::regclass, 'segment.run'::regclass,
                                'segment.run_step'::regclass, 'segment.keymap'::regclass,
                                'segment.live_member'::regclass)),
          0::bigint, 'no trigger on a table the refresh writes');
select is((select array_agg(g.tgname || ' on ' || c.relname order by 1) from pg_trigger g
             join pg_class c on c.oid = g.tgrelid
            where not g.tgisinternal and c.relnamespace = 'segment'::regnamespace
              and (c.relname ~ '_(state|history|snapshot)$' or c.relname in ('run', 'run_step'))),
          null, 'no trigger on any state, history or snapshot table of schema segment');
select hasnt_function('segment', '_entry_before', 'the trigger function _entry_before is gone');
select hasnt_function('segment', '_entry_after', 'the trigger function _entry_after is gone');

------------------------------------------------------------------------
-- Fixture: subject rpx, 10 customers, bal 1000 except 1 and 2 (50).
-- Entry rule rp_low fires on entry into 'rpx_low and not rpx_vip'.
------------------------------------------------------------------------
create schema rpx;
create table rpx.cust (id int primary key, bal numeric, vip boolean);
insert into rpx.cust select i, case when i <= 2 then 50 else 1000 end, i = 9 from generate_series(1, 10) i;
select segment.register_subject('rpx', 'rpx.cust', 'id');
select segment.create_tag('rpx', 'rpx_low', 'bal < 100');
select segment.create_tag('rpx', 'rpx_vip', 'vip');
select segment.create_opportunity_rule('rpx', 'rp_low', 'rpx_low', 'maintenance', 'call',
                                       assignment => 'pool', cooldown_days => 0);
select segment.attach_entry_rule('rp_low', 'rpx_low and not rpx_vip');

create temp table last_run as select 0::bigint as run_id;
create function pg_temp.steps() returns text language sql as $$
    select string_agg(format('%s %s %s %s', s.step_no, s.step, coalesce(s.rows::text, '-'), coalesce(s.what, '-')),
                      ', ' order by s.step_no)
      from segment.run_step s
     where s.run_id = (select max(r.run_id) from segment.run r join segment.subject x using (subject_id)
                        where x.name = 'rpx')
$$;
-- the error of the last fire_entry_rules step
create function pg_temp.fire_error() returns text language sql as $$
    select s.error from segment.run_step s where s.step = 'fire_entry_rules' order by s.run_id desc limit 1
$$;
-- what the last refresh kept: rpx_low's size, whether its state is that
-- refresh's, whether the run finished, and the run's error
create function pg_temp.kept() returns text language sql as $$
    select st.member_count || ' ' || (st.run_id = r.run_id) || ' ' || (r.finished_at is not null)
           || ' ' || coalesce(r.error, 'no error')
      from segment.tag_state st join segment.tag t using (tag_id)
      join segment.run r on r.run_id = (select max(run_id) from segment.run)
     where t.name = 'rpx_low'
$$;

-- the first refresh: no "before" (never refreshed), nothing fires
select count(*) from segment.refresh('rpx', '2026-07-01');
select is(pg_temp.steps(),
          '1 capture_entry_audiences 1 audiences, 2 invalidate_live_definitions - -, 3 fire_entry_rules 0 opportunities',
          'the first refresh logs the three steps in order; nothing fires');

------------------------------------------------------------------------
-- Entries = after - before, against plain SQL: 1 leaves, 3 and 4 enter,
-- 9 enters rpx_low but is a vip (not in the audience).
------------------------------------------------------------------------
create temp table before_low as select id from rpx.cust where bal < 100 and not vip;
update rpx.cust set bal = 1000 where id = 1;
update rpx.cust set bal = 50 where id in (3, 4, 9);
select count(*) from segment.refresh('rpx', '2026-07-02');
select is((select string_agg(o.key, ' ' order by o.key::int) from segment.opportunity o
             join segment.opportunity_rule r using (rule_id) where r.name = 'rp_low'),
          (select string_agg(id::text, ' ' order by id)
             from (select id from rpx.cust where bal < 100 and not vip except select id from before_low) x),
          'the opportunities made are the members after minus before (plain SQL: 3 4)');
select is((select string_agg(distinct o.period || ' ' || o.source, ', ') from segment.opportunity o
             join segment.opportunity_rule r using (rule_id) where r.name = 'rp_low'),
          '2026-07-02 entered:rpx_low and not rpx_vip', 'period: the refresh date; source: the audience');
select is(pg_temp.steps(),
          '1 capture_entry_audiences 1 audiences, 2 invalidate_live_definitions - -, 3 fire_entry_rules 2 opportunities',
          'the steps in order; fire_entry_rules made 2 opportunities');

-- durations and times: each step inside its run, one after the other
select ok((select bool_and(s.duration >= interval '0' and s.error is null
                           and s.started_at >= r.started_at
                           and s.started_at + s.duration <= r.finished_at)
             from segment.run_step s join segment.run r using (run_id)
            where r.run_id = (select max(run_id) from segment.run)),
          'every step has a duration and lies within its run');
select ok((select bool_and(s.started_at >= coalesce(p.started_at + p.duration, s.started_at))
             from segment.run_step s
             left join segment.run_step p on p.run_id = s.run_id and p.step_no = s.step_no - 1
            where s.run_id = (select max(run_id) from segment.run)),
          'each step starts after the previous one ended');
select is((select count(*) from segment.run_step s join segment.run r using (run_id)
            join segment.subject x using (subject_id) where x.name = 'rpx'),
          6::bigint, 'three steps per refresh');

-- a refresh that finds no change fires nothing
select count(*) from segment.refresh('rpx', '2026-07-03');
select is(pg_temp.steps(),
          '1 capture_entry_audiences 1 audiences, 2 invalidate_live_definitions - -, 3 fire_entry_rules 0 opportunities',
          'no change: nothing fires');

------------------------------------------------------------------------
-- A rolled-back refresh leaves no step rows.
------------------------------------------------------------------------
update rpx.cust set bal = 50 where id = 5;
update last_run set run_id = (select max(run_id) from segment.run);
savepoint before_refresh;
select count(*) from segment.refresh('rpx', '2026-07-04');
select is((select count(*) from segment.run_step where run_id > (select run_id from last_run)),
          3::bigint, 'inside its transaction the refresh has logged its steps');
rollback to savepoint before_refresh;
select is((select count(*) from segment.run_step where run_id > (select run_id from last_run)),
          0::bigint, 'rolled back: no step rows left');
select is((select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'rp_low' and o.key = '5'), 0::bigint, 'rolled back: nor the entry''s opportunity');

------------------------------------------------------------------------
-- A failing entry rule: its generation cannot take the locks (the role
-- lacks EXECUTE on segment_internal._lock_members). WARNING, logged, and the
-- refresh keeps its state.
------------------------------------------------------------------------
create role rpx_refresher;
select count(*) from segment.grant_role('rpx_refresher', 'refresher');
grant usage on schema rpx to rpx_refresher;
grant select on rpx.cust to rpx_refresher;
revoke execute on function segment_internal._lock_members(int, segment.memberset) from rpx_refresher;
set local role rpx_refresher;
select count(*) from segment.refresh('rpx', '2026-07-04');
reset role;
select is(pg_temp.steps(),
          '1 capture_entry_audiences 1 audiences, 2 invalidate_live_definitions - -, 3 fire_entry_rules 0 opportunities',
          'a failing entry rule: the step goes on and made nothing');
select matches(pg_temp.fire_error(),
               '^entry into ''rpx_low and not rpx_vip'': permission denied for function _lock_members$',
               'the step logs which entry failed and why');
select is(pg_temp.kept(), '5 true true no error', 'the refresh kept its state (2 3 4 5 9 in rpx_low) and finished its run');
select is((select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id)
            where r.name = 'rp_low'), 2::bigint, 'no opportunity for 5');

------------------------------------------------------------------------
-- A failing step: the role cannot run segment_internal._fire_entered at all.
------------------------------------------------------------------------
grant execute on function segment_internal._lock_members(int, segment.memberset) to rpx_refresher;
revoke execute on function segment_internal._fire_entered(int, segment.memberset, text[], segment.memberset[], date, text)
    from rpx_refresher;
update rpx.cust set bal = 50 where id = 6;
set local role rpx_refresher;
select count(*) from segment.refresh('rpx', '2026-07-05');
reset role;
select is(pg_temp.steps(),
          '1 capture_entry_audiences 1 audiences, 2 invalidate_live_definitions - -, 3 fire_entry_rules - -',
          'a failing step is logged in its place, without a count');
select is(pg_temp.fire_error(), 'permission denied for function _fire_entered', 'with its error');
select is(pg_temp.kept(), '6 true true no error', 'the refresh kept its state (6 entered rpx_low) and finished its run');
grant execute on function segment_internal._fire_entered(int, segment.memberset, text[], segment.memberset[], date, text)
    to rpx_refresher;

-- the next refresh compares with the state the previous one wrote: 6 is
-- not an entry any more, 7 is (as the superuser: the role cannot use the
-- temporary tables generation created earlier in this session)
update rpx.cust set bal = 50 where id = 7;
select count(*) from segment.refresh('rpx', '2026-07-06');
select is((select string_agg(o.key, ' ' order by o.key::int) from segment.opportunity o
             join segment.opportunity_rule r using (rule_id) where r.name = 'rp_low'),
          '3 4 7', 'the next refresh fires the next entry (7), not 6 again');

------------------------------------------------------------------------
-- A subject without entry rules: the same steps, nothing to capture.
------------------------------------------------------------------------
select segment.detach_entry_rule('rp_low', 'rpx_low and not rpx_vip');
select count(*) from segment.refresh('rpx', '2026-07-07');
select is(pg_temp.steps(),
          '1 capture_entry_audiences 0 audiences, 2 invalidate_live_definitions - -, 3 fire_entry_rules 0 opportunities',
          'no entry rule: nothing captured, nothing fired');

------------------------------------------------------------------------
-- invalidate_live_definitions: live maintenance, whose definitions (and
-- date) this backend has cached, writes at the date of the refresh that
-- just ran in the same transaction.
------------------------------------------------------------------------
select segment.enable_live('rpx');
update rpx.cust set bal = 60 where id = 8;
select is((select l.as_of from segment.live_member l join segment.subject x using (subject_id)
            where x.name = 'rpx' and l.member_id = 8), '2026-07-07'::date,
          'a live write before the refresh is evaluated at the state''s date');
select count(*) from segment.refresh('rpx', '2026-07-08');
-- a change readers see (8 leaves rpx_low): live writes only such changes
update rpx.cust set bal = 1000 where id = 8;
select is((select l.as_of from segment.live_member l join segment.subject x using (subject_id)
            where x.name = 'rpx' and l.member_id = 8), '2026-07-08'::date,
          'a live write after the refresh is evaluated at the new date (the cache was invalidated)');

------------------------------------------------------------------------
-- The log belongs to its run.
------------------------------------------------------------------------
select fk_ok('segment', 'run_step', 'run_id', 'segment', 'run', 'run_id');

select * from finish();
rollback;
