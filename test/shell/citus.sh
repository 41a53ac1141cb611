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
is "$(on 0 -c "select segment_internal._relation_kind('cust')")" "citus" "segment recognises the Citus table"

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

# --- evaluated on the shards ---------------------------------------------------
# The refresh sends one aggregate per rule owner to the shards and combines
# member sets; Citus's remote-command log shows what went to the workers.
remote() {   # the commands the coordinator sent while running $1 (as postgres)
    on 0 -c "set citus.log_remote_commands = on" -c "set client_min_messages = log" -c "$1" 2>&1 >/dev/null
}
log=$(remote "select count(*) from segment.refresh('dist', '2026-12-01')")
is "$(grep -c 'worker_partial_agg(.*segment\.shard_member_sets' <<< "$log")" "32" "the refresh evaluates every rule on each of the 32 shards (one partial aggregate each)"
is "$(grep -ci 'SELECT id, aum, age, opened, city, branch FROM' <<< "$log")|$(grep -c 'through the coordinator' <<< "$log")" "0|0" "and reads no row through the coordinator"
is "$(compare dist cust 2026-12-01)" "" "every tag still equals (rule) IS TRUE"

# schemes (first true bucket) and scorecards (sum of points) from the shards' sets
on 0 >/dev/null 2>"$work/seg.err" <<'SQL'
select segment.create_scheme(s, s || '_tier', array[['top', 'aum >= 800000'], ['mid', 'aum >= 300000 or age > 60'], ['low', 'true']])
  from unnest(array['dist', 'loc']) s;
select segment.create_scorecard(s, s || '_card', 5, array[['aum >= 500000', '10'], ['age < 30', '2.5'], [$r$city = '上海'$r$, '-1']])
  from unnest(array['dist', 'loc']) s;
select count(*) from segment.refresh('dist', '2026-12-01');
select count(*) from segment.refresh('loc', '2026-12-01');
SQL
ok $? "a scheme and a scorecard on both subjects ($(head -c 300 "$work/seg.err"))"
is "$(on 0 <<'SQL'
select string_agg(format('%s:%s', a.bucket, segment.to_array(a.members) = segment.to_array(b.members)), ' ' order by a.bucket)
  from segment.bucket_state a join segment.scheme sa on sa.scheme_id = a.scheme_id and sa.name = 'dist_tier'
  join segment.scheme sb on sb.name = 'loc_tier'
  join segment.bucket_state b on b.scheme_id = sb.scheme_id and b.bucket = a.bucket
SQL
)" "low:t mid:t top:t" "scheme buckets equal those of the local copy"
is "$(on 0 -c "select segment.count('dist', 'dist_tier.mid')")" \
   "$(on 0 -c "select count(*) from cust where not coalesce(aum >= 800000, false) and (aum >= 300000 or age > 60) is true")" \
   "a bucket equals SQL (first true bucket)"
is "$(on 0 <<'SQL'
select count(*) || ':' || bool_and(b.members is not null and segment.to_array(a.members) = segment.to_array(b.members))
  from segment.score_state a join segment.scorecard ca on ca.scorecard_id = a.scorecard_id and ca.name = 'dist_card'
  join segment.scorecard cb on cb.name = 'loc_card'
  left join segment.score_state b on b.scorecard_id = cb.scorecard_id and b.score = a.score
SQL
)" "$(on 0 -c "select count(distinct 5 + case when (aum >= 500000) is true then 10 else 0 end + case when (age < 30) is true then 2.5 else 0 end + case when (city = '上海') is true then -1 else 0 end) || ':true' from cust")" \
   "every score's members equal those of the local copy"

# the same sets with the push-down off (rows read through the coordinator)
sets() { on 0 -c "select md5(string_agg(segment.to_array(s.members)::text, ',' order by t.name)) from segment.tag_state s join segment.tag t using (tag_id) where t.name like 'dist_%'"; }
before=$(sets)
log=$(remote "set segment.citus_pushdown = off; select count(*) from segment.refresh('dist', '2026-12-01')")
is "$(grep -c 'shard_member_sets' <<< "$log")|$(grep -ci 'SELECT id, aum, age, opened, city, branch FROM' <<< "$log")" "0|32" "segment.citus_pushdown = off reads the rows of the 32 shards instead"
is "$(sets)" "$before" "and gives the same member sets"

# a rule with a user function is not sent (it might not exist, or differ, on
# the workers): the rows are read, and the answer is the same
on 0 -c "create function public.half(numeric) returns numeric immutable language sql as 'select \$1 / 2'" \
     -c "select segment.create_tag('dist', 'dist_half', 'public.half(aum) >= 200000')" >/dev/null 2>"$work/uf.err"
ok $? "a tag calling a user function ($(head -c 200 "$work/uf.err"))"
log=$(remote "select count(*) from segment.refresh('dist', '2026-12-01')")
is "$(grep -c 'shard_member_sets' <<< "$log")|$(grep -ci 'SELECT id, aum, age, opened, city, branch FROM' <<< "$log")" "0|32" "is evaluated on the coordinator"
is "$(on 0 -c "select segment.count('dist', 'dist_half')")" "$(on 0 -c "select count(*) from cust where (aum / 2 >= 200000) is true")" "and equals SQL"
on 0 -c "select segment.drop_tag('dist_half')" >/dev/null

# a refresh in the transaction that wrote the shards sees those writes
is "$(on 0 <<'SQL'
begin;
update cust set aum = 999999 where id = 17;     -- aum was NULL
\o /dev/null
select count(*) from segment.refresh('dist', '2026-12-01');
\o
select segment.count('dist', 'dist_rich') - (select count(*) from cust where (aum >= 500000) is true);
rollback;
SQL
)" "0" "a refresh in the writing transaction sees its writes (the rollback undoes both)"
is "$(compare dist cust 2026-12-01)" "" "after the rollback the previous sets are back"

# a text key: member ids come from the coordinator's key map, so the rows are read
on 0 >/dev/null 2>"$work/txt.err" <<'SQL'
create table cust_txt (code text primary key, aum numeric);
select create_distributed_table('cust_txt', 'code');
insert into cust_txt select 'C' || id, aum from cust_local where id <= 20000;
select segment.register_subject('txt', 'cust_txt', 'code');
select segment.create_tag('txt', 'txt_rich', 'aum >= 500000');
SQL
ok $? "a distributed table with a text key ($(head -c 200 "$work/txt.err"))"
log=$(remote "select count(*) from segment.refresh('txt', '2026-12-01')")
is "$(grep -c 'shard_member_sets' <<< "$log")" "0" "its rows are read through the coordinator"
is "$(on 0 -c "select segment.count('txt', 'txt_rich')")|$(on 0 -c "select count(*) from segment.members_text('txt', 'txt_rich') m join cust_txt c on c.code = m where c.aum >= 500000")" \
   "$(on 0 -c "select count(*) from cust_txt where (aum >= 500000) is true")|$(on 0 -c "select count(*) from cust_txt where (aum >= 500000) is true")" \
   "and its tag equals SQL, member by member"

# rules of two owners: one aggregate each, each run as its owner
on 0 >/dev/null 2>"$work/owner.err" <<'SQL'
create role analyst_b login;
grant select on cust to analyst_b;
select segment.grant_role('analyst_b', 'author');
set role analyst_b;
select segment.create_tag('dist', 'dist_b_old', 'age >= 60');
reset role;
SQL
ok $? "a second author's tag ($(head -c 300 "$work/owner.err"))"
log=$(remote "select count(*) from segment.refresh('dist', '2026-12-01')")
is "$(grep -c 'worker_partial_agg(.*segment\.shard_member_sets' <<< "$log")" "64" "two owners: two aggregates per shard"
is "$(on 0 -c "select segment.count('dist', 'dist_b_old')")" "$(on 0 -c "select count(*) from cust where (age >= 60) is true")" "the second owner's tag equals SQL"
on 0 -c "revoke select on cust from analyst_b" >/dev/null
out=$(on 0 -c "select tag, members from segment.refresh('dist', '2026-12-01')" 2>&1)
is "$(grep -c '^WARNING: .*dist_b_old' <<< "$out")|$(on 0 -c "select count(*) from segment.tag_state s join segment.tag t using (tag_id) where t.name = 'dist_b_old' and s.member_count > 0")" "1|1" \
   "an owner who lost SELECT: that tag fails and keeps its members, as on a local table"
on 0 -c "select segment.drop_tag('dist_b_old')" >/dev/null

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
