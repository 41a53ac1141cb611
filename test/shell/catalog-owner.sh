#!/bin/bash
# catalog-owner.sh: segment's definition and state tables are queried from C
# only by the catalog module (src/catalog.c, src/catalog_*.c, src/state_read.c;
# see src/catalog.h). A C file elsewhere that names one of them after FROM,
# JOIN, INTO, UPDATE or DELETE FROM in its text fails the test. The
# check is first shown to catch such a file in a scratch directory. Needs no
# cluster.
set -uo pipefail
cd "$(dirname "$0")/../.."

tables='subject|tag|tag_state|tag_snapshot|tag_history|manual_tag|scheme|scheme_bucket|bucket_state|bucket_history|scorecard|scorecard_item|scorecard_band|score_state|subject_state|subject_snapshot|universe_history|size_snapshot|keymap|run|run_step|segment|entry_rule|event_rule|opportunity_rule|live_subject'
pattern="(FROM|JOIN|INTO|UPDATE)[[:space:]]+segment\\.($tables)([^a-z_]|\$)"

# the C files outside the catalog module that query those tables
offenders() {
  local dir=$1 f base
  for f in "$dir"/*.c; do
    [[ -e $f ]] || continue
    base=$(basename "$f")
    case $base in catalog.c|catalog_*.c|state_read.c) continue ;; esac
    grep -nE "$pattern" "$f" | sed "s|^|$base:|"
  done
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
printf 'static const char *q = "SELECT members FROM segment.tag_state WHERE tag_id = $1";\n' > "$tmp/reader.c"
printf 'static const char *q = "SELECT 1 FROM segment.live_member";\n' > "$tmp/overlay.c"
printf 'static const char *q = "SELECT 1 FROM segment.tag_state";\n' > "$tmp/catalog_x.c"
out=$(offenders "$tmp")
if [[ $out == reader.c:* && $(wc -l <<<"$out") -eq 1 ]]; then
  echo "ok 1 - a query of segment.tag_state outside the catalog module is found"
else
  echo "not ok 1 - the check finds: ${out:-nothing}"; status=1
fi
out=$(offenders src)
if [[ -z $out ]]; then
  echo "ok 2 - only the catalog module queries the definition and state tables"
else
  echo "not ok 2 - queried outside the catalog module:"; sed 's/^/    /' <<<"$out"; status=1
fi
echo "1..2"
exit $status
