-- Part 85 (sql/install/85-events.sql): opportunity rules that fire on an
-- event (attach_event_rule: an insert into an event table whose condition
-- holds makes the customer's opportunity in the same transaction) or on
-- entry into an audience (fire_on_entry: the customers a refresh moves into
-- the audience get theirs). Cool-down holds for events too; unknown keys are
-- counted, not fatal; the guards keep event tables and rules consistent;
-- bad inputs fail with their SQLSTATE and change nothing.
\i test/fixtures/regress.psql

CREATE TABLE ev_cust (id int8 PRIMARY KEY, bal numeric);
INSERT INTO ev_cust SELECT g, g * 10 FROM generate_series(1, 20) g;
SELECT segment.register_subject('ev', 'ev_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('ev', 'ev_all', 'bal > 0') IS NOT NULL AS created;
SELECT segment.create_tag('ev', 'ev_rich', 'bal >= 150') IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('ev', '2026-08-01');
SELECT segment.create_opportunity_rule('ev', 'ev_loan', 'ev_all', 'mining', 'loan', assignment => 'pool',
                                       cooldown_days => 30) IS NOT NULL AS created;
SELECT segment.create_opportunity_rule('ev', 'ev_welcome', 'ev_all', 'mining', 'welcome', assignment => 'pool',
                                       cooldown_days => 30) IS NOT NULL AS created;
CREATE TABLE ev_app (app_id serial PRIMARY KEY, cust_id int8 NOT NULL, status text NOT NULL);

CREATE FUNCTION pg_temp.ev_opps(rule name) RETURNS TABLE (key text, source text) LANGUAGE sql AS $$
    SELECT o.key, o.source FROM segment.opportunity o JOIN segment.opportunity_rule r USING (rule_id)
     WHERE r.name = ev_opps.rule ORDER BY o.member_id
$$;

-- an event rule: only events whose condition holds, only known customers,
-- one opportunity per customer (cool-down)
SELECT segment.attach_event_rule('ev_loan', 'ev_app', 'cust_id', 'status = ''failed''');
INSERT INTO ev_app (cust_id, status) VALUES (3, 'failed'), (4, 'approved'), (3, 'failed'), (999, 'failed');
INSERT INTO ev_app (cust_id, status) VALUES (5, 'failed');
SELECT key, source IS NOT NULL AS has_source FROM pg_temp.ev_opps('ev_loan');
SELECT sum(unknown) AS unknown_keys FROM segment.event_skip s JOIN segment.opportunity_rule r USING (rule_id)
 WHERE r.name = 'ev_loan';
-- rolled back with the event
BEGIN;
INSERT INTO ev_app (cust_id, status) VALUES (6, 'failed');
ROLLBACK;
SELECT count(*) AS after_rollback FROM pg_temp.ev_opps('ev_loan');

-- bad inputs and guards; the rule still fires afterwards
SELECT regress.err($$SELECT segment.attach_event_rule('ev_loan', 'ev_app', 'cust_id')$$) AS attached_twice;
SELECT regress.err($$SELECT segment.attach_event_rule('ev_welcome', 'ev_app', 'no_such')$$) AS unknown_column;
SELECT regress.err($$SELECT segment.attach_event_rule('ev_welcome', 'ev_app', 'status')$$) AS key_type;
SELECT regress.err($$SELECT segment.attach_event_rule('ev_welcome', 'ev_app', 'cust_id', '')$$) AS empty_condition;
SELECT regress.err($$SELECT segment.attach_event_rule('ev_welcome', 'ev_app', 'cust_id', 'nope = 1')$$) AS bad_condition;
SELECT regress.err($$SELECT segment.attach_event_rule('no_such_rule', 'ev_app', 'cust_id')$$) AS unknown_rule;
SELECT regress.err($$SELECT segment.attach_event_rule(NULL, 'ev_app', 'cust_id')$$) AS null_rule;
SELECT regress.err($$SELECT segment.detach_event_rule('ev_welcome', 'ev_app')$$) AS detach_not_attached;
SELECT regress.err($$ALTER TABLE ev_app DROP COLUMN status$$) AS drop_condition_column;
SELECT regress.err($$ALTER TABLE ev_app DROP COLUMN cust_id$$) AS drop_key_column;
SELECT regress.err($$DROP TABLE ev_app$$) AS drop_event_table;
SELECT regress.err($$SELECT segment.drop_opportunity_rule('ev_loan')$$) AS drop_rule_with_opportunities;
INSERT INTO ev_app (cust_id, status) VALUES (7, 'failed');
SELECT key FROM pg_temp.ev_opps('ev_loan');
SELECT segment.detach_event_rule('ev_loan', 'ev_app');
INSERT INTO ev_app (cust_id, status) VALUES (8, 'failed');
SELECT count(*) AS after_detach FROM pg_temp.ev_opps('ev_loan');

-- fire on entry: customers a refresh moves into ev_rich
SELECT segment.attach_entry_rule('ev_welcome', 'ev_rich');
UPDATE ev_cust SET bal = 1000 WHERE id IN (1, 2);
SELECT tag, entered FROM segment.refresh('ev', '2026-08-02') WHERE tag = 'ev_rich';
SELECT key FROM pg_temp.ev_opps('ev_welcome');
SELECT regress.err($$SELECT segment.attach_entry_rule('ev_welcome', 'ev_rich')$$) AS fires_twice;
SELECT regress.err($$SELECT segment.attach_entry_rule('ev_welcome', '')$$) AS empty_audience;
SELECT regress.err($$SELECT segment.attach_entry_rule('ev_welcome', 'no_such_tag')$$) AS unknown_audience;
SELECT regress.err($$SELECT segment.detach_entry_rule('ev_welcome', 'ev_all')$$) AS stop_not_firing;
SELECT regress.err($$SELECT segment.drop_opportunity_rule('ev_welcome')$$) AS drop_rule_with_opportunities;
SELECT segment.detach_entry_rule('ev_welcome', 'ev_rich');
UPDATE ev_cust SET bal = 1000 WHERE id = 9;
SELECT tag, entered FROM segment.refresh('ev', '2026-08-03') WHERE tag = 'ev_rich';
SELECT key FROM pg_temp.ev_opps('ev_welcome');

SELECT segment.drop_opportunity_rule('ev_loan', "cascade" => true);
SELECT segment.drop_opportunity_rule('ev_welcome', "cascade" => true);
SELECT segment.unregister_subject('ev');
DROP TABLE ev_cust, ev_app;
