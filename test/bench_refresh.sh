#!/bin/bash
# bench_refresh.sh: segment.refresh against the floor scan (issue 15), a part
# of `make bench` (bench.sh runs it after the tagging lines, on the bank it
# generated; by hand it generates one when missing). In interleaved rounds,
# best of BENCH_REPS, serial (max_parallel_workers_per_gather = 0) and with
# the server's parallel settings:
#   (f)  the floor: select count(*) from dw.customer_wide
#        where num_nulls(<every column the TAGS tags read>) >= 0
#        -- one pass that deforms every row up to the last column the rules
#        read and looks at each of those columns once;
#   (r1) select sum(members) from segment.refresh('customer', as_of), TAGS tags;
#   (r2) the same with 2 x TAGS tags (tags TAGS+1 .. 2 x TAGS are the next
#        rules of dw.bench_rules, switched off with alter_tag for (r1)).
# Prints refresh / floor (target <= 2.0 at 1M x 60 tags) and the 2 x TAGS /
# TAGS ratio (target <= 1.3), serial and parallel, then the peak memory of a
# serial and a parallel refresh in a fresh backend (VmHWM, /proc: the script
# must run on the server's machine). The extra tags are dropped at the end
# and the subject refreshed once more, so later parts see TAGS tags.
# Schemes and scorecards of the subject are switched off for the
# measurement and switched back on after.
# Environment: ROWS (1000000, when generating), TAGS (60), BENCH_REPS (3),
# BENCH_AS_OF, BENCH_SEED, PG* for the connection.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rows=${ROWS:-1000000}
ntags=${TAGS:-60}
reps=${BENCH_REPS:-3}
seed=${BENCH_SEED:-0.42}
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
P=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)
Q=(psql -X -q -At -v ON_ERROR_STOP=1)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/segment-bench-refresh.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export BENCH_TMP=$tmp
as_of=${BENCH_AS_OF:-$("${Q[@]}" -c 'select current_date')}

"${P[@]}" -c 'create extension if not exists segment'
if [[ $("${Q[@]}" -c "select count(*) from segment.subject where name = 'customer'") == 0 ]]; then
  "${P[@]}" -f "$here/data/bank.sql"
  "${P[@]}" -f "$here/data/bench_tags.sql"
  t0=$(date +%s)
  "${Q[@]}" -c "select dw.generate_bank($rows, '$as_of', $seed)" >/dev/null
  echo "bench refresh: generated $rows customers in $(( $(date +%s) - t0 )) s"
  "${Q[@]}" -c "select segment.register_subject('customer', 'dw.customer_wide', 'customer_id', 'sub_branch_id', 'manager_id')" >/dev/null
  "${Q[@]}" -c "select dw.bench_define_tags($ntags)" >/dev/null
  "${P[@]}" -c 'vacuum analyze dw.customer_wide'
fi
rows=$("${Q[@]}" -c "select count(*) from dw.customer_wide")
subject_id=$("${Q[@]}" -c "select subject_id from segment.subject where name = 'customer'")

# schemes and scorecards off for the measurement (back on at the end)
"${Q[@]}" -o "$tmp/restore.sql" -c "
  select format('update segment.scheme set active = true where scheme_id = %s;', scheme_id)
    from segment.scheme where subject_id = $subject_id and active
  union all
  select format('update segment.scorecard set active = true where scorecard_id = %s;', scorecard_id)
    from segment.scorecard where subject_id = $subject_id and active"
"${Q[@]}" -c "update segment.scheme set active = false where subject_id = $subject_id;
              update segment.scorecard set active = false where subject_id = $subject_id" >/dev/null

# the next TAGS rules, as tags of their own
"${Q[@]}" -c "select count(segment.create_tag('customer', r.tag, r.rule, 'bench', 'bench rule: ' || r.shape))
                from dw.bench_rules(2 * $ntags) r
               where r.tag_no > $ntags and not exists (select from segment.tag t where t.name = r.tag)" >/dev/null
extra="select tag from dw.bench_rules(2 * $ntags) where tag_no > $ntags"
# the columns the first n bench tags read: list, count, last attribute number
colq() {
  "${Q[@]}" -c "with c as (select distinct c from segment.tag t, unnest(t.columns) c
                            where t.subject_id = $subject_id and t.name in (select tag from dw.bench_rules($2)))
                select $1 from c join pg_attribute a on a.attrelid = 'dw.customer_wide'::regclass and a.attname = c.c"
}
cols1=$(colq "string_agg(quote_ident(c), ', ' order by c)" "$ntags"); cols2=$(colq "string_agg(quote_ident(c), ', ' order by c)" "2 * $ntags")
ncols1=$(colq "count(*)" "$ntags"); ncols2=$(colq "count(*)" "2 * $ntags")
last1=$(colq "max(a.attnum)" "$ntags"); last2=$(colq "max(a.attnum)" "2 * $ntags")
floor1_sql="select count(*) from dw.customer_wide where num_nulls($cols1) >= 0;"
floor2_sql="select count(*) from dw.customer_wide where num_nulls($cols2) >= 0;"
refresh_sql="select sum(members) from segment.refresh('customer', '$as_of');"
extra_off="select count(segment.alter_tag(tag, active => false)) from ($extra) x;"
extra_on="select count(segment.alter_tag(tag, active => true)) from ($extra) x;"

echo
echo "== Refresh against the floor: $rows customers, $ntags and $((2 * ntags)) tags, best of $reps"
echo "   floor: select count(*) from dw.customer_wide where num_nulls(<every column the tags read>) >= 0"
echo "   $ntags tags read $ncols1 columns (the last is column $last1); $((2 * ntags)) tags read $ncols2 (the last is column $last2)"
# one timed statement; serial ones also record the backend's CPU time
# (/proc/<pid>/schedstat, ns), which other sessions' load disturbs less
step() {  # key rep sql
  echo "\\echo @@ $1 $2"
  [[ $1 == *_serial ]] && echo "\\! echo \"@@cpu $1 $2 b \$(cut -d' ' -f1 /proc/\$BENCH_BPID/schedstat 2>/dev/null)\""
  echo "$3"
  [[ $1 == *_serial ]] && echo "\\! echo \"@@cpu $1 $2 e \$(cut -d' ' -f1 /proc/\$BENCH_BPID/schedstat 2>/dev/null)\""
  return 0
}
{
  echo '\timing on'
  echo 'select pg_backend_pid() as bpid \gset'
  echo '\setenv BENCH_BPID :bpid'
  echo '\o /dev/null'
  echo '\echo @@ skip 0'; echo "$extra_on"
  echo '\echo @@ warmup 0'; echo "$floor2_sql"; echo "$refresh_sql"
  for ((r = 1; r <= reps; r++)); do
    for mode in serial parallel; do
      echo '\echo @@ skip 0'
      if [[ $mode == serial ]]; then echo 'set max_parallel_workers_per_gather = 0;'; else echo 'reset max_parallel_workers_per_gather;'; fi
      step r2_$mode "$r" "$refresh_sql"
      step f2_$mode "$r" "$floor2_sql"
    done
    echo '\echo @@ skip 0'; echo "$extra_off"
    for mode in serial parallel; do
      echo '\echo @@ skip 0'
      if [[ $mode == serial ]]; then echo 'set max_parallel_workers_per_gather = 0;'; else echo 'reset max_parallel_workers_per_gather;'; fi
      step r1_$mode "$r" "$refresh_sql"
      step f1_$mode "$r" "$floor1_sql"
    done
    echo '\echo @@ skip 0'; echo "$extra_on"
  done
  echo '\echo @@ skip 0'; echo 'reset max_parallel_workers_per_gather;'
} > "$tmp/refresh.sql"
workers=$("${Q[@]}" -c "select setting from pg_settings where name = 'max_parallel_workers_per_gather'")
load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)
"${P[@]}" -f "$tmp/refresh.sql" > "$tmp/refresh.out"
load1=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)

# best (minimum over rounds) of each step, in ms
awk '/^@@ /{ step = $2; rep = $3; next }
     /^Time: /{ s[step " " rep] += $2 }
     END { for (k in s) { split(k, p, " "); if (!(p[1] in b) || s[k] < b[p[1]]) b[p[1]] = s[k] }
           for (k in b) printf "%s %.3f\n", k, b[k] }' "$tmp/refresh.out" > "$tmp/best.txt"
ms() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/best.txt"; }
# least CPU time (ms) of each serial step's rounds
awk '$1 == "@@cpu" && $5 != "" { if ($4 == "b") b[$2 " " $3] = $5; else if (($2 " " $3) in b) {
       v = ($5 - b[$2 " " $3]) / 1e6; if (!($2 in m) || v < m[$2]) m[$2] = v } }
     END { for (k in m) printf "%s %.3f\n", k, m[k] }' "$tmp/refresh.out" > "$tmp/cpu.txt"
cpu() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/cpu.txt"; }
f1_s=$(ms f1_serial); f1_p=$(ms f1_parallel); f2_s=$(ms f2_serial); f2_p=$(ms f2_parallel)
r1_s=$(ms r1_serial); r2_s=$(ms r2_serial); r1_p=$(ms r1_parallel); r2_p=$(ms r2_parallel)
printf '%-50s %10s %10s %16s\n' "step" "seconds" "x floor" "x serial floor"
printf '%-50s %10s %10s %16s\n' "----" "-------" "-------" "--------------"
line() {  # label ms floor_ms serial_floor_ms
  awk -v l="$1" -v v="$2" -v f="$3" -v fs="$4" 'BEGIN { printf "%-50s %10.3f %10.2f %16.2f\n", l, v / 1000, v / f, v / fs }'
}
line "(f1) floor of the $ntags tags' columns, serial" "$f1_s" "$f1_s" "$f1_s"
line "(r1) segment.refresh, $ntags tags, serial" "$r1_s" "$f1_s" "$f1_s"
line "(f2) floor of the $((2 * ntags)) tags' columns, serial" "$f2_s" "$f2_s" "$f2_s"
line "(r2) segment.refresh, $((2 * ntags)) tags, serial" "$r2_s" "$f2_s" "$f2_s"
line "(f1) floor, $ntags tags' columns, parallel" "$f1_p" "$f1_p" "$f1_s"
line "(r1) segment.refresh, $ntags tags, parallel" "$r1_p" "$f1_p" "$f1_s"
line "(f2) floor, $((2 * ntags)) tags' columns, parallel" "$f2_p" "$f2_p" "$f2_s"
line "(r2) segment.refresh, $((2 * ntags)) tags, parallel" "$r2_p" "$f2_p" "$f2_s"
awk -v f="$f1_s" -v r1="$r1_s" -v r2="$r2_s" -v fp="$f1_p" -v p1="$r1_p" -v p2="$r2_p" -v n="$ntags" 'BEGIN {
  printf "refresh / floor, %d tags, serial:          %.2f   (target <= 2.0)\n", n, r1 / f
  printf "refresh / floor, %d tags, parallel:        %.2f   (parallel refresh / serial floor: %.2f)\n", n, p1 / fp, p1 / f
  printf "refresh %d tags / %d tags, serial:        %.2f   (target <= 1.3)\n", 2 * n, n, r2 / r1
  printf "refresh %d tags / %d tags, parallel:      %.2f\n", 2 * n, n, p2 / p1 }'
if [[ -s $tmp/cpu.txt ]]; then
  awk -v f1="$(cpu f1_serial)" -v r1="$(cpu r1_serial)" -v f2="$(cpu f2_serial)" -v r2="$(cpu r2_serial)" -v n="$ntags" 'BEGIN {
    printf "backend CPU time, serial (least of the rounds): floor %.3f s, refresh %d tags %.3f s; floor %.3f s, refresh %d tags %.3f s\n", f1 / 1000, n, r1 / 1000, f2 / 1000, 2 * n, r2 / 1000
    printf "refresh / floor, %d tags, serial, CPU time:  %.2f\n", n, r1 / f1
    printf "refresh %d tags / %d tags, serial, CPU time: %.2f\n", 2 * n, n, r2 / r1 }'
fi
echo "parallel: max_parallel_workers_per_gather = $workers; load average before / after: $load0 / $load1 ($(nproc 2>/dev/null || echo '?') cores)"

# peak memory of one refresh in a fresh backend (the leader only when parallel)
memrun() {  # key settings
  "${P[@]}" > /dev/null <<SQL
select pg_backend_pid() as pid \\gset
\\setenv BPID :pid
$2
\\! cat /proc/\$BPID/status > "\$BENCH_TMP/$1.before" 2>/dev/null || true
$refresh_sql
\\! cat /proc/\$BPID/status > "\$BENCH_TMP/$1.after" 2>/dev/null || true
SQL
}
kb() { awk -v k="$2:" '$1 == k { print $2 }' "$tmp/$1" 2>/dev/null; }
mline() {
  local hwm0 hwm shm
  hwm0=$(kb "$2.before" VmHWM); hwm=$(kb "$2.after" VmHWM); shm=$(kb "$2.after" RssShmem)
  if [[ -z $hwm ]]; then printf '%-44s %s\n' "$1" "n/a (no /proc for the server's backend here)"; return; fi
  awk -v l="$1" -v h0="$hwm0" -v h="$hwm" -v s="$shm" \
    'BEGIN { printf "%-44s %12.1f %12.1f %12.1f %14.1f\n", l, h0 / 1024, h / 1024, s / 1024, (h - s) / 1024 }'
}
"${Q[@]}" -c "$extra_off" >/dev/null
memrun serial 'set max_parallel_workers_per_gather = 0;'
memrun parallel ''
sets=$("${Q[@]}" -c "select pg_size_pretty(sum(pg_column_size(s.members))) from segment.tag_state s join segment.tag t using (tag_id) where t.subject_id = $subject_id and t.active")
printf '%-44s %12s %12s %12s %14s\n' "refresh, $ntags tags, fresh backend" "VmHWM start" "VmHWM end" "RssShmem" "private peak"
printf '%-44s %12s %12s %12s %14s\n' "" "MB" "MB" "MB" "~MB"
mline "serial" serial
mline "parallel (the leader)" parallel
echo "member sets of the $ntags tags (sum of pg_column_size): $sets"

# back to TAGS tags, state refreshed; schemes and scorecards as they were
"${Q[@]}" -c "select count(segment.drop_tag(tag)) from ($extra) x" >/dev/null
[[ -s $tmp/restore.sql ]] && "${Q[@]}" -f "$tmp/restore.sql" >/dev/null
"${Q[@]}" -c "$refresh_sql" >/dev/null
