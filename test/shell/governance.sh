#!/bin/bash
# governance.sh (issue 12, docs/security.md): the built-in roles of
# segment.install_roles(), each held by a LOGIN role that connects over a
# new connection (psql -U role), on a 6-unit org tree (head office, 2
# branches, 3 sub-branches):
#   - every login sees exactly its opportunities, their log and reviews
#     (manager: own; branch head: org subtree; head office and admin,
#     analyst, auditor: all), compared with plain SQL over the tree;
#   - every cell of the capability matrix of docs/security.md;
#   - a manager counts an audience but cannot list its members (42501 with
#     a hint); the exporter can, and the export is audited with its row count;
#   - the audit trail: definition changes with before/after, mappings,
#     lifecycle actions, manual tags; the auditor reads it, a manager does
#     not; UPDATE, DELETE and TRUNCATE fail even for a superuser;
#     verify_audit() is NULL, and returns the id of a row a superuser changed
#     with the triggers disabled (and of a removed last row);
#   - masking of pii columns in explain and rendered templates;
#   - bad inputs (cycle, orphan, unknown column, login, unit) with specific
#     SQLSTATEs and nothing changed.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_gov_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
is() { n=$((n + 1)); if [[ "$1" == "$2" ]]; then echo "ok $n - $3"; else
         echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
pw=segment_gov_pw
# as ROLE SQL: SQL over a new connection as ROLE; its output, or "ERROR <SQLSTATE> <message>"
as() {
    local role=$1; shift
    local out p=$pw
    [[ $role == postgres ]] && p=${PGPASSWORD:-}
    if out=$(PGPASSWORD=$p psql -X -q -At -v ON_ERROR_STOP=1 -U "$role" -d "$db" \
                  -c '\set VERBOSITY verbose' -c "$1" 2>&1); then
        echo "$out"
    else
        echo "ERROR $(grep -Eo 'ERROR: +[0-9A-Z]{5}' <<<"$out" | grep -Eo '[0-9A-Z]{5}$' | head -1) $(head -c 400 <<<"$out" | tr '\n' ' ')"
    fi
}
state() { awk '{print $1 " " $2}' <<<"$1"; }
can() {   # can ROLE SQL: "yes" when it runs, else the SQLSTATE
    local r
    r=$(as "$1" "$2")
    if [[ $r == ERROR* ]]; then awk '{print $2}' <<<"$r"; else echo yes; fi
}

logins="g_admin g_analyst g_mgr_s11 g_mgr_b1 g_head_b1 g_head_b2 g_head_ho g_auditor g_exporter g_analyst_exp g_nobody"
export PGOPTIONS="-c client_min_messages=warning"
cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1
    for r in $logins; do psql -X -q -d postgres -c "drop role if exists $r" >/dev/null 2>&1; done
}
trap cleanup EXIT
cleanup
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }

q >/dev/null <<'SQL' || { echo "not ok 1 - setup"; exit 1; }
create extension segment;
create schema dw;
create table dw.org (unit_id text primary key, parent_id text, name text);
insert into dw.org values ('HO', null, 'head office'), ('B1', 'HO', 'branch 1'), ('B2', 'HO', 'branch 2'),
                          ('S11', 'B1', 'sub-branch 1.1'), ('S12', 'B1', 'sub-branch 1.2'), ('S21', 'B2', 'sub-branch 2.1');
-- 120 customers, 20 per unit; manager m_<unit>_<0|1> owns them
create table dw.cust (id int primary key, name text, mobile text, org text, owner text, bal numeric);
insert into dw.cust
select i, (array['王小明', '李华', '张伟'])[1 + i % 3], '138' || lpad((i * 7919 % 100000000)::text, 8, '0'),
       u.unit_id, 'm_' || u.unit_id || '_' || (i / 6) % 2, i * 100
  from generate_series(1, 120) i
  join (select unit_id, row_number() over (order by unit_id) - 1 as k from dw.org) u on u.k = i % 6;
create table dw.staff (mid text primary key, org text);
insert into dw.staff select distinct owner, org from dw.cust;
select segment.register_subject('cu', 'dw.cust', 'id', org_column => 'org', owner_column => 'owner');
select segment.register_staff('cu', 'dw.staff', 'mid', 'org');
select segment.create_tag('cu', 'rich', 'bal >= 3000');
select segment.create_tag('cu', 'any', 'true');
select count(*) from segment.refresh('cu', current_date);
select segment.create_opportunity_rule('cu', 'call_all', 'any', 'maintenance', 'call',
                                       template => 'Call {name|mask} on {mobile}', cooldown_days => 0);
select count(*) from segment.generate('call_all', current_date);
SQL

# --- bad inputs before anything is registered or mapped ----------------------------
q >/dev/null <<'SQL'
create table dw.org_cycle (u text, p text);
insert into dw.org_cycle values ('HO', null), ('A', 'B'), ('B', 'C'), ('C', 'A');
create table dw.org_orphan (u text, p text);
insert into dw.org_orphan values ('HO', null), ('A', 'HO'), ('X', 'NOPE');
create table dw.org_self (u text, p text);
insert into dw.org_self values ('HO', null), ('A', 'A');
create table dw.org_dup (u text, p text);
insert into dw.org_dup values ('HO', null), ('A', 'HO'), ('A', 'HO');
SQL
is "$(state "$(as postgres "select segment.register_org_tree('dw.org_cycle', 'u', 'p')")")" "ERROR 42P19" "register_org_tree: a cycle is refused (42P19)"
is "$(state "$(as postgres "select segment.register_org_tree('dw.org_self', 'u', 'p')")")" "ERROR 42P19" "register_org_tree: a unit that is its own parent is refused (42P19)"
is "$(state "$(as postgres "select segment.register_org_tree('dw.org_orphan', 'u', 'p')")")" "ERROR 23503" "register_org_tree: an orphan is refused (23503)"
is "$(state "$(as postgres "select segment.register_org_tree('dw.org_dup', 'u', 'p')")")" "ERROR 23505" "register_org_tree: a duplicate unit is refused (23505)"
is "$(state "$(as postgres "select segment.register_org_tree('dw.org', 'unit_id', 'no_such')")")" "ERROR 42703" "register_org_tree: an unknown column is refused (42703)"
is "$(q -c "select (select count(*) from segment.org_unit) + (select count(*) from segment.org_tree)")" "0" "... and nothing was registered"
is "$(q -c "select segment.register_org_tree('dw.org', 'unit_id', 'parent_id')")" "6" "register_org_tree: 6 units"
is "$(q -c "select string_agg(unit || ':' || coalesce(parent, '-') || ':' || depth, ' ' order by unit) from segment.org_unit")" \
   "B1:HO:1 B2:HO:1 HO:-:0 S11:B1:2 S12:B1:2 S21:B2:2" "... with parents and depths"
tree_before=$(q -c "select string_agg(unit || ':' || coalesce(parent, '-'), ' ' order by unit) from segment.org_unit")
is "$(state "$(as postgres "select segment.register_org_tree('dw.org_cycle', 'u', 'p')")")" "ERROR 42P19" "a cycle over a registered tree: refused"
is "$(q -c "select string_agg(unit || ':' || coalesce(parent, '-'), ' ' order by unit) from segment.org_unit")" "$tree_before" "... the registered tree is unchanged"

# --- install_roles -------------------------------------------------------------------
is "$(q -c "select segment_internal._governed()")" "f" "before install_roles the database is not governed"
is "$(q -c "select relrowsecurity from pg_class where oid = 'segment.opportunity'::regclass")" "f" "... and has no row-level security"
q -c "select * from segment.install_roles()" >/dev/null; ok $? "install_roles"
q -c "select * from segment.install_roles()" >/dev/null; ok $? "install_roles again (idempotent)"
is "$(q -c "select string_agg(rolname || ':' || rolcanlogin, ' ' order by rolname) from pg_roles where rolname like 'segment\_%'")" \
   "segment_admin:false segment_analyst:false segment_auditor:false segment_branch_head:false segment_exporter:false segment_manager:false" \
   "the six built-in roles exist, NOLOGIN"
is "$(q -c "select segment_internal._governed(), (select relrowsecurity from pg_class where oid = 'segment.opportunity'::regclass)")" "t|t" \
   "the database is governed, row-level security is on"

for r in $logins; do q -c "create role $r login password '$pw'" >/dev/null || exit 1; done
q >/dev/null <<'SQL' || { echo "not ok - grants"; exit 1; }
grant segment_admin to g_admin;
grant segment_analyst to g_analyst;
grant segment_manager to g_mgr_s11, g_mgr_b1;
grant segment_branch_head to g_head_b1, g_head_b2, g_head_ho;
grant segment_auditor to g_auditor;
grant segment_exporter to g_exporter;
grant segment_analyst, segment_exporter to g_analyst_exp;
-- explain and render read the customer's row: SELECT on the subject table
-- (the warehouse's own grants; segment adds its scope check on top)
grant usage on schema dw to segment_admin, segment_analyst, segment_manager, segment_branch_head, segment_auditor, segment_exporter;
grant select on all tables in schema dw to segment_admin, segment_analyst, segment_manager, segment_branch_head, segment_auditor, segment_exporter;
select segment.map_user('g_mgr_s11', manager => 'm_S11_0');
select segment.map_user('g_mgr_b1', manager => 'm_B1_1', org_unit => 'B1');
select segment.map_user('g_head_b1', org_unit => 'B1');
select segment.map_user('g_head_b2', org_unit => 'B2');
select segment.map_user('g_head_ho', org_unit => 'HO');
SQL

# map_user bad inputs
map_before=$(q -c "select string_agg(login || ':' || coalesce(manager, '-') || ':' || coalesce(org_unit, '-'), ' ' order by login) from segment.user_map")
is "$(state "$(as postgres "select segment.map_user('no_such_login', 'm1')")")" "ERROR 42704" "map_user: an unknown login is refused (42704)"
is "$(state "$(as postgres "select segment.map_user('g_head_b1', org_unit => 'NOPE')")")" "ERROR 42704" "map_user: an unknown org unit is refused (42704)"
is "$(state "$(as postgres "select segment.map_user(NULL, 'm1')")")" "ERROR 22004" "map_user: a NULL login is refused (22004)"
is "$(state "$(as g_analyst "select segment.map_user('g_analyst', 'm_S11_0')")")" "ERROR 42501" "map_user by an analyst: 42501"
is "$(state "$(as g_mgr_s11 "select segment.map_user('g_mgr_s11', org_unit => 'HO')")")" "ERROR 42501" "map_user by a manager (to widen its own scope): 42501"
is "$(q -c "select string_agg(login || ':' || coalesce(manager, '-') || ':' || coalesce(org_unit, '-'), ' ' order by login) from segment.user_map")" \
   "$map_before" "... the mappings are unchanged"

# --- the done-when scenario: each login sees exactly its opportunities --------------
# expected, by plain SQL over the tree (as superuser)
subtree() { echo "with recursive t(u) as (select '$1'::text union select o.unit_id from dw.org o join t on o.parent_id = t.u) select u from t"; }
ids() { q -c "select coalesce(string_agg(opportunity_id::text, ',' order by opportunity_id), '') from segment.opportunity where $1"; }
seen() { as "$1" "select coalesce(string_agg(opportunity_id::text, ',' order by opportunity_id), '') from segment.opportunity"; }
all=$(ids "true")
[[ $(q -c "select count(*) from segment.opportunity") == 120 ]]; ok $? "120 opportunities generated, one per customer"
is "$(seen g_mgr_s11)" "$(ids "manager = 'm_S11_0'")" "manager g_mgr_s11 sees exactly the opportunities of m_S11_0"
[[ $(as g_mgr_s11 "select count(*) from segment.opportunity") -gt 0 ]]; ok $? "... which are not none"
is "$(seen g_mgr_b1)" "$(ids "manager = 'm_B1_1'")" "manager g_mgr_b1 (also mapped to B1) sees only its own: the manager role scopes by manager id"
is "$(seen g_head_b1)" "$(ids "org_unit in ($(subtree B1))")" "branch head of B1 sees the subtree B1, S11, S12"
is "$(as g_head_b1 "select string_agg(distinct org_unit, ',' order by org_unit) from segment.opportunity")" "B1,S11,S12" "... which has units B1, S11, S12"
is "$(seen g_head_b2)" "$(ids "org_unit in ($(subtree B2))")" "branch head of B2 sees B2, S21"
is "$(seen g_head_ho)" "$all" "head office sees all"
is "$(seen g_admin)" "$all" "segment_admin sees all"
is "$(as g_analyst "select string_agg(opportunity_id::text, ',' order by opportunity_id) from segment.opportunity")" "$all" "segment_analyst sees all (without personal columns)"
is "$(as g_auditor "select string_agg(opportunity_id::text, ',' order by opportunity_id) from segment.opportunity")" "$all" "segment_auditor sees all (without personal columns)"
is "$(state "$(as g_auditor "select key, message from segment.opportunity limit 1")")" "ERROR 42501" "segment_auditor: key and message are not readable (42501)"
is "$(state "$(as g_analyst "select member_id from segment.opportunity limit 1")")" "ERROR 42501" "segment_analyst: member_id is not readable (42501)"
is "$(seen g_exporter)" "" "segment_exporter alone sees no opportunity"
[[ $(seen g_nobody) == "ERROR 42501"* ]]; ok $? "a login without a segment role cannot read segment.opportunity (42501)"

# --- lifecycle in scope; log and reviews scoped ---------------------------------------
own=$(q -c "select min(opportunity_id) from segment.opportunity where manager = 'm_S11_0'")
other=$(q -c "select min(opportunity_id) from segment.opportunity where manager = 'm_S21_0'")
b1=$(q -c "select min(opportunity_id) from segment.opportunity where org_unit = 'S12'")
is "$(as g_mgr_s11 "select segment.opportunity_dispatch($own); select segment.opportunity_start($own)")" "" "manager dispatches and starts its own opportunity"
is "$(state "$(as g_mgr_s11 "select segment.opportunity_dispatch($other)")")" "ERROR 42704" "manager cannot dispatch another manager's opportunity (42704: not visible)"
is "$(state "$(as g_mgr_s11 "update segment.opportunity set manager = 'm_S21_0' where opportunity_id = $own")")" "ERROR 42501" \
   "manager cannot give its opportunity away by UPDATE (42501: row-level security)"
is "$(state "$(as g_mgr_s11 "select segment.opportunity_reassign($own, 'm_S11_1')")")" "ERROR 42501" "manager cannot reassign (42501)"
is "$(as g_head_b1 "select segment.opportunity_dispatch($b1); select segment.opportunity_reassign($b1, 'm_S12_1')")" "" "branch head dispatches and reassigns within its subtree"
is "$(q -c "select manager, status from segment.opportunity where opportunity_id = $b1")" "m_S12_1|dispatched" "... the opportunity moved"
is "$(state "$(as g_head_b1 "select segment.opportunity_reassign($other, 'm_S11_0')")")" "ERROR 42704" "branch head of B1 cannot reassign an opportunity of B2 (42704: not visible)"
is "$(as g_head_ho "select segment.opportunity_dispatch($other)")" "" "head office dispatches anywhere"
is "$(as g_mgr_s11 "select string_agg(distinct opportunity_id::text, ',') from segment.opportunity_log")" "$own" "manager sees only the log of its own opportunities"
is "$(as g_head_b1 "select string_agg(distinct opportunity_id::text, ',' order by opportunity_id::text) from segment.opportunity_log")" \
   "$(q -c "select string_agg(distinct l.opportunity_id::text, ',' order by l.opportunity_id::text) from segment.opportunity_log l join segment.opportunity o using (opportunity_id) where o.org_unit in ($(subtree B1))")" \
   "branch head sees the log of its subtree"
is "$(as g_auditor "select count(*) from segment.opportunity_log")" "$(q -c "select count(*) from segment.opportunity_log")" "auditor sees the whole log"
is "$(as g_mgr_s11 "select string_agg(manager || ':' || assigned, ',') from segment.manager_review")" \
   "m_S11_0:$(q -c "select count(*) from segment.opportunity where manager = 'm_S11_0' and not is_control")" "manager_review: a manager sees only its own row"
is "$(as g_head_b1 "select sum(generated) from segment.rule_review")" \
   "$(q -c "select count(*) from segment.opportunity where not is_control and org_unit in ($(subtree B1))")" "rule_review: a branch head counts its subtree only"
is "$(as g_auditor "select sum(generated) from segment.review(current_date - 1, current_date + 1)")" "120" "review(): the auditor counts all"

# --- export control ---------------------------------------------------------------
rich=$(q -c "select count(*) from dw.cust where bal >= 3000")
is "$(as g_mgr_s11 "select segment.count('cu', 'rich')")" "$rich" "a manager counts an audience"
r=$(as g_mgr_s11 "select count(*) from segment.members('cu', 'rich')")
is "$(state "$r")" "ERROR 42501" "... but cannot list its members (42501)"
[[ $r == *"HINT:"*"segment_exporter"* ]]; ok $? "... with a hint naming segment_exporter"
for f in "segment.members_text('cu', 'rich')" "segment.keys('cu', segment.audience('cu', 'rich'))"; do
    is "$(state "$(as g_analyst "select count(*) from $f")")" "ERROR 42501" "analyst: $f refused (42501)"
done
exports_before=$(q -c "select count(*) from segment.audit where action = 'export'")
is "$(as g_exporter "select count(*) from segment.members('cu', 'rich')")" "$rich" "segment_exporter lists members"
is "$(as g_analyst_exp "select count(*) from segment.members_text('cu', 'rich')")" "$rich" "analyst + exporter lists members_text"
is "$(as g_analyst_exp "select count(*) from segment.keys('cu', segment.audience('cu', 'rich and not any'))")" "0" "... and keys"
is "$(q -c "select count(*) - $exports_before from segment.audit where action = 'export'")" "3" "three exports, three audit rows"
is "$(q -c "select actor || ':' || (detail->>'function') || ':' || (detail->>'rows') from segment.audit where action = 'export' order by audit_id")" \
   "g_exporter:segment.members:$rich
g_analyst_exp:segment.members_text:$rich
g_analyst_exp:segment.keys:0" "... with actor, function and row count"
is "$(q -c "select count(*) from segment.audit where action = 'export' and actor = 'g_mgr_s11'")" "0" "a refused export writes no audit row"

# the same with the member list streamed (Segment Member Scan, the default;
# a new backend's first statement) and with segment.stream_members off
[[ $(as g_exporter "explain (costs off) select count(*) from segment.members('cu', 'rich')") == *"Segment Member Scan"* ]]
ok $? "an exporter's member list is streamed (EXPLAIN of a new backend's first statement)"
is "$(as g_mgr_s11 "select count(*) from segment.members('cu', 'rich')")" \
   "$(as g_mgr_s11 "set segment.stream_members = off; select count(*) from segment.members('cu', 'rich')")" \
   "a manager's refusal: the same error streamed and not"
is "$(as g_mgr_s11 "select count(*) from segment.members('cu', 'rich', current_date)")" \
   "$(as g_mgr_s11 "set segment.stream_members = off; select count(*) from segment.members('cu', 'rich', current_date)")" \
   "... and as_of"
audit_rows() { q -c "select count(*) || ':' || coalesce(string_agg(actor || ':' || (detail->>'function') || ':' || (detail->>'rows') || ':' || (detail->>'audience'), ',' order by audit_id), '')
                     from segment.audit where action = 'export' and audit_id > $1"; }
for mode in on off; do
    last=$(q -c "select coalesce(max(audit_id), 0) from segment.audit")
    is "$(as g_exporter "set segment.stream_members = $mode; select count(*) from generate_series(1, 3) g, segment.members('cu', 'rich') m")" "$((3 * rich))" \
       "stream_members $mode: an exporter's list joined three times"
    is "$(audit_rows "$last")" "1:g_exporter:segment.members:$rich:rich" "... one export audited (the set is read once), with its row count"
    last=$(q -c "select coalesce(max(audit_id), 0) from segment.audit")
    is "$(as g_exporter "set segment.stream_members = $mode; select count(*) from (values ('rich'), ('rich and any'), ('any')) a(x), lateral segment.members('cu', a.x) m")" \
       "$((2 * rich + $(q -c "select count(*) from dw.cust")))" "stream_members $mode: LATERAL over three audiences"
    is "$(audit_rows "$last" | cut -d: -f1)" "3" "... three exports audited"
done

# --- per-customer readers: scope ---------------------------------------------------
own_c=$(q -c "select min(id) from dw.cust where owner = 'm_S11_0'")
s12_c=$(q -c "select min(id) from dw.cust where org = 'S12'")
b2_c=$(q -c "select min(id) from dw.cust where org = 'S21'")
q >/dev/null <<'SQL'
select segment.create_tag('cu', 'reachable', 'mobile is not null and name is not null');
select segment.create_scorecard('cu', 'value', 0, array[['bal >= 3000', '10'], ['bal >= 6000', '5']]);
select segment.create_scheme('cu', 'tier', array[['high', 'bal >= 6000'], ['rest', 'true']]);
select count(*) from segment.refresh('cu', current_date);
SQL
for f in "segment.tags('cu', %s)" "segment.has_tag('cu', %s, 'rich')" "segment.explain('cu', %s, 'reachable')" \
         "segment.bucket_of('cu', %s, 'tier')" "segment.score('cu', %s, 'value')" "segment.render('call_all', '%s')"; do
    own_f=$(printf "$f" "$own_c"); other_f=$(printf "$f" "$b2_c"); s12_f=$(printf "$f" "$s12_c")
    is "$(can g_mgr_s11 "select $own_f")" "yes" "manager: $own_f of its own customer"
    is "$(can g_mgr_s11 "select $other_f")" "42501" "manager: $other_f of another's customer: 42501"
    is "$(can g_head_b1 "select $s12_f")" "yes" "branch head B1: $s12_f of a customer of S12 (its subtree)"
    is "$(can g_head_b1 "select $other_f")" "42501" "branch head B1: $other_f of a customer of S21: 42501"
    is "$(can g_head_ho "select $other_f")" "yes" "head office: $other_f"
    is "$(can g_auditor "select $other_f")" "yes" "auditor: $other_f"
done
is "$(can g_mgr_s11 "select segment.set_tag('cu', '$b2_c', 'vip')")" "42501" "manager: set_tag on another's customer: 42501"
is "$(can g_exporter "select segment.tags('cu', $own_c)")" "42501" "exporter alone: tags of a customer: 42501 (no scope)"

# --- top(): a customer-level list --------------------------------------------------------
is "$(can g_mgr_s11 "select * from segment.top('cu', 'value', 'rich', 5)")" "42501" "manager: top() refused (42501)"
is "$(can g_analyst "select * from segment.top('cu', 'value', NULL, 5)")" "42501" "analyst: top() refused (42501)"
is "$(as g_exporter "select count(*) from segment.top('cu', 'value', 'rich', 5)")" "5" "exporter: top()"
is "$(q -c "select actor || ':' || (detail->>'function') || ':' || (detail->>'rows') from segment.audit where action = 'export' order by audit_id desc limit 1")" \
   "g_exporter:segment.top:5" "... audited with its row count"

# --- masking ---------------------------------------------------------------------------
is "$(state "$(as g_admin "select segment.set_column_sensitivity('cu', 'no_such', 'pii')")")" "ERROR 42703" "set_column_sensitivity: unknown column (42703)"
is "$(state "$(as g_admin "select segment.set_column_sensitivity('cu', 'mobile', 'secret')")")" "ERROR 22023" "set_column_sensitivity: unknown sensitivity (22023)"
is "$(state "$(as g_admin "select segment.set_column_sensitivity('nope', 'mobile', 'pii')")")" "ERROR 42704" "set_column_sensitivity: unknown subject (42704)"
is "$(q -c "select count(*) from segment.column_sensitivity")" "0" "... nothing recorded"
is "$(as g_admin "select segment.set_column_sensitivity('cu', 'mobile', 'pii'); select segment.set_column_sensitivity('cu', 'name', 'pii')")" "" \
   "segment_admin marks mobile and name as pii"
mobile=$(q -c "select mobile from dw.cust where id = $own_c")
name=$(q -c "select name from dw.cust where id = $own_c")
masked_mobile="${mobile:0:3}****${mobile:7}"
is "$(as g_mgr_s11 "select segment.explain('cu', $own_c, 'reachable')->'why'->'args'->0->'columns'->>'mobile'")" "$masked_mobile" \
   "explain for a manager: the mobile is masked ($masked_mobile)"
is "$(as g_mgr_s11 "select segment.explain('cu', $own_c, 'reachable')->'why'->'args'->1->'columns'->>'name'")" "${name:0:1}$(printf '*%.0s' $(seq 2 ${#name}))" \
   "explain for a manager: the name is masked"
is "$(as g_admin "select segment.explain('cu', $own_c, 'reachable')->'why'->'args'->0->'columns'->>'mobile'")" "$masked_mobile" "explain for segment_admin (not an exporter): masked"
is "$(as g_analyst_exp "select segment.explain('cu', $own_c, 'reachable')->'why'->'args'->0->'columns'->>'mobile'")" "$mobile" "explain for an exporter: in clear"
is "$(as g_mgr_s11 "select segment.render('call_all', '$own_c')")" "Call ${name:0:1}$(printf '*%.0s' $(seq 2 ${#name})) on $masked_mobile" "render for a manager: masked"
is "$(as g_analyst_exp "select segment.render('call_all', '$own_c')")" "Call ${name:0:1}$(printf '*%.0s' $(seq 2 ${#name})) on $mobile" "render for an exporter: the mobile in clear ({name|mask} masks for everyone)"
is "$(q -c "select count(*) from segment.audit where action = 'column_sensitivity.insert'")" "2" "sensitivity changes are audited"

# --- the capability matrix of docs/security.md, cell by cell ----------------------------
# one LOGIN role per built-in role (the exporter's masking cell: with the analyst's scope)
roles6=(g_admin g_analyst g_mgr_s11 g_head_b1 g_auditor g_exporter)
cell() {   # cell CAPABILITY SQL-TEMPLATE EXPECTED...  (%r in the SQL: the role's login)
    local cap=$1 tpl=$2 i=0 r sql
    shift 2
    for r in "${roles6[@]}"; do
        sql=${tpl//%r/$r}
        is "$(can "$r" "$sql")" "$1" "matrix: $cap, ${r}: $1"
        shift
    done
}
cell "map_user" "select segment.map_user('g_nobody', 'm_zz')" yes 42501 42501 42501 42501 42501
cell "set_column_sensitivity" "select segment.set_column_sensitivity('cu', 'bal', NULL)" yes 42501 42501 42501 42501 42501
cell "refresh_org_tree" "select segment.refresh_org_tree()" yes 42501 42501 42501 42501 42501
q -c "select segment.map_user('g_nobody')" >/dev/null
cell "create_tag" "select segment.create_tag('cu', 'mx_%r', 'bal > 1')" yes yes 42501 42501 42501 42501
cell "refresh" "select count(*) from segment.refresh('cu')" yes yes 42501 42501 42501 42501
cell "count" "select segment.count('cu', 'rich')" yes yes yes yes yes yes
cell "overlap" "select count(*) from segment.overlap('cu', array['rich', 'any'])" yes yes yes yes yes yes
cell "members" "select count(*) from segment.members('cu', 'rich')" 42501 42501 42501 42501 42501 yes
cell "members_text" "select count(*) from segment.members_text('cu', 'rich')" 42501 42501 42501 42501 42501 yes
cell "keys" "select count(*) from segment.keys('cu', segment.audience('cu', 'rich'))" 42501 42501 42501 42501 42501 yes
cell "top" "select count(*) from segment.top('cu', 'value', NULL, 3)" 42501 42501 42501 42501 42501 yes
for f in members members_text; do
    for r in g_analyst g_mgr_s11 g_head_b1 g_auditor; do
        is "$(can "$r" "select count(*) from segment.$f('cu', 'rich', current_date)")" "42501" "matrix: $f(subject, audience, as_of), ${r}: 42501"
    done
    [[ $(can g_exporter "select count(*) from segment.$f('cu', 'rich', current_date)") != 42501 ]]
    ok $? "matrix: $f(subject, audience, as_of), g_exporter: not refused for privileges (the subject keeps no snapshots)"
done
cell "the journeys' outbox: customer column" "select count(customer) from segment.outbox" yes 42501 42501 42501 42501 yes
cell "the journeys' outbox: aggregates" "select count(outbox_id) from segment.outbox" yes yes 42501 42501 yes yes
cell "journey instances: key column" "select count(key) from segment.journey_instance" yes 42501 42501 42501 42501 yes
cell "tags of the manager's own customer (in B1's subtree)" "select segment.tags('cu', $own_c)" yes yes yes yes yes 42501
cell "tags of a customer of S21" "select segment.tags('cu', $b2_c)" yes yes 42501 42501 yes 42501
q -c "select segment.create_tag('cu', 'mx_manual', NULL)" >/dev/null
cell "set_tag of the manager's own customer" "select segment.set_tag('cu', '$own_c', 'mx_manual')" yes yes 42501 42501 42501 42501
for r in "${roles6[@]}"; do
    case $r in
      g_admin|g_analyst|g_auditor) exp=$all;;
      g_mgr_s11) exp=$(ids "manager = 'm_S11_0'");;
      g_head_b1) exp=$(ids "org_unit in ($(subtree B1))");;
      g_exporter) exp="";;
    esac
    is "$(as "$r" "select coalesce(string_agg(opportunity_id::text, ',' order by opportunity_id), '') from segment.opportunity")" "$exp" \
       "matrix: rows of segment.opportunity, $r"
done
gen() { q -c "select min(opportunity_id) from segment.opportunity where status = 'generated' and not is_control and $1"; }
for r in "${roles6[@]}"; do
    case $r in
      g_admin) o=$(gen "org_unit = 'S21'"); exp=yes;;
      g_mgr_s11) o=$(gen "manager = 'm_S11_0'"); exp=yes;;
      g_head_b1) o=$(gen "org_unit = 'S12'"); exp=yes;;
      *) o=$(gen "true"); exp=42501;;
    esac
    is "$(can "$r" "select segment.opportunity_dispatch($o)")" "$exp" "matrix: dispatch in scope, $r: $exp"
    case $r in
      g_admin) exp=yes; to=m_S21_1;; g_head_b1) exp=yes; to=m_S12_0;; *) exp=42501; to=m_S11_1;;
    esac
    is "$(can "$r" "select segment.opportunity_reassign($o, '$to')")" "$exp" "matrix: reassign in scope, $r: $exp"
done
cell "read segment.audit" "select count(*) from segment.audit" yes 42501 42501 42501 yes 42501
cell "verify_audit()" "select segment.verify_audit()" yes 42501 42501 42501 yes 42501
roles6=(g_admin g_analyst g_mgr_s11 g_head_b1 g_auditor g_analyst_exp)
q -c "select segment.set_column_sensitivity('cu', 'mobile', 'pii')" >/dev/null
mob=$(q -c "select mobile from dw.cust where id = $own_c")
for r in "${roles6[@]}"; do
    exp="${mob:0:3}****${mob:7}"; [[ $r == g_analyst_exp ]] && exp=$mob
    is "$(as "$r" "select segment.explain('cu', $own_c, 'reachable')->'why'->'args'->0->'columns'->>'mobile'")" "$exp" \
       "matrix: a pii column in explain, $r: $([[ $exp == "$mob" ]] && echo in clear || echo masked)"
done

# --- the audit trail ----------------------------------------------------------------
is "$(as g_analyst "select segment.create_tag('cu', 'poor', 'bal < 500') > 0; select segment.alter_tag('poor', rule => 'bal < 600')")" "t" "analyst creates and alters a tag"
is "$(q -c "select action || ':' || coalesce(detail->'before'->>'rule', '-') || ':' || coalesce(detail->'after'->>'rule', '-') || ':' || actor
              from segment.audit where object = 'poor' and action like 'tag.%' order by audit_id")" \
   "tag.insert:-:bal < 500:g_analyst
tag.update:bal < 500:bal < 600:g_analyst" "definition changes are audited with before and after, and the actor"
is "$(q -c "select count(*) from segment.audit where action = 'user_map.insert' and object <> 'g_nobody'")" "5" "the five mappings are audited"
is "$(q -c "select string_agg(action || ':' || object || ':' || actor, ',' order by audit_id) from segment.audit where action like 'opportunity.%' and object in ('$own', '$b1', '$other')")" \
   "opportunity.dispatched:$own:g_mgr_s11,opportunity.in_progress:$own:g_mgr_s11,opportunity.dispatched:$b1:g_head_b1,opportunity.reassign:$b1:g_head_b1,opportunity.dispatched:$other:g_head_ho" \
   "lifecycle actions are audited (dispatch, start, reassign) with the actor"
is "$(as g_analyst "select segment.create_tag('cu', 'vip', NULL) > 0; select segment.set_tag('cu', '7', 'vip')")" "t" "analyst sets a manual tag"
is "$(q -c "select action || ':' || object || ':' || actor from segment.audit order by audit_id desc limit 1")" "manual_tag.insert:7:g_analyst" "set_tag is audited"
is "$(as g_admin "select segment.refresh_org_tree()")" "6" "segment_admin reads the org tree again"
is "$(q -c "select actor from segment.audit where action = 'org_tree.update' order by audit_id desc limit 1")" "g_admin" "... which is audited"
[[ $(as g_auditor "select count(*) from segment.audit") -gt 10 ]]; ok $? "the auditor reads the audit trail"
is "$(state "$(as g_mgr_s11 "select count(*) from segment.audit")")" "ERROR 42501" "a manager cannot read it (42501)"
is "$(state "$(as g_analyst "select count(*) from segment.audit")")" "ERROR 42501" "an analyst cannot read it (42501)"
is "$(state "$(as g_admin "insert into segment.audit values (999999, now(), 'x', 'forged', null, null, null, '\\x00')")")" "ERROR 42501" \
   "segment_admin cannot insert into it (42501)"
is "$(state "$(as g_auditor "select segment_internal._audit('forged', null, null)")")" "ERROR 42501" "the auditor cannot append through _audit (42501)"
is "$(q -c "select segment.verify_audit() is null")" "t" "verify_audit(): intact (NULL)"

# dump and restore of a governed database: policies, grants, mappings and the chain survive
tmpd=$(mktemp -d)
rdb=${db}_restored
pg_dump -Fc -d "$db" -f "$tmpd/gov.dump"; ok $? "pg_dump of the governed database"
createdb "$rdb" && pg_restore -d "$rdb" "$tmpd/gov.dump" 2>"$tmpd/restore.err"; ok $? "pg_restore into a new database $(head -c 300 "$tmpd/restore.err" | tr '\n' ' ')"
is "$(psql -X -At -d "$rdb" -c "select segment_internal._governed(), segment.verify_audit() is null, (select count(*) from pg_policy where polrelid in ('segment.opportunity'::regclass, 'segment.opportunity_log'::regclass))")" \
   "t|t|6" "restored: governed, the audit chain intact, the six policies"
is "$(PGPASSWORD=$pw psql -X -At -U g_mgr_s11 -d "$rdb" -c "select coalesce(string_agg(opportunity_id::text, ',' order by opportunity_id), '') from segment.opportunity")" \
   "$(seen g_mgr_s11)" "restored: the manager sees exactly its opportunities"
is "$(PGPASSWORD=$pw psql -X -At -U g_mgr_s11 -d "$rdb" -c '\set VERBOSITY verbose' -c "select count(*) from segment.members('cu', 'rich')" 2>&1 | grep -Eo 'ERROR: +[0-9A-Z]{5}' | head -1)" "ERROR:  42501" \
   "restored: the manager still cannot list members"
PGPASSWORD=$pw psql -X -q -At -U g_analyst -d "$rdb" -c "select segment.alter_tag('poor', rule => 'bal < 700')" >/dev/null
is "$(psql -X -At -d "$rdb" -c "select segment.verify_audit() is null, (select actor from segment.audit order by audit_id desc limit 1)")" "t|g_analyst" \
   "restored: a new definition change appends to the chain, which stays intact"
dropdb "$rdb"; rm -rf "$tmpd"
for stmt in "update segment.audit set actor = 'someone' where audit_id = (select min(audit_id) from segment.audit)" \
            "delete from segment.audit where audit_id = (select max(audit_id) from segment.audit)" \
            "truncate segment.audit" \
            "delete from segment.audit_head"; do
    is "$(state "$(as postgres "$stmt")")" "ERROR 42501" "superuser: ${stmt%% where*} refused (42501)"
done
is "$(state "$(as postgres "set session_replication_role = replica; update segment.audit set actor = 'x'")")" "ERROR 42501" \
   "superuser with session_replication_role = replica: UPDATE still refused"
victim=$(q -c "select audit_id from segment.audit where action = 'tag.insert' and object = 'poor'")
q >/dev/null <<SQL
alter table segment.audit disable trigger user;
update segment.audit set detail = jsonb_set(detail, '{after,rule}', '"bal < 1"') where audit_id = $victim;
alter table segment.audit enable always trigger segment_audit_append_only;
alter table segment.audit enable always trigger segment_audit_no_truncate;
SQL
is "$(q -c "select segment.verify_audit()")" "$victim" "a row changed by a superuser with triggers disabled: verify_audit() returns its id"
q >/dev/null <<SQL
alter table segment.audit disable trigger user;
update segment.audit set detail = jsonb_set(detail, '{after,rule}', '"bal < 500"') where audit_id = $victim;
alter table segment.audit enable always trigger segment_audit_append_only;
alter table segment.audit enable always trigger segment_audit_no_truncate;
SQL
is "$(q -c "select segment.verify_audit() is null")" "t" "... and NULL again once restored"
last=$(q -c "select max(audit_id) from segment.audit")
q >/dev/null <<SQL
alter table segment.audit disable trigger user;
delete from segment.audit where audit_id = $last;
alter table segment.audit enable always trigger segment_audit_append_only;
alter table segment.audit enable always trigger segment_audit_no_truncate;
SQL
is "$(q -c "select segment.verify_audit()")" "$last" "the last row removed with triggers disabled: verify_audit() returns its id (the head)"
mid=$(q -c "select audit_id from segment.audit order by audit_id offset 3 limit 1")
next=$(q -c "select audit_id from segment.audit where audit_id > $mid order by audit_id limit 1")
q >/dev/null <<SQL
alter table segment.audit disable trigger user;
delete from segment.audit where audit_id = $mid;
alter table segment.audit enable always trigger segment_audit_append_only;
alter table segment.audit enable always trigger segment_audit_no_truncate;
SQL
is "$(q -c "select segment.verify_audit()")" "$next" "a row removed from the middle: verify_audit() returns the id of the row after it"

echo "1..$n"
exit $fail
