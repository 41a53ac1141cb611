-- bank.sql: a synthetic retail bank generated inside the database.
--
-- Defines, in schema dw:
--   dw.generate_bank(customers int default 100000, as_of date default current_date,
--                    seed float8 default 0.42) -> bigint
--       (re)creates dw.branch, dw.manager and dw.customer_wide and fills them with
--       set-based SQL (generate_series, no row loops). The same arguments give the
--       same rows: the random stream is seeded with setseed(seed) and consumed in a
--       fixed order by one non-parallel INSERT ... SELECT per table.
--   dw.simulate_day(fraction float8 default 0.02, day date default current_date,
--                   seed float8 default null) -> bigint
--       moves a random fraction of customers one business day on: balances drift,
--       some log in, some transact, a few open or close products. For demos of
--       entered / exited counts and live triggers.
--
-- The wide table looks like a warehouse's customer-indicator table: one row per
-- customer, columns of every common type (numeric, int, float8, date,
-- timestamptz, boolean, text), NULLs where a real table has them (unknown
-- gender, no e-mail, no relationship manager, no risk assessment, product
-- columns of products not held). Balances are log-normal; AUM is the sum of
-- deposits, funds and wealth products; term deposits mature spread around
-- as_of (some already matured, many within days); activity dates spread
-- backwards from as_of with a dormant tail.
--
-- Usage:  \i test/data/bank.sql
--         select dw.generate_bank();                    -- 100,000 customers
--         select dw.generate_bank(1000000, '2025-06-30'); -- reproducible back-test

CREATE SCHEMA IF NOT EXISTS dw;

-- Fast float8 -> numeric(.,2): float8::numeric goes through printf and is
-- several times slower than an int8 conversion.
CREATE OR REPLACE FUNCTION dw.money(x float8) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT round(x * 100)::int8 * 0.01 $$;
CREATE OR REPLACE FUNCTION dw.rate(x float8) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT round(x * 10000)::int8 * 0.0001 $$;
CREATE OR REPLACE FUNCTION dw.round_to(x float8, digits int) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT round(x * 10 ^ digits) / 10 ^ digits $$;

-- A standard normal draw (Box-Muller). Volatile: it consumes the random stream.
CREATE OR REPLACE FUNCTION dw.rnorm() RETURNS float8
LANGUAGE sql VOLATILE PARALLEL RESTRICTED AS
$$ SELECT sqrt(-2.0 * ln(1.0 - random())) * cos(2.0 * pi() * random()) $$;

CREATE OR REPLACE FUNCTION dw.generate_bank(customers int DEFAULT 100000,
                                            as_of date DEFAULT current_date,
                                            seed float8 DEFAULT 0.42)
RETURNS bigint
LANGUAGE plpgsql
-- JIT would spend seconds compiling the one very wide INSERT ... SELECT
SET jit = off
AS
$fn$
DECLARE
    n_sub    int;   -- sub-branches (the org unit customers and managers belong to)
    n_branch int;   -- branches (parents of sub-branches)
    per_sub  int := 5;  -- relationship managers per sub-branch
    n_rows   bigint;
BEGIN
    IF customers IS NULL OR customers < 1 THEN
        RAISE EXCEPTION 'dw.generate_bank: customers must be at least 1, got %', customers
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF seed IS NULL OR seed < -1 OR seed > 1 THEN
        RAISE EXCEPTION 'dw.generate_bank: seed must be between -1 and 1, got %', seed
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    as_of := coalesce(as_of, current_date);

    -- about 2,000 customers per sub-branch, 8 sub-branches per branch
    n_sub    := least(2000, greatest(10, (customers + 1999) / 2000));
    n_branch := (n_sub + 7) / 8;

    -- Drop whatever a previous call made. CASCADE also drops objects that
    -- depend on the tables (views a user built on them).
    DROP TABLE IF EXISTS dw.customer_wide CASCADE;
    DROP TABLE IF EXISTS dw.manager CASCADE;
    DROP TABLE IF EXISTS dw.branch CASCADE;

    PERFORM setseed(seed);

    ------------------------------------------------------------------
    -- Organisation: head office (1) -> branches (101..) -> sub-branches (10001..)
    ------------------------------------------------------------------
    CREATE TABLE dw.branch (
        branch_id  int PRIMARY KEY,
        parent_id  int REFERENCES dw.branch,
        level      text NOT NULL CHECK (level IN ('head office', 'branch', 'sub-branch')),
        name       text NOT NULL,
        city       text NOT NULL,
        opened_on  date NOT NULL
    );
    COMMENT ON TABLE dw.branch IS
        'Organisation units: head office -> branches -> sub-branches (synthetic, dw.generate_bank)';

    INSERT INTO dw.branch VALUES (1, NULL, 'head office', 'Head Office', 'Hangzhou', date '1996-01-08');
    INSERT INTO dw.branch
    SELECT 100 + b, 1, 'branch',
           (ARRAY['Hangzhou','Ningbo','Wenzhou','Shaoxing','Jiaxing','Huzhou','Jinhua',
                  'Taizhou','Lishui','Quzhou','Zhoushan','Yiwu'])[1 + (b - 1) % 12]
             || ' Branch' || CASE WHEN b > 12 THEN ' ' || ((b - 1) / 12 + 1) ELSE '' END,
           (ARRAY['Hangzhou','Ningbo','Wenzhou','Shaoxing','Jiaxing','Huzhou','Jinhua',
                  'Taizhou','Lishui','Quzhou','Zhoushan','Yiwu'])[1 + (b - 1) % 12],
           date '1998-01-01' + (b * 97) % 3000
    FROM generate_series(1, n_branch) b;
    INSERT INTO dw.branch
    SELECT 10000 + s, 100 + 1 + (s - 1) / 8, 'sub-branch',
           p.city || ' ' ||
           (ARRAY['Central','East Gate','West Lake','Riverside','North Station','Harbour',
                  'Old Town','High-Tech Park','University','Market Street'])[1 + (s - 1) % 10]
             || ' Sub-branch' || CASE WHEN s > 10 THEN ' ' || s ELSE '' END,
           p.city,
           p.opened_on + (s * 131) % 4000
    FROM generate_series(1, n_sub) s
    JOIN dw.branch p ON p.branch_id = 100 + 1 + (s - 1) / 8;

    ------------------------------------------------------------------
    -- Relationship managers: per_sub per sub-branch, ids 100000 + ...
    ------------------------------------------------------------------
    CREATE TABLE dw.manager (
        manager_id     int PRIMARY KEY,
        name           text NOT NULL,
        branch_id      int NOT NULL REFERENCES dw.branch,   -- the sub-branch
        role           text NOT NULL,
        daily_capacity int NOT NULL CHECK (daily_capacity >= 0),
        active         boolean NOT NULL,
        hired_on       date NOT NULL
    );
    COMMENT ON TABLE dw.manager IS
        'Relationship managers (synthetic): org unit, daily lead capacity, active flag';

    INSERT INTO dw.manager
    SELECT 100000 + (s - 1) * per_sub + j,
           (ARRAY['Wang','Li','Zhang','Liu','Chen','Yang','Huang','Zhao','Wu','Zhou',
                  'Xu','Sun','Ma','Zhu','Hu','Guo','He','Lin','Luo','Gao'])[1 + floor(random() * 20)::int]
             || ' ' ||
           (ARRAY['Wei','Fang','Na','Min','Jing','Li','Qiang','Lei','Jun','Yang',
                  'Yong','Yan','Jie','Tao','Ming','Chao','Xiu','Hui','Ping','Gang'])[1 + floor(random() * 20)::int],
           10000 + s,
           CASE WHEN j = 1 THEN 'team lead' WHEN j = per_sub THEN 'wealth advisor'
                ELSE 'relationship manager' END,
           (ARRAY[20, 30, 30, 40, 50])[1 + floor(random() * 5)::int],
           random() >= 0.04,
           as_of - (200 + floor(random() * 5000))::int
    FROM generate_series(1, n_sub) s, generate_series(1, per_sub) j
    ORDER BY 1;

    ------------------------------------------------------------------
    -- The wide customer table
    ------------------------------------------------------------------
    CREATE TABLE dw.customer_wide (
        customer_id              int8 PRIMARY KEY,
        -- identity and demographics
        customer_name            text,
        gender                   text,            -- 'M', 'F', NULL unknown
        birth_date               date,
        id_type                  text,
        id_number                text,            -- sensitive: mask for managers
        mobile                   text,            -- sensitive
        email                    text,
        city                     text,
        occupation               text,
        education                text,
        marital_status           text,
        is_employee              boolean,
        -- organisation and relationship
        branch_id                int,             -- branch (level 2)
        sub_branch_id            int,             -- sub-branch: the org unit
        manager_id               int,             -- relationship manager, NULL if none
        open_date                date,
        customer_segment         text,            -- mass / affluent / high_net_worth / private
        risk_level               text,            -- R1..R5, NULL when never assessed
        risk_assessed_date       date,
        credit_score             int,
        -- assets
        aum                      numeric(18,2),   -- assets under management = sum below
        aum_3m_ago               numeric(18,2),
        aum_peak_12m             numeric(18,2),
        current_balance          numeric(18,2),   -- demand deposits
        term_balance             numeric(18,2),   -- term deposits
        balance_3m_ago           numeric(18,2),   -- deposits (current + term) 3 months ago
        avg_balance_30d          numeric(18,2),
        td_count                 int,
        td_term_months           int,
        td_rate                  numeric(6,4),
        td_maturity_date         date,            -- next term-deposit maturity
        has_fund                 boolean,
        fund_balance             numeric(18,2),
        has_wealth               boolean,         -- wealth-management products
        wealth_balance           numeric(18,2),
        wealth_maturity_date     date,
        has_insurance            boolean,
        insurance_premium_annual numeric(14,2),
        has_pension_account      boolean,
        -- credit
        has_loan                 boolean,
        loan_type                text,            -- mortgage / consumer / business
        loan_balance             numeric(18,2),
        loan_overdue_days        int,
        loan_app_failed_date     date,            -- last rejected online loan application
        loan_app_count_90d       int,
        has_credit_card          boolean,
        card_activated           boolean,
        card_open_date           date,
        card_limit               numeric(14,2),
        card_spend_30d           numeric(14,2),
        -- income
        payroll_flag             boolean,         -- salary paid into this bank
        employer_type            text,
        monthly_salary           numeric(12,2),
        -- activity
        mobile_banking           boolean,
        wechat_bound             boolean,
        preferred_channel        text,
        last_login_date          date,            -- mobile / online banking
        last_txn_at              timestamptz,
        txn_count_30d            int,
        txn_count_90d            int,
        txn_amount_30d           numeric(18,2),
        xbank_same_name_out_30d  numeric(18,2),   -- to own accounts at other banks
        xbank_out_count_30d      int,
        large_outflow_7d         numeric(18,2),
        last_contact_date        date,            -- last contact by the bank
        complaint_count_12m      int,
        -- marketing
        marketing_consent        boolean,
        do_not_call              boolean,
        digital_score            float8,          -- 0..1 model score
        churn_score              float8,          -- 0..1 model score
        distance_to_branch_km    float8,
        products_held            int,
        updated_at               timestamptz
    );
    COMMENT ON TABLE dw.customer_wide IS
        'Synthetic customer-indicator table, one row per customer (dw.generate_bank)';

    -- Stage b: independent random draws per customer. OFFSET 0 keeps the planner
    -- from flattening the stages (which would duplicate volatile calls).
    -- Stage d: derived quantities (ages, product holdings, AUM split).
    -- Outer: the columns.
    INSERT INTO dw.customer_wide
    SELECT
        d.id,
        d.surname || ' ' || d.given,
        CASE WHEN d.u_gender < 0.01 THEN NULL WHEN d.u_gender < 0.505 THEN 'M' ELSE 'F' END,
        CASE WHEN d.u_null1 < 0.004 THEN NULL ELSE d.birth_date END,
        CASE WHEN d.u_null1 > 0.985 THEN 'passport' ELSE 'resident id' END,
        CASE WHEN d.u_null1 > 0.985 THEN 'E' || lpad((d.id * 7919 % 100000000)::text, 8, '0')
             ELSE '33' || lpad((d.id * 104729 % 10000)::text, 4, '0')
                  || to_char(coalesce(d.birth_date, date '1980-01-01'), 'YYYYMMDD')
                  || lpad((d.id % 10000)::text, 4, '0') END,
        CASE WHEN d.u_null2 < 0.02 THEN NULL
             ELSE '1' || (ARRAY['38','39','35','36','37','50','51','52','58','59','86','87','88','89','33','53','77','80'])
                              [1 + floor(d.u_mob * 18)::int]
                  || lpad((floor(d.u_mob2 * 100000000))::bigint::text, 8, '0') END,
        CASE WHEN d.u_null2 < 0.62 THEN NULL
             ELSE lower(replace(d.surname || '.' || d.given, ' ', '')) || d.id
                  || (ARRAY['@qq.com','@163.com','@126.com','@gmail.com','@outlook.com'])[1 + floor(d.u_mob * 5)::int] END,
        -- most live in their branch's city, some elsewhere in the province, a few far away
        CASE WHEN d.u_city < 0.85 THEN d.branch_city
             WHEN d.u_city < 0.94 THEN (ARRAY['Hangzhou','Ningbo','Wenzhou','Shaoxing','Jiaxing','Huzhou','Jinhua',
                                              'Taizhou','Lishui','Quzhou','Zhoushan','Yiwu'])
                                       [1 + floor((d.u_city - 0.85) / 0.09 * 12)::int]
             WHEN d.u_city < 0.995 THEN (ARRAY['Shanghai','Suzhou','Nanjing','Hefei','Beijing','Shenzhen','Guangzhou','Wuhan'])
                                        [1 + floor((d.u_city - 0.94) / 0.055 * 8)::int]
             ELSE NULL END,
        CASE WHEN d.age >= 62 THEN 'retired'
             WHEN d.u_occ < 0.06 THEN NULL
             ELSE (ARRAY['farmer','factory worker','civil servant','teacher','doctor','engineer',
                         'sales','self-employed','business owner','office clerk','driver','student'])
                  [1 + floor((d.u_occ - 0.06) / 0.94 * 12)::int] END,
        CASE WHEN d.u_edu < 0.1 THEN NULL
             ELSE (ARRAY['primary','secondary','high school','college','bachelor','master','doctorate'])
                  [1 + floor(power((d.u_edu - 0.1) / 0.9, 1.3) * 7)::int] END,
        CASE WHEN d.u_mar < 0.05 THEN NULL WHEN d.age < 25 AND d.u_mar < 0.85 THEN 'single'
             WHEN d.u_mar < 0.25 THEN 'single' WHEN d.u_mar < 0.9 THEN 'married'
             WHEN d.u_mar < 0.96 THEN 'divorced' ELSE 'widowed' END,
        d.u_emp < 0.004,
        d.branch_id,
        d.sub_branch_id,
        d.manager_id,
        d.open_date,
        CASE WHEN d.aum_3m >= 6000000 THEN 'private'
             WHEN d.aum_3m >= 1000000 THEN 'high_net_worth'
             WHEN d.aum_3m >= 200000 THEN 'affluent'
             ELSE 'mass' END,
        d.risk_level,
        CASE WHEN d.risk_level IS NULL THEN NULL ELSE as_of - floor(d.u_risk2 * 500)::int END,
        CASE WHEN d.u_null3 < 0.22 THEN NULL
             ELSE least(850, greatest(300, round(620 + 70 * d.z_wealth * 0.5 + 60 * d.z_credit)))::int END,
        d.cur_n + d.term_n + d.fund_n + d.wealth_n,
        d.aum_3m,
        dw.money(greatest(d.aum_raw, d.aum_raw * d.trend) * (1 + 0.35 * abs(d.z_peak))),
        d.cur_n,
        d.term_n,
        dw.money(d.bal_3m),
        dw.money(d.cur * exp(0.15 * d.z_peak) + d.term),
        CASE WHEN d.term > 0 THEN 1 + floor(power(d.u_td, 3) * 5)::int ELSE 0 END,
        CASE WHEN d.term > 0 THEN d.td_months END,
        CASE WHEN d.term > 0 THEN dw.rate(0.0125 + 0.0020 * ln(d.td_months) + 0.002 * d.u_td) END,
        CASE WHEN d.term > 0 THEN d.td_maturity END,
        d.has_fund,
        CASE WHEN d.has_fund THEN d.fund_n END,
        d.has_wealth,
        CASE WHEN d.has_wealth THEN d.wealth_n END,
        CASE WHEN d.has_wealth THEN as_of + (floor(d.u_wm * 400) - 30)::int END,
        d.has_insurance,
        CASE WHEN d.has_insurance THEN dw.money(2000 + d.aum_raw * 0.02 * d.u_ins) END,
        d.u_pension < 0.35 OR d.age >= 60,
        d.loan_type IS NOT NULL,
        d.loan_type,
        CASE WHEN d.loan_type = 'mortgage' THEN dw.money(200000 + 1600000 * power(d.u_loan, 2))
             WHEN d.loan_type = 'business' THEN dw.money(50000 + 950000 * power(d.u_loan, 2))
             WHEN d.loan_type = 'consumer' THEN dw.money(5000 + 195000 * power(d.u_loan, 2)) END,
        CASE WHEN d.loan_type IS NULL THEN NULL
             WHEN d.u_overdue < 0.93 THEN 0
             ELSE 1 + floor(power((d.u_overdue - 0.93) / 0.07, 3) * 180)::int END,
        CASE WHEN d.u_lapp < 0.035 THEN as_of - floor(power(d.u_lapp / 0.035, 1.5) * 120)::int
             WHEN d.u_lapp < 0.08 THEN as_of - (120 + floor(d.u_lapp * 5000))::int
             END,
        CASE WHEN d.u_lapp < 0.035 THEN 1 + floor(d.u_risk2 * 3)::int
             WHEN d.u_lapp < 0.3 THEN floor(d.u_risk2 * 2)::int
             ELSE 0 END,
        d.has_card,
        CASE WHEN d.has_card THEN d.u_card3 >= 0.14 END,
        CASE WHEN d.has_card THEN greatest(d.open_date, as_of - floor(d.u_card2 * 3000)::int) END,
        CASE WHEN d.has_card THEN (ARRAY[5000, 10000, 20000, 30000, 50000, 80000, 100000, 200000])
                                  [1 + least(7, floor(greatest(0, 3 + 1.5 * d.z_wealth + d.z_credit)))::int] END,
        CASE WHEN d.has_card AND d.u_card3 >= 0.14 THEN dw.money(d.u_card2 * 12000 * exp(0.5 * d.z_wealth))
             WHEN d.has_card THEN 0 END,
        d.payroll,
        CASE WHEN d.payroll OR d.u_emp2 < 0.5 THEN
             (ARRAY['government','state-owned','private','foreign','self-employed'])[1 + floor(d.u_emp2 * 5)::int] END,
        CASE WHEN d.payroll THEN dw.money(6000 * exp(0.55 * d.z_salary + 0.25 * d.z_wealth)) END,
        d.mobile_banking,
        d.mobile_banking AND d.u_wx < 0.7,
        CASE WHEN d.u_chan < 0.07 THEN NULL
             WHEN d.mobile_banking AND d.u_chan < 0.75 THEN (ARRAY['mobile','wechat'])[1 + floor(d.u_chan * 2)::int]
             ELSE (ARRAY['branch','phone','branch','atm'])[1 + floor(d.u_chan * 4)::int] END,
        CASE WHEN d.mobile_banking THEN as_of - d.login_age END,
        CASE WHEN d.txn_age IS NULL THEN NULL
             ELSE ((as_of - d.txn_age)::timestamp + make_interval(secs => 28800 + floor(d.u_time * 46800)))
                  AT TIME ZONE 'Asia/Shanghai' END,
        d.txn30,
        d.txn30 + floor(d.txn30 * 2 * d.u_txn)::int,
        dw.money(d.txn30 * (80 + 900 * d.u_txn2) * exp(0.4 * d.z_wealth)),
        CASE WHEN d.u_xb < 0.045 THEN dw.money(5000 + d.cur * 0.6 * d.u_xb2 + 30000 * d.u_xb2)
             WHEN d.u_xb < 0.5 THEN 0 END,
        CASE WHEN d.u_xb < 0.045 THEN 1 + floor(d.u_xb2 * 6)::int WHEN d.u_xb < 0.5 THEN 0 END,
        CASE WHEN d.u_out < 0.03 THEN dw.money(50000 + 400000 * d.u_out / 0.03) ELSE 0 END,
        CASE WHEN d.manager_id IS NULL AND d.u_contact < 0.7 THEN NULL
             ELSE as_of - floor(power(d.u_contact, 2) * 365)::int END,
        CASE WHEN d.u_compl < 0.96 THEN 0 ELSE 1 + floor((d.u_compl - 0.96) * 50)::int END,
        CASE WHEN d.u_consent < 0.04 THEN NULL ELSE d.u_consent >= 0.22 END,
        d.u_consent > 0.95,
        CASE WHEN NOT d.mobile_banking THEN dw.round_to(d.u_wx * 0.2, 4)
             ELSE dw.round_to(0.3 + 0.7 * d.u_wx * exp(-d.login_age / 120.0::float8), 4) END,
        CASE WHEN d.u_null3 > 0.97 THEN NULL
             ELSE dw.round_to(1 / (1 + exp(-(-2.2 + 3 * greatest(0, 1 - (d.cur + d.term) / greatest(d.bal_3m, 1))
                                      + coalesce(d.login_age, 400) / 200.0::float8 - 0.3 * d.z_wealth))), 4) END,
        CASE WHEN d.u_null2 > 0.99 THEN NULL ELSE dw.round_to(0.2 + 25 * power(d.u_dist, 3), 2) END,
        (d.cur > 0)::int + (d.term > 0)::int + d.has_fund::int + d.has_wealth::int
          + d.has_insurance::int + (d.loan_type IS NOT NULL)::int + d.has_card::int,
        (as_of - 1)::timestamp AT TIME ZONE 'Asia/Shanghai' + make_interval(secs => 79200 + floor(d.u_time * 5400))
    FROM (
        SELECT b.*,
               -- age 18..90, working ages most common
               (18 + floor(72 * power(b.u_age, 1.35)))::int AS age,
               as_of - (floor((18 + 72 * power(b.u_age, 1.35)) * 365.25) + floor(b.u_bday * 365))::int AS birth_date,
               -- org: sub-branch skewed (older, larger sub-branches first)
               100 + 1 + (b.sub_idx - 1) / 8 AS branch_id,
               10000 + b.sub_idx AS sub_branch_id,
               (ARRAY['Hangzhou','Ningbo','Wenzhou','Shaoxing','Jiaxing','Huzhou','Jinhua',
                      'Taizhou','Lishui','Quzhou','Zhoushan','Yiwu'])[1 + ((b.sub_idx - 1) / 8) % 12] AS branch_city,
               -- relationship manager: likelier for richer customers
               CASE WHEN b.u_mgr < 0.25 + 0.35 * (1 / (1 + exp(-(b.z_wealth - 0.6) * 2)))
                    THEN 100000 + (b.sub_idx - 1) * per_sub + 1 + floor(b.u_mgr2 * per_sub)::int END AS manager_id,
               greatest(date '1996-01-08', as_of - floor(power(b.u_open, 1.5) * 10000)::int) AS open_date,
               -- AUM: log-normal, median about 30,000
               exp(10.3 + 1.7 * b.z_wealth) AS aum_raw,
               b.u_fund < 1 / (1 + exp(-(1.2 * b.z_wealth - 1.6))) AS has_fund,
               b.u_wealth < 1 / (1 + exp(-(1.4 * b.z_wealth - 1.2))) AS has_wealth,
               b.u_ins < 0.06 + 0.2 / (1 + exp(-(b.z_wealth - 0.5))) AS has_insurance,
               b.u_term < 0.25 + 0.35 / (1 + exp(-b.z_wealth)) AS has_term,
               b.u_card < 0.38 AS has_card,
               b.u_payroll < 0.27 AS payroll,
               b.u_mb < 0.74 AS mobile_banking,
               CASE WHEN b.u_loan < 0.07 THEN 'mortgage' WHEN b.u_loan < 0.12 THEN 'business'
                    WHEN b.u_loan < 0.22 THEN 'consumer' END AS loan_type,
               -- risk appetite: assessed for nearly all wealth-product holders
               CASE WHEN b.u_risk < CASE WHEN b.u_wealth < 1 / (1 + exp(-(1.4 * b.z_wealth - 1.2)))
                                         THEN 0.05 ELSE 0.33 END THEN NULL
                    ELSE (ARRAY['R1','R2','R3','R4','R5'])[1 + floor(power(b.u_risk3, 1.1) * 5)::int] END AS risk_level,
               (ARRAY[3, 6, 12, 12, 24, 36, 36, 60])[1 + floor(b.u_td2 * 8)::int] AS td_months,
               -- days since last login: most recent, a long dormant tail
               CASE WHEN b.u_act < 0.6 THEN floor(power(b.u_act2, 2) * 30)::int
                    WHEN b.u_act < 0.82 THEN 30 + floor(b.u_act2 * 60)::int
                    ELSE 90 + floor(power(b.u_act2, 0.7) * 900)::int END AS login_age,
               CASE WHEN b.u_act3 < 0.015 THEN NULL
                    WHEN b.u_act < 0.8 THEN floor(power(b.u_act3, 2) * 20)::int
                    ELSE floor(b.u_act3 * 700)::int END AS txn_age,
               CASE WHEN b.u_act3 < 0.015 THEN 0
                    WHEN b.u_act < 0.8 THEN floor(exp(1.8 + 0.9 * b.z_txn))::int
                    ELSE floor(b.u_act3 * 2)::int END AS txn30,
               -- balance trend: most drift a little, ~9 % fell a lot in 3 months
               CASE WHEN b.u_churn < 0.09 THEN 1.45 + 3 * b.u_churn2 ELSE exp(0.18 * b.z_trend) END AS trend
        FROM (
            SELECT g::int8 AS id,
                   (ARRAY['Wang','Li','Zhang','Liu','Chen','Yang','Huang','Zhao','Wu','Zhou',
                          'Xu','Sun','Ma','Zhu','Hu','Guo','He','Lin','Luo','Gao',
                          'Zheng','Liang','Xie','Song','Tang','Han','Feng','Deng','Cao','Peng'])
                     [1 + floor(power(random(), 1.6) * 30)::int] AS surname,
                   (ARRAY['Wei','Fang','Na','Min','Jing','Li','Qiang','Lei','Jun','Yang',
                          'Yong','Yan','Jie','Tao','Ming','Chao','Xiu Ying','Gui Ying','Hui','Ping',
                          'Gang','Xia','Hong','Jian','Hua','Zi Han','Yu Xuan','Hao Ran','Xin Yi','Bo'])
                     [1 + floor(random() * 30)::int] AS given,
                   1 + floor(n_sub * power(random(), 1.25))::int AS sub_idx,
                   random() AS u_gender, random() AS u_null1, random() AS u_null2, random() AS u_null3,
                   random() AS u_mob, random() AS u_mob2, random() AS u_city, random() AS u_occ,
                   random() AS u_edu, random() AS u_mar, random() AS u_emp, random() AS u_emp2,
                   random() AS u_age, random() AS u_bday, random() AS u_mgr, random() AS u_mgr2,
                   random() AS u_open, random() AS u_risk, random() AS u_risk2, random() AS u_risk3,
                   dw.rnorm() AS z_wealth, dw.rnorm() AS z_credit, dw.rnorm() AS z_peak,
                   dw.rnorm() AS z_trend, dw.rnorm() AS z_salary, dw.rnorm() AS z_txn,
                   random() AS u_fund, random() AS u_wealth, random() AS u_ins, random() AS u_term,
                   random() AS u_split1, random() AS u_split2, random() AS u_split3,
                   random() AS u_td, random() AS u_td2, random() AS u_td3, random() AS u_wm,
                   random() AS u_pension, random() AS u_loan, random() AS u_overdue, random() AS u_lapp,
                   random() AS u_card, random() AS u_card2, random() AS u_card3, random() AS u_payroll,
                   random() AS u_mb, random() AS u_wx, random() AS u_chan,
                   random() AS u_act, random() AS u_act2, random() AS u_act3, random() AS u_time,
                   random() AS u_txn, random() AS u_txn2, random() AS u_xb, random() AS u_xb2,
                   random() AS u_out, random() AS u_contact, random() AS u_compl, random() AS u_consent,
                   random() AS u_dist, random() AS u_churn, random() AS u_churn2
            FROM generate_series(1, customers) g
            OFFSET 0
        ) b
        OFFSET 0
    ) d0
    -- AUM split over the products held; deposits 3 months ago from the trend
    CROSS JOIN LATERAL (
        SELECT d0.*,
               d0.aum_raw * w.cur_w / w.tot AS cur,       -- float8 parts, for scores
               d0.aum_raw * w.term_w / w.tot AS term,
               d0.aum_raw * (w.cur_w + w.term_w) / w.tot * d0.trend AS bal_3m,
               dw.money(d0.aum_raw * w.cur_w / w.tot) AS cur_n,
               dw.money(d0.aum_raw * w.term_w / w.tot) AS term_n,
               dw.money(d0.aum_raw * w.fund_w / w.tot) AS fund_n,
               dw.money(d0.aum_raw * w.wealth_w / w.tot) AS wealth_n,
               dw.money(d0.aum_raw * (1 + (d0.trend - 1) * (w.cur_w + w.term_w) / w.tot)) AS aum_3m,
               -- 9 % of term deposits matured in the last 90 days (not renewed);
               -- the others mature within their term from today
               CASE WHEN d0.u_td3 < 0.09 THEN as_of - (1 + floor(d0.u_td * 90))::int
                    ELSE as_of + floor((d0.u_td3 - 0.09) / 0.91 * d0.td_months * 30.4)::int END AS td_maturity
        FROM (SELECT 0.15 + d0.u_split1 AS cur_w,
                     CASE WHEN d0.has_term THEN 0.4 + 1.2 * d0.u_split2 ELSE 0 END AS term_w,
                     CASE WHEN d0.has_fund THEN 0.1 + 0.6 * d0.u_split3 ELSE 0 END AS fund_w,
                     CASE WHEN d0.has_wealth THEN 0.3 + 0.9 * d0.u_split1 * d0.u_split3 ELSE 0 END AS wealth_w,
                     0.15 + d0.u_split1
                       + CASE WHEN d0.has_term THEN 0.4 + 1.2 * d0.u_split2 ELSE 0 END
                       + CASE WHEN d0.has_fund THEN 0.1 + 0.6 * d0.u_split3 ELSE 0 END
                       + CASE WHEN d0.has_wealth THEN 0.3 + 0.9 * d0.u_split1 * d0.u_split3 ELSE 0 END AS tot
             ) w
    ) d;

    GET DIAGNOSTICS n_rows = ROW_COUNT;

    ANALYZE dw.branch;
    ANALYZE dw.manager;
    ANALYZE dw.customer_wide;
    RETURN n_rows;
END
$fn$;

COMMENT ON FUNCTION dw.generate_bank(int, date, float8) IS
    '(Re)create dw.branch, dw.manager, dw.customer_wide with N synthetic customers as of a date; reproducible by seed';

-- One business day later for a random fraction of customers: balances drift,
-- logins and transactions happen, a few term deposits are renewed, a few
-- customers move money out. Returns the number of customers changed.
CREATE OR REPLACE FUNCTION dw.simulate_day(fraction float8 DEFAULT 0.02,
                                           day date DEFAULT current_date,
                                           seed float8 DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET jit = off
AS
$fn$
DECLARE
    n bigint;
BEGIN
    IF fraction IS NULL OR fraction < 0 OR fraction > 1 THEN
        RAISE EXCEPTION 'dw.simulate_day: fraction must be between 0 and 1, got %', fraction
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF seed IS NOT NULL THEN
        PERFORM setseed(seed);
    END IF;
    day := coalesce(day, current_date);

    UPDATE dw.customer_wide c
       SET current_balance = s.cur,
           term_balance    = s.term,
           td_maturity_date = s.maturity,
           aum             = s.cur + coalesce(s.term, 0) + coalesce(c.fund_balance, 0)
                             + coalesce(c.wealth_balance, 0),
           last_login_date = CASE WHEN c.mobile_banking AND s.u_login < 0.55 THEN day
                                  ELSE c.last_login_date END,
           last_txn_at     = CASE WHEN s.u_txn < 0.7
                                  THEN day::timestamp AT TIME ZONE 'Asia/Shanghai'
                                       + make_interval(secs => 28800 + floor(s.u_txn * 60000))
                                  ELSE c.last_txn_at END,
           txn_count_30d   = coalesce(c.txn_count_30d, 0) + CASE WHEN s.u_txn < 0.7 THEN 1 + floor(s.u_txn * 4)::int ELSE 0 END,
           txn_count_90d   = coalesce(c.txn_count_90d, 0) + CASE WHEN s.u_txn < 0.7 THEN 1 + floor(s.u_txn * 4)::int ELSE 0 END,
           xbank_same_name_out_30d = CASE WHEN s.u_out < 0.03
                                          THEN coalesce(c.xbank_same_name_out_30d, 0) + round(c.current_balance * 0.5, 2)
                                          ELSE c.xbank_same_name_out_30d END,
           xbank_out_count_30d = CASE WHEN s.u_out < 0.03 THEN coalesce(c.xbank_out_count_30d, 0) + 1
                                      ELSE c.xbank_out_count_30d END,
           updated_at      = day::timestamp AT TIME ZONE 'Asia/Shanghai' + interval '22 hours'
      FROM (
        SELECT r.customer_id,
               -- 3 % move half their current balance out; the rest drift a little;
               -- a matured term deposit is renewed for its term (60 %) or moved to current
               CASE WHEN r.td_maturity_date <= day AND r.u_renew >= 0.6 THEN coalesce(r.term_balance, 0) ELSE 0 END
                 + CASE WHEN r.u_out < 0.03 THEN round(r.current_balance * 0.5, 2)
                        ELSE round(r.current_balance * exp(0.08 * r.z)::numeric, 2) END AS cur,
               CASE WHEN r.td_maturity_date <= day AND r.u_renew >= 0.6 THEN 0
                    ELSE r.term_balance END AS term,
               CASE WHEN r.td_maturity_date <= day AND r.u_renew < 0.6
                    THEN day + (coalesce(r.td_term_months, 12) * 30.4)::int
                    ELSE r.td_maturity_date END AS maturity,
               r.u_login, r.u_txn, r.u_out
          FROM (SELECT c2.customer_id, c2.current_balance, c2.term_balance, c2.td_maturity_date,
                       c2.td_term_months,
                       dw.rnorm() AS z, random() AS u_renew, random() AS u_login,
                       random() AS u_txn, random() AS u_out
                  FROM dw.customer_wide c2
                 WHERE random() < fraction
                OFFSET 0) r
      ) s
     WHERE c.customer_id = s.customer_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

COMMENT ON FUNCTION dw.simulate_day(float8, date, float8) IS
    'Move a random fraction of dw.customer_wide one day on (balances, logins, transactions, maturities)';
