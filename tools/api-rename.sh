#!/bin/bash
# tools/api-rename.sh: the 0.2.0 naming pass of the SQL API (issue 16, item 4),
# as a rewrite of every caller: `segment.OLD` (followed by a non-word
# character) becomes `segment.NEW`, in the same files as
# tools/internal-schema-move.sh (sql/install, sql/upgrade regular files,
# sql/[0-9]*.sql, src, test, expected, specs, docs, README.md).
#
# The table (docs/reference.md "Deprecated names (removed in 0.3.0)"):
#   per-opportunity lifecycle verbs are opportunity_VERB(opportunity_id, ...),
#   per-message channel verbs are outbox_VERB(outbox_id, ...), batch steps of
#   run_all are VERB_OBJECTS(as_of), and what hangs a rule on something is
#   attach_X / detach_X.
#
# Never rewritten: the frozen sql/segment--0.1.0.sql and the built scripts,
# tools/, the part that defines the deprecated wrappers under the old names
# (sql/install/94-deprecated-names.sql), the upgrade part that renames the
# 0.1.0 functions (sql/upgrade/0.1.0--0.2.0/06-api-names.sql) and the test of
# the deprecated names (test/pgtap/deprecated_names.sql).
# Nor the lines between `<!-- api-rename: off -->` and `<!-- api-rename: on -->`
# (docs/reference.md's table of deprecated names, which must keep them).
# Idempotent: no new name is an old name followed by a word boundary.
# Usage: tools/api-rename.sh [--check]
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
check=0
[[ ${1:-} == --check ]] && check=1

# old new (keep in step with 94-deprecated-names.sql and 06-api-names.sql)
renames='
dispatch           opportunity_dispatch
start              opportunity_start
complete           opportunity_complete
cancel             opportunity_cancel
reassign           opportunity_reassign
expire             expire_opportunities
ack                outbox_ack
record_response    outbox_record_response
fire_on_entry      attach_entry_rule
stop_fire_on_entry detach_entry_rule
'
sedargs=()
alt=()
while read -r old new; do
    [[ -n $old ]] || continue
    sedargs+=(-e "/<!-- api-rename: off -->/,/<!-- api-rename: on -->/!s/\\bsegment\\.$old\\b/segment.$new/g")
    alt+=("$old")
done <<<"$renames"
pattern="\\bsegment\\.($(IFS='|'; echo "${alt[*]}"))\\b"

files=()
while IFS= read -r -d '' f; do
    [[ -f $f && ! -L $f ]] || continue
    case $f in
        sql/segment--*.sql | tools/* | sql/install/94-deprecated-names.sql | \
        sql/upgrade/0.1.0--0.2.0/06-api-names.sql | test/pgtap/deprecated_names.sql) continue ;;
        sql/install/* | sql/upgrade/* | sql/[0-9]*.sql | src/* | test/* | expected/* | specs/* | docs/* | README.md) ;;
        *) continue ;;
    esac
    grep -qI . -- "$f" || continue
    sed '/<!-- api-rename: off -->/,/<!-- api-rename: on -->/d' -- "$f" | grep -qP "$pattern" && files+=("$f")
done < <(git ls-files -z --cached --others --exclude-standard | sort -zu)

if ((check)); then
    if ((${#files[@]})); then printf '%s\n' "${files[@]}"; exit 1; fi
    exit 0
fi
for f in "${files[@]}"; do
    sed -i "${sedargs[@]}" -- "$f"
    echo "$f"
done
echo "api-rename: ${#files[@]} files rewritten" >&2
