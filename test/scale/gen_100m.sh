#!/bin/bash
# gen_100m.sh: the 100M-customer daily snapshot table of docs/performance.md ("100,000,000 customers"):
# dw.snap100 partitioned by data_dt, two daily leaves of 100M rows (35 columns the 60 bench tags read),
# built from dw.generate_bank in 10 chunks of 10M. About 40 GB with indexes; hours on 2 cores.
set -euo pipefail
Q="psql -X -q -v ON_ERROR_STOP=1"   # PGHOST, PGPORT, PGDATABASE, PGUSER: a scratch database with test/data/bank.sql and test/data/bench_tags.sql loaded
D=2026-12-07
cols="customer_id, sub_branch_id, manager_id, aum, td_maturity_date, has_fund, has_wealth, city, risk_level, payroll_flag, monthly_salary, current_balance, txn_count_30d, loan_app_count_90d, mobile, has_credit_card, card_spend_30d, has_loan, loan_overdue_days, last_login_date, last_txn_at, digital_score, term_balance, balance_3m_ago, birth_date, txn_count_90d, xbank_same_name_out_30d, do_not_call, has_insurance, occupation, card_activated, customer_segment, education, mobile_banking, wechat_bound"
$Q <<SQL
select dw.generate_bank(1000, '$D', 0.42);
drop table if exists dw.snap100;
create table dw.snap100_proto as select date '$D' as data_dt, $cols from dw.customer_wide with no data;
create table dw.snap100 (like dw.snap100_proto) partition by range (data_dt);
drop table dw.snap100_proto;
create table dw.snap100_d1 partition of dw.snap100 for values from ('2026-12-06') to ('2026-12-07');
create table dw.snap100_d0 partition of dw.snap100 for values from ('2026-12-07') to ('2026-12-08');
SQL
sel=$(sed 's/customer_id/customer_id + OFF/' <<<"$cols")
for k in 0 1 2 3 4 5 6 7 8 9; do
  t0=$(date +%s)
  seed=$(awk -v k=$k 'BEGIN { printf "%.2f", 0.09 * k - 0.45 }')
  $Q -c "set client_min_messages=warning" -c "select dw.generate_bank(10000000, '$D', $seed)" >/dev/null
  off=$((k * 10000000))
  $Q -c "insert into dw.snap100_d0 select date '$D', ${sel//OFF/$off} from dw.customer_wide" \
     -c "insert into dw.snap100_d1 select date '2026-12-06', ${sel//OFF/$off} from dw.customer_wide"
  $Q -c "update dw.snap100_d1 set aum = aum * 0.97 where customer_id % 20 = 0 and customer_id > $off and customer_id <= $off + 10000000" 
  echo "chunk $k done in $(( $(date +%s) - t0 )) s at $(date +%T)"
done
$Q -c "drop table dw.customer_wide cascade" -c "alter table dw.snap100 add primary key (data_dt, customer_id)" \
   -c "create unique index snap100_d0_key on dw.snap100_d0 (customer_id)" -c "vacuum analyze dw.snap100"
$Q -At -c "select pg_size_pretty(pg_total_relation_size('dw.snap100_d0')), pg_size_pretty(pg_relation_size('dw.snap100_d0')), (select count(*) from dw.snap100_d0)"
echo "all done at $(date +%T)"
