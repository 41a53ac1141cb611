-- Part 84 (sql/install/84-generate.sql): generate() makes the
-- opportunities of one rule (NULL: every active rule) for a day: candidates
-- are the rule's audience, minus customers in cool-down, minus those at the
-- contact cap; a holdout share becomes control; it is idempotent for a day;
-- render() shows a rule's message for one customer. Bad inputs fail with
-- their SQLSTATE and make nothing.
\i test/fixtures/regress.psql

CREATE TABLE gn_cust (id int8 PRIMARY KEY, bal numeric, name text);
INSERT INTO gn_cust SELECT g, g * 10, 'Name' || g FROM generate_series(1, 100) g;
SELECT segment.register_subject('gn', 'gn_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('gn', 'gn_rich', 'bal >= 500') IS NOT NULL AS created;
SELECT segment.create_tag('gn', 'gn_odd', 'id % 2 = 1') IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('gn', '2026-07-01');
SELECT segment.create_opportunity_rule('gn', 'gn_a', 'gn_rich', 'mining', 'a', assignment => 'pool', priority => 20,
                                       cooldown_days => 7, holdout_pct => 10,
                                       template => 'Dear {name}, balance {bal}') IS NOT NULL AS created;
SELECT segment.create_opportunity_rule('gn', 'gn_b', 'gn_odd', 'mining', 'b', assignment => 'pool', priority => 10,
                                       cooldown_days => 0) IS NOT NULL AS created;

-- every rule for a day: gn_a 51 candidates (ids 50..100), gn_b 50
SELECT rule_name, candidates, generated + control AS made,
       skipped_cooldown, skipped_cap, over_capacity, failed
  FROM segment.generate(NULL, '2026-07-01') ORDER BY rule_name;
-- again for the same day: nothing new
SELECT rule_name, generated + control AS made FROM segment.generate(NULL, '2026-07-01') ORDER BY rule_name;
-- the next day: gn_a in cool-down (7 days), gn_b not (0 days)
SELECT rule_name, generated + control AS made, skipped_cooldown FROM segment.generate(NULL, '2026-07-02') ORDER BY rule_name;
-- a contact cap of 2 in 30 days: on day 3 every odd customer already has 2
-- (gn_b on days 1 and 2), so gn_b makes nothing
SELECT segment.set_contact_policy('gn', 2, 30);
SELECT rule_name, generated + control AS made, skipped_cap FROM segment.generate(NULL, '2026-07-03') ORDER BY rule_name;
-- the controls of day 1 are the ones the generation log counts
SELECT count(*) FILTER (WHERE is_control) = (SELECT control FROM segment.generation g JOIN segment.opportunity_rule r
                                               USING (rule_id) WHERE r.name = 'gn_a' AND g.period = '2026-07-01'
                                              ORDER BY generation_id LIMIT 1) AS controls_logged
  FROM segment.opportunity o JOIN segment.opportunity_rule r USING (rule_id)
 WHERE r.name = 'gn_a' AND o.period = '2026-07-01';

-- one rule only; an inactive rule makes nothing
SELECT segment.alter_opportunity_rule('gn_b', active => false);
SELECT regress.err($$SELECT * FROM segment.generate('gn_b', '2026-07-04')$$) AS inactive_rule;
SELECT rule_name FROM segment.generate(NULL, '2026-07-04') ORDER BY 1;

-- render
SELECT segment.render('gn_a', '7') AS message;
SELECT segment.render('gn_b', '7') IS NULL AS no_template_no_message;

-- bad inputs: nothing is made
SELECT regress.err($$SELECT * FROM segment.generate('no_such_rule', '2026-07-05')$$) AS unknown_rule;
SELECT regress.err($$SELECT segment.render('no_such_rule', '7')$$) AS render_unknown_rule;
SELECT count(*) AS made_on_07_05 FROM segment.opportunity WHERE period = '2026-07-05';

SELECT segment.drop_opportunity_rule('gn_a', "cascade" => true);
SELECT segment.drop_opportunity_rule('gn_b', "cascade" => true);
SELECT segment.unregister_subject('gn');
DROP TABLE gn_cust;
