#!/bin/bash
# live-dump-restore.sh: pg_dump / pg_restore of a database with live
# maintenance on. The restored database has the triggers (dumped with the
# table) and segment.live_subject (extension configuration), not the overlay
# (state); after a refresh, writes are live again and disable_live works.
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

A=segment_live_dump_a_$$
B=segment_live_dump_b_$$
work=$(mktemp -d "${TMPDIR:-/tmp}/segment-live-dump.XXXXXX")
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
qa() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$A" "$@"; }
qb() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$B" "$@"; }

export PGOPTIONS="-c client_min_messages=warning"
trap 'dropdb --if-exists "$A" >/dev/null 2>&1; dropdb --if-exists "$B" >/dev/null 2>&1; rm -rf "$work"' EXIT
createdb "$A" && createdb "$B" || { echo "not ok 1 - createdb"; exit 1; }

qa >/dev/null <<'SQL'
create extension segment;
create table acct (id int8 primary key, bal numeric);
insert into acct select g, g * 10 from generate_series(1, 1000) g;
select segment.register_subject('acct', 'acct', 'id');
select segment.create_tag('acct', 'acct_big', 'bal >= 5000');
select count(*) from segment.refresh('acct', '2026-11-22');
select segment.enable_live('acct');
update acct set bal = 0 where id between 900 and 909;
SQL
[[ $(qa -c "select segment.count('acct', 'acct_big')") == 491 ]]; ok $? "A: live count before the dump"

pg_dump -Fc -f "$work/a.dump" "$A" 2>"$work/dump.err"; ok $? "pg_dump $(head -3 "$work/dump.err")"
pg_restore -d "$B" "$work/a.dump" 2>"$work/restore.err"; ok $? "pg_restore $(head -3 "$work/restore.err")"

trg=$(qb -c "select count(*) from pg_trigger where tgrelid = 'acct'::regclass and tgname like 'segment_live_%'")
[[ $trg == 4 ]]; ok $? "B: the four live triggers are restored (got $trg)"
rows=$(qb -c "select count(*) from segment.live_subject")
[[ $rows == 1 ]]; ok $? "B: segment.live_subject is restored (got $rows)"
over=$(qb -c "select count(*) from segment.live_member")
[[ $over == 0 ]]; ok $? "B: the overlay (state) is not dumped (got $over)"

qb -c "select count(*) from segment.refresh('acct', '2026-11-22')" >/dev/null
[[ $(qb -c "select segment.count('acct', 'acct_big')") == 491 ]]; ok $? "B: after a refresh, the same count"
qb -c "update acct set bal = 0 where id between 800 and 804" >/dev/null
got=$(qb -c "select segment.count('acct', 'acct_big') || ' ' || segment.has_tag('acct', 800, 'acct_big')")
[[ $got == "486 false" ]]; ok $? "B: writes are live again (got $got)"
qb -c "select segment.disable_live('acct')" >/dev/null; ok $? "B: disable_live"
trg=$(qb -c "select count(*) from pg_trigger where tgrelid = 'acct'::regclass and tgname like 'segment_live_%'")
[[ $trg == 0 ]]; ok $? "B: disable_live dropped the restored triggers (got $trg)"

echo "1..$n"
exit $fail
