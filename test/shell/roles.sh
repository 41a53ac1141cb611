#!/bin/bash
# roles.sh: the roles of docs/security.md, each a LOGIN role given exactly
# segment.grant_role(role, kind) (plus SELECT on the subject table where the
# docs say so), connecting over a new connection (psql -U role):
#   - each does its kind's documented operations (issue 11, hole 7: the
#     refresher refreshes, with universe history, entry rules, generate and
#     CALL run_all);
#   - each is refused (42501) what its kind may not do;
#   - grant_role itself: 42501 for a role without the grant options, 22023
#     for an unknown kind, 42704 for an unknown role;
#   - internal functions are not executable by PUBLIC (a role with USAGE on
#     schema segment only), API functions are.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_roles_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
is() { n=$((n + 1)); if [[ "$1" == "$2" ]]; then echo "ok $n - $3"; else
         echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# as ROLE SQL: run SQL over a new connection as ROLE; prints the output, or
# the SQLSTATE of the error ("ERROR 42501")
as() {
    local role=$1; shift
    local out
    local pw=segment_roles_pw
    [[ $role == postgres ]] && pw=${PGPASSWORD:-}
    if out=$(PGPASSWORD=$pw psql -X -q -At -v ON_ERROR_STOP=1 -U "$role" -d "$db" \
                  -c '\set VERBOSITY verbose' -c "$1" 2>&1); then
        echo "$out"
    else
        echo "ERROR $(grep -Eo 'ERROR: +[0-9A-Z]{5}' <<<"$out" | grep -Eo '[0-9A-Z]{5}$' | head -1) $(head -c 300 <<<"$out" | tr '\n' ' ')"
    fi
}
state() { awk '{print $1 " " $2}' <<<"$1"; }   # "ERROR 42501" of an as() answer

roles="seg_t_reader seg_t_author seg_t_refresher seg_t_event seg_t_worker seg_t_admin seg_t_nobody seg_t_usage"
export PGOPTIONS="-c client_min_messages=warning"
cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1
    for r in $roles; do psql -X -q -d postgres -c "drop role if exists $r" >/dev/null 2>&1; done
}
trap cleanup EXIT
cleanup
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }

q >/dev/null <<'SQL' || { echo "not ok 1 - setup"; exit 1; }
create extension segment;
create table cust (id int primary key, owner int, org int, bal numeric, age int);
insert into cust select i, 100 + i % 5, i % 3, i * 10, 20 + i % 50 from generate_series(1, 1000) i;
create table staff (mid int primary key, org int);
insert into staff select 100 + i, i % 3 from generate_series(0, 4) i;
select segment.register_subject('cu', 'cust', 'id', org_column => 'org', owner_column => 'owner');
select segment.register_staff('cu', 'staff', 'mid', 'org');
select segment.create_tag('cu', 'rich', 'bal >= 5000');
select segment.create_tag('cu', 'young', 'age < 30');
select segment.create_scheme('cu', 'tier', array[['gold', 'bal >= 8000'], ['rest', 'true']]);
select segment.create_scorecard('cu', 'prio', 0, array[['bal >= 5000', '40'], ['age < 30', '10']]);
select segment.create_segment('cu', 'young_rich', 'rich and young');
select count(*) from segment.refresh('cu', current_date);
select segment.create_opportunity_rule('cu', 'big_deposit', 'rich', 'mining', 'call',
                                       template => 'Customer {id}', cooldown_days => 30);
select segment.create_opportunity_rule('cu', 'nightly_card', 'young', 'mining', 'card', assignment => 'pool');
select segment.attach_entry_rule('big_deposit', 'rich');
create table deposit (id bigserial primary key, cust_id int8 not null, amount numeric not null);
select segment.attach_event_rule('big_deposit', 'deposit', 'cust_id', 'amount > 1000');
SQL

for r in $roles; do
    q -c "create role $r login password 'segment_roles_pw'" || exit 1
done
# exactly what docs/security.md says: grant_role, and SELECT on the subject
# (and staff) tables for the roles whose functions read them
q >/dev/null <<'SQL' || { echo "not ok 1 - grants"; exit 1; }
select segment.grant_role('seg_t_reader', 'reader');
select segment.grant_role('seg_t_author', 'author');
select segment.grant_role('seg_t_refresher', 'refresher');
select segment.grant_role('seg_t_event', 'event_writer');
select segment.grant_role('seg_t_worker', 'worker');
select segment.grant_role('seg_t_admin', 'admin');
grant select on cust, staff to seg_t_reader, seg_t_author, seg_t_refresher, seg_t_event, seg_t_admin;
grant insert on deposit to seg_t_event;
grant usage on sequence deposit_id_seq to seg_t_event;
grant usage on schema segment to seg_t_usage;
SQL

# --- grant_role -------------------------------------------------------------------
is "$(q -c "select count(*) > 20 from segment.grant_role('seg_t_nobody', 'reader')" 2>&1)" "t" \
   "grant_role returns the GRANT statements it issued"
q -c "revoke all on schema segment from seg_t_nobody; revoke all on all tables in schema segment from seg_t_nobody;
      revoke all on all routines in schema segment from seg_t_nobody" >/dev/null
is "$(state "$(as seg_t_author "select segment.grant_role('seg_t_nobody', 'reader')")")" "ERROR 42501" \
   "grant_role by a role without the grant options: 42501"
is "$(q -c "select has_schema_privilege('seg_t_nobody', 'segment', 'USAGE')")" "f" "... and nothing was granted"
is "$(state "$(as postgres "select segment.grant_role('seg_t_nobody', 'superuser')")")" "ERROR 22023" \
   "grant_role with an unknown kind: 22023"
is "$(state "$(as postgres "select segment.grant_role('seg_t_no_such_role', 'reader')")")" "ERROR 42704" \
   "grant_role with an unknown role: 42704"
is "$(q -c "select string_agg(distinct object_type, ',' order by object_type)
              from segment_internal._role_grant_statements('seg_t_nobody', 'author')")" "function,schema,sequence,table" \
   "the author kind grants schema usage, tables, sequences and functions"

# --- PUBLIC: internal functions are not executable --------------------------------
is "$(q -c "select count(*) from pg_proc p where p.pronamespace = 'segment'::regnamespace
              and p.proname like '\_%'")" "0" \
   "schema segment holds no internal function (they are in segment_internal)"
is "$(q -c "select count(*) from pg_proc p where p.pronamespace = 'segment_internal'::regnamespace
              and has_function_privilege('seg_t_usage', p.oid, 'EXECUTE')")" "0" \
   "a role with USAGE on schema segment only may execute no internal function"
is "$(q -c "select has_schema_privilege('seg_t_usage', 'segment_internal', 'USAGE')")" "f" \
   "... and has no USAGE on schema segment_internal"
is "$(q -c "select string_agg(p.proname, ',' order by p.proname) from pg_proc p
              where p.pronamespace = 'segment_internal'::regnamespace
                and p.proname in ('_rule_columns', '_live_rows', '_generate', '_live_tag')
                and has_function_privilege('seg_t_reader', p.oid, 'EXECUTE')")" "_live_tag" \
   "a reader may execute the helpers its functions call (_live_tag), not the others"
is "$(state "$(as seg_t_usage "select segment_internal._rule_columns('cust', 'bal > 0')")")" "ERROR 42501" \
   "... _rule_columns: 42501"
is "$(state "$(as seg_t_usage "select segment_internal._live_rows()")")" "ERROR 42501" "... _live_rows: 42501"
is "$(as seg_t_usage "select segment.cardinality(segment.memberset(array[1,2,3]))")" "3" \
   "... memberset functions stay executable (API)"
is "$(as seg_t_usage "select count(*) from (select segment.memberset_agg(i) from generate_series(1, 5) i) x")" "1" \
   "... memberset aggregates too"

# --- reader ---------------------------------------------------------------------------
is "$(as seg_t_reader "select segment.count('cu', 'rich')")" "501" "reader: count"
is "$(as seg_t_reader "select count(*) from segment.members('cu', 'young_rich')")" "$(q -c "select count(*) from cust where bal >= 5000 and age < 30")" \
   "reader: members of a segment"
is "$(as seg_t_reader "select segment.has_tag('cu', 999, 'rich'), segment.tags('cu', 999)")" "t|{rich}" "reader: has_tag, tags"
is "$(as seg_t_reader "select segment.bucket_of('cu', 999, 'tier'), segment.score('cu', 999, 'prio')")" "gold|40" \
   "reader: bucket_of, score"
is "$(as seg_t_reader "select segment.explain('cu', 999, 'rich') ->> 'value'")" "true" "reader: explain"
is "$(as seg_t_reader "select count(*) from segment.overlap('cu', array['rich', 'young'])")" \
   "$(q -c "select count(*) from segment.overlap('cu', array['rich', 'young'])")" "reader: overlap"
is "$(as seg_t_reader "select count(*) > 0 from segment.top('cu', 'prio', 'rich', 5)")" "t" "reader: top"
is "$(as seg_t_reader "select count(*) >= 0 from segment.nightly_history")" "t" "reader: nightly_history"
is "$(as seg_t_reader "select count(*) >= 0 from segment.rule_review")" "t" "reader: rule_review"
is "$(state "$(as seg_t_reader "select segment.create_tag('cu', 'r_tag', 'bal > 1')")")" "ERROR 42501" \
   "reader cannot create_tag (42501)"
is "$(state "$(as seg_t_reader "select count(*) from segment.refresh('cu')")")" "ERROR 42501" \
   "reader cannot refresh (42501)"
is "$(state "$(as seg_t_reader "select segment.set_tag('cu', 1, 'rich')")")" "ERROR 42501" \
   "reader cannot set_tag (42501)"

# --- author ------------------------------------------------------------------------------
is "$(as seg_t_author "select segment.create_tag('cu', 'a_tag', 'bal > 9000') > 0")" "t" "author: create_tag"
is "$(as seg_t_author "select segment.alter_tag('a_tag', rule => 'bal > 9500')")" "" "author: alter_tag"
is "$(as seg_t_author "select segment.create_tag('cu', 'vip', null) > 0; select segment.set_tag('cu', 7, 'vip')")" "t" \
   "author: a manual tag and set_tag"
is "$(as seg_t_author "select segment.create_segment('cu', 'a_seg', 'a_tag and young') > 0")" "t" "author: create_segment"
is "$(as seg_t_author "select segment.create_scheme('cu', 'a_scheme', array[['hi', 'bal > 5000'], ['lo', 'true']]) > 0")" "t" \
   "author: create_scheme"
is "$(as seg_t_author "select segment.create_scorecard('cu', 'a_card', 0, array[['bal > 5000', '1']]) > 0")" "t" \
   "author: create_scorecard"
is "$(as seg_t_author "select segment.create_opportunity_rule('cu', 'a_rule', 'a_tag', 'mining', 'call', assignment => 'pool') > 0")" "t" \
   "author: create_opportunity_rule"
is "$(as seg_t_author "select segment.drop_opportunity_rule('a_rule'); select segment.drop_segment('a_seg');
                        select segment.drop_tag('a_tag')")" "" \
   "author: drop_opportunity_rule, drop_segment, drop_tag"
is "$(state "$(as seg_t_author "select count(*) from segment.refresh('cu')")")" "ERROR 42501" \
   "author cannot refresh (42501)"
is "$(state "$(as seg_t_author "select segment.register_subject('c2', 'cust', 'id')")")" "ERROR 42501" \
   "author cannot register_subject (42501)"
is "$(state "$(as seg_t_author "select segment.enable_live('cu')")")" "ERROR 42501" \
   "author cannot enable_live (42501)"

# --- refresher (hole 7) -------------------------------------------------------------------
q -c "update cust set bal = bal + 6000 where id <= 10" >/dev/null   # ten customers enter "rich"
out=$(as seg_t_refresher "select count(*) from segment.refresh('cu', current_date)")
[[ $out =~ ^[0-9]+$ ]] && (( out >= 4 )); ok $? "refresher: refresh (writes universe_history; hole 7) ($out)"
is "$(q -c "select run_by from segment.run order by run_id desc limit 1")" "seg_t_refresher" "... logged as the refresher"
is "$(q -c "select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id)
              where r.name = 'big_deposit' and o.member_id <= 10")" "10" \
   "... the entry rule fired for the ten customers who entered"
is "$(as seg_t_refresher "select count(*) > 0 from segment.generate('nightly_card', current_date)")" "t" "refresher: generate"
is "$(as seg_t_refresher "select segment.expire_opportunities(current_date) >= 0")" "t" "refresher: expire"
is "$(as seg_t_refresher "call segment.run_all(current_date)" | head -1 | grep -c .)" "1" "refresher: CALL run_all"
is "$(q -c "select status from segment.nightly_run order by run_id desc limit 1")" "succeeded" "... the nightly run succeeded"
is "$(state "$(as seg_t_refresher "select segment.create_tag('cu', 'f_tag', 'bal > 1')")")" "ERROR 42501" \
   "refresher cannot create_tag (42501)"

# --- event_writer ---------------------------------------------------------------------------
before=$(q -c "select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id) where r.name = 'big_deposit'")
is "$(as seg_t_event "insert into deposit (cust_id, amount) values (999, 5000), (998, 5000), (5, 10)")" "" \
   "event_writer: inserts events"
is "$(q -c "select count(*) - $before from segment.opportunity o join segment.opportunity_rule r using (rule_id) where r.name = 'big_deposit'")" "2" \
   "... the event rule made the two opportunities"
is "$(state "$(as seg_t_event "select segment.create_tag('cu', 'e_tag', 'bal > 1')")")" "ERROR 42501" \
   "event_writer cannot create_tag (42501)"

# --- worker -----------------------------------------------------------------------------------
opp=$(q -c "select opportunity_id from segment.opportunity where status = 'generated' and not is_control order by 1 limit 1")
[[ -n $opp ]] || opp=0
is "$(as seg_t_worker "select segment.opportunity_dispatch($opp); select segment.opportunity_start($opp); select segment.opportunity_complete($opp, true)")" "" \
   "worker: dispatch, start, complete"
is "$(q -c "select status, converted from segment.opportunity where opportunity_id = $opp")" "completed|t" "... the opportunity is completed, converted"
is "$(state "$(as seg_t_worker "select segment.create_tag('cu', 'w_tag', 'bal > 1')")")" "ERROR 42501" \
   "worker cannot create_tag (42501)"

# --- admin ------------------------------------------------------------------------------------
q -c "alter table cust owner to seg_t_admin" >/dev/null
is "$(as seg_t_admin "select segment.register_subject('cu2', 'cust', 'id') > 0")" "t" "admin: register_subject"
is "$(as seg_t_admin "select segment.enable_live('cu')")" "" "admin: enable_live (as the owner of the subject table)"
q -c "update cust set bal = 1 where id = 999" >/dev/null
is "$(as seg_t_reader "select segment.has_tag('cu', 999, 'rich')")" "f" "... an application's update is live for readers"
is "$(as seg_t_admin "select segment.disable_live('cu'); select segment.unregister_subject('cu2')")" "" \
   "admin: disable_live, unregister_subject"

echo "1..$n"
exit $fail
