-- bank_data.sql: pgTAP tests of the synthetic bank (test/data/bank.sql) and the
-- bench rule generator (test/data/bench_tags.sql). They do not need segment:
-- rules are evaluated by plain SQL with segment.as_of() replaced by a literal.
-- Runs in a transaction that is rolled back.
\set QUIET on
\set ON_ERROR_STOP on
SET client_min_messages = warning;
BEGIN;
\ir ../data/bank.sql
\ir ../data/bench_tags.sql

SELECT plan(22);

SELECT is(dw.generate_bank(20000, '2026-11-22', 0.42), 20000::bigint, 'generate_bank returns the rows made');
SELECT is((SELECT count(*) FROM dw.customer_wide), 20000::bigint, 'one row per customer');
SELECT is((SELECT min(customer_id) || '..' || max(customer_id) FROM dw.customer_wide), '1..20000', 'keys 1..N');
SELECT cmp_ok((SELECT count(*)::int FROM information_schema.columns
                WHERE table_schema = 'dw' AND table_name = 'customer_wide'), '>=', 50, 'a wide table: 50 columns or more');
SELECT set_eq($$SELECT DISTINCT data_type::text FROM information_schema.columns
                WHERE table_schema = 'dw' AND table_name = 'customer_wide'$$,
              ARRAY['bigint', 'integer', 'numeric', 'double precision', 'date',
                    'timestamp with time zone', 'boolean', 'text'],
              'mixed column types');

-- reproducible by seed
CREATE TEMP TABLE h AS SELECT md5(string_agg(c::text, '|' ORDER BY customer_id)) AS h FROM dw.customer_wide c;
SELECT dw.generate_bank(20000, '2026-11-22', 0.42) AS made \gset
SELECT is((SELECT md5(string_agg(c::text, '|' ORDER BY customer_id)) FROM dw.customer_wide c),
          (SELECT h FROM h), 'same arguments, same rows');
SELECT dw.generate_bank(20000, '2026-11-22', 0.43) AS made \gset
SELECT isnt((SELECT md5(string_agg(c::text, '|' ORDER BY customer_id)) FROM dw.customer_wide c),
            (SELECT h FROM h), 'another seed, other rows');
SELECT dw.generate_bank(20000, '2026-11-22', 0.42) AS made \gset

-- shapes
SELECT is((SELECT count(*) FROM dw.customer_wide
            WHERE aum IS DISTINCT FROM current_balance + term_balance + coalesce(fund_balance, 0)
                                       + coalesce(wealth_balance, 0)), 0::bigint,
          'aum is the sum of deposits, funds and wealth products');
SELECT ok((SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY aum) BETWEEN 10000 AND 100000
                  AND max(aum) > 100 * percentile_disc(0.5) WITHIN GROUP (ORDER BY aum)
             FROM dw.customer_wide), 'aum: median 10k..100k with a long right tail (log-normal)');
SELECT ok((SELECT count(*) FILTER (WHERE manager_id IS NULL) BETWEEN 2000 AND 18000 FROM dw.customer_wide),
          'some customers have no relationship manager');
SELECT cmp_ok((SELECT count(*)::int FROM information_schema.columns col
                WHERE col.table_schema = 'dw' AND col.table_name = 'customer_wide'
                  AND (xpath('/row/n/text()',
                             query_to_xml(format('select count(*) as n from dw.customer_wide where %I is null',
                                                 col.column_name), false, true, '')))[1]::text::int > 0),
              '>=', 30, 'NULLs in most columns');
SELECT is((SELECT array_agg(DISTINCT d ORDER BY d) FROM dw.customer_wide,
                  LATERAL (SELECT td_maturity_date - date '2026-11-22' AS d) x
            WHERE d IN (1, 7, 15, 30)), ARRAY[1, 7, 15, 30],
          'term deposits mature 1, 7, 15 and 30 days after as_of');
SELECT ok((SELECT count(*) FILTER (WHERE td_maturity_date < date '2026-11-22') > 0
                  AND count(*) FILTER (WHERE td_maturity_date IS NULL) > 0
             FROM dw.customer_wide), 'some maturities are past, some customers hold no term deposit');
SELECT is((SELECT count(*) FROM dw.customer_wide c
             LEFT JOIN dw.branch s ON s.branch_id = c.sub_branch_id AND s.level = 'sub-branch'
            WHERE s.parent_id IS DISTINCT FROM c.branch_id), 0::bigint,
          'every customer is in a sub-branch of its branch');
SELECT is((SELECT count(*) FROM dw.branch b JOIN dw.branch p ON p.branch_id = b.parent_id
            WHERE (b.level, p.level) NOT IN (('branch', 'head office'), ('sub-branch', 'branch'))), 0::bigint,
          'org tree: head office -> branches -> sub-branches');
SELECT is((SELECT count(*) FROM dw.customer_wide c JOIN dw.manager m USING (manager_id)
            WHERE m.branch_id <> c.sub_branch_id), 0::bigint,
          'a customer''s manager works in the customer''s sub-branch');

-- simulate_day
SELECT ok(dw.simulate_day(0.05, '2026-11-23', 0.3) BETWEEN 600 AND 1400, 'simulate_day changes about the fraction asked');
SELECT ok((SELECT count(*) FILTER (WHERE last_login_date = '2026-11-23') > 0
                  AND count(*) FILTER (WHERE aum IS DISTINCT FROM current_balance + term_balance
                                               + coalesce(fund_balance, 0) + coalesce(wealth_balance, 0)) = 0
             FROM dw.customer_wide), 'simulate_day: logins happen, aum stays the sum of its parts');

SELECT throws_ok($$SELECT dw.generate_bank(0)$$, '22023', NULL, 'generate_bank refuses 0 customers');

-- bench rules
SELECT is((SELECT count(DISTINCT rule) FROM dw.bench_rules(60)), 60::bigint, 'bench_rules(60): 60 distinct rules');
SELECT is((SELECT string_agg(tag, ',' ORDER BY tag_no) FROM dw.bench_rules(3)), 't001,t002,t003', 'bench tags are t001, t002, ...');
CREATE TEMP TABLE bench_counts (tag name, n bigint);
DO $$
DECLARE r record; n bigint;
BEGIN
    FOR r IN SELECT * FROM dw.bench_rules(60) LOOP
        EXECUTE format('select count(*) from dw.customer_wide where %s',
                       replace(r.rule, 'segment.as_of()', '''2026-11-22''::date')) INTO n;
        INSERT INTO bench_counts VALUES (r.tag, n);
    END LOOP;
END $$;
SELECT is((SELECT count(*) FROM bench_counts WHERE n > 0 AND n < 20000), 60::bigint,
          'every bench rule is valid SQL and selects some customers, not all');

SELECT * FROM finish();
ROLLBACK;
