#!/bin/bash
# generate-race.sh: two sessions running segment.generate() for the same day
# at once create no duplicates. Session A generates inside a transaction and
# holds it open; session B's generate (every rule) must wait for A's commit,
# then find every candidate in cool-down and make nothing. Then both run at
# once with no transaction held (a plain race), for the next day, across
# two rules and a contact cap: the total is what one run makes, each
# customer within the cap. Prints TAP; needs PGHOST/PGPORT of a cluster
# where segment is installed.
set -uo pipefail

db=segment_genrace_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

export PGOPTIONS="-c client_min_messages=warning"
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

q >/dev/null <<'SQL'
create extension segment;
create table gr (id int primary key, v int, owner int, org int);
insert into gr select g, g % 10, 100 + g % 7, g % 3 from generate_series(1, 20000) g;
create table gr_staff (mid int primary key, org int, cap int, active boolean);
insert into gr_staff select 100 + j, j % 3, 500, true from generate_series(0, 6) j;
select segment.register_subject('gr', 'gr', 'id', 'org', 'owner');
select segment.register_staff('gr', 'gr_staff', 'mid', 'org', 'cap', 'active');
select segment.create_tag('gr', 'gr_low', 'v < 5');
select segment.create_tag('gr', 'gr_odd', 'v % 2 = 1');
select count(*) from segment.refresh('gr', '2026-05-01');
select segment.set_contact_policy('gr', 1, 30);
select segment.create_opportunity_rule('gr', 'gr_a', 'gr_low', 'mining', 'a', priority => 20,
                                       holdout_pct => 10, cooldown_days => 0);
select segment.create_opportunity_rule('gr', 'gr_b', 'gr_odd', 'mining', 'b', priority => 10,
                                       holdout_pct => 10, cooldown_days => 0);
SQL

# A holds its generation open for 2 s; B starts meanwhile
( q -c "begin" -c "select count(*) from segment.generate(null, '2026-05-01')" -c "select pg_sleep(2)" -c "commit" >/dev/null ) &
a=$!
sleep 0.7
t0=$(date +%s.%N)
b_out=$(q -c "select coalesce(sum(generated + control), 0) from segment.generate(null, '2026-05-01')" 2>&1)
b_rc=$?
t1=$(date +%s.%N)
wait "$a"
waited=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a > 0.8) ? 0 : 1 }')
[[ $b_rc == 0 ]]; ok $? "the second generate succeeds ($b_out)"
[[ $waited == 0 ]]; ok $? "the second generate waited for the first to commit"
[[ $b_out == 0 ]]; ok $? "the second generate made nothing (got $b_out)"
# one opportunity per customer (cap 1): rule a (priority 20) takes v < 5,
# rule b the odd v >= 5: 10000 + 6000
total=$(q -c "select count(*) from segment.opportunity where period = '2026-05-01'")
[[ $total == 16000 ]]; ok $? "one run's worth of opportunities: 16000 (got $total)"
dups=$(q -c "select count(*) from (select rule_id, member_id from segment.opportunity group by 1, 2 having count(*) > 1) x")
[[ $dups == 0 ]]; ok $? "no customer has two opportunities of one rule (got $dups)"

# both at once, nobody holding a transaction, the next day: again one run's worth
q -c "select segment.set_contact_policy('gr', 2, 30)" >/dev/null
( q -c "select count(*) from segment.generate(null, '2026-05-02')" >/dev/null ) &
a=$!
( q -c "select count(*) from segment.generate(null, '2026-05-02')" >/dev/null ) &
b=$!
wait "$a"; ra=$?
wait "$b"; rb=$?
[[ $ra == 0 && $rb == 0 ]]; ok $? "two concurrent generates both succeed"
day2=$(q -c "select count(*) from segment.opportunity where period = '2026-05-02'")
# cap 2 over the window: everyone has 1 from day 1, room for 1 more; rule a
# first again: its 10000, then b's odd v >= 5 (v = 1, 3 are full): 16000
[[ $day2 == 16000 ]]; ok $? "together they made one run's worth: 16000 (got $day2)"
over=$(q -c "select count(*) from (select member_id from segment.opportunity group by 1 having count(*) > 2) x")
[[ $over == 0 ]]; ok $? "no customer above the contact cap (got $over)"
logged=$(q -c "select count(*) from segment.generation where period = '2026-05-02' and generated + control > 0")
[[ $logged == 2 ]]; ok $? "the generation log shows one productive run per rule (got $logged)"

echo "1..$n"
exit $fail
