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
#   (e3) the plain-SQL peer: what a bank would write without segment, an
#        AFTER INSERT ... FOR EACH ROW trigger in PL/pgSQL that inserts a
#        lead into its own table unless the customer had one in the last 30
#        days (NOT EXISTS on an index), for the same events (no audience,
#        contact cap, control group or generation log).
# BENCH_EVENT_SECONDS (default 30) a side, in BENCH_EVENT_SLICES (default 3)
# interleaved slices (off, on, on, off, off, on) so that the load other jobs
# put on the machine falls on both sides; tps = transactions / seconds per
# side (e3 in its own slices after them). Targets: (e2) >= 1,000 tps and
# (e2) / (e1) >= 0.3; (e2) / (e3) is the ratio against a comparable job.
# Then test/bench_events_cpu.sh (backend CPU a transaction, rule off / on)
# unless BENCH_EVENT_CPU=0.
# Environment: BENCH_EVENT_SECONDS, BENCH_EVENT_SLICES, BENCH_EVENT_CPU, PG*.
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
drop table if exists dw.bench_peer_lead;
create table dw.bench_peer_lead (lead_id bigserial primary key, customer_id int8 not null,
                                 period date not null, created_at timestamptz not null default now());
create index on dw.bench_peer_lead (customer_id, period);
create or replace function dw.bench_peer_lead() returns trigger language plpgsql as $f$
begin
    if new.kind = 'loan_failed' and new.amount > 0
       and not exists (select 1 from dw.bench_peer_lead l
                        where l.customer_id = new.customer_id and l.period > current_date - 30) then
        insert into dw.bench_peer_lead (customer_id, period) values (new.customer_id, current_date);
    end if;
    return null;
end $f$;
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
declare -A txs=([off]=0 [on]=0 [peer]=0) dur=([off]=0 [on]=0 [peer]=0)
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
"${Q[@]}" -c "create trigger bench_peer after insert on dw.bench_oltp_events for each row execute function dw.bench_peer_lead()" >/dev/null
for ((i = 0; i < slices; i++)); do run_slice peer; done
"${Q[@]}" -c "drop trigger bench_peer on dw.bench_oltp_events" >/dev/null
made=$("${Q[@]}" -c "select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id) where r.name = 'bench_oltp_event'")

echo
echo "== Event rule, OLTP: pgbench, 2 clients, one event INSERT per transaction, $slices x $slice s a side"
awk -v n0="${txs[off]}" -v t0="${dur[off]}" -v n1="${txs[on]}" -v t1="${dur[on]}" -v made="$made" \
    -v n2="${txs[peer]}" -v t2="${dur[peer]}" 'BEGIN {
  a = n0 / t0; b = n1 / t1; c = n2 / t2
  printf "%-58s %10s %10s\n", "step", "tps", "ratio"
  printf "%-58s %10.0f %10.2f\n", "(e1) no event rule (" n0 " transactions)", a, 1
  printf "%-58s %10.0f %10.2f\n", "(e2) event rule, a lead per new customer (" n1 " tx)", b, b / a
  printf "%-58s %10.0f %10.2f\n", "(e3) plain-SQL peer: a row trigger, NOT EXISTS (" n2 " tx)", c, c / a
  printf "(e2) / (e3): %.2f\n", b / c
  printf "check: (e2) made %d leads for %d events\n", made, n1 }'
if [[ ${BENCH_EVENT_CPU:-1} != 0 ]]; then
  bash "$(dirname "$0")/bench_events_cpu.sh"
fi
