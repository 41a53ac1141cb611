#!/bin/bash
# run-tests.sh: run every segment test against one throwaway cluster:
#   1. pg_regress (`make installcheck`): test/sql/NNN_*.sql compared with
#      test/expected/, then the isolationtester specs test/specs/*.spec
#      (test/expected/NAME.out); regression.diffs is printed when one fails;
#   2. pgTAP (`pg_prove`): test/pgtap/*.sql in a fresh database (default
#      segment_tap) where pgtap and segment are created;
#   3. shell tests: test/shell/*.sh (dump/restore, documentation examples,
#      pg_cron, crashes: what needs more than SQL sessions).
# Ends with one line "tests: N passed, N failed" and exits non-zero when any
# test failed, or when no test was found at all.
#
# `make test` builds first and then calls this. Run directly, it expects a
# built tree and installs it (see test/with-cluster.sh) before starting the
# cluster. Environment: SEGMENT_TAP_DB (pgTAP database name), plus those of
# with-cluster.sh.
set -uo pipefail

cd "$(dirname "$0")/.."
if [[ -z ${SEGMENT_IN_CLUSTER:-} ]]; then
  exec test/with-cluster.sh test/run-tests.sh "$@"
fi

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
tapdb=${SEGMENT_TAP_DB:-segment_tap}
passed=0
failed=0
ran=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== server: $(psql -XAtqc 'select version()') on port $PGPORT"

# --- 1. pg_regress and isolation specs ------------------------------------------
# `make installcheck` runs pg_regress (test/sql/NNN_*.sql) and then
# pg_isolation_regress (test/specs/*.spec); each suite is run on its own here, so that a failure in the
# first does not skip the second and each summary line is counted once.
shopt -s nullglob
count_suite() {   # $1: suite name, $2: its output directory (diffs)
  local line n f t
  if line=$(grep -Eo 'All [0-9]+ tests passed' "$out"); then
    n=$(grep -Eo '[0-9]+' <<<"$line")
    passed=$((passed + n)); ran=$((ran + n))
  elif line=$(grep -Eo '[0-9]+ of [0-9]+ tests failed' "$out"); then
    read -r f _ t _ <<<"$line"
    failed=$((failed + f)); passed=$((passed + t - f)); ran=$((ran + t))
  else
    failed=$((failed + 1)); ran=$((ran + 1))   # $1 did not get to run
  fi
  if (( rc != 0 )) && [[ -f $2/regression.diffs ]]; then
    echo "== $1: regression.diffs"
    cat "$2/regression.diffs"
  fi
}
regress=(test/sql/[0-9]*.sql)
if (( ${#regress[@]} > 0 )); then
  echo "== pg_regress: ${#regress[@]} files in test/sql/"
  rm -f regression.diffs regression.out
  make -s installcheck PG_CONFIG="$PG_CONFIG" ISOLATION= 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  count_suite pg_regress .
else
  echo "== pg_regress: no test/sql/NNN_*.sql files"
fi
specs=(test/specs/*.spec)
if (( ${#specs[@]} > 0 )); then
  echo "== isolation: ${#specs[@]} files in test/specs/"
  rm -rf output_iso
  make -s installcheck PG_CONFIG="$PG_CONFIG" REGRESS= 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  count_suite isolation output_iso
fi

# --- 2. pgTAP ----------------------------------------------------------------
tap=(test/pgtap/*.sql)
if (( ${#tap[@]} > 0 )); then
  echo "== pgTAP: ${#tap[@]} files in test/pgtap/, database $tapdb"
  if ! { PGOPTIONS="-c client_min_messages=warning" dropdb --if-exists "$tapdb" && createdb "$tapdb" &&
         psql -XqAt -v ON_ERROR_STOP=1 -d "$tapdb" \
              -c 'create extension pgtap' -c 'create extension segment'; }; then
    echo "pgTAP: could not create database $tapdb with pgtap and segment"
    failed=$((failed + 1)); ran=$((ran + 1))
  else
    pg_prove -d "$tapdb" "${tap[@]}" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    total=$(grep -Eo '^Files=[0-9]+, Tests=[0-9]+' "$out" | grep -Eo '[0-9]+$' || echo 0)
    # Summary lines "file (Wstat: W ... Tests: T Failed: F)": F failed
    # assertions; a file that died or had a bad plan (F = 0 there) counts as
    # one more failure.
    fails=0 dead=0
    while read -r f; do
      if (( f == 0 )); then dead=$((dead + 1)); else fails=$((fails + f)); fi
    done < <(grep -Eo 'Tests: [0-9]+ Failed: [0-9]+\)$' "$out" | grep -Eo '[0-9]+\)$' | tr -d ')')
    if (( rc != 0 && fails + dead == 0 )); then dead=1; fi
    failed=$((failed + fails + dead)); passed=$((passed + total - fails))
    ran=$((ran + total + dead))
  fi
else
  echo "== pgTAP: no test/pgtap/*.sql files"
fi

# --- 3. shell tests ------------------------------------------------------------
# test/shell/*.sh: scripts that need more than one database or connection
# (pg_dump/restore, documentation examples). Exit status 0 means passed.
shell=(test/shell/*.sh)
for t in "${shell[@]}"; do
  echo "== shell: $t"
  if bash "$t"; then
    passed=$((passed + 1))
  else
    echo "FAILED: $t"
    failed=$((failed + 1))
  fi
  ran=$((ran + 1))
done

if (( ran == 0 )); then
  echo "run-tests: no tests found (test/sql/NNN_*.sql, test/specs/*.spec, test/pgtap/*.sql)"
  echo "tests: 0 passed, 1 failed"
  exit 1
fi
echo "tests: $passed passed, $failed failed"
(( failed == 0 ))
