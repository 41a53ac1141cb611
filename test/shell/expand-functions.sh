#!/bin/bash
# expand-functions.sh: the directive `-- @function NAME[(TYPES)]` of the
# upgrade parts (tools/expand-functions.pl, docs/architecture.md#sql-install-parts)
# expands to the one definition of NAME in the install parts, with the
# statements on it that follow it; a directive that matches no definition or
# several fails, naming the directive, and so fails the build of the upgrade
# script; and no upgrade part holds a copy of an install part's function.
# Needs no cluster.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

status=0
n=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() {     # ok STATUS DESCRIPTION [DETAIL FILE]
  n=$((n + 1))
  if [[ $1 == 0 ]]; then echo "ok $n - $2"
  else echo "not ok $n - $2"; [[ -n ${3:-} ]] && sed 's/^/    /' "$3"; status=1; fi
}
expand() { perl "$root/tools/expand-functions.pl" "$@"; }

# An install dir: an overloaded name, a plain CREATE with a comment and a
# revoke after it, bodies whose text holds ';', '$$', a quote, a directive-like
# line and a nested dollar quote; a procedure.
mkdir -p "$tmp/install" "$tmp/upgrade"
cat > "$tmp/install/10-a.sql" <<'SQL'
-- part 10
CREATE FUNCTION segment.f(x int, y text DEFAULT 'a;b') RETURNS int
LANGUAGE plpgsql AS $body$
BEGIN
    -- @function segment.nothing ; 'not a directive: inside a body'
    EXECUTE $q$SELECT 1; SELECT '$$'$q$;
    RETURN x;
END $body$;
COMMENT ON FUNCTION segment.f(int, text) IS
    'f''s comment; with a semicolon';
REVOKE EXECUTE ON FUNCTION segment.f(int, text) FROM PUBLIC;

COMMENT ON FUNCTION segment.other() IS 'not f''s: not copied';
SQL
cat > "$tmp/install/20-b.sql" <<'SQL'
CREATE OR REPLACE FUNCTION segment.g(n integer) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE OR REPLACE FUNCTION segment.g(n bigint, OUT r int8) LANGUAGE sql AS $$ SELECT 2 $$;
CREATE FUNCTION segment_internal._h(a timestamp with time zone, b double precision) RETURNS int LANGUAGE sql AS $$ SELECT 3 $$;
CREATE PROCEDURE segment.p(INOUT run_id bigint DEFAULT NULL) LANGUAGE plpgsql AS $$ BEGIN run_id := 1; END $$;
SQL

# 1. a directive expands to the whole statement, as CREATE OR REPLACE, with
# the statements on the same function after it, and nothing else
printf -- '-- before\n-- @function segment.f\n-- after\n' > "$tmp/upgrade/10.sql"
expand "$tmp/install" "$tmp/upgrade/10.sql" > "$tmp/out" 2> "$tmp/err"
rc=$?
cat > "$tmp/expected" <<'SQL'
-- before
-- @function segment.f  (from 10-a.sql)
CREATE OR REPLACE FUNCTION segment.f(x int, y text DEFAULT 'a;b') RETURNS int
LANGUAGE plpgsql AS $body$
BEGIN
    -- @function segment.nothing ; 'not a directive: inside a body'
    EXECUTE $q$SELECT 1; SELECT '$$'$q$;
    RETURN x;
END $body$;
COMMENT ON FUNCTION segment.f(int, text) IS
    'f''s comment; with a semicolon';
REVOKE EXECUTE ON FUNCTION segment.f(int, text) FROM PUBLIC;
-- after
SQL
diff "$tmp/expected" "$tmp/out" > "$tmp/diff"
ok $(( rc == 0 && $? == 0 ? 0 : 1 )) "a directive expands to the definition and the statements on it (rc $rc)" "$tmp/diff"

# 2. overloads: the argument types choose, spelled any way SQL spells them
# (OUT arguments of a function are not part of its identity)
printf -- '-- @function segment.g(int4)\n-- @function segment.g(pg_catalog.int8)\n-- @function segment_internal._h(timestamptz, float8)\n-- @procedure segment.p(bigint)\n' > "$tmp/upgrade/20.sql"
expand "$tmp/install" "$tmp/upgrade/20.sql" > "$tmp/out" 2> "$tmp/err"
rc=$?
got=$(grep -c '^CREATE OR REPLACE' "$tmp/out")
picked=$(grep -o 'SELECT [0-9]' "$tmp/out" | tr '\n' ' ')
ok $(( rc == 0 && got == 4 ? 0 : 1 )) "argument types choose among overloads ($picked; rc $rc)" "$tmp/err"
[[ $picked == 'SELECT 1 SELECT 2 SELECT 3 ' ]]
ok $? "each overload is the one its types name"

# 3. no definition: fails, naming the directive and its place
printf -- '-- ok\n-- @function segment.missing\n' > "$tmp/upgrade/30.sql"
expand "$tmp/install" "$tmp/upgrade/30.sql" > "$tmp/out" 2> "$tmp/err"
rc=$?
grep -q "30.sql:2: -- @function segment.missing: no definition" "$tmp/err"
ok $(( rc != 0 && $? == 0 ? 0 : 1 )) "a directive that matches nothing fails, naming it (rc $rc)" "$tmp/err"

# 4. several definitions: fails, listing them
printf -- '-- @function segment.g\n' > "$tmp/upgrade/40.sql"
expand "$tmp/install" "$tmp/upgrade/40.sql" > "$tmp/out" 2> "$tmp/err"
rc=$?
grep -q "40.sql:1: -- @function segment.g: 2 definitions" "$tmp/err" && grep -q 'segment.g(bigint)' "$tmp/err"
ok $(( rc != 0 && $? == 0 ? 0 : 1 )) "a directive that matches two definitions fails, listing them (rc $rc)" "$tmp/err"

# 5. a kind mismatch (a procedure named as a function) and wrong types fail
printf -- '-- @function segment.p\n-- @function segment.g(text)\n' > "$tmp/upgrade/50.sql"
expand "$tmp/install" "$tmp/upgrade/50.sql" > "$tmp/out" 2> "$tmp/err"
rc=$?
ok $(( rc != 0 && $(grep -c 'no definition' "$tmp/err") == 2 ? 0 : 1 )) \
   "a procedure named by @function, and types no overload has, match nothing (rc $rc)" "$tmp/err"

# 6. a directive in an install part (some are linked into the upgrade) fails
mkdir -p "$tmp/install2"
cp "$tmp/install/"*.sql "$tmp/install2/"
printf -- '-- @function segment.f\n' >> "$tmp/install2/20-b.sql"
expand "$tmp/install2" "$tmp/upgrade/10.sql" > "$tmp/out" 2> "$tmp/err"
rc=$?
grep -q '20-b.sql:5: -- @function segment.f: a directive in an install part' "$tmp/err"
ok $(( rc != 0 && $? == 0 ? 0 : 1 )) "a directive in an install part fails (rc $rc)" "$tmp/err"

# 7. the build: make fails on such a directive and leaves no upgrade script
mkdir -p "$tmp/tree"
cp -a Makefile segment.control sql tools "$tmp/tree/"
rm -f "$tmp/tree/sql/segment--0.2.0.sql" "$tmp/tree/sql/segment--0.1.0--0.2.0.sql"
printf -- '-- @function segment.no_such_function\n' > "$tmp/tree/sql/upgrade/0.1.0--0.2.0/98-zz-bad.sql"
make -s -C "$tmp/tree" sql/segment--0.1.0--0.2.0.sql > "$tmp/make.out" 2>&1
rc=$?
grep -q '98-zz-bad.sql:1: -- @function segment.no_such_function: no definition' "$tmp/make.out"
found=$?
ok $(( rc != 0 && found == 0 ? 0 : 1 )) "make fails on a directive that matches nothing, naming it (rc $rc)" "$tmp/make.out"
[[ ! -e $tmp/tree/sql/segment--0.1.0--0.2.0.sql && ! -e $tmp/tree/sql/segment--0.1.0--0.2.0.sql.tmp ]]
ok $? "and leaves no upgrade script behind"

# 8. the tree: the upgrade script builds; an install part's edit rebuilds it
rm "$tmp/tree/sql/upgrade/0.1.0--0.2.0/98-zz-bad.sql"
make -s -C "$tmp/tree" sql/segment--0.1.0--0.2.0.sql > "$tmp/make.out" 2>&1
ok $? "the upgrade script of this tree builds" "$tmp/make.out"
directives=$(cat sql/upgrade/0.1.0--0.2.0/*.sql | grep -c '^-- @\(function\|procedure\) ')
expanded=$(grep -c '^-- @\(function\|procedure\) .*  (from .*\.sql)$' "$tmp/tree/sql/segment--0.1.0--0.2.0.sql")
ok $(( directives > 0 && directives == expanded ? 0 : 1 )) "every directive of the upgrade parts is expanded ($expanded of $directives)"
sleep 1   # edited in place (a new file would change the directory, a prerequisite too)
part="$tmp/tree/sql/install/76-scheme-reading.sql"
perl -0pe 's/(COMMENT ON FUNCTION segment.top\(name, name, text, int\) IS\n\s*)'"'"'/$1'"'"'EDITED /' "$part" > "$tmp/part"
cat "$tmp/part" > "$part"
make -s -C "$tmp/tree" sql/segment--0.1.0--0.2.0.sql > "$tmp/make.out" 2>&1
grep -q "'EDITED the n highest" "$tmp/tree/sql/segment--0.1.0--0.2.0.sql"
ok $? "an edit of an install part reaches the upgrade script (make rebuilds it)" "$tmp/make.out"

# 9. no upgrade part writes again a function an install part defines
expand --copies sql/install sql/upgrade/0.1.0--0.2.0/*.sql > "$tmp/copies"
ok $? "no upgrade part copies an install part's function (write -- @function NAME)" "$tmp/copies"

echo "1..$n"
exit $status
