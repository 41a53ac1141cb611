#!/bin/bash
# test/shell/refresh-pipeline.sh: the messages of the refresh pipeline
# (src/refresh_pipeline.c), which pgTAP cannot see. A refresh whose entry
# rule fails prints `WARNING: entry rules on '<audience>' of subject "<name>"
# failed: ...` and commits; a refresh whose step fails as a whole prints
# `WARNING: after-refresh step <step> of subject "<name>" failed: ...` and
# commits; both keep the state and log the error in segment.run_step, as
# read from another session after the commit. test/pgtap/refresh_pipeline.sql
# has the rest. Prints TAP; needs PGHOST/PGPORT of a cluster where segment
# is installed.
set -uo pipefail

db=segment_pipeline_$$
n=0
fail=0
is() { n=$((n + 1)); if [[ "$1" == "$2" ]]; then echo "ok $n - $3"; else
         echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# what the last refresh committed: rpl_low's size, whether its state is that
# refresh's, and the error of its step fire_entry_rules
kept() {
    q -c "select st.member_count || ' ' || (st.run_id = r.run_id) || ' ' || coalesce(s.error, '-')
            from segment.run r join segment.run_step s using (run_id)
            join segment.tag_state st on true join segment.tag t using (tag_id)
           where r.run_id = (select max(run_id) from segment.run) and s.step = 'fire_entry_rules'"
}
cleanup() { dropdb --if-exists "$db" >/dev/null 2>&1; dropuser --if-exists rpl_refresher >/dev/null 2>&1; }
trap cleanup EXIT

createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
q >/dev/null <<'SQL' || { echo "not ok 1 - fixture"; exit 1; }
create extension segment;
create table cust (id int primary key, bal numeric);
insert into cust select i, case when i <= 2 then 50 else 1000 end from generate_series(1, 10) i;
select segment.register_subject('rpl', 'cust', 'id');
select segment.create_tag('rpl', 'rpl_low', 'bal < 100');
select segment.create_opportunity_rule('rpl', 'rpl_call', 'rpl_low', 'maintenance', 'call',
                                       assignment => 'pool', cooldown_days => 0);
select segment.attach_entry_rule('rpl_call', 'rpl_low');
select count(*) from segment.refresh('rpl', '2026-07-01');
create role rpl_refresher login password 'segment_pipeline_pw';
select count(*) from segment.grant_role('rpl_refresher', 'refresher');
grant select on cust to rpl_refresher;
SQL

# 1. an entry rule that fails (its generation cannot take the locks)
q -c "revoke execute on function segment_internal._lock_members(int, segment.memberset) from rpl_refresher" \
  -c "update cust set bal = 50 where id = 3" >/dev/null
err=$(PGPASSWORD=segment_pipeline_pw psql -X -q -At -v ON_ERROR_STOP=1 -U rpl_refresher -d "$db" \
           -c "select count(*) from segment.refresh('rpl', '2026-07-02')" 2>&1 >/dev/null)
is "$(echo "$err" | grep -c "^WARNING:  entry rules on 'rpl_low' of subject \"rpl\" failed: permission denied for function _lock_members")" \
   "1" "a failing entry rule: WARNING naming the audience and the error"
is "$(kept)" \
   "3 true entry into 'rpl_low': permission denied for function _lock_members" \
   "committed: the state of the refresh (3 in rpl_low) and the step's error"

# 2. a step that fails as a whole
q -c "grant execute on function segment_internal._lock_members(int, segment.memberset) to rpl_refresher" \
  -c "revoke execute on function segment_internal._fire_entered(int, segment.memberset, text[], segment.memberset[], date, text) from rpl_refresher" \
  -c "update cust set bal = 50 where id = 4" >/dev/null
err=$(PGPASSWORD=segment_pipeline_pw psql -X -q -At -v ON_ERROR_STOP=1 -U rpl_refresher -d "$db" \
           -c "select count(*) from segment.refresh('rpl', '2026-07-03')" 2>&1 >/dev/null)
is "$(echo "$err" | grep -c "^WARNING:  after-refresh step fire_entry_rules of subject \"rpl\" failed: permission denied for function _fire_entered")" \
   "1" "a failing step: WARNING naming the step, the subject and the error"
is "$(kept)" \
   "4 true permission denied for function _fire_entered" \
   "committed: the state of the refresh (4 in rpl_low) and the step's error"

# 3. granted again: the next refresh fires the next entry, not the missed ones
q -c "grant execute on function segment_internal._fire_entered(int, segment.memberset, text[], segment.memberset[], date, text) to rpl_refresher" \
  -c "update cust set bal = 50 where id = 5" >/dev/null
err=$(PGPASSWORD=segment_pipeline_pw psql -X -q -At -v ON_ERROR_STOP=1 -U rpl_refresher -d "$db" \
           -c "select count(*) from segment.refresh('rpl', '2026-07-04')" 2>&1 >/dev/null)
is "$err" "" "a refresh whose steps succeed prints nothing"
is "$(q -c "select string_agg(o.key, ' ' order by o.key::int) from segment.opportunity o")" "5" \
   "it fires the next entry (5) only"

echo "1..$n"
exit $fail
