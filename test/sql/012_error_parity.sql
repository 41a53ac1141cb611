--
-- Error parity (issue 15): a rule that raises an error on some row fails the
-- same way whether PostgreSQL or segment's native evaluator runs it, with the
-- same SQLSTATE. The WARNING lines show the SQLSTATE only (VERBOSITY
-- sqlstate); the messages are in segment.run.error. Many more cases, checked
-- against PostgreSQL row by row: test/pgtap/error_parity.sql.
--
SET client_min_messages = warning;
CREATE SCHEMA ep;
-- the issue's table comes after a first refresh of rows 3 and 4
CREATE TABLE ep.t (id int PRIMARY KEY, a int, b int);
INSERT INTO ep.t VALUES (3, 2, 2), (4, 2, 3);
SELECT segment.register_subject('ep', 'ep.t', 'id') > 0 AS registered;
SELECT segment.create_tag('ep', 'ep_overflow', '(a * 1000000000) + b > 0') > 0 AS created;  -- native arithmetic
SELECT segment.create_tag('ep', 'ep_divide', 'a / (b - 1) > 0') > 0 AS created;             -- an executor leaf
SELECT segment.create_tag('ep', 'ep_skip', 'b is null or a * 1000000000 > 0') > 0 AS created;
SELECT * FROM segment.refresh('ep', '2026-11-22') ORDER BY tag;

-- the issue's rows: row 1 overflows in a * 1000000000 while b is NULL; row 2
-- divides by zero
DELETE FROM ep.t WHERE id = 4;
INSERT INTO ep.t VALUES (1, 5, NULL), (2, 1, 1);
\set VERBOSITY sqlstate
SELECT count(*) FROM ep.t WHERE ((a * 1000000000) + b > 0) IS TRUE;
SELECT count(*) FROM ep.t WHERE (a / (b - 1) > 0) IS TRUE;
SELECT count(*) FROM ep.t WHERE (b IS NULL OR a * 1000000000 > 0) IS TRUE;

-- serial: both tags fail with PostgreSQL's SQLSTATE and keep their members
SET max_parallel_workers_per_gather = 0;
SELECT * FROM segment.refresh('ep', '2026-11-22') ORDER BY tag;
\set VERBOSITY default
SELECT tags, error FROM segment.run ORDER BY run_id DESC LIMIT 1;
SELECT segment.count('ep', 'ep_overflow') AS overflow, segment.count('ep', 'ep_divide') AS divide,
       segment.count('ep', 'ep_skip') AS skip;

-- parallel workers: the same
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
\set VERBOSITY sqlstate
SELECT * FROM segment.refresh('ep', '2026-11-22') ORDER BY tag;
\set VERBOSITY default
SELECT tags, error FROM segment.run ORDER BY run_id DESC LIMIT 1;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- explain raises the rule's error on the row that raises it, and shows what
-- PostgreSQL does not evaluate (b is null is true: the OR stops there)
\set VERBOSITY sqlstate
SELECT segment.explain('ep', 1, 'ep_overflow');
\set VERBOSITY default
SELECT segment.explain('ep', 3, 'ep_overflow') -> 'value' AS value;
SELECT jsonb_pretty(segment.explain('ep', 1, 'ep_skip') -> 'why');

-- live maintenance fails the writing statement with the rule's error
SELECT segment.enable_live('ep');
UPDATE ep.t SET a = 5, b = NULL WHERE id = 3;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE ep.t SET b = 1 WHERE id = 3;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE ep.t SET b = 5 WHERE id = 3;
SELECT segment.has_tag('ep', 3, 'ep_overflow') AS overflow, segment.has_tag('ep', 3, 'ep_divide') AS divide;
SELECT segment.unregister_subject('ep');
DROP SCHEMA ep CASCADE;
