#!/bin/bash
# part-order.sh: an install part calls only functions of itself and of the
# parts before it (docs/architecture.md#sql-install-parts), without
# exception: what reaches across features (dropping a name or a subject) is
# in a late part, what early parts need of later features (governance's
# checks, the live overlay, the pg_cron check) in an early one. And each
# function is created by one part, with its final body (test 3).
# tools/part-order.py is the checker. Needs no cluster.
set -uo pipefail
cd "$(dirname "$0")/../.."

status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. the checker sees a call to a later part and a function created again
# (and only those)
mkdir -p "$tmp/sql/install"
printf 'CREATE FUNCTION segment.a() RETURNS int LANGUAGE sql AS $$ SELECT segment_internal._b() $$;\n' > "$tmp/sql/install/10-a.sql"
printf 'CREATE FUNCTION segment_internal._b() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n-- segment.a() in a comment\n' > "$tmp/sql/install/20-b.sql"
printf 'CREATE FUNCTION segment.c(x int) RETURNS int LANGUAGE sql AS $$ SELECT x $$;\nCREATE FUNCTION segment.c(x text) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\nCREATE OR REPLACE FUNCTION segment.d() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n' > "$tmp/sql/install/30-c.sql"
printf 'CREATE OR REPLACE FUNCTION segment.c(x  int) RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;\n' > "$tmp/sql/install/40-c.sql"
out=$(cd "$tmp" && python3 "$OLDPWD/tools/part-order.py")
expected='10-a.sql calls segment_internal._b of 20-b.sql
40-c.sql creates segment.c again (first in 30-c.sql)'
if [[ $out == "$expected" ]]; then
  echo "ok 1 - a call to a later part and a function created again are found"
else
  echo "not ok 1 - the checker finds:"; sed 's/^/    /' <<<"$out"; status=1
fi

# 2. the tree: no part calls a later part
out=$(python3 tools/part-order.py)
calls=$(grep -v ' creates ' <<<"$out")
if [[ $calls == 'no part calls a later part' ]]; then
  echo "ok 2 - no install part calls a later part"
else
  echo "not ok 2 - install parts call later parts:"
  sed 's/^/    /' <<<"$calls"
  status=1
fi

# 3. the tree: each function is created by one part, without exception
# (_is_triggered, which reads a table of journeys, and its caller generate()
# are in part 89, after every feature whose rules it leaves alone)
again=$(grep ' creates \|^no part creates' <<<"$out")
if [[ $again == 'no part creates a function again' ]]; then
  echo "ok 3 - each function is created by one part"
else
  echo "not ok 3 - functions created again:"
  sed 's/^/    /' <<<"$again"
  status=1
fi
echo "1..3"
exit $status
