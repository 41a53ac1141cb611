#!/bin/bash
# live_dates_1m.sh: the 1M-bank check of docs/live.md#dates (not part of
# `make test`: several minutes). Generates ROWS (1000000) customers
# (test/data/bank.sql) with the 63 tags of test/data/tags.sql, refreshes at
# current_date, enables live maintenance, then runs WRITERS (2) sessions of
# bulk UPDATEs (last_login_date, aum) while segment.refresh(subject,
# current_date + 1) runs, and finally compares every tag read with the overlay
# merged against (rule) IS TRUE evaluated in plain SQL at the state's date.
# Prints the mismatching tags and the overlay rows at another date; exits 1
# when there is any. Run: test/with-cluster.sh bash test/live_dates_1m.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=${ROWS:-1000000}
writers=${WRITERS:-2}
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
db=live_dates_1m
Q=(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db")
dropdb --if-exists "$db" && createdb "$db"
"${Q[@]}" -c "create extension segment" -f "$here/data/bank.sql" >/dev/null
"${Q[@]}" -c "select dw.generate_bank($rows, current_date, 0.42)" >/dev/null
"${Q[@]}" -f "$here/data/tags.sql" >/dev/null
"${Q[@]}" -c "vacuum analyze dw.customer_wide" -c "select count(*) from segment.refresh('customer', current_date)" >/dev/null
"${Q[@]}" -c "select segment.enable_live('customer')"
start=$(date +%s.%N)
pids=()
for w in $(seq 0 $((writers - 1))); do
  # each writer: bulk UPDATEs of its share of customers, one statement per 50,000 ids
  ( for lo in $(seq $((w * 50000)) $((writers * 50000)) $rows); do
      "${Q[@]}" -c "update dw.customer_wide set last_login_date = last_login_date + 1, aum = aum * 1.01
                     where customer_id between $lo and $((lo + 49999))" >/dev/null
    done ) &
  pids+=($!)
done
sleep 2
t0=$(date +%s.%N)
"${Q[@]}" -c "select count(*) from segment.refresh('customer', current_date + 1)" >/dev/null
t1=$(date +%s.%N)
wait "${pids[@]}"
end=$(date +%s.%N)
echo "refresh(current_date + 1) during the writers: $(echo "$t1 - $t0" | bc) s; writers: $(echo "$end - $start" | bc) s"
"${Q[@]}" <<'SQL'
create temp table result as
with st as (select s.subject_id, st.as_of from segment.subject s join segment.subject_state st using (subject_id)
             where s.name = 'customer')
select t.name, t.rule like '%as_of()%' as uses_as_of, t.rule from segment.tag t, st
 where t.subject_id = st.subject_id and t.active and t.rule is not null;
alter table result add column ok boolean;
do $$
declare r record; want segment.memberset; d date;
begin
  select st.as_of into d from segment.subject_state st join segment.subject s using (subject_id) where s.name = 'customer';
  perform set_config('segment.as_of', d::text, true);
  for r in select * from result loop
    execute format('select segment.memberset_agg(customer_id) from dw.customer_wide where (%s) is true', r.rule) into want;
    update result set ok = coalesce(segment.audience('customer', r.name)
                                    operator(segment.=) coalesce(want, segment.memberset(array[]::int8[])), false)
     where name = r.name;
  end loop;
end $$;
select format('tags: %s, mismatching: %s (of which using segment.as_of(): %s); tags using segment.as_of(): %s',
              count(*), count(*) filter (where not ok), count(*) filter (where not ok and uses_as_of),
              count(*) filter (where uses_as_of)) from result;
select format('overlay rows: %s, at another as_of than the state (%s): %s', count(*),
              (select as_of from segment.subject_state limit 1),
              count(*) filter (where l.as_of <> (select as_of from segment.subject_state limit 1)))
  from segment.live_member l;
select 'mismatch: ' || name from result where not ok;
SQL
bad=$("${Q[@]}" -c "select (select count(*) from segment.live_member l join segment.subject_state st using (subject_id) where l.as_of <> st.as_of)")
dropdb "$db"
(( bad == 0 ))
