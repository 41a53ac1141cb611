#!/bin/bash
# test/shell/security-owner.sh: the nightly CALL segment.run_all() by a
# superuser runs every rule as its owner (issue 11, hole 1).
#
# A role with the documented author grants and SELECT on two columns writes
# a STABLE function that calls a volatile one doing ALTER ROLE ... SUPERUSER,
# and a tag over it; a second tag reads current_user. run_all (a procedure
# that commits, hence this shell test rather than pgTAP) must leave the role
# without superuser, log the failed tag in segment.run, and refresh the other
# tag as the owner. Prints TAP; exits non-zero on any failure.
set -u

DB="segment_secowner_$$"
MALLORY="segment_mallory_$$"
n=0
failed=0
PSQL="psql -X -q -At -v ON_ERROR_STOP=1"

cleanup() {
    dropdb --if-exists "$DB" >/dev/null 2>&1
    dropuser --if-exists "$MALLORY" >/dev/null 2>&1
}
trap cleanup EXIT

is() {    # is GOT EXPECTED DESCRIPTION
    n=$((n + 1))
    if [[ "$1" == "$2" ]]; then echo "ok $n - $3"
    else
        echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"
        failed=$((failed + 1))
    fi
}

createdb "$DB" || { echo "Bail out! cannot create database"; exit 1; }
createuser "$MALLORY" || { echo "Bail out! cannot create role"; exit 1; }
$PSQL -d "$DB" -v m="$MALLORY" >/dev/null <<'SQL' || { echo "Bail out! set-up failed"; exit 1; }
set client_min_messages = warning;
create extension segment;
create schema bank;
create table bank.cust (id int8 primary key, aum numeric, salary numeric);
insert into bank.cust select g, g * 10, g from generate_series(1, 500) g;
select segment.register_subject('cust', 'bank.cust', 'id');
select format('grant usage on schema segment to %I', :'m') \gexec
select format('grant select on all tables in schema segment to %I', :'m') \gexec
select format('grant insert, update, delete on segment.tag, segment.tag_history to %I', :'m') \gexec
select format('grant usage on all sequences in schema segment to %I', :'m') \gexec
select format('grant execute on all functions in schema segment to %I', :'m') \gexec
select format('grant usage on schema segment_internal to %I', :'m') \gexec
select format('grant execute on all functions in schema segment_internal to %I', :'m') \gexec
select format('grant select (id, aum) on bank.cust to %I', :'m') \gexec
select format('create schema m authorization %I', :'m') \gexec
select format('set role %I', :'m') \gexec
select format('create function m.pwn() returns void language plpgsql volatile as $f$ begin execute %L; end $f$',
              format('alter role %I superuser', :'m')) \gexec
create function m.f(numeric) returns boolean language plpgsql stable as $$ begin perform m.pwn(); return $1 > 0; end $$;
create function m.who(numeric) returns text language sql stable as $$ select current_user::text $$;
select segment.create_tag('cust', 'pwn', 'm.f(aum)');
select segment.create_tag('cust', 'who', format('m.who(aum) = %L', current_user));
reset role;
SQL

psql -X -q -d "$DB" -c "call segment.run_all()" >/dev/null 2>&1
is "$($PSQL -d "$DB" -c "select rolsuper from pg_roles where rolname = '$MALLORY'")" "f" \
   "run_all by a superuser: the tag's author did not become superuser"
is "$($PSQL -d "$DB" -c "select error ~ 'tag \"pwn\": must be superuser' from segment.run order by run_id desc limit 1")" "t" \
   "run_all: the tag calling ALTER ROLE failed with the author's rights, logged in segment.run"
is "$($PSQL -d "$DB" -c "select segment.count('cust', 'who')")" "500" \
   "run_all: the other tag ran as its owner (current_user is the author)"
is "$($PSQL -d "$DB" -c "select status from segment.nightly_run order by run_id desc limit 1")" "succeeded" \
   "run_all itself succeeded"

echo "1..$n"
[[ $failed == 0 ]]
