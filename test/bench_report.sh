#!/bin/bash
# bench_report.sh: how long segment.report() takes on a bank of ROWS
# customers (default 1,000,000) with DAYS days of history (default 30) and
# OPPS opportunities (default 100,000): issue 14, item 5 (target: under 2 s).
#
# Builds, in the current database (PG* variables; `test/with-cluster.sh bash
# test/bench_report.sh` gives a throwaway one):
#   - dw.customer_wide by dw.generate_bank(ROWS), the 63 tags of
#     test/data/tags.sql, the schemes, scorecard and segments of
#     test/data/segmentation.sql;
#   - DAYS nightly runs: CALL segment.run_all(day) for each day (a refresh of
#     every tag, bucket and score: size history, bucket history, run log),
#     with dw.simulate_day moving 1% of customers between days;
#   - OPPS opportunities spread over the days and over 10 rules (20% control),
#     assigned to the customers' managers, worked through the lifecycle
#     (dispatched, started, completed, converted, expired) with their log rows
#     and outcomes, inserted directly (generation is measured elsewhere).
# Then times segment.report() for the whole period, REPS times (default 3),
# unscoped and scoped to one sub-branch, and prints the fastest and slowest.
# Takes 5-10 minutes on 2 cores, mostly the DAYS refreshes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rows=${ROWS:-1000000}
days=${DAYS:-30}
opps=${OPPS:-100000}
reps=${REPS:-3}
P=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)
Q=(psql -X -q -At -v ON_ERROR_STOP=1)
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

d_end=$("${Q[@]}" -c "select current_date")
d0=$("${Q[@]}" -c "select current_date - $days + 1")
echo "== bench_report: $rows customers, $days days ($d0 to $d_end), $opps opportunities"

t=$(now)
"${P[@]}" -c "create extension if not exists segment" -f "$here/data/bank.sql" >/dev/null
"${Q[@]}" -c "select dw.generate_bank($rows, '$d0', 0.42)" >/dev/null
"${P[@]}" -f "$here/data/tags.sql" -f "$here/data/segmentation.sql" >/dev/null
"${P[@]}" -c "vacuum analyze dw.customer_wide" >/dev/null
echo "bank and definitions: $(secs "$t" "$(now)") s"

t=$(now)
for ((i = 0; i < days; i++)); do
  day=$("${Q[@]}" -c "select date '$d0' + $i")
  if (( i > 0 )); then "${Q[@]}" -c "select dw.simulate_day(0.01, '$day', 0.42)" >/dev/null; fi
  "${Q[@]}" -c "call segment.run_all('$day')" >/dev/null
done
echo "$days nightly runs (refresh of 1 subject each): $(secs "$t" "$(now)") s"

t=$(now)
"${P[@]}" >/dev/null <<SQL
select subject_id as sid from segment.subject where name = 'customer' \gset
-- ten rules over every customer (the rules exist only to own opportunities)
select segment.create_tag('customer', 'bench_report_all', 'customer_id is not null');
select segment.create_opportunity_rule('customer', 'bench_report_rule_' || r, 'bench_report_all',
           case when r % 2 = 0 then 'maintenance' else 'mining' end, 'product ' || r,
           holdout_pct => 20, goal => 'has_wealth', assignment => 'pool')
  from generate_series(1, 10) r;
select segment.alter_opportunity_rule(name, active => false)
  from segment.opportunity_rule where name like 'bench_report_rule_%';
create temp table o as
select g, (select min(rule_id) from segment.opportunity_rule where name like 'bench_report_rule_%') + g % 10 as rule_id,
       c.customer_id, c.sub_branch_id, c.manager_id, date '$d0' + (g % $days) as period,
       abs(hashint4(g)) % 100 as h, abs(hashint4(g + 7)) % 100 as h2
  from generate_series(1, $opps) g
  join dw.customer_wide c on c.customer_id = 1 + (hashint4(g * 31) & 2147483647) % $rows;
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, org_unit, manager, assignment, status, converted, amount,
                                 goal_met, evaluated_at)
select o.rule_id, 1, :sid, o.customer_id, o.customer_id::text, o.period, o.period + 6,
       o.h < 20, o.sub_branch_id::text,
       case when o.h >= 20 and o.manager_id is not null then o.manager_id::text end,
       case when o.h < 20 then 'control' when o.manager_id is null then 'pool' else 'owner' end,
       case when o.h < 20 then 'expired' when o.h2 < 50 then 'completed' when o.h2 < 60 then 'cancelled'
            when o.period + 6 >= date '$d_end' then 'dispatched' else 'expired' end,
       case when o.h >= 20 and o.h2 < 50 then o.h2 < 15 end,
       case when o.h >= 20 and o.h2 < 15 then 10000 * (1 + o.h2) end,
       case when o.period + 6 < date '$d_end' then (o.h2 < 15 or abs(hashint4(o.g + 3)) % 100 < 8) end,
       case when o.period + 6 < date '$d_end' then now() end
  from o
 on conflict do nothing;
-- the transitions the statuses imply
insert into segment.opportunity_log (opportunity_id, from_status, to_status, note)
select x.opportunity_id, s.f, s.t, null
  from segment.opportunity x
  cross join lateral (values ('generated', 'dispatched', 1), ('dispatched', 'in_progress', 2),
                             ('in_progress', 'completed', 3), ('generated', 'expired', 4)) s(f, t, k)
 where x.subject_id = :sid and not x.is_control
   and ((x.status = 'completed' and s.k <= 3) or (x.status = 'dispatched' and s.k = 1)
        or (x.status = 'expired' and s.k = 4) or (x.status = 'cancelled' and s.k = 1));
vacuum analyze segment.opportunity;
vacuum analyze segment.opportunity_log;
SQL
echo "opportunities: $("${Q[@]}" -c "select count(*) from segment.opportunity") made in $(secs "$t" "$(now)") s"

unit=$("${Q[@]}" -c "select min(sub_branch_id) from dw.customer_wide")
time_report() {   # time_report LABEL ORG_UNIT-SQL
  local ms all=()
  for ((r = 0; r < reps; r++)); do
    ms=$("${Q[@]}" <<SQL | tail -1
select clock_timestamp() as t0 \gset
select length(segment.report('customer', '$d0', '$d_end', $2)) as len \gset
select round(extract(epoch from clock_timestamp() - :'t0'::timestamptz) * 1000)
SQL
)    all+=("$ms")
  done
  printf '%-44s %s ms (fastest of %s: %s ms)\n' "$1" "$(printf '%s\n' "${all[@]}" | sort -n | tail -1 | sed 's/^/slowest /')" \
         "$reps" "$(printf '%s\n' "${all[@]}" | sort -n | head -1)"
}
echo
echo "segment.report('customer', '$d0', '$d_end', ...):"
time_report "whole bank" NULL
time_report "scoped to sub-branch $unit" "'$unit'"
"${Q[@]}" -c "select segment.report('customer', '$d0', '$d_end')" > "${BENCH_REPORT_HTML:-/tmp/segment-bench-report.html}"
echo "page: $(wc -c < "${BENCH_REPORT_HTML:-/tmp/segment-bench-report.html}") bytes, $(grep -o '<svg' "${BENCH_REPORT_HTML:-/tmp/segment-bench-report.html}" | wc -l) svg charts (${BENCH_REPORT_HTML:-/tmp/segment-bench-report.html})"
