#!/bin/bash
# bench_events.sh: one-row event transactions through an event rule (issue 15
# item 4), run by test/bench.sh on its bank (subject "customer", tag t001):
#   (e1) pgbench, 2 clients (-j 2), a custom script: each transaction one
#        INSERT of an event (loan_failed, a random customer) into
#        dw.bench_oltp_events, with no event rule on the table;
#   (e2) the same with an event rule attached whose audience is every
#        customer (t001 or not t001) and whose condition holds: each event
#        makes a lead in its transaction (cool-down, contact cap, control
#        group and assignment as generate(); a customer drawn twice is in
#        cool-down the second time).
# BENCH_EVENT_SECONDS (default 30) a side, in BENCH_EVENT_SLICES (default 3)
# interleaved slices (off, on, on, off, off, on) so that the load other jobs
# put on the machine falls on both sides; tps = transactions / seconds per
# side. Targets: (e2) >= 1,000 tps and (e2) / (e1) >= 0.3.
# Environment: BENCH_EVENT_SECONDS, BENCH_EVENT_SLICES, PG* (connection).
set -euo pipefail

secs=${BENCH_EVENT_SECONDS:-30}
slices=${BENCH_EVENT_SLICES:-3}
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
P=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)
Q=(psql -X -q -At -v ON_ERROR_STOP=1)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/segment-bench-events.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

command -v pgbench >/dev/null || { echo "bench events: pgbench not found; skipped"; exit 0; }
rows=$("${Q[@]}" -c "select count(*) from dw.customer_wide")
"${P[@]}" >/dev/null <<'SQL'
do $$ begin
  if exists (select from segment.event_rule e join segment.opportunity_rule r using (rule_id) where r.name = 'bench_oltp_event') then
    perform segment.detach_event_rule('bench_oltp_event', 'dw.bench_oltp_events');
  end if;
  if exists (select from segment.opportunity_rule where name = 'bench_oltp_event') then
    perform segment.drop_opportunity_rule('bench_oltp_event', true);
  end if;
end $$;
-- the generation bench before this one deleted its ~1.7M leads: without a
-- rebuild the planner prices the bloated (rule, member, period) index too
-- high and scans the BRIN index on period instead, 1-2 s per event
reindex table segment.opportunity;
vacuum analyze segment.opportunity;
drop table if exists dw.bench_oltp_events;
create table dw.bench_oltp_events (event_id bigserial primary key, customer_id int8 not null,
                                   kind text not null, amount numeric, at timestamptz not null default now());
select segment.create_opportunity_rule('customer', 'bench_oltp_event', 't001 or not t001',
                                       'mining', 'loan', assignment => 'pool', cooldown_days => 30);
SQL
cat > "$tmp/event.sql" <<SQL
\set id random(1, $rows)
insert into dw.bench_oltp_events (customer_id, kind, amount) values (:id, 'loan_failed', 1000);
SQL

slice=$(( (secs + slices - 1) / slices ))
declare -A txs=([off]=0 [on]=0) dur=([off]=0 [on]=0)
run_slice() {
  local out n t
  "${Q[@]}" -c "checkpoint" >/dev/null
  out=$(pgbench -n -c 2 -j 2 -T "$slice" -f "$tmp/event.sql" 2>/dev/null)
  n=$(awk '/^number of transactions actually processed:/ { print $NF; exit }' <<<"$out")
  t=$(awk -v n="$n" '/^tps = / { printf "%.3f", n / $3; exit }' <<<"$out")
  txs[$1]=$(( ${txs[$1]} + n )); dur[$1]=$(awk -v a="${dur[$1]}" -v b="$t" 'BEGIN { print a + b }')
}
rule() {
  if [[ $1 == on ]]; then
    "${Q[@]}" -c "select segment.attach_event_rule('bench_oltp_event', 'dw.bench_oltp_events', 'customer_id', 'kind = ''loan_failed'' and amount > 0')" >/dev/null
  else
    "${Q[@]}" -c "select segment.detach_event_rule('bench_oltp_event', 'dw.bench_oltp_events')" >/dev/null
  fi
}
state=off
for ((i = 0; i < 2 * slices; i++)); do
  if (( (i / 2) % 2 == 0 )); then side=$([[ $((i % 2)) == 0 ]] && echo off || echo on)
  else side=$([[ $((i % 2)) == 0 ]] && echo on || echo off); fi
  if [[ $side != "$state" ]]; then rule "$side"; state=$side; fi
  run_slice "$side"
done
[[ $state == off ]] || rule off
made=$("${Q[@]}" -c "select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id) where r.name = 'bench_oltp_event'")

echo
echo "== Event rule, OLTP: pgbench, 2 clients, one event INSERT per transaction, $slices x $slice s a side"
awk -v n0="${txs[off]}" -v t0="${dur[off]}" -v n1="${txs[on]}" -v t1="${dur[on]}" -v made="$made" 'BEGIN {
  a = n0 / t0; b = n1 / t1
  printf "%-58s %10s %10s\n", "step", "tps", "ratio"
  printf "%-58s %10.0f %10.2f\n", "(e1) no event rule (" n0 " transactions)", a, 1
  printf "%-58s %10.0f %10.2f\n", "(e2) event rule, a lead per new customer (" n1 " tx)", b, b / a
  printf "check: (e2) made %d leads for %d events\n", made, n1 }'
