-- Part 81 (sql/install/81-opportunity-rules.sql): staff, contact policy,
-- masking and the definition of opportunity rules. create/alter/drop keep a
-- versioned history; alter with NULL keeps a value; bad inputs fail with
-- their SQLSTATE and change nothing.
\i test/fixtures/regress.psql

CREATE TABLE or_cust (id int8 PRIMARY KEY, bal numeric, owner text, org text, phone text);
INSERT INTO or_cust SELECT g, g * 10, 'm' || (g % 2), 'o1', '1380000' || lpad(g::text, 4, '0') FROM generate_series(1, 10) g;
CREATE TABLE or_staff (mid text PRIMARY KEY, org text, cap int, active boolean);
INSERT INTO or_staff VALUES ('m0', 'o1', 3, true), ('m1', 'o1', 3, true);
SELECT segment.register_subject('orl', 'or_cust', 'id', org_column => 'org', owner_column => 'owner') IS NOT NULL AS registered;
SELECT segment.create_tag('orl', 'or_rich', 'bal >= 50') IS NOT NULL AS created;

-- staff and contact policy
SELECT segment.register_staff('orl', 'or_staff', 'mid', 'org', 'cap', 'active');
SELECT segment.set_contact_policy('orl', 2, 14);
SELECT max_contacts, period_days FROM segment.contact_policy p JOIN segment.subject s USING (subject_id) WHERE s.name = 'orl';
SELECT regress.err($$SELECT segment.register_staff('orl', 'or_staff', 'no_such', 'org')$$) AS staff_bad_column;
SELECT regress.err($$SELECT segment.set_contact_policy('orl', -1, 14)$$) AS negative_cap;
SELECT regress.err($$SELECT segment.set_contact_policy('orl', 1, 0)$$) AS zero_days;

-- mask
SELECT segment.mask('13812345678') AS phone, segment.mask('alice@example.com') AS email,
       segment.mask('Alice') AS name, segment.mask(NULL) IS NULL AS null_in_null_out;

-- create, read back, alter, history
SELECT segment.create_opportunity_rule('orl', 'or_fund', 'or_rich', 'mining', 'fund', priority => 5,
                                       template => 'Call {id}', valid_days => 3, cooldown_days => 10,
                                       holdout_pct => 20, goal => 'bal >= 100') IS NOT NULL AS created;
SELECT name, audience, kind, product, channel, priority, template, valid_days, cooldown_days, holdout_pct,
       goal, assignment, active, version
  FROM segment.opportunity_rule WHERE name = 'or_fund';
SELECT segment.render('or_fund', '7') AS message;
SELECT segment.alter_opportunity_rule('or_fund', priority => 9, template => '');
SELECT priority, template, valid_days, version FROM segment.opportunity_rule WHERE name = 'or_fund';
SELECT segment.alter_opportunity_rule('or_fund', active => false);
SELECT active, version FROM segment.opportunity_rule WHERE name = 'or_fund';
SELECT h.version, h.action FROM segment.opportunity_rule_history h
 WHERE h.name = 'or_fund' ORDER BY h.history_id;

-- bad inputs, then nothing changed
SELECT regress.err($$SELECT segment.create_opportunity_rule('orl', 'or_fund', 'or_rich', 'mining', 'x')$$) AS duplicate;
SELECT regress.err($$SELECT segment.create_opportunity_rule('orl', 'or_x', 'no_such_tag', 'mining', 'x')$$) AS bad_audience;
SELECT regress.err($$SELECT segment.create_opportunity_rule('orl', 'or_x', 'or_rich', 'no_such_kind', 'x')$$) AS bad_kind;
SELECT regress.err($$SELECT segment.create_opportunity_rule('orl', 'or_x', 'or_rich', 'mining', 'x', holdout_pct => 150)$$) AS bad_holdout;
SELECT regress.err($$SELECT segment.create_opportunity_rule('orl', 'or_x', 'or_rich', 'mining', 'x', valid_days => 0)$$) AS bad_valid_days;
SELECT regress.err($$SELECT segment.create_opportunity_rule('orl', 'or_x', 'or_rich', 'mining', 'x', template => 'Hi {nope}')$$) AS bad_template;
SELECT regress.err($$SELECT segment.create_opportunity_rule('orl', 'or_x', 'or_rich', 'mining', 'x', goal => 'nope > 1')$$) AS bad_goal;
SELECT regress.err($$SELECT segment.create_opportunity_rule('orl', 'or_x', 'or_rich', 'mining', 'x', assignment => 'random')$$) AS bad_assignment;
SELECT regress.err($$SELECT segment.alter_opportunity_rule('no_such_rule', priority => 1)$$) AS alter_unknown;
SELECT regress.err($$SELECT segment.drop_opportunity_rule('no_such_rule')$$) AS drop_unknown;
SELECT count(*) AS rules, max(version) AS version FROM segment.opportunity_rule r
  JOIN segment.subject s USING (subject_id) WHERE s.name = 'orl';

SELECT segment.drop_opportunity_rule('or_fund');
SELECT action FROM segment.opportunity_rule_history WHERE name = 'or_fund' ORDER BY history_id DESC LIMIT 1;
SELECT segment.unregister_subject('orl');
DROP TABLE or_cust, or_staff;
