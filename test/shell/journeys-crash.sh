#!/bin/bash
# journeys-crash.sh: advance_journeys survives a crash and concurrency.
#   1. 100,000 customers enter a journey (steps at day 0, 1, 2) and get
#      their day-0 touch.
#   2. The day-1 advance is killed with kill -9 while it writes (the server
#      restarts, crash recovery): nothing of it is left, day 0 is intact.
#   3. Re-running the day-1 advance writes every day-1 touch exactly once;
#      running it again writes nothing.
#   4. Two sessions advance day 2 at the same time: between them every
#      touch once (the second waits for the first, then finds them done).
# Stays a shell test: it kills a backend with kill -9 and waits for crash
# recovery, which isolationtester cannot do (its sleeps wait for the advance
# to be mid-write, not to order two sessions). The ordered interleavings of
# two advances (part 4) are also the spec test/specs/journey_race.spec.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed,
# and the right to kill its backends (root, or the cluster's owner).
set -uo pipefail

db=segment_jcrash_$$
n=0
fail=0
N=100000
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
wait_up() { for _ in $(seq 1 120); do pg_isready -q -d "$db" && psql -X -At -d "$db" -c 'select 1' >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }

export PGOPTIONS="-c client_min_messages=warning -c timezone=UTC"
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
trap 'wait_up; dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

q >/dev/null <<SQL
create extension segment;
create table cust (id int primary key, name text);
insert into cust select i, 'C' || i from generate_series(1, $N) i;
select segment.register_subject('cu', 'cust', 'id');
select segment.create_tag('cu', 'everyone', 'id > 0');
select count(*) from segment.refresh('cu', '2027-01-01');
select segment.set_channel('app');
select segment.create_journey('cu', 'onb', 'everyone');
select segment.add_journey_step('onb', 1, '0 days', 'app', 'Welcome {name}');
select segment.add_journey_step('onb', 2, '1 day', 'app', 'Day 1, {name}');
select segment.add_journey_step('onb', 3, '2 days', 'app', 'Day 2, {name}');
SQL

# --- 1. day 0 -------------------------------------------------------------------
[[ $(q -c "select segment.advance_journeys('2027-01-01 10:00')") == "$N" ]]; ok $? "day 0: $N touches"

# --- 2. day 1, killed -------------------------------------------------------------
psql -X -q -At -d "$db" -c "set application_name = 'jcrash'" \
     -c "select pg_sleep(0.2), segment.advance_journeys('2027-01-02 10:00')" >/dev/null 2>&1 &
bg=$!
pid=
for _ in $(seq 1 100); do
  pid=$(q -c "select pid from pg_stat_activity where application_name = 'jcrash' and state = 'active' and query ~ 'advance_journeys'")
  [[ -n $pid ]] && break
  sleep 0.05
done
[[ -n $pid ]]; ok $? "the day-1 advance is running (backend $pid)"
# let it get into the writing, then kill the backend outright
sleep 0.6
still=$(q -c "select count(*) from pg_stat_activity where pid = '${pid:-0}' and state = 'active'")
[[ $still == 1 ]]; ok $? "it is still running when killed (no commit yet)"
kill -9 "$pid" 2>/dev/null; ok $? "kill -9 $pid"
wait $bg 2>/dev/null
wait_up; ok $? "the server is back after crash recovery"
[[ $(q -c "select count(*) from segment.outbox where step = 2") == 0 ]]; ok $? "nothing of the killed advance is left"
[[ $(q -c "select count(*) from segment.outbox where step = 1") == "$N" ]]; ok $? "day 0 is intact"
[[ $(q -c "select advanced_until from segment.journey_state") == "2027-01-01 10:00:00+00" ]]
ok $? "the journey's watermark is still day 0's"

# --- 3. re-run --------------------------------------------------------------------
[[ $(q -c "select segment.advance_journeys('2027-01-02 10:00')") == "$N" ]]; ok $? "re-running day 1 writes $N touches"
[[ $(q -c "select segment.advance_journeys('2027-01-02 10:00')") == 0 ]]; ok $? "and again nothing"
[[ $(q -c "select count(*) from (select instance_id, step from segment.outbox group by 1, 2 having count(*) > 1) x") == 0 ]]
ok $? "no duplicate touch"
[[ $(q -c "select count(*) from segment.outbox where step = 2 and message = 'Day 1, C' || customer") == "$N" ]]
ok $? "every customer has their day-1 touch, rendered: nothing lost"

# --- 4. two at once ---------------------------------------------------------------
tmp=$(mktemp -d)
for s in a b; do
  q -c "select segment.advance_journeys('2027-01-03 10:00')" >"$tmp/$s" 2>&1 &
done
wait
sum=$(( $(cat "$tmp/a") + $(cat "$tmp/b") ))
[[ $sum == "$N" ]]; ok $? "two concurrent day-2 advances write $N touches between them ($(cat "$tmp/a") + $(cat "$tmp/b"))"
rm -rf "$tmp"
[[ $(q -c "select count(*) || ' ' || count(distinct (instance_id, step)) from segment.outbox") == "$((3 * N)) $((3 * N))" ]]
ok $? "$((3 * N)) touches, each (instance, step) once"
[[ $(q -c "select count(*) from segment.journey_instance where status = 'completed'") == "$N" ]]
ok $? "every instance is completed"

echo "1..$n"
exit $fail
