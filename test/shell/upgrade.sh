#!/bin/bash
# test/shell/upgrade.sh: ALTER EXTENSION segment UPDATE from every released
# version equals a fresh install of the current one, and keeps the data.
#
# Database OLD: CREATE EXTENSION segment VERSION '0.1.0' (the frozen script
# sql/segment--0.1.0.sql), a subject with tags, a segment, a scheme, a
# scorecard, an opportunity rule, a manual tag; refresh and generate. Then
# ALTER EXTENSION segment UPDATE. Database NEW: CREATE EXTENSION segment.
#   - extversion is the control file's default_version in both;
#   - the extension's objects are the same: `pg_dump --schema-only
#     --binary-upgrade` (the mode that writes every member object of an
#     extension) of both, restricted to lines of schema segment objects,
#     OID-setting calls removed, sorted: no difference; plus the same
#     extension membership (pg_depend) and config-dump registrations;
#   - the data survived: definitions, member counts and opportunities read
#     the same after the update, and a refresh after it gives the same sets;
#   - an entry rule written in 0.1.0 fires, before the update through 0.1.0's
#     triggers (this library leaves them the work), after it through the
#     refresh pipeline (src/refresh_pipeline.c), which logs its steps.
# Prints TAP; exits non-zero on any failure. SEGMENT_KEEP_DBS=1 keeps the dbs.
set -u

OLD="segment_upgrade_old_$$"
NEW="segment_upgrade_new_$$"
work=$(mktemp -d "${TMPDIR:-/tmp}/segment-upgrade.XXXXXX")
n=0
failed=0
PSQL="psql -X -q -At -v ON_ERROR_STOP=1"

cleanup() {
    if [[ ${SEGMENT_KEEP_DBS:-0} != 1 ]]; then
        dropdb --if-exists "$OLD" >/dev/null 2>&1
        dropdb --if-exists "$NEW" >/dev/null 2>&1
    else
        echo "# kept databases $OLD and $NEW"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

ok() {    # ok CONDITION-EXIT-STATUS DESCRIPTION
    n=$((n + 1))
    if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
is() {    # is GOT EXPECTED DESCRIPTION
    n=$((n + 1))
    if [[ "$1" == "$2" ]]; then echo "ok $n - $3"
    else
        echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"
        failed=$((failed + 1))
    fi
}

export bank_table
default=$(sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" "${SEGMENT_ROOT:-.}/segment.control")
createdb "$OLD" && createdb "$NEW" || { echo "not ok 1 - create databases"; exit 1; }
# the same user table in both, so that the dumps differ only by segment
bank_table='create table bank(id int8 primary key, aum numeric, age int, branch text, mgr text, td_maturity date)'
$PSQL -d "$NEW" -c "$bank_table" || exit 1

# --- the old version, with data ----------------------------------------------
$PSQL -d "$OLD" >/dev/null <<'SQL'
create extension segment version '0.1.0';
\getenv bank_table bank_table
:bank_table;
insert into bank
select i, (i * 7919 % 1000000)::numeric, 18 + i % 70, 'b' || (i % 5), 'm' || (i % 20),
       date '2026-12-01' + (i % 90)
  from generate_series(1, 5000) i;
select segment.register_subject('bank', 'bank', 'id', org_column => 'branch', owner_column => 'mgr');
select segment.create_tag('bank', 'rich', 'aum >= 500000');
select segment.create_tag('bank', 'young', 'age < 30');
select segment.create_tag('bank', 'maturing', 'td_maturity between segment.as_of() and segment.as_of() + 30');
select segment.create_segment('bank', 'young_rich', 'rich and young');
select segment.create_scheme('bank', 'tier', array[['gold', 'aum >= 800000'], ['silver', 'aum >= 300000'], ['bronze', 'true']]);
select segment.create_scorecard('bank', 'prio', 0, array[['aum >= 500000', '40'], ['age < 30', '10']]);
select segment.create_tag('bank', 'vip', null);
select segment.set_tag('bank', '42', 'vip');
select segment.alter_tag('young', rule => 'age < 31');
-- an entry rule: customers entering 'maturing' (the date moves) get a call
select segment.create_opportunity_rule('bank', 'maturing_call', 'maturing', 'maintenance', 'call',
                                       assignment => 'pool', cooldown_days => 0);
-- 0.1.0 has only the old name (<!-- api-rename: off -->)
select segment.fire_on_entry('maturing_call', 'maturing');
-- <!-- api-rename: on -->
SQL
rc=$?
ok $rc "0.1.0 installs and takes definitions"

$PSQL -d "$OLD" >/dev/null 2>"$work/old.err" <<'SQL'
select count(*) from segment.refresh('bank', date '2026-12-04');
select count(*) from segment.refresh('bank', date '2026-12-05');
SQL
ok $? "0.1.0 refreshes ($(head -c 300 "$work/old.err"))"

# entries of a refresh: the customers whose maturity entered the 30-day
# window (plain SQL) get the entry rule's opportunity, for that date, once
entered_sql() {   # entered_sql DATE: plain SQL's entries, then the opportunities made
    echo "select string_agg(id::text, ',' order by id) from bank
           where td_maturity between date '$1' and date '$1' + 30
             and not td_maturity between date '$1' - 1 and date '$1' + 29;
          select string_agg(o.key, ',' order by o.key::int8) from segment.opportunity o
            join segment.opportunity_rule r using (rule_id)
           where r.name = 'maturing_call' and o.period = date '$1' and o.source = 'entered:maturing';"
}
got=$($PSQL -d "$OLD" -c "$(entered_sql 2026-12-05)")
is "$(echo "$got" | sed -n 2p)" "$(echo "$got" | sed -n 1p)" \
   "0.1.0 with this library: its triggers fire the entries of the refresh, once ($(echo "$got" | sed -n 1p | tr ',' '\n' | wc -l) customers)"

snapshot() {   # the data a user reads, as text
    $PSQL -d "$1" <<'SQL'
select 'tag', name, rule, active from segment.tag order by name;
select 'count', segment.count('bank', 'rich'), segment.count('bank', 'young_rich'),
       segment.count('bank', 'maturing'), segment.count('bank', 'vip'), segment.count('bank', 'tier.gold');
select 'members', md5(string_agg(m::text, ',' order by m)) from segment.members('bank', 'rich or maturing') m;
select 'history', count(*) from segment.tag_history;
SQL
}
snapshot "$OLD" > "$work/before" 2>&1
ok $? "the data reads before the update"

$PSQL -d "$OLD" -c "alter extension segment update" 2>"$work/update.err"
ok $? "ALTER EXTENSION segment UPDATE from 0.1.0 ($(head -c 300 "$work/update.err"))"
is "$($PSQL -d "$OLD" -c "select extversion from pg_extension where extname = 'segment'")" "$default" \
   "the updated extension is at default_version $default"

# Rules written before 0.2.0 get an owner (issue 11): the role that wrote
# them, here the one running this test, on every kind of rule.
is "$($PSQL -d "$OLD" -c "select string_agg(k || ':' || n, ' ' order by k) from (
        select 'tag' k, count(*) filter (where owner is distinct from current_user::regrole) n from segment.tag where rule is not null
        union all select 'segment', count(*) filter (where owner is distinct from current_user::regrole) from segment.segment
        union all select 'scheme', count(*) filter (where owner is distinct from current_user::regrole) from segment.scheme
        union all select 'scorecard', count(*) filter (where owner is distinct from current_user::regrole) from segment.scorecard) x")" \
   "scheme:0 scorecard:0 segment:0 tag:0" "the update gives every existing rule its author as owner"
is "$($PSQL -d "$OLD" -c "select count(*) from segment.tag where rule is not null")" "3" "three rule tags to check"

snapshot "$OLD" > "$work/after" 2>&1
is "$(diff "$work/before" "$work/after" && echo same)" "same" "definitions, counts and members read the same after the update"

$PSQL -d "$OLD" >/dev/null 2>"$work/refresh2.err" <<'SQL'
select count(*) from segment.refresh('bank', date '2026-12-05');
SQL
ok $? "the updated extension refreshes ($(head -c 300 "$work/refresh2.err"))"
snapshot "$OLD" > "$work/after2" 2>&1
is "$(diff "$work/before" "$work/after2" && echo same)" "same" "a refresh after the update gives the same sets"

# --- a fresh install of the current version ------------------------------------
$PSQL -d "$NEW" -c "create extension segment" 2>"$work/new.err"
ok $? "CREATE EXTENSION segment ($default) ($(head -c 300 "$work/new.err"))"

# pg_dump's binary-upgrade mode writes every member object of an extension.
# Keep what is in schema segment (and the extension's event triggers), drop
# the OID-setting calls and comment headers, sort.
schema_of() {
    pg_dump --schema-only --binary-upgrade --no-owner -d "$1" 2>"$work/dump.err" |
        grep -v -e '^--' -e '^$' -e '^SET ' -e '^SELECT pg_catalog.set_config' \
                -e 'binary_upgrade_set_next_' -e 'binary_upgrade_create_empty_extension' \
                -e '^SELECT pg_catalog.setval' -e '^UPDATE pg_catalog.pg_class$' \
                -e '^SET relfrozenxid' -e '^WHERE oid = ' -e 'restrict [A-Za-z0-9]*$' |
        LC_ALL=C sort
}
schema_of "$OLD" > "$work/schema.old"
schema_of "$NEW" > "$work/schema.new"
lines=$(wc -l < "$work/schema.new")
ok $(( lines > 500 ? 0 : 1 )) "the fresh install's binary-upgrade dump lists its objects ($lines lines)"
if diff "$work/schema.old" "$work/schema.new" > "$work/schema.diff"; then
    ok 0 "the updated extension's objects equal a fresh install's (sorted pg_dump --binary-upgrade)"
else
    ok 1 "the updated extension's objects equal a fresh install's (sorted pg_dump --binary-upgrade)"
    head -60 "$work/schema.diff" | sed 's/^/#   /'
fi

members_of() {
    $PSQL -d "$1" <<'SQL'
select pg_describe_object(d.classid, d.objid, d.objsubid)
  from pg_depend d join pg_extension e on e.oid = d.refobjid
 where d.refclassid = 'pg_extension'::regclass and e.extname = 'segment' and d.deptype = 'e'
 order by 1;
select 'config', c::regclass::text, coalesce(x, '')
  from pg_extension e, unnest(e.extconfig, e.extcondition) as u(c, x)
 where e.extname = 'segment' order by 2;
SQL
}
members_of "$OLD" > "$work/members.old"
members_of "$NEW" > "$work/members.new"
if diff "$work/members.old" "$work/members.new" > "$work/members.diff"; then
    ok 0 "the same objects belong to the extension, the same tables are dumped ($(wc -l < "$work/members.new") members)"
else
    ok 1 "the same objects belong to the extension, the same tables are dumped"
    head -40 "$work/members.diff" | sed 's/^/#   /'
fi

acl_of() {
    $PSQL -d "$1" <<'SQL'
select p.oid::regprocedure::text, coalesce(p.proacl::text, 'default'), p.prosecdef, p.proisstrict,
       coalesce(array_to_string(p.proconfig, ','), '')
  from pg_proc p where p.pronamespace in ('segment'::regnamespace, 'segment_internal'::regnamespace) order by 1;
select c.oid::regclass::text, coalesce(c.relacl::text, 'default') from pg_class c
 where c.relnamespace in ('segment'::regnamespace, 'segment_internal'::regnamespace) order by 1;
select n.nspname, coalesce(n.nspacl::text, 'default'), obj_description(n.oid, 'pg_namespace')
  from pg_namespace n where n.nspname in ('segment', 'segment_internal') order by 1;
SQL
}
acl_of "$OLD" > "$work/acl.old"
acl_of "$NEW" > "$work/acl.new"
if diff "$work/acl.old" "$work/acl.new" > "$work/acl.diff"; then
    ok 0 "functions and tables have the same privileges, security and settings"
else
    ok 1 "functions and tables have the same privileges, security and settings"
    head -40 "$work/acl.diff" | sed 's/^/#   /'
fi

# --- after the update, the refresh pipeline fires the entries ------------------
is "$($PSQL -d "$OLD" -c "select count(*) from pg_trigger g join pg_class c on c.oid = g.tgrelid
        where not g.tgisinternal and c.relnamespace = 'segment'::regnamespace
          and (c.relname ~ '_(state|history|snapshot)\$' or c.relname in ('run', 'run_step'))")" "0" \
   "the update dropped the triggers on segment's state tables"
$PSQL -d "$OLD" >/dev/null 2>"$work/refresh3.err" -c "select count(*) from segment.refresh('bank', date '2026-12-06')"
ok $? "the updated extension refreshes the next day ($(head -c 300 "$work/refresh3.err"))"
got=$($PSQL -d "$OLD" -c "$(entered_sql 2026-12-06)")
is "$(echo "$got" | sed -n 2p)" "$(echo "$got" | sed -n 1p)" \
   "updated: the refresh pipeline fires the entries of the refresh ($(echo "$got" | sed -n 1p | tr ',' '\n' | wc -l) customers)"
is "$($PSQL -d "$OLD" -c "select string_agg(s.step || ':' || coalesce(s.rows::text, '-'), ' ' order by s.step_no)
        from segment.run_step s where s.run_id = (select max(run_id) from segment.run)")" \
   "capture_entry_audiences:1 invalidate_live_definitions:- fire_entry_rules:$($PSQL -d "$OLD" -c "$(entered_sql 2026-12-06)" | sed -n 1p | tr ',' '\n' | wc -l)" \
   "updated: the run log lists the steps of that refresh"

echo "1..$n"
exit $(( failed > 0 ))
