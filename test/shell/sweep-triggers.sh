#!/bin/bash
# sweep-triggers.sh (issue 11, deliverable 4b; holes 2 and 3 as reported):
#   - every trigger function of the extension (pg_depend of extension
#     segment, so trigger functions added later are covered) refused to a
#     LOGIN role with USAGE on schema segment only, and to a reader, at
#     CREATE TRIGGER on a temp table and on a table the role owns (42501:
#     no EXECUTE);
#   - a superuser, who may create the triggers, attaches each of them in
#     every shape (row BEFORE/AFTER, statement AFTER with the transition
#     tables segment's triggers use) to a temp table and a plain table with
#     the subject's columns, with segment's own trigger names, and to the
#     subject's table under another name: every firing is refused with 42501
#     by the function's identity check, and no overlay row is written;
#   - hole 2 exactly: a role with only USAGE on schema segment, a temp table
#     with the subject's columns, _live_trigger with subject id 1, inserts:
#     refused, membership unchanged;
#   - hole 3 exactly: _rule_columns(NULL::regclass, NULL::text, NULL::text)
#     and _rule_columns(0, 'x', NULL) error cleanly (42501 for PUBLIC;
#     22004 / 42P01 for a role that may execute it; 42501 for a table the
#     caller may not read), the server is not restarted.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_trig_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
is() { n=$((n + 1)); if [[ "$1" == "$2" ]]; then echo "ok $n - $3"; else
         echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# sqlstate ROLE SQL...: the SQLSTATE of the first error of the script run as
# ROLE over a new connection, or "ok"
sqlstate() {
    local role=$1; shift
    local pw=segment_trig_pw out
    [[ $role == postgres ]] && pw=${PGPASSWORD:-}
    if out=$(PGPASSWORD=$pw psql -X -q -At -v ON_ERROR_STOP=1 -U "$role" -d "$db" \
                  -c '\set VERBOSITY verbose' "$@" 2>&1); then
        echo ok
    else
        grep -Eo 'ERROR: +[0-9A-Z]{5}' <<<"$out" | grep -Eo '[0-9A-Z]{5}$' | head -1
        grep -E 'ERROR' <<<"$out" | head -2 >&2
    fi
}
roles="seg_trig_usage seg_trig_reader seg_trig_author"
export PGOPTIONS="-c client_min_messages=warning"
cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1
    for r in $roles; do psql -X -q -d postgres -c "drop role if exists $r" >/dev/null 2>&1; done
}
trap 'cleanup; rm -rf "$TMPDIR_T"' EXIT
cleanup
TMPDIR_T=$(mktemp -d)
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }

q >/dev/null <<'SQL' || { echo "not ok 1 - setup"; exit 1; }
create extension segment;
create table cust (id int primary key, owner int, org int, bal numeric, age int);
insert into cust select i, 100 + i % 5, i % 3, i * 10, 20 + i % 50 from generate_series(1, 200) i;
select segment.register_subject('cu', 'cust', 'id', org_column => 'org', owner_column => 'owner');
select segment.create_tag('cu', 'rich', 'bal >= 1000');
select segment.create_tag('cu', 'do_not_contact', 'age > 60');
select count(*) from segment.refresh('cu', current_date);
select segment.enable_live('cu');
create table staff (mid int primary key, org int);
insert into staff values (100, 0);
select segment.register_staff('cu', 'staff', 'mid', 'org');
select segment.create_opportunity_rule('cu', 'call_rich', 'rich', 'mining', 'call');
create table deposit (id bigserial primary key, cust_id int8 not null, amount numeric not null);
select segment.attach_event_rule('call_rich', 'deposit', 'cust_id', 'amount > 1000');
create schema own;
SQL
for r in $roles; do q -c "create role $r login password 'segment_trig_pw'" >/dev/null || exit 1; done
q >/dev/null <<'SQL' || exit 1
grant usage on schema segment to seg_trig_usage;
-- and on the internal schema: what refuses the trigger functions is EXECUTE
grant usage on schema segment_internal to seg_trig_usage;
grant usage, create on schema own to seg_trig_usage, seg_trig_reader;
select count(*) from segment.grant_role('seg_trig_reader', 'reader');
select count(*) from segment.grant_role('seg_trig_author', 'author');
SQL

snapshot() {
    q -c "select segment.count('cu', 'rich'), segment.count('cu', 'do_not_contact'), segment.count('cu', 'rich or not rich'),
                 (select count(*) from segment.live_member), (select count(*) from segment.opportunity)"
}
before=$(snapshot)
started=$(q -c "select pg_postmaster_start_time()")
rule_id=$(q -c "select rule_id from segment.opportunity_rule where name = 'call_rich'")
mapfile -t trigfns < <(q -c "select p.oid::regprocedure::text from pg_proc p
    join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
    join pg_extension e on e.oid = d.refobjid and e.extname = 'segment'
   where p.prorettype = 'trigger'::regtype order by 1")
(( ${#trigfns[@]} >= 6 )); ok $? "the extension's trigger functions: ${trigfns[*]}"

# --- no EXECUTE: refused at CREATE TRIGGER ----------------------------------------------
for fn in "${trigfns[@]}"; do
    f=${fn%()}
    for r in seg_trig_usage seg_trig_reader; do
        is "$(sqlstate "$r" -c "create temp table t (id int, owner int, org int, bal numeric, age int)" \
                -c "create trigger x after insert on t for each row execute function $f('1', 'id')" 2>/dev/null)" "42501" \
           "$r: CREATE TRIGGER ... EXECUTE FUNCTION $f on a temp table: 42501"
        is "$(sqlstate "$r" -c "create table own.t_$r (id int, owner int, org int, bal numeric, age int)" \
                -c "create trigger x after insert on own.t_$r referencing new table as segment_new for each statement execute function $f('1')" \
                2>/dev/null)" "42501" \
           "$r: CREATE TRIGGER ... EXECUTE FUNCTION $f on a table it owns: 42501"
        q -c "drop table if exists own.t_$r" >/dev/null
    done
done

# --- superuser attaches them anyway: refused when they fire ----------------------------------------
# shapes: timing/level/transition table, and the statement that fires it
shapes=(
  "before insert|for each row|insert"
  "after insert|for each row|insert"
  "after update|for each row|update"
  "before delete|for each row|delete"
  "after insert|referencing new table as segment_new for each statement|insert"
  "after insert|referencing new table as segment_new_events for each statement|insert"
  "after update|referencing new table as segment_new for each statement|update"
  "after delete|referencing old table as segment_old for each statement|delete"
)
fire() {   # fire TABLE KIND
    case $2 in
      insert) echo "insert into $1 (id, owner, org, bal, age, cust_id, amount) values (1, 100, 0, 999999, 20, 1, 5000), (2, 100, 0, 999999, 99, 2, 5000)";;
      update) echo "update $1 set bal = bal + 1, id = id + 1000";;
      delete) echo "delete from $1";;
    esac
}
cols="id int8, owner int, org int, bal numeric, age int, cust_id int8, amount numeric"
# one DO block per attempt: a subtransaction, rolled back, that records the
# SQLSTATE it ended with
script="create temp table attempt (fn text, shape text, target text, tgname text, state text);"
for fn in "${trigfns[@]}"; do
    f=${fn%()}
    for shape in "${shapes[@]}"; do
        IFS='|' read -r timing level stmt <<<"$shape"
        for args in "'1', 'id'" "'1'" "'$rule_id'"; do
            for target in temp plain; do
                if [[ $target == temp ]]; then tbl=pg_temp.forged; create="create temp table forged ($cols)"
                else tbl=own.forged; create="create table own.forged ($cols)"; fi
                # segment's own trigger names: the name alone must not pass
                for tgname in segment_live_1_insert segment_event_rule_$rule_id; do
                    script+="
do \$do\$ begin
  execute \$s\$$create\$s\$;
  execute \$s\$insert into $tbl (id, owner, org, bal, age, cust_id, amount) values (5, 100, 0, 10, 20, 5, 1)\$s\$;
  execute \$s\$create trigger $tgname $timing on $tbl $level execute function $f($args)\$s\$;
  execute \$s\$$(fire "$tbl" "$stmt")\$s\$;
  raise exception using errcode = 'SEGOK';
exception when others then
  insert into attempt values ('$f', \$s\$$shape $args\$s\$, '$target', '$tgname', sqlstate);
end \$do\$;"
                done
            done
        done
    done
done
script+="
select a.fn, a.state, count(*) from attempt a group by 1, 2 order by 1, 2;"
printf '%s\n' "$script" | psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -F ' ' > "$TMPDIR_T/attempts" 2>&1
ok $? "$(grep -c . <<<"$script") lines of forged trigger attempts ran as superuser"
for fn in "${trigfns[@]}"; do
    f=${fn%()}
    states=$(awk -v f="$f" '$1 == f {printf "%s:%s ", $2, $3}' "$TMPDIR_T/attempts")
    # every firing fails: with 42501 from the identity check once the trigger
    # protocol checks pass (39P01 wrong shape, 22P02 a bad argument); never
    # does the trigger run to the end (SEGOK)
    bad=$(awk -v f="$f" '$1 == f && $2 !~ /^(42501|39P01|22P02)$/ {printf "%s ", $2}' "$TMPDIR_T/attempts")
    [[ -z $bad && $states == *42501:* ]]
    ok $? "superuser-attached $f on a temp and a plain table: refused ($states) ${bad:+unexpected: $bad}"
done

# the subject's own table, under a trigger name segment did not record
is "$(sqlstate postgres -c "create trigger forged after insert on cust referencing new table as segment_new for each statement execute function segment_internal._live_trigger('1')" \
        -c "insert into cust values (5001, 100, 0, 999999, 20)" 2>/dev/null)" "42501" \
   "a trigger on the subject's own table under another name: 42501 when it fires"
is "$(sqlstate postgres -c "create trigger forged after insert on deposit referencing new table as segment_new_events for each statement execute function segment_internal._event_trigger('$rule_id')" \
        -c "insert into deposit (cust_id, amount) values (1, 5000)" 2>/dev/null)" "42501" \
   "a second event trigger on the event table under another name: 42501 when it fires"
q -c "drop trigger if exists forged on cust" -c "drop trigger if exists forged on deposit" >/dev/null
is "$(snapshot)" "$before" "members, overlay rows and opportunities are unchanged by all the forged triggers"

# segment's own triggers still work
q -c "update cust set bal = 5 where id = 150" >/dev/null
is "$(q -c "select segment.has_tag('cu', 150, 'rich'), (select count(*) from segment.live_member)")" "f|1" \
   "the triggers enable_live created still maintain the overlay"
q -c "insert into deposit (cust_id, amount) values (150, 5000)" >/dev/null; ok $? "the event rule's own trigger still fires"
q -c "select count(*) from segment.refresh('cu', current_date)" >/dev/null
before=$(snapshot)

# --- hole 2, exactly as reported --------------------------------------------------------------
is "$(sqlstate seg_trig_usage -c "create temp table customer (id int8, owner int, org int, bal numeric, age int)" \
        -c "create trigger f after insert on customer referencing new table as segment_new for each statement execute function segment_internal._live_trigger('1')" \
        -c "insert into customer select i, 100, 0, 99999999, 20 from generate_series(1, 100) i" \
        -c "insert into customer values (9999999, 100, 0, 99999999, 20)" 2>/dev/null)" "42501" \
   "hole 2: a USAGE-only role cannot attach segment_internal._live_trigger('1') to a temp table (42501)"
is "$(sqlstate seg_trig_usage -c "create temp table customer (id int8, old_id int8)" \
        -c "create trigger f after update on customer for each row execute function segment_internal._live_key_change('1', 'id')" 2>/dev/null)" "42501" \
   "hole 2: nor segment_internal._live_key_change (42501)"
is "$(snapshot)" "$before" "hole 2: memberships unchanged (rich, do_not_contact, universe, overlay rows)"

# --- hole 3, exactly as reported --------------------------------------------------------------------
is "$(sqlstate seg_trig_usage -c "select segment_internal._rule_columns(NULL::regclass, NULL::text, NULL::text)" 2>/dev/null)" "42501" \
   "hole 3: _rule_columns(NULL, NULL, NULL) by a USAGE-only role: 42501 (not executable by PUBLIC)"
is "$(sqlstate postgres -c "select segment_internal._rule_columns(NULL::regclass, NULL::text, NULL::text)" 2>/dev/null)" "22004" \
   "hole 3: _rule_columns(NULL, NULL, NULL) by a superuser: 22004, no crash"
is "$(sqlstate postgres -c "select segment_internal._rule_columns('cust', NULL::text, NULL::text)" 2>/dev/null)" "22004" \
   "_rule_columns(relation, NULL, NULL): 22004"
is "$(sqlstate postgres -c "select segment_internal._rule_columns(0, 'x', NULL)" 2>/dev/null)" "42P01" \
   "hole 3: _rule_columns(0, 'x', NULL): 42P01 (no table_open(0))"
is "$(sqlstate postgres -c "select segment_internal._rule_columns(4294967295, 'x', NULL)" 2>/dev/null)" "42P01" \
   "_rule_columns(4294967295, 'x', NULL): 42P01"
is "$(sqlstate seg_trig_author -c "select segment_internal._rule_columns('cust', 'bal > 0')" 2>/dev/null)" "42501" \
   "_rule_columns on a table the caller may not read: 42501 (no column names leak)"
is "$(sqlstate seg_trig_author -c "select segment_internal._rule_columns('pg_authid', 'rolpassword is null')" 2>/dev/null)" "42501" \
   "_rule_columns on pg_authid by a non-superuser: 42501"
q -c "grant select on cust to seg_trig_author" >/dev/null
is "$(PGPASSWORD=segment_trig_pw psql -X -q -At -U seg_trig_author -d "$db" -c "select segment_internal._rule_columns('cust', 'bal > 0 and age < 3')")" \
   "{bal,age}" "_rule_columns for a role that may read the table: its columns"
is "$(q -c "select pg_postmaster_start_time()")" "$started" "the postmaster did not restart"
is "$(q -c "select 1")" "1" "the server answers"

echo "1..$n"
exit $fail
