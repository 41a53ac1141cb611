#!/bin/bash
# bench.sh: `make bench`. On one generated bank, in one run, times every way of
# computing N tags over every customer and one four-tag audience:
#
#   (a)  bare scan: select count(*) from dw.customer_wide          (the floor)
#   (b)  one SQL query with one count(*) filter (where rule) per tag
#   (c)  one select count(*) ... where rule per tag (N queries)
#   (d)  select ... from segment.refresh('customer', as_of)
#   and (test/bench_refresh.sh) the refresh against the floor, a count(*)
#   reading every column the rules read, serial and parallel, with TAGS and
#   2 x TAGS tags: refresh/floor and the 2 x TAGS / TAGS ratio;
#   and journeys (test/bench_journeys.sh): advance_journeys against a plain
#   INSERT ... SELECT of the same due touches;
#   and on a local 3-node Citus cluster against one plain node (test/bench_citus.sh)
#   and a snapshot subject (test/bench_snapshot.sh): the same tags over two
#   daily partitions of the same customers, against (d) and plain SQL.
#   and live maintenance (test/bench_live.sh): an UPDATE of 10% of the customers
#   with live on against off, and pgbench with 2 clients, live on and off;
#   and event rules under pgbench (test/bench_events.sh), rule on and off.
#   and, for the audience "tA and tB and not tC or tD":
#   segment.count, the SQL scan with the equivalent WHERE, and intarray
#   (customer_id, tags int[]) with a GIN index and a query_int;
#   and 2-, 4- and 8-tag audiences against pg_roaringbitmap (test/bench_audience.sh).
#
# Every step runs BENCH_REPS times (default 3) in interleaved rounds after a
# warm-up; the best time counts. Times are psql's \timing (client-observed,
# so they include one round trip). The SQL side uses the very rules given to
# segment, with segment.as_of() replaced by the same date as a literal (the
# most favourable form for plain SQL: constant-folded). Session settings are
# the server's defaults and are printed; extra lines show the SQL query with
# parallel workers and/or JIT off (BENCH_VARIANTS=0 skips them).
#
# Run by `make bench` in a throwaway cluster (test/with-cluster.sh); by hand:
#   ROWS=1000000 TAGS=60 PGHOST=... PGDATABASE=... test/bench.sh
# Environment: ROWS (1000000), TAGS (60), BENCH_REPS (3), BENCH_AUDIENCE_REPS (5),
#   BENCH_AS_OF (server's current_date), BENCH_VARIANTS (1), BENCH_SEED (0.42),
# Peak memory is read from /proc/<backend pid>/status: the script must run on
# the database server's machine (otherwise it prints n/a).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rows=${ROWS:-1000000}
ntags=${TAGS:-60}
reps=${BENCH_REPS:-3}
areps=${BENCH_AUDIENCE_REPS:-5}
variants=${BENCH_VARIANTS:-1}
seed=${BENCH_SEED:-0.42}
for v in rows ntags reps areps; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || { echo "bench: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done
(( ntags >= 4 )) || { echo "bench: TAGS must be at least 4 (the audience uses four tags)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/segment-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export BENCH_TMP=$tmp
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
P=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)
Q=(psql -X -q -At -v ON_ERROR_STOP=1)     # one value out
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

as_of=${BENCH_AS_OF:-$("${Q[@]}" -c 'select current_date')}
[[ $as_of =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "bench: BENCH_AS_OF must be YYYY-MM-DD" >&2; exit 2; }

echo "== segment bench: $rows customers, $ntags tags, as_of $as_of, best of $reps (audiences: best of $areps)"

# ---------------------------------------------------------------- set-up
seg=none
if "${P[@]}" -c 'create extension if not exists segment' 2>"$tmp/ext.err"; then
  seg=ext
  missing=$("${Q[@]}" -c "select string_agg(f, ', ') from unnest(array['register_subject', 'unregister_subject',
      'create_tag', 'drop_tag', 'refresh', 'count']) f
      where not exists (select from pg_proc where proname = f and pronamespace = 'segment'::regnamespace)")
  if [[ -n $missing ]]; then
    echo "bench: the installed segment lacks $missing; SQL lines only"
    seg=none
  fi
else
  echo "bench: segment is not available here; SQL lines only. ($(head -1 "$tmp/ext.err"))"
fi

"${P[@]}" -f "$here/data/bank.sql"
"${P[@]}" -f "$here/data/bench_tags.sql"
t0=$(now)
"${Q[@]}" -c "select dw.generate_bank($rows, '$as_of', $seed)" >/dev/null
gen_s=$(secs "$t0" "$(now)")
echo "generated $rows customers in $gen_s s"

if [[ $seg != none ]]; then
  "${P[@]}" <<SQL
do \$\$ begin
  if exists (select from segment.subject where name = 'customer') then
    perform segment.unregister_subject('customer');
  end if;
end \$\$;
select segment.register_subject('customer', 'dw.customer_wide', 'customer_id', 'sub_branch_id', 'manager_id') \\gset
select dw.bench_define_tags($ntags) \\gset
SQL
fi
"${P[@]}" -c 'vacuum analyze dw.customer_wide'

# ------------------------------------------------------- queries from the rules
lit="'$as_of'::date"
"${Q[@]}" -o "$tmp/rules.tsv" -F $'\t' -c \
  "select tag_no, tag, replace(rule, 'segment.as_of()', \$q\$$lit\$q\$) from dw.bench_rules($ntags) order by tag_no"
"${Q[@]}" -o "$tmp/onepass.sql" -c \
  "select 'select ' || string_agg(format('count(*) filter (where %s) as %I', replace(rule, 'segment.as_of()', \$q\$$lit\$q\$), tag), E',\n       ' order by tag_no)
          || E'\n  from dw.customer_wide;' from dw.bench_rules($ntags)"
"${Q[@]}" -o "$tmp/pertag.sql" -c \
  "select format('select count(*) from dw.customer_wide where %s;', replace(rule, 'segment.as_of()', \$q\$$lit\$q\$))
     from dw.bench_rules($ntags) order by tag_no"
refresh_sql="select sum(members) from segment.refresh('customer', '$as_of');"

# the audience: four real tags of different shapes
if (( ntags >= 18 )); then aud=(1 2 11 18); else aud=(1 2 3 4); fi
rule() { awk -F'\t' -v n="$1" '$1 == n { print $3 }' "$tmp/rules.tsv"; }
name() { awk -F'\t' -v n="$1" '$1 == n { print $2 }' "$tmp/rules.tsv"; }
audience="$(name "${aud[0]}") and $(name "${aud[1]}") and not $(name "${aud[2]}") or $(name "${aud[3]}")"
aud_where="((($(rule "${aud[0]}")) is true and ($(rule "${aud[1]}")) is true and ($(rule "${aud[2]}")) is not true) or ($(rule "${aud[3]}")) is true)"
aud_query_int="${aud[0]}&${aud[1]}&!${aud[2]}|${aud[3]}"

# -------------------------------------------------------------- environment
echo
echo "== Machine and settings"
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
echo "cpu: ${cpu:-unknown} x $(nproc 2>/dev/null || echo '?'); memory: ${mem:-unknown}; $(uname -sr)"
"${P[@]}" -P footer=off <<SQL
select version() as server;
select name, setting, unit from pg_settings
 where name in ('max_parallel_workers_per_gather', 'max_parallel_workers', 'max_worker_processes', 'jit',
                'jit_above_cost', 'shared_buffers', 'work_mem', 'effective_cache_size', 'huge_pages')
 order by name;
select pg_size_pretty(pg_relation_size('dw.customer_wide')) as table_size,
       (select count(*) from information_schema.columns
         where table_schema = 'dw' and table_name = 'customer_wide') as columns,
       (select count(*) from dw.customer_wide) as rows;
SQL
{ echo 'explain'; cat "$tmp/onepass.sql"; } | "${Q[@]}" > "$tmp/plan.txt"
echo "one-pass SQL plan: $(grep -Eo 'Workers Planned: [0-9]+' "$tmp/plan.txt" || echo 'no parallel workers') (default settings)"

# -------------------------------------------------------------- tagging timings
{
  echo '\timing on'
  echo '\o /dev/null'
  echo '\echo @@ warmup 0'
  echo 'select count(*) from dw.customer_wide;'
  cat "$tmp/onepass.sql"
  [[ $seg == none ]] || echo "$refresh_sql"
  for ((r = 1; r <= reps; r++)); do
    echo "\\echo @@ a $r";  echo 'select count(*) from dw.customer_wide;'
    echo "\\echo @@ b $r";  cat "$tmp/onepass.sql"
    echo "\\echo @@ c $r";  cat "$tmp/pertag.sql"
    if [[ $seg != none ]]; then echo "\\echo @@ d $r"; echo "$refresh_sql"; fi
    if [[ $variants != 0 ]]; then
      echo '\echo @@ skip 0';  echo 'set max_parallel_workers_per_gather = 0;'
      echo "\\echo @@ a_serial $r";  echo 'select count(*) from dw.customer_wide;'
      echo "\\echo @@ b_serial $r";  cat "$tmp/onepass.sql"
      echo '\echo @@ skip 0';  echo 'set jit = off;'
      echo "\\echo @@ b_serial_nojit $r";  cat "$tmp/onepass.sql"
      echo '\echo @@ skip 0';  echo 'reset max_parallel_workers_per_gather;'
      echo "\\echo @@ b_nojit $r";  cat "$tmp/onepass.sql"
      echo '\echo @@ skip 0';  echo 'reset jit;'
    fi
  done
} > "$tmp/tagging.sql"
echo
echo "== Tagging: every tag over every customer (running $reps rounds ...)"
"${P[@]}" -f "$tmp/tagging.sql" > "$tmp/tagging.out"

# best (minimum over rounds) of the summed times of each step, in ms
best() {
  awk '/^@@ /{ step = $2; rep = $3; next }
       /^Time: /{ t[step] = 1; s[step " " rep] += $2 }
       END { for (k in s) { split(k, p, " "); if (!(p[1] in b) || s[k] < b[p[1]]) b[p[1]] = s[k] }
             for (k in b) printf "%s %.3f\n", k, b[k] }' "$1"
}
best "$tmp/tagging.out" > "$tmp/best.txt"
ms() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/best.txt"; }
a_ms=$(ms a); b_ms=$(ms b)
line() {  # label key
  local v; v=$(ms "$2")
  if [[ -z $v ]]; then printf '%-58s %10s %12s %10s\n' "$1" "n/a" "" ""; return; fi
  awk -v l="$1" -v v="$v" -v a="$a_ms" -v b="$b_ms" \
    'BEGIN { printf "%-58s %10.3f %12.2f %10.2f\n", l, v / 1000, v / b, v / a }'
}
printf '%-58s %10s %12s %10s\n' "step" "seconds" "x one-pass" "x bare"
printf '%-58s %10s %12s %10s\n' "----" "-------" "----------" "------"
line "(a) bare count(*) scan (the floor)" a
line "(b) one SQL query, one count(*) filter per tag" b
line "(c) one SQL query per tag ($ntags queries)" c
if [[ $seg == none ]]; then
  printf '%-58s %10s\n' "(d) segment.refresh" "n/a (segment not installed)"
else
  line "(d) segment.refresh('customer')" d
fi
if [[ $variants != 0 ]]; then
  echo "variants of the SQL lines (for reference; ratios still against (a) and (b)):"
  line "    (a) with max_parallel_workers_per_gather = 0" a_serial
  line "    (b) with max_parallel_workers_per_gather = 0" b_serial
  line "    (b) with jit = off" b_nojit
  line "    (b) with both off" b_serial_nojit
fi

# counts agree?
if [[ $seg != none ]]; then
  {
    echo 'create temp table sqlcounts as select unnest(array['
    awk -F'\t' '{ printf "%s%s", (NR > 1 ? ", " : ""), "'\''" $2 "'\''" }' "$tmp/rules.tsv"
    echo ']::name[]) as tag, unnest(array['
    awk -F'\t' '{ printf "%scount(*) filter (where %s)", (NR > 1 ? ",\n  " : ""), $3 }' "$tmp/rules.tsv"
    echo ']) as n from dw.customer_wide;'
    echo "select count(*) filter (where s.n is distinct from r.members) as mismatches,"
    echo "       string_agg(s.tag || ': sql ' || s.n || ' segment ' || coalesce(r.members::text, 'none'), '; ') filter (where s.n is distinct from r.members)"
    echo "  from sqlcounts s left join segment.refresh('customer', '$as_of') r on r.tag = s.tag;"
  } > "$tmp/check.sql"
  "${Q[@]}" -F ' | ' -f "$tmp/check.sql" > "$tmp/check.out"
  read -r mism < "$tmp/check.out" || true
  if [[ ${mism%% *} == 0 ]]; then
    echo "check: segment.refresh members = one-pass SQL counts for all $ntags tags"
  else
    echo "check: MISMATCH between segment.refresh and SQL: $(cat "$tmp/check.out")"
  fi
fi

# ------------------------------------------------- refresh against the floor
# (f) count(*) reading every column the rules read, (r1) refresh of TAGS
# tags, (r2) of 2 x TAGS tags, serial and parallel (test/bench_refresh.sh)
if [[ $seg == ext ]]; then
  TAGS=$ntags BENCH_AS_OF=$as_of BENCH_REPS=$reps bash "$here/bench_refresh.sh" || echo "bench: the refresh-against-the-floor part failed"
fi

# ------------------------------------------------- schemes and scorecards
has_schemes=$([[ $seg == ext ]] && "${Q[@]}" -c "select count(*) from pg_proc where proname in ('create_scheme', 'create_scorecard') and pronamespace = 'segment'::regnamespace" || echo 0)
if [[ $has_schemes == 2 ]]; then
  "${P[@]}" -f "$here/data/bench_segmentation.sql"
  "${Q[@]}" -c "select dw.bench_define_segmentation()" >/dev/null
  "${Q[@]}" -o "$tmp/segsql.sql" -c "select dw.bench_segmentation_sql($ntags, '$as_of')"
  {
    echo '\timing on'
    echo '\o /dev/null'
    echo '\echo @@ warmup 0'
    cat "$tmp/segsql.sql"; echo "$refresh_sql"
    for ((r = 1; r <= reps; r++)); do
      echo '\echo @@ skip 0'; echo 'update segment.scheme set active = false; update segment.scorecard set active = false;'
      echo "\\echo @@ d $r"; echo "$refresh_sql"
      echo '\echo @@ skip 0'; echo 'update segment.scheme set active = true; update segment.scorecard set active = true;'
      echo "\\echo @@ e $r"; echo "$refresh_sql"
      echo "\\echo @@ f $r"; cat "$tmp/segsql.sql"
    done
  } > "$tmp/seg.sql"
  echo
  echo "== Tags + 2 schemes of 5 buckets + 2 scorecards of 10 items (running $reps rounds ...)"
  "${P[@]}" -f "$tmp/seg.sql" > "$tmp/seg.out"
  best "$tmp/seg.out" > "$tmp/best_seg.txt"
  sms() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/best_seg.txt"; }
  d_ms=$(sms d); e_ms=$(sms e); f_ms=$(sms f)
  printf '%-58s %10s %12s %12s\n' "step" "seconds" "x SQL (f)" "x tags-only"
  printf '%-58s %10s %12s %12s\n' "----" "-------" "---------" "-----------"
  awk -v d="$d_ms" -v e="$e_ms" -v f="$f_ms" 'BEGIN {
    printf "%-58s %10.3f %12.2f %12.2f\n", "(d) segment.refresh, tags only", d / 1000, d / f, 1
    printf "%-58s %10.3f %12.2f %12.2f\n", "(e) segment.refresh, tags + schemes + scorecards", e / 1000, e / f, e / d
    printf "%-58s %10.3f %12.2f %12.2f\n", "(f) one SQL query computing the same", f / 1000, 1, f / d }'
  # bucket sizes agree with SQL?
  "${Q[@]}" -o "$tmp/segcheck.sql" -c "select 'select ' || string_agg(format('(select count(*) from (select case %s end as b from dw.customer_wide) x where b = %L) = (select member_count from segment.bucket_state s join segment.scheme m using (scheme_id) where m.name = %L and s.bucket = %L)',
          (select string_agg(format('when %s then %L', replace(r2.rule, 'segment.as_of()', quote_literal('$as_of') || '::date'), r2.name), ' ' order by r2.pos) from dw.bench_seg_rules r2 where r2.unit = r.unit),
          r.name, r.unit, r.name), ' and ') from dw.bench_seg_rules r where r.kind = 'scheme'"
  if [[ $("${Q[@]}" -f "$tmp/segcheck.sql") == t ]]; then
    echo "check: every bucket's members = the CASE expression's count in SQL"
  else
    echo "check: MISMATCH between bucket sizes and SQL"
  fi
fi

# -------------------------------------------------------------- audience
echo
echo "== Audience: $audience"
echo "   SQL: $aud_where"
echo "   intarray: tags @@ '$aud_query_int'::query_int"
t0=$(now)
"${P[@]}" <<SQL
create extension if not exists intarray;
drop schema if exists bench cascade;
create schema bench;
create table bench.tagarr as
select customer_id,
       array_remove(array[$(awk -F'\t' '{ printf "%scase when %s then %d end", (NR > 1 ? ",\n   " : ""), $3, $1 }' "$tmp/rules.tsv")
       ], null)::int[] as tags
  from dw.customer_wide;
SQL
t1=$(now)
"${P[@]}" -c 'create index on bench.tagarr using gin (tags gin__int_ops)' -c 'vacuum analyze bench.tagarr'
t2=$(now)
echo "intarray table (customer_id, tags int[]) built by SQL in $(secs "$t0" "$t1") s, GIN index (gin__int_ops) + analyze in $(secs "$t1" "$t2") s"

counts=()
[[ $seg == none ]] || counts+=("segment.count=$("${Q[@]}" -c "select segment.count('customer', '$audience')")")
counts+=("sql=$("${Q[@]}" -c "select count(*) from dw.customer_wide where $aud_where")")
counts+=("intarray=$("${Q[@]}" -c "select count(*) from bench.tagarr where tags @@ '$aud_query_int'::query_int")")
echo "members: ${counts[*]}"
vals=$(printf '%s\n' "${counts[@]}" | cut -d= -f2 | sort -u | wc -l)
(( vals == 1 )) && echo "check: all methods agree" || echo "check: METHODS DISAGREE"
plan=$("${Q[@]}" -c "explain (costs off) select count(*) from bench.tagarr where tags @@ '$aud_query_int'::query_int" | grep -Eo 'Bitmap Heap Scan|Index Scan|Seq Scan|Parallel Seq Scan' | head -1 || true)

{
  echo '\timing on'
  echo '\o /dev/null'
  echo '\echo @@ warmup 0'
  [[ $seg == none ]] || echo "select segment.count('customer', '$audience');"
  echo "select count(*) from dw.customer_wide where $aud_where;"
  echo "select count(*) from bench.tagarr where tags @@ '$aud_query_int'::query_int;"
  for ((r = 1; r <= areps; r++)); do
    [[ $seg == none ]] || { echo "\\echo @@ e $r"; echo "select segment.count('customer', '$audience');"; }
    echo "\\echo @@ f $r"; echo "select count(*) from dw.customer_wide where $aud_where;"
    echo "\\echo @@ g $r"; echo "select count(*) from bench.tagarr where tags @@ '$aud_query_int'::query_int;"
    echo '\echo @@ skip 0'; echo 'set enable_seqscan = off;'
    echo "\\echo @@ h $r"; echo "select count(*) from bench.tagarr where tags @@ '$aud_query_int'::query_int;"
    echo '\echo @@ skip 0'; echo 'reset enable_seqscan;'
  done
} > "$tmp/audience.sql"
"${P[@]}" -f "$tmp/audience.sql" > "$tmp/audience.out"
best "$tmp/audience.out" > "$tmp/best_aud.txt"
ams() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/best_aud.txt"; }
e_ms=$(ams e); f_ms=$(ams f)
aline() {
  local v; v=$(ams "$2")
  if [[ -z $v ]]; then printf '%-58s %10s\n' "$1" "n/a"; return; fi
  awk -v l="$1" -v v="$v" -v e="$e_ms" -v f="$f_ms" \
    'BEGIN { printf "%-58s %10.3f %14s %12.4f\n", l, v, (e == "" ? "n/a" : sprintf("%.2f", v / e)), v / f }'
}
printf '%-58s %10s %14s %12s\n' "method" "ms" "x segment.count" "x SQL scan"
printf '%-58s %10s %14s %12s\n' "------" "--" "-------" "----------"
if [[ $seg == none ]]; then printf '%-58s %10s\n' "segment.count" "n/a (segment not installed)"; else aline "segment.count('customer', audience)" e; fi
aline "SQL scan of dw.customer_wide with the equivalent WHERE" f
aline "intarray GIN, planner's choice (${plan:-?})" g
aline "intarray GIN, enable_seqscan = off" h

# -------------------------------------------------------------- audiences against pg_roaringbitmap
# 2-, 4- and 8-tag audiences, counts and member lists, warm and cold, against
# pg_roaringbitmap's bitmaps built by one SQL pass (test/bench_audience.sh;
# the peer lines say n/a when pg_roaringbitmap is not installed)
if [[ $seg == ext && $ntags -ge 18 ]]; then
  BENCH_AS_OF=$as_of TAGS=$ntags bash "$here/bench_audience.sh" || echo "bench: the audience part failed"
fi

# -------------------------------------------------------------- opportunity generation
# generate() over every customer against INSERT ... WHERE NOT EXISTS (test/bench_generate.sh)
if [[ $seg == ext ]] && "${Q[@]}" -c "select count(*) from pg_proc where proname = 'generate' and pronamespace = 'segment'::regnamespace" | grep -qx 1; then
  BENCH_AS_OF=$as_of "$here/bench_generate.sh"
fi

# -------------------------------------------------------------- journeys
# advance_journeys for every customer's day-1 touch against a plain
# INSERT ... SELECT of the same touches (test/bench_journeys.sh)
if [[ $seg == ext ]] && "${Q[@]}" -c "select count(*) from pg_proc where proname = 'advance_journeys' and pronamespace = 'segment'::regnamespace" | grep -qx 1; then
  BENCH_AS_OF=$as_of bash "$here/bench_journeys.sh" || echo "bench: the journeys part failed"
fi

# -------------------------------------------------------------- event rules
# Events per second through an event rule (docs/events.md): EVENTS rows
# (default 100,000; half of them match the condition, customers drawn at
# random) loaded with COPY into a table (i) without a rule, (j) with the rule
# attached, every customer new (one generation call makes the leads), (k) with
# the rule attached, every customer in cool-down (the same file again); and
# OLTP: EVENT_TXNS (default 500) one-row INSERTs, each its own transaction,
# (l) without and (m) with the rule. One run each (the opportunities made
# change what the next run does); times are wall-clock around psql.
has_events=$([[ $seg == ext ]] && "${Q[@]}" -c "select count(*) from pg_proc where proname = 'attach_event_rule' and pronamespace = 'segment'::regnamespace" || echo 0)
if [[ $has_events == 1 ]]; then
  nev=${EVENTS:-100000}
  ntx=${EVENT_TXNS:-500}
  "${P[@]}" >/dev/null <<SQL
do \$\$ begin
  if exists (select from segment.event_rule e join segment.opportunity_rule r using (rule_id) where r.name = 'bench_event') then
    perform segment.detach_event_rule('bench_event', 'dw.bench_events');
  end if;
  if exists (select from segment.opportunity_rule where name = 'bench_event') then
    perform segment.drop_opportunity_rule('bench_event', true);
  end if;
end \$\$;
drop table if exists dw.bench_events;
create table dw.bench_events (event_id bigserial primary key, customer_id int8 not null,
                              kind text not null, amount numeric, at timestamptz not null default now());
select segment.create_opportunity_rule('customer', 'bench_event', '$(name "${aud[0]}") or not $(name "${aud[0]}")',
                                       'mining', 'loan', assignment => 'pool', cooldown_days => 30);
select setseed($seed);
\\copy (select (1 + floor(random() * $rows))::int8, case when random() < 0.5 then 'loan_failed' else 'login' end, round((random() * 100000)::numeric, 2) from generate_series(1, $nev)) to '$tmp/events.csv' with (format csv)
SQL
  copy_events() { local t0; t0=$(now); "${P[@]}" -c "\\copy dw.bench_events (customer_id, kind, amount) from '$tmp/events.csv' with (format csv)"; secs3 "$t0" "$(now)"; }
  secs3() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
  oltp() {  # n transactions, one row each, customers from the file's first lines
    head -n "$ntx" "$tmp/events.csv" | awk -F, '{ printf "insert into dw.bench_events (customer_id, kind, amount) values (%s, '\''loan_failed'\'', %s);\n", $1, $3 }' > "$tmp/oltp.sql"
    local t0; t0=$(now); "${P[@]}" -f "$tmp/oltp.sql" >/dev/null; secs3 "$t0" "$(now)"
  }
  i_s=$(copy_events)
  l_s=$(oltp)
  "${P[@]}" -c "truncate dw.bench_events" -c "select segment.attach_event_rule('bench_event', 'dw.bench_events', 'customer_id', 'kind = ''loan_failed'' and amount > 0')" >/dev/null
  j_s=$(copy_events)
  made=$("${Q[@]}" -c "select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id) where r.name = 'bench_event'")
  k_s=$(copy_events)
  made2=$("${Q[@]}" -c "select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id) where r.name = 'bench_event'")
  # OLTP with the rule: fresh customers, so every insert makes a lead
  "${Q[@]}" -c "delete from segment.opportunity o using segment.opportunity_rule r where r.rule_id = o.rule_id and r.name = 'bench_event'" >/dev/null
  m_s=$(oltp)
  made3=$("${Q[@]}" -c "select count(*) from segment.opportunity o join segment.opportunity_rule r using (rule_id) where r.name = 'bench_event'")
  echo
  echo "== Event rule: COPY of $nev events (half match the condition), $ntx one-row INSERT transactions"
  printf '%-58s %10s %14s %12s\n' "step" "seconds" "events/s" "x no rule"
  printf '%-58s %10s %14s %12s\n' "----" "-------" "--------" "---------"
  awk -v n="$nev" -v t="$ntx" -v i="$i_s" -v j="$j_s" -v k="$k_s" -v l="$l_s" -v m="$m_s" -v made="$made" 'BEGIN {
    printf "%-58s %10.3f %14.0f %12.2f\n", "(i) COPY, no event rule", i, n / i, 1
    printf "%-58s %10.3f %14.0f %12.2f\n", "(j) COPY, event rule, " made " leads made", j, n / j, j / i
    printf "%-58s %10.3f %14.0f %12.2f\n", "(k) COPY, event rule, every customer in cool-down", k, n / k, k / i
    printf "%-58s %10.3f %14.0f %12.2f\n", "(l) " t " one-row INSERTs, no event rule", l, t / l, 1
    printf "%-58s %10.3f %14.0f %12.2f\n", "(m) " t " one-row INSERTs, event rule, a lead each", m, t / m, m / l }'
  echo "check: leads after (k) = after (j): $([[ $made2 == "$made" ]] && echo yes || echo "NO ($made2 vs $made)"); leads made by (m): $made3"
  # (e1)/(e2): pgbench, 2 clients, one event per transaction, rule off / on (issue 15)
  bash "$here/bench_events.sh" || echo "bench: the event OLTP part failed"
fi

# -------------------------------------------------------------- memory
# A fresh backend runs the step once; its VmHWM (peak resident set) includes
# the shared buffers it touched (RssShmem), so private peak ~ VmHWM - RssShmem.
echo
echo "== Peak backend memory (fresh backend per step, /proc/<pid>/status)"
memrun() {  # key sql
  "${P[@]}" > /dev/null <<SQL
select pg_backend_pid() as pid \\gset
\\setenv BPID :pid
\\! cat /proc/\$BPID/status > "\$BENCH_TMP/$1.before" 2>/dev/null || true
\\o /dev/null
$2
\\o
\\! cat /proc/\$BPID/status > "\$BENCH_TMP/$1.after" 2>/dev/null || true
SQL
}
kb() { awk -v k="$2:" '$1 == k { print $2 }' "$tmp/$1" 2>/dev/null; }
mline() {
  local hwm0 hwm shm
  hwm0=$(kb "$2.before" VmHWM); hwm=$(kb "$2.after" VmHWM); shm=$(kb "$2.after" RssShmem)
  if [[ -z $hwm ]]; then printf '%-44s %s\n' "$1" "n/a (no /proc for the server's backend here)"; return; fi
  awk -v l="$1" -v h0="$hwm0" -v h="$hwm" -v s="$shm" \
    'BEGIN { printf "%-44s %12.1f %12.1f %12.1f %14.1f\n", l, h0 / 1024, h / 1024, s / 1024, (h - s) / 1024 }'
}
[[ $seg == none ]] || memrun refresh "$refresh_sql"
memrun onepass "$(cat "$tmp/onepass.sql")"
printf '%-44s %12s %12s %12s %14s\n' "step" "VmHWM start" "VmHWM end" "RssShmem" "private peak"
printf '%-44s %12s %12s %12s %14s\n' "" "MB" "MB" "MB" "~MB"
[[ $seg == none ]] || mline "(d) segment.refresh" refresh
mline "(b) one-pass SQL (leader only)" onepass
if [[ $seg == ext ]]; then
  sets=$("${Q[@]}" -c "select pg_size_pretty(sum(pg_column_size(members))) from segment.tag_state" 2>/dev/null || echo "n/a")
  echo "member sets stored (sum of pg_column_size over segment.tag_state): $sets"
fi
# -------------------------------------------------------------- live maintenance
# (l1) 100,000-row UPDATE with live on / off, (l2) reads with an overlay,
# (l3) pgbench with 8 clients: see test/bench_live.sh
if [[ $seg == ext ]]; then
  BENCH_AS_OF=$as_of bash "$here/bench_live.sh" || echo "bench: the live maintenance part failed"
fi
# -------------------------------------------------------------- snapshot subject
# (s1)-(s4): the same tags over a daily-partitioned snapshot of the same
# customers: see test/bench_snapshot.sh
if [[ $seg == ext ]]; then
  BENCH_AS_OF=$as_of TAGS=$ntags BENCH_REPS=$reps bash "$here/bench_snapshot.sh" || echo "bench: the snapshot subject part failed"
fi
# -------------------------------------------------------------- governance
# (g1-g4) row-level security: a manager's and a branch head's listing, RLS
# on against off (test/bench_governance.sh, its own database)
if [[ $seg == ext ]] && "${Q[@]}" -c "select count(*) from pg_proc where proname = 'install_roles' and pronamespace = 'segment'::regnamespace" | grep -qx 1; then
  bash "$here/bench_governance.sh" || echo "bench: the governance part failed"
fi
# -------------------------------------------------------------- Citus
# the same workload on a local 3-node Citus cluster against one plain node
# (test/bench_citus.sh; skipped when citus is not installed or BENCH_CITUS=0)
if [[ $seg == ext && ${BENCH_CITUS:-1} != 0 ]]; then
  echo
  ROWS=$rows TAGS=$ntags BENCH_AS_OF=$as_of BENCH_SEED=$seed bash "$here/bench_citus.sh" || echo "bench: the Citus part failed"
fi
echo
echo "bench done: ROWS=$rows TAGS=$ntags as_of=$as_of generation=${gen_s}s"
