#!/bin/bash
# events.sh: event rules under COPY: 100,000 events (50,000 known customers
# twice each, 1,000 unknown keys) piped through psql's \copy into a table
# with an event rule: one generation, one opportunity per known customer, the
# unknown ones reported. (A shell test for the client-side COPY stream and
# its size.) Event rules under concurrency -- two sessions for one customer,
# another customer not waiting, batch generate() waiting, the contact cap
# across two rules -- are the isolationtester spec test/specs/event_race.spec.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_events_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

export PGOPTIONS="-c client_min_messages=warning"
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

q >/dev/null <<'SQL'
create extension segment;
create table cust (id int primary key, owner int, org int, bal numeric);
insert into cust select i, 100 + i % 50, i % 5, i from generate_series(1, 100000) i;
create table staff (mid int primary key, org int);
insert into staff select 100 + i, i % 5 from generate_series(0, 49) i;
select segment.register_subject('cu', 'cust', 'id', org_column => 'org', owner_column => 'owner');
select segment.register_staff('cu', 'staff', 'mid', 'org');
select segment.create_tag('cu', 'cu_all', 'bal > 0');
select count(*) from segment.refresh('cu');
select segment.create_opportunity_rule('cu', 'loan_failed', 'cu_all', 'mining', 'loan',
                                       template => 'Customer {id}', cooldown_days => 30, holdout_pct => 10);
select segment.create_opportunity_rule('cu', 'batch_rule', 'cu_all', 'mining', 'card', assignment => 'pool');
create table loan_app (app_id bigserial primary key, cust_id int8 not null, status text not null,
                       amount numeric, at timestamptz not null default now());
select segment.attach_event_rule('loan_failed', 'loan_app', 'cust_id', 'status = ''failed''');
SQL

# --- 1. COPY ------------------------------------------------------------------
t0=$(ms)
awk 'BEGIN { for (i = 1; i <= 99000; i++) printf "%d,failed,%d\n", (i - 1) % 50000 + 1, i;
             for (i = 1; i <= 1000; i++) printf "%d,failed,1\n", 200000 + i }' |
  q -c "\copy loan_app (cust_id, status, amount) from stdin with (format csv)"
rc=$?
t1=$(ms)
ok $rc "COPY of 100,000 events into a table with an event rule ($((t1 - t0)) ms)"
[[ $(q -c "select count(*) from loan_app") == 100000 ]]; ok $? "100,000 event rows"
got=$(q -c "select count(*) || ' ' || count(*) filter (where is_control) || ' ' || count(distinct source)
              from segment.opportunity")
read -r total ctl src <<<"$got"
[[ $total == 50000 && $src == 1 ]]; ok $? "one opportunity per known customer: 50,000 (got $total)"
(( ctl > 4500 && ctl < 5500 )); ok $? "about 10 % of them are controls (got $ctl)"
[[ $(q -c "select count(*) from segment.generation") == 1 ]]; ok $? "the COPY was one generation call"
[[ $(q -c "select unknown from segment.event_skip") == 1000 ]]; ok $? "1,000 unknown customers reported"
[[ $(q -c "select count(*) from segment.opportunity where is_control is distinct from
                   segment_internal._in_control(rule_id, member_id, period, 10)") == 0 ]]
ok $? "controls are the deterministic hash of batch generation"

echo "1..$n"
exit $fail
