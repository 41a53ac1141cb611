-- Opportunity lifecycle, behaviour: the state machine exhaustively. For
-- every status (treatment and control) and every transition function
-- (dispatch, dispatch of an array, start, complete, cancel), a legal call
-- moves the row and logs exactly one transition (from, to, who, note); an
-- illegal one fails with SQLSTATE 55000, a message naming the status and a
-- DETAIL naming from and to, and leaves the row and the log as they were.
-- Then: unknown and NULL ids, the last day to act (valid_until = today
-- acts, yesterday refuses), complete's and cancel's arguments, batches all
-- or nothing, expire's boundary (valid_until = as_of - 1 expires, = as_of
-- does not) for every status. Fixtures are inserted into the catalog
-- directly, with status_at in 2000 so that a transition's timestamp shows.

\ir ../fixtures/pgtap.psql

select plan(290);

create schema lc;
create table lc.c (id int8 primary key, bal numeric);
insert into lc.c select g, g * 1000 from generate_series(1, 10) g;
select segment.register_subject('lc', 'lc.c', 'id') is not null as registered \gset
insert into segment.opportunity_rule (subject_id, name, audience, kind, product, channel,
                                      valid_days, cooldown_days, holdout_pct, goal, assignment)
select subject_id, 'lc_rule', 'x', 'maintenance', 'deposit', 'manager', 7, 30, 10, 'bal > 5000', 'owner'
  from segment.subject where name = 'lc';

create sequence lc.member;
-- A new opportunity in the given status; member ids never repeat.
create function lc.mk(st text, ctl boolean, until date default current_date + 3) returns bigint
language sql as $$
    insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period,
                                     valid_until, is_control, manager, assignment, status, status_at)
    select r.rule_id, 1, r.subject_id, m, m::text, until - 6, until, ctl,
           case when ctl then null else 'mgr_a' end, case when ctl then 'control' else 'owner' end,
           st, '2000-01-01'
      from segment.opportunity_rule r, nextval('lc.member') m where r.name = 'lc_rule'
    returning opportunity_id
$$;
create function lc.row_of(id bigint) returns jsonb language sql as $$
    select to_jsonb(o) from segment.opportunity o where o.opportunity_id = id
$$;
create function lc.logs(id bigint) returns bigint language sql as $$
    select count(*) from segment.opportunity_log l where l.opportunity_id = id
$$;
-- Runs sql; returns 'SQLSTATE|message|detail', or 'ok'.
create function lc.err(sql text) returns text language plpgsql as $$
declare st text; msg text; det text;
begin
    execute sql;
    return 'ok';
exception when others then
    get stacked diagnostics st = returned_sqlstate, msg = message_text, det = pg_exception_detail;
    return st || '|' || msg || '|' || coalesce(det, '');
end $$;

-- The call of one transition function on one opportunity.
create function lc.call(fn text, id bigint) returns text language sql immutable as $$
    select case fn
        when 'dispatch'   then format('select segment.opportunity_dispatch(%s::bigint)', id)
        when 'dispatch[]' then format('select segment.opportunity_dispatch(array[%s]::bigint[])', id)
        when 'start'      then format('select segment.opportunity_start(%s)', id)
        when 'complete'   then format('select segment.opportunity_complete(%s, true, 250.5, %L)', id, 'signed up')
        when 'cancel'     then format('select segment.opportunity_cancel(%s, %L)', id, 'customer abroad') end
$$;

-- Four assertions for one (function, status, control) case.
create function lc.check_case(fn text, st text, ctl boolean) returns setof text language plpgsql as $$
declare
    id bigint := lc.mk(st, ctl);
    verb text := replace(fn, '[]', '');
    to_st text := case verb when 'dispatch' then 'dispatched' when 'start' then 'in_progress'
                            when 'complete' then 'completed' when 'cancel' then 'cancelled' end;
    from_ok text[] := case verb when 'dispatch' then '{generated}' when 'start' then '{dispatched}'
                                when 'complete' then '{in_progress}'
                                else '{generated,dispatched,in_progress}' end;
    legal boolean := st = any (from_ok) and (not ctl or verb = 'cancel');
    note text := case verb when 'complete' then 'signed up' when 'cancel' then 'customer abroad' end;
    label text := format('%s on %s%s', fn, st, case when ctl then ' (control)' else '' end);
    before jsonb := lc.row_of(id);
    e text;
begin
    if legal then
        return next is(lc.err(lc.call(fn, id)), 'ok', label || ': succeeds');
        return next ok((select o.status = to_st and o.status_at = now()
                          from segment.opportunity o where o.opportunity_id = id),
                       label || ': status becomes ' || to_st || ', status_at now');
        return next is((select row(l.from_status, l.to_status, l.changed_by, l.note)::text
                          from segment.opportunity_log l where l.opportunity_id = id),
                       row(st, to_st, current_user, note)::text,
                       label || ': logged from, to, who, note');
        return next is(lc.logs(id), 1::bigint, label || ': exactly one log row');
    else
        e := lc.err(lc.call(fn, id));
        return next is(split_part(e, '|', 1), '55000', label || ': refused with 55000');
        return next is(split_part(e, '|', 2),
                       format('cannot %s opportunity %s: %s', verb, id,
                              case when st = any (from_ok) then 'it is a control opportunity'
                                   else 'it is ' || st end),
                       label || ': message names the reason');
        return next ok(split_part(e, '|', 3) like format('The transition from "%s" to "%s" is not allowed%%', st, to_st),
                       label || ': DETAIL names from and to');
        return next ok(lc.row_of(id) = before and lc.logs(id) = 0, label || ': row and log unchanged');
    end if;
end $$;

-- 5 functions x 6 statuses x 2 groups x 4 = 240
select lc.check_case(fn, st, ctl)
  from unnest(array['dispatch', 'dispatch[]', 'start', 'complete', 'cancel']) fn,
       unnest(array['generated', 'dispatched', 'in_progress', 'completed', 'expired', 'cancelled']) st,
       unnest(array[false, true]) ctl;

-- The full path, one opportunity: 3 transitions, 3 log rows in order.
select lc.mk('generated', false) as p \gset
select segment.opportunity_dispatch(:p::bigint) \g /dev/null
select segment.opportunity_start(:p) \g /dev/null
select segment.opportunity_complete(:p, false, null, 'not interested') \g /dev/null
select is((select string_agg(from_status || '>' || to_status, ' ' order by log_id)
             from segment.opportunity_log where opportunity_id = :p),
          'generated>dispatched dispatched>in_progress in_progress>completed', 'full path logged in order');
select is((select row(status, converted, amount, note)::text from segment.opportunity where opportunity_id = :p),
          row('completed', false, null::numeric, 'not interested')::text, 'complete stores converted, amount, note');
select lc.mk('in_progress', false) as p2 \gset
select segment.opportunity_complete(:p2, true, 250.5, 'signed up') \g /dev/null
select is((select row(converted, amount, note)::text from segment.opportunity where opportunity_id = :p2),
          row(true, 250.5, 'signed up')::text, 'complete stores amount');
select lc.mk('dispatched', true) as p3 \gset
select segment.opportunity_cancel(:p3, 'branch closed') \g /dev/null
select is((select cancel_reason from segment.opportunity where opportunity_id = :p3), 'branch closed',
          'cancel stores the reason (control opportunity cancelled)');

-- Unknown and NULL ids (4 functions x 2) = 10 with the array forms
select is(split_part(lc.err(lc.call(fn, 999999)), '|', 1) || '|' || split_part(lc.err(lc.call(fn, 999999)), '|', 2),
          '42704|opportunity 999999 does not exist', fn || ' of an unknown id: 42704')
  from unnest(array['dispatch', 'dispatch[]', 'start', 'complete', 'cancel']) fn;
select is(split_part(lc.err(q), '|', 1), '22004', q || ': 22004')
  from unnest(array['select segment.opportunity_dispatch(null::bigint)', 'select segment.opportunity_start(null)',
                    'select segment.opportunity_complete(null, true)', 'select segment.opportunity_cancel(null, ''x'')',
                    'select segment.opportunity_dispatch(null::bigint[])']) q;

-- The last day to act: valid_until = today acts, yesterday is refused (all four verbs).
select lc.mk('generated', false, current_date) as d0 \gset
select is(lc.err(format('select segment.opportunity_dispatch(%s::bigint)', :d0)), 'ok', 'dispatch on the last day to act');
select is(split_part(lc.err(lc.call(fn, lc.mk(st, false, current_date - 1))), '|', 2),
          format('cannot %s opportunity %s: its last day to act was %s', replace(fn, '[]', ''),
                 currval('segment.opportunity_opportunity_id_seq'), current_date - 1),
          fn || ' after the last day to act is refused')
  from (values ('dispatch', 'generated'), ('dispatch[]', 'generated'), ('start', 'dispatched'),
               ('complete', 'in_progress'), ('cancel', 'generated')) v(fn, st);
select lc.mk('dispatched', false, current_date - 1) as late \gset
select is(split_part(lc.err(format('select segment.opportunity_start(%s)', :late)), '|', 1), '55000', 'past deadline: 55000');
select ok(lc.row_of(:late) ->> 'status' = 'dispatched' and lc.logs(:late) = 0, 'past deadline: unchanged');
select lc.mk('dispatched', false, current_date) as lastday \gset
select is(lc.err(format('select segment.opportunity_cancel(%s, %L)', :lastday, 'x')), 'ok', 'cancel on the last day to act');

-- complete's arguments: checked before anything moves.
select lc.mk('in_progress', false) as c \gset
select is(lc.err(format('select segment.opportunity_complete(%s, null)', :c)),
          '22004|converted must not be NULL|', 'complete with converted NULL: 22004');
select is(split_part(lc.err(format('select segment.opportunity_complete(%s, true, -1)', :c)), '|', 1), '22023', 'negative amount: 22023');
select is(split_part(lc.err(format('select segment.opportunity_complete(%s, true, ''NaN'')', :c)), '|', 1), '22023', 'NaN amount: 22023');
select is(split_part(lc.err(format('select segment.opportunity_complete(%s, true, ''Infinity'')', :c)), '|', 1), '22023', 'infinite amount: 22023');
select is(split_part(lc.err(format('select segment.opportunity_complete(%s, false, 100)', :c)), '|', 1), '22023',
          'an amount without conversion: 22023');
select ok(lc.row_of(:c) ->> 'status' = 'in_progress' and lc.logs(:c) = 0, 'refused completes changed nothing');
select is(lc.err(format('select segment.opportunity_complete(%s, false, 0)', :c)), 'ok', 'amount 0 without conversion is accepted');
select is(lc.err(format('select segment.opportunity_complete(%s, true, 1)', :c)),
          format('55000|cannot complete opportunity %s: it is completed|The transition from "completed" to "completed" is not allowed.', :c),
          'the second complete of one opportunity is refused');
select is(lc.logs(:c), 1::bigint, 'completed once, logged once');

-- cancel's reason
select lc.mk('generated', false) as k \gset
select is(split_part(lc.err(format('select segment.opportunity_cancel(%s, null)', :k)), '|', 1), '22004', 'cancel without reason: 22004');
select is(split_part(lc.err(format('select segment.opportunity_cancel(%s, %L)', :k, '  ')), '|', 1), '22004', 'cancel with a blank reason: 22004');
select ok(lc.row_of(:k) ->> 'status' = 'generated' and lc.logs(:k) = 0, 'refused cancels changed nothing');

-- Batches: all or nothing, duplicates once, empty is 0, NULL element refused.
select lc.mk('generated', false) as b1, lc.mk('generated', false) as b2, lc.mk('completed', false) as b3 \gset
select is(split_part(lc.err(format('select segment.opportunity_dispatch(array[%s, %s, %s]::bigint[])', :b1, :b2, :b3)), '|', 2),
          format('cannot dispatch opportunity %s: it is completed', :b3), 'a batch with one bad id fails');
select ok(lc.row_of(:b1) ->> 'status' = 'generated' and lc.row_of(:b2) ->> 'status' = 'generated'
          and lc.logs(:b1) + lc.logs(:b2) = 0, '... and dispatches none of the others');
select is(split_part(lc.err(format('select segment.opportunity_dispatch(array[%s, null]::bigint[])', :b1)), '|', 1), '22004',
          'a batch with a NULL id: 22004');
select is(segment.opportunity_dispatch(array[:b2, :b1, :b2]::bigint[]), 2::bigint, 'a batch counts each id once');
select ok(lc.row_of(:b1) ->> 'status' = 'dispatched' and lc.logs(:b1) = 1 and lc.logs(:b2) = 1, '... each dispatched and logged once');
select is(segment.opportunity_dispatch('{}'::bigint[]), 0::bigint, 'an empty batch dispatches nothing');

-- expire: boundary and every status, control included. Fresh rule so
-- that only these opportunities are around.
delete from segment.opportunity;
create temp table ex as
select st, ctl, d, lc.mk(st, ctl, date '2026-03-10' + d) as id
  from unnest(array['generated', 'dispatched', 'in_progress', 'completed', 'expired', 'cancelled']) st,
       unnest(array[false, true]) ctl, unnest(array[-1, 0]) d;
-- as_of 2026-03-10: valid_until 2026-03-09 (= as_of - 1) of the 3 open statuses x 2 groups expire; 2026-03-10 does not
select is(segment.expire_opportunities('2026-03-10'), 6::bigint, 'expire: the six open ones with valid_until = as_of - 1');
select is((select string_agg(format('%s/%s/%s', e.st, e.ctl, e.d), ' ' order by e.id)
             from ex e join segment.opportunity o on o.opportunity_id = e.id where o.status = 'expired' and e.st <> 'expired'),
          'generated/f/-1 generated/t/-1 dispatched/f/-1 dispatched/t/-1 in_progress/f/-1 in_progress/t/-1',
          'expire: exactly those');
select ok((select bool_and(o.status = e.st and o.status_at = '2000-01-01')
             from ex e join segment.opportunity o on o.opportunity_id = e.id
            where e.d = 0 or e.st in ('completed', 'expired', 'cancelled')),
          'expire: the others untouched (valid_until = as_of, or final)');
select is((select string_agg(l.from_status || '>' || l.to_status || ':' || l.changed_by || ':' || l.note, ' ' order by l.opportunity_id)
             from segment.opportunity_log l join ex e on e.id = l.opportunity_id),
          'generated>expired:' || current_user || ':last day to act 2026-03-09 passed (expire as of 2026-03-10) '
       || 'generated>expired:' || current_user || ':last day to act 2026-03-09 passed (expire as of 2026-03-10) '
       || 'dispatched>expired:' || current_user || ':last day to act 2026-03-09 passed (expire as of 2026-03-10) '
       || 'dispatched>expired:' || current_user || ':last day to act 2026-03-09 passed (expire as of 2026-03-10) '
       || 'in_progress>expired:' || current_user || ':last day to act 2026-03-09 passed (expire as of 2026-03-10) '
       || 'in_progress>expired:' || current_user || ':last day to act 2026-03-09 passed (expire as of 2026-03-10)',
          'expire: one log row each, from the old status, with who and why');
select is(segment.expire_opportunities('2026-03-10'), 0::bigint, 'expire again: nothing left');
select is(segment.expire_opportunities('2026-03-11'), 6::bigint, 'a day later the valid_until = 2026-03-10 ones expire');
select is(split_part(lc.err('select segment.expire_opportunities(null)'), '|', 1), '22023', 'expire(NULL): 22023');
select is(split_part(lc.err('select segment.expire_opportunities(''infinity'')'), '|', 1), '22023', 'expire(infinity): 22023');
select is((select count(*) from segment.opportunity_log), 12::bigint, 'twelve expirations logged in all');

select * from finish();
rollback;
