#!/bin/bash
# sweep-calls.sh (issue 11, deliverable 4a): every function, procedure and
# aggregate of the extension (pg_depend of extension segment, so functions
# added later are covered without editing this file), called with NULLs,
# empty strings, 0 / negative / huge OIDs and numbers, random text and
# garbage member sets, built generically from proargtypes, by
#   - seg_sweep_usage: a LOGIN role with only USAGE on schema segment;
#   - seg_sweep_reader: a LOGIN role given segment.grant_role(.., 'reader');
#   - seg_sweep_admin: segment.grant_role(.., 'admin'), not a superuser: it
#     may execute every internal function, so the sweep reaches their C code
#     (last: its calls may drop what the others call on).
# Each call is its own statement (own transaction), over one connection
# per role. Asserts: the connection survives every call (psql did not lose
# the server), the postmaster did not restart (pg_postmaster_start_time
# unchanged), `select 1` works after, and no call failed with an internal
# SQLSTATE (class XX, 57P, 58).
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_sweep_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
roles="seg_sweep_usage seg_sweep_reader seg_sweep_admin"
work=$(mktemp -d)
export PGOPTIONS="-c client_min_messages=warning"
cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1
    for r in $roles; do psql -X -q -d postgres -c "drop role if exists $r" >/dev/null 2>&1; done
    rm -rf "$work"
}
trap cleanup EXIT
cleanup
work=$(mktemp -d)
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }

# something real to call the functions on: a subject with tags, a scheme,
# a scorecard, a segment, live maintenance, an opportunity and an event rule
q >/dev/null <<'SQL' || { echo "not ok 1 - setup"; exit 1; }
create extension segment;
create table cust (id int primary key, owner int, org int, bal numeric, age int);
insert into cust select i, 100 + i % 5, i % 3, i * 10, 20 + i % 50 from generate_series(1, 200) i;
create table staff (mid int primary key, org int);
insert into staff select 100 + i, i % 3 from generate_series(0, 4) i;
select segment.register_subject('cu', 'cust', 'id', org_column => 'org', owner_column => 'owner');
select segment.register_staff('cu', 'staff', 'mid', 'org');
select segment.create_tag('cu', 'rich', 'bal >= 1000');
select segment.create_tag('cu', 'vip', null);
select segment.create_scheme('cu', 'tier', array[['gold', 'bal >= 1500'], ['rest', 'true']]);
select segment.create_scorecard('cu', 'prio', 0, array[['bal >= 1000', '40']]);
select segment.create_segment('cu', 'rich_vip', 'rich or vip');
select count(*) from segment.refresh('cu', current_date);
select segment.enable_live('cu');
select segment.create_opportunity_rule('cu', 'call_rich', 'rich', 'mining', 'call', template => 'C {id}');
select count(*) from segment.generate('call_rich');
create table deposit (id bigserial primary key, cust_id int8 not null, amount numeric not null);
select segment.attach_event_rule('call_rich', 'deposit', 'cust_id', 'amount > 1000');
SQL
for r in $roles; do q -c "create role $r login password 'segment_sweep_pw'" || exit 1; done
q -c "grant usage on schema segment to seg_sweep_usage" -c "select count(*) from segment.grant_role('seg_sweep_reader', 'reader')" \
  -c "select count(*) from segment.grant_role('seg_sweep_admin', 'admin')" \
  -c "grant select on cust to seg_sweep_reader, seg_sweep_admin" >/dev/null || exit 1

# --- the calls, generated from the catalog ----------------------------------------------
q > "$work/calls.sql" <<'SQL'
select setseed(0.1111);
-- literals for one argument type: NULL first, then edge and garbage values
create temp table pool (t regtype, v text[]);
insert into pool values
  ('text', array['NULL', '''''', '''cu''', '''rich''', '''rich and not vip''', '''x''', '''1''', '''-1''',
                 '''' || repeat('(', 5000) || '''', '''a'' || repeat(''b'', 100000)', '''segment.tag''',
                 '''cust''', '''1; drop table cust''', E'''\\x00ff''', '''{}''', '''{{}}''', '''[1,2]''',
                 '''bal >= 1 and (select true)''', '''pg_sleep(0)''', '''tier.gold''', '''prio''']),
  ('name', array['NULL', '''''', '''cu''', '''rich''', '''tier''', '''prio''', '''call_rich''', '''x''',
                 '''' || repeat('n', 100) || '''', '''reader''', '''admin''']),
  ('int2', array['NULL', '0', '-1', '32767', '-32768', '1']),
  ('int4', array['NULL', '0', '-1', '2147483647', '-2147483648', '1', '3']),
  ('int8', array['NULL', '0', '-1', '9223372036854775807', '-9223372036854775808', '4294967295', '4294967296', '1', '42']),
  ('numeric', array['NULL', '0', '-1', '1e300', '''NaN''', '''Infinity''', '0.5']),
  ('float8', array['NULL', '0', '-1', '''NaN''', '''Infinity''', '''-Infinity''', '1e308']),
  ('bool', array['NULL', 'true', 'false']),
  ('date', array['NULL', 'current_date', '''infinity''', '''-infinity''', '''4713-01-01 BC''', '''5874897-12-31''']),
  ('timestamptz', array['NULL', 'now()', '''infinity''', '''-infinity''']),
  ('oid', array['NULL', '0', '4294967295', '1259', '''cust''::regclass::oid', '''segment.tag''::regclass::oid', '12345678']),
  ('regclass', array['NULL', '0', '4294967295', '1259', '''cust''', '''segment.tag''', '''deposit''', '''pg_authid''', '12345678']),
  ('regtype', array['NULL', '0', '4294967295', '''int4''', '''text''', '''segment.memberset''']),
  ('regrole', array['NULL', '0', '4294967295', '''seg_sweep_usage''', '''pg_database_owner''']),
  ('regnamespace', array['NULL', '0', '4294967295', '''segment''']),
  ('regprocedure', array['NULL', '0', '4294967295']),
  ('jsonb', array['NULL', '''{}''', '''[]''', '''null''', '''{"a": [1, {"b": null}]}''']),
  ('segment.memberset', array['NULL', '''{}''', '''{1,2,3}''', '''{0,4294967295}''', 'segment.memberset(array[1, 5, 9])']),
  ('bytea', array['NULL', '''''', '''\x00''', '''\xffffffffffffffff''', '''\x3a3000000100000000000000100000000100''']),
  ('internal', array['NULL']),
  ('cstring', array['NULL', '''''', '''{1,2}''', '''{-1}''', '''{''', '''{99999999999}''']),
  ('"char"', array['NULL', '''''', '''r''']);
-- random values too: random text, random bytes (hex), random member set text
create temp table randv (t regtype, v text);
insert into randv
select 'text'::regtype, quote_literal(string_agg(chr(32 + (random() * 94)::int), '')) from generate_series(1, 200) g, generate_series(1, 40) s group by s
union all
select 'bytea'::regtype, quote_literal('\x' || string_agg(lpad(to_hex((random() * 255)::int), 2, '0'), '')) || '::bytea'
  from generate_series(1, 40) g, generate_series(1, 20) s group by s
union all
select 'segment.memberset'::regtype, quote_literal('{' || string_agg(((random() * 5e9)::int8 - 1e9::int8)::text, ',') || '}')
  from generate_series(1, 30) g, generate_series(1, 20) s group by s
union all
select 'bytea'::regtype, quote_literal('\x' || string_agg(lpad(to_hex((random() * 255)::int), 2, '0'), ''))
  from generate_series(1, 16) g, generate_series(1, 10) s group by s;
create temp table fns as
select p.oid, p.prokind, p.proname, p.pronamespace::regnamespace::text AS nsp,
       p.proargtypes::oid[] AS types, p.proretset, p.prorettype
  from pg_proc p
  join pg_depend d on d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
  join pg_extension e on e.oid = d.refobjid and e.extname = 'segment';
-- one literal for argument i of call k (k = 0: all NULL; 1..8: the pool in
-- turn; 9..24: random pool entries and random values)
create temp table calls as
select f.oid, k,
       (select string_agg(
                 '(' || coalesce(case when k = 0 then 'NULL'
                            when k <= 8 then (select pl.v[1 + (k + i) % array_length(pl.v, 1)] from pool pl where pl.t = a.t)
                            when random() < 0.25 then (select r.v from randv r where r.t = a.t order by random() limit 1)
                            else (select pl.v[1 + floor(random() * array_length(pl.v, 1))::int] from pool pl where pl.t = a.t)
                          end, 'NULL')
                 || ')::' || case when a.t::regtype::text = 'internal' then 'internal' else format_type(a.t, NULL) end,
                 ', ' order by i)
          from unnest(f.types) with ordinality as a(t, i)) as args
  from fns f, generate_series(0, 24) k
 where f.prokind in ('f', 'p', 'a');
select case f.prokind
         when 'p' then format('CALL %s.%I(%s);', quote_ident(f.nsp), f.proname, coalesce(c.args, ''))
         when 'a' then format('SELECT %s.%I(x) FROM (VALUES (%s), (%s)) v(x);', quote_ident(f.nsp), f.proname,
                              coalesce(c.args, 'NULL'), coalesce(c.args, 'NULL'))
         else format('SELECT %s.%I(%s);', quote_ident(f.nsp), f.proname, coalesce(c.args, ''))
       end
  from calls c join fns f using (oid)
 where f.prokind <> 'a' or cardinality(f.types) = 1
 order by f.proname, f.oid, c.k;
SQL
ncalls=$(grep -c . "$work/calls.sql")
nfuncs=$(q -c "select count(*) from pg_depend d join pg_extension e on e.oid = d.refobjid
                where e.extname = 'segment' and d.classid = 'pg_proc'::regclass and d.deptype = 'e'")
(( ncalls > 20 * nfuncs && nfuncs > 100 )); ok $? "$ncalls calls generated for the $nfuncs functions of the extension"

started=$(q -c "select pg_postmaster_start_time()")
for r in $roles; do
    PGPASSWORD=segment_sweep_pw psql -X -q -At -U "$r" -d "$db" --echo-errors \
        -c '\set VERBOSITY sqlstate' -c 'set statement_timeout = 5000' -f "$work/calls.sql" \
        >"$work/$r.out" 2>"$work/$r.err"
    rc=$?
    [[ $rc != 2 ]] && ! grep -q -e 'server closed the connection' -e 'connection to server was lost' "$work/$r.err"
    ok $? "$r: the connection survived all $ncalls calls (psql exit $rc)"
    if [[ $rc == 2 ]]; then grep -B2 -A2 -e 'server closed' -e 'connection to server' "$work/$r.err" | head -20 | sed 's/^/#   /'; fi
    errors=$(grep -c '^psql:.*ERROR:' "$work/$r.err")
    internal=$(grep -E 'ERROR: +(XX|57P|58)' "$work/$r.err")
    [[ -z $internal ]]; ok $? "$r: no call failed with an internal SQLSTATE (XX, 57P, 58) ($errors errors in all)"
    [[ -n $internal ]] && grep -E -A1 'ERROR: +(XX|57P|58)' "$work/$r.err" | head -20 | sed 's/^/#   /'
    echo "# $r: SQLSTATEs: $(grep -Eo 'ERROR: +[0-9A-Z]{5}' "$work/$r.err" | awk '{print $2}' | sort | uniq -c | sort -rn | awk '{printf "%s %s, ", $2, $1}')"
done
[[ $(q -c "select 1") == 1 ]]; ok $? "the server answers after the sweep"
[[ $(q -c "select pg_postmaster_start_time()") == "$started" ]]; ok $? "the postmaster did not restart (start time $started)"
denied=$(grep -c 'ERROR: *42501' "$work/seg_sweep_usage.err")
(( denied > ncalls / 2 )); ok $? "the USAGE-only role was refused (42501) most calls ($denied of $ncalls)"

echo "1..$n"
exit $fail
