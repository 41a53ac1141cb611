#!/bin/bash
# include-graph.sh: no dependency cycle between segment's C files
# (tools/include-graph.sh: includes, and calls between the objects of the
# build). The checker is first shown to catch a cycle of each kind in a
# scratch directory, then run on src/. Needs no cluster.
set -uo pipefail
cd "$(dirname "$0")/../.."

tool=tools/include-graph.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# 1. an include cycle: a.c includes b.h, b.c includes a.h
mkdir "$tmp/inc"
printf '#include "b.h"\n' > "$tmp/inc/a.c"; : > "$tmp/inc/a.h"
printf '#include "a.h"\n' > "$tmp/inc/b.c"; : > "$tmp/inc/b.h"
if out=$(bash "$tool" "$tmp/inc") || ! grep -q '^cycle: .*a' <<<"$out"; then
  echo "not ok 1 - an include cycle is reported"; sed 's/^/    /' <<<"$out"; status=1
else
  echo "ok 1 - an include cycle is reported"
fi

# 2. a call cycle through one shared header: a.o calls fb, b.o calls fa
mkdir "$tmp/call"
printf 'void fa(void); void fb(void);\n' > "$tmp/call/ab.h"
printf '#include "ab.h"\nvoid fa(void) { fb(); }\n' > "$tmp/call/a.c"
printf '#include "ab.h"\nvoid fb(void) { fa(); }\n' > "$tmp/call/b.c"
(cd "$tmp/call" && cc -c a.c b.c) || { echo "not ok 2 - cannot compile the scratch files"; exit 1; }
if out=$(bash "$tool" "$tmp/call") || ! grep -q '^cycle: ' <<<"$out"; then
  echo "not ok 2 - a call cycle is reported"; sed 's/^/    /' <<<"$out"; status=1
else
  echo "ok 2 - a call cycle is reported"
fi

# 3. src/: no cycle, and the call graph was checked (the objects are built)
if out=$(bash "$tool" src) && grep -q '^# calls (' <<<"$out"; then
  echo "ok 3 - no cycle between the files of src/"
else
  echo "not ok 3 - src/ has a cycle (or is not built):"; sed 's/^/    /' <<<"$out"; status=1
fi
echo "1..3"
exit $status
