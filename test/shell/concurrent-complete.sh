#!/bin/bash
# concurrent-complete.sh: two sessions cannot both move one opportunity.
# Session A completes an opportunity inside a transaction and holds it open;
# session B's complete of the same opportunity waits for A's row lock, then
# fails with 55000 (it is completed) instead of overwriting A's outcome; an
# expire() running meanwhile waits too and then leaves the completed one
# alone. Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_complete_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

export PGOPTIONS="-c client_min_messages=warning"
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

q >/dev/null <<'SQL'
create extension segment;
create table cc (id int8 primary key, bal numeric);
insert into cc values (1, 10), (2, 20);
select segment.register_subject('cc', 'cc', 'id');
insert into segment.opportunity_rule (subject_id, name, audience, kind, product, channel,
                                      valid_days, cooldown_days, holdout_pct, assignment)
select subject_id, 'cc_rule', 'x', 'mining', 'fund', 'manager', 7, 30, 0, 'owner' from segment.subject;
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, manager, assignment, status)
select 1, 1, 1, g, g::text, current_date - 6, current_date, false, 'mgr', 'owner', 'in_progress'
  from generate_series(1, 2) g;
SQL

( q -c "begin" -c "select segment.opportunity_complete(1, true, 5000, 'A')" -c "select pg_sleep(2)" -c "commit" >/dev/null ) &
a=$!
sleep 0.7
tmp=$(mktemp -d)
q -c "select segment.expire_opportunities(current_date + 1)" >"$tmp/exp" 2>&1 &
e=$!
t0=$(date +%s%N)
out=$(q -c "select segment.opportunity_complete(1, false, null, 'B')" 2>&1)
rc=$?
waited=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$a"; wait "$e"
exp=$(cat "$tmp/exp"); rm -rf "$tmp"
(( waited >= 800 )); ok $? "the second complete waited for the first (${waited} ms)"
[[ $rc != 0 ]]; ok $? "the second complete fails"
grep -q 'cannot complete opportunity 1: it is completed' <<<"$out"; ok $? "... because the first one completed it (got: $(head -1 <<<"$out"))"
[[ $(q -c "select converted || ' ' || amount || ' ' || note from segment.opportunity where opportunity_id = 1") == "true 5000 A" ]]
ok $? "the first manager's outcome stands"
[[ $(q -c "select count(*) from segment.opportunity_log where opportunity_id = 1") == 1 ]]; ok $? "one transition logged"
[[ $exp == 1 ]]; ok $? "expire meanwhile expired only the other one (got $exp)"
[[ $(q -c "select string_agg(status, ' ' order by opportunity_id) from segment.opportunity") == "completed expired" ]]
ok $? "statuses: completed, expired"

echo "1..$n"
exit $fail
