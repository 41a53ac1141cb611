#!/bin/bash
# bench_journeys.sh: the journeys part of `make bench`, run by test/bench.sh
# on its bank (dw.customer_wide, subject "customer"). Every customer enters
# an onboarding journey (day 0, 1, 3 and 7 on the app, falling back to SMS
# without marketing consent; a template with masking); the day-0 advance
# enters them and writes their first touches. Then, on the same 1M active
# instances, the day-1 touches are written two ways:
#
#   (j1) segment.advance_journeys(day 1): exits/goals/entries checked, the
#        due steps found (watermark), consent and fallback, the message
#        rendered, INSERT ... ON CONFLICT DO NOTHING into segment.outbox
#        (unique idempotency key), completion of the instances, NOTIFY;
#   (j2) the plain INSERT ... SELECT of the same touches (same channel,
#        message, key and due time) into a table with the same columns,
#        indexes and rows (LIKE segment.outbox INCLUDING ALL, holding the
#        day-0 touches), without ON CONFLICT.
#
# One round each (each inserts a row per customer); the rows must agree.
# (Day 1 of 0/1/3/7: the instances stay active; the last step would also
# complete them, an UPDATE per instance.)
# Environment: as test/bench.sh (PG* variables), BENCH_AS_OF.
set -euo pipefail

P=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)
Q=(psql -X -q -At -v ON_ERROR_STOP=1)
as_of=${BENCH_AS_OF:-$("${Q[@]}" -c 'select current_date')}
t0="$as_of 10:00"
t1="$as_of 10:00'::timestamptz + interval '1 day"

"${P[@]}" >/dev/null <<SQL
set client_min_messages = warning;
select segment.create_tag('customer', 'j_everyone', 'customer_id is not null')
 where not exists (select from segment.tag where name = 'j_everyone');
select count(*) from segment.refresh('customer', '$as_of');
select segment.set_contact_policy('customer', null);
select segment.drop_journey(j.name, "cascade" => true) from segment.journey j where j.name = 'bench_onb';
select segment.set_channel('bench_sms', cost => 0.05);
select segment.set_channel('bench_app', fallback => array['bench_sms'], cost => 0.01);
select segment.register_consent('customer', 'dw.customer_wide', 'customer_id', 'bench_app', 'marketing_consent');
select segment.create_journey('customer', 'bench_onb', 'j_everyone');
select segment.add_journey_step('bench_onb', 1, '0 days', 'bench_app', 'Welcome {customer_name|mask} ({mobile|mask})');
select segment.add_journey_step('bench_onb', 2, '1 day', 'bench_app',
    'Dear {customer_name|mask} ({mobile|mask}): AUM {aum|amount}, deposit due {td_maturity_date|date}');
select segment.add_journey_step('bench_onb', 3, '3 days', 'bench_app', 'Day 3, {customer_name|mask}');
select segment.add_journey_step('bench_onb', 4, '7 days', 'bench_app', 'Day 7, {customer_name|mask}');
SQL

s0=$(date +%s.%N)
day0=$("${Q[@]}" -c "select segment.advance_journeys('$t0')")
s1=$(date +%s.%N)
jid=$("${Q[@]}" -c "select journey_id from segment.journey where name = 'bench_onb'")
tsql=$("${Q[@]}" -c "select template_sql from segment.journey_step where journey_id = $jid and step = 2")
"${P[@]}" >/dev/null <<SQL
drop table if exists dw.bench_outbox;
create table dw.bench_outbox (like segment.outbox including all);
-- the same contents as the outbox before day 1 (the day-0 touches)
insert into dw.bench_outbox select * from segment.outbox;
vacuum analyze dw.bench_outbox;
vacuum analyze segment.journey_instance;
vacuum analyze segment.outbox;
SQL

cat > "${BENCH_TMP:-/tmp}/journeys.sql" <<SQL
\\timing on
checkpoint;
\\echo @@ j2
insert into dw.bench_outbox (journey_id, journey, journey_version, instance_id, step, member_id, customer,
                             channel, planned_channel, due_at, message, idempotency_key, status, reason)
select i.journey_id, 'bench_onb', i.journey_version, i.instance_id, 2, i.member_id, i.key,
       case when t.marketing_consent then 'bench_app' else 'bench_sms' end, 'bench_app',
       greatest(i.anchor_at + interval '1 day', '$t1'), $tsql,
       i.journey_id || ':' || i.journey_version || ':' || i.instance_id || ':2', 'pending',
       case when t.marketing_consent is not true then 'fallback: no consent to bench_app' end
  from segment.journey_instance i join dw.customer_wide t on t.customer_id = i.member_id
 where i.journey_id = $jid and i.status = 'active' and not i.is_holdout
   and i.anchor_at + interval '1 day' <= '$t1';
checkpoint;
\\echo @@ j1
select segment.advance_journeys('$t1');
SQL

echo
echo "== Journeys: $day0 customers entered and got their day-0 touch in $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", b - a }') s; the day-1 touches of the $day0 active instances:"
"${P[@]}" -f "${BENCH_TMP:-/tmp}/journeys.sql" > "${BENCH_TMP:-/tmp}/journeys.out"
ms() { awk -v k="$1" '$1 == "@@" { cur = $2; next } /^Time:/ && cur == k { print $2; cur = "" }' "${BENCH_TMP:-/tmp}/journeys.out"; }
j1=$(ms j1); j2=$(ms j2)
printf '%-64s %10s %10s\n' "step" "seconds" "x SQL"
printf '%-64s %10s %10s\n' "----" "-------" "-----"
awk -v a="$j1" -v b="$j2" 'BEGIN {
  printf "%-64s %10.3f %10.2f\n", "(j1) segment.advance_journeys (consent, render, idempotent)", a / 1000, a / b
  printf "%-64s %10.3f %10.2f\n", "(j2) plain INSERT ... SELECT of the same due touches", b / 1000, 1 }'
diff=$("${Q[@]}" -c "select count(*) from (
          (select instance_id, channel, due_at, message, idempotency_key from segment.outbox where journey_id = $jid and step = 2
           except all select instance_id, channel, due_at, message, idempotency_key from dw.bench_outbox where step = 2)
          union all
          (select instance_id, channel, due_at, message, idempotency_key from dw.bench_outbox where step = 2
           except all select instance_id, channel, due_at, message, idempotency_key from segment.outbox where journey_id = $jid and step = 2)) x")
rows=$("${Q[@]}" -c "select count(*) from dw.bench_outbox where step = 2")
if [[ $diff == 0 ]]; then
  echo "check: both wrote the same $rows touches (instance, channel, due time, message, key)"
else
  echo "check: MISMATCH in $diff rows"
fi
"${P[@]}" -c "drop table dw.bench_outbox" -c "select segment.drop_journey('bench_onb', \"cascade\" => true)" >/dev/null
