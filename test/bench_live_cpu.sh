#!/bin/bash
# bench_live_cpu.sh: backend CPU time of live maintenance's two bench lines,
# steadier than wall-clock rates on a shared machine (docs/performance.md,
# OLTP write paths). Run on the bank bench_live.sh made (subject "customer"),
# as a superuser (the bulk part reads /proc/self/stat with pg_read_file).
#   (l3) pgbench -n -c 2 -j 2 -t N per side with the one-row UPDATE script of
#        bench_live.sh; the two backends' utime + stime from /proc/<pid>/stat,
#        sampled until they exit, per transaction; sides off, on, on, off per
#        round, a refresh before each round; ratio off / on of the sums.
#   (l1) the UPDATE of every 10th customer, the backend's own CPU around it:
#        live off, on, and the no-op NEW TABLE trigger (floor); a refresh and
#        a VACUUM before each; ratios on / off and floor / off of the sums.
# Environment: N (10000), ROUNDS (2), BULK_ROUNDS (3), PG* for the
# connection; PGOPTIONS as for bench_live.sh (e.g. -c synchronous_commit=off).
set -euo pipefail

n=${N:-10000}
rounds=${ROUNDS:-2}
bulk_rounds=${BULK_ROUNDS:-3}
Q=(psql -X -q -At -v ON_ERROR_STOP=1)
rows=$("${Q[@]}" -c "select max(customer_id) from dw.customer_wide")
tck=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/segment-bench-live-cpu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
live() { "${Q[@]}" -c "do \$\$ begin perform segment.${1}_live('customer'); exception when others then null; end \$\$" >/dev/null; }

cat > "$tmp/one.sql" <<SQL
\\set id random(1, $rows)
update dw.customer_wide set current_balance = current_balance + 1 where customer_id = :id;
SQL

. "$(dirname "$0")/bench_cpu.sh"   # pgbench_ticks

echo
echo "== Live maintenance, backend CPU: (l3) $((2 * n)) one-row UPDATEs a slice, $rounds rounds; (l1) $bulk_rounds rounds"
declare -A ticks=([off]=0 [on]=0)
for ((r = 1; r <= rounds; r++)); do
  "${Q[@]}" -c "select count(*) from segment.refresh('customer')" >/dev/null
  for side in off on on off; do
    if [[ $side == on ]]; then live enable; else live disable; fi
    t=$(pgbench_ticks "$tmp/one.sql" "$n")
    ticks[$side]=$(( ${ticks[$side]} + t ))
    awk -v t="$t" -v hz="$tck" -v n="$n" -v s="$side" 'BEGIN { printf "(l3) live %-3s %8.1f us a transaction\n", s, t / hz / (2 * n) * 1e6 }'
  done
done
live disable
awk -v a="${ticks[off]}" -v b="${ticks[on]}" 'BEGIN { printf "(l3) CPU a transaction, off / on: %.2f (target >= 0.7)\n", a / b }'

upd="update dw.customer_wide set current_balance = current_balance + 1, txn_count_30d = coalesce(txn_count_30d, 0) + 1 where customer_id % 10 = 0;"
cpu="select (split_part(pg_read_file('/proc/self/stat'), ' ', 14)::bigint + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::bigint) * 1000 / $tck as c \\gset"
{
  echo "create or replace function dw.bench_noop() returns trigger language plpgsql as \$\$ begin return null; end \$\$;"
  echo "drop trigger if exists bench_floor on dw.customer_wide;"
  for ((r = 1; r <= bulk_rounds; r++)); do
    for side in off on floor; do
      echo "select count(*) from segment.refresh('customer') \\gset"
      [[ $side == on ]] && echo "select segment.enable_live('customer') \\gset"
      [[ $side == floor ]] && echo 'create trigger bench_floor after update on dw.customer_wide referencing new table as n for each statement execute function dw.bench_noop();'
      echo "vacuum dw.customer_wide;"
      echo "$cpu"; echo "\\set c0 :c"
      echo "$upd"
      echo "$cpu"
      echo "select '$side', :c - :c0, (select count(*) from segment.live_member);"
      [[ $side == on ]] && echo "select segment.disable_live('customer') \\gset"
      [[ $side == floor ]] && echo 'drop trigger bench_floor on dw.customer_wide;'
    done
  done
} > "$tmp/bulk.sql"
live disable
PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" "${Q[@]}" -F ' ' -f "$tmp/bulk.sql" | grep -E '^(off|on|floor) ' > "$tmp/bulk.out"
awk '{ printf "(l1) %-5s %6d ms CPU, overlay rows after: %d\n", $1, $2, $3; sum[$1] += $2 }
     END { printf "(l1) CPU on / off: %.2f (target <= 1.2), floor / off: %.2f\n", sum["on"] / sum["off"], sum["floor"] / sum["off"] }' "$tmp/bulk.out"
