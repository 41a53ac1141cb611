#!/bin/bash
# snapshot-nightly.sh: the nightly run (CALL segment.run_all(as_of), a
# procedure that commits per step, so not testable inside pgTAP's
# transaction) over a daily snapshot subject.
#   1. The day's partition exists (pre-created) but the ETL has not loaded it:
#      the run fails at the subject's refresh step with P0002 naming the day
#      and yesterday's snapshot, skips the later steps, and refreshes nothing
#      (no segment.run row, the state stays on yesterday's snapshot).
#   2. After the load, the same run succeeds and reads the day's partition
#      only (segment.run.snapshot_date and read_relations).
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_snapshot_nightly_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
is() {
  n=$((n + 1))
  if [[ "$1" == "$2" ]]; then echo "ok $n - $3"
  else echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"; fail=1; fi
}
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT

createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
q >/dev/null <<'SQL' || { echo "not ok 1 - set-up"; exit 1; }
set client_min_messages = warning;
create extension segment;
create table daily (data_dt date not null, customer_id bigint not null, aum numeric,
                    primary key (data_dt, customer_id)) partition by range (data_dt);
create table daily_1206 partition of daily for values from ('2026-12-06') to ('2026-12-07');
create table daily_1207 partition of daily for values from ('2026-12-07') to ('2026-12-08');
insert into daily select '2026-12-06', g, g * 100 from generate_series(1, 5000) g;
select segment.register_subject('snap', 'daily', 'customer_id', snapshot_column => 'data_dt');
select segment.create_tag('snap', 'snap_rich', 'aum >= 250000');
select count(*) from segment.refresh('snap', '2026-12-06');
SQL

# 1. the day is not loaded yet
q -c "call segment.run_all('2026-12-07')" >/dev/null 2>&1
run=$(q -c "select max(run_id) from segment.nightly_run")
is "$(q -c "select status from segment.nightly_run where run_id = $run")" "failed" \
   "run_all for a day whose snapshot is not loaded ends failed"
is "$(q -c "select step || ':' || subject || ' ' || status || ' ' || sqlstate from segment.nightly_step
             where run_id = $run and status = 'failed'")" "refresh:snap failed P0002" \
   "the snapshot subject's refresh step failed with P0002"
is "$(q -c "select error from segment.nightly_step where run_id = $run and status = 'failed'")" \
   'subject "snap": the snapshot of 2026-12-07 is not loaded yet' \
   "its error names the subject and the missing day"
ok "$(q -c "select error_detail like '%The newest snapshot is 2026-12-06%' from segment.nightly_step
             where run_id = $run and status = 'failed'" | grep -qx t; echo $?)" \
   "its detail names the newest snapshot there is"
is "$(q -c "select string_agg(distinct status, ',') || ' x' || count(*) from segment.nightly_step
             where run_id = $run and step_no > (select step_no from segment.nightly_step
                                                 where run_id = $run and status = 'failed')")" \
   "skipped x5" "the later steps were skipped (expire, outcomes, generate, sizes, journeys)"
is "$(q -c "select count(*) from segment.run r join segment.subject s using (subject_id)
             where s.name = 'snap' and r.snapshot_date = '2026-12-06'")" "1" \
   "yesterday's snapshot was not refreshed again"
is "$(q -c "select as_of from segment.subject_state st join segment.subject s using (subject_id) where s.name = 'snap'")" \
   "2026-12-06" "the current state stays on yesterday's snapshot"

# 2. the ETL loads the day; the run goes through
q -c "insert into daily select '2026-12-07', g, g * 101 from generate_series(1, 5100) g" >/dev/null
q -c "call segment.run_all('2026-12-07')" >/dev/null 2>&1
run=$(q -c "select max(run_id) from segment.nightly_run")
is "$(q -c "select status from segment.nightly_run where run_id = $run")" "succeeded" \
   "after the load the run succeeds"
is "$(q -c "select r.snapshot_date || ' ' || array_to_string(r.read_relations, ',') || ' ' || r.rows_scanned
             from segment.run r join segment.subject s using (subject_id) where s.name = 'snap'
             order by r.run_id desc limit 1")" "2026-12-07 public.daily_1207 5100" \
   "it read the day's partition only"
is "$(q -c "select segment.count('snap', 'snap_rich')")" \
   "$(q -c "select count(*) from daily where data_dt = '2026-12-07' and aum >= 250000")" \
   "the day's members equal plain SQL"
is "$(q -c "select segment.count('snap', 'snap_rich', '2026-12-06')")" \
   "$(q -c "select count(*) from daily where data_dt = '2026-12-06' and aum >= 250000")" \
   "yesterday's snapshot stays readable with as_of"

echo "1..$n"
exit $fail
