#!/bin/bash
# test/shell/search-path.sh: segment means the same whatever the caller's
# search_path (issue 11, hole 4; docs/security.md).
#
# Two copies of one demo bank (tags, schemes, a scorecard, segments,
# opportunity rules with templates, goals and control groups, an event rule,
# live maintenance). In the second, schema public holds a shadow of
# pg_catalog: a look-alike of every built-in function over common types and
# of every built-in operator between them, each raising WARNING "hijacked"
# and then doing what the original does; that database's search_path puts
# public before pg_catalog, so any name segment leaves unpinned resolves to
# the shadow. The same scenario (refresh, every reading function, explain,
# render, generate, the lifecycle, expire, evaluate_outcomes, review, live
# updates (bulk, one row, after the definitions are rebuilt), an event, CALL
# run_all) runs in both. The test asserts that no
# shadow was called and that both give the same output. Aggregates are not
# shadowed (CREATE AGGREGATE look-alikes would need their support functions
# shadowed too); everything else segment calls is.
#
# Prints TAP; exits non-zero on any failure.
set -u

CLEAN="segment_sp_clean_$$"
SHADOW="segment_sp_shadow_$$"
n=0
failed=0
PSQL="psql -X -q -At -v ON_ERROR_STOP=1"
work=$(mktemp -d)

cleanup() {
    dropdb --if-exists "$CLEAN" >/dev/null 2>&1
    dropdb --if-exists "$SHADOW" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
is() {
    n=$((n + 1))
    if [[ "$1" == "$2" ]]; then echo "ok $n - $3"
    else
        echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"
        failed=$((failed + 1))
    fi
}

here=$(cd "$(dirname "$0")/../.." && pwd)
# today: the lifecycle refuses to dispatch after an opportunity's last day
as_of=$(date +%F)
d1=$(date -d "$as_of + 1 day" +%F)
d2=$(date -d "$as_of + 2 days" +%F)
d20=$(date -d "$as_of + 20 days" +%F)

createdb "$CLEAN" || { echo "Bail out! cannot create database"; exit 1; }
$PSQL -d "$CLEAN" >/dev/null <<SQL || { echo "Bail out! set-up failed"; exit 1; }
set client_min_messages = warning;
create extension segment;
\i $here/test/data/bank.sql
select dw.generate_bank(3000, '$as_of');
\i $here/test/data/tags.sql
\i $here/test/data/segmentation.sql
\i $here/test/data/opportunities.sql
create table dw.transfer_out (transfer_id bigserial primary key, customer_id int8 not null,
                              amount numeric(14,2) not null, same_name boolean not null);
select segment.create_opportunity_rule('customer', 'xbank_out_t0', 'not do_not_contact',
    'maintenance', 'deposit retention', channel => 'manager', priority => 70, valid_days => 2,
    cooldown_days => 14, holdout_pct => 10, goal => 'current_balance >= 50000',
    template => 'Dear {customer_name|mask}, {aum|amount} on {td_maturity_date|date:DD/MM}');
select segment.attach_event_rule('xbank_out_t0', 'dw.transfer_out', 'customer_id',
                                 \$\$same_name and amount >= 50000\$\$);
SQL
createdb -T "$CLEAN" "$SHADOW" || { echo "Bail out! cannot copy the database"; exit 1; }

# The shadow of pg_catalog in public, and public first on the search_path.
$PSQL -d "$SHADOW" >/dev/null <<'SQL' || { echo "Bail out! could not build the shadow catalog"; exit 1; }
set client_min_messages = warning;
create temp table shadow_types(t regtype primary key);
insert into shadow_types values ('bool'), ('int2'), ('int4'), ('int8'), ('numeric'), ('float4'),
    ('float8'), ('text'), ('varchar'), ('bpchar'), ('name'), ('"char"'), ('date'), ('timestamp'),
    ('timestamptz'), ('interval'), ('oid'), ('regclass'), ('regtype'), ('jsonb'), ('json'), ('bytea');
-- functions: same name and argument types, in public
do $$
declare
    p record;
    args text;
    call text;
begin
    for p in select f.oid, f.proname, f.prorettype, f.proargtypes, f.provolatile, f.proisstrict, f.pronargs
               from pg_proc f
              where f.pronamespace = 'pg_catalog'::regnamespace and f.prokind = 'f' and not f.proretset
                and f.provariadic = 0 and f.pronargs between 0 and 4
                and f.prorettype in (select t from shadow_types)
                and not exists (select 1 from unnest(f.proargtypes::oid[]) a where a not in (select t from shadow_types))
                and f.proname not in ('set_config', 'current_setting')   -- what pins the path itself
    loop
        select string_agg(format_type(a, null), ', ' order by i), string_agg('$' || i, ', ' order by i)
          into args, call from unnest(p.proargtypes::oid[]) with ordinality u(a, i);
        begin
            execute format($f$create function public.%I(%s) returns %s language plpgsql %s %s as $b$
                               begin raise warning '%%', %L; return pg_catalog.%I(%s); end $b$ $f$,
                           p.proname, coalesce(args, ''), format_type(p.prorettype, null),
                           case p.provolatile when 'i' then 'immutable' when 's' then 'stable' else 'volatile' end,
                           case when p.proisstrict then 'strict' else '' end,
                           format('hijacked: %s(%s)', p.proname, coalesce(args, '')), p.proname, coalesce(call, ''));
        exception when duplicate_function then null;
        end;
    end loop;
end $$;
-- operators: a function per built-in operator between those types, and the
-- operator of the same name and argument types in public
do $$
declare
    o record;
begin
    for o in select op.oid, op.oprname, op.oprleft, op.oprright, op.oprcode, op.oprresult
               from pg_operator op
              where op.oprnamespace = 'pg_catalog'::regnamespace
                and (op.oprleft = 0 or op.oprleft in (select t from shadow_types))
                and op.oprright in (select t from shadow_types)
                and op.oprresult in (select t from shadow_types)
    loop
        begin
            if o.oprleft = 0 then
                execute format($f$create function public.shadow_op_%s(%s) returns %s language plpgsql immutable as $b$
                                   begin raise warning '%%', %L; return %s($1); end $b$ $f$,
                               o.oid, format_type(o.oprright, null), format_type(o.oprresult, null),
                               format('hijacked: operator %s(%s)', o.oprname, format_type(o.oprright, null)),
                               o.oprcode::regproc);
                execute format('create operator public.%s (rightarg = %s, function = public.shadow_op_%s)',
                               o.oprname, format_type(o.oprright, null), o.oid);
            else
                execute format($f$create function public.shadow_op_%s(%s, %s) returns %s language plpgsql immutable as $b$
                                   begin raise warning '%%', %L; return %s($1, $2); end $b$ $f$,
                               o.oid, format_type(o.oprleft, null), format_type(o.oprright, null),
                               format_type(o.oprresult, null),
                               format('hijacked: operator %s(%s, %s)', o.oprname, format_type(o.oprleft, null),
                                      format_type(o.oprright, null)),
                               o.oprcode::regproc);
                execute format('create operator public.%s (leftarg = %s, rightarg = %s, function = public.shadow_op_%s)',
                               o.oprname, format_type(o.oprleft, null), format_type(o.oprright, null), o.oid);
            end if;
        exception when duplicate_function or duplicate_object then null;
        end;
    end loop;
end $$;
SQL
shadowed=$($PSQL -d "$SHADOW" -c "select count(*) from pg_proc where pronamespace = 'public'::regnamespace")
shadow_ops=$($PSQL -d "$SHADOW" -c "select count(*) from pg_operator where oprnamespace = 'public'::regnamespace")
$PSQL -d "$SHADOW" -c "alter database \"$SHADOW\" set search_path = public, pg_catalog" >/dev/null

# The shadow works: a plain query in the shadowed database calls it.
probe=$(psql -X -At -d "$SHADOW" -c "select 1 + 1, upper('x')" 2>&1)
ok $([[ $probe == *"hijacked: operator +(integer, integer)"* && $probe == *"hijacked: upper(text)"* ]]; echo $?) \
   "the shadow catalog captures unqualified names ($shadowed functions, $shadow_ops operators in public)"

# The scenario: calls only, no operator or unqualified function of its own,
# so that any "hijacked" warning comes from inside segment.
cat > "$work/scenario.sql" <<SQL
\set ON_ERROR_STOP 1
\pset footer off
select segment.refresh('customer', '$as_of');
select t.name, segment.count('customer', t.name::text) from segment.tag t order by 1;
select segment.count('customer', 'high_value and not dormant');
select segment.count('customer', 'value_tier.wealth or aipl.loyalty or retention_targets');
select segment.members('customer', 'wealth_mining') limit 20;
select segment.has_tag('customer', 42::bigint, 'high_value');
select segment.tags('customer', 42::bigint);
select segment.bucket_of('customer', 42::bigint, 'value_tier');
select segment.score('customer', 42::bigint, 'service_score');
select * from segment.top('customer', 'service_score', 'high_value', 5);
select * from segment.overlap('customer', array['high_value', 'dormant', 'value_tier.mass']);
select segment.explain('customer', 42::bigint, 'high_value');
select segment.render('xbank_out_t0', '42');
select * from segment.generate(null, '$as_of');
select segment.opportunity_dispatch(pg_catalog.array_agg(o.opportunity_id)) from segment.opportunity o where not o.is_control;
select segment.expire_opportunities('$d20');
select segment.evaluate_outcomes('$d20');
select * from segment.review('$as_of', '$d20');
select segment.enable_live('customer');
update dw.customer_wide set aum = aum operator(pg_catalog.*) 3 where customer_id operator(pg_catalog.<=) 200;
select segment.count('customer', 'high_value');
select segment.has_tag('customer', 7::bigint, 'high_value');
update dw.customer_wide set aum = 90000000 where customer_id operator(pg_catalog.=) 250;
update dw.customer_wide set aum = aum where customer_id operator(pg_catalog.=) 251;
select segment.disable_live('customer');
select segment.enable_live('customer');
update dw.customer_wide set aum = 1 where customer_id operator(pg_catalog.=) 7;
select segment.has_tag('customer', 250::bigint, 'high_value'), segment.has_tag('customer', 7::bigint, 'high_value');
insert into dw.transfer_out (customer_id, amount, same_name) select g, 90000, true from generate_series(1, 60) g;
select count(*) from segment.opportunity;
select segment.refresh('customer', '$d1');
select * from segment.transitions('customer', 'value_tier', '$as_of', '$d1');
call segment.run_all('$d2');
select status, error from segment.nightly_run;
select step, status, error from segment.nightly_step;
select count(*), count(*) filter (where is_control) from segment.opportunity;
select rule_id, count(*), pg_catalog.sum(pg_catalog.length(message)) from segment.opportunity group by 1 order by 1;
SQL

run() {   # run DB OUT: the scenario's output (timestamps blanked) to OUT, its stderr to OUT.err
    psql -X -At -d "$1" -f "$work/scenario.sql" 2>"$2.err" \
        | sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+\+[0-9]{2}/<ts>/g; s/"(started|finished|run_id|duration_ms|elapsed_ms)[a-z_]*": [^,}]+/"\1": <x>/g' > "$2"
    return "${PIPESTATUS[0]}"
}
run "$CLEAN" "$work/clean"; rc_clean=$?
run "$SHADOW" "$work/shadow"; rc_shadow=$?
is "$rc_clean" 0 "the scenario runs under the default search_path"
is "$rc_shadow" 0 "the scenario runs with the shadow of pg_catalog first on the search_path"
[[ $rc_shadow == 0 ]] || sed 's/^/#   /' "$work/shadow.err" | head -20

hijacks=$(grep -c 'hijacked' "$work/shadow.err")
is "$hijacks" 0 "no look-alike in public was called from inside segment"
[[ $hijacks == 0 ]] || grep 'hijacked' "$work/shadow.err" | sort | uniq -c | sort -rn | head -20 | sed 's/^/#   /'

lines=$(wc -l < "$work/clean")
ok $([[ $lines -gt 60 ]]; echo $?) "the scenario printed its results ($lines lines)"
if diff -q "$work/clean" "$work/shadow" >/dev/null; then
    ok 0 "the same results with and without the shadow catalog"
else
    ok 1 "the same results with and without the shadow catalog"
    diff "$work/clean" "$work/shadow" | head -20 | sed 's/^/#   /'
fi
is "$($PSQL -d "$SHADOW" -c "select pg_catalog.count(*) from segment.nightly_run where status operator(pg_catalog.=) 'succeeded'" 2>/dev/null)" "1" \
   "run_all succeeded under the shadowed search_path"

# SECURITY DEFINER functions pin search_path with a SET clause. The live
# trigger acts as the extension's owner without being SECURITY DEFINER: it
# switches the user id in C and pins search_path itself wherever it
# resolves a name (src/live_trigger.c: a SET clause would save and restore
# every setting in each statement); the scenario's live statements above
# (bulk, one row written, one row that moves nobody, the definitions rebuilt
# under the shadowed path) prove it calls no look-alike.
is "$($PSQL -d "$CLEAN" -c "select coalesce(pg_catalog.string_agg(p.oid::regprocedure::text, ', '), '') from pg_proc p
        where p.pronamespace in ('segment'::regnamespace, 'segment_internal'::regnamespace) and p.prosecdef
          and not coalesce('search_path=pg_catalog, pg_temp' = any (p.proconfig), false)")" "" \
   "every SECURITY DEFINER function pins search_path = pg_catalog, pg_temp"
is "$($PSQL -d "$CLEAN" -c "select prosecdef, proconfig is null from pg_proc where oid = 'segment_internal._live_trigger()'::regprocedure")" "f|t" \
   "the live trigger is not SECURITY DEFINER and has no SET clause: it becomes the owner and pins search_path in C"

echo "1..$n"
[[ $failed == 0 ]]
