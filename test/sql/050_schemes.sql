-- Schemes and scorecards: definitions, validation errors, history, the DDL
-- guard, and the reading functions (bucket_of, score, top, transitions,
-- size_history) over state written here by hand, so that this file tests
-- the API independently of the refresh engine.
\set VERBOSITY default
-- PL/pgSQL call stacks are left out, except where the context names the rule
\set SHOW_CONTEXT never
SET client_min_messages = warning;

CREATE SCHEMA sch;
CREATE TABLE sch.customer (
    customer_id   bigint PRIMARY KEY,
    aum           numeric(18,2),
    has_fund      boolean,
    products      int,
    visits_30d    int,
    first_seen    date,
    last_visit    date,
    note          text
);
INSERT INTO sch.customer
SELECT n, n * 100000, n % 2 = 0, n % 4, n % 6, date '2025-01-01' + n * 30, date '2026-11-01' - n * 5, 'n' || n
  FROM generate_series(1, 10) n;
SELECT segment.register_subject('sch_customer', 'sch.customer', 'customer_id') > 0 AS registered;
SELECT segment.create_tag('sch_customer', 'wealthy', 'aum >= 500000') > 0 AS created;
SELECT segment.create_tag('sch_customer', 'priority', NULL, 'manual') > 0 AS created;
-- what this file defines (other tests may leave their own definitions behind)
CREATE VIEW sch.history AS
SELECT * FROM segment.definition_history
 WHERE coalesce(new_definition, old_definition) ->> 'subject' IN ('sch_customer', 'sch_account');
CREATE VIEW sch.schemes AS
SELECT m.* FROM segment.scheme m JOIN segment.subject s USING (subject_id)
 WHERE s.name IN ('sch_customer', 'sch_account');
CREATE VIEW sch.scorecards AS
SELECT c.* FROM segment.scorecard c JOIN segment.subject s USING (subject_id)
 WHERE s.name IN ('sch_customer', 'sch_account');

-- schemes ------------------------------------------------------------------
SELECT segment.create_scheme('sch_customer', 'value_tier',
    ARRAY[['affluent', 'aum >= 800000'],
          ['emerging', 'aum >= 300000'],
          ['mass',     'true']],
    'tiers by assets under management') > 0 AS created;
SELECT segment.create_scheme('sch_customer', 'aipl',
    ARRAY[['loyalty',   'products >= 3 and first_seen <= segment.as_of() - 365'],
          ['purchase',  'products >= 1'],
          ['interest',  'visits_30d >= 2 or last_visit >= segment.as_of() - 30'],
          ['awareness', 'true']]) > 0 AS created;
SELECT m.name AS scheme, b.position, b.name AS bucket, b.rule, b.columns, b.column_types
  FROM sch.schemes m JOIN segment.scheme_bucket b USING (scheme_id)
 ORDER BY m.scheme_id, b.position;
SELECT name, description, active, version FROM sch.schemes ORDER BY scheme_id;

-- every rejection
SELECT segment.create_scheme('nobody', 's1', ARRAY[['a', 'true']]);                 -- unknown subject
SELECT segment.create_scheme('sch_customer', 'bad name', ARRAY[['a', 'true']]);         -- bad name
SELECT segment.create_scheme('sch_customer', 'or', ARRAY[['a', 'true']]);               -- keyword
SELECT segment.create_scheme('sch_customer', 'value_tier', ARRAY[['a', 'true']]);       -- duplicate
SELECT segment.create_scheme('sch_customer', 'wealthy', ARRAY[['a', 'true']]);       -- a tag's name
SELECT segment.create_scheme('sch_customer', 's1', '{}');                               -- empty
SELECT segment.create_scheme('sch_customer', 's1', NULL);                               -- NULL
SELECT segment.create_scheme('sch_customer', 's1', ARRAY['a', 'true']);                 -- not pairs
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a', 'true', 'x']]);          -- three elements
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a', 'aum > 1'], ['a', 'true']]); -- duplicate bucket
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a b', 'true']]);             -- bad bucket name
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[[NULL, 'true']]);              -- NULL bucket name
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[[repeat('b', 64), 'true']]);   -- too long
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a', NULL]]);                 -- NULL rule
\set SHOW_CONTEXT errors
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a', 'aum >= 1'], ['b', 'aum >=']]);  -- syntax
\set SHOW_CONTEXT never
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a', 'balance > 1']]);        -- unknown column
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a', 'aum + 1']]);            -- not boolean
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a', 'random() > 0.5']]);     -- volatile
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a', 'aum > (select 1)']]);   -- subquery
SELECT segment.create_tag('sch_customer', 's1', 'true') IS NOT NULL AS tag_created;     -- then as a scheme
SELECT segment.create_scheme('sch_customer', 's1', ARRAY[['a', 'true']]);
SELECT segment.drop_tag('s1');
SELECT count(*) AS schemes,
       (SELECT count(*) FROM segment.scheme_bucket b JOIN sch.schemes USING (scheme_id)) AS buckets,
       (SELECT count(*) FROM sch.history) AS history,
       (SELECT count(*) FROM segment.scheme WHERE name = 's1') AS s1
  FROM sch.schemes;

-- altering: buckets, description, active; history keeps old and new
SELECT segment.alter_scheme('value_tier',
    buckets => ARRAY[['affluent', 'aum >= 800000'], ['emerging', 'aum >= 400000'], ['mass', 'true']]);
SELECT segment.alter_scheme('value_tier', description => 'tiers by AUM (CNY)');
SELECT segment.alter_scheme('value_tier', buckets => ARRAY[['x', 'nosuch']]);     -- invalid: no change
SELECT segment.alter_scheme('value_tier');                                        -- nothing to change
SELECT segment.alter_scheme('nosuch', active => false);
SELECT name, description, version FROM segment.scheme WHERE name = 'value_tier';
SELECT position, name, rule FROM segment.scheme_bucket
 WHERE scheme_id = (SELECT scheme_id FROM segment.scheme WHERE name = 'value_tier') ORDER BY position;
SELECT action, old_definition -> 'buckets' -> 1 ->> 'rule' AS old_emerging,
       new_definition -> 'buckets' -> 1 ->> 'rule' AS new_emerging,
       new_definition ->> 'description' AS new_description
  FROM sch.history WHERE name = 'value_tier' ORDER BY history_id;

-- scorecards ---------------------------------------------------------------
SELECT segment.create_scorecard('sch_customer', 'engagement', 100,
    ARRAY[['has_fund',         '20'],
          ['visits_30d >= 3',  '15.5'],
          ['products = 0',     '-10']],
    ARRAY[['low',  NULL,  '110'],
          ['mid',  '110', '130'],
          ['high', '130', '']],
    'who to call first') > 0 AS created;
SELECT segment.create_scorecard('sch_customer', 'simple', 0, ARRAY[['aum > 0', '1']]) > 0 AS created;
SELECT c.name, c.base, i.position, i.rule, i.points, i.columns
  FROM sch.scorecards c JOIN segment.scorecard_item i USING (scorecard_id)
 ORDER BY c.scorecard_id, i.position;
SELECT c.name AS scorecard, b.name, b.min_score, b.max_score
  FROM segment.scorecard_band b JOIN sch.scorecards c USING (scorecard_id)
 ORDER BY c.name, b.min_score NULLS FIRST;

SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', 'ten']]);        -- points
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', 'NaN']]);        -- points
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', NULL]]);         -- points
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', '1'], [NULL, '2']]); -- rule
SELECT segment.create_scorecard('sch_customer', 's2', 0, '{}');                              -- empty
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund']]);               -- not pairs
SELECT segment.create_scorecard('sch_customer', 's2', NULL, ARRAY[['has_fund', '1']]);       -- base
SELECT segment.create_scorecard('sch_customer', 's2', 'NaN', ARRAY[['has_fund', '1']]);      -- base
\set SHOW_CONTEXT errors
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', '1'], ['aum >', '2']]); -- rule
\set SHOW_CONTEXT never
SELECT segment.create_scorecard('sch_customer', 'value_tier', 0, ARRAY[['has_fund', '1']]);  -- a scheme's name
SELECT segment.create_scorecard('sch_customer', 'engagement', 0, ARRAY[['has_fund', '1']]);  -- duplicate
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', '1']],
    ARRAY[['low', NULL, '50'], ['mid', '40', '80']]);                                    -- overlap
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', '1']],
    ARRAY[['all', NULL, NULL], ['mid', '40', '80']]);                                    -- overlap
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', '1']],
    ARRAY[['mid', '80', '40']]);                                                         -- empty band
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', '1']],
    ARRAY[['mid', 'x', '40']]);                                                          -- bound
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', '1']],
    ARRAY[['mid', '1', '40'], ['mid', '40', '50']]);                                     -- duplicate band
SELECT segment.create_scorecard('sch_customer', 's2', 0, ARRAY[['has_fund', '1']],
    ARRAY[['mid', '1']]);                                                                -- not triples
SELECT count(*) AS scorecards,
       (SELECT count(*) FROM segment.scorecard_item i JOIN sch.scorecards USING (scorecard_id)) AS items,
       (SELECT count(*) FROM segment.scorecard_band b JOIN sch.scorecards USING (scorecard_id)) AS bands,
       (SELECT count(*) FROM sch.history) AS history,
       (SELECT count(*) FROM segment.scorecard WHERE name = 's2') AS s2
  FROM sch.scorecards;

SELECT segment.alter_scorecard('engagement', base => 90,
    bands => ARRAY[['low', NULL, '100'], ['high', '100', NULL]]);
SELECT segment.alter_scorecard('simple', bands => '{}', description => 'no bands');
SELECT segment.alter_scorecard('engagement', items => ARRAY[['has_fund', 'x']]);   -- invalid: no change
SELECT segment.alter_scorecard('engagement');
SELECT name, base, description, version FROM sch.scorecards ORDER BY scorecard_id;
SELECT c.name AS scorecard, b.name, b.min_score, b.max_score
  FROM segment.scorecard_band b JOIN sch.scorecards c USING (scorecard_id)
 ORDER BY c.name, b.min_score NULLS FIRST;
SELECT name, action, old_definition -> 'base' AS old_base, new_definition -> 'base' AS new_base,
       jsonb_array_length(new_definition -> 'bands') AS bands
  FROM sch.history WHERE kind = 'scorecard' ORDER BY history_id;

-- the DDL guard protects the columns that buckets and items read -----------
ALTER TABLE sch.customer DROP COLUMN last_visit;                 -- aipl reads it
ALTER TABLE sch.customer RENAME COLUMN visits_30d TO visits;     -- aipl and engagement read it
ALTER TABLE sch.customer ALTER COLUMN first_seen TYPE timestamp; -- retype
SELECT segment.alter_scheme('aipl', buckets => ARRAY[['all', 'true']]);
ALTER TABLE sch.customer ALTER COLUMN first_seen TYPE timestamp; -- now allowed
ALTER TABLE sch.customer DROP COLUMN has_fund;                   -- engagement reads it
ALTER TABLE sch.customer ALTER COLUMN products TYPE bigint;      -- engagement reads it
ALTER TABLE sch.customer DROP COLUMN note;                       -- read by nothing

-- reading: state written by hand (what refresh stores) ---------------------
-- value_tier as of 2026-11-01 and 2026-12-01; 8 left, 9 and 10 arrived.
CREATE FUNCTION sch.ms(int8[]) RETURNS segment.memberset LANGUAGE sql AS
    'SELECT segment.memberset($1)';
INSERT INTO segment.universe_history (subject_id, as_of, universe, member_count, run_id)
SELECT (SELECT subject_id FROM segment.subject WHERE name = 'sch_customer'),
       d::date, sch.ms(u), cardinality(u), r FROM (VALUES
    ('2026-11-01', '{1,2,3,4,5,6,7,8}'::int8[], 1),
    ('2026-12-01', '{1,2,3,4,5,6,7,9,10}'::int8[], 2)) v(d, u, r);
INSERT INTO segment.bucket_history (scheme_id, as_of, bucket, members, member_count, run_id)
SELECT (SELECT scheme_id FROM segment.scheme WHERE name = 'value_tier'),
       d::date, b, sch.ms(m), cardinality(m), r FROM (VALUES
    ('2026-11-01', 'affluent', '{1,2}'::int8[], 1),
    ('2026-11-01', 'emerging', '{3,4,5}', 1),
    ('2026-11-01', 'mass',     '{6,7}', 1),
    ('2026-12-01', 'affluent', '{1,3}', 2),
    ('2026-12-01', 'emerging', '{2,4}', 2),
    ('2026-12-01', 'mass',     '{5,6,9}', 2)) v(d, b, m, r);
INSERT INTO segment.bucket_state (scheme_id, bucket, members, member_count, as_of, run_id)
SELECT scheme_id, bucket, members, member_count, as_of, run_id
  FROM segment.bucket_history
 WHERE as_of = '2026-12-01' AND scheme_id = (SELECT scheme_id FROM segment.scheme WHERE name = 'value_tier');
INSERT INTO segment.score_state (scorecard_id, score, members, member_count, as_of, run_id)
SELECT (SELECT scorecard_id FROM segment.scorecard WHERE name = 'engagement'),
       s, sch.ms(m), cardinality(m), '2026-12-01', 2 FROM (VALUES
    (135.5, '{2,4}'::int8[]), (120, '{1,3,9}'), (100, '{5,6,7,10}')) v(s, m);
INSERT INTO segment.size_snapshot (subject_id, as_of, kind, name, members, run_id)
SELECT (SELECT subject_id FROM segment.subject WHERE name = 'sch_customer'),
       as_of, 'bucket', 'value_tier.' || bucket, member_count, run_id FROM segment.bucket_history
 WHERE scheme_id = (SELECT scheme_id FROM segment.scheme WHERE name = 'value_tier');

SELECT k, segment.bucket_of('sch_customer', k, 'value_tier') AS bucket,
       segment.score('sch_customer', k, 'engagement') AS score
  FROM generate_series(1, 11) k ORDER BY k;
SELECT segment.bucket_of('sch_customer', '3', 'value_tier') AS text_key;
SELECT segment.bucket_of('sch_customer', 1, 'aipl');              -- never refreshed
SELECT segment.score('sch_customer', 1, 'simple');                -- never refreshed
SELECT segment.bucket_of('sch_customer', 1, 'nosuch');
SELECT segment.bucket_of('sch_customer', 'abc', 'value_tier');
SELECT segment.bucket_of('nobody', 1, 'value_tier');

SELECT * FROM segment.top('sch_customer', 'engagement', NULL, 4);
SELECT segment.set_tag('sch_customer', k, 'priority') FROM unnest('{3,9,6}'::int[]) k;
SELECT * FROM segment.top('sch_customer', 'engagement', 'priority', 2);
SELECT * FROM segment.top('sch_customer', 'engagement', 'priority', 10);
SELECT count(*) FROM segment.top('sch_customer', 'engagement', NULL, 0);
SELECT * FROM segment.top('sch_customer', 'engagement', NULL, -1);
SELECT * FROM segment.top('sch_customer', 'engagement', 'nosuch', 1);

SELECT * FROM segment.transitions('sch_customer', 'value_tier', '2026-11-01', '2026-12-01');
SELECT * FROM segment.transitions('sch_customer', 'value_tier', '2026-11-15', '2026-12-31'); -- latest on or before
SELECT sum(customers) FROM segment.transitions('sch_customer', 'value_tier', '2026-12-01', '2026-12-01');
SELECT * FROM segment.transitions('sch_customer', 'value_tier', '2026-10-31', '2026-12-01');
SELECT * FROM segment.transitions('sch_customer', 'aipl', '2026-11-01', '2026-12-01');

SELECT * FROM segment.size_history WHERE subject = 'sch_customer' ORDER BY as_of, name;

-- inactive schemes and scorecards are not read
SELECT segment.alter_scheme('value_tier', active => false);
SELECT segment.bucket_of('sch_customer', 1, 'value_tier');
SELECT segment.alter_scheme('value_tier', active => true);
SELECT segment.alter_scorecard('engagement', active => false);
SELECT segment.score('sch_customer', 1, 'engagement');
SELECT segment.alter_scorecard('engagement', active => true);

-- a scheme of another subject
CREATE TABLE sch.account (account_no text PRIMARY KEY, balance numeric);
SELECT segment.register_subject('sch_account', 'sch.account', 'account_no') > 0 AS registered;
SELECT segment.bucket_of('sch_account', 'A1', 'value_tier');
SELECT segment.create_scheme('sch_account', 'balance_tier',
    ARRAY[['big', 'balance >= 100000'], ['small', 'true']]) > 0 AS created;
SELECT segment.create_scorecard('sch_account', 'account_score', 10,
    ARRAY[['balance > 0', '5']]) > 0 AS created;

-- dropping and unregistering keep the definitions in history
SELECT segment.drop_scheme('aipl');
SELECT segment.drop_scorecard('simple');
SELECT segment.drop_scheme('aipl');
SELECT segment.unregister_subject('sch_account');
SELECT kind, name, action, old_definition IS NOT NULL AS has_old, new_definition IS NOT NULL AS has_new
  FROM sch.history ORDER BY history_id;
SELECT name FROM sch.schemes UNION ALL SELECT name FROM sch.scorecards ORDER BY 1;

-- clean up: unregistering drops the rest (history stays)
SELECT segment.unregister_subject('sch_customer');
SELECT count(*) AS left_over FROM sch.schemes;
SELECT kind, name, action FROM sch.history WHERE action = 'drop' ORDER BY history_id;
DROP SCHEMA sch CASCADE;
