#!/bin/bash
# demo.sh: the `make demo` tour. Generates a synthetic retail bank inside the
# database, registers its customer table with segment, loads a library of
# retail-banking tags, refreshes them in one scan and prints what a bank DBA
# or analyst would look at.
#
# Run by `make demo` inside a throwaway cluster (test/with-cluster.sh); by hand:
#   PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... test/demo.sh
# It needs a database where it may CREATE EXTENSION segment and (re)create
# schema dw. Environment:
#   DEMO_CUSTOMERS  customers to generate (default 100000)
#   DEMO_SEED       generator seed in [-1, 1] (default 0.42)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
customers=${DEMO_CUSTOMERS:-100000}
seed=${DEMO_SEED:-0.42}
[[ $customers =~ ^[0-9]+$ && $customers -ge 1 ]] || { echo "demo: DEMO_CUSTOMERS must be a positive integer" >&2; exit 2; }

setup="create extension if not exists segment;"

export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql -X -q -v ON_ERROR_STOP=1 -P pager=off -P footer=off -P null='(null)' \
     -v customers="$customers" -v seed="$seed" -v here="$here" <<SQL
\set ECHO none
\echo
\echo '================================================================'
\echo ' segment demo: a synthetic retail bank, $customers customers'
\echo '================================================================'

\echo
\echo '== 1. Extension'
$setup
select extname as extension, extversion as version
  from pg_extension where extname = 'segment';

\echo
\echo '== 2. Generate the bank inside the database (dw.generate_bank)'
\i '$here/data/bank.sql'
select clock_timestamp() as t0 \gset
select dw.generate_bank(:customers, current_date, :seed) as customers_generated;
select round(extract(epoch from clock_timestamp() - :'t0'::timestamptz)::numeric, 1) as generate_s \gset
\echo 'generated in' :generate_s 's'
select (select count(*) from dw.branch where level = 'branch') as branches,
       (select count(*) from dw.branch where level = 'sub-branch') as sub_branches,
       (select count(*) from dw.manager) as managers,
       (select count(*) from information_schema.columns
         where table_schema = 'dw' and table_name = 'customer_wide') as columns,
       pg_size_pretty(pg_total_relation_size('dw.customer_wide')) as table_size;
\echo 'a few customers:'
select customer_id, customer_name, city, sub_branch_id, manager_id, aum,
       td_maturity_date, last_login_date, payroll_flag, has_wealth
  from dw.customer_wide order by customer_id limit 5;

\echo
\echo '== 3. Register the customer table as subject "customer"'
do \$\$ begin
  if exists (select from segment.subject where name = 'customer') then
    perform segment.unregister_subject('customer');   -- a re-run starts afresh
  end if;
end \$\$;
select segment.register_subject('customer', 'dw.customer_wide', 'customer_id',
                                'sub_branch_id', 'manager_id') as subject_id;

\echo
\echo '== 4. Load the tag library (test/data/tags.sql)'
\o /dev/null
\i '$here/data/tags.sql'
\o
select case when grouping(category) = 1 then 'all' else coalesce(category, '(none)') end as category,
       count(*) as tags
  from segment.tag group by rollup (category) order by grouping(category), category;

\echo
\echo '== 4b. Schemes, a scorecard and named segments (test/data/segmentation.sql)'
\o /dev/null
\i '$here/data/segmentation.sql'
\o
select 'scheme' as kind, s.name, string_agg(b.name, ' > ' order by b.position) as definition
  from segment.scheme s join segment.scheme_bucket b using (scheme_id) group by s.name
union all
select 'scorecard', c.name, count(*) || ' items, bands ' ||
       (select string_agg(name, ', ' order by min_score nulls first) from segment.scorecard_band d
         where d.scorecard_id = c.scorecard_id)
  from segment.scorecard c join segment.scorecard_item i using (scorecard_id) group by c.scorecard_id, c.name
union all
select 'segment', name, audience from segment.segment
order by 1, 2;

\echo
\echo '== 5. Refresh: one scan of dw.customer_wide evaluates every tag, bucket and score'
select clock_timestamp() as t0 \gset
create temp table refreshed as select * from segment.refresh('customer');
select round(extract(epoch from clock_timestamp() - :'t0'::timestamptz)::numeric * 1000) as refresh_ms \gset
\echo 'segment.refresh(''customer''):' :refresh_ms 'ms for' :customers 'customers'

\echo
\echo '== 6. Tags: members and share of all customers'
select r.tag, t.category, r.members,
       round(100.0 * r.members / :customers, 2) as "share %",
       t.description
  from refreshed r join segment.tag t on t.name = r.tag
 order by t.category, r.members desc, r.tag;

\echo
\echo '== 6b. Tiers, lifecycle stages, score bands and segments'
select kind, name, members, round(100.0 * members / :customers, 2) as "share %"
  from segment.size_history
 where subject = 'customer' and kind <> 'tag' and as_of = current_date
 order by kind, name;
\echo 'overlap of the segments (computed on member sets):'
select * from segment.overlap('customer', array['retention_targets', 'maturity_calls', 'wealth_mining']);

\echo
\echo '== 7. Audiences: combinations of tags, answered from the member sets'
create function pg_temp.timed_count(audience text, out customers bigint, out ms numeric)
language plpgsql as \$\$
declare t0 timestamptz := clock_timestamp();
begin
  customers := segment.count('customer', audience);
  ms := round(extract(epoch from clock_timestamp() - t0)::numeric * 1000, 2);
end \$\$;
select a.audience, c.customers, c.ms
  from (values ('high_value and maturing_7d and not dormant'),
               ('maturing and not do_not_contact'),
               ('payroll_no_wealth and active_digital and not do_not_contact'),
               ('(churn_risk or xbank_transfer_out) and high_value'),
               ('no_manager_high_value and not staff'),
               ('failed_loan_app_30d and not loan_overdue'),
               ('young_card_holder and card_not_activated'),
               ('(value_affluent or value_hnw) and idle_cash and not dormant')) a(audience),
       lateral pg_temp.timed_count(a.audience) c;

\echo 'the first audience again, by scanning the table with the tags'' rules (plain SQL):'
select format('select count(*) from dw.customer_wide where (%s) is true and (%s) is true and (%s) is not true',
              (select rule from segment.tag where name = 'high_value'),
              (select rule from segment.tag where name = 'maturing_7d'),
              (select rule from segment.tag where name = 'dormant')) as sql \gset
select clock_timestamp() as t0 \gset
:sql \gset sqlcount_
select :sqlcount_count as customers,
       round(extract(epoch from clock_timestamp() - :'t0'::timestamptz)::numeric * 1000, 2) as ms,
       :sqlcount_count = segment.count('customer', 'high_value and maturing_7d and not dormant') as same_answer;

\echo
\echo '== 8. One customer: tags and why'
select coalesce(min(m), 1001) as cust
  from segment.members('customer', 'high_value and maturing_7d') m \gset
select customer_id, customer_name, aum, td_maturity_date, td_maturity_date - current_date as days_to_maturity,
       last_login_date, manager_id, sub_branch_id
  from dw.customer_wide where customer_id = :cust;
\set lbl 'segment.tags(''customer'', ' :cust '):'
\echo :lbl
select u.tag, t.category, t.description
  from unnest(segment.tags('customer', :cust)) u(tag) join segment.tag t on t.name = u.tag
 order by t.category, u.tag;
\set lbl 'segment.explain(''customer'', ' :cust ', ''maturing_7d''):'
\echo :lbl
select jsonb_pretty(segment.explain('customer', :cust, 'maturing_7d')) as explain;
\set lbl 'segment.explain(''customer'', ' :cust ', ''payroll_no_wealth''):'
\echo :lbl
select jsonb_pretty(segment.explain('customer', :cust, 'payroll_no_wealth')) as explain;

\echo
\echo '== 9. A day later: 5 % of customers move (dw.simulate_day), refresh as of tomorrow'
select dw.simulate_day(0.05, current_date + 1, :seed) as customers_changed;
select clock_timestamp() as t0 \gset
create temp table refreshed2 as select * from segment.refresh('customer', current_date + 1);
select round(extract(epoch from clock_timestamp() - :'t0'::timestamptz)::numeric * 1000) as refresh_ms \gset
\echo 'segment.refresh(''customer'', current_date + 1):' :refresh_ms 'ms; the tags that moved most:'
select tag, members, entered, exited
  from refreshed2 where entered + exited > 0
 order by entered + exited desc, tag limit 12;

\echo
\echo '== 9b. Value-tier transitions from today to tomorrow (segment.transitions)'
select * from segment.transitions('customer', 'value_tier', current_date, current_date + 1)
 where from_bucket <> to_bucket
 order by customers desc, from_bucket, to_bucket;
\echo 'AIPL stage transitions:'
select * from segment.transitions('customer', 'aipl', current_date, current_date + 1)
 where from_bucket <> to_bucket
 order by customers desc, from_bucket, to_bucket;

\echo
\echo '== 9c. The 10 highest service scores among maturity calls (segment.top)'
select t.key as customer_id, t.score, c.customer_name, c.aum, c.td_maturity_date,
       segment.bucket_of('customer', t.key::bigint, 'value_tier') as value_tier
  from segment.top('customer', 'service_score', 'maturity_calls', 10) t
  join dw.customer_wide c on c.customer_id = t.key::bigint
 order by t.score desc, t.key::bigint;
select key as cust from segment.top('customer', 'service_score', 'maturity_calls', 1) \gset
\set lbl 'why customer ' :cust ' has its service score (segment.explain):'
\echo :lbl
select i ->> 'points' as points, i ->> 'rule' as rule, i ->> 'value' as "true?"
  from jsonb_array_elements(segment.explain('customer', :cust, 'service_score') -> 'items') i;

\echo
\echo '== 10. Run log (segment.run)'
select r.run_id, s.name as subject, r.as_of, r.started_at::timestamp(0) as started,
       round(extract(epoch from r.finished_at - r.started_at)::numeric, 3) as seconds,
       r.rows_scanned, r.tags, coalesce(r.error, '') as error
  from segment.run r join segment.subject s using (subject_id)
 order by r.run_id;

\echo
\echo '== 11. The nightly run under pg_cron (segment.schedule, segment.run_all; docs/scheduling.md)'
select coalesce(current_setting('cron.database_name', true) = current_database(), false) as cron_here \gset
\if :cron_here
create extension if not exists pg_cron;
select segment.schedule('segment-nightly', '0 18 * * *') as jobid;   -- 18:00 GMT = 02:00 in Beijing
\echo 'the pg_cron job (cron.job):'
select jobid, jobname, schedule, command, database, username, active
  from cron.job where jobname = 'segment-nightly';
\else
\echo 'pg_cron does not run jobs from this database (cron.database_name): not scheduled'
\endif
\echo 'one run by hand, as the job does it every night (CALL segment.run_all()):'
call segment.run_all();
select t.step_no, t.step, coalesce(t.subject, '') as subject, t.status,
       round(extract(epoch from t.finished_at - t.started_at)::numeric, 3) as seconds,
       coalesce(t.counts - 'by_rule' - 'by_subject' - 'refresh_run_id', '{}')::text as counts
  from segment.nightly_step t
 where t.run_id = (select max(run_id) from segment.nightly_run)
 order by t.step_no;
\if :cron_here
select segment.unschedule('segment-nightly') as unscheduled;   -- the demo cluster is thrown away
\endif

\echo
\echo 'Done. Every query above is in test/demo.sh; the tag rules are in test/data/tags.sql.'
SQL
