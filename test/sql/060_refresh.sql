-- Part 60 (sql/install/60-refresh.sql): segment.refresh, segment.explain
-- and the DDL guards that keep a subject's table and the rules over it
-- consistent. The contract: refresh returns one row per tag with its size
-- and what entered and exited since the last refresh; a refresh for
-- another date re-evaluates date rules; explain shows why one key has (or
-- has not) a tag; DDL that would break a rule, and dropping a subject's
-- table, are refused; bad inputs fail with their SQLSTATE and change nothing.
\i test/fixtures/regress.psql

CREATE TABLE rf_cust (id int8 PRIMARY KEY, aum numeric, joined date, name text);
INSERT INTO rf_cust SELECT g, g * 1000, date '2026-01-01' + g, 'c' || g FROM generate_series(1, 20) g;
SELECT segment.register_subject('rf', 'rf_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('rf', 'rf_rich', 'aum >= 15000') IS NOT NULL AS created;
SELECT segment.create_tag('rf', 'rf_new', 'joined >= segment.as_of() - 5') IS NOT NULL AS created;

-- first refresh: everything enters
SELECT subject, tag, members, entered, exited FROM segment.refresh('rf', '2026-01-10') ORDER BY tag;
-- nothing changed: nothing enters or exits
SELECT tag, members, entered, exited FROM segment.refresh('rf', '2026-01-10') ORDER BY tag;
-- data change and a later date
UPDATE rf_cust SET aum = 0 WHERE id IN (19, 20);
SELECT tag, members, entered, exited FROM segment.refresh('rf', '2026-01-15') ORDER BY tag;
-- refresh(NULL) refreshes every subject (those other files left behind too:
-- their warnings are not this file's output)
BEGIN;
SET LOCAL client_min_messages = error;
SELECT tag, members FROM segment.refresh(NULL, '2026-01-15') WHERE subject = 'rf' ORDER BY tag;
COMMIT;
-- members agree with plain SQL at the refreshed date
SELECT array(SELECT segment.members('rf', 'rf_new') ORDER BY 1) AS rf_new,
       array(SELECT id FROM rf_cust WHERE joined >= date '2026-01-15' - 5 ORDER BY 1) AS sql;

-- explain: one key, one tag
SELECT k, e ->> 'value' AS value, e ->> 'member' AS member, e ->> 'as_of' AS as_of, e -> 'why' ->> 'expr' AS expr,
       e -> 'why' -> 'columns' AS columns
  FROM (VALUES (18), (19), (3)) v(k), segment.explain('rf', k, 'rf_rich') e ORDER BY k;
-- a row changed since the refresh: value (now) differs from member (stored)
UPDATE rf_cust SET aum = 99000 WHERE id = 3;
SELECT e ->> 'value' AS value, e ->> 'member' AS member FROM segment.explain('rf', '3'::text, 'rf_rich') e;
-- no such key
SELECT e ->> 'row_found' AS row_found, e ->> 'value' AS value FROM segment.explain('rf', 999, 'rf_rich') e;
-- an audience: each tag it names
SELECT e ->> 'audience' AS audience, e ->> 'value' AS value FROM segment.explain('rf', 18, 'rf_rich and not rf_new') e;
UPDATE rf_cust SET aum = 3000 WHERE id = 3;

-- a cancel is never a rule's failure: a rule still running when
-- statement_timeout fires cancels the whole refresh (the per-rule
-- subtransaction rethrows it, src/subxact.c); the tag is not reported as
-- failed with its previous members kept
CREATE FUNCTION rf_slow(x numeric) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM pg_sleep(0.05);
    RETURN x > 0;
END $$;
SELECT segment.create_tag('rf', 'rf_slow', 'rf_slow(aum)') IS NOT NULL AS created;
SET statement_timeout = '200ms';
SELECT tag, members FROM segment.refresh('rf', '2026-01-15') ORDER BY tag;
RESET statement_timeout;
SELECT segment.drop_tag('rf_slow');
DROP FUNCTION rf_slow(numeric);
-- bad inputs
SELECT regress.err($$SELECT * FROM segment.refresh('no_such_subject')$$);
SELECT regress.err($$SELECT segment.explain('rf', 18, 'no_such_tag')$$);
SELECT regress.err($$SELECT segment.explain('no_such_subject', 18, 'rf_rich')$$);
SELECT segment.explain('rf', 18, NULL) IS NULL AS strict_on_null;

-- the DDL guards
SELECT regress.err($$ALTER TABLE rf_cust DROP COLUMN aum$$);
SELECT regress.err($$ALTER TABLE rf_cust ALTER COLUMN aum TYPE int$$);
SELECT regress.err($$ALTER TABLE rf_cust RENAME COLUMN joined TO joined_on$$);
SELECT regress.err($$ALTER TABLE rf_cust DROP COLUMN id CASCADE$$);
SELECT regress.err($$DROP TABLE rf_cust$$);
SELECT regress.err($$ALTER TABLE rf_cust ADD COLUMN extra int$$) AS unrelated_ddl;
SELECT regress.err($$ALTER TABLE rf_cust DROP COLUMN name$$) AS column_no_rule_reads;
-- after the refused calls: the same tags, the same sizes
SELECT tag, members, entered, exited FROM segment.refresh('rf', '2026-01-15') ORDER BY tag;

SELECT segment.unregister_subject('rf');
DROP TABLE rf_cust;
