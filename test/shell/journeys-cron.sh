#!/bin/bash
# journeys-cron.sh: segment.schedule_journeys() under a real pg_cron. In the
# database pg_cron runs jobs from (cron.database_name): a journey with a
# day-0 step over 100 customers, the advance scheduled every minute; within
# CRON_WAIT seconds (default 150) pg_cron's run succeeds and the touches are
# in the outbox. Everything it creates is dropped again (later tests share
# that database); pg_cron's extension stays (see pg-cron.sh). Prints TAP;
# needs PGHOST/PGPORT of a cluster started with shared_preload_libraries=pg_cron.
set -uo pipefail

n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
export PGOPTIONS="-c client_min_messages=warning"

crondb=$(psql -X -At -d postgres -c "select current_setting('cron.database_name', true)")
if [[ -z $crondb ]]; then
  echo "not ok 1 - pg_cron is not preloaded in this cluster (shared_preload_libraries=pg_cron)"
  echo "1..1"; exit 1
fi
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$crondb" "$@"; }
job=segment-journeys-test-$$
schema=jcron_$$
wait_s=${CRON_WAIT:-150}

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
    q -c "select segment.drop_journey('${schema}_j', \"cascade\" => true)" >/dev/null 2>&1
    q -c "delete from segment.channel where name = '${schema}_app'" >/dev/null 2>&1
    q -c "select segment.unregister_subject('$schema')" >/dev/null 2>&1
  fi
  q -c "drop schema if exists $schema cascade" >/dev/null 2>&1
}
trap cleanup EXIT

[[ $had_segment == 0 ]] && q -c "create extension segment"
q -c "create extension if not exists pg_cron"

q >/dev/null <<SQL
create schema $schema;
create table $schema.c (id int8 primary key, name text);
insert into $schema.c select g, 'C' || g from generate_series(1, 100) g;
select segment.register_subject('$schema', '$schema.c', 'id');
select segment.create_tag('$schema', '${schema}_all', 'id > 0');
select count(*) from segment.refresh('$schema');
select segment.set_channel('${schema}_app');
select segment.create_journey('$schema', '${schema}_j', '${schema}_all');
select segment.add_journey_step('${schema}_j', 1, '0 days', '${schema}_app', 'Hello {name}');
SQL

jobid=$(q -c "select segment.schedule_journeys('$job', '* * * * *')")
row=$(q -c "select schedule || '|' || command from cron.job where jobid = '${jobid:-0}' and jobname = '$job'")
[[ $row == "* * * * *|SELECT segment.advance_journeys()" ]]; ok $? "schedule_journeys made the pg_cron job ($row)"
q -c "select segment.schedule_journeys('$job')" >/dev/null
[[ $(q -c "select schedule from cron.job where jobname = '$job'") == "*/5 * * * *" ]]
ok $? "the default schedule is every 5 minutes (same name: the job is replaced)"
q -c "select segment.schedule_journeys('$job', '* * * * *')" >/dev/null

status=
for _ in $(seq 1 "$wait_s"); do
  status=$(q -c "select status from cron.job_run_details where jobid = $jobid and status in ('succeeded', 'failed') order by runid limit 1")
  [[ -n $status ]] && break
  sleep 1
done
[[ $status == succeeded ]]; ok $? "pg_cron ran the advance (status: ${status:-none within $wait_s s})"
[[ $(q -c "select count(*) from segment.outbox where journey = '${schema}_j' and message = 'Hello C' || customer") == 100 ]]
ok $? "the job's advance wrote the 100 day-0 touches"
[[ $(q -c "select segment.unschedule('$job')") == t ]]; ok $? "segment.unschedule removes the job"

echo "1..$n"
exit $fail
