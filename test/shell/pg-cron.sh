#!/bin/bash
# pg-cron.sh: the nightly run really runs under pg_cron in the test cluster.
# In the database pg_cron runs jobs from (cron.database_name, `postgres` in
# the test cluster): the error before CREATE EXTENSION pg_cron (when this
# script creates it), then segment.schedule / unschedule round trips, a
# rejected cron expression, and a job every minute that must show up as
# succeeded in cron.job_run_details and as a succeeded run in segment's log,
# joined in segment.nightly_history. Waits at most CRON_WAIT seconds
# (default 150) for it. Everything it creates is dropped again (later tests
# share that database), except pg_cron's extension itself, which stays
# created: dropping and re-creating it strands pg_cron 1.4's launcher. Prints TAP; needs PGHOST/PGPORT of a cluster started
# with shared_preload_libraries=pg_cron (test/with-cluster.sh).
set -uo pipefail

n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
export PGOPTIONS="-c client_min_messages=warning"

crondb=$(psql -X -At -d postgres -c "select current_setting('cron.database_name', true)")
if [[ -z $crondb ]]; then
  echo "not ok 1 - pg_cron is not preloaded in this cluster (shared_preload_libraries=pg_cron, see test/with-cluster.sh)"
  echo "1..1"; exit 1
fi
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$crondb" "$@"; }
job=segment-test-$$
schema=cron_test_$$
wait_s=${CRON_WAIT:-150}

had_cron=$(q -c "select count(*) from pg_extension where extname = 'pg_cron'")
had_segment=$(q -c "select count(*) from pg_extension where extname = 'segment'")
had_schema=$(q -c "select count(*) from pg_namespace where nspname = 'segment'")
jobid=
cleanup() {
  [[ -n $jobid ]] && q -c "delete from cron.job_run_details where jobid = $jobid" >/dev/null 2>&1
  q -c "select cron.unschedule(jobid) from cron.job where jobname = '$job'" >/dev/null 2>&1
  if [[ $had_segment == 0 ]]; then
    q -c "drop extension if exists segment cascade" >/dev/null 2>&1
    [[ $had_schema == 0 ]] && q -c "drop schema if exists segment" >/dev/null 2>&1
  else
    q -c "select segment.unregister_subject('$schema')" >/dev/null 2>&1
  fi
  q -c "drop schema if exists $schema cascade" >/dev/null 2>&1
  # pg_cron's extension stays once created: with pg_cron 1.4 a DROP and a
  # later CREATE EXTENSION leave the launcher without jobs until a restart
}
trap cleanup EXIT

[[ $had_segment == 0 ]] && q -c "create extension segment"

# --- the error before pg_cron's extension exists -----------------------------
if [[ $had_cron == 0 ]]; then
  out=$(q -c "select segment.schedule('$job')" 2>&1)
  grep -q 'extension "pg_cron" is not installed' <<<"$out" && grep -q 'HINT:  Run CREATE EXTENSION pg_cron;' <<<"$out"
  ok $? "before CREATE EXTENSION pg_cron, schedule says to run it ($(head -1 <<<"$out"))"
  q -c "do \$\$ begin perform segment.unschedule('$job'); exception when object_not_in_prerequisite_state then null; end \$\$"
  ok $? "unschedule fails with SQLSTATE 55000 too"
  q -c "create extension pg_cron"
else
  echo "# pg_cron already exists in $crondb: the not-created error is tested in test/sql/090_schedule.sql only"
fi

# --- a subject for the job to refresh ----------------------------------------
q >/dev/null <<SQL
create schema $schema;
create table $schema.c (id int8 primary key, v int);
insert into $schema.c select g, g % 10 from generate_series(1, 1000) g;
select segment.register_subject('$schema', '$schema.c', 'id');
select segment.create_tag('$schema', '${schema}_low', 'v < 3');
SQL
first_run=$(q -c "select coalesce(max(run_id), 0) from segment.nightly_run")

# --- schedule / unschedule round trip ------------------------------------------
jobid=$(q -c "select segment.schedule('$job', '0 3 * * *')")
row=$(q -c "select schedule || '|' || command || '|' || database || '|' || (username = current_user) from cron.job where jobid = $jobid and jobname = '$job'")
[[ $row == "0 3 * * *|CALL segment.run_all()|$crondb|true" ]]; ok $? "schedule creates the pg_cron job ($row)"
again=$(q -c "select segment.schedule('$job', '* * * * *')")
row=$(q -c "select count(*) || '|' || min(schedule) from cron.job where jobname = '$job'")
[[ $again == "$jobid" && $row == "1|* * * * *" ]]; ok $? "scheduling the same name again changes its schedule ($again, $row)"
out=$(q -c "select segment.schedule('$job', 'every full moon')" 2>&1)
row=$(q -c "select schedule from cron.job where jobname = '$job'")
[[ $out == *"invalid schedule"* && $row == "* * * * *" ]]; ok $? "a bad cron expression is refused and changes nothing ($(head -1 <<<"$out"))"
[[ $(q -c "select segment.unschedule('$job')") == t && $(q -c "select count(*) from cron.job where jobname = '$job'") == 0 ]]
ok $? "unschedule removes the job and returns true"
[[ $(q -c "select segment.unschedule('$job')") == f ]]; ok $? "unscheduling it again returns false"

# --- the job really runs -------------------------------------------------------
jobid=$(q -c "select segment.schedule('$job', '* * * * *')")
if [[ $(q -c "show cron.use_background_workers") != on ]]; then
  # pg_cron connects over libpq to cron.host (localhost): with password
  # authentication that fails, so point this job at the Unix socket instead
  sock=$(q -c "select split_part(current_setting('unix_socket_directories'), ',', 1)")
  q -c "update cron.job set nodename = '$sock' where jobid = $jobid"
  echo "# cron.use_background_workers is off: the job connects through $sock"
fi
echo "# waiting up to ${wait_s}s for job $jobid (schedule '* * * * *') to run"
status=
for ((i = 0; i < wait_s; i++)); do
  status=$(q -c "select status from cron.job_run_details where jobid = $jobid and status in ('succeeded', 'failed') order by runid limit 1")
  [[ -n $status ]] && break
  sleep 1
done
details=$(q -c "select status || ' / ' || coalesce(return_message, '') from cron.job_run_details where jobid = $jobid order by runid limit 1")
[[ $status == succeeded ]]; ok $? "pg_cron ran the job: $details (after ${i}s)"
run=$(q -c "select r.run_id || '|' || r.status || '|' || r.as_of || '|' || (r.as_of = current_date)
              from segment.nightly_run r join cron.job_run_details d on d.job_pid = r.backend_pid
             where d.jobid = $jobid and r.run_id > $first_run order by r.run_id limit 1")
[[ $run == *"|succeeded|"*"|true" ]]; ok $? "segment's log has the run pg_cron started, for today ($run)"
run_id=${run%%|*}
steps=$(q -c "select string_agg(step || ':' || status, ',' order by step_no) from segment.nightly_step where run_id = '$run_id' and (subject is null or subject = '$schema')")
[[ $steps == "refresh:succeeded,expire:succeeded,evaluate_outcomes:succeeded,generate:succeeded,size_snapshots:succeeded,advance_journeys:succeeded" ]]
ok $? "all its steps succeeded ($steps)"
members=$(q -c "select segment.count('$schema', '${schema}_low')")
[[ $members == 300 ]]; ok $? "the job refreshed the subject ($members members)"
hist=$(q -c "select status || '|' || cron_status || '|' || (cron_jobid = $jobid) from segment.nightly_history where run_id = '$run_id'")
[[ $hist == "succeeded|succeeded|true" ]]; ok $? "nightly_history joins the run with cron.job_run_details ($hist)"

[[ $(q -c "select segment.unschedule('$job')") == t ]]; ok $? "unschedule the test job"
# let a run that started meanwhile finish before dropping what it reads
for ((i = 0; i < 60; i++)); do
  [[ $(q -c "select count(*) from cron.job_run_details where jobid = $jobid and status in ('starting', 'running')") == 0 ]] && break
  sleep 1
done

echo "1..$n"
exit $fail
