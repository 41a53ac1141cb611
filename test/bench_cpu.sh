# bench_cpu.sh: sourced by test/bench_live_cpu.sh and test/bench_events_cpu.sh.
# pgbench_ticks SCRIPT N: runs pgbench -n -c 2 -j 2 -t N -f SCRIPT and prints
# the CPU time (utime + stime, in clock ticks) its two backends used from
# start to exit, sampled from /proc/<pid>/stat until pgbench ends: a
# backend's CPU time, steadier than a wall-clock rate on a shared machine.
# Needs Q (the psql command array) and tmp (a scratch directory); must run on
# the database server's machine.
pgbench_ticks() {
  local script=$1 n=$2 pb pids p v tot=0
  declare -A last=()
  pgbench -n -c 2 -j 2 -t "$n" -f "$script" > "$tmp/pgbench.out" 2>&1 &
  pb=$!
  pids=""
  for _ in $(seq 1 200); do
    pids=$("${Q[@]}" -c "select string_agg(pid::text, ' ') from pg_stat_activity where application_name = 'pgbench' and backend_type = 'client backend'")
    [[ $(wc -w <<<"$pids") == 2 ]] && break
    sleep 0.05
  done
  while kill -0 "$pb" 2>/dev/null; do
    for p in $pids; do
      v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true)
      [[ -n $v ]] && last[$p]=$v
    done
    sleep 0.02
  done
  wait "$pb"
  for p in $pids; do tot=$((tot + ${last[$p]:-0})); done
  echo "$tot"
}
