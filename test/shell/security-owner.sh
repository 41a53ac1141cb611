#!/bin/bash
# test/shell/security-owner.sh: the nightly CALL segment.run_all() by a
# superuser runs every rule as its owner (issue 11, hole 1).
#
# A role with the documented author grants and SELECT on two columns writes
# a STABLE function that calls a volatile one doing ALTER ROLE ... SUPERUSER,
# and a tag over it; a second tag reads current_user. run_all (a procedure
# that commits, hence this shell test rather than pgTAP) must leave the role
# without superuser, log the failed tag in segment.run, and refresh the other
# tag as the owner. Then the live trigger, which is not SECURITY DEFINER
# (it becomes the extension's owner in C and pins search_path where it
# resolves names): a writer whose search_path puts her look-alikes of
# =, now() first writes through it in autocommit statements (one row, a
# failing one, a bulk one); none is called, she is herself again after a
# failed statement, and nobody became superuser. Prints TAP; exits non-zero
# on any failure.
set -u

DB="segment_secowner_$$"
MALLORY="segment_mallory_$$"
WRITER="segment_writer_$$"
n=0
failed=0
PSQL="psql -X -q -At -v ON_ERROR_STOP=1"

cleanup() {
    dropdb --if-exists "$DB" >/dev/null 2>&1
    dropuser --if-exists "$MALLORY" >/dev/null 2>&1
    dropuser --if-exists "$WRITER" >/dev/null 2>&1
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

# --- the live trigger, fired by a writer with a hostile search_path --------------
createuser "$WRITER" || { echo "Bail out! cannot create role"; exit 1; }
$PSQL -d "$DB" -v w="$WRITER" >/dev/null <<'SQL' || { echo "Bail out! live set-up failed"; exit 1; }
set client_min_messages = warning;
select segment.alter_tag('pwn', active => false);
select segment.create_tag('cust', 'rich', 'aum >= 4000');
select segment.create_tag('cust', 'div', '1000 / (aum - 777) > 0');
select count(*) from segment.refresh('cust');
select segment.enable_live('cust');
create table public.hits (who text, what text);
grant insert on public.hits to public;
grant usage on schema bank to public;
select format('grant select, update on bank.cust to %I', :'w') \gexec
select format('create schema w authorization %I', :'w') \gexec
SQL
# her session: as her, her search_path (she connects as herself in production)
as_writer="set session authorization $WRITER; set search_path = w, pg_catalog;"
$PSQL -d "$DB" >/dev/null <<SQL || { echo "Bail out! the look-alikes failed"; exit 1; }
$as_writer
create function w.escalate(what text) returns void language plpgsql volatile as \$\$
begin
    insert into public.hits values (current_user, what);
    begin
        execute 'alter role $WRITER superuser';
    exception when insufficient_privilege then null;
    end;
end \$\$;
create function w.eq4(int4, int4) returns boolean language plpgsql immutable as
    \$\$ begin perform w.escalate('int4 = int4'); return \$1 operator(pg_catalog.=) \$2; end \$\$;
create function w.eq8(int8, int8) returns boolean language plpgsql immutable as
    \$\$ begin perform w.escalate('int8 = int8'); return \$1 operator(pg_catalog.=) \$2; end \$\$;
create operator w.= (leftarg = int4, rightarg = int4, function = w.eq4);
create operator w.= (leftarg = int8, rightarg = int8, function = w.eq8);
create function w.now() returns timestamptz language plpgsql stable as
    \$\$ begin perform w.escalate('now()'); return pg_catalog.now(); end \$\$;
SQL
probe=$($PSQL -d "$DB" -c "$as_writer" -c "select current_setting('search_path'), 1 = 1" 2>&1)
is "$probe|$($PSQL -d "$DB" -c "select count(*) from public.hits")" "w, pg_catalog|t|1" \
   "live: the writer's search_path resolves = to her look-alike, which records its call"
$PSQL -d "$DB" -c "delete from public.hits" >/dev/null
# one row written; a failing statement, then who she is in the same session; a bulk UPDATE
out=$(psql -X -q -At -d "$DB" 2>&1 <<SQL
$as_writer
update bank.cust set aum = 5000 where id operator(pg_catalog.=) 7;
update bank.cust set aum = 777 where id operator(pg_catalog.=) 8;
select 'after: ' || current_user || ' ' || session_user;
update bank.cust set aum = aum operator(pg_catalog.+) 5000 where id operator(pg_catalog.<=) 100;
SQL
)
is "$(grep -c 'division by zero' <<<"$out")" "1" "live: the writer's statement fails on the rule"
is "$(grep '^after:' <<<"$out")" "after: $WRITER $WRITER" "live: after the failed statement she is herself again"
is "$($PSQL -d "$DB" -c "select count(*) from public.hits")" "0" \
   "live under the writer's search_path (one row, bulk): no look-alike was called"
is "$($PSQL -d "$DB" -c "select rolsuper from pg_roles where rolname = '$WRITER'")" "f" \
   "live: the writer did not become superuser"
is "$($PSQL -d "$DB" -c "select segment.count('cust', 'rich') = (select count(*) from bank.cust where aum >= 4000)")" "t" \
   "live: the count equals plain SQL after her writes"
is "$($PSQL -d "$DB" -c "select aum from bank.cust where id = 8")" "5080" "live: the failed statement changed nothing (80, then the bulk UPDATE)"

echo "1..$n"
[[ $failed == 0 ]]
