#!/bin/bash
# bench_audience.sh: audiences against pg_roaringbitmap, the audience part of
# `make bench` (test/bench.sh calls it after its own audience lines; it also
# runs on its own, generating the bank and refreshing the tags when missing).
#
# The peer (issue 15): pg_roaringbitmap (Apache-2.0, ../shared/tools/
# install-roaringbitmap), a bench peer only, never a dependency of segment.
# When it is not installed the peer lines say so and segment's are printed
# alone. The peer's state is what a PostgreSQL user would build instead of
# segment: ONE SQL pass over dw.customer_wide with one
#     rb_build_agg(customer_id::int) filter (where (rule) is true)
# per tag (the same rule text, segment.as_of() as a date literal), stored in
# bench.rb (tag name primary key, bm roaringbitmap). An audience is then
#     counts:  select rb_cardinality(<rb_and / rb_or / rb_andnot of
#              (select bm from bench.rb where tag = 'tNNN') ...>)
#     members: select count(*) from rb_iterate(<the same expression>)
# and segment's
#     counts:  select segment.count('customer', '<audience>')
#     members: select count(*) from segment.members('customer', '<audience>')
# Member lists are timed twice on segment's side: streamed (the default: a
# Segment Member Scan returns the rows one at a time, src/members_scan.c)
# and with segment.stream_members off (a function scan: every row into a
# tuplestore and back, as the peer's rb_iterate); the "off" columns.
# for a 2-, a 4- and an 8-tag audience. Both sides answer the same question
# from stored bitmaps; the member counts are compared (check: line).
#
# Warm: one backend, a warm-up call, then BENCH_AUDIENCE_REPS (default 21)
#   interleaved rounds.
# Cold: the first call in a new backend (a new psql connection per call, so
#   the library load, catalog caches, plans and any backend-local cache start
#   empty), BENCH_COLD_REPS (default 7) interleaved rounds. Each round also
#   times "select 1" as a new backend's first statement (the cold floor:
#   what any first statement pays, whichever extension), and the cold "net"
#   column is the ratio of both sides less it. What a first call pays
#   depends on which libraries the postmaster preloaded (a preloaded library
#   is not loaded by the backend): the tables say which were
#   (shared_preload_libraries). `make bench` preloads pg_cron and segment,
#   as docs/dba-guide.md recommends, and the peer as shipped (not preloaded).
# Each line reports the best round and the median (as the rest of make bench,
# the best one is what the code costs; the median says how loaded the
# machine was).
# Times are psql's \timing (client-observed, one round trip included); each
# warm round also times "select 1", and the "net" column is the ratio of both
# sides less that round trip. A server-side table comes first: pgbench with
# prepared statements, each statement alone in its backend for a few seconds.
# The two disagree about the peer: alone in a backend, its calls pay page
# faults for their large allocations at every call (perf: memset in
# exc_page_fault; glibc maps and unmaps them), and after one large
# allocation in the backend (glibc then raises its mmap threshold, as the
# interleaved psql rounds do) the same call is several times faster. The psql
# table is the one less favourable to segment and the one to quote.
#
# Environment: ROWS (1000000, used when the bank is generated), TAGS (60),
#   BENCH_AS_OF (current_date), BENCH_SEED (0.42), BENCH_AUDIENCE_REPS,
#   BENCH_COLD_REPS, PG* variables.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rows=${ROWS:-1000000}
ntags=${TAGS:-60}
wreps=${BENCH_AUDIENCE_REPS:-21}
creps=${BENCH_COLD_REPS:-7}
seed=${BENCH_SEED:-0.42}
P=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)
Q=(psql -X -q -At -v ON_ERROR_STOP=1)
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
as_of=${BENCH_AS_OF:-$("${Q[@]}" -c 'select current_date')}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/segment-bench-aud.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
(( ntags >= 18 )) || { echo "bench_audience: TAGS must be at least 18 (the audiences use t001..t018)" >&2; exit 2; }

# ---------------------------------------------------------------- set-up
"${P[@]}" -c 'create extension if not exists segment'
if [[ $("${Q[@]}" -c "select to_regclass('dw.customer_wide') is not null") != t ]]; then
  "${P[@]}" -f "$here/data/bank.sql"
  "${P[@]}" -f "$here/data/bench_tags.sql"
  t0=$(now)
  "${Q[@]}" -c "select dw.generate_bank($rows, '$as_of', $seed)" >/dev/null
  echo "bench_audience: generated $rows customers in $(secs "$t0" "$(now)") s"
  "${P[@]}" -c 'vacuum analyze dw.customer_wide'
fi
"${P[@]}" -f "$here/data/bench_tags.sql" >/dev/null
rows=$("${Q[@]}" -c 'select count(*) from dw.customer_wide')
if [[ $("${Q[@]}" -c "select count(*) from segment.tag t join segment.subject s using (subject_id)
                        join segment.tag_state st using (tag_id)
                       where s.name = 'customer' and t.name in ('t001', 't018')") != 2 ]]; then
  "${P[@]}" >/dev/null <<SQL
do \$\$ begin
  if not exists (select from segment.subject where name = 'customer') then
    perform segment.register_subject('customer', 'dw.customer_wide', 'customer_id', 'sub_branch_id', 'manager_id');
  end if;
end \$\$;
select dw.bench_define_tags($ntags, 'customer');
select count(*) from segment.refresh('customer', '$as_of');
SQL
fi

peer=no
if "${Q[@]}" -c "select 1 from pg_available_extensions where name = 'roaringbitmap'" | grep -qx 1; then
  peer=yes
  lit="'$as_of'::date"
  "${Q[@]}" -o "$tmp/rules.tsv" -F $'\t' -c \
    "select tag_no, tag, replace(rule, 'segment.as_of()', \$q\$$lit\$q\$) from dw.bench_rules($ntags) order by tag_no"
  {
    echo 'create extension if not exists roaringbitmap;'
    echo 'drop schema if exists bench_rb cascade;'
    echo 'create schema bench_rb;'
    echo 'create table bench_rb.rb (tag name primary key, bm roaringbitmap not null);'
    echo 'insert into bench_rb.rb select t.tag, coalesce(t.bm, rb_build(array[]::int[])) from (select'
    awk -F'\t' '{ printf "%s  rb_build_agg(customer_id::int) filter (where (%s) is true) as b%d", (NR > 1 ? ",\n" : ""), $3, $1 }' "$tmp/rules.tsv"
    echo
    echo '  from dw.customer_wide) x, lateral (values'
    awk -F'\t' '{ printf "%s  (%s::name, x.b%d)", (NR > 1 ? ",\n" : ""), "'\''" $2 "'\''", $1 }' "$tmp/rules.tsv"
    echo ') t(tag, bm);'
    echo 'vacuum analyze bench_rb.rb;'
  } > "$tmp/peer.sql"
  t0=$(now)
  "${P[@]}" -f "$tmp/peer.sql" >/dev/null
  echo "bench_audience: pg_roaringbitmap peer state (one SQL pass, $ntags rb_build_agg) built in $(secs "$t0" "$(now)") s"
else
  echo "bench_audience: pg_roaringbitmap is not installed (../shared/tools/install-roaringbitmap); segment lines only"
fi

# ---------------------------------------------------------------- audiences
b() { echo "(select bm from bench_rb.rb where tag = '$1')"; }
names=(2 4 8)
aud[2]="t001 and t003"
rbx[2]="rb_and($(b t001), $(b t003))"
aud[4]="t001 and t002 and not t011 or t018"
rbx[4]="rb_or(rb_andnot(rb_and($(b t001), $(b t002)), $(b t011)), $(b t018))"
aud[8]="t001 and t003 and not t011 and (t004 or t005 or t010) and not t006 or t018"
rbx[8]="rb_or(rb_andnot(rb_and(rb_andnot(rb_and($(b t001), $(b t003)), $(b t011)), rb_or(rb_or($(b t004), $(b t005)), $(b t010))), $(b t006)), $(b t018))"

seg_count() { echo "select segment.count('customer', '${aud[$1]}');"; }
seg_members() { echo "select count(*) from segment.members('customer', '${aud[$1]}');"; }
# the same with segment.stream_members off (the function scan), in psql's warm rounds
seg_members_off() {
  echo '\echo @@ warmup 0'; echo 'set segment.stream_members = off;'
  echo "\\echo @@ so$1 $2"; seg_members "$1"
  echo '\echo @@ warmup 0'; echo 'reset segment.stream_members;'
}
rb_count() { echo "select rb_cardinality(${rbx[$1]});"; }
rb_members() { echo "select count(*) from rb_iterate(${rbx[$1]});"; }

preloaded=$("${Q[@]}" -c 'show shared_preload_libraries')
preload_says() {  # library -> yes/no
  tr ', ' '\n\n' <<<"$preloaded" | grep -qx "$1" && echo yes || echo no
}
preload_line="shared_preload_libraries = '$preloaded' (segment preloaded: $(preload_says segment), pg_roaringbitmap preloaded: $(preload_says roaringbitmap))"
echo
echo "== Audiences against pg_roaringbitmap: $rows customers, warm: $wreps rounds in one backend, cold: $creps rounds of a new backend per call"
echo "   $preload_line"
check=ok
for n in "${names[@]}"; do
  sc=$("${Q[@]}" -c "$(seg_count "$n")"); sm=$("${Q[@]}" -c "$(seg_members "$n")")
  line="$n tags: ${aud[$n]}: segment count $sc, members $sm"
  if [[ $peer == yes ]]; then
    rc=$("${Q[@]}" -c "$(rb_count "$n")"); rm_=$("${Q[@]}" -c "$(rb_members "$n")")
    line+="; pg_roaringbitmap $rc, $rm_"
    [[ $sc == "$rc" && $sm == "$rm_" && $sc == "$sm" ]] || check=MISMATCH
  fi
  echo "   $line"
done
echo "check: segment and pg_roaringbitmap agree on every audience: $check"

# warm: one backend, interleaved rounds
{
  echo '\timing on'
  echo '\o /dev/null'
  echo '\echo @@ warmup 0'
  for n in "${names[@]}"; do
    seg_count "$n"; seg_members "$n"; seg_members_off "$n" 0
    [[ $peer == no ]] || { rb_count "$n"; rb_members "$n"; }
  done
  for ((r = 1; r <= wreps; r++)); do
    echo "\\echo @@ f1 $r"; echo 'select 1;'
    for n in "${names[@]}"; do
      echo "\\echo @@ sc$n $r"; seg_count "$n"
      echo "\\echo @@ sm$n $r"; seg_members "$n"
      seg_members_off "$n" "$r"
      if [[ $peer == yes ]]; then
        echo "\\echo @@ rc$n $r"; rb_count "$n"
        echo "\\echo @@ rm$n $r"; rb_members "$n"
      fi
    done
  done
} > "$tmp/warm.sql"
"${P[@]}" -f "$tmp/warm.sql" > "$tmp/warm.out"

# cold: a new backend per call
: > "$tmp/cold.out"
for ((r = 1; r <= creps; r++)); do
  # the cold floor: the first statement of a new backend that loads neither
  # extension ("select 1")
  echo "@@ f1 $r" >> "$tmp/cold.out"
  "${P[@]}" -c '\timing on' -c '\o /dev/null' -c 'select 1' >> "$tmp/cold.out"
  for n in "${names[@]}"; do
    for k in sc sm rc rm; do
      [[ $peer == no && $k == r* ]] && continue
      case $k in
        sc) q=$(seg_count "$n") ;; sm) q=$(seg_members "$n") ;;
        rc) q=$(rb_count "$n") ;; rm) q=$(rb_members "$n") ;;
      esac
      echo "@@ $k$n $r" >> "$tmp/cold.out"
      "${P[@]}" -c '\timing on' -c '\o /dev/null' -c "$q" >> "$tmp/cold.out"
    done
  done
done

# the best and the median of each step's times
stats() {
  awk '/^@@ /{ step = $2; next } /^Time: /{ if (step != "warmup") print step, $2 }' "$1" | sort -k1,1 -k2,2g |
    awk '{ v[$1, ++n[$1]] = $2 }
         END { for (k in n) { c = n[k]; m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2; printf "%s %.3f %.3f\n", k, v[k, 1], m } }'
}
stats "$tmp/warm.out" > "$tmp/warm.txt"
stats "$tmp/cold.out" > "$tmp/cold.txt"
get() { awk -v k="$2" -v c="${3:-2}" '$1 == k { print $c }' "$tmp/$1.txt"; }
table() {  # column (2 best, 3 median), title
  echo "$2"
  printf '%-28s %12s %12s %8s %8s %12s %12s %8s %8s %12s %8s\n' "" "warm ms" "" "" "" "cold ms" "" "" "" "warm, off" ""
  printf '%-28s %12s %12s %8s %8s %12s %12s %8s %8s %12s %8s\n' "audience" "segment" "pg_rb" "ratio" "net" "segment" "pg_rb" "ratio" "net" "segment" "ratio"
  printf '%-28s %12s %12s %8s %8s %12s %12s %8s %8s %12s %8s\n' "--------" "-------" "-----" "-----" "---" "-------" "-----" "-----" "---" "-------" "-----"
  for n in "${names[@]}"; do
    for what in count members; do
      k=${what:0:1}; s=s$k$n; p=r$k$n
      awk -v l="$n tags, $what" -v sw="$(get warm "$s" "$1")" -v pw="$(get warm "$p" "$1")" -v f="$(get warm f1 "$1")" \
          -v sc="$(get cold "$s" "$1")" -v pc="$(get cold "$p" "$1")" -v cf="$(get cold f1 "$1")" \
          -v so="$( [[ $k == m ]] && get warm so$n "$1" || true)" 'BEGIN {
        printf "%-28s %12.3f %12s %8s %8s %12.3f %12s %8s %8s %12s %8s\n", l, sw,
          (pw == "" ? "n/a" : sprintf("%.3f", pw)), (pw == "" ? "n/a" : sprintf("%.2f", sw / pw)),
          (pw == "" || pw <= f ? "n/a" : sprintf("%.2f", (sw - f) / (pw - f))),
          sc, (pc == "" ? "n/a" : sprintf("%.3f", pc)), (pc == "" ? "n/a" : sprintf("%.2f", sc / pc)),
          (pc == "" || pc <= cf ? "n/a" : sprintf("%.2f", (sc - cf) / (pc - cf))),
          (so == "" ? "" : sprintf("%.3f", so)), (so == "" || pw == "" ? "" : sprintf("%.2f", so / pw)) }'
    done
  done
  echo "(warm round trip, psql 'select 1' in the same rounds: $(get warm f1 "$1") ms; net = both sides less it;"
  echo " cold floor, 'select 1' as a new backend's first statement: $(get cold f1 "$1") ms; cold net = both sides less it;"
  echo " cold: $preload_line;"
  echo " warm, off: member lists with segment.stream_members off, the function scan, and its ratio to the peer)"
}
# server side: pgbench, one client, prepared statements, each statement for
# BENCH_PGBENCH_SECONDS in BENCH_PGBENCH_ROUNDS interleaved rounds; no psql in
# the way, so a ratio is what the two extensions cost plus one round trip
# (printed as the floor: "select 1"). Member lists also get the executor's
# own floor: count(*) over generate_series of as many rows.
pgsecs=${BENCH_PGBENCH_SECONDS:-3}
pgrounds=${BENCH_PGBENCH_ROUNDS:-2}
pg_lat() {  # sql [extra PGOPTIONS] -> average latency in ms
  printf '%s\n' "$1" > "$tmp/pgb.sql"
  PGOPTIONS="$PGOPTIONS ${2:-}" pgbench -n -M prepared -c 1 -T "$pgsecs" -f "$tmp/pgb.sql" 2>/dev/null | awk '/^latency average/ { print $4 }'
}
if command -v pgbench >/dev/null; then
  : > "$tmp/pgb.out"
  for ((r = 1; r <= pgrounds; r++)); do
    echo "floor $(pg_lat 'select 1;')" >> "$tmp/pgb.out"
    for n in "${names[@]}"; do
      echo "sc$n $(pg_lat "$(seg_count "$n")")" >> "$tmp/pgb.out"
      echo "sm$n $(pg_lat "$(seg_members "$n")")" >> "$tmp/pgb.out"
      echo "so$n $(pg_lat "$(seg_members "$n")" "-c segment.stream_members=off")" >> "$tmp/pgb.out"
      echo "gm$n $(pg_lat "select count(*) from generate_series(1::int8, $("${Q[@]}" -c "$(seg_count "$n")"));")" >> "$tmp/pgb.out"
      if [[ $peer == yes ]]; then
        echo "rc$n $(pg_lat "$(rb_count "$n")")" >> "$tmp/pgb.out"
        echo "rm$n $(pg_lat "$(rb_members "$n")")" >> "$tmp/pgb.out"
      fi
    done
  done
  sort -k1,1 -k2,2g "$tmp/pgb.out" | awk '!seen[$1]++' > "$tmp/pgb.txt"
  pg() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/pgb.txt"; }
  echo "server side (pgbench -M prepared, 1 client, ${pgsecs} s x $pgrounds rounds, best average latency; round trip floor 'select 1' $(pg floor) ms)"
  echo "(net ratio: both sides less the round trip, i.e. what each extension's call costs on the server)"
  echo "(members: segment streamed, the default; off: segment.stream_members off, the function scan, and its ratio)"
  printf '%-28s %12s %12s %8s %10s %24s %12s %10s\n' "audience" "segment ms" "pg_rb ms" "ratio" "net ratio" "floor (generate_series)" "off ms" "off ratio"
  for n in "${names[@]}"; do
    for what in count members; do
      k=${what:0:1}
      awk -v l="$n tags, $what" -v s="$(pg s$k$n)" -v p="$(pg r$k$n)" -v f="$(pg floor)" -v g="$( [[ $k == m ]] && pg gm$n || true)" \
          -v o="$( [[ $k == m ]] && pg so$n || true)" 'BEGIN {
        printf "%-28s %12.3f %12s %8s %10s %24s %12s %10s\n", l, s, (p == "" ? "n/a" : sprintf("%.3f", p)),
          (p == "" ? "n/a" : sprintf("%.2f", s / p)), (p == "" || p <= f ? "n/a" : sprintf("%.2f", (s - f) / (p - f))),
          (g == "" ? "" : sprintf("%.3f", g)), (o == "" ? "" : sprintf("%.3f", o)), (o == "" || p == "" ? "" : sprintf("%.2f", o / p)) }'
    done
  done
  echo
fi
# backend CPU per call (steadier than latencies on a shared machine): one
# backend, BENCH_CPU_CALLS (default 200) calls of each member list in a
# PL/pgSQL loop (EXECUTE: parsed and planned each time, on both sides), the
# backend's utime + stime from /proc/self/stat before and after; segment
# streamed, segment with stream_members off, the peer; BENCH_CPU_ROUNDS (2)
# interleaved rounds, the lowest of each. Needs a superuser (pg_read_file).
cpu_calls=${BENCH_CPU_CALLS:-200}
cpu_rounds=${BENCH_CPU_ROUNDS:-2}
if [[ $("${Q[@]}" -c "select rolsuper from pg_roles where rolname = current_user") == t ]]; then
  {
    echo "create function pg_temp.cpu_ms(q text, n int, stream text) returns float8 language plpgsql as \$\$"
    echo "declare st text; t0 float8; t1 float8;"
    echo "begin"
    echo "  perform set_config('segment.stream_members', stream, false);"
    echo "  st := split_part(pg_read_file('/proc/self/stat'), ') ', 2);"
    echo "  t0 := split_part(st, ' ', 12)::float8 + split_part(st, ' ', 13)::float8;"
    echo "  for i in 1..n loop execute q; end loop;"
    echo "  st := split_part(pg_read_file('/proc/self/stat'), ') ', 2);"
    echo "  t1 := split_part(st, ' ', 12)::float8 + split_part(st, ' ', 13)::float8;"
    echo "  perform set_config('segment.stream_members', 'on', false);"
    echo "  return (t1 - t0) * 1000.0 / $(getconf CLK_TCK) / n;"
    echo "end \$\$;"
    for n in "${names[@]}"; do   # warm-up
      echo "select 'warm', pg_temp.cpu_ms(\$q\$$(seg_members "$n")\$q\$, 3, 'on');"
      [[ $peer == no ]] || echo "select 'warm', pg_temp.cpu_ms(\$q\$$(rb_members "$n")\$q\$, 3, 'on');"
    done
    for ((r = 1; r <= cpu_rounds; r++)); do
      for n in "${names[@]}"; do
        echo "select 'sm$n', pg_temp.cpu_ms(\$q\$$(seg_members "$n")\$q\$, $cpu_calls, 'on');"
        echo "select 'so$n', pg_temp.cpu_ms(\$q\$$(seg_members "$n")\$q\$, $cpu_calls, 'off');"
        [[ $peer == no ]] || echo "select 'rm$n', pg_temp.cpu_ms(\$q\$$(rb_members "$n")\$q\$, $cpu_calls, 'on');"
      done
    done
  } > "$tmp/cpu.sql"
  "${Q[@]}" -F ' ' -f "$tmp/cpu.sql" | grep -v '^warm' | sort -k1,1 -k2,2g | awk '!seen[$1]++' > "$tmp/cpu.txt"
  cpu() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/cpu.txt"; }
  echo "member lists, backend CPU ms per call (one backend, $cpu_calls calls a line in a PL/pgSQL loop, $cpu_rounds rounds, the lowest)"
  printf '%-28s %12s %12s %12s %10s %10s\n' "audience" "streamed" "off" "pg_rb" "ratio" "off ratio"
  for n in "${names[@]}"; do
    awk -v l="$n tags, members" -v s="$(cpu sm$n)" -v o="$(cpu so$n)" -v p="$(cpu rm$n)" 'BEGIN {
      printf "%-28s %12.3f %12.3f %12s %10s %10s\n", l, s, o, (p == "" ? "n/a" : sprintf("%.3f", p)),
        (p == "" || p == 0 ? "n/a" : sprintf("%.2f", s / p)), (p == "" || p == 0 ? "n/a" : sprintf("%.2f", o / p)) }'
  done
  echo
fi
table 2 "best of each (what the code costs)"
table 3 "median of each"
echo "(ratio = segment / pg_roaringbitmap; issue 15's target: <= 0.50)"
echo "load average while it ran: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
