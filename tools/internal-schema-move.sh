#!/bin/bash
# tools/internal-schema-move.sh: move segment's internal helpers out of the
# user's schema, mechanically (issue 16, item 4).
#
# What it rewrites: every `segment._NAME` (schema segment, an object whose name
# starts with an underscore: the internal functions, trigger and event trigger
# functions, the internal view _opportunity_facts) becomes
# `segment_internal._NAME`. The name keeps its underscore, so that
#   - the rewrite is one sed, reversible (s/segment_internal\._/segment._/);
#   - `git grep '_NAME'` still finds every caller, in C and SQL;
#   - PL/pgSQL's function-qualified parameters (`_lock_for.opportunity_id`)
#     and part 95's list of helpers by name (`_role_grants`) stay valid;
#   - the upgrade from 0.1.0 moves each function by ALTER ... SET SCHEMA
#     without renaming it.
# The match is `\bsegment\._[a-z0-9_]`: not `my_segment._x`, not
# `segment_internal._x` (so running the script twice changes nothing).
#
# Where: the files git knows of (tracked, plus untracked files that are not
# ignored) that are text and contain the pattern, in
#   sql/install/ sql/upgrade/ (regular files only: the symlinks there point at
#   sql/install/ and are rewritten through their target), sql/[0-9]*.sql,
#   src/, test/, expected/, specs/, docs/, README.md
# Never: the released install scripts sql/segment--*.sql (0.1.0 is frozen; the
# others are built by the Makefile), tools/, and the upgrade part
# sql/upgrade/0.1.0--0.2.0/05-internal-schema.sql (it moves the 0.1.0 objects
# and is written so that the pattern does not occur in it).
#
# It also lists (does not change) C files whose SQL names segment_internal._
# and that run SQL through SPI without segment_internal_sql(): see the end.
#
# Not done here (hand-written once, already in the tree): the schema itself
# (sql/install/01-internal-schema.sql), the 0.1.0 -> 0.2.0 move (upgrade part
# 05), the grants of part 95 (which look helpers up in both schemas by name).
#
# Usage, from anywhere inside the repository:
#   tools/internal-schema-move.sh          rewrite, print the files changed
#   tools/internal-schema-move.sh --check  exit 1 (and list them) if any file
#                                          still needs the rewrite
# New code written as `segment._helper(...)` after the move (another branch
# merged later) is handled by running it again.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
check=0
[[ ${1:-} == --check ]] && check=1

pattern='\bsegment\._[a-z0-9_]'
files=()
while IFS= read -r -d '' f; do
    [[ -f $f && ! -L $f ]] || continue
    case $f in
        sql/segment--*.sql | tools/* | sql/upgrade/0.1.0--0.2.0/05-internal-schema.sql) continue ;;
        sql/install/* | sql/upgrade/* | sql/[0-9]*.sql | src/* | test/* | expected/* | specs/* | docs/* | README.md) ;;
        *) continue ;;
    esac
    grep -qIP "$pattern" -- "$f" && files+=("$f")
done < <(git ls-files -z --cached --others --exclude-standard | sort -zu)

if ((check)); then
    if ((${#files[@]})); then printf '%s\n' "${files[@]}"; exit 1; fi
    exit 0
fi
for f in "${files[@]}"; do
    sed -i 's/\bsegment\._\([a-z0-9_]\)/segment_internal._\1/g' -- "$f"
    echo "$f"
done
echo "internal-schema-move: ${#files[@]} files rewritten" >&2

# C code's SQL must also run in a database not yet updated from 0.1.0 (the
# helpers still in schema segment): segment_saved_plan does that for its
# plans; SQL run through SPI directly (SPI_execute*, SPI_prepare*, SPI_cursor*)
# must go through segment_internal_sql() (src/internal_schema.h). Not
# rewritten (C needs judgement): listed, for a look after a merge.
for f in src/*.c; do
    [[ $f == src/internal_schema.c || $f == src/subject.c ]] && continue
    grep -q '"[^"]*segment_internal\._' "$f" || continue
    grep -qE 'SPI_(exec|execute|execute_with_args|execute_extended|prepare|prepare_cursor|prepare_params|cursor_open_with_args)\(' "$f" || continue
    grep -q 'segment_internal_sql(' "$f" ||
        echo "internal-schema-move: check $f: SQL naming segment_internal._ run through SPI directly? wrap it in segment_internal_sql()" >&2
done
