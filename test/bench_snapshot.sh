#!/bin/bash
# bench_snapshot.sh: the snapshot-subject part of `make bench` (test/bench.sh
# calls it last; it also runs on its own, generating the bank when missing).
# On the same customers, in one run:
#
#   dw.customer_daily: PARTITION BY RANGE (data_dt), one partition per day,
#   PRIMARY KEY (data_dt, customer_id), two daily snapshots (as_of - 1 and
#   as_of) of every customer of dw.customer_wide (the second with aum moved a
#   little, so that the day-to-day transitions are not empty).
#
#   (s1) segment.refresh('customer', as_of)       the plain table, N tags
#   (s2) segment.refresh('customer_daily', as_of) the snapshot subject, the same N tags
#   (s3) one SQL query, one count(*) filter per tag, over the day's partition
#        (where data_dt = as_of: partition pruning reads that partition only)
#   (s4) bare count(*) of the day's partition (the floor)
#   and for each refresh the backend's peak memory (VmHWM from
#   /proc/<backend pid>/status, fresh backend per step), the member-set bytes
#   (sum of pg_column_size of the sets), and a four-tag audience read from the
#   previous snapshot with count(..., as_of => as_of - 1).
#
# Tag names are global, so the N bench tags are moved from subject customer to
# customer_daily between (s1) and (s2) (dw.bench_define_tags) and moved back
# at the end.
# Environment: ROWS (1000000, used when the bank must be generated), TAGS (60),
#   BENCH_REPS (3), BENCH_AS_OF (current_date), PG* variables.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rows=${ROWS:-1000000}
ntags=${TAGS:-60}
reps=${BENCH_REPS:-3}
P=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)
Q=(psql -X -q -At -v ON_ERROR_STOP=1)
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
as_of=${BENCH_AS_OF:-$("${Q[@]}" -c 'select current_date')}
prev=$("${Q[@]}" -c "select date '$as_of' - 1")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/segment-bench-snap.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

"${P[@]}" -c 'create extension if not exists segment'
if [[ $("${Q[@]}" -c "select to_regclass('dw.customer_wide') is not null") != t ]]; then
  "${P[@]}" -f "$here/data/bank.sql"
  "${P[@]}" -f "$here/data/bench_tags.sql"
  "${Q[@]}" -c "select dw.generate_bank($rows, '$as_of', 0.42)" >/dev/null
  "${P[@]}" -c 'vacuum analyze dw.customer_wide'
fi
"${P[@]}" -f "$here/data/bench_tags.sql" >/dev/null
rows=$("${Q[@]}" -c 'select count(*) from dw.customer_wide')
"${P[@]}" >/dev/null <<SQL
do \$\$ begin
  if exists (select from segment.subject where name = 'customer_daily') then
    perform segment.unregister_subject('customer_daily');
  end if;
  if not exists (select from segment.subject where name = 'customer') then
    perform segment.register_subject('customer', 'dw.customer_wide', 'customer_id');
  end if;
end \$\$;
select dw.bench_define_tags($ntags, 'customer');
SQL

echo
echo "== Snapshot subject: $rows customers x 2 daily partitions, $ntags tags, as_of $as_of (best of $reps)"
t0=$(now)
cols=$("${Q[@]}" -c "select string_agg(quote_ident(attname), ', ' order by attnum) from pg_attribute
                     where attrelid = 'dw.customer_wide'::regclass and attnum > 0 and not attisdropped")
cols2=$("${Q[@]}" -c "select string_agg(case when attname = 'aum' then 'aum * (1 + ((customer_id % 7) - 3) / 100.0)' else quote_ident(attname) end, ', ' order by attnum)
                      from pg_attribute where attrelid = 'dw.customer_wide'::regclass and attnum > 0 and not attisdropped")
"${P[@]}" >/dev/null <<SQL
drop table if exists dw.customer_daily;
create table dw.customer_daily (data_dt date not null, like dw.customer_wide) partition by range (data_dt);
alter table dw.customer_daily drop constraint if exists customer_daily_pkey;
create table dw.customer_daily_p1 partition of dw.customer_daily for values from ('$prev') to ('$as_of');
create table dw.customer_daily_p2 partition of dw.customer_daily
    for values from ('$as_of') to (date '$as_of' + 1);
create table dw.customer_daily_p3 partition of dw.customer_daily
    for values from (date '$as_of' + 1) to (date '$as_of' + 2);   -- pre-created, empty
insert into dw.customer_daily (data_dt, $cols) select '$prev', $cols from dw.customer_wide;
insert into dw.customer_daily (data_dt, $cols) select '$as_of', $cols2 from dw.customer_wide;
alter table dw.customer_daily add primary key (data_dt, customer_id);
vacuum analyze dw.customer_daily;
select segment.register_subject('customer_daily', 'dw.customer_daily', 'customer_id',
                                snapshot_column => 'data_dt');
SQL
echo "built dw.customer_daily ($("${Q[@]}" -c "select pg_size_pretty(pg_total_relation_size('dw.customer_daily_p2'))") per day with its index) in $(secs "$t0" "$(now)") s"

lit="'$as_of'::date"
"${Q[@]}" -o "$tmp/onepass.sql" -c \
  "select 'select ' || string_agg(format('count(*) filter (where %s) as %I', replace(rule, 'segment.as_of()', \$q\$$lit\$q\$), tag), E',\n       ' order by tag_no)
          || E'\n  from dw.customer_daily where data_dt = ' || \$q\$$lit;\$q\$ from dw.bench_rules($ntags)"
"${Q[@]}" -o "$tmp/rules.tsv" -F $'\t' -c \
  "select tag_no, tag, replace(rule, 'segment.as_of()', \$q\$$lit\$q\$) from dw.bench_rules($ntags) order by tag_no"

# best (minimum over rounds) of each step's time, in ms
best() {
  awk '/^@@ /{ step = $2; rep = $3; next }
       /^Time: /{ s[step " " rep] += $2 }
       END { for (k in s) { split(k, p, " "); if (!(p[1] in b) || s[k] < b[p[1]]) b[p[1]] = s[k] }
             for (k in b) printf "%s %.3f\n", k, b[k] }' "$1"
}
memrun() {  # key sql: a fresh backend runs sql once; /proc status before and after
  "${P[@]}" > /dev/null <<SQL
select pg_backend_pid() as pid \\gset
\\setenv BPID :pid
\\! cat /proc/\$BPID/status > "$tmp/$1.before" 2>/dev/null || true
\\o /dev/null
$2
\\o
\\! cat /proc/\$BPID/status > "$tmp/$1.after" 2>/dev/null || true
SQL
}
kb() { awk -v k="$2:" '$1 == k { print $2 }' "$tmp/$1" 2>/dev/null; }

# (s1) and the SQL lines, with the tags on the plain subject
{
  echo '\timing on'; echo '\o /dev/null'
  echo '\echo @@ warmup 0'
  echo "select sum(members) from segment.refresh('customer', '$as_of');"
  cat "$tmp/onepass.sql"
  for ((r = 1; r <= reps; r++)); do
    echo "\\echo @@ s1 $r"; echo "select sum(members) from segment.refresh('customer', '$as_of');"
    echo "\\echo @@ s3 $r"; cat "$tmp/onepass.sql"
    echo "\\echo @@ s4 $r"; echo "select count(*) from dw.customer_daily where data_dt = $lit;"
  done
} > "$tmp/plain.sql"
"${P[@]}" -f "$tmp/plain.sql" > "$tmp/plain.out"
memrun s1 "select sum(members) from segment.refresh('customer', '$as_of');"
sets1=$("${Q[@]}" -c "select coalesce(sum(pg_column_size(s.members)), 0) from segment.tag_state s join segment.tag t using (tag_id)
                      where t.subject_id = (select subject_id from segment.subject where name = 'customer')")

# move the tags to the snapshot subject; refresh the previous day once, then time as_of
"${Q[@]}" -c "select dw.bench_define_tags($ntags, 'customer_daily')" >/dev/null
"${Q[@]}" -c "select count(*) from segment.refresh('customer_daily', '$prev')" >/dev/null
{
  echo '\timing on'; echo '\o /dev/null'
  echo '\echo @@ warmup 0'
  echo "select sum(members) from segment.refresh('customer_daily', '$as_of');"
  for ((r = 1; r <= reps; r++)); do
    echo "\\echo @@ s2 $r"; echo "select sum(members) from segment.refresh('customer_daily', '$as_of');"
  done
} > "$tmp/snap.sql"
"${P[@]}" -f "$tmp/snap.sql" > "$tmp/snap.out"
memrun s2 "select sum(members) from segment.refresh('customer_daily', '$as_of');"
cat "$tmp/plain.out" "$tmp/snap.out" | best /dev/stdin > "$tmp/best.txt"
ms() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/best.txt"; }
s1=$(ms s1); s2=$(ms s2); s3=$(ms s3); s4=$(ms s4)

# what the last refresh read, and whether its counts equal SQL's
read_info=$("${Q[@]}" -c "select snapshot_date || ' from ' || array_to_string(read_relations, ',') || ', ' || rows_scanned || ' rows'
                          from segment.run r join segment.subject s using (subject_id)
                         where s.name = 'customer_daily' order by run_id desc limit 1")
{
  echo 'create temp table sqlcounts as select unnest(array['
  awk -F'\t' '{ printf "%s%s", (NR > 1 ? ", " : ""), "'\''" $2 "'\''" }' "$tmp/rules.tsv"
  echo ']::name[]) as tag, unnest(array['
  awk -F'\t' '{ printf "%scount(*) filter (where %s)", (NR > 1 ? ",\n  " : ""), $3 }' "$tmp/rules.tsv"
  echo "]) as n from dw.customer_daily where data_dt = $lit;"
  echo "select count(*) filter (where s.n is distinct from x.member_count)"
  echo "  from sqlcounts s left join (select t.name, ts.member_count from segment.tag_snapshot ts join segment.tag t using (tag_id)"
  echo "                               where ts.snapshot_date = $lit) x on x.name = s.tag;"
} > "$tmp/check.sql"
mism=$("${Q[@]}" -f "$tmp/check.sql" | tail -1)
sets2=$("${Q[@]}" -c "select coalesce(sum(pg_column_size(members)), 0) from segment.tag_snapshot where snapshot_date = $lit")
sets2all=$("${Q[@]}" -c "select coalesce(sum(pg_column_size(members)), 0) from segment.tag_snapshot")

# an audience on the previous snapshot, and on the current state
aud="t001 and t002 and not t011 or t018"
(( ntags >= 18 )) || aud="t001 and t002 and not t003 or t004"
{
  echo '\timing on'; echo '\o /dev/null'
  echo '\echo @@ warmup 0'; echo "select segment.count('customer_daily', '$aud', '$prev');"
  for ((r = 1; r <= 5; r++)); do
    echo "\\echo @@ a1 $r"; echo "select segment.count('customer_daily', '$aud', '$prev');"
    echo "\\echo @@ a2 $r"; echo "select segment.count('customer_daily', '$aud');"
  done
} > "$tmp/aud.sql"
"${P[@]}" -f "$tmp/aud.sql" > "$tmp/aud.out"
best "$tmp/aud.out" > "$tmp/best_aud.txt"
a1=$(awk '$1 == "a1" { print $2 }' "$tmp/best_aud.txt"); a2=$(awk '$1 == "a2" { print $2 }' "$tmp/best_aud.txt")

printf '%-62s %10s %12s %10s\n' "step" "seconds" "x one-pass" "x bare"
printf '%-62s %10s %12s %10s\n' "----" "-------" "----------" "------"
for k in s4 s3 s1 s2; do
  case $k in
    s1) l="(s1) segment.refresh, plain table dw.customer_wide";;
    s2) l="(s2) segment.refresh, snapshot subject (one daily partition)";;
    s3) l="(s3) one SQL query, count(*) filter per tag, where data_dt =";;
    s4) l="(s4) bare count(*) of the day's partition (the floor)";;
  esac
  awk -v l="$l" -v v="$(ms $k)" -v b="$s3" -v a="$s4" 'BEGIN { printf "%-62s %10.3f %12.2f %10.2f\n", l, v / 1000, v / b, v / a }'
done
awk -v a="$s2" -v b="$s1" 'BEGIN { printf "snapshot subject / plain table refresh: %.2f\n", a / b }'
echo "snapshot refresh read: $read_info"
echo "check: snapshot refresh members = one-pass SQL counts over the partition: $([[ $mism == 0 ]] && echo "all $ntags tags" || echo "MISMATCH ($mism tags)")"
printf '%-44s %12s %12s %12s %14s\n' "peak memory (fresh backend)" "VmHWM start" "VmHWM end" "RssShmem" "private peak"
for k in s1 s2; do
  h0=$(kb $k.before VmHWM); h=$(kb $k.after VmHWM); sh=$(kb $k.after RssShmem)
  l=$([[ $k == s1 ]] && echo "(s1) refresh, plain table" || echo "(s2) refresh, snapshot subject")
  if [[ -z $h ]]; then printf '%-44s %s\n' "$l" "n/a (no /proc for the server's backend)"; continue; fi
  awk -v l="$l" -v h0="$h0" -v h="$h" -v s="$sh" 'BEGIN { printf "%-44s %10.1f MB %9.1f MB %9.1f MB %11.1f MB\n", l, h0 / 1024, h / 1024, s / 1024, (h - s) / 1024 }'
done
awk -v a="$sets1" -v b="$sets2" -v c="$sets2all" 'BEGIN {
  printf "member sets: plain table %.1f MB; snapshot subject %.1f MB per snapshot date (%.1f MB for the 2 retained)\n", a / 1048576, b / 1048576, c / 1048576 }'
awk -v a="$a1" -v b="$a2" -v aud="$aud" 'BEGIN {
  printf "audience \"%s\": count(..., as_of => previous day) %.1f ms, count() current %.1f ms\n", aud, a, b }'

# tags back on the plain subject, for whatever runs next
"${Q[@]}" -c "select dw.bench_define_tags($ntags, 'customer')" >/dev/null
