#!/bin/bash
# check_rules.sh: check that every rule in test/data/tags.sql and every rule
# dw.bench_rules() makes is valid SQL over dw.customer_wide, and that each
# selects some customers but not all, without the segment extension.
#
# Run with libpq variables pointing at a scratch server, e.g.
#   pg_virtualenv test/data/check_rules.sh
# It creates (and drops at the end) database segment_rules_check, loads a stub
# of register_subject/create_tag/as_of (segment_stub.sql), a small bank, the
# tag library and N bench rules, then evaluates every rule with plain SQL,
# segment.as_of() replaced by a literal date.
# Env: CHECK_CUSTOMERS (default 100000), CHECK_BENCH_TAGS (default 200),
#      CHECK_AS_OF (default 2026-11-22), CHECK_KEEP=1 keeps the database.
set -euo pipefail
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
here=$(cd "$(dirname "$0")" && pwd)
customers=${CHECK_CUSTOMERS:-100000}
ntags=${CHECK_BENCH_TAGS:-200}
as_of=${CHECK_AS_OF:-2026-11-22}
db=segment_rules_check

psql -X -q -d postgres -c "drop database if exists $db" -c "create database $db"
trap '[[ -n ${CHECK_KEEP:-} ]] || psql -X -q -d postgres -c "drop database if exists '"$db"'"' EXIT

P=(psql -X -q -v ON_ERROR_STOP=1 -d "$db")
"${P[@]}" -f "$here/segment_stub.sql"
"${P[@]}" -f "$here/bank.sql"
"${P[@]}" -c "select dw.generate_bank($customers, '$as_of')" >/dev/null
"${P[@]}" -o /dev/null -f "$here/tags.sql"
"${P[@]}" -f "$here/bench_tags.sql"
"${P[@]}" -P pager=off <<SQL
select count(segment.create_tag('customer', tag, rule, 'bench', shape)) from dw.bench_rules($ntags) \gset

create temp table result (tag name, category text, members bigint, error text);
do \$\$
declare
  t record; n bigint;
begin
  for t in select * from segment.tag order by tag_id loop
    begin
      execute format('select count(*) filter (where (%s) is true) from dw.customer_wide',
                     replace(t.rule, 'segment.as_of()', quote_literal('$as_of') || '::date'))
         into n;
      insert into result values (t.name, t.category, n, null);
    exception when others then
      insert into result values (t.name, t.category, null, sqlerrm);
    end;
  end loop;
end
\$\$;

\echo library tags (tags.sql), $customers customers as of $as_of:
select category, count(*) as tags, min(members) as min_members, max(members) as max_members
  from result where category <> 'bench' group by category order by category;
\echo rules that failed, or select nobody or everybody:
select r.tag, r.category, r.members, r.error, t.rule
  from result r join segment.tag t on t.name = r.tag
 where r.error is not null or r.members = 0 or r.members = $customers
 order by t.tag_id;
select count(*) filter (where category <> 'bench') as library_tags,
       count(*) filter (where category = 'bench') as bench_rules,
       (select count(distinct rule) from segment.tag where category = 'bench') as distinct_bench_rules,
       count(*) filter (where error is not null) as errors,
       count(*) filter (where members = 0) as empty,
       count(*) filter (where members = $customers) as everyone
  from result;
select count(*) filter (where error is not null) = 0
       and count(*) filter (where category <> 'bench' and (members = 0 or members = $customers)) = 0
       and count(*) filter (where category <> 'bench') >= 40
       and (select count(distinct rule) from segment.tag where category = 'bench') = $ntags as ok
  from result \gset
\if :ok
\echo check_rules: OK
\else
\echo check_rules: FAILED
\quit 3
\endif
SQL
