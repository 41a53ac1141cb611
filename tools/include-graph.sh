#!/bin/bash
# include-graph.sh: the dependency graph of segment's C files, and a check
# that it has no cycle.
#
# A node is a module: src/X.c together with src/X.h. Edges:
#   includes  X -> Y  when src/X.c or src/X.h includes "Y.h" (Y a src header)
#   calls     X -> Y  when X.o uses a global symbol that Y.o defines (only when
#                     every src/*.c has an up-to-date .o: run after `make`)
# The file that defines _PG_init (segment.c) is the extension's entry point:
# it registers every module's GUCs and callbacks, so its own edges are left
# out (nothing may depend on it; its header segment.h holds shared constants).
# Prints both graphs ("X -> Y Z ...", one module a line), then any cycle, and
# exits 1 when either graph has a cycle (2 on a usage error).
#
# Usage: tools/include-graph.sh [srcdir]      (default: src of the repository)
set -uo pipefail
src=${1:-"$(dirname "$0")/../src"}
[[ -d $src ]] || { echo "include-graph.sh: no directory $src" >&2; exit 2; }
cd "$src" || exit 2

init=$(grep -l '^_PG_init(void)' *.c 2>/dev/null | head -1)
init=${init%.c}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# includes: "X Y" pairs
for f in *.c *.h; do
  [[ -e $f ]] || continue
  x=${f%.*}
  sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)\.h".*/\1/p' "$f" |
    while read -r y; do
      [[ -e $y.h && $y != "$x" && $x != "$init" ]] && echo "$x $y"
    done
done | sort -u > "$tmp/includes"

# calls: "X Y" pairs from the objects
have_objects=1
for c in *.c; do
  o=${c%.c}.o
  if [[ ! -e $o || $o -ot $c ]]; then have_objects=0; break; fi
done
: > "$tmp/calls"
if (( have_objects )); then
  # the objects of the sources only (an object left from a removed file is not part of the build)
  for c in *.c; do
    nm --defined-only -g "${c%.c}.o" | awk -v m="${c%.c}" 'NF == 3 && $2 ~ /[TDBRC]/ {print $3, m}'
  done | sort -k1,1 > "$tmp/defs"
  for c in *.c; do
    nm -u "${c%.c}.o" | awk -v m="${c%.c}" '{print $NF, m}'
  done | sort -k1,1 > "$tmp/uses"
  join "$tmp/uses" "$tmp/defs" | awk -v init="$init" '$2 != $3 && $2 != init {print $2, $3}' | sort -u > "$tmp/calls"
fi

print_graph() {
  awk '{ if ($1 != last) { if (NR > 1) printf "\n"; printf "%s ->", $1; last = $1 } printf " %s", $2 }
       END { if (NR) printf "\n" }' "$1"
}

# cycles: strongly connected components of more than one module
cycles() {
  awk '
    { adj[$1] = adj[$1] " " $2; nodes[$1]; nodes[$2] }
    function visit(v,   n, i, w, parts) {
      index_of[v] = low[v] = ++counter; stack[++sp] = v; on[v] = 1
      n = split(adj[v], parts, " ")
      for (i = 1; i <= n; i++) {
        w = parts[i]
        if (!(w in index_of)) { visit(w); if (low[w] < low[v]) low[v] = low[w] }
        else if (on[w] && index_of[w] < low[v]) low[v] = index_of[w]
      }
      if (low[v] == index_of[v]) {
        comp = ""; size = 0
        do { w = stack[sp--]; on[w] = 0; comp = comp " " w; size++ } while (w != v)
        if (size > 1) { print "cycle:" comp; found = 1 }
      }
    }
    END { for (v in nodes) if (!(v in index_of)) visit(v); exit found }' "$1"
}

status=0
echo "# includes (module -> modules whose header it includes)"
print_graph "$tmp/includes"
if ! cycles "$tmp/includes"; then status=1; fi
if (( have_objects )); then
  echo "# calls (module -> modules whose symbols its object uses)"
  print_graph "$tmp/calls"
  if ! cycles "$tmp/calls"; then status=1; fi
else
  echo "# calls: skipped (build first: some src/*.o is missing or older than its .c)"
fi
if (( status )); then echo "include-graph: cycles found"; else echo "include-graph: no cycle"; fi
exit $status
