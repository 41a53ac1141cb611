-- Part 72 (sql/install/72-segments.sql): named segments and overlap.
-- create_segment names an audience of a subject (usable in later audiences
-- like a tag), alter_segment changes it (version + 1), drop_segment refuses
-- while another definition uses it unless cascade; overlap gives the sizes,
-- intersection and Jaccard index of every pair of audiences. Bad inputs fail
-- with their SQLSTATE and change nothing.
\i test/fixtures/regress.psql

CREATE TABLE sm_cust (id int8 PRIMARY KEY, aum numeric, branch int);
INSERT INTO sm_cust SELECT g, g * 100, g % 3 FROM generate_series(1, 30) g;
SELECT segment.register_subject('sm', 'sm_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('sm', 'sm_rich', 'aum >= 2000') IS NOT NULL AS created;
SELECT segment.create_tag('sm', 'sm_b0', 'branch = 0') IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('sm', '2026-03-01');

SELECT segment.create_segment('sm', 'sm_target', 'sm_rich and not sm_b0', 'rich, not branch 0') IS NOT NULL AS created;
SELECT segment.create_segment('sm', 'sm_wide', 'sm_target or sm_b0') IS NOT NULL AS created;
SELECT name, audience, description, version FROM segment.segment WHERE name ~ '^sm_' ORDER BY name;
SELECT segment.count('sm', 'sm_target') AS target, segment.count('sm', 'sm_wide') AS wide,
       (SELECT count(*) FROM sm_cust WHERE aum >= 2000 AND branch <> 0) AS sql_target,
       (SELECT count(*) FROM sm_cust WHERE (aum >= 2000 AND branch <> 0) OR branch = 0) AS sql_wide;
SELECT segment.has_tag('sm', 20, 'sm_target') AS k20, segment.has_tag('sm', 21, 'sm_target') AS k21;

-- alter: a new audience, version 2; the dependent segment follows
SELECT segment.alter_segment('sm_target', audience => 'sm_rich');
SELECT name, audience, version FROM segment.segment WHERE name = 'sm_target';
SELECT segment.count('sm', 'sm_target') AS target, segment.count('sm', 'sm_wide') AS wide;

-- overlap of every pair
SELECT a, b, a_members, b_members, both_members, round(jaccard::numeric, 4) AS jaccard
  FROM segment.overlap('sm', ARRAY['sm_rich', 'sm_b0', 'sm_target']) ORDER BY a, b;

-- bad inputs, then the catalog is unchanged
SELECT regress.err($$SELECT segment.create_segment('sm', 'sm_target', 'sm_rich')$$) AS duplicate;
SELECT regress.err($$SELECT segment.create_segment('sm', 'sm_x', 'no_such_tag')$$) AS unknown_name;
SELECT regress.err($$SELECT segment.create_segment('sm', 'sm_x', 'sm_rich and')$$) AS syntax;
SELECT regress.err($$SELECT segment.create_segment('no_such', 'sm_x', 'sm_rich')$$) AS unknown_subject;
SELECT regress.err($$SELECT segment.create_segment('sm', 'sm_self', 'sm_self')$$) AS self_reference;
SELECT regress.err($$SELECT segment.alter_segment('sm_target', audience => 'sm_wide')$$) AS cycle;
SELECT regress.err($$SELECT segment.alter_segment('no_such_segment', audience => 'sm_rich')$$) AS unknown_segment;
SELECT regress.err($$SELECT segment.drop_segment('sm_target')$$) AS used_by_sm_wide;
SELECT regress.err($$SELECT * FROM segment.overlap('sm', ARRAY['sm_rich', 'no_such'])$$) AS overlap_unknown;
SELECT name, audience, version FROM segment.segment WHERE name ~ '^sm_' ORDER BY name;

-- drop: cascade drops the dependent segment too
SELECT segment.drop_segment('sm_target', "cascade" => true);
SELECT name FROM segment.segment WHERE name ~ '^sm_' ORDER BY name;
SELECT kind, name, action FROM segment.definition_history WHERE name ~ '^sm_' ORDER BY history_id;

SELECT segment.unregister_subject('sm');
DROP TABLE sm_cust;
