-- bench_tags.sql: N distinct, realistic tag rules for `make bench`.
--
--   dw.bench_rules(n int) -> table(tag_no int, tag name, shape text, rule text)
--       rule i cycles through 18 shapes that wide-table tags really have
--       (numeric thresholds, dates against segment.as_of(), booleans, text
--       equality and IN lists, IS NULL, CASE, COALESCE, LIKE, AND/OR/NOT,
--       timestamptz, float8, ratios between columns); the k-th pass through the
--       cycle moves each shape's parameters so that every rule is different.
--       Tags are named t001, t002, ... in order (more digits past 999).
--   dw.bench_define_tags(n int, subject name default 'customer') -> int
--       drops the t### tags that exist and creates n of them with
--       segment.create_tag (needs the extension; the rules alone do not).
--
-- The same rules drive every side of the benchmark (test/bench.sh): the
-- extension's refresh, the one-pass SQL query, one query per tag and the
-- intarray table.

CREATE SCHEMA IF NOT EXISTS dw;

CREATE OR REPLACE FUNCTION dw.bench_rules(n int)
RETURNS TABLE (tag_no int, tag name, shape text, rule text)
LANGUAGE sql IMMUTABLE AS
$fn$
WITH i AS (
    SELECT g AS tag_no, (g - 1) % 18 AS s, (g - 1) / 18 AS k
    FROM generate_series(1, n) g
)
SELECT tag_no,
       ('t' || lpad(tag_no::text, greatest(3, length(n::text)), '0'))::name,
       (ARRAY['numeric threshold', 'date window', 'booleans', 'text equality', 'text IN',
              'IS NULL', 'CASE', 'COALESCE', 'LIKE', 'AND/OR', 'date vs as_of', 'timestamptz',
              'float8', 'column ratio', 'age (interval)', 'integer range', 'NOT (OR)',
              'numeric + boolean'])[s + 1],
       CASE s
       WHEN 0 THEN format('aum >= %s', 20000 + 45000 * k)
       WHEN 1 THEN format('td_maturity_date - segment.as_of() between 0 and %s', 7 + 8 * k)
       WHEN 2 THEN format('%s and not %s',
                          (ARRAY['has_fund', 'payroll_flag', 'has_credit_card', 'mobile_banking', 'has_loan', 'has_wealth', 'has_insurance'])[1 + k % 7],
                          (ARRAY['has_wealth', 'has_insurance', 'card_activated', 'wechat_bound', 'has_fund', 'has_insurance', 'has_pension_account'])[1 + k % 7])
                   || CASE WHEN k >= 7 THEN format(' and products_held >= %s', k / 7) ELSE '' END
       WHEN 3 THEN format('city = %L',
                          (ARRAY['Hangzhou', 'Ningbo', 'Wenzhou', 'Shaoxing', 'Jiaxing', 'Huzhou', 'Jinhua',
                                 'Taizhou', 'Lishui', 'Quzhou', 'Zhoushan', 'Yiwu'])[1 + k % 12])
                   || CASE WHEN k >= 12 THEN format(' and aum >= %s', 10000 * (k / 12)) ELSE '' END
       WHEN 4 THEN format('%s in (%s)',
                          (ARRAY['risk_level', 'occupation', 'customer_segment', 'education'])[1 + k % 4],
                          (ARRAY[$$'R3', 'R4', 'R5'$$, $$'business owner', 'self-employed', 'doctor'$$,
                                 $$'affluent', 'high_net_worth'$$, $$'bachelor', 'master', 'doctorate'$$])[1 + k % 4])
                   || CASE WHEN k >= 4 THEN format(' and aum >= %s', 20000 * (k / 4)) ELSE '' END
       WHEN 5 THEN format('manager_id is null and aum >= %s', 100000 + 100000 * k)
       WHEN 6 THEN format('case when payroll_flag then monthly_salary >= %s else current_balance >= %s end',
                          8000 + 2000 * k, 50000 + 25000 * k)
       WHEN 7 THEN format('coalesce(txn_count_30d, 0) + coalesce(loan_app_count_90d, 0) <= %s', k)
       WHEN 8 THEN format('mobile like %L',
                          '1' || (ARRAY['38', '39', '35', '36', '37', '50', '51', '52', '58', '59',
                                        '86', '87', '88', '89', '33', '53', '77', '80'])[1 + k % 18] || '%')
                   || CASE WHEN k >= 18 THEN format(' and aum >= %s', 10000 * (k / 18)) ELSE '' END
       WHEN 9 THEN format('(has_credit_card and card_spend_30d >= %s) or (has_loan and loan_overdue_days > %s)',
                          2000 + 1000 * k, k)
       WHEN 10 THEN format('last_login_date < segment.as_of() - %s', 30 + 30 * k)
       WHEN 11 THEN format('last_txn_at >= segment.as_of() - %s', 3 + 4 * k)
       WHEN 12 THEN format('digital_score >= %s', round(0.3 + 0.6 * k / (k + 3.0), 4))
       WHEN 13 THEN format('current_balance + term_balance < %s * balance_3m_ago', round(0.5 + 0.45 * k / (k + 3.0), 4))
       WHEN 14 THEN format('birth_date > segment.as_of() - interval %L', (25 + 3 * k) || ' years')
       WHEN 15 THEN format('txn_count_90d between %s and %s', 5 * k, 5 * k + 10)
       WHEN 16 THEN format('not (has_fund or has_wealth) and aum >= %s', 30000 + 30000 * k)
       ELSE          format('xbank_same_name_out_30d >= %s and not do_not_call', 10000 + 20000 * k)
       END
FROM i
ORDER BY tag_no
$fn$;

CREATE OR REPLACE FUNCTION dw.bench_define_tags(n int, subject name DEFAULT 'customer')
RETURNS int
LANGUAGE plpgsql AS
$fn$
DECLARE
    r record;
    made int := 0;
BEGIN
    FOR r IN SELECT t.name FROM segment.tag t WHERE t.name ~ '^t[0-9]{3,}$' LOOP
        PERFORM segment.drop_tag(r.name);
    END LOOP;
    FOR r IN SELECT * FROM dw.bench_rules(n) LOOP
        PERFORM segment.create_tag(subject, r.tag, r.rule, 'bench', 'bench rule: ' || r.shape);
        made := made + 1;
    END LOOP;
    RETURN made;
END
$fn$;
