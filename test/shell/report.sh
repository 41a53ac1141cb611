#!/bin/bash
# report.sh: segment.report() (issue 14, docs/report.md) on a small bank of
# 600 customers in two org units, two refresh days (the second by CALL
# segment.run_all), two opportunity rules with control groups, dispatched,
# started, completed and expired opportunities, outcomes evaluated:
#   - the page: one HTML5 document that parses (python3 html.parser, every
#     element closed in order), at least 5 <svg> charts, no external
#     reference (no http:, https:, url(, @import, src=, href=, <script>,
#     <link>, <img>), Chinese labels as UTF-8;
#   - its figures equal the SQL they come from: the opportunity total and
#     the funnel per rule (data-value attributes) equal segment.report_rules,
#     which equals segment.review and counts straight from segment.opportunity;
#     transitions equal segment.transitions; tag sizes equal
#     segment.size_history; the manager league equals segment.report_managers;
#   - scope: with org_unit, the totals are those of that unit (SQL filtered
#     by opportunity.org_unit and the subject's org column), and smaller;
#   - masking: no customer name or phone in the page; escaping: a manager id
#     and an org unit with < & " are escaped, never raw;
#   - errors: 42704 unknown subject, 22023 from after to, 22004 NULL date,
#     55000 org_unit on a subject without org column; a reader role (grant_role)
#     can make the report;
#   - a real browser: headless chromium renders it to a PNG that is not
#     blank (distinct colours, share of non-background pixels) and its DOM
#     (--dump-dom) holds the SVG elements. Skipped only when chromium is not
#     installed (test/deps.sh installs it).
# Prints TAP; needs PGHOST/PGPORT of a cluster where segment is installed.
set -uo pipefail

db=segment_report_$$
work=
n=0
fail=0
ok() { n=$((n + 1)); if [[ $1 == 0 ]]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
is() { n=$((n + 1)); if [[ "$1" == "$2" ]]; then echo "ok $n - $3"; else
         echo "not ok $n - $3"; echo "#   got:      $1"; echo "#   expected: $2"; fail=1; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# the SQLSTATE of a statement that should fail, or "no error"
state() { local out; if out=$(psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -d "$db" \
                               -c '\set VERBOSITY verbose' -c "$1" 2>&1); then echo "no error"
          else grep -Eo 'ERROR: +[0-9A-Z]{5}' <<<"$out" | grep -Eo '[0-9A-Z]{5}$' | head -1; fi; }
export PGOPTIONS="-c client_min_messages=warning"
cleanup() {
    dropdb --if-exists "$db" >/dev/null 2>&1
    psql -X -q -d postgres -c "drop role if exists seg_report_reader" >/dev/null 2>&1
    [[ -n $work ]] && rm -rf "$work"
}
trap cleanup EXIT
cleanup
work=$(mktemp -d "${TMPDIR:-/tmp}/segment-report.XXXXXX")
createdb "$db" || { echo "not ok 1 - createdb"; exit 1; }

# --- a small bank -------------------------------------------------------------
# Org units "north" and 华南<&"支行> (an org unit is free text: it must be
# escaped); managers m0, m1, 王经理 and one whose id is an HTML injection.
q >/dev/null <<'SQL' || { echo "not ok 1 - setup"; exit 1; }
create extension segment;
create schema bank;
create table bank.customer (
    id int primary key, name text, mobile text, aum numeric, stage int,
    td_maturity date, branch text, manager text);
insert into bank.customer
select i, (array['王小明', '李娜', '张伟', '陈静'])[1 + i % 4] || i, '139' || lpad(i::text, 8, '0'),
       (i * 7919 % 1000) * 1000, i % 4, current_date + i % 40,
       case when i % 3 = 0 then 'north' else '华南<&"支行>' end,
       case when i % 3 = 0 then 'm' || (i % 2)
            when i % 5 = 0 then '<script>alert(1)</script>' else '王经理' end
  from generate_series(1, 600) i;
create table bank.staff (manager text primary key, branch text, cap int, active boolean);
insert into bank.staff values ('m0', 'north', 1000, true), ('m1', 'north', 1000, true),
  ('王经理', '华南<&"支行>', 1000, true), ('<script>alert(1)</script>', '华南<&"支行>', 1000, true);
select segment.register_subject('bank', 'bank.customer', 'id', org_column => 'branch', owner_column => 'manager');
select segment.register_staff('bank', 'bank.staff', 'manager', 'branch', 'cap', 'active');
select segment.create_tag('bank', 'high_value', 'aum >= 500000', 'value');
select segment.create_tag('bank', '到期提醒', 'td_maturity between segment.as_of() and segment.as_of() + 30', 'deposit');
select segment.create_tag('bank', 'stage_late', 'stage >= 2');
select segment.create_scheme('bank', 'value_tier', array[['私行', 'aum >= 900000'], ['wealth', 'aum >= 500000'], ['mass', 'true']]);
select segment.create_scheme('bank', 'aipl', array[['awareness', 'stage = 0'], ['interest', 'stage = 1'],
                                                  ['purchase', 'stage = 2'], ['loyalty', 'stage = 3']]);
select count(*) from segment.refresh('bank', current_date);
select segment.create_opportunity_rule('bank', 'td_renewal', '到期提醒', 'maintenance', 'term deposit',
    valid_days => 5, holdout_pct => 30, goal => 'aum >= 600000', assignment => 'owner');
select segment.create_opportunity_rule('bank', 'wealth_upsell', 'high_value', 'mining', 'wealth',
    valid_days => 5, holdout_pct => 20, goal => 'stage = 3', assignment => 'owner');
select count(*) from segment.generate(as_of => current_date);
select segment.opportunity_dispatch(array_agg(opportunity_id)) from segment.opportunity
 where not is_control and opportunity_id % 4 <> 0;
select count(segment.opportunity_start(opportunity_id)) from segment.opportunity
 where status = 'dispatched' and opportunity_id % 3 <> 0;
select count(segment.opportunity_complete(opportunity_id, opportunity_id % 2 = 0,
                              case when opportunity_id % 2 = 0 then 1000 * opportunity_id end))
  from segment.opportunity where status = 'in_progress' and opportunity_id % 5 <> 0;
select count(segment.opportunity_cancel(opportunity_id, 'customer moved away'))
  from segment.opportunity where status = 'dispatched' and opportunity_id % 7 = 0;
-- the next day: customers move, the nightly run refreshes (and generates)
update bank.customer set aum = aum + 300000, stage = least(stage + 1, 3) where id % 4 = 0;
update bank.customer set aum = aum * 0.5 where id % 7 = 0;
SQL
psql -X -q -d "$db" -c "call segment.run_all(current_date + 1)" >/dev/null 2>&1 || { echo "not ok 1 - run_all"; exit 1; }
q -c "select segment.expire_opportunities(current_date + 6), segment.evaluate_outcomes(current_date + 6)" >/dev/null ||
    { echo "not ok 1 - outcomes"; exit 1; }

period="current_date - 1, current_date + 10"
q -c "select segment.report('bank', $period)" > "$work/all.html" || { echo "not ok 1 - report"; exit 1; }
q -c "select segment.report('bank', $period, 'north')" > "$work/north.html" || { echo "not ok 1 - scoped report"; exit 1; }
q -c "select segment.report('bank', $period, '华南<&\"支行>')" > "$work/south.html" || { echo "not ok 1 - scoped report 2"; exit 1; }

# --- the page -------------------------------------------------------------------
is "$(head -c 15 "$work/all.html")" "<!DOCTYPE html>" "the report is an HTML5 document"
svgs=$(grep -o '<svg' "$work/all.html" | wc -l)
ok $(( svgs >= 5 ? 0 : 1 )) "at least 5 SVG charts ($svgs)"
for s in summary tags transitions funnel opportunities lift managers runs; do
    grep -q "<section id=\"$s\"><h2>" "$work/all.html"; ok $? "section $s is there, with a title"
done
is "$(grep -o '<p class="reading">[^<]' "$work/all.html" | wc -l)" 8 "every section has a one-line reading"

# html.parser: every element closed in the order opened (void elements aside),
# one html element, nothing after it
cat > "$work/parse.py" <<'PY'
import sys
from html.parser import HTMLParser
VOID = {'meta', 'br', 'hr', 'img', 'input', 'link', 'area', 'base', 'col', 'embed', 'source', 'track', 'wbr'}
class P(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.count, self.texts = [], [], 0, []
    def handle_starttag(self, tag, attrs):
        self.count += 1
        if tag not in VOID:
            self.stack.append(tag)
    def handle_startendtag(self, tag, attrs):
        self.count += 1
    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append('unexpected </%s> (open: %s)' % (tag, self.stack[-3:]))
        else:
            self.stack.pop()
    def handle_data(self, data):
        self.texts.append(data)
p = P()
src = open(sys.argv[1], encoding='utf-8').read()
p.feed(src)
p.close()
if p.stack:
    p.errors.append('unclosed: %s' % p.stack)
if p.errors:
    print('; '.join(p.errors[:5]))
    sys.exit(1)
print('elements %d' % p.count)
PY
for f in all north south; do
    out=$(python3 "$work/parse.py" "$work/$f.html" 2>&1); ok $? "the $f page parses, every element closed in order ($out)"
done
if command -v xmllint >/dev/null; then
    xmllint --html --noout "$work/all.html" 2>"$work/xmllint.err"
    ok $? "xmllint --html parses it"
fi

for f in all north south; do
    bad=$(grep -Eio 'https?:|url\(|@import|src=|href=|<script|<link|<img|<iframe|<object|<embed|xlink' "$work/$f.html" | sort -u | tr '\n' ' ')
    is "$bad" "" "the $f page references nothing outside itself"
done
grep -q '&lt;script&gt;alert(1)&lt;/script&gt;' "$work/all.html"; ok $? "a manager id with <script> is shown escaped"
grep -q '华南&lt;&amp;&quot;支行&gt;' "$work/south.html"; ok $? "an org unit with < & \" is shown escaped"
is "$(grep -c 'alert(1)</script>' "$work/all.html")" 0 "no raw <script> from the data"
for s in 到期提醒 私行 王经理; do
    grep -q "$s" "$work/all.html"; ok $? "Chinese label $s is in the page as UTF-8"
done
is "$(grep -Eo '王小明[0-9]|李娜[0-9]|张伟[0-9]|陈静[0-9]|139[0-9]{8}' "$work/all.html" "$work/north.html" "$work/south.html" | wc -l)" 0 \
   "no customer name or phone in any page"

# --- figures equal the SQL they come from -----------------------------------------
fig() { grep -Eo "data-figure=\"$2\" data-value=\"[^\"]*\"" "$work/$1.html" | sed 's/.*data-value="//; s/"$//'; }
total=$(q -c "select count(*) from segment.opportunity where period between current_date - 1 and current_date + 10")
is "$(fig all opportunities)" "$total" "opportunity total equals SQL ($total)"
is "$(q -c "select opportunities from segment.report_summary('bank', $period)")" "$total" "report_summary.opportunities equals SQL"
is "$(fig all customers)" "$(q -c "select count(*) from bank.customer")" "customers equal the table's rows"
is "$(fig all converted)" "$(q -c "select count(*) from segment.opportunity where converted and not is_control and period between current_date - 1 and current_date + 10")" \
   "converted equals SQL"
is "$(fig all amount)" "$(q -c "select round(sum(amount)) from segment.opportunity where converted and not is_control and period between current_date - 1 and current_date + 10")" \
   "amount equals SQL"

# the funnel of every rule and stage in the page = segment.report_rules
page_funnel=$(grep -Eo 'data-rule="[^"]*" data-stage="[a-z]+" data-value="[0-9]+"' "$work/all.html" |
              sed -E 's/data-rule="([^"]*)" data-stage="([a-z]+)" data-value="([0-9]+)"/\1|\2|\3/' | sort)
sql_funnel=$(q -c "select r.rule || '|' || s.stage || '|' || s.v
                     from segment.report_rules('bank', $period) r,
                          lateral (values ('generated', r.generated), ('dispatched', r.dispatched), ('started', r.started),
                                          ('completed', r.completed), ('converted', r.converted), ('leak', r.expired)) s(stage, v)" | sort)
is "$page_funnel" "$sql_funnel" "funnel per rule in the page equals segment.report_rules (12 figures)"
ok $([[ $(wc -l <<<"$page_funnel") == 12 ]]; echo $?) "two rules, six figures each"
# report_rules = segment.review and the opportunity table
is "$(q -c "select count(*) from segment.report_rules('bank', $period) r
             join segment.review(current_date - 1, current_date + 10) v using (rule_id)
            where (r.generated, r.control, r.dispatched, r.completed, r.cancelled, r.expired, r.open, r.converted,
                   r.amount, r.treatment_evaluated, r.treatment_converted, r.control_evaluated, r.control_converted)
                  is not distinct from
                  (v.generated, v.control, v.dispatched, v.executed, v.cancelled, v.expired, v.open, v.reported_converted,
                   v.amount, v.treatment_evaluated, v.treatment_converted, v.control_evaluated, v.control_converted)
              and r.lift is not distinct from v.lift and r.lift_low is not distinct from v.lift_low
              and r.lift_high is not distinct from v.lift_high and r.p_value is not distinct from v.p_value")" 2 \
   "report_rules equals segment.review for every rule (funnel, outcomes, lift, interval, p)"
is "$(q -c "select string_agg(x, ',' order by x) from (
              select r.name || ':' || count(*) filter (where o.status in ('in_progress', 'completed')
                                                  or exists (select 1 from segment.opportunity_log l
                                                              where l.opportunity_id = o.opportunity_id
                                                                and l.to_status = 'in_progress')) as x
                from segment.opportunity o join segment.opportunity_rule r using (rule_id)
               where not o.is_control and o.period between current_date - 1 and current_date + 10 group by r.name) s")" \
   "$(q -c "select string_agg(rule || ':' || started, ',' order by rule || ':' || started) from segment.report_rules('bank', $period)")" \
   "started per rule equals the transition log"
started_total=$(q -c "select sum(started) from segment.report_rules('bank', $period)")
ok $(( started_total > 0 ? 0 : 1 )) "some opportunities were started ($started_total)"
# forest plot: the lifts in the page are report_rules's
is "$(grep -Eo 'data-rule="[^"]*" data-lift="[^"]*"' "$work/all.html" | sed -E 's/data-rule="([^"]*)" data-lift="([^"]*)"/\1|\2/' | sort)" \
   "$(q -c "select rule || '|' || round(lift::numeric, 6) from segment.report_rules('bank', $period) where lift is not null" | sort)" \
   "forest plot lifts equal segment.report_rules"
# transitions = segment.transitions for each scheme
is "$(q -c "select count(*) from (
              select scheme, from_bucket, to_bucket, customers from segment.report_transitions('bank', $period)
              except
              select t.scheme, x.* from (select distinct scheme, from_as_of, to_as_of
                                           from segment.report_transitions('bank', $period)) t,
                                   segment.transitions('bank', t.scheme, t.from_as_of, t.to_as_of) x) d")" 0 \
   "report_transitions equals segment.transitions (report minus transitions)"
is "$(q -c "select count(*) from (
              select t.scheme, x.* from (select distinct scheme, from_as_of, to_as_of
                                           from segment.report_transitions('bank', $period)) t,
                                   segment.transitions('bank', t.scheme, t.from_as_of, t.to_as_of) x
              except
              select scheme, from_bucket, to_bucket, customers from segment.report_transitions('bank', $period)) d")" 0 \
   "report_transitions equals segment.transitions (transitions minus report)"
is "$(q -c "select count(distinct scheme) || ' ' || min(from_as_of) || ' ' || min(to_as_of) from segment.report_transitions('bank', $period)")" \
   "2 $(q -c "select current_date || ' ' || current_date + 1")" "both schemes, from the first day to the second"
page_cells=$(grep -Eo 'data-from="[^"]*" data-to="[^"]*" data-value="[0-9]+"' "$work/all.html" | wc -l)
is "$page_cells" "$(q -c "select count(*) from segment.report_transitions('bank', $period)")" "one heatmap cell per transition"
# tags: the last size of each tag = size_history on the last day
is "$(grep -Eo 'data-tag="[^"]*" data-last="[0-9]+"' "$work/all.html" | sed -E 's/data-tag="([^"]*)" data-last="([0-9]+)"/\1|\2/' | sort)" \
   "$(q -c "select name || '|' || members from segment.size_history where subject = 'bank' and kind = 'tag'
              and as_of = current_date + 1" | sort)" "tag trend panels end at segment.size_history's sizes"
# funnel: buckets = bucket_of counts today
is "$(grep -Eo 'data-bucket="[^"]*" data-value="[0-9]+"' "$work/all.html" | sed -E 's/data-bucket="([^"]*)" data-value="([0-9]+)"/\1|\2/' | sort)" \
   "$(q -c "select b.name || '|' || count(c.id) from segment.scheme_bucket b
              left join bank.customer c on segment.bucket_of('bank', c.id, (select name from segment.scheme s where s.scheme_id = b.scheme_id)) = b.name
             group by b.scheme_id, b.name" | sort)" "scheme funnels equal segment.bucket_of over the customers"
# manager league
is "$(grep -Eo 'data-manager="[^"]*" data-converted="[0-9]+" data-amount="[0-9.]+"' "$work/all.html" |
      sed -E 's/data-manager="([^"]*)" data-converted="([0-9]+)" data-amount="([0-9.]+)"/\1|\2|\3/' | sed 's/&lt;/</g; s/&gt;/>/g' | sort)" \
   "$(q -c "select manager || '|' || count(*) filter (where converted) || '|' || coalesce(sum(amount) filter (where converted), 0)
              from segment.opportunity where not is_control and manager is not null and period between current_date - 1 and current_date + 10
             group by manager" | sort)" "manager league equals SQL over segment.opportunity"
# runs
is "$(grep -Eo 'data-kind="[a-z]+" data-run="[0-9]+"' "$work/all.html" | wc -l)" \
   "$(q -c "select count(*) from segment.report_runs('bank', $period)")" "one bar per run of segment.report_runs"
is "$(q -c "select string_agg(kind, ',' order by kind) from (select distinct kind from segment.report_runs('bank', $period)) k")" \
   "nightly,refresh" "runs: refreshes and the nightly run"

# --- scope -----------------------------------------------------------------------
north_total=$(q -c "select count(*) from segment.opportunity where org_unit = 'north' and period between current_date - 1 and current_date + 10")
is "$(fig north opportunities)" "$north_total" "scoped to north: opportunity total equals SQL filtered by org unit ($north_total)"
ok $(( north_total > 0 && north_total < total ? 0 : 1 )) "scoped total is smaller than the whole ($north_total < $total)"
is "$(fig north customers)" "$(q -c "select count(*) from bank.customer where branch = 'north'")" "scoped customers are the unit's"
is "$(fig south opportunities)" "$(q -c "select count(*) from segment.opportunity where org_unit = '华南<&\"支行>' and period between current_date - 1 and current_date + 10")" \
   "scoped to the other unit: its opportunity total"
is "$(( $(fig north opportunities) + $(fig south opportunities) ))" "$total" "the two units add up to the whole"
is "$(grep -Eo 'data-manager="[^"]*"' "$work/north.html" | sort | tr '\n' ' ')" 'data-manager="m0" data-manager="m1" ' \
   "scoped league shows the unit's managers only"
is "$(q -c "select sum(customers) from segment.report_transitions('bank', $period, 'north') where scheme = 'aipl'")" \
   "$(q -c "select count(*) from bank.customer where branch = 'north'")" "scoped transitions cover the unit's customers"
is "$(q -c "select string_agg(tag || ':' || members, ',' order by tag) from segment.report_tag_trend('bank', $period, 'north')")" \
   "$(q -c "select string_agg(t || ':' || n, ',' order by t) from (
              select t, count(*) filter (where segment.has_tag('bank', id, t::name)) as n
                from bank.customer, unnest(array['high_value', 'stage_late', '到期提醒']) t
               where branch = 'north' group by t) x")" "scoped tag sizes equal has_tag over the unit's customers"

# --- errors and privileges ---------------------------------------------------------
is "$(state "select segment.report('nope', current_date, current_date)")" 42704 "unknown subject: 42704"
is "$(state "select segment.report('bank', current_date, current_date - 1)")" 22023 "from_date after to_date: 22023"
is "$(state "select segment.report('bank', null, current_date)")" 22004 "NULL date: 22004"
is "$(state "select segment.report('bank', current_date, 'infinity')")" 22023 "infinite date: 22023"
q -c "create table nob (id int primary key)" -c "select segment.register_subject('nob', 'nob', 'id')" >/dev/null
is "$(state "select segment.report('nob', current_date, current_date, 'x')")" 55000 "org_unit on a subject without org column: 55000"
is "$(state "select segment.report_rules('nob', current_date, current_date - 1)")" 22023 "report_rules checks its period too"
q -c "select segment.report('nob', current_date, current_date)" > "$work/empty.html"
ok $? "a subject with nothing refreshed still gets a page"
is "$(python3 "$work/parse.py" "$work/empty.html" >/dev/null 2>&1; echo $?) $(grep -o 'class="chart empty"' "$work/empty.html" | wc -l)" "0 7" \
   "the empty page parses and says there is nothing to draw"
q -c "create role seg_report_reader login password 'seg_report_pw'" -c "select segment.grant_role('seg_report_reader', 'reader')" >/dev/null
out=$(PGPASSWORD=seg_report_pw psql -X -q -At -U seg_report_reader -d "$db" -c "select length(segment.report('bank', $period)) > 1000" 2>&1)
is "$out" "t" "a reader (grant_role) makes the report"
out=$(PGPASSWORD=seg_report_pw psql -X -q -At -U seg_report_reader -d "$db" -c "select segment.report('bank', $period, 'north')" 2>&1)
grep -q "permission denied" <<<"$out"; ok $? "a scoped report reads the subject's table: a reader needs SELECT on it"

# --- a real browser -------------------------------------------------------------------
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z $browser ]]; then
    n=$((n + 1)); echo "ok $n # SKIP chromium is not installed (make deps installs it)"
else
    cp "$work/all.html" "$work/report.html"
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,3000 \
        --screenshot="$work/report.png" "file://$work/report.html" >/dev/null 2>&1
    ok $? "chromium renders the page to a PNG"
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --dump-dom "file://$work/report.html" \
        > "$work/dom.html" 2>/dev/null
    ok $? "chromium dumps the DOM"
    is "$(grep -o '<svg' "$work/dom.html" | wc -l)" "$svgs" "the rendered DOM holds every SVG chart"
    ok $(( $(grep -o '<rect' "$work/dom.html" | wc -l) >= 40 ? 0 : 1 )) "the rendered DOM holds the bars and cells"
    # decode the PNG (zlib, no PIL): distinct colours and the share of pixels
    # that are not the page background
    cat > "$work/png.py" <<'PY'
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat = 8, b''
while pos < len(data):
    length, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b'IHDR':
        w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT':
        idat += body
    pos += 12 + length
assert depth == 8 and ctype in (2, 6), 'unsupported PNG %d/%d' % (depth, ctype)
bpp = 4 if ctype == 6 else 3
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colours, background, total = set(), {}, 0
i = 0
for y in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    if y % 3 == 0:
        for x in range(0, w, 3):
            px = bytes(line[x * bpp:x * bpp + 3])
            colours.add(px); background[px] = background.get(px, 0) + 1; total += 1
top = max(background.values())
print(len(colours), round(100.0 * (total - top) / total, 1))
PY
    read -r colours inked < <(python3 "$work/png.py" "$work/report.png" 2>&1)
    ok $(( ${colours:-0} >= 50 ? 0 : 1 )) "the screenshot is not blank: $colours distinct colours"
    ok $(awk -v p="${inked:-0}" 'BEGIN { exit !(p >= 10) }'; echo $?) "the screenshot is not blank: $inked% of it is not background"
    [[ -n ${SEGMENT_REPORT_PNG:-} ]] && cp "$work/report.png" "$SEGMENT_REPORT_PNG"
fi

echo "1..$n"
exit $fail
