#!/bin/bash
# journeys-80days.sh: the done-when simulation of issue 13.
# A 30/15/7/1 maturity journey over 2,000 customers, advanced once a day at
# 10:00 and again at 10:05 for 80 days (2027-01-01 .. 2027-03-21). Checked
# against what plain SQL computes from the customer table alone:
#   * everybody with a maturity date enters at the first advance;
#   * exactly one touch per customer per step whose due day (maturity - 30,
#     -15, -7, -1) is on or after the entry day and within the 80 days, none
#     other; written by the advance of its due day; due_at on that day;
#   * the 10:05 advance of every day adds nothing;
#   * customers without app consent (false or NULL) get SMS instead, with
#     the reason; the others get the app;
#   * messages rendered and masked; one NOTIFY per batch, none for an empty one.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_j80_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

export PGOPTIONS="-c client_min_messages=warning -c timezone=Asia/Shanghai"
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

q >/dev/null <<'SQL'
create extension segment;
create table cust (id int primary key, td_maturity date, app_ok boolean, name text, phone text);
-- maturities from 5 days before the first day to 84 days after it; every
-- tenth customer opted out of the app, every 17th never answered (NULL)
insert into cust
select i, date '2027-01-01' + (i * 37 % 90) - 5,
       case when i % 10 = 0 then false when i % 17 = 0 then null else true end,
       'Cust ' || i, '1380000' || lpad(i::text, 4, '0')
  from generate_series(1, 2000) i;
select segment.register_subject('cu', 'cust', 'id');
select segment.create_tag('cu', 'has_td', 'td_maturity is not null');
select count(*) from segment.refresh('cu', '2027-01-01');
select segment.set_channel('sms', quiet_from => '21:00', quiet_to => '09:00', cost => 0.05);
select segment.set_channel('app', fallback => array['sms'], quiet_from => '22:00', quiet_to => '08:00', cost => 0.01);
select segment.register_consent('cu', 'cust', 'id', 'app', 'app_ok');
select segment.create_journey('cu', 'maturity', 'has_td', anchor_column => 'td_maturity');
select segment.add_journey_step('maturity', 1, '-30 days', 'app', 'Dear {name} ({phone|mask}): 30 days');
select segment.add_journey_step('maturity', 2, '-15 days', 'app', 'Dear {name} ({phone|mask}): 15 days');
select segment.add_journey_step('maturity', 3, '-7 days', 'app', 'Dear {name} ({phone|mask}): 7 days');
select segment.add_journey_step('maturity', 4, '-1 days', 'app', 'Dear {name} ({phone|mask}): 1 day');
create table advance_log (day int, run int, touches bigint, last_id bigint);
SQL

# (max(outbox_id) in the same statement as the advance would see the rows
# before it: the statement's snapshot)
setlast="update advance_log set last_id = (select max(outbox_id) from segment.outbox) where last_id is null"

# --- the first advance, in a session that listens -----------------------------
notes=$(q -c "listen segment_outbox" \
          -c "insert into advance_log select 0, 1, segment.advance_journeys('2027-01-01 10:00')" -c "$setlast" \
          -c "insert into advance_log select 0, 2, segment.advance_journeys('2027-01-01 10:05')" -c "$setlast" 2>&1)
[[ $(grep -c 'notification "segment_outbox"' <<<"$notes") == 1 ]]; ok $? "one NOTIFY segment_outbox for the first batch, none for the empty second"
grep -q '"journey" : "maturity"' <<<"$notes"; ok $? "the NOTIFY payload names the journey"

# --- the other 79 days ----------------------------------------------------------
script=$(for d in $(seq 1 79); do
  echo "insert into advance_log select $d, 1, segment.advance_journeys(timestamptz '2027-01-01 10:00' + interval '$d days');"
  echo "$setlast;"
  echo "insert into advance_log select $d, 2, segment.advance_journeys(timestamptz '2027-01-01 10:05' + interval '$d days');"
  echo "$setlast;"
done)
q -c "$script" >/dev/null
ok $? "160 advances"

[[ $(q -c "select count(*) from advance_log") == 160 ]]; ok $? "160 advances logged"
[[ $(q -c "select count(*) from advance_log where run = 2 and touches <> 0") == 0 ]]; ok $? "the 10:05 advance of every day adds nothing"
[[ $(q -c "select count(*) from segment.journey_instance") == 2000 ]]; ok $? "2,000 customers entered"
[[ $(q -c "select count(*) from segment.journey_instance where entered_at <> '2027-01-01 10:00' or entry_day <> '2027-01-01'") == 0 ]]
ok $? "all entered at the first advance"

# expected touches, from the customer table alone
q >/dev/null <<'SQL'
create table expected as
select c.id::text as customer, s.step, c.td_maturity - s.days as due_day,
       case when c.app_ok then 'app' else 'sms' end as channel,
       format('Dear %s (%s): %s', c.name, left(c.phone, 3) || '****' || right(c.phone, 4), s.label) as message
  from cust c
 cross join (values (1, 30, '30 days'), (2, 15, '15 days'), (3, 7, '7 days'), (4, 1, '1 day')) s(step, days, label)
 where c.td_maturity - s.days between date '2027-01-01' and date '2027-01-01' + 79;
create table got as
select o.customer, o.step, (o.due_at at time zone 'Asia/Shanghai')::date as due_day, o.channel, o.message,
       o.status, o.reason, o.outbox_id
  from segment.outbox o;
SQL
exp=$(q -c "select count(*) from expected")
(( exp > 5000 )); ok $? "the expectation is not trivial ($exp touches)"
[[ $(q -c "select count(*) from got where status <> 'pending'") == 0 ]]; ok $? "every written touch is pending (none skipped)"
[[ $(q -c "select count(*) from (select customer, step from got group by 1, 2 having count(*) > 1) x") == 0 ]]
ok $? "no customer has two touches for one step"
[[ $(q -c "select count(*) from (select customer, step, due_day, channel, message from got
                                   except select customer, step, due_day, channel, message from expected) x") == 0 ]]
ok $? "no touch that plain SQL does not expect (customer, step, due day, channel, message)"
[[ $(q -c "select count(*) from (select customer, step, due_day, channel, message from expected
                                   except select customer, step, due_day, channel, message from got) x") == 0 ]]
ok $? "every touch that plain SQL expects is there, $exp of them"
# written by the advance of its due day (10:00 run of that day)
[[ $(q -c "select count(*) from got g
             join lateral (select a.day, a.run from advance_log a where a.last_id >= g.outbox_id
                            order by a.day, a.run limit 1) a on true
            where a.run <> 1 or date '2027-01-01' + a.day <> g.due_day") == 0 ]]
ok $? "each touch was written by the 10:00 advance of its due day"
[[ $(q -c "select count(*) from segment.outbox where due_at <> (due_at at time zone 'Asia/Shanghai')::date + time '10:00' at time zone 'Asia/Shanghai'") == 0 ]]
ok $? "due_at is 10:00 of the due day (the time of the advance; 00:00 is in both channels' quiet hours)"
[[ $(q -c "select count(*) from got g join cust c on c.id::text = g.customer where c.app_ok is not true and (g.channel <> 'sms' or g.reason <> 'fallback: no consent to app')") == 0 ]]
ok $? "app opt-outs (false or NULL) get SMS instead, with the reason"
[[ $(q -c "select count(*) from got where channel = 'sms'") -gt 500 ]]; ok $? "a good number of SMS fallbacks"
# customers whose maturity is 5 days before the start: nothing; 31+ days: all four
[[ $(q -c "select count(*) from got g join cust c on c.id::text = g.customer where c.td_maturity < '2027-01-02'") == 0 ]]
ok $? "customers maturing on or before the first day get nothing (no late reminders)"
[[ $(q -c "select count(*) from (select g.customer from got g join cust c on c.id::text = g.customer
                                  where c.td_maturity between '2027-01-31' and '2027-03-22' group by 1 having count(*) = 4) x") == \
   $(q -c "select count(*) from cust where td_maturity between '2027-01-31' and '2027-03-22'") ]]
ok $? "customers maturing 30 to 80 days out get all four steps"
[[ $(q -c "select count(*) from segment.journey_instance where status = 'completed'") == \
   $(q -c "select count(*) from cust where td_maturity - 1 <= date '2027-03-21'") ]]
ok $? "instances whose last step is due by the last day are completed, the others active"

# a re-run of the whole period changes nothing
again=$(q -c "select sum(segment.advance_journeys(timestamptz '2027-01-01 10:00' + d * interval '1 day')) from generate_series(0, 79) d")
[[ $again == 0 && $(q -c "select count(*) from segment.outbox") == $(q -c "select count(*) from got") ]]
ok $? "advancing the 80 days again writes nothing"

echo "1..$n"
exit $fail
