-- Part 89 (sql/install/89-live-cache.sql): live maintenance caches the
-- definitions of a subject per backend; every change of a definition (a tag
-- created, altered or dropped, a scheme changed, the subject refreshed for
-- another date) reaches the next live statement, in this backend at once;
-- and unregistering a subject removes its overlay rows. Checked through the
-- public API: after each change, live reads equal plain SQL.
\i test/fixtures/regress.psql

CREATE TABLE lcc_cust (id int8 PRIMARY KEY, bal numeric);
INSERT INTO lcc_cust SELECT g, g * 10 FROM generate_series(1, 20) g;
SELECT segment.register_subject('lcc', 'lcc_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('lcc', 'lcc_rich', 'bal >= 100') IS NOT NULL AS created;
SELECT segment.create_scheme('lcc', 'lcc_tier', ARRAY[['top', 'bal >= 150'], ['rest', 'true']]) IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('lcc', '2026-10-01');
SELECT segment.enable_live('lcc');

CREATE FUNCTION pg_temp.lcc_check(rich_rule text, top_rule text) RETURNS TABLE (live_rich bigint, sql_rich bigint,
                                                                             live_top bigint, sql_top bigint)
LANGUAGE plpgsql AS $$
BEGIN
    live_rich := segment.count('lcc', 'lcc_rich');
    EXECUTE format('SELECT count(*) FROM lcc_cust WHERE (%s) IS TRUE', rich_rule) INTO sql_rich;
    live_top := segment.count('lcc', 'lcc_tier.top');
    EXECUTE format('SELECT count(*) FROM lcc_cust WHERE (%s) IS TRUE', top_rule) INTO sql_top;
    RETURN NEXT;
END $$;

-- a live write with the definitions as refreshed
UPDATE lcc_cust SET bal = 500 WHERE id = 1;
SELECT * FROM pg_temp.lcc_check('bal >= 100', 'bal >= 150');
-- the tag's rule changed (and refreshed): the next write uses the new rule
SELECT segment.alter_tag('lcc_rich', rule => 'bal >= 50');
SELECT count(*) FROM segment.refresh('lcc', '2026-10-01');
UPDATE lcc_cust SET bal = 60 WHERE id = 2;
SELECT * FROM pg_temp.lcc_check('bal >= 50', 'bal >= 150');
-- the scheme changed in this transaction: its writes use the new buckets at once
BEGIN;
SELECT segment.alter_scheme('lcc_tier', ARRAY[['top', 'bal >= 100'], ['rest', 'true']]);
SELECT count(*) FROM segment.refresh('lcc', '2026-10-01');
UPDATE lcc_cust SET bal = 120 WHERE id = 3;
SELECT * FROM pg_temp.lcc_check('bal >= 50', 'bal >= 100');
ROLLBACK;
-- rolled back: the old buckets again
UPDATE lcc_cust SET bal = 120 WHERE id = 3;
SELECT * FROM pg_temp.lcc_check('bal >= 50', 'bal >= 150');
-- a new tag: live from the refresh that first evaluates it
SELECT segment.create_tag('lcc', 'lcc_low', 'bal < 40') IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('lcc', '2026-10-01');
UPDATE lcc_cust SET bal = 0 WHERE id = 20;
SELECT segment.count('lcc', 'lcc_low') AS live_low, (SELECT count(*) FROM lcc_cust WHERE bal < 40) AS sql_low;
-- a dropped tag is no longer maintained; reading it fails
SELECT segment.drop_tag('lcc_low');
UPDATE lcc_cust SET bal = 1 WHERE id = 19;
SELECT regress.err($$SELECT segment.count('lcc', 'lcc_low')$$) AS dropped_tag;
SELECT * FROM pg_temp.lcc_check('bal >= 50', 'bal >= 150');

-- unregistering the subject removes its overlay rows
SELECT count(*) > 0 AS has_overlay_rows FROM segment.live_member l JOIN segment.subject s USING (subject_id)
 WHERE s.name = 'lcc';
SELECT subject_id AS lcc_id FROM segment.subject WHERE name = 'lcc' \gset
SELECT segment.unregister_subject('lcc');
SELECT count(*) AS overlay_rows_left FROM segment.live_member WHERE subject_id = :lcc_id;
DROP TABLE lcc_cust;
