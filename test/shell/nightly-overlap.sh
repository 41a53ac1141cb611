#!/bin/bash
# nightly-overlap.sh: a run of segment.run_all whose session is terminated
# (pg_terminate_backend, like a crash) leaves its log 'running' and frees the
# run lock; the next run marks it abandoned and succeeds itself.
# This stays a shell test because isolationtester cannot go on once one of
# its sessions is killed. Overlapping runs (one skipped) and a run cancelled
# mid-step are the isolationtester spec test/specs/nightly_overlap.spec.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_nightly_overlap_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# wait until the SQL condition $1 is true, at most $2 tenths of a second
wait_for() {
  local i
  for ((i = 0; i < $2; i++)); do
    [[ $(q -c "select ($1)::int") == 1 ]] && return 0
    sleep 0.1
  done
  return 1
}
# a session that holds an exclusive lock on table ov until cancelled
hold_table() {
  PGAPPNAME=ov_holder q -c "begin" -c "lock table ov in access exclusive mode" -c "select pg_sleep(60)" >/dev/null 2>&1 &
  holder=$!
  wait_for "exists (select 1 from pg_locks l join pg_stat_activity a using (pid)
                     where a.application_name = 'ov_holder' and l.relation = 'ov'::regclass and l.granted)" 100
}
release_table() {
  q -c "select pg_cancel_backend(pid) from pg_stat_activity where application_name = 'ov_holder' and datname = current_database()" >/dev/null
  wait "$holder" 2>/dev/null
}
run_lock_held="exists (select 1 from pg_locks where locktype = 'advisory' and classid = 24177 and objid = 0 and granted)"

export PGOPTIONS="-c client_min_messages=warning"
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
tmp=$(mktemp -d)
trap 'q -c "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()" >/dev/null 2>&1; dropdb --if-exists "$db" >/dev/null 2>&1; rm -rf "$tmp"' EXIT

q >/dev/null <<'SQL'
create extension segment;
create table ov (id int8 primary key, v int);
insert into ov select g, g % 10 from generate_series(1, 5000) g;
select segment.register_subject('ov', 'ov', 'id');
select segment.create_tag('ov', 'ov_low', 'v < 3');
SQL

# --- 3. a terminated session ------------------------------------------------
hold_table
PGAPPNAME=run_e q -c "call segment.run_all('2026-03-03')" >"$tmp/e.out" 2>&1 &
e=$!
wait_for "$run_lock_held and exists (select 1 from segment.nightly_step where status = 'running')" 100
q -c "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'run_e'" >/dev/null
wait "$e"
release_table
e_id=$(q -c "select run_id from segment.nightly_run where client = 'run_e'")
[[ $(q -c "select status from segment.nightly_run where run_id = '$e_id'") == running ]]; ok $? "a terminated run's log stays 'running'"
wait_for "not $run_lock_held" 50; ok $? "the session's end released the run lock"
PGAPPNAME=run_f q -c "call segment.run_all('2026-03-03')" >/dev/null 2>&1
row=$(q -c "select r.status || ' ' || string_agg(t.status, ',' order by t.step_no)
              from segment.nightly_run r join segment.nightly_step t using (run_id) where r.run_id = '$e_id' group by r.status")
[[ $row == "abandoned abandoned,skipped,skipped,skipped,skipped,skipped" ]]; ok $? "the next run marks it abandoned ($row)"
[[ $(q -c "select status from segment.nightly_run where client = 'run_f'") == succeeded ]]; ok $? "and succeeds itself"
[[ $(q -c "select count(*) from segment.nightly_run") == 2 ]]; ok $? "every run is in the log (E and F: 2)"

echo "1..$n"
exit $fail
