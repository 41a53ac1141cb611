#!/bin/sh
# test/dump_restore.sh: pg_dump / pg_restore round trip of segment.
#
# Needs a running cluster reachable through the usual libpq variables
# (PGHOST, PGPORT, PGUSER: e.g. inside `pg_virtualenv sh -c test/dump_restore.sh`)
# with segment installed, and a role that may create databases and extensions.
#
# In database A: two subjects (int8 keys with org/owner columns, text keys),
# rule tags using segment.as_of(), a rule with quotes and unicode, manual tags
# set with set_tag (with and without expiry, one set then unset), an inactive
# tag, an altered tag and a dropped tag (so tag_history has create / alter /
# drop rows), two refreshes. Then pg_dump -Fc A, pg_restore into a fresh B, and:
#   - segment.subject, tag, tag_history, manual_tag, keymap rows are identical;
#   - manual tags read the same in B before any refresh;
#   - a refresh in B (same as_of) reports the same member counts per tag;
#   - members (int keys) / members_text (text keys) of every active tag and
#     of some audiences are identical;
#   - in B, dropping a column a rule uses is still refused (2BP01), and new
#     tags / history rows get fresh ids (sequences restored).
# Prints TAP (ok / not ok, plan at the end); exits non-zero on any failure.
# SEGMENT_KEEP_DBS=1 keeps both databases for inspection.

set -u

A="segment_dump_a_$$"
B="segment_dump_b_$$"
AUTHOR="segment_dump_author_$$"   # a tag written by another role: its owner survives
work=$(mktemp -d "${TMPDIR:-/tmp}/segment-dump.XXXXXX")
n=0
failed=0

PSQL="psql -X -q -At -v ON_ERROR_STOP=1"

cleanup() {
    if [ "${SEGMENT_KEEP_DBS:-0}" != 1 ]; then
        dropdb --if-exists "$A" >/dev/null 2>&1
        dropdb --if-exists "$B" >/dev/null 2>&1
        dropuser --if-exists "$AUTHOR" >/dev/null 2>&1
    else
        echo "# kept databases $A and $B"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }

# step DESCRIPTION COMMAND...: ok if the command succeeds, else not ok with
# its output as diagnostics.
step() {
    desc=$1; shift
    if "$@" >"$work/step.out" 2>&1; then
        pass "$desc"
        return 0
    fi
    fail "$desc"
    sed 's/^/# /' "$work/step.out" | head -40
    return 1
}

# same DESCRIPTION FILE_A FILE_B: ok if both files exist, are identical and
# (unless ALLOW_EMPTY=1) not empty.
same() {
    desc=$1
    if [ ! -s "$2" ] && [ "${ALLOW_EMPTY:-0}" != 1 ]; then
        fail "$desc"
        echo "# nothing to compare: $2 is empty"
    elif cmp -s "$2" "$3"; then
        pass "$desc ($(wc -l <"$2" | tr -d ' ') lines)"
    else
        fail "$desc"
        diff "$2" "$3" | head -20 | sed 's/^/# /'
    fi
}

bail() {
    echo "Bail out! $1"
    echo "1..$n"
    exit 1
}

# query DB FILE SQL: run SQL in DB, output to FILE.
query() {
    $PSQL -d "$1" -c "$3" >"$2" 2>"$work/query.err" || {
        sed 's/^/# /' "$work/query.err"
        return 1
    }
}

# The catalog rows that must survive, one file each.
catalog() {
    db=$1; out=$2
    query "$db" "$out.subject" "select row(s.*)::text from segment.subject s order by subject_id" &&
    query "$db" "$out.tag" "select row(t.*)::text from segment.tag t order by tag_id" &&
    query "$db" "$out.history" "select row(h.*)::text from segment.tag_history h order by history_id" &&
    query "$db" "$out.manual" "select row(m.*)::text from segment.manual_tag m order by tag_id, member_id" &&
    query "$db" "$out.keymap" "select row(k.*)::text from segment.keymap k order by subject_id, member_id"
}

# Members of every active or manual tag, and of a few audiences, as
# "tag <tab> key" lines in a stable order.
MEMBERS_SQL="
select t.name || E'\t' || m
  from segment.tag t join segment.subject s using (subject_id),
       lateral segment.members(s.name, t.name) m
 where (t.active or t.rule is null) and s.key_type in ('int4'::regtype, 'int8'::regtype)
union all
select t.name || E'\t' || m
  from segment.tag t join segment.subject s using (subject_id),
       lateral segment.members_text(s.name, t.name) m
 where (t.active or t.rule is null) and s.key_type in ('text'::regtype, 'varchar'::regtype)
union all
select a || E'\t' || segment.count(s, a)
  from (values ('customer', 'high_value and maturing and not dormant'),
               ('customer', 'vip_manual or payroll_no_fund'),
               ('customer', '(high_value or vip_manual) and not quoted'),
               ('account', 'big_balance and not acct_manual'),
               ('account', 'acct_manual or new_account')) v(s, a)
order by 1"

MANUAL_SQL="
select t.name || E'\t' || m
  from segment.tag t join segment.subject s using (subject_id),
       lateral segment.members_text(s.name, t.name) m
 where t.rule is null
order by 1"

########################################################################
# Database A

createdb "$A" || bail "cannot create database $A"
createuser "$AUTHOR" || bail "cannot create role $AUTHOR"

step "set up database A: subjects, tags, manual tags, history, two refreshes" \
    $PSQL -v author="$AUTHOR" -d "$A" <<'SQL' || bail "set-up of A failed"
set client_min_messages = warning;
create extension segment;
set segment.progress_seconds = 0;
select setseed(0.5);

create schema dw;
create table dw.customer (
    customer_id  int8 primary key,
    branch       text not null,
    rm           text,
    aum          numeric(18,2),
    td_maturity  date,
    last_login  date,
    has_fund     boolean,
    payroll      boolean,
    name         text
);
insert into dw.customer
select n * 7 + 1,
       'B' || (n % 12),
       case when n % 5 = 0 then null else 'rm' || (n % 40) end,
       case when n % 9 = 0 then null else round((exp(random() * 14))::numeric, 2) end,
       date '2026-11-22' + (n % 45) - 5,
       case when n % 11 = 0 then null else date '2026-11-22' - (n % 200) end,
       case when n % 3 = 0 then null else n % 4 = 0 end,
       n % 6 = 1,
       (array['Alice', 'alice', 'O''Brien', '张三', 'Bob ', '', null])[1 + n % 7] || (n % 13)
  from generate_series(0, 4999) n;

create table dw.account (
    acct_no  text primary key,
    balance  numeric,
    opened   date,
    kind     varchar(10)
);
insert into dw.account
select case n % 4 when 0 then 'ACC-' || lpad(n::text, 6, '0')
                  when 1 then '账户-' || n
                  when 2 then 'acc ' || n || ' '
                  else 'A''' || n end,
       round((random() * 200000)::numeric, 4),
       date '2026-11-22' - (n % 400),
       (array['current', 'saving', 'loan'])[1 + n % 3]
  from generate_series(0, 2999) n;

select segment.register_subject('customer', 'dw.customer', 'customer_id', 'branch', 'rm');
select segment.register_subject('account', 'dw.account', 'acct_no');

select segment.create_tag('customer', 'high_value', 'aum >= 500000', 'value', 'AUM at least 500k');
select segment.create_tag('customer', 'maturing', $r$td_maturity - segment.as_of() in (30, 15, 7, 1)$r$, 'maturity');
select segment.create_tag('customer', 'dormant', $r$last_login < segment.as_of() - 90 or last_login is null$r$, 'activity');
select segment.create_tag('customer', 'payroll_no_fund', 'payroll and not has_fund', 'mining');
select segment.create_tag('customer', 'quoted', $r$name = 'O''Brien3' or name like '张%' or name like 'Bob %'$r$,
                          'text', $d$客户 "quoted" 'text'$d$);
select segment.create_tag('customer', 'retired_rule', 'aum < 1000', 'value');
select segment.create_tag('customer', 'temp_tag', 'payroll', 'temp');
select segment.create_tag('customer', 'vip_manual', null, 'manual', 'set by staff');
select segment.create_tag('account', 'big_balance', 'balance > 100000', 'value');
select segment.create_tag('account', 'new_account', $r$opened > segment.as_of() - 30$r$, 'lifecycle');
select segment.create_tag('account', 'acct_manual', null, 'manual');

select segment.set_tag('customer', '8', 'vip_manual');
select segment.set_tag('customer', 4243::bigint, 'vip_manual', true, '2099-01-01 00:00:00+00');
select segment.set_tag('customer', '701', 'vip_manual');
select segment.set_tag('customer', '701', 'vip_manual', false);
select segment.set_tag('account', 'ACC-000004', 'acct_manual');
select segment.set_tag('account', '账户-1', 'acct_manual', true, '2099-06-30 12:00:00+08');
select segment.set_tag('account', 'acc 2 ', 'acct_manual');

select count(*) from segment.refresh(null, '2026-11-21');

select segment.alter_tag('high_value', rule => 'aum >= 400000', description => 'AUM at least 400k');
select segment.alter_tag('retired_rule', active => false);
select segment.drop_tag('temp_tag');

-- a tag whose owner (the role its rule runs as) is not the installing superuser
select format('grant usage on schema dw to %I', :'author') \gexec
select count(*) from segment.grant_role(:'author'::regrole, 'author');
select format('grant select (customer_id, aum) on dw.customer to %I', :'author') \gexec
select format('set role %I', :'author') \gexec
select segment.create_tag('customer', 'authored', 'aum > 1000', 'value');
reset role;

select count(*) from segment.refresh(null, '2026-11-22');
SQL

catalog "$A" "$work/a" || bail "cannot read the catalog of A"
query "$A" "$work/a.members" "$MEMBERS_SQL" || bail "cannot read members in A"
query "$A" "$work/a.manual_members" "$MANUAL_SQL" || bail "cannot read manual tags in A"
query "$A" "$work/a.refresh" \
    "select subject || E'\t' || tag || E'\t' || members from segment.refresh(null, '2026-11-22') order by 1" ||
    bail "cannot refresh A"

step "A: history has create, alter and drop rows" \
    grep -q "drop" "$work/a.history"
step "A: an inactive tag exists" \
    grep -q "retired_rule" "$work/a.tag"

########################################################################
# Dump, restore

step "pg_dump -Fc $A" pg_dump -Fc -f "$work/a.dump" "$A" || bail "pg_dump failed"
createdb -T template0 "$B" || bail "cannot create database $B"
step "pg_restore into $B" pg_restore --exit-on-error -d "$B" "$work/a.dump" || bail "pg_restore failed"

########################################################################
# Database B

catalog "$B" "$work/b" || bail "cannot read the catalog of B"
same "segment.subject rows identical" "$work/a.subject" "$work/b.subject"
same "segment.tag rows identical (rule text, category, description, active, columns, versions)" "$work/a.tag" "$work/b.tag"
same "segment.tag_history rows identical" "$work/a.history" "$work/b.history"
same "segment.manual_tag rows identical" "$work/a.manual" "$work/b.manual"
ALLOW_EMPTY=1 same "segment.keymap rows identical" "$work/a.keymap" "$work/b.keymap"
owner=$($PSQL -d "$B" -c "select owner::text from segment.tag where name = 'authored'" 2>&1)
if [ "$owner" = "$AUTHOR" ]; then
    pass "the owner of a tag (the role its rule runs as) survives the restore"
else
    fail "the owner of a tag (the role its rule runs as) survives the restore"
    echo "# got: $owner, expected $AUTHOR"
fi

if query "$B" "$work/b.manual_members" "$MANUAL_SQL"; then
    same "manual tags read the same in B before any refresh" "$work/a.manual_members" "$work/b.manual_members"
else
    fail "manual tags read the same in B before any refresh"
fi

if query "$B" "$work/b.refresh" \
    "select subject || E'\t' || tag || E'\t' || members from segment.refresh(null, '2026-11-22') order by 1"; then
    pass "refresh in B"
    same "refresh in B reports the same members per tag as in A" "$work/a.refresh" "$work/b.refresh"
else
    fail "refresh in B"
fi

if query "$B" "$work/b.members" "$MEMBERS_SQL"; then
    same "members of every tag and audience identical after restore + refresh" "$work/a.members" "$work/b.members"
else
    fail "members of every tag and audience identical after restore + refresh"
fi

# Column dependencies survive the restore.
psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$B" \
    -c "begin" -c "alter table dw.customer drop column aum" -c "rollback" >"$work/drop.out" 2>&1
if grep -q "2BP01" "$work/drop.out"; then
    pass "B: dropping a column a rule uses is refused (2BP01)"
else
    fail "B: dropping a column a rule uses is refused (2BP01)"
    sed 's/^/# /' "$work/drop.out"
fi
if grep -Eq "high_value|retired_rule" "$work/drop.out"; then
    pass "B: the refusal names the tag"
else
    fail "B: the refusal names the tag"
fi

# Sequences restored: new definitions get fresh ids (rolled back).
step "B: create_tag, alter_tag, set_tag and a new subject work after restore" \
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$B" <<'SQL'
begin;
select segment.create_tag('customer', 'brand_new', 'aum > 1');
select segment.alter_tag('maturing', description => 'changed in B');
select segment.set_tag('customer', '15', 'vip_manual');
select segment.set_tag('account', 'a brand new key', 'acct_manual');
create table dw.extra (k int4 primary key);
select segment.register_subject('extra', 'dw.extra', 'k');
do $$ begin
    if (select count(*) from segment.tag where name = 'brand_new') <> 1 then
        raise exception 'brand_new missing';
    end if;
    if (select tag_id from segment.tag where name = 'brand_new') <= (select max(tag_id) from segment.tag where name <> 'brand_new') then
        raise exception 'tag id sequence not restored';
    end if;
end $$;
rollback;
SQL

echo "1..$n"
if [ "$failed" -ne 0 ]; then
    echo "# $failed of $n failed"
    exit 1
fi
exit 0
