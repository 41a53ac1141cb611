-- Part 74 (sql/install/74-schemes.sql): schemes (ordered buckets, first
-- true rule wins) and scorecards (base + points of every true item, bands),
-- and their reading functions bucket_of, score, top and transitions.
-- Results are checked against plain SQL on the same rows; bad inputs fail
-- with their SQLSTATE and change nothing.
\i test/fixtures/regress.psql

CREATE TABLE sc_cust (id int8 PRIMARY KEY, aum numeric, logins int);
INSERT INTO sc_cust SELECT g, g * 100, g % 4 FROM generate_series(1, 20) g;
CREATE TABLE sc_text (k text PRIMARY KEY, aum numeric);
INSERT INTO sc_text VALUES ('a', 50), ('b', 500), ('c', NULL);
SELECT segment.register_subject('sc', 'sc_cust', 'id') IS NOT NULL AS registered;
SELECT segment.register_subject('st', 'sc_text', 'k') IS NOT NULL AS registered;

SELECT segment.create_scheme('sc', 'sc_tier', ARRAY[['gold', 'aum >= 1500'], ['silver', 'aum >= 800'], ['base', 'true']]) IS NOT NULL AS created;
SELECT segment.create_scorecard('sc', 'sc_value', 10, ARRAY[['aum >= 1000', '50'], ['logins >= 2', '20']],
                                bands => ARRAY[['high', '60', NULL], ['low', NULL, '60']]) IS NOT NULL AS created;
SELECT segment.create_scheme('st', 'st_tier', ARRAY[['big', 'aum >= 100'], ['small', 'true']]) IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('sc', '2026-04-01');
SELECT count(*) FROM segment.refresh('st', '2026-04-01');

-- bucket_of: the first bucket whose rule is true
SELECT k, segment.bucket_of('sc', k, 'sc_tier') AS bucket,
       CASE WHEN aum >= 1500 THEN 'gold' WHEN aum >= 800 THEN 'silver' ELSE 'base' END AS sql
  FROM (SELECT id AS k, aum FROM sc_cust WHERE id IN (1, 8, 14, 15, 20)) x ORDER BY k;
SELECT k, segment.bucket_of('st', k, 'st_tier') AS bucket FROM (VALUES ('a'), ('b'), ('c'), ('zz')) v(k) ORDER BY k;
SELECT b, segment.count('sc', 'sc_tier.' || b) AS members FROM (VALUES ('gold'), ('silver'), ('base')) v(b);

-- score: base + points; bands in audiences
SELECT id, segment.score('sc', id, 'sc_value') AS score,
       10 + CASE WHEN aum >= 1000 THEN 50 ELSE 0 END + CASE WHEN logins >= 2 THEN 20 ELSE 0 END AS sql
  FROM sc_cust WHERE id IN (1, 2, 10, 11, 20) ORDER BY id;
SELECT segment.count('sc', 'sc_value.high') AS high, segment.count('sc', 'sc_value.low') AS low;
-- top: highest first, ties by key
SELECT * FROM segment.top('sc', 'sc_value', 'sc_tier.gold', 3);
SELECT count(*) AS whole_subject FROM segment.top('sc', 'sc_value', NULL, 100);

-- transitions between two refreshes
UPDATE sc_cust SET aum = 2000 WHERE id IN (1, 2);
UPDATE sc_cust SET aum = 0 WHERE id = 20;
SELECT count(*) FROM segment.refresh('sc', '2026-04-02');
SELECT * FROM segment.transitions('sc', 'sc_tier', '2026-04-01', '2026-04-02')
 WHERE from_bucket IS DISTINCT FROM to_bucket ORDER BY 1, 2;

-- alter: new buckets and items, version + 1
SELECT segment.alter_scheme('sc_tier', ARRAY[['gold', 'aum >= 1000'], ['base', 'true']]);
SELECT segment.alter_scorecard('sc_value', base => 0);
SELECT name, version FROM segment.scheme WHERE name ~ '^s[ct]_' UNION ALL SELECT name, version FROM segment.scorecard WHERE name ~ '^s[ct]_' ORDER BY 1;

-- bad inputs, then the catalog is unchanged
SELECT regress.err($$SELECT segment.create_scheme('sc', 'sc_tier', ARRAY[['a', 'true']])$$) AS duplicate;
SELECT regress.err($$SELECT segment.create_scheme('sc', 'sc_x', ARRAY[['a', 'no_such_column > 0']])$$) AS bad_rule;
SELECT regress.err($$SELECT segment.create_scheme('sc', 'sc_x', ARRAY[['a', 'true'], ['a', 'true']])$$) AS duplicate_bucket;
SELECT regress.err($$SELECT segment.create_scheme('sc', 'sc_x', ARRAY['a', 'true'])$$) AS not_pairs;
SELECT regress.err($$SELECT segment.create_scheme('sc', 'sc_x', ARRAY[]::text[])$$) AS no_buckets;
SELECT regress.err($$SELECT segment.create_scorecard('sc', 'sc_y', 0, ARRAY[['aum > 0', 'ten']])$$) AS bad_points;
SELECT regress.err($$SELECT segment.create_scorecard('sc', 'sc_y', 0, ARRAY[['aum > 0', '1']], ARRAY[['b', '5', '1']])$$) AS bad_band;
SELECT regress.err($$SELECT segment.bucket_of('sc', 1, 'no_such_scheme')$$) AS unknown_scheme;
SELECT regress.err($$SELECT segment.score('sc', 1, 'sc_tier')$$) AS not_a_scorecard;
SELECT regress.err($$SELECT * FROM segment.top('sc', 'sc_value', NULL, -1)$$) AS negative_n;
SELECT regress.err($$SELECT * FROM segment.transitions('sc', 'sc_tier', '2026-04-02', '2026-04-01')$$) AS dates_reversed;
SELECT regress.err($$SELECT segment.drop_scheme('no_such_scheme')$$) AS drop_unknown;
SELECT name, version FROM segment.scheme WHERE name ~ '^s[ct]_' UNION ALL SELECT name, version FROM segment.scorecard WHERE name ~ '^s[ct]_' ORDER BY 1;

SELECT segment.drop_scheme('st_tier');
SELECT segment.drop_scorecard('sc_value');
SELECT name FROM segment.scheme WHERE name ~ '^s[ct]_' UNION ALL SELECT name FROM segment.scorecard WHERE name ~ '^s[ct]_' ORDER BY 1;
SELECT segment.unregister_subject('sc');
SELECT segment.unregister_subject('st');
DROP TABLE sc_cust, sc_text;
