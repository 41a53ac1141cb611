#!/bin/bash
# docs-examples.sh: run every ```sql block of docs/*.md, in order, one fresh
# database per document, stopping at the first error. (```psql blocks are
# transcripts taken from the pg_regress tests, which check their output.) A document creates the
# extension itself (CREATE EXTENSION IF NOT EXISTS segment) in its first block. Blocks that show an
# error on purpose are written as ```text. Needs PGHOST/PGPORT (a cluster
# where segment is installed), as run by test/run-tests.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."

status=0
n=0
for doc in docs/*.md; do
  sql=$(awk '/^```sql[[:space:]]*$/ {on=1; next} /^```/ {on=0} on' "$doc")
  [[ -z $sql ]] && continue
  n=$((n + 1))
  db="docs_$(basename "$doc" .md | tr -c 'a-z0-9_\n' '_')"
  PGOPTIONS="-c client_min_messages=warning" dropdb --if-exists "$db" >/dev/null 2>&1
  createdb "$db" || { echo "not ok $n - $doc (createdb failed)"; status=1; continue; }
  if out=$(printf '%s\n' "$sql" |
           PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" 2>&1 >/dev/null); then
    echo "ok $n - examples in $doc run"
  else
    echo "not ok $n - examples in $doc fail:"
    sed 's/^/    /' <<<"$out"
    status=1
  fi
  dropdb "$db" >/dev/null 2>&1
done
echo "1..$n"
exit $status
