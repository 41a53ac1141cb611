#!/bin/bash
# bench_generate.sh: the opportunity-generation part of `make bench`, run by
# test/bench.sh on its bank (dw.customer_wide, subject "customer"). Compares,
# on the same data and the same existing opportunities:
#
#   (g1) segment.generate() for one rule whose audience is every customer:
#        cool-down and contact-cap checks against existing opportunities, a
#        10% control group, a message template with masking and amounts,
#        assignment to the owner / least-loaded manager of the sub-branch /
#        pool within each manager's daily capacity;
#   (g2) the plain SQL a team would write for the same leads:
#        INSERT ... SELECT ... WHERE <audience> AND NOT EXISTS (cool-down)
#        AND (SELECT count(*) ...) < cap, into a table with the same columns
#        and indexes (LIKE segment.opportunity INCLUDING ALL), with no control
#        group, no message and the owner copied as is, plus the index by
#        customer its correlated checks need.
#
# Existing opportunities (identical in both tables): the measured rule on
# as_of - 20 for every 10th customer (in cool-down), and two other rules on
# as_of - 5 (every 2nd) and as_of - 3 (every 3rd), so customers divisible by
# 6 have reached the cap of 2 per 30 days. BENCH_GEN_ROUNDS rounds (default
# 2), in alternating order (g1 g2, then g2 g1: load from other jobs falls on
# both); between rounds the day's leads of the measured rule are deleted
# from both tables and both are vacuumed. Times are summed per side; the row
# counts of the two must agree. Target (issue 15): g1 / g2 <= 1.0.
# Environment: as test/bench.sh (PG* variables), BENCH_AS_OF, BENCH_GEN_ROUNDS.
set -euo pipefail

P=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)
Q=(psql -X -q -At -v ON_ERROR_STOP=1)
as_of=${BENCH_AS_OF:-$("${Q[@]}" -c 'select current_date')}

"${P[@]}" <<SQL
set client_min_messages = warning;
select segment.create_tag('customer', 'gen_everyone', 'customer_id is not null')
 where not exists (select from segment.tag where name = 'gen_everyone');
select count(*) from segment.refresh('customer', '$as_of');
select segment.register_staff('customer', 'dw.manager', 'manager_id', 'branch_id', 'daily_capacity', 'active');
select segment.set_contact_policy('customer', 2, 30);
do \$\$ begin
  perform segment.drop_opportunity_rule(n, "cascade" => true)
     from unnest(array['gen_measured', 'gen_other_a', 'gen_other_b']) n
    where exists (select from segment.opportunity_rule where name = n);
end \$\$;
select segment.create_opportunity_rule('customer', 'gen_measured', 'gen_everyone', 'mining', 'wealth',
    channel => 'manager', priority => 10, holdout_pct => 10, cooldown_days => 30, valid_days => 7,
    template => 'Dear {customer_name|mask} ({mobile|mask}): AUM {aum|amount}, deposit due {td_maturity_date|date}',
    goal => 'has_wealth', assignment => 'owner') as measured \gset
select segment.create_opportunity_rule('customer', 'gen_other_a', 'gen_everyone', 'mining', 'fund', assignment => 'pool') as other_a \gset
select segment.create_opportunity_rule('customer', 'gen_other_b', 'gen_everyone', 'mining', 'card', assignment => 'pool') as other_b \gset
select subject_id as sid from segment.subject where name = 'customer' \gset

-- the existing opportunities
insert into segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                 is_control, assignment, pool_reason)
select r, 1, :sid, c.customer_id, c.customer_id::text, d, d + 6, false, 'pool', 'rule assigns to the pool'
  from dw.customer_wide c,
       lateral (values (:measured, date '$as_of' - 20, 10), (:other_a, date '$as_of' - 5, 2),
                       (:other_b, date '$as_of' - 3, 3)) v(r, d, m)
 where c.customer_id % v.m = 0;
drop table if exists dw.bench_opportunity;
create table dw.bench_opportunity (like segment.opportunity including all);
-- the plain SQL's per-customer checks need an index by customer (segment
-- checks with member sets and has none)
create index on dw.bench_opportunity (subject_id, member_id, period);
insert into dw.bench_opportunity select * from segment.opportunity where subject_id = :sid;
vacuum analyze segment.opportunity;
vacuum analyze dw.bench_opportunity;
SQL

measured=$("${Q[@]}" -c "select rule_id from segment.opportunity_rule where name = 'gen_measured'")
sid=$("${Q[@]}" -c "select subject_id from segment.subject where name = 'customer'")
existing=$("${Q[@]}" -c "select count(*) from dw.bench_opportunity")

rounds=${BENCH_GEN_ROUNDS:-2}
T=${BENCH_TMP:-/tmp}
cat > "$T/g1.sql" <<SQL
select * from segment.generate('gen_measured', '$as_of');
SQL
cat > "$T/g2.sql" <<SQL
insert into dw.bench_opportunity (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                                  is_control, priority, org_unit, manager, assignment, source)
select $measured, 1, $sid, c.customer_id, c.customer_id::text, date '$as_of', date '$as_of' + 6,
       false, 10, c.sub_branch_id::text, c.manager_id::text,
       case when c.manager_id is null then 'pool' else 'owner' end, 'batch'
  from dw.customer_wide c
 where (c.customer_id is not null)
   and not exists (select 1 from dw.bench_opportunity o
                    where o.rule_id = $measured and o.member_id = c.customer_id
                      and o.period > date '$as_of' - 30)
   and (select count(*) from dw.bench_opportunity o
         where o.subject_id = $sid and o.member_id = c.customer_id
           and o.period > date '$as_of' - 30 and o.period <= date '$as_of') < 2;
SQL
# between rounds: the day's leads of the measured rule go again, on both sides
cat > "$T/reset.sql" <<SQL
delete from segment.opportunity where rule_id = $measured and period = '$as_of';
delete from segment.generation where rule_id = $measured and period = '$as_of';
delete from dw.bench_opportunity where rule_id = $measured and period = '$as_of';
vacuum analyze segment.opportunity;
vacuum analyze dw.bench_opportunity;
SQL
step() {  # file -> milliseconds (psql's \timing), output kept in $T/$1.out
  "${P[@]}" -c '\timing on' -f "$T/$1.sql" > "$T/$1.out"
  awk '/^Time:/ { print $2 }' "$T/$1.out" | tail -1
}

echo
echo "== Opportunity generation: one rule over every customer, $existing existing opportunities, $rounds rounds (g1 g2, g2 g1, ...)"
g1=0; g2=0
for ((r = 1; r <= rounds; r++)); do
  if (( r > 1 )); then "${P[@]}" -f "$T/reset.sql" >/dev/null; fi
  if (( r % 2 == 1 )); then a=$(step g1); b=$(step g2); else b=$(step g2); a=$(step g1); fi
  (( r == 1 )) && grep -v '^Time' "$T/g1.out" | sed 's/^/   /'
  echo "   round $r: g1 $a ms, g2 $b ms"
  g1=$(awk -v x="$g1" -v y="$a" 'BEGIN { print x + y }'); g2=$(awk -v x="$g2" -v y="$b" 'BEGIN { print x + y }')
done
printf '%-64s %10s %10s\n' "step (seconds: sum over the rounds)" "seconds" "x SQL"
printf '%-64s %10s %10s\n' "----" "-------" "-----"
awk -v a="$g1" -v b="$g2" 'BEGIN {
  printf "%-64s %10.3f %10.2f\n", "(g1) segment.generate (control, template, assignment, caps)", a / 1000, a / b
  printf "%-64s %10.3f %10.2f\n", "(g2) INSERT ... SELECT ... WHERE NOT EXISTS ... count < cap", b / 1000, 1 }'
seg_rows=$("${Q[@]}" -c "select count(*) from segment.opportunity where rule_id = $measured and period = '$as_of'")
sql_rows=$("${Q[@]}" -c "select count(*) from dw.bench_opportunity where rule_id = $measured and period = '$as_of'")
if [[ $seg_rows == "$sql_rows" ]]; then
  echo "check: both made $seg_rows opportunities (the same cool-down and cap decisions)"
else
  echo "check: MISMATCH segment made $seg_rows, SQL $sql_rows"
fi
"${Q[@]}" -F ' ' -c "select 'assignment: ' || string_agg(assignment || coalesce(' (' || pool_reason || ')', '') || ' ' || n, ', ' order by n desc)
                       from (select assignment, pool_reason, count(*) n from segment.opportunity
                              where rule_id = $measured and period = '$as_of' group by 1, 2) x"
"${P[@]}" -c "drop table dw.bench_opportunity" -c "select segment.drop_opportunity_rule(n, \"cascade\" => true) from unnest(array['gen_measured', 'gen_other_a', 'gen_other_b']) n" >/dev/null
