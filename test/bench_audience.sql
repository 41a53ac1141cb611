-- Audience read benchmark (not a regression test): fabricates the state a
-- refresh would leave for :rows customers and four tags, then times a
-- four-tag segment.count against the same question asked of a table of
-- booleans with a sequential scan. Run: psql -v rows=1000000 -f test/bench_audience.sql
\set ON_ERROR_STOP on
\if :{?rows}
\else
\set rows 1000000
\endif
CREATE EXTENSION IF NOT EXISTS segment;
DROP TABLE IF EXISTS bench_cust, bench_truth;
CREATE TABLE bench_cust (id int8 PRIMARY KEY);
INSERT INTO segment.subject (name, relation, key_column, key_type)
VALUES ('bench', 'bench_cust', 'id', 'int8');
-- four tags of different densities, scattered (hash-based) so most
-- containers are bitsets: the expensive case for member sets
CREATE TABLE bench_truth AS
SELECT id,
       (hashint8(id) & 2147483647) % 100 < 50       AS t1,
       (hashint8(id + 7) & 2147483647) % 100 < 30   AS t2,
       (hashint8(id + 13) & 2147483647) % 100 < 10  AS t3,
       (hashint8(id + 29) & 2147483647) % 100 < 5   AS t4
FROM generate_series(1, :rows) id;
INSERT INTO segment.tag (subject_id, name, rule)
SELECT s.subject_id, n, 'x' FROM segment.subject s, unnest(ARRAY['t1','t2','t3','t4']) n
WHERE s.name = 'bench';
INSERT INTO segment.tag_state (tag_id, members, member_count, entered, exited, as_of, refreshed_at, run_id)
SELECT t.tag_id, m.s, segment.cardinality(m.s), 0, 0, current_date, now(), 1
FROM segment.tag t JOIN (
    SELECT 't1' AS n, segment.memberset_agg(id) FILTER (WHERE t1) AS s FROM bench_truth
    UNION ALL SELECT 't2', segment.memberset_agg(id) FILTER (WHERE t2) FROM bench_truth
    UNION ALL SELECT 't3', segment.memberset_agg(id) FILTER (WHERE t3) FROM bench_truth
    UNION ALL SELECT 't4', segment.memberset_agg(id) FILTER (WHERE t4) FROM bench_truth) m ON m.n = t.name;
INSERT INTO segment.subject_state (subject_id, universe, member_count, as_of, refreshed_at, run_id)
SELECT s.subject_id, (SELECT segment.memberset_agg(id) FROM bench_truth), :rows, current_date, now(), 1
FROM segment.subject s WHERE s.name = 'bench';
VACUUM ANALYZE bench_truth;
SELECT t.name, (segment.memberset_stats(st.members)).* FROM segment.tag t JOIN segment.tag_state st USING (tag_id)
WHERE t.name LIKE 't_' ORDER BY 1;

-- time n calls, report the per-call median in ms
CREATE OR REPLACE FUNCTION pg_temp.bench(q text, n int) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; times numeric[] := '{}'; r bigint;
BEGIN
    FOR i IN 1..n LOOP
        t0 := clock_timestamp();
        EXECUTE q INTO r;
        times := times || (extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric;
    END LOOP;
    RETURN round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(times) x)::numeric, 3);
END $$;

SELECT segment.count('bench', 't1 and t2 and not t3 or t4') AS segment_count,
       (SELECT count(*) FROM bench_truth WHERE (t1 AND t2 AND NOT t3) OR t4) AS sql_count;
SELECT pg_temp.bench($$SELECT segment.count('bench', 't1 and t2 and not t3 or t4')$$, 50) AS segment_ms,
       pg_temp.bench($$SELECT count(*) FROM bench_truth WHERE (t1 AND t2 AND NOT t3) OR t4$$, 5) AS sql_scan_ms,
       pg_temp.bench($$SELECT segment.count('bench', 'not t1 and not t2')$$, 50) AS with_universe_ms;

-- memory: 3000 more calls must not grow the backend's resident memory
SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmRSS:\s+(\d+)'))[1]::int AS rss_kb_before \gset
SELECT pg_temp.bench($$SELECT segment.count('bench', 't1 and t2 and not t3 or t4')$$, 3000) IS NOT NULL AS ran;
SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmRSS:\s+(\d+)'))[1]::int - :rss_kb_before AS rss_growth_kb;

-- error paths: the four sets are loaded, then the unknown name fails the
-- call; 3000 such failures must not grow resident memory either
SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmRSS:\s+(\d+)'))[1]::int AS rss_kb_before \gset
DO $$
BEGIN
    FOR i IN 1..3000 LOOP
        BEGIN
            PERFORM segment.count('bench', 't1 and t2 and not t3 or t4 or no_such_tag');
        EXCEPTION WHEN undefined_object THEN NULL;
        END;
    END LOOP;
END $$;
SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmRSS:\s+(\d+)'))[1]::int - :rss_kb_before AS rss_growth_after_errors_kb;

DELETE FROM segment.subject WHERE name = 'bench';
DROP TABLE bench_cust, bench_truth;
