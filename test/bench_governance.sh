#!/bin/bash
# bench_governance.sh: what row-level security costs (issue 12,
# docs/performance.md#governance-row-level-security). Called by bench.sh;
# by hand: PGHOST=... test/bench_governance.sh (needs a superuser and a
# cluster where segment is installed; creates and drops its own database
# and two LOGIN roles).
#
# A database with GOV_OPPS opportunities (default 1,000,000; 40% open)
# assigned to GOV_MANAGERS managers (10,000) spread over a random org tree
# of GOV_UNITS units (2,000), governed by segment.install_roles(). Each line
# runs a query GOV_REPS times (default 300; the branch head's GOV_HEAD_REPS,
# 20) inside one server-side loop
# (clock_timestamp; no round trips), in interleaved rounds, best of 3:
#
#   (g1) a manager lists its open opportunities, without RLS: the owner
#        (RLS bypassed) with WHERE manager = 'm42' AND status IN (...)
#   (g2) the same, with RLS: a LOGIN role with segment_manager mapped to
#        m42, WHERE status IN (...) only (the policy adds the manager)
#   (g3) the same login also writing manager = 'm42' (policy and filter)
#   (g4) a branch head lists the open opportunities of its subtree: the
#        owner with org_unit IN (the subtree by a recursive CTE) against
#        the branch head's login with the policy (segment_internal._in_scope)
#
# ratio = (g2) / (g1): the issue's target is <= 1.3.
set -euo pipefail

opps=${GOV_OPPS:-1000000}
managers=${GOV_MANAGERS:-10000}
units=${GOV_UNITS:-2000}
reps=${GOV_REPS:-300}
head_reps=${GOV_HEAD_REPS:-20}
db=segment_bench_gov_$$
pw=bench_gov_pw
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
Q=(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db")
cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    psql -X -q -d postgres -c "drop role if exists bench_gov_mgr" -c "drop role if exists bench_gov_head" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
createdb "$db"

echo
echo "== governance: row-level security, $opps opportunities, $managers managers, $units-unit tree, $reps queries per timing ($head_reps for the branch head)"
t0=$(date +%s.%N)
"${Q[@]}" >/dev/null <<SQL
create extension segment;
select setseed(0.42);
create table org (id text primary key, parent text);
insert into org values ('u1', null);
insert into org select 'u' || i, 'u' || (1 + floor(random() * (i - 1))::int) from generate_series(2, $units) i;
select segment.register_org_tree('org', 'id', 'parent');
create temp table mgr as
select 'm' || i as manager, 'u' || (1 + floor(random() * $units)::int) as unit from generate_series(1, $managers) i;
-- opportunities as generate() leaves them; rows inserted directly (the
-- bench measures reading, not generation)
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, priority, message, org_unit, manager, assignment, status)
select 1 + i % 5, 1, 1, i, i::text, current_date - (i % 60), current_date + 7 - (i % 60),
       false, (i::int8 * 7919) % 1000, 'Call customer ' || i, m.unit, m.manager, 'owner',
       (array['generated', 'dispatched', 'in_progress', 'completed', 'expired'])[1 + (i / 7) % 5]
  from generate_series(1, $opps) i
  join mgr m on m.manager = 'm' || (1 + (i::int8 * 104729) % $managers);
vacuum analyze segment.opportunity;
select count(*) from segment.install_roles();
create role bench_gov_mgr login password '$pw';
create role bench_gov_head login password '$pw';
grant segment_manager to bench_gov_mgr;
grant segment_branch_head to bench_gov_head;
select segment.map_user('bench_gov_mgr', manager => 'm42');
SQL
# the branch head: a unit with a subtree of a few hundred opportunities or more
head_unit=$("${Q[@]}" -c "with recursive c(top, u) as (select id, id from org union select c.top, o.id from org o join c on o.parent = c.u)
    select c.top from c join segment.opportunity x on x.org_unit = c.u group by c.top
    having count(*) between 20000 and 60000 order by count(*) limit 1")
"${Q[@]}" -c "select segment.map_user('bench_gov_head', org_unit => '$head_unit')" >/dev/null
echo "set-up: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; branch head at $head_unit"

open="status in ('generated', 'dispatched', 'in_progress')"
list="select opportunity_id, key, priority, valid_until, message from segment.opportunity"
sub="(with recursive s(u) as (select '$head_unit'::text union select o.id from org o join s on o.parent = s.u) select u from s)"
# time ROLE SQL: ms per execution of SQL, run $reps times in one DO block
timeit() {
    local role=$1 sql=$2 n=${3:-$reps} out p=$pw
    [[ $role == "$me" ]] && p=${PGPASSWORD:-}
    out=$(PGPASSWORD=$p psql -X -q -At -v ON_ERROR_STOP=1 -U "$role" -d "$db" <<SQL 2>&1
set client_min_messages = notice;
do \$\$
declare t0 timestamptz; n bigint; i int;
begin
  perform count(*) from ($sql) w;   -- warm-up, plan cached
  t0 := clock_timestamp();
  for i in 1..$n loop
    select count(*) into n from ($sql) w;
  end loop;
  raise notice 'ms=% rows=%', round((extract(epoch from clock_timestamp() - t0) * 1000 / $n)::numeric, 4), n;
end \$\$;
SQL
)
    sed -n 's/^NOTICE:  //p' <<<"$out" | grep . || { echo "bench_governance: $out" >&2; echo "ms=NaN rows=?"; }
}
me=$(psql -X -At -d "$db" -c "select current_user")
declare -A best rows
for round in 1 2 3; do
    for k in g1 g2 g3 g4o g4h; do
        case $k in
          g1) r=$(timeit "$me" "$list where manager = 'm42' and $open order by priority desc");;
          g2) r=$(timeit bench_gov_mgr "$list where $open order by priority desc");;
          g3) r=$(timeit bench_gov_mgr "$list where manager = 'm42' and $open order by priority desc");;
          g4o) r=$(timeit "$me" "$list where org_unit in $sub and $open order by priority desc" "$head_reps");;
          g4h) r=$(timeit bench_gov_head "$list where $open order by priority desc" "$head_reps");;
        esac
        ms=$(sed -n 's/.*ms=\([0-9.NaN]*\).*/\1/p' <<<"$r"); n=$(sed -n 's/.*rows=\(.*\)/\1/p' <<<"$r")
        rows[$k]=$n
        if [[ -z ${best[$k]:-} ]] || awk -v a="$ms" -v b="${best[$k]}" 'BEGIN { exit !(a < b) }'; then best[$k]=$ms; fi
    done
done
line() { printf '%-72s %10s ms  %8s rows\n' "$1" "${best[$2]}" "${rows[$2]}"; }
line "(g1) manager's open opportunities, no RLS (owner, WHERE manager = ...)" g1
line "(g2) the same, RLS on (login with segment_manager, policy only)" g2
line "(g3) RLS on and WHERE manager = ... written too" g3
awk -v a="${best[g2]}" -v b="${best[g1]}" 'BEGIN { printf "ratio (g2)/(g1): %.2f  (target <= 1.3)\n", a / b }'
line "(g4) branch head's subtree, no RLS (owner, org_unit IN recursive CTE)" g4o
line "(g4) the same, RLS on (login with segment_branch_head)" g4h
awk -v a="${best[g4h]}" -v b="${best[g4o]}" 'BEGIN { printf "ratio branch head RLS / no RLS: %.2f\n", a / b }'
[[ ${rows[g1]} == "${rows[g2]}" && ${rows[g4o]} == "${rows[g4h]}" ]] || echo "bench_governance: row counts differ between the RLS and the plain query!"
