-- Part 88 (sql/install/88-report.sql): the report of a subject over a
-- period: summary per refreshed day, tag trend, scheme funnel and
-- transitions, rules (funnel and lift against control), managers, runs, and
-- segment.report(), one self-contained HTML page of all of them. An org
-- unit scopes every part to its customers. Bad periods and scopes fail with
-- their SQLSTATE.
\i test/fixtures/regress.psql

CREATE TABLE rp_cust (id int8 PRIMARY KEY, bal numeric, owner text, org text);
INSERT INTO rp_cust SELECT g, g * 10, 'm' || (g % 2), 'o' || (g % 2) FROM generate_series(1, 20) g;
CREATE TABLE rp_staff (mid text PRIMARY KEY, org text);
INSERT INTO rp_staff VALUES ('m0', 'o0'), ('m1', 'o1');
CREATE TABLE rp_plain (id int8 PRIMARY KEY);
INSERT INTO rp_plain VALUES (1);
SELECT segment.register_subject('rp', 'rp_cust', 'id', org_column => 'org', owner_column => 'owner') IS NOT NULL AS registered;
SELECT segment.register_subject('rp_noorg', 'rp_plain', 'id') IS NOT NULL AS registered;
SELECT segment.register_staff('rp', 'rp_staff', 'mid', 'org');
SELECT segment.create_tag('rp', 'rp_rich', 'bal >= 100', category => 'value') IS NOT NULL AS created;
SELECT segment.create_scheme('rp', 'rp_tier', ARRAY[['top', 'bal >= 150'], ['rest', 'true']]) IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('rp', '2026-09-01');
UPDATE rp_cust SET bal = 1000 WHERE id IN (1, 2);
SELECT count(*) FROM segment.refresh('rp', '2026-09-02');
SELECT segment.create_opportunity_rule('rp', 'rp_rule', 'rp_rich', 'mining', 'fund', valid_days => 3660) IS NOT NULL AS created;
SELECT generated + control AS made FROM segment.generate('rp_rule', '2026-09-02');
SELECT segment.opportunity_dispatch(opportunity_id) FROM segment.opportunity o JOIN segment.opportunity_rule r USING (rule_id)
 WHERE r.name = 'rp_rule' AND o.key IN ('1', '2') AND NOT o.is_control ORDER BY o.member_id;

SELECT as_of, customers, opportunities, treatment + control AS made, dispatched, completed
  FROM segment.report_summary('rp', '2026-09-01', '2026-09-30') ORDER BY as_of;
SELECT tag, category, as_of, members FROM segment.report_tag_trend('rp', '2026-09-01', '2026-09-30') ORDER BY as_of, tag;
SELECT scheme, "position", bucket, customers FROM segment.report_funnel('rp', '2026-09-01', '2026-09-30') ORDER BY 2;
SELECT scheme, from_as_of, to_as_of, from_bucket, to_bucket, customers
  FROM segment.report_transitions('rp', '2026-09-01', '2026-09-30') ORDER BY from_position, to_position;
SELECT rule, kind, generated + control AS made, dispatched, open
  FROM segment.report_rules('rp', '2026-09-01', '2026-09-30');
SELECT manager, assigned, dispatched FROM segment.report_managers('rp', '2026-09-01', '2026-09-30') ORDER BY manager;
SELECT kind, as_of FROM segment.report_runs('rp', '2026-09-01', '2026-09-30') ORDER BY as_of, kind;

-- scoped to org unit o1: its customers only
SELECT as_of, customers FROM segment.report_summary('rp', '2026-09-01', '2026-09-30', 'o1') ORDER BY as_of;
SELECT manager, assigned FROM segment.report_managers('rp', '2026-09-01', '2026-09-30', 'o1') ORDER BY manager;

-- with the bank's org tree loaded, a unit covers its subtree: hq (o0 and o1
-- below it) is the whole bank, o1 still its own customers, an unknown unit
-- itself only
CREATE TABLE rp_org (id text PRIMARY KEY, parent text);
INSERT INTO rp_org VALUES ('hq', NULL), ('o0', 'hq'), ('o1', 'hq');
SELECT segment.register_org_tree('rp_org', 'id', 'parent') AS units;
SELECT as_of, customers FROM segment.report_summary('rp', '2026-09-01', '2026-09-30', 'hq') ORDER BY as_of;
SELECT as_of, customers FROM segment.report_summary('rp', '2026-09-01', '2026-09-30', 'o1') ORDER BY as_of;
SELECT as_of, customers FROM segment.report_summary('rp', '2026-09-01', '2026-09-30', 'nowhere') ORDER BY as_of;
SELECT manager, assigned FROM segment.report_managers('rp', '2026-09-01', '2026-09-30', 'hq') ORDER BY manager;
DELETE FROM segment.org_unit;
DELETE FROM segment.org_tree;

-- the HTML page: one document, every section, nothing fetched from elsewhere
SELECT left(h, 15) AS starts, h LIKE '%</html>%' AS ends, h LIKE '%<svg%' AS has_charts,
       h LIKE '%rp_rich%' AS names_tag, h LIKE '%rp_rule%' AS names_rule,
       h !~ '(src|href)="https?:' AS self_contained
  FROM segment.report('rp', '2026-09-01', '2026-09-30') h;

-- bad inputs
SELECT regress.err($$SELECT * FROM segment.report_summary('rp', NULL, '2026-09-30')$$) AS null_date;
SELECT regress.err($$SELECT * FROM segment.report_summary('rp', '2026-09-30', '2026-09-01')$$) AS reversed;
SELECT regress.err($$SELECT * FROM segment.report_summary('rp', '-infinity', '2026-09-01')$$) AS infinite;
-- with its hint, as refresh and generate give theirs
SELECT segment.report('rp', '2026-09-01', 'infinity');
SELECT regress.err($$SELECT * FROM segment.report_summary('no_such', '2026-09-01', '2026-09-30')$$) AS unknown_subject;
SELECT regress.err($$SELECT * FROM segment.report_summary('rp_noorg', '2026-09-01', '2026-09-30', 'o1')$$) AS no_org_column;
SELECT regress.err($$SELECT segment.report('rp', '2026-09-30', '2026-09-01')$$) AS report_reversed;

SELECT segment.drop_opportunity_rule('rp_rule', "cascade" => true);
SELECT segment.unregister_subject('rp');
SELECT segment.unregister_subject('rp_noorg');
DROP TABLE rp_cust, rp_staff, rp_plain, rp_org;
