-- Parts 13 and 92 (sql/install/13-governance-checks.sql, 92-governance.sql), the parts that do not need the
-- governance roles installed (segment.install_roles creates cluster-wide
-- roles; test/shell/governance.sh and roles.sh test it in clusters of their
-- own): the append-only, hash-chained audit log and verify_audit; the org
-- tree (register_org_tree, refresh_org_tree, org_subtree) and map_user;
-- reassign; set_column_sensitivity. Bad inputs fail with their SQLSTATE and
-- change nothing.
\i test/fixtures/regress.psql

-- the audit log is intact and cannot be rewritten
SELECT segment.verify_audit() IS NULL AS audit_intact;
SELECT regress.err($$TRUNCATE segment.audit$$) AS truncate_audit;
-- a superuser can still append a forged row; verify_audit finds it
BEGIN;
INSERT INTO segment.audit (audit_id, at, actor, action, hash) VALUES (-1, now(), current_user, 'forged', '\x00');
SELECT segment.verify_audit() = -1 AS forgery_found;
ROLLBACK;
SELECT segment.verify_audit() IS NULL AS audit_intact;

-- the org tree: units and their subtrees
CREATE TABLE gv_org (unit text PRIMARY KEY, parent text);
INSERT INTO gv_org VALUES ('hq', NULL), ('north', 'hq'), ('south', 'hq'), ('n1', 'north'), ('n2', 'north');
SELECT segment.register_org_tree('gv_org', 'unit', 'parent') AS units;
SELECT array(SELECT segment.org_subtree('north') ORDER BY 1) AS north, array(SELECT segment.org_subtree('hq') ORDER BY 1) AS hq,
       array(SELECT segment.org_subtree('no_such_unit')) AS unknown;
INSERT INTO gv_org VALUES ('s1', 'south');
SELECT segment.refresh_org_tree() AS units;
SELECT array(SELECT segment.org_subtree('south') ORDER BY 1) AS south;

-- a login mapped to a manager and a unit
CREATE ROLE regress_gv_login;
SELECT segment.map_user('regress_gv_login', 'm1', 'north');
SELECT login, manager, org_unit FROM segment.user_map WHERE login = 'regress_gv_login';

-- bad org trees and mappings, then nothing changed
CREATE TABLE gv_bad (unit text, parent text);
SELECT regress.err($$SELECT segment.register_org_tree('gv_bad', 'unit', 'parent')$$) AS empty_tree;
INSERT INTO gv_bad VALUES ('a', NULL), ('b', 'x');
SELECT regress.err($$SELECT segment.register_org_tree('gv_bad', 'unit', 'parent')$$) AS orphan;
TRUNCATE gv_bad;
INSERT INTO gv_bad VALUES ('r', NULL), ('a', 'b'), ('b', 'a');
SELECT regress.err($$SELECT segment.register_org_tree('gv_bad', 'unit', 'parent')$$) AS cycle;
TRUNCATE gv_bad;
INSERT INTO gv_bad VALUES ('r', NULL), ('r', NULL);
SELECT regress.err($$SELECT segment.register_org_tree('gv_bad', 'unit', 'parent')$$) AS duplicate_unit;
SELECT regress.err($$SELECT segment.register_org_tree('gv_org', 'unit', 'no_such')$$) AS unknown_column;
SELECT regress.err($$SELECT segment.register_org_tree(NULL, 'unit', 'parent')$$) AS null_relation;
SELECT regress.err($$SELECT segment.map_user('regress_no_such_login', 'm1', 'north')$$) AS unknown_login;
SELECT regress.err($$SELECT segment.map_user('regress_gv_login', 'm1', 'atlantis')$$) AS unknown_unit;
SELECT regress.err($$SELECT segment.map_user(NULL)$$) AS null_login;
DELETE FROM gv_org WHERE unit IN ('n1', 'n2', 'north');
SELECT regress.err($$SELECT segment.refresh_org_tree()$$) AS mapped_unit_gone;
SELECT array(SELECT segment.org_subtree('hq') ORDER BY 1) AS hq;

-- reassign an opportunity to another manager
CREATE TABLE gv_cust (id int8 PRIMARY KEY, bal numeric, phone text);
INSERT INTO gv_cust SELECT g, g, '1380000000' || g FROM generate_series(1, 5) g;
SELECT segment.register_subject('gv', 'gv_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('gv', 'gv_all', 'bal > 0') IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('gv', '2026-10-01');
SELECT segment.create_opportunity_rule('gv', 'gv_rule', 'gv_all', 'mining', 'x', assignment => 'pool',
                                       valid_days => 3660) IS NOT NULL AS created;
SELECT generated FROM segment.generate('gv_rule', '2026-10-01');
SELECT o.opportunity_id AS gv1 FROM segment.opportunity o JOIN segment.opportunity_rule r USING (rule_id)
 WHERE r.name = 'gv_rule' AND o.key = '1' \gset
SELECT segment.opportunity_reassign(:gv1, 'm2');
SELECT manager FROM segment.opportunity WHERE opportunity_id = :gv1;
SELECT regress.err(format('SELECT segment.opportunity_reassign(%s, %L)', :gv1, '')) AS empty_manager;
SELECT regress.err('SELECT segment.opportunity_reassign(-1, ''m2'')') AS unknown_opportunity;

-- column sensitivity
SELECT segment.set_column_sensitivity('gv', 'phone', 'pii');
SELECT c.column_name, c.sensitivity FROM segment.column_sensitivity c JOIN segment.subject s USING (subject_id)
 WHERE s.name = 'gv';
SELECT segment.set_column_sensitivity('gv', 'phone', NULL);
SELECT count(*) AS marked FROM segment.column_sensitivity c JOIN segment.subject s USING (subject_id) WHERE s.name = 'gv';
SELECT regress.err($$SELECT segment.set_column_sensitivity('gv', 'phone', 'secret')$$) AS unknown_sensitivity;
SELECT regress.err($$SELECT segment.set_column_sensitivity('gv', 'no_such', 'pii')$$) AS unknown_column;
SELECT regress.err($$SELECT segment.set_column_sensitivity('no_such', 'phone', 'pii')$$) AS unknown_subject;

SELECT segment.verify_audit() IS NULL AS audit_intact;
SELECT segment.drop_opportunity_rule('gv_rule', "cascade" => true);
SELECT segment.unregister_subject('gv');
DELETE FROM segment.user_map WHERE login = 'regress_gv_login';
DROP ROLE regress_gv_login;
DROP TABLE gv_cust, gv_bad, gv_org;
