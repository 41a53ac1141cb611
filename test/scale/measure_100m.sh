#!/bin/bash
# measure_100m.sh: issue 15 items 6 and 7 on the table of gen_100m.sh (run it first, same connection):
# the day's 100M-row leaf dw.snap100_d0 registered as a plain subject with the 60 bench tags;
# the floor scan (count(*) where num_nulls(<every column the tags read>) >= 0), serial and parallel,
# interleaved with segment.refresh serial and parallel; the 4-tag audience count (psql best of 11
# and pgbench); peak memory of one refresh in a fresh backend (VmHWM - RssShmem, needs the server's
# /proc, i.e. run it on the server's machine).
# Connection: PGHOST, PGPORT, PGDATABASE, PGUSER. Drops and re-creates extension segment there.
set -euo pipefail
Q="psql -X -v ON_ERROR_STOP=1 -P pager=off"
D=${BENCH_AS_OF:-2026-12-07}
echo "== $(date +%T) $($Q -At -c 'show shared_buffers') shared_buffers, max_parallel_workers_per_gather $($Q -At -c 'show max_parallel_workers_per_gather')"
$Q -q -c "drop extension if exists segment cascade" -c "create extension segment" -c "set client_min_messages=warning" \
   -c "select segment.register_subject('plain', 'dw.snap100_d0', 'customer_id', 'sub_branch_id', 'manager_id')" \
   -c "select count(segment.create_tag('plain', r.tag, r.rule)) from dw.bench_rules(60) r" >/dev/null
cols=$($Q -At -c "select string_agg(distinct quote_ident(c), ', ') from segment.tag t, unnest(t.columns) c")
floor="select count(*) from dw.snap100_d0 where num_nulls($cols) >= 0;"
step() { # label settings sql
  local t0 l; t0=$(date +%s.%N); l=$(cut -d' ' -f1 /proc/loadavg)
  out=$($Q -At -c "$2" -c "$3" 2>&1 | tail -1)
  printf '%-40s %8.1f s   load %s   -> %s\n' "$1" "$(echo "$(date +%s.%N) - $t0" | bc)" "$l" "$out"
}
R="select sum(members) from segment.refresh('plain', '$D');"
step "floor, parallel" "set max_parallel_workers_per_gather=2" "$floor"
step "refresh, parallel (default)" "set max_parallel_workers_per_gather=2" "$R"
step "floor, serial" "set max_parallel_workers_per_gather=0" "$floor"
step "refresh, serial" "set max_parallel_workers_per_gather=0" "$R"
step "refresh, parallel (default)" "set max_parallel_workers_per_gather=2" "$R"
step "floor, parallel" "set max_parallel_workers_per_gather=2" "$floor"
aud="t001 and t002 and not t011 or t018"
$Q -At -c "select 'members', segment.count('plain', '$aud')"
echo "4-tag count, psql \\timing, best and median of 11:"
{ echo '\timing on'; for i in $(seq 12); do echo "select segment.count('plain', '$aud');"; done; } | $Q -At 2>&1 | grep Time | tail -11 | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print "best", a[1], "ms, median", a[6], "ms"}'
echo "select segment.count('plain', '$aud');" > /tmp/aud100.sql
pgbench -n -f /tmp/aud100.sql -T 10 -c 1 2>&1 | grep -E "latency|tps"
cat > /tmp/big_mem.sql <<SQL
select pg_backend_pid() as pid \gset
\setenv BPID :pid
\timing on
$R
\timing off
\! grep -E 'VmHWM|RssShmem' /proc/\$BPID/status | tr -s ' \t' ' ' | tr '\n' ' '; echo
SQL
echo "peak memory of one parallel refresh in a fresh backend:"; $Q -f /tmp/big_mem.sql 2>&1 | grep -E 'Time|VmHWM'
$Q -At -c "select 'member sets stored', pg_size_pretty(sum(pg_column_size(members))) from segment.tag_state"
echo "== $(date +%T) done"
