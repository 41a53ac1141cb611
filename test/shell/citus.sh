#!/bin/bash
# test/shell/citus.sh: segment on a real Citus cluster (coordinator and two
# workers: three PostgreSQL 15 instances on 127.0.0.1, citus preloaded).
#
# Skipped (with a line saying so, exit 0) when citus.so is not installed;
# .ci/run installs it with ../shared/tools/install-citus.
#
# On the coordinator: a table distributed by the customer key (200,000 rows
# with NULLs), the same rows in a local table, a table distributed by another
# column, and a reference table; tags and an audience on each. Checked:
#   - every tag's count and member list equal plain SQL's (rule) IS TRUE on
#     the distributed table (run by Citus), and equal those of the local copy;
#     never a silent 0;
#   - the same after UPDATE and DELETE on the shards and a new refresh;
#   - explain reads the customer's row (through Citus, not the empty shell);
#   - generate makes one opportunity per audience member;
#   - enable_live and attach_event_rule on a distributed table: 0A000.
# Prints TAP; exits non-zero on any failure. SEGMENT_KEEP_CITUS=1 keeps the
# instances running (and prints where).
set -u

PKGLIB=$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --pkglibdir)
if [[ ! -f $PKGLIB/citus.so ]]; then
    echo "# skipped: citus is not installed ($PKGLIB/citus.so); ../shared/tools/install-citus installs it"
    echo "1..0 # SKIP citus not installed"
    exit 0
fi

source "$(dirname "$0")/../citus-nodes.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/segment-citus.XXXXXX")
n=0
failed=0

cleanup() {
    if [[ ${SEGMENT_KEEP_CITUS:-0} == 1 ]]; then
        echo "# kept: coordinator on 127.0.0.1:${ports[0]}, workers ${ports[1]} ${ports[2]}, data in $work"
    else
        nodes_stop
        rm -rf "$work"
    fi
}
trap cleanup EXIT

ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
is() {
    n=$((n + 1))
    if [[ "$1" == "$2" ]]; then echo "ok $n - $3"
    else echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"; failed=$((failed + 1)); fi
}

# --- three instances ----------------------------------------------------------
nodes_init coordinator:citus worker1:citus worker2:citus || { echo "not ok - three instances"; exit 1; }
for i in 0 1 2; do
    on $i -c "create extension citus" -c "create extension segment" >/dev/null 2>"$work/ext.err"
    ok $? "citus and segment created on ${names[$i]} ($(head -c 200 "$work/ext.err"))"
done
on 0 >/dev/null 2>"$work/nodes.err" <<SQL
select citus_set_coordinator_host('127.0.0.1', ${ports[0]});
select citus_add_node('127.0.0.1', ${ports[1]});
select citus_add_node('127.0.0.1', ${ports[2]});
SQL
ok $? "the coordinator knows its two workers ($(head -c 200 "$work/nodes.err"))"
is "$(on 0 -c "select count(*) from citus_get_active_worker_nodes()")" "2" "two active workers"

# --- data ----------------------------------------------------------------------
on 0 >/dev/null 2>"$work/data.err" <<'SQL'
create table cust (id int8 primary key, aum numeric, age int, opened date, city text, branch int);
create table cust_local (like cust including all);
insert into cust_local
select n,
       case when n % 17 = 0 then null else (n * 7919) % 1000000 end,
       case when n % 11 = 0 then null else 18 + n % 70 end,
       case when n % 13 = 0 then null else date '2020-01-01' + (n * 37) % 2500 end,
       case n % 4 when 0 then 'Shanghai' when 1 then '上海' when 2 then null else 'beijing' end,
       n % 7
  from generate_series(1, 200000) n;
select create_distributed_table('cust', 'id');
insert into cust select * from cust_local;
-- distributed on another column: Citus allows no unique index on the key alone
create table cust_by_branch (id int8, aum numeric, branch int, primary key (branch, id));
select create_distributed_table('cust_by_branch', 'branch');
insert into cust_by_branch select id, aum, branch from cust_local;
create unique index on cust_local (id);
create table ref_cust (id int8 primary key, aum numeric);
select create_reference_table('ref_cust');
insert into ref_cust select id, aum from cust_local where id <= 5000;
SQL
ok $? "a distributed, a local, a by-branch distributed and a reference table ($(head -c 300 "$work/data.err"))"
is "$(on 0 -c "select count(*) from pg_dist_shard where logicalrelid = 'cust'::regclass")" "32" "the distributed table has 32 shards"
is "$(on 0 -c "select count(*) from only cust")" "200000" "(Citus answers a count of the shell from the shards)"

RULES="rich|aum >= 500000
young|age < 30 and aum is not null
veteran|opened < segment.as_of() - 1000
sh|city in ('Shanghai', '上海')
mixed|coalesce(aum, 0) > 400000 or not (age >= 40)"

define() {   # define SUBJECT RELATION
    local sql="select segment.register_subject('$1', '$2', 'id');"
    while IFS='|' read -r tag rule; do
        sql+="select segment.create_tag('$1', '$1_$tag', \$r\$$rule\$r\$);"
    done <<< "$RULES"
    on 0 -c "$sql" >/dev/null 2>"$work/def.err"
}
define dist cust;       ok $? "subject over the distributed table ($(head -c 200 "$work/def.err"))"
define loc cust_local;  ok $? "subject over the local copy ($(head -c 200 "$work/def.err"))"
is "$(on 0 -c "select segment._relation_kind('cust')")" "citus" "segment recognises the Citus table"

compare() {   # compare SUBJECT RELATION AS_OF: tags whose count or members differ from SQL
    local bad=""
    while IFS='|' read -r tag rule; do
        got=$(on 0 -c "select segment.count('$1', '$1_$tag'), md5(coalesce(string_agg(m::text, ',' order by m), '')) from segment.members('$1', '$1_$tag') m")
        # Citus runs the plain SQL on the workers, which do not see the session's
        # segment.as_of: the date goes in as a literal
        sqlrule=$(sed "s/segment\.as_of()/date '$3'/g" <<< "$rule")
        want=$(on 0 -c "select count(*), md5(coalesce(string_agg(id::text, ',' order by id), '')) from $2 where ($sqlrule) is true")
        [[ $got == "$want" ]] || bad+="$tag: $got vs $want; "
    done <<< "$RULES"
    echo "$bad"
}

on 0 -c "select * from segment.refresh('dist', '2026-12-01')" -c "select * from segment.refresh('loc', '2026-12-01')" >/dev/null 2>"$work/refresh.err"
ok $? "refresh of both subjects ($(head -c 300 "$work/refresh.err"))"
is "$(compare dist cust 2026-12-01)" "" "every tag of the distributed subject equals (rule) IS TRUE run by Citus"
is "$(on 0 -c "select sum(member_count) > 0 from segment.tag_state s join segment.tag t using (tag_id) join segment.subject x using (subject_id) where x.name = 'dist'")" "t" "and they have members (never a silent 0)"
same=$(on 0 <<'SQL'
select bool_and(segment.to_array(a.members) = segment.to_array(b.members))
  from segment.tag_state a join segment.tag ta on ta.tag_id = a.tag_id
  join segment.tag tb on tb.name = replace(ta.name, 'dist_', 'loc_')
  join segment.tag_state b on b.tag_id = tb.tag_id
 where ta.name like 'dist_%';
SQL
)
is "$same" "t" "member sets equal those of the same rows in a local table"
is "$(on 0 -c "select segment.count('dist', 'dist_rich and not dist_young')")" \
   "$(on 0 -c "select count(*) from cust where (aum >= 500000) is true and not ((age < 30 and aum is not null) is true)")" \
   "an audience equals SQL"

# writes on the shards, then a refresh
on 0 >/dev/null 2>"$work/dml.err" <<'SQL'
update cust set aum = 900000 where id % 1000 = 1;
delete from cust where id % 997 = 0;
insert into cust values (300001, 700000, 25, '2019-01-01', '上海', 1);
SQL
ok $? "UPDATE, DELETE and INSERT on the shards ($(head -c 200 "$work/dml.err"))"
on 0 -c "select * from segment.refresh('dist', '2026-12-02')" >/dev/null 2>"$work/refresh2.err"
ok $? "refresh after the writes ($(head -c 200 "$work/refresh2.err"))"
is "$(compare dist cust 2026-12-02)" "" "every tag still equals plain SQL"
is "$(on 0 -c "select member_count from segment.subject_state s join segment.subject x using (subject_id) where x.name = 'dist'")" \
   "$(on 0 -c "select count(*) from cust")" "the universe follows the deletes and inserts"

# explain goes through SQL
is "$(on 0 -c "select segment.explain('dist', 1001, 'dist_rich') ->> 'value'")" "true" "explain reads the row through Citus (updated customer: rich)"
is "$(on 0 -c "select segment.explain('dist', 997, 'dist_rich') ->> 'row_found'")" "false" "a deleted customer has no row"

# other distributions and a reference table
on 0 -c "select segment.register_subject('bybranch', 'cust_by_branch', 'id')" \
     -c "select segment.create_tag('bybranch', 'bb_rich', 'aum >= 500000')" \
     -c "select * from segment.refresh('bybranch', '2026-12-01')" >/dev/null 2>"$work/bb.err"
ok $? "a table distributed on another column is a subject: keys checked at refresh ($(head -c 200 "$work/bb.err"))"
is "$(on 0 -c "select segment.count('bybranch', 'bb_rich')")" "$(on 0 -c "select count(*) from cust_by_branch where aum >= 500000")" "its tag equals SQL"
on 0 -c "insert into cust_by_branch values (5, 1, 99)" >/dev/null
out=$(on 0 -c "\\set VERBOSITY verbose" -c "select * from segment.refresh('bybranch', '2026-12-02')" 2>&1)
is "$(grep -o '23505' <<< "$out" | head -1)" "23505" "a key on two branches fails its refresh with 23505"
is "$(on 0 -c "select as_of from segment.subject_state s join segment.subject x using (subject_id) where x.name = 'bybranch'")" "2026-12-01" "and keeps the previous sets"
on 0 -c "select segment.register_subject('ref', 'ref_cust', 'id')" \
     -c "select segment.create_tag('ref', 'ref_rich', 'aum >= 500000')" \
     -c "select * from segment.refresh('ref', '2026-12-01')" >/dev/null 2>"$work/ref.err"
ok $? "a reference table as subject ($(head -c 200 "$work/ref.err"))"
is "$(on 0 -c "select segment.count('ref', 'ref_rich')")" "$(on 0 -c "select count(*) from ref_cust where aum >= 500000")" "its tag equals SQL"

# opportunities from the distributed subject
on 0 -c "select segment.create_opportunity_rule('dist', 'dist_call', 'dist_rich and dist_sh', 'mining', 'wealth', assignment => 'pool')" >/dev/null 2>"$work/opp.err"
ok $? "an opportunity rule on the distributed subject ($(head -c 200 "$work/opp.err"))"
is "$(on 0 -c "select generated + control from segment.generate('dist_call', '2026-12-02')")" \
   "$(on 0 -c "select segment.count('dist', 'dist_rich and dist_sh')")" "generate makes one opportunity per audience member"

# refused up front, never XX000
out=$(on 0 -c "\\set VERBOSITY verbose" -c "select segment.enable_live('dist')" 2>&1)
is "$(grep -o '0A000' <<< "$out" | head -1)" "0A000" "enable_live on a distributed table: 0A000"
on 0 -c "create table ev (id int8, amount numeric)" -c "select create_distributed_table('ev', 'id')" >/dev/null 2>&1
out=$(on 0 -c "\\set VERBOSITY verbose" -c "select segment.attach_event_rule('dist_call', 'ev', 'id')" 2>&1)
is "$(grep -o '0A000' <<< "$out" | head -1)" "0A000" "attach_event_rule on a distributed table: 0A000"
is "$(on 0 -c "select count(*) from segment.live_subject")|$(on 0 -c "select count(*) from segment.event_rule")" "0|0" "nothing was enabled or attached"

echo "1..$n"
exit $(( failed > 0 ))
