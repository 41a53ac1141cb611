-- bench_segmentation.sql: the schemes and scorecards of `make bench`
-- (issue 3): two schemes of 5 buckets and two scorecards of 10 items.
--   dw.bench_seg_rules            the definitions, one row per bucket / item
--   dw.bench_define_segmentation() creates them with segment.create_scheme /
--                                 segment.create_scorecard (needs the extension)
--   dw.bench_segmentation_sql(ntags, as_of) the plain SQL that computes the
--                                 same in one query: the tags' counts, each
--                                 bucket's count (CASE, first match) and each
--                                 score's sum (base + CASE per item)

CREATE SCHEMA IF NOT EXISTS dw;
DROP TABLE IF EXISTS dw.bench_seg_rules;
CREATE TABLE dw.bench_seg_rules (kind text, unit text, pos int, name text, rule text, points numeric);
INSERT INTO dw.bench_seg_rules VALUES
 ('scheme', 'b_value', 1, 'private',  'aum >= 6000000', NULL),
 ('scheme', 'b_value', 2, 'wealth',   'aum >= 1000000', NULL),
 ('scheme', 'b_value', 3, 'affluent', 'aum >= 200000', NULL),
 ('scheme', 'b_value', 4, 'emerging', 'aum >= 50000', NULL),
 ('scheme', 'b_value', 5, 'mass',     'true', NULL),
 ('scheme', 'b_aipl', 1, 'loyalty',   'products_held >= 3 and txn_count_90d >= 20', NULL),
 ('scheme', 'b_aipl', 2, 'purchase',  'products_held >= 2 or has_fund or has_wealth', NULL),
 ('scheme', 'b_aipl', 3, 'interest',  'last_login_date >= segment.as_of() - 30', NULL),
 ('scheme', 'b_aipl', 4, 'aware',     'open_date >= segment.as_of() - 730', NULL),
 ('scheme', 'b_aipl', 5, 'other',     'true', NULL),
 ('scorecard', 'b_service', 1, NULL, 'aum >= 1000000', 40),
 ('scorecard', 'b_service', 2, NULL, 'aum >= 200000', 25),
 ('scorecard', 'b_service', 3, NULL, 'payroll_flag', 15),
 ('scorecard', 'b_service', 4, NULL, 'products_held >= 3', 10),
 ('scorecard', 'b_service', 5, NULL, 'mobile_banking', 5),
 ('scorecard', 'b_service', 6, NULL, 'last_login_date >= segment.as_of() - 30', 5),
 ('scorecard', 'b_service', 7, NULL, 'td_maturity_date - segment.as_of() between 0 and 30', 20),
 ('scorecard', 'b_service', 8, NULL, 'xbank_same_name_out_30d >= 50000', 15),
 ('scorecard', 'b_service', 9, NULL, 'complaint_count_12m > 0', -10),
 ('scorecard', 'b_service', 10, NULL, 'do_not_call', -30),
 ('scorecard', 'b_risk', 1, NULL, 'loan_overdue_days > 30', 50),
 ('scorecard', 'b_risk', 2, NULL, 'loan_overdue_days > 0', 20),
 ('scorecard', 'b_risk', 3, NULL, 'credit_score < 550', 30),
 ('scorecard', 'b_risk', 4, NULL, 'card_spend_30d > card_limit * 0.9', 15),
 ('scorecard', 'b_risk', 5, NULL, 'loan_app_count_90d >= 3', 10),
 ('scorecard', 'b_risk', 6, NULL, 'current_balance < 1000', 5),
 ('scorecard', 'b_risk', 7, NULL, $$risk_level in ('R4', 'R5')$$, 5),
 ('scorecard', 'b_risk', 8, NULL, 'large_outflow_7d >= 100000', 10),
 ('scorecard', 'b_risk', 9, NULL, 'churn_score > 0.8', 7.5),
 ('scorecard', 'b_risk', 10, NULL, 'payroll_flag', -12.5);

CREATE OR REPLACE FUNCTION dw.bench_define_segmentation() RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE u text;
BEGIN
    FOR u IN SELECT DISTINCT unit FROM dw.bench_seg_rules WHERE kind = 'scheme' LOOP
        IF EXISTS (SELECT FROM segment.scheme WHERE name = u) THEN PERFORM segment.drop_scheme(u); END IF;
        PERFORM segment.create_scheme('customer', u,
            (SELECT array_agg(ARRAY[name, rule] ORDER BY pos) FROM dw.bench_seg_rules WHERE unit = u));
    END LOOP;
    FOR u IN SELECT DISTINCT unit FROM dw.bench_seg_rules WHERE kind = 'scorecard' LOOP
        IF EXISTS (SELECT FROM segment.scorecard WHERE name = u) THEN PERFORM segment.drop_scorecard(u); END IF;
        PERFORM segment.create_scorecard('customer', u, 0,
            (SELECT array_agg(ARRAY[rule, points::text] ORDER BY pos) FROM dw.bench_seg_rules WHERE unit = u));
    END LOOP;
END $fn$;

-- One query: every tag's count, every bucket's count, every scorecard's sum.
CREATE OR REPLACE FUNCTION dw.bench_segmentation_sql(ntags int, as_of date) RETURNS text
LANGUAGE sql STABLE AS $fn$
WITH lit AS (SELECT quote_literal(as_of) || '::date' AS d),
r AS (SELECT kind, unit, pos, name, replace(rule, 'segment.as_of()', (SELECT d FROM lit)) AS rule, points
        FROM dw.bench_seg_rules),
inner_cols AS (
    SELECT string_agg(expr, E',\n         ' ORDER BY unit) AS cols FROM (
        SELECT unit, 'case ' || string_agg(format('when %s then %L', rule, name), ' ' ORDER BY pos)
                     || ' end as ' || unit AS expr
          FROM r WHERE kind = 'scheme' GROUP BY unit
        UNION ALL
        SELECT unit, '0 + ' || string_agg(format('(case when (%s) is true then %s else 0 end)', rule, points), ' + ' ORDER BY pos)
                     || ' as ' || unit
          FROM r WHERE kind = 'scorecard' GROUP BY unit) x),
tag_cols AS (
    SELECT string_agg(format('count(*) filter (where %s)', replace(rule, 'segment.as_of()', (SELECT d FROM lit))),
                      E',\n       ' ORDER BY tag_no) AS cols FROM dw.bench_rules(ntags)),
out_cols AS (
    SELECT string_agg(expr, E',\n       ') AS cols FROM (
        SELECT format('count(*) filter (where %I = %L)', unit, name) AS expr FROM r WHERE kind = 'scheme'
        UNION ALL
        SELECT DISTINCT format('sum(%I)', unit) FROM r WHERE kind = 'scorecard') x)
SELECT 'select ' || (SELECT cols FROM tag_cols) || E',\n       ' || (SELECT cols FROM out_cols)
       || E'\n  from (select *,\n         ' || (SELECT cols FROM inner_cols) || E'\n          from dw.customer_wide) t;'
$fn$;
