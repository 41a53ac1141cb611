-- Contact journeys (issue 13), on fixtures whose right answers are worked
-- out by hand in the comments: quiet hours (same-day and over midnight),
-- channel capacity with fallback, consent fallback and no consented
-- channel, the cross-channel contact cap (touches of other journeys and
-- opportunities count), step conditions, exit, goal, re-entry, the
-- deterministic holdout, referral to a person as an opportunity and the
-- return to a cheaper channel with the lifecycle history, entry by event,
-- ack, the funnel/review/leak views, and bad inputs (SQLSTATE, nothing
-- changed). The 80-day simulation is test/shell/journeys-80days.sh, the
-- kill -9 during an advance test/shell/journeys-crash.sh, NOTIFY is
-- checked there too (it is delivered at commit; this file rolls back).

\ir ../fixtures/pgtap.psql
set local timezone = 'UTC';

select plan(101);

------------------------------------------------------------------------
-- Fixture: customers 1-20 and 101-300 of subject jx, all owned by manager
-- 101 of org 1. app_ok: false for 2, NULL for 3; sms_ok: false for 3.
-- Groups (tags): jx_q 1-3, jx_cap 4-8, jx_cc 9-10, jx_ex 11-13,
-- jx_esc 14-15, jx_re 16, jx_h 101-300; flags: jx_left, jx_bought.
------------------------------------------------------------------------
create schema jx;
create table jx.cust (id int primary key, owner int, org int, app_ok boolean, sms_ok boolean,
                      left_bank boolean default false, bought boolean default false,
                      name text, phone text);
insert into jx.cust (id, owner, org, app_ok, sms_ok, name, phone)
select i, 101, 1, case i when 2 then false when 3 then null else true end, i <> 3,
       'Name' || i, '1390000' || lpad(i::text, 4, '0')
  from (select generate_series(1, 20) union all select generate_series(101, 300)) g(i);
create table jx.staff (mid int primary key, org int, active boolean);
insert into jx.staff values (101, 1, true);
select segment.register_subject('jx', 'jx.cust', 'id', org_column => 'org', owner_column => 'owner');
select segment.register_staff('jx', 'jx.staff', 'mid', 'org', active_column => 'active');
select segment.create_tag('jx', 'jx_q', 'id between 1 and 3');
select segment.create_tag('jx', 'jx_cap', 'id between 4 and 8');
select segment.create_tag('jx', 'jx_cc', 'id between 9 and 10');
select segment.create_tag('jx', 'jx_ex', 'id between 11 and 13');
select segment.create_tag('jx', 'jx_esc', 'id between 14 and 15');
select segment.create_tag('jx', 'jx_re', 'id = 16');
select segment.create_tag('jx', 'jx_h', 'id > 100');
select segment.create_tag('jx', 'jx_left', 'left_bank');
select segment.create_tag('jx', 'jx_bought', 'bought');
select segment.create_tag('jx', 'jx_odd', 'id % 2 = 1');
select count(*) from segment.refresh('jx', '2027-02-01');

select segment.set_channel('jsms', quiet_from => '21:00', quiet_to => '09:00', cost => 0.05);
select segment.set_channel('japp', fallback => array['jsms'], quiet_from => '12:00', quiet_to => '14:00', cost => 0.01);
select segment.set_channel('jcall', fallback => array['jsms'], daily_capacity => 2, cost => 2);
select segment.set_channel('jbranch', daily_capacity => 1, cost => 5);
select segment.set_channel('jremote', cost => 1);
select segment.register_consent('jx', 'jx.cust', 'id', 'japp', 'app_ok');
select segment.register_consent('jx', 'jx.cust', 'id', 'jsms', 'sms_ok');

-- a helper: the touches of a journey as 'customer:step:channel:status' sorted
create function pg_temp.touches(j name) returns text language sql as $$
    select string_agg(customer || ':' || step || ':' || coalesce(channel, '-') || ':' || status, ' '
                      order by customer::int, step)
      from segment.outbox where journey = j
$$;

------------------------------------------------------------------------
-- 1. Quiet hours and consent (jq: 1-3, day 0 and day 1 on japp).
--    1: app; 2: app opted out -> sms; 3: no app (NULL), no sms -> skipped.
--    Entered 2027-02-01 12:30 (japp quiet 12:00-14:00): day 0 -> 14:00;
--    the sms of 2 at 12:30 is outside 21:00-09:00 -> 12:30.
--    Day 1 advanced at 23:00 on 2-2: japp not quiet -> 23:00; sms quiet
--    (wraps midnight) -> 09:00 on 2-3.
------------------------------------------------------------------------
select segment.create_journey('jx', 'jq', 'jx_q');
select segment.add_journey_step('jq', 1, '0 days', 'japp', 'Hi {name} {phone|mask}');
select segment.add_journey_step('jq', 2, '1 day', 'japp');
select is(segment.advance_journeys('2027-02-01 12:30'), 2::bigint, 'jq day 0: two touches written (the third customer has no consented channel)');
select is(pg_temp.touches('jq'), '1:1:japp:pending 2:1:jsms:pending 3:1:-:skipped', 'app, fallback to sms, skipped');
select is((select reason from segment.outbox where journey = 'jq' and customer = '3'), 'no consented channel', 'the skip says why');
select is((select reason from segment.outbox where journey = 'jq' and customer = '2'), 'fallback: no consent to japp', 'the fallback says why');
select is((select due_at from segment.outbox where journey = 'jq' and customer = '1'), '2027-02-01 14:00+00'::timestamptz,
          'japp touch in its quiet hours (12:00-14:00) is delayed to 14:00');
select is((select due_at from segment.outbox where journey = 'jq' and customer = '2'), '2027-02-01 12:30+00'::timestamptz,
          'the sms touch at 12:30 is outside sms quiet hours');
select is((select message from segment.outbox where journey = 'jq' and customer = '1'), 'Hi Name1 139****0001', 'message rendered and masked');
select is(segment.advance_journeys('2027-02-01 12:30'), 0::bigint, 'the same advance again writes nothing');
select is(segment.advance_journeys('2027-02-02 23:00'), 2::bigint, 'jq day 1: two touches');
select is((select due_at from segment.outbox where journey = 'jq' and customer = '1' and step = 2), '2027-02-02 23:00+00'::timestamptz,
          'japp at 23:00 is not quiet');
select is((select due_at from segment.outbox where journey = 'jq' and customer = '2' and step = 2), '2027-02-03 09:00+00'::timestamptz,
          'sms at 23:00 is in quiet hours over midnight: 09:00 the next day');
select is((select string_agg(status, ',' order by key) from segment.journey_instance i
             join segment.journey j using (journey_id) where j.name = 'jq'), 'completed,completed,completed',
          'after the last step every instance is completed');
select segment.alter_journey('jq', active => false);

------------------------------------------------------------------------
-- 2. Capacity and fallback (jcap: 4-8, day 0 on jcall, capacity 2 a day,
--    fallback jsms; step 2 on jbranch, capacity 1, no fallback).
--    Day 0 (2-01): 4, 5 get jcall; 6, 7, 8 go to jsms (over capacity).
--    Step 2 at 1 day (2-02): 4 gets jbranch; 5-8 skipped 'over capacity'.
------------------------------------------------------------------------
select segment.create_journey('jx', 'jcap', 'jx_cap');
select segment.add_journey_step('jcap', 1, '0 days', 'jcall');
select segment.add_journey_step('jcap', 2, '1 day', 'jbranch');
select is(segment.advance_journeys('2027-02-01 15:00'), 5::bigint, 'jcap day 0: five touches');
select is(pg_temp.touches('jcap'), '4:1:jcall:pending 5:1:jcall:pending 6:1:jsms:pending 7:1:jsms:pending 8:1:jsms:pending',
          'two on jcall (its capacity), three on its fallback');
select is((select count(*) from segment.outbox where journey = 'jcap' and reason = 'fallback: jcall over capacity'), 3::bigint,
          'the fallbacks say why');
select is(segment.advance_journeys('2027-02-02 15:00'), 1::bigint, 'jcap day 1: one touch (jbranch capacity 1, no fallback)');
select is((select string_agg(customer || ':' || coalesce(channel, '-') || ':' || coalesce(reason, ''), ' ' order by customer::int)
             from segment.outbox where journey = 'jcap' and step = 2),
          '4:jbranch: 5:-:over capacity 6:-:over capacity 7:-:over capacity 8:-:over capacity',
          'the rest of step 2 is skipped as over capacity');
select segment.alter_journey('jcap', active => false);

------------------------------------------------------------------------
-- 3. The contact cap: at most 2 contacts in 7 days, across journeys and
--    opportunity rules. Customer 9 got an opportunity on 2-01; jcc1 has
--    two day-0 steps, jcc2 one and a higher priority. Advanced at 2-01
--    16:00, jcc2 first: 10: jcc2, jcc1 step 1, then capped; 9: jcc2, then
--    capped.
------------------------------------------------------------------------
select segment.set_contact_policy('jx', 2, 7);
select segment.create_opportunity_rule('jx', 'jx_one', 'jx_cc and jx_odd', 'mining', 'card',
                                       assignment => 'pool', cooldown_days => 0);
select is((select generated from segment.generate('jx_one', '2027-02-01')), 1::bigint, 'one opportunity for customer 9');
select segment.create_journey('jx', 'jcc1', 'jx_cc');
select segment.add_journey_step('jcc1', 1, '0 days', 'jremote');
select segment.add_journey_step('jcc1', 2, '0 days', 'jremote');
select segment.create_journey('jx', 'jcc2', 'jx_cc', priority => 1);
select segment.add_journey_step('jcc2', 1, '0 days', 'jremote');
select is(segment.advance_journeys('2027-02-01 16:00'), 3::bigint, 'three touches within the cap');
select is(pg_temp.touches('jcc1') || ' | ' || pg_temp.touches('jcc2'),
          '9:1:-:skipped 9:2:-:skipped 10:1:jremote:pending 10:2:-:skipped | 9:1:jremote:pending 10:1:jremote:pending',
          'the opportunity and then the journey of higher priority take the room; the rest is capped');
select is((select count(*) from segment.outbox where journey in ('jcc1', 'jcc2') and reason = 'contact cap'), 3::bigint,
          'the capped ones say why');
select segment.set_contact_policy('jx', null);
select segment.alter_journey('jcc1', active => false);
select segment.alter_journey('jcc2', active => false);

------------------------------------------------------------------------
-- 4. Exit, goal and a condition (jex: 11-13; steps at 0, 2 and 4 days;
--    step 2 only for odd customers). 13 has left the bank before entry:
--    does not enter. After day 0, 12 buys (goal) and 11 leaves (exit).
------------------------------------------------------------------------
update jx.cust set left_bank = true where id = 13;
select count(*) from segment.refresh('jx', '2027-02-01');
select segment.create_journey('jx', 'jex', 'jx_ex', exit => 'jx_left', goal => 'jx_bought');
select segment.add_journey_step('jex', 1, '0 days', 'jremote');
select segment.add_journey_step('jex', 2, '2 days', 'jremote', condition => 'jx_odd');
select segment.add_journey_step('jex', 3, '4 days', 'jremote');
select is(segment.advance_journeys('2027-02-01 17:00'), 2::bigint, 'jex day 0: 11 and 12 (13 is in the exit audience)');
select is((select count(*) from segment.journey_instance i join segment.journey j using (journey_id)
            where j.name = 'jex' and i.key = '13'), 0::bigint, 'a customer in the exit audience does not enter');
select is(segment.advance_journeys('2027-02-03 17:00'), 1::bigint, 'jex day 2: only 11 (odd): 12 is skipped by the condition');
select is((select reason from segment.outbox where journey = 'jex' and customer = '12' and step = 2), 'condition false',
          'the condition skip says why');
update jx.cust set bought = true where id = 12;
update jx.cust set left_bank = true where id = 11;
select count(*) from segment.refresh('jx', '2027-02-04');
select is(segment.advance_journeys('2027-02-05 17:00'), 0::bigint, 'jex day 4: nothing (both ended)');
select is((select string_agg(i.key || ':' || i.status, ' ' order by i.key) from segment.journey_instance i
             join segment.journey j using (journey_id) where j.name = 'jex'), '11:exited 12:goal', 'exit and goal end the journey');
select is((select treated || '/' || treated_converted from segment.journey_review where journey = 'jex'), '2/1',
          'journey_review counts the goal');
select is((select sent || '/' || skipped || '/' || (skipped_by_reason ->> 'condition false') from segment.journey_funnel
            where journey = 'jex' and step = 2), '1/1/1', 'journey_funnel counts sent and skipped by reason');
select is((select converted from segment.journey_funnel where journey = 'jex' and step = 1), 1::bigint,
          'journey_funnel: one converted after step 1');
select segment.alter_journey('jex', active => false);
update jx.cust set bought = false, left_bank = false;
select count(*) from segment.refresh('jx', '2027-02-05');

------------------------------------------------------------------------
-- 5. Re-entry (jre: 16, one step at day 0, reentry_days 10; jonce: 16,
--    reentry NULL). Completed 2-01; back on 2-11 (10 days), not before.
------------------------------------------------------------------------
select segment.create_journey('jx', 'jre', 'jx_re', reentry_days => 10);
select segment.add_journey_step('jre', 1, '0 days', 'jremote');
select segment.create_journey('jx', 'jonce', 'jx_re');
select segment.add_journey_step('jonce', 1, '0 days', 'jremote');
select is(segment.advance_journeys('2027-02-01 18:00'), 2::bigint, 'jre and jonce: one touch each');
select is(segment.advance_journeys('2027-02-10 18:00'), 0::bigint, 'nine days later: no re-entry yet');
select is(segment.advance_journeys('2027-02-11 18:00'), 1::bigint, 'ten days later: back in jre, not in jonce');
select is((select string_agg(j.name || ':' || i.status, ' ' order by j.name, i.instance_id) from segment.journey_instance i
             join segment.journey j using (journey_id) where j.name in ('jre', 'jonce')),
          'jonce:completed jre:completed jre:completed', 'two passes of jre, one of jonce');
select segment.alter_journey('jre', active => false);
select segment.alter_journey('jonce', active => false);

------------------------------------------------------------------------
-- 6. Holdout (jh: 101-300, 50 %): about half are held out, get no touch,
--    and a customer's side does not change between passes.
------------------------------------------------------------------------
select segment.create_journey('jx', 'jh', 'jx_h', holdout_pct => 50, reentry_days => 0);
select segment.add_journey_step('jh', 1, '0 days', 'jremote');
select segment.advance_journeys('2027-02-01 19:00');
select ok((select count(*) filter (where is_holdout) between 70 and 130 from segment.journey_instance i
             join segment.journey j using (journey_id) where j.name = 'jh'), 'about half of 200 held out');
select is((select count(*) from segment.outbox o join segment.journey_instance i using (instance_id) where o.journey = 'jh' and i.is_holdout),
          0::bigint, 'holdouts get no touch, not even a skip');
select is((select count(*) from segment.outbox where journey = 'jh'),
          (select count(*) filter (where not is_holdout) from segment.journey_instance i join segment.journey j using (journey_id) where j.name = 'jh'),
          'every other customer gets the touch');
select segment.advance_journeys('2027-02-02 19:00');   -- completed on 2-01, back in (reentry 0)
select is((select count(*) from (select i.key from segment.journey_instance i join segment.journey j using (journey_id)
                                   where j.name = 'jh' group by i.key having count(*) = 2 and count(distinct i.is_holdout) = 1) x),
          200::bigint, 'second pass: all 200 back in, each on the same side as before');
select is((select leak_rate from segment.journey_leak where journey = 'jh'), 0::numeric, 'journey_leak: no leak');
select ok((select holdout > 0 and treated > 0 from segment.journey_review where journey = 'jh'), 'journey_review has both groups');
select segment.alter_journey('jh', active => false);

------------------------------------------------------------------------
-- 7. Entry by event: a row in jx.signup enters the customer at once with
--    the day-0 touch written in the same transaction.
------------------------------------------------------------------------
create table jx.signup (cust_id int, at timestamptz default now());
select segment.create_journey('jx', 'jonb', 'jx_q and not jx_q');   -- nobody by audience
select segment.add_journey_step('jonb', 1, '0 days', 'jremote', 'Welcome {name}');
select segment.add_journey_step('jonb', 2, '1 day', 'jremote');
select segment.attach_journey_event('jonb', 'jx.signup', 'cust_id');
insert into jx.signup (cust_id) values (17), (17), (18), (99999);
select is((select string_agg(customer || ':' || step || ':' || message, ' ' order by customer) from segment.outbox where journey = 'jonb'),
          '17:1:Welcome Name17 18:1:Welcome Name18', 'the event entered 17 and 18 at once (once each; 99999 is unknown)');
select is((select string_agg(distinct source, ',') from segment.journey_instance i join segment.journey j using (journey_id)
            where j.name = 'jonb'), 'event', 'their instances say they came by event');
select segment.alter_journey('jonb', active => false);

------------------------------------------------------------------------
-- 8. Referral and return (jesc: 14-15 on jremote, step 2 at 10 days). A
--    'replied' escalates to an opportunity of jx_call (owner assignment:
--    manager 101); 14's is not worked within 3 days: cancelled, back on
--    jsms with a touch; 15's is started: no return. Times from now(),
--    as the opportunity's period is today.
------------------------------------------------------------------------
select segment.create_opportunity_rule('jx', 'jx_call', 'jx_esc', 'mining', 'wealth', channel => 'remote_team',
                                       assignment => 'owner', cooldown_days => 0);
select segment.create_journey('jx', 'jesc', 'jx_esc');
select segment.add_journey_step('jesc', 1, '0 days', 'jremote');
select segment.add_journey_step('jesc', 2, '10 days', 'jremote');
select segment.set_journey_escalation('jesc', 'jx_call', array['replied'], return_after_days => 3,
                                      return_channel => 'jsms', return_template => 'Call us, {name}');
select throws_ok($$select * from segment.generate('jx_call')$$, '55000', null,
                 'the escalation rule is not generated in batch');
create temp table t0 as select now() - interval '1 second' as t;
select is(segment.advance_journeys((select t from t0)), 2::bigint, 'jesc day 0: two touches');
select is(segment.outbox_record_response((select outbox_id from segment.outbox where journey = 'jesc' and customer = '14'), 'clicked'),
          null::bigint, 'a click does not escalate (on_responses: replied)');
create temp table opp as
select segment.outbox_record_response((select outbox_id from segment.outbox where journey = 'jesc' and customer = c), 'replied') as id, c
  from (values ('14'), ('15')) v(c);
select is((select string_agg(o.key || ':' || o.manager || ':' || o.assignment || ':' || o.source, ' ' order by o.key)
             from segment.opportunity o join opp on opp.id = o.opportunity_id),
          '14:101:owner:journey:jesc 15:101:owner:journey:jesc', 'a reply escalates to the owner manager as an opportunity');
select is((select string_agg(status, ',' order by key) from segment.journey_instance i join segment.journey j using (journey_id)
            where j.name = 'jesc'), 'escalated,escalated', 'both instances wait for their opportunity');
select segment.opportunity_dispatch((select id from opp where c = '15'));
select segment.opportunity_start((select id from opp where c = '15'));
select is(segment.advance_journeys((select t + interval '2 days' from t0)), 0::bigint, 'two days later: nothing returns yet');
select is(segment.advance_journeys((select t + interval '3 days' from t0)), 1::bigint, 'three days later: 14 returns with one touch');
select is((select status || ':' || cancel_reason from segment.opportunity where opportunity_id = (select id from opp where c = '14')),
          'cancelled:returned to journey jesc: not worked within 3 days', 'the unworked opportunity is cancelled');
select is((select status from segment.opportunity where opportunity_id = (select id from opp where c = '15')),
          'in_progress', 'the worked one stays');
select is((select channel || ':' || message || ':' || step from segment.outbox where journey = 'jesc' and customer = '14' and step = 0),
          'jsms:Call us, Name14:0', 'the return touch is on the cheaper channel');
select is((select string_agg(event, ',' order by at, ord) from
             (select l.event, l.at, case l.event when 'enter' then 0 when 'touch' then 1 when 'response' then 2
                                                 when 'escalate' then 3 when 'return' then 4 else 5 end as ord
                from segment.journey_lifecycle l join segment.journey j using (journey_id)
               where j.name = 'jesc' and l.customer = '14') x),
          'enter,touch,response,response,escalate,return,return_touch', 'the lifecycle history of 14 has every move');
select is(segment.advance_journeys((select t + interval '10 days' from t0)), 1::bigint,
          'day 10: 14 (back in the journey) gets step 2; 15 (escalated) does not');
select is((select count(*) from segment.opportunity_log where opportunity_id = (select id from opp where c = '14') and to_status = 'cancelled'),
          1::bigint, 'the cancellation is in the opportunity log');

------------------------------------------------------------------------
-- 9. ack
------------------------------------------------------------------------
create temp table one as select min(outbox_id) as id from segment.outbox where journey = 'jesc' and status = 'pending';
select segment.outbox_ack((select id from one), 'delivered');
select is((select status from segment.outbox where outbox_id = (select id from one)), 'delivered', 'ack records delivery');
select is((select delivered from segment.journey_funnel where journey = 'jesc' and step = 1), 1::bigint, 'the funnel counts it');

------------------------------------------------------------------------
-- 10. Bad inputs: a specific SQLSTATE, nothing changed
------------------------------------------------------------------------
create temp table before_bad as
select (select count(*) from segment.journey) as j, (select count(*) from segment.journey_step) as s,
       (select count(*) from segment.journey_history) as h, (select count(*) from segment.channel) as c,
       (select count(*) from segment.consent) as k, (select count(*) from segment.outbox) as o,
       (select string_agg(status, ',' order by outbox_id) from segment.outbox) as st;
select throws_ok($$select segment.create_journey('jx', 'jq', 'jx_q')$$, '42710', null, 'a journey name taken');
select throws_ok($$select segment.create_journey('nosuch', 'j1', 'jx_q')$$, '42704', null, 'an unknown subject');
select throws_ok($$select segment.create_journey('jx', 'j1', 'jx_nosuch')$$, '42704', null, 'an entry audience naming an unknown tag');
select throws_ok($$select segment.create_journey('jx', 'j1', '')$$, '22004', null, 'an empty entry audience');
select throws_ok($$select segment.create_journey('jx', 'j1', 'jx_q', anchor_column => 'nosuch')$$, '42703', null, 'an unknown anchor column');
select throws_ok($$select segment.create_journey('jx', 'j1', 'jx_q', anchor_column => 'name')$$, '42804', null, 'an anchor column that is not a date');
select throws_ok($$select segment.create_journey('jx', 'j1', 'jx_q', holdout_pct => 60)$$, '22023', null, 'holdout_pct over 50');
select throws_ok($$select segment.create_journey('jx', 'j1', 'jx_q', reentry_days => -1)$$, '22023', null, 'negative reentry_days');
select throws_ok($$select segment.create_journey('jx', 'j1', 'jx_q', priority => 'NaN')$$, '22023', null, 'a priority that is not a finite number');
select throws_ok($$select segment.create_journey('jx', 'and', 'jx_q')$$, '42602', null, 'a keyword as a journey name');
select throws_ok($$select segment.add_journey_step('nosuch', 1, '0 days', 'jsms')$$, '42704', null, 'a step of an unknown journey');
select throws_ok($$select segment.add_journey_step('jq', 1, '0 days', 'jsms')$$, '42710', null, 'a step number taken');
select throws_ok($$select segment.add_journey_step('jq', 9, '0 days', 'nosuch')$$, '42704', null, 'an unknown channel');
select throws_ok($$select segment.add_journey_step('jq', 9, '-1 day', 'jsms')$$, '22023', null, 'a negative "at" without an anchor');
select throws_ok($$select segment.add_journey_step('jq', 9, '1 month', 'jsms')$$, '22023', null, 'an "at" in months');
select throws_ok($$select segment.add_journey_step('jq', 0, '1 day', 'jsms')$$, '22023', null, 'step 0');
select throws_ok($$select segment.add_journey_step('jq', 9, '1 day', 'jsms', 'Hi {nosuch}')$$, '42703', null, 'a template naming an unknown column');
select throws_ok($$select segment.add_journey_step('jq', 9, '1 day', 'jsms', condition => 'jx_nosuch')$$, '42704', null, 'a condition naming an unknown tag');
select throws_ok($$select segment.set_channel('Bad Name')$$, '42602', null, 'a bad channel name');
select throws_ok($$select segment.set_channel('jsms', fallback => array['jsms'])$$, '22023', null, 'a channel as its own fallback');
select throws_ok($$select segment.set_channel('jx1', fallback => array['nosuch'])$$, '42704', null, 'an unknown fallback');
select throws_ok($$select segment.set_channel('jx1', quiet_from => '21:00')$$, '22023', null, 'half a quiet window');
select throws_ok($$select segment.set_channel('jx1', daily_capacity => -1)$$, '22023', null, 'a negative capacity');
select throws_ok($$select segment.register_consent('jx', 'jx.cust', 'id', 'jsms', 'name')$$, '42804', null, 'a consent column that is not boolean');
select throws_ok($$select segment.register_consent('jx', 'jx.cust', 'id', 'nosuch', 'sms_ok')$$, '42704', null, 'consent to an unknown channel');
select throws_ok($$select segment.outbox_ack(-1, 'delivered')$$, 'P0002', null, 'ack of an unknown outbox row');
select throws_ok($$select segment.outbox_ack((select min(outbox_id) from segment.outbox), 'lost')$$, '22023', null, 'ack with a bad status');
select throws_ok($$select segment.outbox_ack((select min(outbox_id) from segment.outbox where status = 'skipped'), 'delivered')$$, '55000', null,
                 'ack of a skipped touch');
select throws_ok($$select segment.outbox_record_response((select min(outbox_id) from segment.outbox), 'Clicked!')$$, '22023', null, 'a bad response');
select throws_ok($$select segment.advance_journeys(null)$$, '22023', null, 'advance_journeys(NULL)');
select throws_ok($$select segment.set_journey_escalation('jq', 'jx_call', return_after_days => 3)$$, '22023', null,
                 'a return without a channel');
select throws_ok($$select segment.drop_journey('jq')$$, '2BP01', null, 'dropping a journey with instances needs cascade');
select is((select row((select count(*) from segment.journey), (select count(*) from segment.journey_step),
                      (select count(*) from segment.journey_history), (select count(*) from segment.channel),
                      (select count(*) from segment.consent), (select count(*) from segment.outbox),
                      (select string_agg(status, ',' order by outbox_id) from segment.outbox))::text),
          (select row(j, s, h, c, k, o, st)::text from before_bad), 'the failed calls changed nothing');

------------------------------------------------------------------------
-- What journeys read cannot be dropped or altered away under them (2BP01),
-- and each refusal leaves the table and the catalog as they were.
alter table jx.cust add column mat date;
select segment.create_journey('jx', 'janchor', 'jx_q', anchor_column => 'mat');
select throws_ok($$select segment.drop_tag('jx_left')$$, '2BP01', null, 'a tag in an exit audience cannot be dropped');
select throws_ok($$select segment.drop_tag('jx_q', "cascade" => true)$$, '2BP01', null, 'nor an entry audience''s, even with cascade');
select throws_ok($$select segment.drop_opportunity_rule('jx_call', "cascade" => true)$$, '2BP01', null,
                 'an opportunity rule a journey escalates to cannot be dropped');
select throws_ok($$alter table jx.cust drop column mat$$, '2BP01', null, 'a journey''s anchor column cannot be dropped');
select throws_ok($$alter table jx.cust alter column mat type text$$, '2BP01', null, 'nor retyped to a non-date');
select throws_ok($$alter table jx.cust rename column name to full_name$$, '2BP01', null, 'a column a step template reads cannot be renamed');
select throws_ok($$alter table jx.cust drop column app_ok$$, '2BP01', null, 'a consent column cannot be dropped');
select throws_ok($$alter table jx.signup drop column cust_id$$, '2BP01', null, 'an entry event''s key column cannot be dropped');
select throws_ok($$drop table jx.signup$$, '2BP01', null, 'an entry event table cannot be dropped');
alter table jx.cust alter column mat type timestamptz;
select is((select string_agg(attname || ':' || atttypid::regtype, ',' order by attnum) from pg_attribute
            where attrelid = 'jx.cust'::regclass and attnum > 0 and not attisdropped),
          'id:integer,owner:integer,org:integer,app_ok:boolean,sms_ok:boolean,left_bank:boolean,bought:boolean,name:text,phone:text,mat:timestamp with time zone',
          'a date anchor may become a timestamp; the refused changes left the columns as they were');
select is((select count(*)::int from segment.tag where name in ('jx_left', 'jx_q'))
          + (select count(*)::int from segment.opportunity_rule where name = 'jx_call'), 3,
          'the refused drops kept the tags and the rule');

select * from finish();
rollback;
