#!/bin/bash
# concurrent-refresh.sh: two refreshes of one subject never interleave.
# Session A refreshes inside a transaction and holds it open; session B's
# refresh of the same subject must wait (NOTICE), then run on what A
# committed: its entered/exited are counted against A's sets (0 for data
# that did not change), and on a text-keyed subject it must not collide
# with the key map rows A added. Readers see the old sets until A commits.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_concurrency_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

export PGOPTIONS="-c client_min_messages=warning"
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

q >/dev/null <<'SQL'
create extension segment;
create table ck (id int8 primary key, v int);
insert into ck select g, g % 10 from generate_series(1, 20000) g;
create table ct (k text primary key, v int);
insert into ct select 'c-' || g, g % 10 from generate_series(1, 20000) g;
select segment.register_subject('ck', 'ck', 'id');
select segment.register_subject('ct', 'ct', 'k');
select segment.create_tag('ck', 'ck_low', 'v < 3');
select segment.create_tag('ct', 'ct_low', 'v < 3');
SQL

for s in ck ct; do
  # A: first refresh, kept open for 2 s; B starts meanwhile
  ( q -c "begin" -c "select count(*) from segment.refresh('$s')" -c "select pg_sleep(2)" -c "commit" >/dev/null ) &
  a=$!
  sleep 0.7
  before=$(q -c "select count(*) from segment.tag_state s join segment.tag t using (tag_id) where t.name = '${s}_low'")
  out=$(PGOPTIONS="-c client_min_messages=notice" psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" \
          -c "select entered || ' ' || exited || ' ' || members from segment.refresh('$s')" 2>&1)
  rc=$?
  wait "$a"
  [[ $before == 0 ]]; ok $? "$s: readers do not see the open refresh's sets"
  [[ $rc == 0 ]]; ok $? "$s: the second refresh succeeds after waiting ($(tr '\n' ' ' <<<"$out"))"
  grep -q 'waiting for another refresh of subject' <<<"$out"; ok $? "$s: the second refresh said it was waiting"
  [[ $(tail -1 <<<"$out") == "0 0 6000" ]]; ok $? "$s: it counted entered/exited against the first one's sets (got $(tail -1 <<<"$out"))"
done

runs=$(q -c "select count(*) from segment.run")
[[ $runs == 4 ]]; ok $? "four runs logged (got $runs)"
keys=$(q -c "select count(*) from segment.keymap")
[[ $keys == 20000 ]]; ok $? "the key map holds each text key once (got $keys)"

echo "1..$n"
exit $fail
