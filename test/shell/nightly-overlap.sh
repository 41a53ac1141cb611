#!/bin/bash
# nightly-overlap.sh: segment.run_all from several connections at once.
#   1. While run A is busy (its refresh waits for a table lock another
#      session holds), run B from a second connection must return at once,
#      recorded as 'skipped: another run in progress'; A then finishes.
#   2. A run cancelled in the middle of a step (pg_cancel_backend, as a
#      statement_timeout or pg_cron's cancel would) records the step as
#      failed with 57014, skips the rest, releases the lock and reports
#      the cancel to its caller; the next run proceeds.
#   3. A run whose session is terminated (pg_terminate_backend, like a
#      crash) leaves its log 'running'; the next run marks it abandoned.
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

# --- 1. overlapping runs --------------------------------------------------
hold_table; ok $? "a third session holds table ov"
PGAPPNAME=run_a q -c "call segment.run_all('2026-03-01')" >"$tmp/a.out" 2>&1 &
a=$!
wait_for "$run_lock_held and exists (select 1 from segment.nightly_step where status = 'running')" 100
ok $? "run A holds the run lock and waits in its refresh step"
start=$(date +%s%N)
b_out=$(PGOPTIONS="-c client_min_messages=notice" PGAPPNAME=run_b q -c "call segment.run_all('2026-03-01')" 2>&1)
b_rc=$?
b_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[[ $b_rc == 0 ]]; ok $? "run B returns cleanly (exit $b_rc: $(tr '\n' ' ' <<<"$b_out"))"
(( b_ms < 5000 )); ok $? "run B does not wait for A (${b_ms} ms)"
grep -q 'skipped: another run is in progress' <<<"$b_out"; ok $? "run B says it was skipped"
b_id=$(tail -1 <<<"$b_out")
a_id=$(q -c "select run_id from segment.nightly_run where client = 'run_a'")
row=$(q -c "select status || '|' || error from segment.nightly_run where run_id = '$b_id'")
[[ $row == "skipped|skipped: another run in progress (run $a_id, pid "* ]]; ok $? "B's log row: $row"
[[ $(q -c "select count(*) from segment.nightly_step where run_id = '$b_id'") == 0 ]]; ok $? "B ran no step"
[[ $(q -c "select status from segment.nightly_run where run_id = '$a_id'") == running ]]; ok $? "A is still running"
release_table
wait "$a"; a_rc=$?
[[ $a_rc == 0 ]]; ok $? "run A finishes after the lock is released (exit $a_rc: $(tr '\n' ' ' <"$tmp/a.out"))"
row=$(q -c "select r.status || ' ' || string_agg(t.status, ',' order by t.step_no) from segment.nightly_run r
             join segment.nightly_step t using (run_id) where r.run_id = '$a_id' group by r.status")
[[ $row == "succeeded succeeded,succeeded,succeeded,succeeded,succeeded,succeeded" ]]; ok $? "A succeeded with all 6 steps ($row)"
wait_for "not $run_lock_held" 50; ok $? "the run lock is free again"

# --- 2. a cancelled run -----------------------------------------------------
hold_table
PGAPPNAME=run_c q -c "call segment.run_all('2026-03-02')" >"$tmp/c.out" 2>&1 &
c=$!
wait_for "$run_lock_held and exists (select 1 from segment.nightly_step where status = 'running')" 100
q -c "select pg_cancel_backend(pid) from pg_stat_activity where application_name = 'run_c'" >/dev/null
wait "$c"; c_rc=$?
release_table
[[ $c_rc != 0 ]] && grep -q 'was cancelled during step refresh:ov' "$tmp/c.out"
ok $? "the cancelled run reports the cancel to its caller ($(tr '\n' ' ' <"$tmp/c.out"))"
c_id=$(q -c "select run_id from segment.nightly_run where client = 'run_c'")
row=$(q -c "select r.status || ' ' || string_agg(t.status || coalesce(':' || t.sqlstate, ''), ',' order by t.step_no)
              from segment.nightly_run r join segment.nightly_step t using (run_id) where r.run_id = '$c_id' group by r.status")
[[ $row == "failed failed:57014,skipped,skipped,skipped,skipped,skipped" ]]; ok $? "its log survives: step failed with 57014, rest skipped ($row)"
wait_for "not $run_lock_held" 50; ok $? "the cancelled run released the run lock"
out=$(PGAPPNAME=run_d q -c "call segment.run_all('2026-03-02')" 2>&1)
[[ $(q -c "select status from segment.nightly_run where client = 'run_d'") == succeeded ]]; ok $? "the next run succeeds ($out)"

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
[[ $(q -c "select count(*) from segment.nightly_run") == 6 ]]; ok $? "every run is in the log (A to F: 6)"

echo "1..$n"
exit $fail
