#!/bin/bash
# part-order.sh: an install part calls only functions of itself and of the
# parts before it (docs/architecture.md#sql-install-parts), without
# exception: what reaches across features (dropping a name or a subject) is
# in a late part, what early parts need of later features (governance's
# checks, the live overlay, the pg_cron check) in an early one.
# tools/part-order.py is the checker. Needs no cluster.
set -uo pipefail
cd "$(dirname "$0")/../.."

status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. the checker sees a call to a later part (and only that one)
mkdir -p "$tmp/sql/install"
printf 'CREATE FUNCTION segment.a() RETURNS int LANGUAGE sql AS $$ SELECT segment_internal._b() $$;\n' > "$tmp/sql/install/10-a.sql"
printf 'CREATE FUNCTION segment_internal._b() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n-- segment.a() in a comment\n' > "$tmp/sql/install/20-b.sql"
out=$(cd "$tmp" && python3 "$OLDPWD/tools/part-order.py")
if [[ $out == '10-a.sql calls segment_internal._b of 20-b.sql' ]]; then
  echo "ok 1 - a call to a later part is found"
else
  echo "not ok 1 - the checker finds: ${out:-nothing}"; status=1
fi

# 2. the tree: no part calls a later part
out=$(python3 tools/part-order.py)
if [[ $? == 0 && $out == 'no part calls a later part' ]]; then
  echo "ok 2 - no install part calls a later part"
else
  echo "not ok 2 - install parts call later parts:"
  sed 's/^/    /' <<<"$out"
  status=1
fi

echo "1..2"
exit $status
