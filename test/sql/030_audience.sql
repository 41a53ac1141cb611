-- Audiences and the reading functions over hand-made state: the member sets
-- a refresh would write are built here with segment.memberset_agg, and every
-- answer is compared with plain SQL over the same ids (table truth).
SET search_path = public;

\i test/fixtures/regress.psql

------------------------------------------------------------------------
-- Fixture: subject "customer" (bigint keys)
------------------------------------------------------------------------
CREATE TABLE cust (id int8 PRIMARY KEY);   -- stands in for the wide table
INSERT INTO segment.subject (name, relation, key_column, key_type)
VALUES ('customer', 'cust', 'id', 'int8');

-- What each tag means, per customer. Customers whose id is a multiple of
-- 1000 were deleted, so they are outside the universe.
CREATE TABLE truth AS
SELECT id,
       id % 2 = 0                              AS hv,      -- high_value
       id % 3 = 0                              AS mat,     -- maturing
       id % 5 = 0 OR id = 7                    AS dor,     -- dormant (+ manual 7)
       id BETWEEN 30000 AND 70000              AS yng,     -- young
       id < 200                                AS pay,     -- payroll
       id <= 60 AND (id % 2 = 0 OR id % 3 <> 0) AS vip,    -- manual, some expired
       id % 7 = 0                              AS spaced,  -- "my tag"
       id % 11 = 0                             AS kw,      -- "and"
       id % 13 = 0                             AS cjk,     -- 高净值
       id % 17 = 0                             AS dotted   -- "x.y"
FROM generate_series(1, 120000) id
WHERE id % 1000 <> 0;

INSERT INTO segment.tag (subject_id, name, rule)
SELECT s.subject_id, t.name, t.rule
FROM segment.subject s,
     (VALUES ('high_value', 'id % 2 = 0'), ('maturing', 'id % 3 = 0'),
             ('dormant', 'id % 5 = 0'), ('young', 'id between 30000 and 70000'),
             ('payroll', 'id < 200'), ('vip', NULL),
             ('my tag', 'id % 7 = 0'), ('and', 'id % 11 = 0'),
             ('高净值', 'id % 13 = 0'), ('x.y', 'id % 17 = 0'),
             ('new_rule', 'id > 5'), ('retired', 'id > 0')) t(name, rule)
WHERE s.name = 'customer';
UPDATE segment.tag SET active = false WHERE name = 'retired';

-- the rule results a refresh would have stored (new_rule: never refreshed)
INSERT INTO segment.tag_state (tag_id, members, member_count, entered, exited, as_of, refreshed_at, run_id)
SELECT t.tag_id, r.members, segment.cardinality(r.members), 0, 0, current_date, now(), 1
FROM segment.tag t
JOIN (SELECT 'high_value' AS name, segment.memberset_agg(id) FILTER (WHERE id % 2 = 0) AS members FROM truth
      UNION ALL SELECT 'maturing', segment.memberset_agg(id) FILTER (WHERE id % 3 = 0) FROM truth
      UNION ALL SELECT 'dormant', segment.memberset_agg(id) FILTER (WHERE id % 5 = 0) FROM truth
      UNION ALL SELECT 'young', segment.memberset_agg(id) FILTER (WHERE yng) FROM truth
      UNION ALL SELECT 'payroll', segment.memberset_agg(id) FILTER (WHERE pay) FROM truth
      UNION ALL SELECT 'my tag', segment.memberset_agg(id) FILTER (WHERE spaced) FROM truth
      UNION ALL SELECT 'and', segment.memberset_agg(id) FILTER (WHERE kw) FROM truth
      UNION ALL SELECT '高净值', segment.memberset_agg(id) FILTER (WHERE cjk) FROM truth
      UNION ALL SELECT 'x.y', segment.memberset_agg(id) FILTER (WHERE dotted) FROM truth
      UNION ALL SELECT 'retired', segment.memberset_agg(id) FROM truth) r USING (name);

INSERT INTO segment.subject_state (subject_id, universe, member_count, as_of, refreshed_at, run_id)
SELECT s.subject_id, (SELECT segment.memberset_agg(id) FROM truth), (SELECT count(*) FROM truth),
       current_date, now(), 1
FROM segment.subject s WHERE s.name = 'customer';

-- manual tag vip: even ids never expire, odd multiples of 3 have expired,
-- the other odd ids expire tomorrow
INSERT INTO segment.manual_tag (tag_id, key, member_id, expires_at)
SELECT t.tag_id, g::text, g,
       CASE WHEN g % 2 = 0 THEN NULL
            WHEN g % 3 = 0 THEN now() - interval '1 day'
            ELSE now() + interval '1 day' END
FROM segment.tag t, generate_series(1, 60) g WHERE t.name = 'vip';
-- manual additions to a rule tag: 7 counts, 11 has expired, 10 is already in
INSERT INTO segment.manual_tag (tag_id, key, member_id, expires_at)
SELECT t.tag_id, m.k::text, m.k, m.e
FROM segment.tag t,
     (VALUES (7, NULL::timestamptz), (11, now() - interval '1 hour'), (10, NULL)) m(k, e)
WHERE t.name = 'dormant';

-- count and members of an audience against the same predicate in SQL
CREATE FUNCTION pg_temp.check(audience text, predicate text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    got bigint; want bigint; missing bigint; extra bigint;
BEGIN
    got := segment.count('customer', audience);
    EXECUTE format('SELECT count(*) FROM truth WHERE %s', predicate) INTO want;
    EXECUTE format('SELECT count(*) FROM (SELECT id FROM truth WHERE %s
                    EXCEPT SELECT segment.members(%L, %L)) x', predicate, 'customer', audience) INTO missing;
    EXECUTE format('SELECT count(*) FROM (SELECT segment.members(%L, %L)
                    EXCEPT SELECT id FROM truth WHERE %s) x', 'customer', audience, predicate) INTO extra;
    RETURN format('count %s, expected %s, missing %s, extra %s', got, want, missing, extra);
END $$;

------------------------------------------------------------------------
-- Evaluation: names, and / or / not, precedence, parentheses
------------------------------------------------------------------------
SELECT audience, pg_temp.check(audience, predicate) FROM (VALUES
    ('high_value',                                   'hv'),
    ('high_value and maturing',                      'hv and mat'),
    ('high_value or maturing',                       'hv or mat'),
    ('high_value or maturing and not dormant',       'hv or (mat and not dor)'),
    ('(high_value or maturing) and not dormant',     '(hv or mat) and not dor'),
    ('not high_value',                               'not hv'),
    ('not high_value and young',                     '(not hv) and yng'),
    ('not (high_value or young)',                    'not (hv or yng)'),
    ('not high_value and not young',                 'not hv and not yng'),
    ('not not payroll',                              'pay'),
    ('NOT dormant AND young Or payroll',             '((not dor) and yng) or pay'),
    ('high_value and not maturing and not dormant and young', 'hv and not mat and not dor and yng'),
    ('maturing and not (dormant or not young)',      'mat and not (dor or not yng)'),
    ('((high_value))',                               'hv'),
    ('high_value and high_value and not high_value', 'false'),
    ('young or not young',                           'true'),
    ('vip',                                          'vip'),
    ('vip or payroll and not high_value',            'vip or (pay and not hv)'),
    ('dormant',                                      'dor'),
    ('"my tag" and "and"',                           'spaced and kw'),
    ('高净值 or "my tag"',                           'cjk or spaced'),
    ('"x.y" and not "高净值"',                       'dotted and not cjk'),
    (E'high_value\n  and\tmaturing\n',              'hv and mat')
) v(audience, predicate);

-- "a or b and not c" is "a or (b and (not c))", not "(a or b) and not c"
SELECT segment.count('customer', 'high_value or maturing and not dormant')
     = segment.count('customer', 'high_value or (maturing and (not dormant))') AS and_binds_tighter,
       segment.count('customer', 'high_value or maturing and not dormant')
     <> segment.count('customer', '(high_value or maturing) and not dormant') AS differs_from_left_to_right;

-- members: ascending keys; members_text: the same keys as text
SELECT array_agg(m) AS vip_payroll_not_maturing
FROM segment.members('customer', 'vip and payroll and not maturing') m;
SELECT array_agg(id ORDER BY id) AS expected FROM truth WHERE vip AND pay AND NOT mat;
SELECT array_agg(k) AS as_text FROM segment.members_text('customer', 'vip and payroll and not maturing') k;
SELECT count(*) AS rows, count(*) FILTER (WHERE m::text <> k) AS different
FROM (SELECT m, row_number() OVER () AS n FROM segment.members('customer', 'maturing or young') m) a
JOIN (SELECT k, row_number() OVER () AS n FROM segment.members_text('customer', 'maturing or young') k) b USING (n);
-- members are keys: join them back to the customer table
INSERT INTO cust SELECT id FROM truth;
SELECT count(*) AS customers, min(c.id), max(c.id)
FROM cust c
JOIN segment.members('customer', 'high_value and maturing') m(id) ON m.id = c.id;
-- the first rows only: the set-returning function stops early
SELECT m FROM segment.members('customer', 'young and dormant') m LIMIT 3;

-- audience: snapshot an audience into a table, read it back with keys
CREATE TABLE snapshot AS
SELECT 'spring campaign' AS name, segment.audience('customer', 'vip and not maturing') AS members;
SELECT name, segment.cardinality(members),
       members OPERATOR(segment.=) (SELECT segment.memberset_agg(id) FROM truth WHERE vip AND NOT mat) AS same_set
FROM snapshot;
SELECT array_agg(k) AS keys FROM snapshot, segment.keys('customer', members) k;
SELECT segment.audience('customer', 'payroll and maturing and dormant');

-- expiry is checked at read time: expire one more vip row
SELECT segment.count('customer', 'vip') AS before;
UPDATE segment.manual_tag SET expires_at = now() - interval '1 second'
WHERE member_id = 2 AND tag_id = (SELECT tag_id FROM segment.tag WHERE name = 'vip');
SELECT segment.count('customer', 'vip') AS after, segment.has_tag('customer', 2, 'vip') AS has_2;
UPDATE segment.manual_tag SET expires_at = NULL
WHERE member_id = 2 AND tag_id = (SELECT tag_id FROM segment.tag WHERE name = 'vip');

------------------------------------------------------------------------
-- has_tag and tags
------------------------------------------------------------------------
SELECT segment.has_tag('customer', 4, 'high_value') AS "4 high_value",
       segment.has_tag('customer', 5, 'high_value') AS "5 high_value",
       segment.has_tag('customer', '4', 'high_value') AS "'4' high_value",
       segment.has_tag('customer', 5, 'vip') AS "5 vip (expires tomorrow)",
       segment.has_tag('customer', 9, 'vip') AS "9 vip (expired)",
       segment.has_tag('customer', 7, 'dormant') AS "7 dormant (manual)",
       segment.has_tag('customer', 11, 'dormant') AS "11 dormant (expired)",
       segment.has_tag('customer', 2000, 'high_value') AS "2000 (deleted)",
       segment.has_tag('customer', 4000000000, 'high_value') AS "unknown key";
SELECT segment.tags('customer', 30) AS "30", segment.tags('customer', '7') AS "7",
       segment.tags('customer', 1) AS "1", segment.tags('customer', 4000000000) AS unknown;
-- has_tag and tags agree with truth for the first 3000 customers
SELECT count(*) AS checked,
       count(*) FILTER (WHERE segment.has_tag('customer', id, 'vip') <> vip) AS vip_wrong,
       count(*) FILTER (WHERE segment.has_tag('customer', id, 'dormant') <> dor) AS dormant_wrong,
       count(*) FILTER (WHERE segment.has_tag('customer', id::text, 'young') <> yng) AS young_wrong,
       count(*) FILTER (WHERE segment.tags('customer', t.id) IS DISTINCT FROM e.expected) AS tags_wrong
FROM truth t
CROSS JOIN LATERAL (
    SELECT COALESCE(array_agg(n ORDER BY n COLLATE "C"), '{}') AS expected
    FROM (VALUES ('high_value', t.hv), ('maturing', t.mat), ('dormant', t.dor),
                 ('young', t.yng), ('payroll', t.pay), ('vip', t.vip), ('my tag', t.spaced),
                 ('and', t.kw), ('高净值', t.cjk), ('x.y', t.dotted)) v(n, f)
    WHERE f) e
WHERE t.id <= 3000 OR t.id BETWEEN 29990 AND 30010;

------------------------------------------------------------------------
-- A text-keyed subject: member ids come from segment.keymap
------------------------------------------------------------------------
CREATE TABLE acct (code text PRIMARY KEY);
INSERT INTO segment.subject (name, relation, key_column, key_type)
VALUES ('account', 'acct', 'code', 'text');
INSERT INTO segment.keymap (subject_id, key, member_id)
SELECT s.subject_id, 'AC-' || lpad(g::text, 4, '0'), g
FROM segment.subject s, generate_series(1, 500) g WHERE s.name = 'account'
UNION ALL
SELECT s.subject_id, '1001', 501 FROM segment.subject s WHERE s.name = 'account';
INSERT INTO segment.tag (subject_id, name, rule)
SELECT s.subject_id, t.name, t.rule FROM segment.subject s,
       (VALUES ('acct_gold', 'balance > 1000'), ('acct_watch', NULL)) t(name, rule)
WHERE s.name = 'account';
INSERT INTO segment.tag_state (tag_id, members, member_count, entered, exited, as_of, refreshed_at, run_id)
SELECT t.tag_id, m.s, segment.cardinality(m.s), 0, 0, current_date, now(), 2
FROM segment.tag t,
     (SELECT segment.memberset_agg(g) AS s FROM generate_series(1, 501) g WHERE g % 4 = 0 OR g = 501) m
WHERE t.name = 'acct_gold';
INSERT INTO segment.manual_tag (tag_id, key, member_id)
SELECT t.tag_id, k.key, k.member_id FROM segment.tag t, segment.keymap k
WHERE t.name = 'acct_watch' AND k.key IN ('AC-0004', 'AC-0005');

SELECT segment.count('account', 'acct_gold') AS gold,
       segment.count('account', 'acct_gold and not acct_watch') AS gold_not_watched,
       segment.count('account', 'acct_gold or acct_watch') AS gold_or_watched;
-- members_text maps member ids back to keys, in member-id order
SELECT count(*) AS rows,
       count(*) FILTER (WHERE k NOT IN (SELECT key FROM segment.keymap
                                        WHERE (member_id % 4 = 0 OR member_id = 501) AND member_id <> 4)) AS wrong
FROM segment.members_text('account', 'acct_gold and not acct_watch') k;
SELECT k FROM segment.members_text('account', 'acct_watch or acct_gold') k LIMIT 4;
SELECT k FROM segment.members_text('account', 'acct_gold and not acct_watch') k OFFSET 123;
SELECT array_agg(k) AS keys FROM segment.keys('account', '{4,5,501,9999}') k;
SELECT segment.has_tag('account', 'AC-0008', 'acct_gold') AS "AC-0008 gold",
       segment.has_tag('account', 'AC-0005', 'acct_gold') AS "AC-0005 gold",
       segment.has_tag('account', 'AC-0005', 'acct_watch') AS "AC-0005 watched",
       segment.has_tag('account', 'nope', 'acct_gold') AS "unknown key",
       segment.has_tag('account', 1001, 'acct_gold') AS "1001 gold",
       segment.has_tag('account', 77, 'acct_gold') AS "77 (no such key)";
SELECT segment.tags('account', 'AC-0004') AS "AC-0004", segment.tags('account', 'nope') AS nope,
       segment.tags('account', 1001) AS "1001";

------------------------------------------------------------------------
-- Errors
------------------------------------------------------------------------
-- syntax errors point into the audience text
SELECT segment.count('customer', 'high_value and and maturing');
SELECT segment.count('customer', '(high_value or maturing');
SELECT segment.count('customer', 'high_value maturing');
SELECT segment.count('customer', 'high_value)');
SELECT segment.count('customer', 'high_value & maturing');
SELECT segment.count('customer', 'high_value || maturing');
SELECT segment.count('customer', '!high_value');
SELECT segment.count('customer', 'high_value or');
SELECT segment.count('customer', '(high_value or )');
SELECT segment.count('customer', 'not');
SELECT segment.count('customer', '2024_campaign');
SELECT segment.count('customer', 'value_tier.');
SELECT segment.count('customer', '"unterminated and x');
SELECT segment.count('customer', 'high_value and ""');
SELECT segment.count('customer', E'high_value and\n   maturing or or young');
SELECT segment.count('customer', '');
SELECT segment.count('customer', '   ');
SELECT segment.count('customer', repeat('n', 64));
-- names that cannot be evaluated
SELECT segment.count('customer', 'high_value and zzz');
SELECT segment.count('customer', 'maturing or High_Value');
SELECT segment.count('customer', 'young and value_tier.affluent');
SELECT segment.count('customer', 'high_value and new_rule');
SELECT segment.count('customer', 'retired or young');
SELECT segment.count('customer', 'young and acct_gold');
SELECT segment.count('account', 'not acct_watch');
SELECT segment.count('nobody', 'high_value');
SELECT segment.members('account', 'acct_gold');
-- has_tag / tags
SELECT segment.has_tag('customer', -1, 'high_value');
SELECT segment.has_tag('customer', 4294967296, 'high_value');
SELECT segment.has_tag('customer', 'abc', 'high_value');
SELECT segment.has_tag('customer', 1, 'zzz');
SELECT segment.has_tag('customer', 1, 'acct_gold');
SELECT segment.has_tag('customer', 1, 'retired');
SELECT segment.has_tag('customer', 1, 'new_rule');
SELECT segment.has_tag('nobody', 1, 'high_value');
SELECT segment.tags('customer', -5);
-- and their SQLSTATEs
SELECT q, regress.sqlstate_of(q) FROM (VALUES
    ($$SELECT segment.count('customer', 'high_value and and maturing')$$),
    ($$SELECT segment.count('customer', '')$$),
    ($$SELECT segment.count('customer', '"open')$$),
    ($$SELECT segment.count('customer', 'a b')$$),
    ($$SELECT segment.count('customer', repeat('n', 64))$$),
    ($$SELECT segment.count('customer', 'zzz')$$),
    ($$SELECT segment.count('customer', 'value_tier.affluent')$$),
    ($$SELECT segment.count('customer', 'acct_gold')$$),
    ($$SELECT segment.count('customer', 'new_rule')$$),
    ($$SELECT segment.count('customer', 'retired')$$),
    ($$SELECT segment.count('account', 'not acct_watch')$$),
    ($$SELECT segment.count('nobody', 'x')$$),
    ($$SELECT segment.members('account', 'acct_gold')$$),
    ($$SELECT segment.has_tag('customer', -1, 'high_value')$$),
    ($$SELECT segment.has_tag('customer', 'abc', 'high_value')$$),
    ($$SELECT segment.has_tag('customer', 1, 'zzz')$$),
    ($$SELECT segment.has_tag('customer', 1, 'retired')$$),
    ($$SELECT segment.has_tag('customer', 1, 'new_rule')$$)) v(q);
-- a failed call leaves nothing behind: the next call works
SELECT segment.count('customer', 'payroll and not vip');

DROP TABLE snapshot;
