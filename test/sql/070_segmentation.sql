-- Part 70 (sql/install/70-segmentation.sql): the tables of segments,
-- schemes and scorecards, their definition history and the state a refresh
-- writes (bucket_state, score_state, bucket_history, size_snapshot). The
-- part has no functions; its contract is what those tables hold after the
-- public calls of parts 72 and 74 and a refresh: one namespace of names,
-- a history row per definition change, state rebuilt by refresh.
\i test/fixtures/regress.psql

CREATE TABLE sg_cust (id int8 PRIMARY KEY, aum numeric, branch int);
INSERT INTO sg_cust SELECT g, g * 100, g % 3 FROM generate_series(1, 30) g;
SELECT segment.register_subject('sg', 'sg_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('sg', 'sg_rich', 'aum >= 2000') IS NOT NULL AS created;
SELECT segment.create_scheme('sg', 'sg_tier', ARRAY[['high', 'aum >= 2500'], ['low', 'true']]) IS NOT NULL AS created;
SELECT segment.create_scorecard('sg', 'sg_score', 0, ARRAY[['aum >= 1000', '10'], ['branch = 0', '5']]) IS NOT NULL AS created;
SELECT segment.create_segment('sg', 'sg_rich_b0', 'sg_rich and not sg_tier.low') IS NOT NULL AS created;

-- the definitions
SELECT name, audience, version FROM segment.segment WHERE name ~ '^sg_' ORDER BY name;
SELECT m.name AS scheme, b.name AS bucket, b.rule FROM segment.scheme m
  JOIN segment.scheme_bucket b USING (scheme_id) WHERE m.name ~ '^sg_' ORDER BY m.name, b.position;
SELECT c.name AS scorecard, c.base, i.rule, i.points FROM segment.scorecard c
  JOIN segment.scorecard_item i USING (scorecard_id) WHERE c.name ~ '^sg_' ORDER BY c.name, i.position;
SELECT kind, name, action FROM segment.definition_history WHERE name ~ '^sg_' ORDER BY history_id;

-- one namespace: a tag, a segment, a scheme and a scorecard cannot share a name
SELECT regress.err($$SELECT segment.create_segment('sg', 'sg_rich', 'sg_rich')$$);
SELECT regress.err($$SELECT segment.create_scheme('sg', 'sg_score', ARRAY[['a', 'true']])$$);
SELECT regress.err($$SELECT segment.create_tag('sg', 'sg_tier', 'true')$$);

-- state written by refresh
SELECT count(*) AS tags FROM segment.refresh('sg', '2026-02-01');
SELECT b.name AS bucket, segment.count('sg', 'sg_tier.' || b.name) AS members
  FROM segment.scheme_bucket b JOIN segment.scheme m USING (scheme_id) WHERE m.name = 'sg_tier' ORDER BY b.position;
SELECT segment.count('sg', 'sg_rich_b0') AS segment_members,
       (SELECT count(*) FROM sg_cust WHERE aum >= 2000 AND NOT aum < 2500) AS sql;
SELECT segment.score('sg', 30, 'sg_score') AS score_30, segment.score('sg', 3, 'sg_score') AS score_3;
SELECT (SELECT count(*) FROM segment.bucket_state JOIN segment.scheme USING (scheme_id) WHERE name = 'sg_tier') AS bucket_state_rows,
       (SELECT count(*) FROM segment.score_state JOIN segment.scorecard USING (scorecard_id) WHERE name = 'sg_score') AS score_state_rows;

-- a definition change is history; dropping the subject drops everything
SELECT segment.alter_scheme('sg_tier', ARRAY[['high', 'aum >= 2000'], ['low', 'true']]);
SELECT kind, name, action FROM segment.definition_history WHERE name ~ '^sg_' ORDER BY history_id;
SELECT segment.unregister_subject('sg');
SELECT (SELECT count(*) FROM segment.segment WHERE name ~ '^sg_') AS segments,
       (SELECT count(*) FROM segment.scheme WHERE name ~ '^sg_') AS schemes,
       (SELECT count(*) FROM segment.scorecard WHERE name ~ '^sg_') AS scorecards;
DROP TABLE sg_cust;
