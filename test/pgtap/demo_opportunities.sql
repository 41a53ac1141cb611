-- demo_opportunities.sql: the demo's opportunity set-up
-- (test/data/opportunities.sql) loads on a small synthetic bank and
-- generates coherent results: every rule is valid and renders, generate()'s
-- counts add up and match what it stored, the contact cap and the managers'
-- capacities hold, a rerun makes nothing, and every goal evaluates.
-- Runs in a transaction that is rolled back.
\set QUIET on
\set ON_ERROR_STOP on
SET client_min_messages = warning;
BEGIN;
-- generate() disables merge and nested-loop joins for its org-unit
-- assignment, which pushes plan costs over jit_above_cost: JIT would take
-- ~0.5 s per rule. Off here until generate() turns it off itself.
SET LOCAL jit = off;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS segment;
\ir ../data/bank.sql
SELECT dw.generate_bank(5000, '2026-11-22', 0.42) \g /dev/null
\o /dev/null
\ir ../data/tags.sql
\ir ../data/segmentation.sql
\ir ../data/opportunities.sql
SELECT * FROM segment.refresh('customer', '2026-11-22');
\o

SELECT plan(22);

-- the set-up
SELECT cmp_ok((SELECT count(*)::int FROM segment.opportunity_rule WHERE active), '>=', 20,
              'at least 20 active opportunity rules');
SELECT is((SELECT array_agg(DISTINCT kind ORDER BY kind) FROM segment.opportunity_rule),
          ARRAY['maintenance', 'mining'], 'maintenance and mining rules');
SELECT ok((SELECT count(*) FILTER (WHERE holdout_pct BETWEEN 10 AND 20) >= 20
                  AND count(*) FILTER (WHERE goal IS NOT NULL) >= 20
                  AND count(*) FILTER (WHERE priority_scorecard IS NOT NULL) >= 5
                  AND count(DISTINCT assignment) = 3 AND count(DISTINCT channel) >= 5
             FROM segment.opportunity_rule),
          'holdouts of 10-20 %, goals, scorecard priorities, all three assignments, five channels');
SELECT is((SELECT max_contacts || '/' || period_days FROM segment.contact_policy), '3/30',
          'contact policy: 3 per 30 days');
SELECT is((SELECT count(*) FROM dw.manager m
             JOIN dw.customer_wide c ON c.manager_id = m.manager_id
            WHERE c.sub_branch_id <> m.branch_id), 0::bigint,
          'staff org unit (dw.manager.branch_id) is the sub-branch of the manager''s customers');
SELECT is((SELECT count(*) FROM segment.tag WHERE name IN ('td_due_30d', 'td_due_15d', 'td_due_7d', 'maturing_1d')),
          4::bigint, 'one tag per maturity reminder day');

-- every template renders for a customer of its audience (or customer 1 for
-- an audience empty at this size): no placeholder left, masking applied
CREATE TEMP TABLE sample AS
SELECT r.name, coalesce((SELECT min(m) FROM segment.members('customer', r.audience) m), 1) AS key
  FROM segment.opportunity_rule r;
SELECT is((SELECT count(*) FROM sample s
            WHERE coalesce(segment.render(s.name, s.key::text), '') = ''
               OR segment.render(s.name, s.key::text) ~ '[{}]'), 0::bigint,
          'every rule''s template renders for a sample customer');
SELECT ok((SELECT segment.render('td_maturity_7d', c.customer_id::text)
                  ~ ('^Call ' || left(c.customer_name, 1) || '\*+ \(1\d\d\*{4}\d{4}\): [0-9,]+\.\d\d CNY on term deposit matures '
                     || to_char(c.td_maturity_date, 'YYYY-MM-DD'))
             FROM dw.customer_wide c WHERE c.mobile IS NOT NULL AND c.term_balance > 0 ORDER BY c.customer_id LIMIT 1),
          'masked name and mobile, amount and date formats');

-- generate
CREATE TEMP TABLE gen AS SELECT * FROM segment.generate(as_of => '2026-11-22');
SELECT is((SELECT count(*) FROM gen), (SELECT count(*) FROM segment.opportunity_rule WHERE active),
          'generate reports every active rule');
SELECT ok((SELECT sum(generated) > 500 AND sum(control) > 50 FROM gen), 'it made treatment and control opportunities');
SELECT is((SELECT array_agg(rule_name ORDER BY rule_name) FROM gen
            WHERE candidates <> generated + control + skipped_cooldown + skipped_cap + failed),
          NULL, 'per rule: candidates = generated + control + skipped_cooldown + skipped_cap + failed');
SELECT is((SELECT sum(failed) FROM gen), 0::numeric, 'no failures');
SELECT is((SELECT count(*) FROM segment.opportunity), (SELECT sum(generated + control) FROM gen)::bigint,
          'the opportunities stored are the ones reported');
SELECT is((SELECT array_agg(g.rule_name ORDER BY g.rule_name) FROM gen g
             LEFT JOIN (SELECT r.name, count(*) FILTER (WHERE NOT o.is_control) AS t,
                               count(*) FILTER (WHERE o.is_control) AS c
                          FROM segment.opportunity o JOIN segment.opportunity_rule r USING (rule_id)
                         GROUP BY r.name) o ON o.name = g.rule_name
            WHERE (coalesce(o.t, 0), coalesce(o.c, 0)) <> (g.generated, g.control)),
          NULL, 'per rule, treatment and control stored as reported');
SELECT ok((SELECT sum(skipped_cap) > 0 FROM gen), 'the contact cap skipped some candidates');
SELECT is((SELECT max(n) FROM (SELECT member_id, count(*) AS n FROM segment.opportunity
                                 WHERE period > date '2026-11-22' - 30 GROUP BY member_id) x),
          3::bigint, 'no customer gets more than 3 opportunities in the window');
SELECT is((SELECT count(*) FROM segment.opportunity o
             LEFT JOIN dw.manager m ON m.manager_id::text = o.manager
            WHERE o.manager IS NOT NULL AND (m.manager_id IS NULL OR NOT m.active)), 0::bigint,
          'opportunities go only to active managers of the staff table');
SELECT is((SELECT count(*) FROM (SELECT o.manager FROM segment.opportunity o
                                   JOIN dw.manager m ON m.manager_id::text = o.manager
                                  GROUP BY o.manager, m.daily_capacity
                                 HAVING count(*) > m.daily_capacity) x), 0::bigint,
          'no manager gets more than the daily capacity');
SELECT is((SELECT count(*) FROM segment.opportunity o
             JOIN dw.customer_wide c ON c.customer_id = o.member_id
            WHERE (o.assignment = 'owner' AND o.manager IS DISTINCT FROM c.manager_id::text)
               OR (o.assignment = 'org' AND NOT EXISTS (SELECT 1 FROM dw.manager m
                                                         WHERE m.manager_id::text = o.manager
                                                           AND m.branch_id = c.sub_branch_id))
               OR (o.assignment = 'control') <> o.is_control
               OR (o.assignment IN ('pool', 'control')) <> (o.manager IS NULL)), 0::bigint,
          'owner = the customer''s manager, org = a manager of the sub-branch, control and pool unassigned');

-- rerun
CREATE TEMP TABLE gen2 AS SELECT * FROM segment.generate(as_of => '2026-11-22');
SELECT is((SELECT sum(generated + control) FROM gen2), 0::numeric, 'a rerun for the same day creates nothing');
SELECT is((SELECT count(*) FROM segment.opportunity), (SELECT sum(generated + control) FROM gen)::bigint,
          'and stores nothing');

-- every goal evaluates once every window has closed (the longest is 21 days)
SELECT is(segment.evaluate_outcomes('2026-11-22'::date + 30), (SELECT count(*) FROM segment.opportunity),
          'every goal evaluates, for every opportunity');

SELECT * FROM finish();
ROLLBACK;
