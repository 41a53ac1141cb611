#!/bin/bash
# concurrent-live.sh: live maintenance under concurrency.
#  1. Two writers updating different customers do not wait on each other:
#     A holds its transaction open, B must finish under lock_timeout.
#  2. Readers see a committed change at once, an uncommitted one not at all.
#  3. A refresh folds only what it saw: a writer that commits while the
#     refresh runs keeps its overlay row (live counts still equal plain SQL),
#     whether the writer started before the refresh or during it.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_live_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

export PGOPTIONS="-c client_min_messages=warning"
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

q >/dev/null <<'SQL'
create extension segment;
create table ck (id int8 primary key, v int, w int);
insert into ck select g, g % 10, g % 7 from generate_series(1, 20000) g;
select segment.register_subject('ck', 'ck', 'id');
select segment.create_tag('ck', 'ck_low', 'v < 3');
select segment.create_tag('ck', 'ck_w', 'w = 0');
select segment.create_scheme('ck', 'ck_tier', array[['top', 'v >= 8'], ['mid', 'v >= 4'], ['base', 'true']]);
select count(*) from segment.refresh('ck');
select segment.enable_live('ck');
SQL

live_ok() {   # live count of ck_low and of a bucket = plain SQL
  local got want
  got=$(q -c "select segment.count('ck', 'ck_low') || ' ' || segment.count('ck', 'ck_tier.top') || ' ' || segment.count('ck', 'not ck_low')")
  want=$(q -c "select count(*) filter (where v < 3) || ' ' || count(*) filter (where v >= 8) || ' ' || count(*) filter (where not v < 3 or v is null) from ck")
  [[ $got == "$want" ]]; ok $? "$1: live counts = plain SQL (live $got, SQL $want)"
}

# --- 1 + 2: two writers, different customers ---------------------------------
( q -c "begin" -c "update ck set v = 0 where id between 1 and 500" -c "select pg_sleep(3)" -c "commit" >/dev/null ) &
a=$!
sleep 0.8
start=$(date +%s%N)
out=$(q -c "set lock_timeout = '1s'" -c "update ck set v = 0 where id between 10001 and 10500" \
        -c "update ck set v = 9 where id = 15001" -c "insert into ck values (30001, 1, 0)" \
        -c "delete from ck where id = 15002" 2>&1)
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[[ $rc == 0 ]]; ok $? "B's UPDATE/INSERT/DELETE of other customers finished under lock_timeout while A is open (${ms} ms) $out"
(( ms < 2500 )); ok $? "B did not wait for A (${ms} ms)"
seen=$(q -c "select segment.has_tag('ck', 10001, 'ck_low')::text || segment.has_tag('ck', 5, 'ck_low')::text || segment.has_tag('ck', 30001, 'ck_low')::text || coalesce(segment.bucket_of('ck', 15002, 'ck_tier'), 'none')")
[[ $seen == truefalsetruenone ]]; ok $? "readers see B's committed changes and not A's open ones (got $seen)"
wait "$a"
seen=$(q -c "select segment.has_tag('ck', 5, 'ck_low')")
[[ $seen == t ]]; ok $? "readers see A's change right after its commit"
live_ok "after both writers"

# --- 3a: a writer open before the refresh, committing while it waits ----------
( q -c "begin" -c "update ck set v = 0, w = 0 where id between 501 and 520" -c "update ck set v = 9 where id = 1" \
    -c "select pg_sleep(2)" -c "commit" >/dev/null ) &
a=$!
sleep 0.7
q -c "select count(*) from segment.refresh('ck')" >/dev/null
rc=$?
wait "$a"
[[ $rc == 0 ]]; ok $? "refresh ran while a writer was open"
rows=$(q -c "select count(*) from segment.live_member where member_id = 1 or member_id between 501 and 520")
[[ $rows == 21 ]]; ok $? "the refresh kept the overlay rows of the writer it did not see (got $rows of 21)"
live_ok "writer open across a refresh"

# --- 3b: a writer starting while the refresh transaction is open --------------
q -c "select count(*) from segment.refresh('ck')" >/dev/null
( q -c "begin" -c "select count(*) from segment.refresh('ck')" -c "select pg_sleep(2)" -c "commit" >/dev/null ) &
r=$!
sleep 0.8
out=$(q -c "set lock_timeout = '1s'" -c "update ck set v = 0 where id between 2001 and 2010" 2>&1)
rc=$?
wait "$r"
[[ $rc == 0 ]]; ok $? "a writer of customers without overlay rows is not blocked by an open refresh $out"
live_ok "writer committed during a refresh"
q -c "select count(*) from segment.refresh('ck')" >/dev/null
left=$(q -c "select count(*) from segment.live_member")
[[ $left == 0 ]]; ok $? "a later refresh folds everything (left $left)"
live_ok "after the last refresh"

echo "1..$n"
exit $fail
