#!/bin/bash
# bench_events_cpu.sh: backend CPU time of one-row event transactions
# (issue 15 item 4), steadier than bench_events.sh's wall-clock rates on a
# shared machine. Run after bench_events.sh on its bank (it leaves the rule
# bench_oltp_event and the table dw.bench_oltp_events), as a superuser.
#   pgbench -n -c 2 -j 2 -t N per side with bench_events.sh's INSERT; the two
#   backends' utime + stime from /proc/<pid>/stat, sampled until they exit,
#   per transaction; sides off (no event rule), on (the rule attached, every
#   event a lead unless its customer is in cool-down), on, off per round.
# Prints microseconds of backend CPU per transaction per side and the ratio
# off / on of the sums (what the bare insert's rate would be over the rule's
# on a machine bound by CPU).
# Environment: N (5000), ROUNDS (2), PG* for the connection.
set -euo pipefail

n=${N:-5000}
rounds=${ROUNDS:-2}
Q=(psql -X -q -At -v ON_ERROR_STOP=1)
rows=$("${Q[@]}" -c "select count(*) from dw.customer_wide")
tck=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/segment-bench-events-cpu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/event.sql" <<SQL
\\set id random(1, $rows)
insert into dw.bench_oltp_events (customer_id, kind, amount) values (:id, 'loan_failed', 1000);
SQL
rule() {
  if [[ $1 == on ]]; then
    "${Q[@]}" -c "select segment.attach_event_rule('bench_oltp_event', 'dw.bench_oltp_events', 'customer_id', 'kind = ''loan_failed'' and amount > 0')" >/dev/null
  else
    "${Q[@]}" -c "select segment.detach_event_rule('bench_oltp_event', 'dw.bench_oltp_events')" >/dev/null
  fi
}
. "$(dirname "$0")/bench_cpu.sh"   # pgbench_ticks

echo
echo "== Event rule, backend CPU: $((2 * n)) one-row event INSERTs a slice, $rounds rounds"
declare -A ticks=([off]=0 [on]=0)
state=on
"${Q[@]}" -c "select 1 from segment.event_rule e join segment.opportunity_rule r using (rule_id) where r.name = 'bench_oltp_event'" | grep -q 1 || state=off
for ((r = 1; r <= rounds; r++)); do
  for side in off on on off; do
    [[ $side != "$state" ]] && { rule "$side"; state=$side; }
    t=$(pgbench_ticks "$tmp/event.sql" "$n")
    ticks[$side]=$(( ${ticks[$side]} + t ))
    awk -v t="$t" -v hz="$tck" -v n="$n" -v s="$side" 'BEGIN { printf "event rule %-3s %8.1f us a transaction\n", s, t / hz / (2 * n) * 1e6 }'
  done
done
[[ $state == off ]] || rule off
awk -v a="${ticks[off]}" -v b="${ticks[on]}" 'BEGIN { printf "CPU a transaction, off / on: %.2f (target >= 0.3)\n", a / b }'
