-- Part 80 (sql/install/80-opportunities.sql): the tables of opportunity
-- rules, opportunities, their log and the generation log. The part has no
-- functions; its contract is what the tables accept and keep: one
-- opportunity per rule, customer and period; statuses and assignments from
-- fixed lists; a log row per status change; no foreign keys on opportunity
-- (the functions delete a rule's or a subject's opportunities).
\i test/fixtures/regress.psql

CREATE TABLE op_cust (id int8 PRIMARY KEY, bal numeric);
INSERT INTO op_cust SELECT g, g FROM generate_series(1, 10) g;
SELECT segment.register_subject('op', 'op_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('op', 'op_all', 'bal > 0') IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('op');
SELECT segment.create_opportunity_rule('op', 'op_rule', 'op_all', 'mining', 'fund', assignment => 'pool',
                                       valid_days => 5) IS NOT NULL AS created;
SELECT generated FROM segment.generate('op_rule', current_date);

-- what generate() stored
SELECT o.key, o.period = current_date AS today, o.valid_until - o.period AS days_to_act, o.is_control,
       o.assignment, o.status, o.source
  FROM segment.opportunity o JOIN segment.opportunity_rule r USING (rule_id)
 WHERE r.name = 'op_rule' AND key IN ('1', '2') ORDER BY key;
SELECT g.period = current_date AS today, g.candidates, g.generated, g.control, g.failed, g.error
  FROM segment.generation g JOIN segment.opportunity_rule r USING (rule_id) WHERE r.name = 'op_rule';

-- the constraints
SELECT regress.err($$INSERT INTO segment.opportunity (rule_id, rule_version, subject_id, member_id, key, period,
                                                      valid_until, is_control, assignment)
                     SELECT rule_id, 1, subject_id, 1, '1', current_date, current_date + 4, false, 'pool'
                       FROM segment.opportunity_rule WHERE name = 'op_rule'$$) AS same_rule_member_period;
SELECT regress.err($$UPDATE segment.opportunity SET status = 'lost' WHERE key = '1' AND rule_id = (SELECT rule_id FROM segment.opportunity_rule WHERE name = 'op_rule')$$) AS unknown_status;
SELECT regress.err($$UPDATE segment.opportunity SET assignment = 'nobody' WHERE key = '1' AND rule_id = (SELECT rule_id FROM segment.opportunity_rule WHERE name = 'op_rule')$$) AS unknown_assignment;

-- a status change is logged
SELECT segment.opportunity_dispatch(opportunity_id) FROM segment.opportunity WHERE key = '1' AND rule_id = (SELECT rule_id FROM segment.opportunity_rule WHERE name = 'op_rule');
SELECT l.from_status, l.to_status FROM segment.opportunity_log l JOIN segment.opportunity o USING (opportunity_id)
 WHERE o.key = '1' AND o.rule_id = (SELECT rule_id FROM segment.opportunity_rule WHERE name = 'op_rule');

-- dropping the rule (cascade) deletes its opportunities and generation log
SELECT segment.drop_opportunity_rule('op_rule', "cascade" => true);
SELECT (SELECT count(*) FROM segment.opportunity o JOIN segment.subject s USING (subject_id) WHERE s.name = 'op') AS opportunities,
       (SELECT count(*) FROM segment.opportunity_rule WHERE name = 'op_rule') AS rules;
SELECT segment.unregister_subject('op');
DROP TABLE op_cust;
