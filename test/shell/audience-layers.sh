#!/bin/bash
# audience-layers.sh: the audience language keeps its three concerns apart
# (src/audience.h): audience_parse.o is pure (no SPI, no catalog or syscache,
# no table access, nothing of name resolution or evaluation), and neither
# audience_names.o nor audience_eval.o runs SQL (the catalog's SQL is
# catalog_names.o's). Checked on the symbols each object uses (nm -u), so the
# tree must be built (`make`). The checker is first shown to catch a
# violation in a scratch object. Needs no cluster.
set -uo pipefail
cd "$(dirname "$0")/../.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
n=0

# forbidden OBJECT REGEX: the undefined symbols of OBJECT that match REGEX
forbidden() { nm -u "$1" | awk '{print $NF}' | grep -E "$2"; }

pure='^(SPI_|SearchSysCache|SysCache|table_open|relation_open|heap_|index_|systable_|GetSysCache|get_rel|get_namespace|LookupFuncName|catalog_|state_read_|memberset_cache_|audience_(resolve|check|evaluate|count|validate|expand))'
no_sql='^SPI_'

check() {  # description, object, regex
  local bad
  n=$((n + 1))
  if [[ ! -e $2 || $2 -ot ${2%.o}.c ]]; then
    echo "not ok $n - $1 ($2 missing or older than its source: run make)"; status=1; return
  fi
  if bad=$(forbidden "$2" "$3"); then
    echo "not ok $n - $1: uses $(tr '\n' ' ' <<<"$bad")"; status=1
  else
    echo "ok $n - $1"
  fi
}

# 1. the checker catches a parser that runs SQL
printf 'int SPI_connect(void);\nint audience_parse_x(void) { return SPI_connect(); }\n' > "$tmp/bad.c"
n=$((n + 1))
if ! (cd "$tmp" && cc -c bad.c 2>/dev/null); then
  echo "not ok $n - cannot compile the scratch object"; status=1
elif bad=$(forbidden "$tmp/bad.o" "$pure") && [[ $bad == SPI_connect ]]; then
  echo "ok $n - a parser calling SPI_connect is caught"
else
  echo "not ok $n - a parser calling SPI_connect is not caught"; status=1
fi

check "audience_parse.o is pure (no SPI, catalog, syscache, resolution or evaluation)" src/audience_parse.o "$pure"
check "audience_names.o runs no SQL of its own" src/audience_names.o "$no_sql"
check "audience_eval.o runs no SQL" src/audience_eval.o "$no_sql"

# the catalog's SQL is there: the check above would be vacuous if it were not
n=$((n + 1))
if nm -u src/catalog_names.o 2>/dev/null | grep -q 'SPI_execute_plan'; then
  echo "ok $n - catalog_names.o runs the lookup (SPI_execute_plan)"
else
  echo "not ok $n - catalog_names.o does not run the lookup"; status=1
fi
echo "1..$n"
exit $status
