#!/bin/bash
# bench_citus.sh: the same tagging workload on a local 3-node Citus cluster
# (coordinator + 2 workers, citus preloaded) and on one plain PostgreSQL
# node, all four instances on this machine, same settings. On each:
#   refresh of TAGS tags over ROWS customers (dw.generate_bank, the same seed),
#   the one-pass SQL query with one count(*) filter per tag,
#   a four-tag audience count (segment.count, member sets on the coordinator).
# Prints best-of-BENCH_REPS times and the ratio Citus / plain. On one machine
# the workers share its cores: this shows the overhead and shape of the
# distributed path (rules run per shard on the workers, member sets shipped
# back and unioned; and, for comparison, the rows read through the
# coordinator with segment.citus_pushdown off), not a speed-up.
#
# Called by test/bench.sh when citus.so is installed (BENCH_CITUS=0 skips it);
# by hand: ROWS=1000000 TAGS=60 bash test/bench_citus.sh (makes its own
# four instances; installs segment under the install lock once the data is made)
# Environment: ROWS (1000000), TAGS (60), BENCH_REPS (3), BENCH_AS_OF
# (current date), BENCH_SEED (0.42), CITUS_SHARED_BUFFERS (1GB per node).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rows=${ROWS:-1000000}
ntags=${TAGS:-60}
reps=${BENCH_REPS:-3}
seed=${BENCH_SEED:-0.42}
as_of=${BENCH_AS_OF:-$(date +%F)}
PKGLIB=$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --pkglibdir)
if [[ ! -f $PKGLIB/citus.so ]]; then
    echo "bench_citus: skipped, citus is not installed ($PKGLIB/citus.so; ../shared/tools/install-citus)"
    exit 0
fi

source "$here/citus-nodes.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/segment-bench-citus.XXXXXX")
trap 'nodes_stop; rm -rf "$work"' EXIT
NODE_CONF="max_connections = 100
shared_buffers = ${CITUS_SHARED_BUFFERS:-1GB}
work_mem = 64MB
jit = off"
nodes_init coordinator:citus worker1:citus worker2:citus plain:plain
C=0 P=3

echo "== Citus bench: $rows customers, $ntags tags, as_of $as_of, best of $reps"
echo "   coordinator + 2 workers (citus) and one plain node, all on 127.0.0.1; $(nproc) cores"
for i in 0 1 2; do on $i -c "create extension citus" >/dev/null; done
on $C >/dev/null <<SQL
select citus_set_coordinator_host('127.0.0.1', ${ports[0]});
select citus_add_node('127.0.0.1', ${ports[1]});
select citus_add_node('127.0.0.1', ${ports[2]});
SQL

load() {   # load NODE: the bank and the bench rules, generated with the same seed
    on "$1" -f "$here/data/bank.sql" -f "$here/data/bench_tags.sql" >/dev/null
    on "$1" -c "set client_min_messages = warning" -c "select dw.generate_bank($rows, '$as_of', $seed)" >/dev/null
}
t0=$(date +%s.%N)
load $P
echo "plain node: generated in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s"
t0=$(date +%s.%N)
load $C
on $C >/dev/null <<'SQL'
set client_min_messages = warning;
select create_distributed_table('dw.customer_wide', 'customer_id');
select truncate_local_data_after_distributing_table('dw.customer_wide');
SQL
echo "Citus: generated and distributed in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s" \
     "($(on $C -c "select count(*) from pg_dist_shard where logicalrelid = 'dw.customer_wide'::regclass") shards)"
# Run by hand outside test/with-cluster.sh, the installed segment is only
# taken (and installed from this checkout) now, after the data is made, and
# held until the end: other checkouts on the machine install theirs under
# the same lock.
if [[ -z ${SEGMENT_LOCK_HELD:-} ]]; then
    exec 9>>/tmp/segment-install.lock
    flock 9
    make -s -C "$here/.." install PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" 9>&- >/dev/null
fi
# on the coordinator Citus propagates CREATE EXTENSION to the workers (and
# refuses it when run on a worker directly)
for i in 3 0; do on $i -c "create extension segment" >/dev/null; done
for i in 1 2; do
    [[ $(on $i -c "select extversion from pg_extension where extname = 'segment'") == "$(on 0 -c "select extversion from pg_extension where extname = 'segment'")" ]] ||
        { echo "bench_citus: segment did not reach ${names[$i]}" >&2; exit 1; }
done
for i in $C $P; do
    on "$i" -c "set client_min_messages = warning" \
        -c "select segment.register_subject('customer', 'dw.customer_wide', 'customer_id')" \
        -c "select dw.bench_define_tags($ntags)" -c "vacuum analyze dw.customer_wide" >/dev/null
done

lit="'$as_of'::date"
onepass=$(on $P -c "select 'select ' || string_agg(format('count(*) filter (where %s) as %I', replace(rule, 'segment.as_of()', \$q\$$lit\$q\$), tag), ', ' order by tag_no) || ' from dw.customer_wide' from dw.bench_rules($ntags)")
audience=$(on $P -c "select string_agg(tag, ' and ' order by tag_no) from dw.bench_rules($ntags) where tag_no in (1, 2, 11, 18)")
[[ $ntags -ge 18 ]] || audience=$(on $P -c "select string_agg(tag, ' and ' order by tag_no) from dw.bench_rules(4)")

best() {   # best NODE REPS SQL: the best of REPS \timing figures in ms, after one warm-up
    local node=$1 n=$2 sql=$3
    { echo '\o /dev/null'; echo "$sql;"; echo '\timing on'; for ((r = 0; r < n; r++)); do echo "$sql;"; done; } |
        on "$node" 2>&1 | awk '/^Time:/ { t = $2 + 0; if (best == "" || t < best) best = t } END { printf "%.1f", best }'
}
row() {   # row LABEL CITUS_MS PLAIN_MS
    printf '%-44s %12s %12s %8s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", a / b }')"
}

# the two subjects must agree before any time means anything
same=$(diff <(on $C -c "select * from segment.refresh('customer', '$as_of')" >/dev/null; on $C -c "select name, member_count from segment.tag_state s join segment.tag t using (tag_id) order by name") \
            <(on $P -c "select * from segment.refresh('customer', '$as_of')" >/dev/null; on $P -c "select name, member_count from segment.tag_state s join segment.tag t using (tag_id) order by name") && echo yes || echo NO)
echo "every tag's member count equal on Citus and on the plain node: $same"
[[ $same == yes ]] || exit 1

# the refresh must run on the shards (one partial aggregate per shard), not read rows
pushed=$(on $C -c "set citus.log_remote_commands = on" -c "set client_min_messages = log" \
              -c "select count(*) from segment.refresh('customer', '$as_of')" 2>&1 >/dev/null | grep -c 'shard_member_sets' || true)
echo "refresh evaluated on the shards: $pushed partial aggregates sent"

printf '\n%-44s %12s %12s %8s\n' "step (ms, best of $reps)" "Citus" "plain" "ratio"
plain_refresh=$(best $P "$reps" "select sum(members) from segment.refresh('customer', '$as_of')")
row "refresh, $ntags tags (on the shards)" "$(best $C "$reps" "select sum(members) from segment.refresh('customer', '$as_of')")" \
                           "$plain_refresh"
row "refresh, rows through the coordinator" \
    "$(PGOPTIONS="${PGOPTIONS:-} -c segment.citus_pushdown=off" best $C "$reps" "select sum(members) from segment.refresh('customer', '$as_of')")" \
    "$plain_refresh"
row "one-pass SQL, $ntags count(*) filter" "$(best $C "$reps" "$onepass")" "$(best $P "$reps" "$onepass")"
row "4-tag audience count (segment.count)" "$(best $C 20 "select segment.count('customer', '$audience')")" \
                                           "$(best $P 20 "select segment.count('customer', '$audience')")"
row "member-set bytes (MB, not ms)" \
    "$(on $C -c "select round(sum(pg_column_size(members)) / 1048576.0, 1) from segment.tag_state")" \
    "$(on $P -c "select round(sum(pg_column_size(members)) / 1048576.0, 1) from segment.tag_state")"
