#!/bin/bash
# audience-cache.sh: the backend-local cache of member sets (issue 15,
# src/memberset_cache.c) never answers with members a refresh has replaced.
# Session A stays connected and reads audiences (its cache warm: the second
# read of each is a hit, checked with segment_internal._audience_cache_stats());
# session B changes the table and refreshes:
#   * B's refresh committed: A's next count and members are the new ones;
#   * B's refresh still open: A reads the old ones (and after B's ROLLBACK
#     too), also through the cache;
#   * in A's own transaction: a refresh, then A's count is the new one; after
#     A's ROLLBACK the old one again;
#   * live maintenance in B (an overlay row): A sees it at once;
#   * B drops and recreates a tag under the same name: A reads the new tag.
# Every expected value is plain SQL's on the same rows at that moment.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_audcache_$$
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

export PGOPTIONS="-c client_min_messages=warning"
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }
coproc A { stdbuf -oL -eL psql -X -q -At -v ON_ERROR_STOP=0 -d "$db" 2>&1; }  # line-buffered: answers come back at once
# Session B, for a transaction held open while A reads: a second psql fed
# through two FIFOs (bash keeps one coproc at a time). Each statement waits
# for its answer, so the sessions are ordered by their replies, not by sleep.
tmp=$(mktemp -d)
mkfifo "$tmp/b_in" "$tmp/b_out"
stdbuf -oL -eL psql -X -q -At -v ON_ERROR_STOP=0 -d "$db" <"$tmp/b_in" >"$tmp/b_out" 2>&1 &
B_PID=$!
exec 7>"$tmp/b_in" 8<"$tmp/b_out"
trap 'kill "$A_PID" "$B_PID" 2>/dev/null; wait 2>/dev/null; dropdb --if-exists "$db" >/dev/null 2>&1; rm -rf "$tmp"' EXIT

# a(sql): run sql in session A, print its output on one line
a() {
  printf '%s;\n\\echo @@end\n' "$1" >&"${A[1]}"
  local line out=""
  while IFS= read -r line <&"${A[0]}"; do
    [[ $line == @@end ]] && break
    out+="${out:+ }$line"
  done
  printf '%s\n' "$out"
}
# b(sql): the same in session B
b() {
  printf '%s;\n\\echo @@end\n' "$1" >&7
  local line out=""
  while IFS= read -r line <&8; do
    [[ $line == @@end ]] && break
    out+="${out:+ }$line"
  done
  printf '%s\n' "$out"
}

q >/dev/null <<'SQL'
create extension segment;
create table cc (id int8 primary key, v int, w int);
insert into cc select g, g % 10, g % 7 from generate_series(1, 50000) g;
select segment.register_subject('cc', 'cc', 'id');
select segment.create_tag('cc', 'cc_low', 'v < 3');
select segment.create_tag('cc', 'cc_odd', 'w % 2 = 1');
select count(*) from segment.refresh('cc');
SQL

aud="cc_low and not cc_odd"
sqlc="select count(*) from cc where (v < 3) is true and (w % 2 = 1) is not true"
sqlm="select coalesce(sum(id), 0) from cc where (v < 3) is true and (w % 2 = 1) is not true"
segc="select segment.count('cc', '$aud')"
segm="select coalesce(sum(m), 0) from segment.members('cc', '$aud') m"
stats="select hits || ' ' || misses from segment_internal._audience_cache_stats()"

check() {  # label: A's count and members against plain SQL now (in B)
  local want wantm got gotm
  want=$(q -c "$sqlc"); wantm=$(q -c "$sqlm")
  got=$(a "$segc"); gotm=$(a "$segm")
  [[ $got == "$want" && $gotm == "$wantm" ]]; ok $? "$1: count $got (SQL $want), sum of members $gotm (SQL $wantm)"
}

check "first read in A"
s0=$(a "$stats")
got=$(a "$segc")
s1=$(a "$stats")
h0=${s0%% *}; h1=${s1%% *}; m0=${s0##* }; m1=${s1##* }
[[ -n $h0 && -n $h1 ]] && (( h1 > h0 && m1 == m0 )); ok $? "the second read is answered from A's cache (hits $h0 -> $h1, misses $m0 -> $m1)"

# B refreshes and commits
q -c "update cc set v = 0 where id % 5 = 0" -c "select count(*) from segment.refresh('cc')" >/dev/null
check "after B's committed refresh"
s2=$(a "$stats")
[[ -n $s2 ]] && (( ${s2##* } > m1 )); ok $? "A reloaded the replaced sets (misses $m1 -> ${s2##* })"

# B's refresh open, then rolled back
old=$(a "$segc")
b "begin" >/dev/null
b "update cc set v = 9 where id % 3 = 0" >/dev/null
b "select count(*) from segment.refresh('cc')" >/dev/null
got=$(a "$segc")
[[ -n $old && $got == "$old" ]]; ok $? "B's refresh not committed yet: A still reads $got (was $old)"
b "rollback" >/dev/null
check "after B's ROLLBACK"
got=$(a "$segc")
[[ -n $old && $got == "$old" ]]; ok $? "after B's ROLLBACK A reads the old count again ($got)"

# in A's own transaction
a "begin;" >/dev/null
a "update cc set v = 1 where id % 4 = 0;" >/dev/null
a "select count(*) from segment.refresh('cc');" >/dev/null
inx=$(a "$segc")
inx_sql=$(a "$sqlc")
[[ -n $inx && $inx == "$inx_sql" && $inx != "$old" ]]; ok $? "A's own refresh in its transaction: A reads $inx (SQL $inx_sql, before $old)"
a "savepoint s;" >/dev/null
a "update cc set v = 2 where id % 6 = 0;" >/dev/null
a "select count(*) from segment.refresh('cc');" >/dev/null
sp=$(a "$segc"); sp_sql=$(a "$sqlc")
a "rollback to savepoint s;" >/dev/null
sp2=$(a "$segc")
[[ -n $sp && $sp == "$sp_sql" && $sp != "$inx" && $sp2 == "$inx" ]]; ok $? "a refresh in a savepoint ($sp, SQL $sp_sql), rolled back to the savepoint: $sp2 again"
a "rollback;" >/dev/null
got=$(a "$segc")
[[ -n $old && $got == "$old" ]]; ok $? "after A's ROLLBACK A reads the committed count again ($got, was $old)"
check "after A's ROLLBACK"

# live maintenance: an overlay row changes the audience without a refresh
q -c "select segment.enable_live('cc')" >/dev/null
a "$segc" >/dev/null
q -c "update cc set v = 0, w = 0 where id between 1 and 100" >/dev/null
check "after a live update in B (overlay rows, no refresh)"
q -c "select count(*) from segment.refresh('cc')" -c "select segment.disable_live('cc')" >/dev/null
check "after the refresh that folds the overlay in"

# a tag dropped and recreated under the same name (a new tag id)
q -c "select segment.drop_tag('cc_odd')" -c "select segment.create_tag('cc', 'cc_odd', 'w % 2 = 0')" \
  -c "select count(*) from segment.refresh('cc')" >/dev/null
sqlc="select count(*) from cc where (v < 3) is true and (w % 2 = 0) is not true"
sqlm="select coalesce(sum(id), 0) from cc where (v < 3) is true and (w % 2 = 0) is not true"
check "after cc_odd was dropped and recreated with another rule"

# the cache off: the same answers, nothing new kept
a "set segment.audience_cache_size = 0;" >/dev/null
e0=$(a "select entries from segment_internal._audience_cache_stats()")
check "with segment.audience_cache_size = 0"
q -c "update cc set v = 5 where id % 9 = 0" -c "select count(*) from segment.refresh('cc')" >/dev/null
check "with the cache off, after a refresh"
e1=$(a "select entries from segment_internal._audience_cache_stats()")
[[ -n $e0 && -n $e1 ]] && (( e1 <= e0 )); ok $? "with the cache off no entry is added ($e0 -> $e1)"

echo "1..$n"
exit $fail
