-- segment.memberset: the member set type, its operators, functions and
-- aggregates. Every result is checked against plain SQL where one exists.
SET search_path = segment, public;
SET extra_float_digits = 0;

\i test/fixtures/regress.psql

------------------------------------------------------------------------
-- Text I/O
------------------------------------------------------------------------
SELECT '{}'::memberset AS empty,
       '{1,2,5}'::memberset AS simple,
       ' { 5 , 1,2 ,2,  1 } '::memberset AS unsorted_duplicates,
       '{0,4294967295}'::memberset AS extremes,
       '{+7,-0}'::memberset AS signs;

-- round trip through text of sets using every container kind
CREATE TABLE ms_shapes (shape text PRIMARY KEY, s memberset);
INSERT INTO ms_shapes VALUES
    ('array',  memberset(ARRAY(SELECT g * 17 FROM generate_series(0, 3000) g))),
    ('bitset', memberset(ARRAY(SELECT g FROM generate_series(0, 140000) g WHERE g % 7 <> 3))),
    ('run',    memberset(ARRAY(SELECT g FROM generate_series(100000, 330000) g))),
    ('mixed',  memberset(ARRAY(SELECT g FROM generate_series(0, 400000) g
                               WHERE g < 65536 * 2 OR g % 11 = 0 OR (g > 300000 AND g % 13 = 1)))),
    ('high',   '{4294967295,4294967294,4294901760,65535,65536}'),
    ('few',    memberset(ARRAY(SELECT g FROM generate_series(0, 1000) g
                               UNION ALL SELECT 70000 UNION ALL SELECT 70005
                               UNION ALL SELECT g FROM generate_series(140000, 150000) g))),
    ('empty',  '{}');
SELECT shape, (stats).* FROM (SELECT shape, memberset_stats(s) AS stats FROM ms_shapes) x ORDER BY shape;
SELECT shape, s::text::memberset = s AS text_round_trip FROM ms_shapes ORDER BY shape;
-- cardinality (read in place) agrees with the ids actually stored
SELECT shape, cardinality(s), # s AS hash_op, (SELECT count(*) FROM member_ids(s)) AS counted
FROM ms_shapes ORDER BY shape;

-- bad text input: message names the bad token, SQLSTATE 22P02 / 22003
SELECT '{1,a}'::memberset;
SELECT '{1,2'::memberset;
SELECT '1,2'::memberset;
SELECT '{1,,2}'::memberset;
SELECT '{1 2}'::memberset;
SELECT '{1}x'::memberset;
SELECT '{-}'::memberset;
SELECT '{-1}'::memberset;
SELECT '{4294967296}'::memberset;
SELECT '{99999999999999999999999}'::memberset;
SELECT q, regress.sqlstate_of(q) FROM (VALUES
    ($$SELECT '{1,a}'::segment.memberset$$),
    ($$SELECT '{1,2'::segment.memberset$$),
    ($$SELECT ''::segment.memberset$$),
    ($$SELECT '{1}x'::segment.memberset$$),
    ($$SELECT '{-1}'::segment.memberset$$),
    ($$SELECT '{4294967296}'::segment.memberset$$),
    ($$SELECT segment.memberset(ARRAY[1, NULL]::int8[])$$),
    ($$SELECT segment.memberset(ARRAY[-1]::int8[])$$),
    ($$SELECT segment.memberset_agg(-5)$$)) v(q);

------------------------------------------------------------------------
-- Binary I/O (COPY BINARY round trip; corrupted input is rejected)
------------------------------------------------------------------------
COPY ms_shapes TO '/tmp/segment_regress_memberset.bin' (FORMAT binary);
CREATE TABLE ms_shapes_copy (LIKE ms_shapes);
COPY ms_shapes_copy FROM '/tmp/segment_regress_memberset.bin' (FORMAT binary);
SELECT a.shape, a.s = b.s AS equal, memberset_send(a.s) = memberset_send(b.s) AS same_bytes
FROM ms_shapes a JOIN ms_shapes_copy b USING (shape) ORDER BY shape;

-- Write a one-column binary COPY file holding payload, then load it.
CREATE FUNCTION pg_temp.recv(payload bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    f bytea := '\x5047434f50590aff0d0a00'::bytea || '\x0000000000000000'::bytea
               || '\x0001'::bytea || int4send(length(payload)) || payload || '\xffff'::bytea;
    lo oid := lo_from_bytea(0, f);
    r text;
    d text;
BEGIN
    PERFORM lo_export(lo, '/tmp/segment_regress_recv.bin');
    PERFORM lo_unlink(lo);
    CREATE TEMP TABLE recv_target (s segment.memberset);
    COPY recv_target FROM '/tmp/segment_regress_recv.bin' (FORMAT binary);
    SELECT s::text INTO r FROM recv_target;
    DROP TABLE recv_target;
    RETURN r;
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN sqlstate || ': ' || sqlerrm || ' / ' || d;
END $$;

-- a valid payload built by hand: format byte 1, cookie 12346, two containers
-- (descriptors, offsets, then contents) holding {1,2} and {65536+3}
SELECT pg_temp.recv('\x01'::bytea || '\x3a300000' || '\x02000000'
                    || '\x00000100' || '\x01000000'       -- key 0 card 2; key 1 card 1
                    || '\x18000000' || '\x1c000000'       -- offsets 24, 28
                    || '\x01000200' || '\x0300');         -- {1,2} and {3}
SELECT pg_temp.recv(memberset_send('{1,2,65539}'));
SELECT pg_temp.recv(memberset_send((SELECT s FROM ms_shapes WHERE shape = 'mixed'))) =
       (SELECT s::text FROM ms_shapes WHERE shape = 'mixed') AS mixed_round_trip;
-- corrupted payloads
SELECT pg_temp.recv('\x02'::bytea || substring(memberset_send('{1}') from 2));   -- unknown format
SELECT pg_temp.recv('\x01'::bytea);                                            -- nothing
SELECT pg_temp.recv('\x0112345678'::bytea);                                    -- bad cookie
SELECT pg_temp.recv('\x01'::bytea || '\x3a300000' || '\x02000000'
                    || '\x01000000' || '\x00000000'                            -- keys 1, 0: unsorted
                    || '\x18000000' || '\x1a000000' || '\x0100' || '\x0300');
SELECT pg_temp.recv('\x01'::bytea || '\x3a300000' || '\x01000000'
                    || '\x00000100' || '\x10000000' || '\x0200' || '\x0100');  -- array not ascending
SELECT pg_temp.recv('\x01'::bytea || '\x3a300000' || '\x01000000'
                    || '\x00000100' || '\x10000000' || '\x0100');              -- truncated container
SELECT pg_temp.recv(memberset_send('{1}') || '\x00'::bytea);                    -- trailing byte
SELECT pg_temp.recv('\x01'::bytea || '\x3a300000' || '\x01000000'
                    || '\x00000010' || '\x10000000' || decode(repeat('00', 8192), 'hex')); -- bitset: 4097 claimed, none set
SELECT pg_temp.recv('\x01'::bytea || '\x3b300000' || '\x01' || '\x00000000' || '\x0000'); -- empty run container
SELECT pg_temp.recv('\x01'::bytea || '\x3b300000' || '\x01' || '\x00000100'
                    || '\x0100' || '\xffff0100');                              -- run past 65535

------------------------------------------------------------------------
-- Operators (compared with the same computation on arrays)
------------------------------------------------------------------------
SELECT '{1,2,3,70000}'::memberset & '{2,3,4,70000}' AS "and",
       '{1,2,3}'::memberset | '{2,3,4,70000}' AS "or",
       '{1,2,3,70000}'::memberset - '{2,3,4}' AS minus,
       '{1,2}'::memberset & '{}' AS and_empty,
       '{}'::memberset | '{}' AS or_empty,
       '{1,2}'::memberset - '{1,2}' AS minus_all;

-- Every operator on every pair of shapes against SQL over the member ids:
-- ms_ids_of holds each shape's ids, ms_common the size of each intersection.
CREATE TABLE ms_ids_of AS SELECT shape, member_ids(s) AS m FROM ms_shapes;
ANALYZE ms_ids_of;
CREATE TABLE ms_common AS
SELECT x.shape AS xs, y.shape AS ys, COALESCE(i.n, 0) AS n
FROM ms_shapes x CROSS JOIN ms_shapes y
LEFT JOIN (SELECT a.shape AS xs, b.shape AS ys, count(*) AS n
           FROM ms_ids_of a JOIN ms_ids_of b USING (m) GROUP BY 1, 2) i
       ON i.xs = x.shape AND i.ys = y.shape;
SELECT c.xs, c.ys,
       cardinality(x.s & y.s) = c.n AS and_ok,
       cardinality(x.s | y.s) = cardinality(x.s) + cardinality(y.s) - c.n AS or_ok,
       cardinality(x.s - y.s) = cardinality(x.s) - c.n AS minus_ok,
       (x.s & y.s) <@ x.s AND (x.s & y.s) <@ y.s AS and_within,
       (x.s @> y.s) = (c.n = cardinality(y.s)) AS contains_ok,
       (x.s <@ y.s) = (c.n = cardinality(x.s)) AS contained_ok,
       (x.s && y.s) = (c.n > 0) AS overlap_ok,
       (x.s = y.s) = (c.xs = c.ys) AS eq_ok,
       (x.s <> y.s) = (c.xs <> c.ys) AS ne_ok
FROM ms_common c JOIN ms_shapes x ON x.shape = c.xs JOIN ms_shapes y ON y.shape = c.ys
ORDER BY 1, 2;

SELECT '{1,2,3}'::memberset = '{3,2,1}' AS eq,
       '{1,2,3}'::memberset <> '{1,2}' AS ne,
       '{1,2,3}'::memberset @> '{1,3}'::memberset AS contains,
       '{1,3}'::memberset <@ '{1,2,3}'::memberset AS contained,
       '{}'::memberset <@ '{1}'::memberset AS empty_contained,
       '{1,2}'::memberset && '{2,3}'::memberset AS overlaps,
       '{1,2}'::memberset && '{3}'::memberset AS no_overlap,
       '{1,2}'::memberset && '{}'::memberset AS empty_overlap;
-- equal sets stored with different layouts are equal
SELECT memberset(ARRAY(SELECT generate_series(1, 10000)::int8)) =
       (SELECT memberset_agg(g) FROM generate_series(1, 10000) g) AS eq_across_builders;

-- set @> member / member <@ set, checked against the ids for every shape
SELECT '{1,2,3}'::memberset @> 2 AS has2, '{1,2,3}'::memberset @> 4 AS has4,
       2 <@ '{1,2,3}'::memberset AS in_set, '{1}'::memberset @> -1 AS negative,
       '{4294967295}'::memberset @> 4294967295 AS max_id,
       '{1}'::memberset @> 4294967297 AS too_big;
SELECT shape,
       (SELECT count(*) FROM generate_series(0, 420000) g WHERE s @> g) AS by_operator,
       (SELECT count(*) FROM member_ids(s) m WHERE m <= 420000) AS expected,
       (SELECT bool_and(m <@ s) FROM member_ids(s) m) AS every_member_in
FROM ms_shapes ORDER BY shape;

------------------------------------------------------------------------
-- Functions
------------------------------------------------------------------------
SELECT cardinality('{}'::memberset), cardinality('{1,2,3}'::memberset), # '{7}'::memberset,
       is_empty('{}'::memberset), is_empty('{0}'::memberset);
SELECT member_ids('{70000,3,1,2}'::memberset);
-- member_ids is ascending and complete
SELECT shape, (SELECT bool_and(m > prev) FROM (SELECT m, lag(m, 1, -1::int8) OVER () AS prev
                                              FROM member_ids(s) m) x) AS ascending
FROM ms_shapes ORDER BY shape;
SELECT memberset(ARRAY[5, 3, 3, 1]::int8[]), to_array('{9,8,70000}'::memberset),
       to_array('{}'::memberset), memberset('{}'::int8[]),
       ARRAY[1, 2]::int8[]::memberset AS cast_in, '{4,5}'::memberset::int8[] AS cast_out;
SELECT shape, memberset(to_array(s)) = s AS array_round_trip,
       cardinality(to_array(s)) = cardinality(s) AS same_count
FROM ms_shapes ORDER BY shape;
SELECT memberset(ARRAY[1, NULL]::int8[]);
SELECT memberset(ARRAY[-1]::int8[]);
SELECT memberset(ARRAY[4294967296]::int8[]);
SELECT * FROM memberset_stats('{1,2,3}');

------------------------------------------------------------------------
-- Aggregates
------------------------------------------------------------------------
SELECT memberset_agg(x) FROM (VALUES (3), (1), (NULL), (3), (70000)) v(x);
SELECT memberset_agg(x) IS NULL AS no_rows FROM generate_series(1, 0) x;
SELECT memberset_agg(x::int8) IS NULL AS all_null FROM (VALUES (NULL), (NULL)) v(x);
SELECT memberset_agg(-5);
SELECT g % 3 AS k, memberset_agg(g) FROM generate_series(1, 10) g GROUP BY 1 ORDER BY 1;

SELECT union_agg(s) FROM (VALUES ('{1,2}'::memberset), (NULL), ('{2,3}'), ('{}')) v(s);
SELECT intersect_agg(s) FROM (VALUES ('{1,2,3}'::memberset), (NULL), ('{2,3,4}'), ('{3,2,9}')) v(s);
SELECT intersect_agg(s) FROM (VALUES ('{1,2,3}'::memberset), ('{}'), ('{2,3,4}')) v(s);
SELECT union_agg(s) IS NULL AS union_no_rows, intersect_agg(s) IS NULL AS intersect_no_rows
FROM ms_shapes WHERE false;
SELECT union_agg(s) = (SELECT memberset_agg(m) FROM ms_shapes, member_ids(s) m
                       WHERE shape IN ('bitset', 'mixed', 'run')) AS union_ok,
       cardinality(intersect_agg(s)) FROM ms_shapes WHERE shape IN ('bitset', 'mixed', 'run');
SELECT cardinality(intersect_agg(s)) =
       (SELECT count(*) FROM (SELECT member_ids(s) FROM ms_shapes WHERE shape = 'bitset'
                              INTERSECT SELECT member_ids(s) FROM ms_shapes WHERE shape = 'mixed'
                              INTERSECT SELECT member_ids(s) FROM ms_shapes WHERE shape = 'run') x) AS intersect_ok
FROM ms_shapes WHERE shape IN ('bitset', 'mixed', 'run');

-- Parallel aggregation (partial states serialized, combined in the leader)
-- gives the same sets as serial aggregation.
CREATE TABLE ms_ids AS SELECT (g::int8 * 7919) % 1000003 AS id FROM generate_series(1, 300000) g;
CREATE TABLE ms_sets AS
    SELECT g % 500 AS grp, memberset(ARRAY[g, g + 1, (g * 13) % 400000]::int8[]) AS s
    FROM generate_series(1, 200000) g;
ANALYZE ms_ids;
ANALYZE ms_sets;
SET max_parallel_workers_per_gather = 0;
CREATE TABLE ms_serial AS
SELECT (SELECT memberset_agg(id) FROM ms_ids) AS agg,
       (SELECT union_agg(s) FROM ms_sets) AS uni,
       (SELECT intersect_agg(s) FROM ms_sets WHERE s @> 7) AS inter;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT memberset_agg(id) FROM ms_ids;
-- the workers really ran: their partial states went through serialize,
-- deserialize and combine
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT memberset_agg(id) FROM ms_ids;
EXPLAIN (COSTS OFF) SELECT union_agg(s) FROM ms_sets;
EXPLAIN (COSTS OFF) SELECT intersect_agg(s) FROM ms_sets WHERE s @> 7;
SELECT (SELECT memberset_agg(id) FROM ms_ids) = agg AS memberset_agg_same,
       (SELECT union_agg(s) FROM ms_sets) = uni AS union_agg_same,
       (SELECT intersect_agg(s) FROM ms_sets WHERE s @> 7) = inter AS intersect_agg_same,
       cardinality(agg) = (SELECT count(DISTINCT id) FROM ms_ids) AS agg_count_ok,
       cardinality(uni), inter
FROM ms_serial;
-- grouped aggregation
SELECT k, cardinality(s) = n AS count_ok
FROM (SELECT id % 4 AS k, memberset_agg(id) AS s, count(DISTINCT id) AS n FROM ms_ids GROUP BY 1) x
ORDER BY k;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- Snapshots in a table
CREATE TABLE campaign (name text PRIMARY KEY, audience memberset);
INSERT INTO campaign VALUES ('spring', '{1,2,3,5,8}'), ('autumn', '{2,3,5,7,11}');
SELECT (SELECT audience FROM campaign WHERE name = 'spring')
     & (SELECT audience FROM campaign WHERE name = 'autumn') AS in_both;
SELECT name, m AS member FROM campaign, member_ids(audience) m WHERE m > 4 ORDER BY name, m;

DROP TABLE ms_shapes, ms_shapes_copy, ms_ids_of, ms_common, ms_ids, ms_sets, ms_serial, campaign;
