-- Parts 71 and 86 (sql/install/71-live-overlay.sql, 86-live.sql). Live maintenance: enable_live / disable_live, bad inputs (each with its
-- SQLSTATE, nothing changed after a failed call), and live membership after
-- INSERT, UPDATE, DELETE, key changes and a rule that fails on a row.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;

CREATE SCHEMA lv;
CREATE TABLE lv.cust (id int PRIMARY KEY, aum numeric, joined date, note text);
INSERT INTO lv.cust SELECT n, n * 100000, date '2026-01-01' + n * 30, 'n' || n FROM generate_series(1, 10) n;
CREATE TABLE lv.textkey (k text PRIMARY KEY, aum numeric);
INSERT INTO lv.textkey VALUES ('a', 1), ('b', 2);
SELECT segment.register_subject('lv_cust', 'lv.cust', 'id') > 0 AS registered;
SELECT segment.register_subject('lv_text', 'lv.textkey', 'k') > 0 AS registered;
SELECT segment.create_tag('lv_cust', 'lv_rich', 'aum >= 500000') > 0 AS created;
SELECT segment.create_tag('lv_cust', 'lv_new', 'joined > segment.as_of() - 90') > 0 AS created;
SELECT segment.create_tag('lv_cust', 'lv_ratio', 'aum / length(note) > 100000') > 0 AS created;
SELECT segment.create_scheme('lv_cust', 'lv_tier', ARRAY[['high', 'aum >= 800000'], ['low', 'true']]) > 0 AS created;
SELECT segment.create_scorecard('lv_cust', 'lv_score', 0, ARRAY[['aum >= 500000', '10'], ['note like ''n1%''', '1.5']]) > 0 AS created;

-- bad inputs
SELECT segment.enable_live('nope');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT segment.disable_live('nope');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT segment.enable_live('lv_cust');        -- not refreshed yet
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT segment.enable_live('lv_text');        -- text keys
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM segment.refresh('lv_cust', '2026-11-22');
SELECT segment.disable_live('lv_cust');       -- not enabled
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'lv.cust'::regclass AND NOT tgisinternal;
SELECT count(*) AS live_subjects FROM segment.live_subject;

SELECT segment.enable_live('lv_cust');
SELECT segment.enable_live('lv_cust');        -- twice
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT regexp_replace(tgname, '[0-9]+', 'N') AS tgname FROM pg_trigger WHERE tgrelid = 'lv.cust'::regclass AND NOT tgisinternal ORDER BY tgname;
SELECT segment_internal._live_trigger();               -- not as a trigger
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- writes: evaluated as of the last refresh (2026-11-22), whatever the GUC says
SET segment.as_of = '2030-01-01';
UPDATE lv.cust SET aum = 0 WHERE id IN (9, 10);
INSERT INTO lv.cust VALUES (11, 900000, date '2026-11-01', 'n11'), (12, NULL, NULL, NULL);
DELETE FROM lv.cust WHERE id = 5;
UPDATE lv.cust SET id = 105 WHERE id = 6;     -- a key change: 6 leaves, 105 joins
RESET segment.as_of;
SELECT member_id, deleted, tags <> '{}' AS tagged,
       (SELECT jsonb_object_agg(b.name, l.buckets -> b.scheme_id::text) FROM segment.scheme b
         WHERE l.buckets ? b.scheme_id::text) AS buckets,
       (SELECT jsonb_object_agg(c.name, l.scores -> c.scorecard_id::text) FROM segment.scorecard c
         WHERE l.scores ? c.scorecard_id::text) AS scores, as_of
  FROM segment.live_member l
 WHERE l.subject_id = (SELECT subject_id FROM segment.subject WHERE name = 'lv_cust')
 ORDER BY member_id;
SELECT segment.members('lv_cust', 'lv_rich');
SELECT segment.members('lv_cust', 'lv_new');
SELECT segment.members('lv_cust', 'not lv_rich');
SELECT segment.members('lv_cust', 'lv_tier.high');
SELECT segment.has_tag('lv_cust', 11, 'lv_rich'), segment.has_tag('lv_cust', 10, 'lv_rich'),
       segment.has_tag('lv_cust', 5, 'lv_rich');
SELECT segment.tags('lv_cust', 11), segment.tags('lv_cust', 6), segment.tags('lv_cust', 105);
SELECT segment.bucket_of('lv_cust', 11, 'lv_tier'), segment.bucket_of('lv_cust', 5, 'lv_tier'),
       segment.score('lv_cust', 11, 'lv_score'), segment.score('lv_cust', 5, 'lv_score');
SELECT * FROM segment.top('lv_cust', 'lv_score', NULL, 3);
SELECT segment.explain('lv_cust', 11, 'lv_rich') ->> 'member' AS member,
       segment.explain('lv_cust', 11, 'lv_tier') ->> 'stored_bucket' AS stored_bucket,
       segment.explain('lv_cust', 11, 'lv_score') ->> 'stored_score' AS stored_score;

-- a rule that fails on a row fails the writing statement, and changes nothing
UPDATE lv.cust SET note = '' WHERE id = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS overlay_rows FROM segment.live_member;
SELECT note FROM lv.cust WHERE id = 1;

-- the same answers from a refresh; the refresh folds the overlay
CREATE TABLE lv.before AS
SELECT t, segment.members('lv_cust', t) AS m
  FROM unnest(ARRAY['lv_rich', 'lv_new', 'lv_ratio', 'not lv_rich', 'lv_tier.high', 'lv_tier.low']) t;
CREATE TABLE lv.scores_before AS SELECT id, segment.score('lv_cust', id, 'lv_score') AS s FROM generate_series(1, 200) id;
SELECT count(*) FROM segment.refresh('lv_cust', '2026-11-22');
SELECT count(*) AS overlay_rows FROM segment.live_member;
SELECT b.t, b.m = (SELECT array_agg(x ORDER BY x) FROM segment.members('lv_cust', b.t) x) AS same_as_refresh
  FROM (SELECT t, array_agg(m ORDER BY m) AS m FROM lv.before GROUP BY t) b ORDER BY b.t;
SELECT count(*) AS score_differences FROM lv.scores_before
 WHERE s IS DISTINCT FROM segment.score('lv_cust', id, 'lv_score');

-- disable: triggers gone, later writes are not tracked
SELECT segment.disable_live('lv_cust');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'lv.cust'::regclass AND NOT tgisinternal;
UPDATE lv.cust SET aum = 0 WHERE id = 11;
SELECT count(*) AS overlay_rows FROM segment.live_member;

-- unregistering a subject with live on removes its triggers
SELECT segment.enable_live('lv_cust');
SELECT segment.unregister_subject('lv_cust');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'lv.cust'::regclass AND NOT tgisinternal;
SELECT count(*) AS live_subjects FROM segment.live_subject;
INSERT INTO lv.cust VALUES (200, 1, NULL, NULL);

-- entry rules (fire_on_entry) fire from live maintenance: customers who
-- enter the audience in a statement get the rule's opportunity at once
CREATE TABLE lv.ret (id int PRIMARY KEY, last_login date, savings numeric);
INSERT INTO lv.ret VALUES (1, '2026-11-01', 100), (2, '2026-11-01', 0), (3, '2026-01-01', 50), (4, '2026-11-10', 10);
SELECT segment.register_subject('lv_ret', 'lv.ret', 'id') > 0 AS registered;
SELECT segment.create_tag('lv_ret', 'lv_dormant', 'last_login < segment.as_of() - 90') > 0 AS created;
SELECT segment.create_tag('lv_ret', 'lv_saver', 'savings > 0') > 0 AS created;
SELECT count(*) FROM segment.refresh('lv_ret', '2026-11-22');
SELECT segment.create_opportunity_rule('lv_ret', 'lv_wake', 'lv_saver', 'maintenance', 'call',
           assignment => 'pool', cooldown_days => 60) > 0 AS created;
SELECT segment.attach_entry_rule('lv_wake', 'lv_dormant');
SELECT segment.enable_live('lv_ret');
SET segment.as_of = '2026-11-23';
UPDATE lv.ret SET last_login = '2026-01-01' WHERE id IN (1, 2);   -- both enter; 2 is no saver
UPDATE lv.ret SET savings = 60 WHERE id = 3;                       -- already dormant: no entry
INSERT INTO lv.ret VALUES (5, '2025-12-01', 7);                    -- a new customer, dormant
RESET segment.as_of;
SELECT o.key, o.period, o.source FROM segment.opportunity o
  JOIN segment.opportunity_rule r USING (rule_id) WHERE r.name = 'lv_wake' ORDER BY o.key;
SELECT segment.detach_entry_rule('lv_wake', 'lv_dormant');
SELECT segment.drop_opportunity_rule('lv_wake', "cascade" => true);
SELECT segment.unregister_subject('lv_ret');

SELECT segment.unregister_subject('lv_text');
DROP SCHEMA lv CASCADE;
