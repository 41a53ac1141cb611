#!/bin/bash
# roaring-binding.sh: segment's CRoaring calls go to segment's CRoaring
# library, and another extension's CRoaring stays its own (src/roaring_lib.h).
# pg_roaringbitmap carries its own, newer CRoaring under the same function
# names; PostgreSQL loads libraries with RTLD_GLOBAL, and a segment.so linked
# with -lroaring had its calls bound to whichever came first: with the peer
# loaded first in a backend, the second segment.count crashed the server.
#   1. segment.so has no undefined roaring_* symbol (no -lroaring binding);
#   2. (when pg_roaringbitmap is installed) one backend calls the peer first,
#      then segment's count, members and set operators several times, and
#      another does it the other way round: every answer equals plain SQL's
#      and the server is still up.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail
cd "$(dirname "$0")/../.."

n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

# 1. the object file
if [[ -f segment.so ]]; then
  und=$(nm -u segment.so | awk '$2 ~ /^roaring_/ { print $2 }')
  [[ -z $und ]]; ok $? "segment.so binds no roaring_* symbol at load time${und:+ (found: $(echo $und))}"
  ldd segment.so | grep -q libroaring; [[ $? != 0 ]]; ok $? "segment.so does not link libroaring (it opens it RTLD_LOCAL | RTLD_DEEPBIND)"
else
  ok 1 "segment.so is built (run make first)"
fi

# 2. both libraries in one backend
db=segment_roaring_$$
export PGOPTIONS="-c client_min_messages=warning"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
if [[ $(psql -X -q -At -d postgres -c "select count(*) from pg_available_extensions where name = 'roaringbitmap'") != 1 ]]; then
  echo "# pg_roaringbitmap is not installed (../shared/tools/install-roaringbitmap): the two-library checks are skipped"
else
  createdb "$db" || { echo "not ok - createdb"; exit 1; }
  trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
  q >/dev/null <<'SQL'
create extension segment;
create extension roaringbitmap;
create table rc (id int8 primary key, a int, b int);
insert into rc select g, g % 7, g % 11 from generate_series(1, 300000) g;
select segment.register_subject('rc', 'rc', 'id');
select segment.create_tag('rc', 'sev', 'a = 0');
select segment.create_tag('rc', 'ele', 'b = 0');
select count(*) from segment.refresh('rc');
SQL
  # plain SQL's answers
  both=$(q -c "select count(*) from rc where a = 0 and b = 0")
  either=$(q -c "select count(*) from rc where a = 0 or b = 0")
  only=$(q -c "select count(*) from rc where a = 0 and not b = 0")
  peer_both=$(q -c "select count(*) from rc where id % 3 = 0 and id % 5 = 0")
  seg="select segment.count('rc', 'sev and ele'), segment.count('rc', 'sev or ele'), segment.count('rc', 'sev and not ele'),
              (select count(*) from segment.members('rc', 'sev and ele')),
              segment.cardinality(segment.audience('rc', 'sev') operator(segment.&) segment.audience('rc', 'ele'))"
  want_seg="$both|$either|$only|$both|$both"
  peer="select rb_cardinality(rb_and(rb_build(array(select g from generate_series(3, 300000, 3) g)),
                                     rb_build(array(select g from generate_series(5, 300000, 5) g))))"
  # the peer first, then segment, three times (the second segment call crashed)
  out=$(q -c "$peer" -c "$seg" -c "$seg" -c "$peer" -c "$seg" 2>&1 | tr '\n' ' ')
  [[ $out == "$peer_both $want_seg $want_seg $peer_both $want_seg " ]]
  ok $? "pg_roaringbitmap loaded first in a backend, then segment: answers equal plain SQL's (got: $out)"
  # segment first, then the peer (whose calls then ran segment's CRoaring)
  out=$(q -c "$seg" -c "$peer" -c "$seg" -c "$peer" 2>&1 | tr '\n' ' ')
  [[ $out == "$want_seg $peer_both $want_seg $peer_both " ]]
  ok $? "segment loaded first in a backend, then pg_roaringbitmap: answers equal plain SQL's (got: $out)"
  [[ $(q -c 'select 1') == 1 ]]; ok $? "the server is up"
fi
echo "1..$n"
exit $fail
