-- Named segments (create/alter/drop_segment), segments, scheme buckets and
-- scorecard bands in audiences, has_tag and explain on segments, and
-- overlap. Tags are refreshed for real; bucket_state and score_state are
-- written by hand, as a refresh would leave them.
SET search_path = public;
\set SHOW_CONTEXT never

\i test/fixtures/regress.psql
RESET client_min_messages;   -- the NOTICEs of cascading drops are part of the output

-- A fingerprint of every definition table: equal before and after a call
-- means the call changed nothing.
CREATE FUNCTION pg_temp.sql_count(pred text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM shop_customer WHERE %s', pred) INTO n;
    RETURN n;
END $$;

CREATE FUNCTION pg_temp.catalog() RETURNS text LANGUAGE sql AS $$
    SELECT md5(concat_ws('|',
        (SELECT string_agg(format('%s %s %s %s %s', segment_id, name, audience, description, version), ';' ORDER BY segment_id) FROM segment.segment),
        (SELECT string_agg(format('%s %s %s %s', history_id, name, action, new_definition), ';' ORDER BY history_id) FROM segment.definition_history),
        (SELECT string_agg(format('%s %s %s %s', tag_id, name, rule, active), ';' ORDER BY tag_id) FROM segment.tag),
        (SELECT count(*)::text FROM segment.tag_history)))
$$;

------------------------------------------------------------------------
-- Fixture: subject "shop" (bigint keys), five tags, refreshed
------------------------------------------------------------------------
CREATE TABLE shop_customer (
    id     int8 PRIMARY KEY,
    aum    numeric,
    branch int,
    logins int
);
INSERT INTO shop_customer
SELECT g, (g * 7919) % 1000000, g % 4, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 13 END
FROM generate_series(1, 2000) g;

SELECT segment.register_subject('shop', 'shop_customer', 'id') > 0 AS registered;
SELECT segment.create_tag('shop', 'rich', 'aum >= 500000') > 0 AS rich,
       segment.create_tag('shop', 'north', 'branch = 1') > 0 AS north,
       segment.create_tag('shop', 'south', 'branch = 2') > 0 AS south,
       segment.create_tag('shop', 'idle', 'logins = 0 or logins is null') > 0 AS idle,
       segment.create_tag('shop', 'star', NULL) > 0 AS star;
SELECT segment.set_tag('shop', k, 'star') FROM (VALUES (4), (8), (15), (16), (23), (42)) v(k);
SELECT tag, members FROM segment.refresh('shop', '2026-01-15') ORDER BY tag;

-- a second subject, for names of another subject
CREATE TABLE shop_branch (code text PRIMARY KEY, size int);
INSERT INTO shop_branch VALUES ('B1', 10), ('B2', 200);
SELECT segment.register_subject('branch', 'shop_branch', 'code') > 0 AS registered;
SELECT segment.create_tag('branch', 'big_branch', 'size > 100') > 0 AS big_branch;
SELECT segment.create_segment('branch', 'big_branches', 'big_branch') > 0 AS big_branches;

------------------------------------------------------------------------
-- create_segment, and segments in audiences
------------------------------------------------------------------------
SELECT segment.create_segment('shop', 'rich_north', 'rich and north', 'rich customers of branch 1') AS rich_north_id \gset
SELECT segment.create_segment('shop', 'rich_active', 'rich and not idle') > 0 AS created,
       segment.create_segment('shop', 'priority', 'star or rich_north or (rich_active and south)') > 0 AS created,
       segment.create_segment('shop', 'outside', 'not priority') > 0 AS created;
-- the id returned is the new row's
SELECT segment_id = :rich_north_id AS same_id FROM segment.segment WHERE name = 'rich_north';
SELECT name, audience, description, version FROM segment.segment ORDER BY segment_id;

-- a segment counts as its audience written out
SELECT audience, segment.count('shop', audience) AS via_segment, segment.count('shop', written) AS written_out
FROM (VALUES
    ('rich_north',                   'rich and north'),
    ('priority',                     'star or (rich and north) or ((rich and not idle) and south)'),
    ('outside',                      'not (star or (rich and north) or ((rich and not idle) and south))'),
    ('priority and not rich_north',  'star or ((rich and not idle) and south) and not (rich and north)'),
    ('priority or outside',          'rich or not rich'),
    ('"priority" and idle',       'idle and (star or (rich and north) or (rich and not idle and south))')
) v(audience, written);
SELECT count(*) AS members, min(m), max(m) FROM segment.members('shop', 'priority') m;
SELECT array_agg(k ORDER BY k::int8) FILTER (WHERE k::int8 < 100) AS first_keys
FROM segment.members_text('shop', 'priority') k;
SELECT segment.audience('shop', 'rich_north') OPERATOR(segment.=) segment.audience('shop', 'rich and north') AS same_set;

-- has_tag takes a segment name; tags lists tags only
SELECT segment.has_tag('shop', 4, 'priority') AS "4 (star)",
       segment.has_tag('shop', 5, 'priority') AS "5",
       segment.has_tag('shop', '4', 'outside') AS "'4' outside",
       segment.has_tag('shop', 99999, 'outside') AS "unknown key";
SELECT count(*) AS checked,
       count(*) FILTER (WHERE segment.has_tag('shop', id, 'priority')
                        IS DISTINCT FROM (id IN (SELECT segment.members('shop', 'priority')))) AS wrong
FROM shop_customer WHERE id <= 300;
SELECT segment.tags('shop', 4);

-- explain on a segment: the tags it expands to, and the segments met
SELECT e -> 'audience' AS audience, e -> 'value' AS value,
       jsonb_path_query_array(e, '$.tags[*].tag') AS tags,
       e -> 'segments' AS segments
FROM segment.explain('shop', 4, 'priority') e;
SELECT e -> 'value' AS value, jsonb_path_query_array(e, '$.tags[*].tag') AS tags
FROM segment.explain('shop', 5, 'rich_north or idle') e;

------------------------------------------------------------------------
-- Definition errors: nothing changes
------------------------------------------------------------------------
SELECT pg_temp.catalog() AS before \gset
-- syntax and names, with the position in the audience
SELECT segment.create_segment('shop', 'bad', 'rich and and north');
SELECT segment.create_segment('shop', 'bad', 'rich and nrth');
SELECT segment.create_segment('shop', 'bad', 'rich or Priority');
SELECT segment.create_segment('shop', 'bad', 'rich and big_branch');
SELECT segment.create_segment('shop', 'bad', 'rich or big_branches');
SELECT segment.create_segment('shop', 'bad', 'rich and tier.gold');
SELECT segment.create_segment('shop', 'bad', '');
-- cycles
SELECT segment.create_segment('shop', 'loop', 'rich or loop');
SELECT segment.alter_segment('rich_north', 'rich and rich_north');
SELECT segment.alter_segment('rich_north', 'priority and north');
SELECT segment.alter_segment('rich_active', 'rich and not outside');
-- names: one namespace for tags, segments, schemes and scorecards
SELECT segment.create_segment('shop', 'rich', 'north');
SELECT segment.create_segment('shop', 'priority', 'north');
SELECT segment.create_tag('shop', 'priority', 'aum > 0');
SELECT segment.create_segment('shop', 'and', 'north');
SELECT segment.create_segment('shop', 'two words', 'north');
SELECT segment.create_segment('shop', 'x', NULL);
SELECT segment.create_segment('nobody', 'x', 'north');
-- alter and drop
SELECT segment.alter_segment('rich_north');
SELECT segment.alter_segment('nothing', 'north');
SELECT segment.drop_segment('nothing');
SELECT segment.drop_segment('rich_north');
SELECT segment.drop_tag('north');
SELECT segment.drop_tag('star');
SELECT pg_temp.catalog() = :'before' AS catalog_unchanged;
\set SHOW_CONTEXT errors
-- the plpgsql context of a definition error
SELECT segment.drop_segment('rich_active');
\set SHOW_CONTEXT never

-- their SQLSTATEs
SELECT q, regress.sqlstate_of(q) FROM (VALUES
    ($$SELECT segment.create_segment('shop', 'bad', 'rich and and north')$$),
    ($$SELECT segment.create_segment('shop', 'bad', 'rich and nrth')$$),
    ($$SELECT segment.create_segment('shop', 'bad', 'rich and big_branch')$$),
    ($$SELECT segment.create_segment('shop', 'bad', 'tier.gold')$$),
    ($$SELECT segment.create_segment('shop', 'bad', repeat('x', 70))$$),
    ($$SELECT segment.create_segment('shop', 'loop', 'loop')$$),
    ($$SELECT segment.alter_segment('rich_north', 'priority')$$),
    ($$SELECT segment.create_segment('shop', 'rich', 'north')$$),
    ($$SELECT segment.create_segment('shop', 'priority', 'north')$$),
    ($$SELECT segment.create_tag('shop', 'outside', 'true')$$),
    ($$SELECT segment.create_segment('shop', 'not', 'north')$$),
    ($$SELECT segment.create_segment('shop', 'x', NULL)$$),
    ($$SELECT segment.create_segment('nobody', 'x', 'north')$$),
    ($$SELECT segment.alter_segment('rich_north')$$),
    ($$SELECT segment.alter_segment('nothing', 'north')$$),
    ($$SELECT segment.drop_segment('nothing')$$),
    ($$SELECT segment.drop_segment('rich_north')$$),
    ($$SELECT segment.drop_tag('north')$$)) v(q);
SELECT pg_temp.catalog() = :'before' AS catalog_unchanged;

------------------------------------------------------------------------
-- alter_segment, history
------------------------------------------------------------------------
SELECT segment.alter_segment('rich_north', description => 'branch 1, AUM of 500,000 or more');
SELECT segment.alter_segment('outside', audience => 'not priority and not idle');
SELECT segment.count('shop', 'outside') = segment.count('shop', 'not priority and not idle') AS altered;
SELECT name, audience, description, version FROM segment.segment WHERE name IN ('rich_north', 'outside') ORDER BY name;
SELECT name, action, old_definition, new_definition FROM segment.definition_history ORDER BY history_id;

------------------------------------------------------------------------
-- Reading errors: the position of the name in the caller's audience
------------------------------------------------------------------------
\set SHOW_CONTEXT errors
SELECT segment.count('shop', 'north and big_branches');
SELECT segment.count('shop', 'priority or idle and nobody');
-- a tag reached through segments that cannot be read now
SELECT segment.alter_tag('north', active => false);
SELECT segment.count('shop', 'idle or priority');
SELECT segment.has_tag('shop', 1, 'priority');
SELECT segment.alter_tag('north', active => true);
SELECT segment.create_tag('shop', 'fresh', 'aum < 1000') > 0 AS created;
SELECT segment.create_segment('shop', 'fresh_faces', 'fresh and not star') > 0 AS created;
SELECT segment.count('shop', 'rich or fresh_faces');
-- a cycle written into the catalog behind the functions' back
UPDATE segment.segment SET audience = 'star or outside' WHERE name = 'rich_north';
SELECT segment.count('shop', 'idle or priority');
-- a stored audience that no longer parses is reported in its own text
UPDATE segment.segment SET audience = 'rich and (north' WHERE name = 'rich_north';
SELECT segment.count('shop', 'idle or priority');
UPDATE segment.segment SET audience = 'rich and north' WHERE name = 'rich_north';
\set SHOW_CONTEXT never

------------------------------------------------------------------------
-- Scheme buckets and scorecard bands (state written by hand)
------------------------------------------------------------------------
INSERT INTO segment.scheme (subject_id, name)
SELECT subject_id, 'tier' FROM segment.subject WHERE name = 'shop';
INSERT INTO segment.scheme_bucket (scheme_id, position, name, rule)
SELECT scheme_id, p, n, r FROM segment.scheme,
       (VALUES (1, 'gold', 'aum >= 800000'), (2, 'silver', 'aum >= 300000'), (3, 'bronze', 'true')) v(p, n, r)
WHERE name = 'tier';
SELECT segment.count('shop', 'tier.gold');
INSERT INTO segment.bucket_state (scheme_id, bucket, members, member_count, as_of, run_id)
SELECT c.scheme_id, b.name, m.s, segment.cardinality(m.s), '2026-01-15', 1
FROM segment.scheme c JOIN segment.scheme_bucket b USING (scheme_id),
     LATERAL (SELECT segment.memberset_agg(id) AS s FROM shop_customer
               WHERE CASE WHEN aum >= 800000 THEN 'gold' WHEN aum >= 300000 THEN 'silver' ELSE 'bronze' END = b.name) m
WHERE c.name = 'tier';

INSERT INTO segment.scorecard (subject_id, name)
SELECT subject_id, 'engagement' FROM segment.subject WHERE name = 'shop';
INSERT INTO segment.scorecard_band (scorecard_id, name, min_score, max_score)
SELECT scorecard_id, n, lo, hi FROM segment.scorecard,
       (VALUES ('low', NULL, 4), ('mid', 4, 9.5), ('high', 9.5, NULL)) v(n, lo, hi)
WHERE name = 'engagement';
SELECT segment.count('shop', 'engagement.high');
-- score = logins (NULL: no score)
INSERT INTO segment.score_state (scorecard_id, score, members, member_count, as_of, run_id)
SELECT c.scorecard_id, s.logins, s.m, segment.cardinality(s.m), '2026-01-15', 1
FROM segment.scorecard c,
     (SELECT logins, segment.memberset_agg(id) AS m FROM shop_customer WHERE logins IS NOT NULL GROUP BY logins) s
WHERE c.name = 'engagement';

SELECT audience, segment.count('shop', audience) AS count, pg_temp.sql_count(pred) AS sql_count
FROM (VALUES
    ('tier.gold',                         'aum >= 800000'),
    ('tier.silver and north',             'aum >= 300000 and aum < 800000 and branch = 1'),
    ('tier.bronze or tier.gold',          'aum < 300000 or aum >= 800000'),
    ('engagement.low',                    'logins < 4'),
    ('engagement.mid',                    'logins >= 4 and logins < 9.5'),
    ('engagement.high and not tier.gold', 'logins >= 9.5 and aum < 800000'),
    ('not engagement.low',                'not coalesce(logins < 4, false)')
) v(audience, pred);

-- segments over buckets and bands
SELECT segment.create_segment('shop', 'gold_engaged', 'tier.gold and (engagement.mid or engagement.high)') > 0 AS created;
SELECT segment.count('shop', 'gold_engaged') AS count,
       pg_temp.sql_count('aum >= 800000 and logins >= 4') AS sql_count;

-- errors
\set SHOW_CONTEXT errors
SELECT segment.count('shop', 'tier.platinum');
SELECT segment.count('shop', 'engagement.top or north');
SELECT segment.count('branch', 'tier.gold');
SELECT segment.create_segment('shop', 'bad', 'engagement.top');
UPDATE segment.scheme SET active = false WHERE name = 'tier';
SELECT segment.count('shop', 'north or gold_engaged');
UPDATE segment.scheme SET active = true WHERE name = 'tier';
DELETE FROM segment.score_state;
SELECT segment.count('shop', 'engagement.low');
\set SHOW_CONTEXT never
-- a band with no score in it is empty once the scorecard is refreshed
INSERT INTO segment.score_state (scorecard_id, score, members, member_count, as_of, run_id)
SELECT scorecard_id, 2, '{1,2,3}', 3, '2026-01-15', 2 FROM segment.scorecard WHERE name = 'engagement';
SELECT segment.count('shop', 'engagement.low') AS low, segment.count('shop', 'engagement.high') AS high;

------------------------------------------------------------------------
-- overlap
------------------------------------------------------------------------
SELECT * FROM segment.overlap('shop', ARRAY['rich', 'north', 'priority', 'star and idle', 'tier.gold']);
-- against SQL over the member lists
WITH aud(a, i) AS (SELECT * FROM unnest(ARRAY['rich_north', 'priority', 'outside or star', 'idle']) WITH ORDINALITY u(a, i)),
     mem AS (SELECT a, m FROM aud, segment.members('shop', a) m),
     pairs AS (SELECT x.a AS a, y.a AS b FROM aud x JOIN aud y ON x.i < y.i)
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE o.a_members = (SELECT count(*) FROM mem WHERE mem.a = p.a)
                          AND o.b_members = (SELECT count(*) FROM mem WHERE mem.a = p.b)
                          AND o.both_members = (SELECT count(*) FROM mem x JOIN mem y USING (m)
                                                 WHERE x.a = p.a AND y.a = p.b)
                          AND o.jaccard = o.both_members::float8
                                          / (SELECT count(DISTINCT m) FROM mem WHERE mem.a IN (p.a, p.b))) AS agree
FROM pairs p
JOIN segment.overlap('shop', ARRAY['rich_north', 'priority', 'outside or star', 'idle']) o
  ON o.a = p.a AND o.b = p.b;
-- empty sets, one audience, none, the same audience twice
SELECT * FROM segment.overlap('shop', ARRAY['star and not star', 'rich and not rich', 'star']);
SELECT * FROM segment.overlap('shop', ARRAY['rich']);
SELECT * FROM segment.overlap('shop', '{}');
SELECT a, b, jaccard FROM segment.overlap('shop', ARRAY['north', 'north']);
\set SHOW_CONTEXT errors
SELECT * FROM segment.overlap('shop', ARRAY['rich', 'north and', 'star']);
SELECT * FROM segment.overlap('shop', ARRAY['rich', 'north', 'big_branch']);
SELECT * FROM segment.overlap('shop', ARRAY['rich', NULL]);
SELECT * FROM segment.overlap('nobody', ARRAY['rich', 'north']);
\set SHOW_CONTEXT never

------------------------------------------------------------------------
-- drop_tag and drop_segment: refused while used, or cascade
------------------------------------------------------------------------
SELECT name, audience FROM segment.segment WHERE subject_id = (SELECT subject_id FROM segment.subject WHERE name = 'shop') ORDER BY name;
SELECT pg_temp.catalog() AS before \gset
SELECT segment.drop_tag('rich');
SELECT segment.drop_segment('rich_north');
SELECT pg_temp.catalog() = :'before' AS catalog_unchanged;
-- cascade drops the users, and their users, each with a history row
SELECT segment.drop_segment('rich_north', cascade => true);
SELECT name FROM segment.segment ORDER BY name;
SELECT name, action, old_definition ->> 'audience' AS audience FROM segment.definition_history
 WHERE action = 'drop' ORDER BY history_id;
SELECT segment.drop_tag('rich', cascade => true);
SELECT name FROM segment.segment ORDER BY name;
-- unused: no cascade needed
SELECT segment.drop_segment('fresh_faces');
SELECT segment.drop_tag('fresh');
-- a segment name is free again once dropped, for a tag too
SELECT segment.create_tag('shop', 'fresh_faces', 'aum < 1000') > 0 AS tag_created;
-- unregister_subject drops its segments with history
SELECT segment.unregister_subject('branch');
SELECT name, action FROM segment.definition_history WHERE name = 'big_branches' ORDER BY history_id;

-- leave nothing behind for the tests that follow
SELECT segment.unregister_subject('shop');
SELECT count(*) AS segments_left FROM segment.segment;
DROP TABLE shop_customer, shop_branch;
