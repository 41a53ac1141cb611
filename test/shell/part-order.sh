#!/bin/bash
# part-order.sh: an install part calls only functions of itself and of the
# parts before it (docs/architecture.md#sql-install-parts), except the calls
# listed below, which are known and waiting to be removed: dropping a tag or
# a subject reaches every later feature, and a few readers merge live
# maintenance's overlay. A new call to a later part fails this test;
# removing a listed call fails it too, until the list is shortened (so the
# list never claims more than is there). tools/part-order.py is the checker.
# Needs no cluster.
set -uo pipefail
cd "$(dirname "$0")/../.."

known='50-definitions.sql calls segment_internal._check_name_free of 72-segments.sql
50-definitions.sql calls segment_internal._drop_segments_using of 72-segments.sql
50-definitions.sql calls segment_internal._live_drop_triggers of 86-live.sql
50-definitions.sql calls segment_internal._opportunity_rule_definition of 81-opportunity-rules.sql
50-definitions.sql calls segment_internal._scheme_definition of 74-schemes.sql
50-definitions.sql calls segment_internal._scorecard_definition of 75-scorecards.sql
50-definitions.sql calls segment_internal._segment_definition of 72-segments.sql
72-segments.sql calls segment_internal._refuse_if_rules_use of 81-opportunity-rules.sql'

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

# 2. the tree: exactly the known calls
out=$(python3 tools/part-order.py)
if [[ $out == "$known" ]]; then
  echo "ok 2 - no install part calls a later part beyond the $(wc -l <<<"$known") known calls"
else
  echo "not ok 2 - calls to later parts differ from the known list"
  diff <(echo "$known") <(echo "$out") | sed 's/^/    /'
  status=1
fi
echo "1..2"
exit $status
