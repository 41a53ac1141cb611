-- tags.sql: a library of retail-banking tags over dw.customer_wide (test/data/bank.sql).
--
-- Each tag is a SQL boolean expression over one customer's row. The evaluation
-- date is segment.as_of() (the as_of of the refresh), never current_date, so a
-- run can be reproduced or back-filled. A customer is a member when the rule is
-- TRUE; NULL counts as not a member (so "last_login_date < ..." leaves out
-- customers who never logged in: write the NULL case explicitly when it matters).
--
-- Categories: value, maturity, activity, churn, mining (cross-sell), credit,
-- risk, service, demographic.
--
-- Usage (after dw.generate_bank and CREATE EXTENSION segment):
--   \i test/data/tags.sql
-- The subject 'customer' is registered here unless it already is.

-- key customer_id; org unit sub_branch_id (dw.branch); owner manager_id (dw.manager)
SELECT segment.register_subject('customer', 'dw.customer_wide', 'customer_id',
                                'sub_branch_id', 'manager_id')
 WHERE NOT EXISTS (SELECT FROM segment.subject WHERE name = 'customer');

---------------------------------------------------------------------------
-- value: tiers by assets under management (AUM, CNY)
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'value_private', $$aum >= 6000000$$, 'value',
    'Private banking: AUM of 6 million or more');
SELECT segment.create_tag('customer', 'value_hnw', $$aum >= 1000000 and aum < 6000000$$, 'value',
    'High net worth: AUM from 1 million to 6 million');
SELECT segment.create_tag('customer', 'value_affluent', $$aum >= 200000 and aum < 1000000$$, 'value',
    'Affluent: AUM from 200,000 to 1 million');
SELECT segment.create_tag('customer', 'value_emerging', $$aum >= 50000 and aum < 200000$$, 'value',
    'Emerging affluent: AUM from 50,000 to 200,000');
SELECT segment.create_tag('customer', 'value_mass', $$aum < 50000$$, 'value',
    'Mass retail: AUM under 50,000');
SELECT segment.create_tag('customer', 'high_value', $$aum >= 500000$$, 'value',
    'High value: AUM of 500,000 or more');
SELECT segment.create_tag('customer', 'near_upgrade', $$aum >= 160000 and aum < 200000$$, 'value',
    'Within 20 % of the affluent threshold: a nudge upgrades the tier');
SELECT segment.create_tag('customer', 'aum_growing', $$aum > aum_3m_ago * 1.2 and aum_3m_ago >= 10000$$, 'value',
    'AUM grew more than 20 % in 3 months');
SELECT segment.create_tag('customer', 'segment_downgrade_risk',
    $$customer_segment in ('affluent', 'high_net_worth', 'private')
      and aum < case customer_segment when 'private' then 6000000
                                      when 'high_net_worth' then 1000000
                                      else 200000 end$$, 'value',
    'AUM fell below the threshold of the segment the customer was reviewed into');

---------------------------------------------------------------------------
-- maturity: term deposits and wealth products coming due (maintenance leads)
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'maturing', $$td_maturity_date - segment.as_of() in (30, 15, 7, 1)$$, 'maturity',
    'Term deposit matures in exactly 30, 15, 7 or 1 days: the reminder days');
SELECT segment.create_tag('customer', 'maturing_30d', $$td_maturity_date - segment.as_of() between 0 and 30$$, 'maturity',
    'Term deposit matures within 30 days');
SELECT segment.create_tag('customer', 'maturing_7d', $$td_maturity_date - segment.as_of() between 0 and 7$$, 'maturity',
    'Term deposit matures within 7 days');
SELECT segment.create_tag('customer', 'maturing_1d', $$td_maturity_date = segment.as_of() + 1$$, 'maturity',
    'Term deposit matures tomorrow');
SELECT segment.create_tag('customer', 'matured_not_renewed',
    $$td_maturity_date between segment.as_of() - 30 and segment.as_of() - 1 and term_balance > 0$$, 'maturity',
    'Term deposit matured in the last 30 days and was not renewed');
SELECT segment.create_tag('customer', 'large_td_maturing_30d',
    $$term_balance >= 200000 and td_maturity_date - segment.as_of() between 0 and 30$$, 'maturity',
    'Term deposits of 200,000 or more maturing within 30 days');
SELECT segment.create_tag('customer', 'wealth_maturing_15d',
    $$wealth_maturity_date - segment.as_of() between 0 and 15$$, 'maturity',
    'Wealth-management product matures within 15 days');

---------------------------------------------------------------------------
-- activity
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'dormant', $$last_login_date < segment.as_of() - 90$$, 'activity',
    'Mobile-banking user with no login for 90 days (never-logged-in customers are not included)');
SELECT segment.create_tag('customer', 'no_txn_90d', $$coalesce(txn_count_90d, 0) = 0$$, 'activity',
    'No transaction in 90 days (missing counts read as zero)');
SELECT segment.create_tag('customer', 'sleeping_account',
    $$last_txn_at is null or last_txn_at < segment.as_of() - interval '365 days'$$, 'activity',
    'No transaction for a year, or never');
SELECT segment.create_tag('customer', 'active_digital', $$last_login_date >= segment.as_of() - 7$$, 'activity',
    'Logged in to mobile banking in the last 7 days');
SELECT segment.create_tag('customer', 'heavy_transactor', $$txn_count_30d >= 30$$, 'activity',
    '30 or more transactions in 30 days');
SELECT segment.create_tag('customer', 'new_customer_90d', $$open_date > segment.as_of() - 90$$, 'activity',
    'Became a customer in the last 90 days');
SELECT segment.create_tag('customer', 'long_tenure_10y', $$open_date <= segment.as_of() - interval '10 years'$$, 'activity',
    'Customer for 10 years or more');

---------------------------------------------------------------------------
-- churn: money leaving
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'churn_risk',
    $$current_balance + term_balance < 0.7 * balance_3m_ago$$, 'churn',
    'Deposits fell more than 30 % against 3 months ago');
SELECT segment.create_tag('customer', 'churn_risk_high_value',
    $$current_balance + term_balance < 0.7 * balance_3m_ago and balance_3m_ago >= 200000$$, 'churn',
    'Deposits of 200,000 or more 3 months ago, down more than 30 %');
SELECT segment.create_tag('customer', 'aum_drop_30pct', $$aum < 0.7 * aum_3m_ago$$, 'churn',
    'AUM fell more than 30 % in 3 months');
SELECT segment.create_tag('customer', 'xbank_transfer_out', $$xbank_same_name_out_30d >= 50000$$, 'churn',
    'Moved 50,000 or more to own accounts at other banks in 30 days');
SELECT segment.create_tag('customer', 'xbank_transfer_frequent',
    $$xbank_out_count_30d >= 3 and xbank_same_name_out_30d > 0$$, 'churn',
    'Three or more same-name transfers to other banks in 30 days');
SELECT segment.create_tag('customer', 'large_outflow_7d', $$large_outflow_7d >= 100000$$, 'churn',
    'Large outflow of 100,000 or more in 7 days');
SELECT segment.create_tag('customer', 'churn_model_high', $$churn_score >= 0.6$$, 'churn',
    'Churn model score of 0.6 or more');
SELECT segment.create_tag('customer', 'complained_12m', $$complaint_count_12m > 0$$, 'churn',
    'Complained at least once in 12 months');

---------------------------------------------------------------------------
-- mining: new needs (cross-sell leads)
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'payroll_no_wealth',
    $$payroll_flag and not has_wealth and not has_fund$$, 'mining',
    'Salary paid here but no wealth or fund product');
SELECT segment.create_tag('customer', 'payroll_high_salary', $$payroll_flag and monthly_salary >= 15000$$, 'mining',
    'Payroll customer earning 15,000 a month or more');
SELECT segment.create_tag('customer', 'idle_cash',
    $$current_balance >= 100000 and not has_wealth and not has_fund$$, 'mining',
    '100,000 or more idle in demand deposits, no investment product');
SELECT segment.create_tag('customer', 'fund_prospect',
    $$risk_level in ('R3', 'R4', 'R5') and not has_fund and aum >= 50000$$, 'mining',
    'Risk appetite R3 or above, AUM 50,000 or more, no fund');
SELECT segment.create_tag('customer', 'insurance_prospect',
    $$not has_insurance and marital_status = 'married' and aum >= 100000$$, 'mining',
    'Married, AUM 100,000 or more, no insurance');
SELECT segment.create_tag('customer', 'pension_prospect',
    $$birth_date between segment.as_of() - interval '60 years' and segment.as_of() - interval '50 years'
      and not has_pension_account$$, 'mining',
    'Aged 50 to 60 without a pension account');
SELECT segment.create_tag('customer', 'card_prospect',
    $$not has_credit_card and credit_score >= 700
      and birth_date between segment.as_of() - interval '45 years' and segment.as_of() - interval '22 years'$$, 'mining',
    'Good credit score, aged 22 to 45, no credit card');
SELECT segment.create_tag('customer', 'card_not_activated', $$has_credit_card and not card_activated$$, 'mining',
    'Credit card issued but never activated');
SELECT segment.create_tag('customer', 'young_card_holder',
    $$has_credit_card and birth_date > segment.as_of() - interval '30 years'$$, 'mining',
    'Credit-card holder under 30');
SELECT segment.create_tag('customer', 'card_high_usage', $$card_spend_30d >= 0.5 * card_limit$$, 'mining',
    'Spent half the card limit or more in 30 days: limit increase or instalment offer');
SELECT segment.create_tag('customer', 'failed_loan_app_30d',
    $$loan_app_failed_date >= segment.as_of() - 30$$, 'mining',
    'Online loan application rejected in the last 30 days: offer an assisted application');
SELECT segment.create_tag('customer', 'business_owner_no_loan',
    $$occupation in ('business owner', 'self-employed') and not has_loan and aum >= 50000$$, 'mining',
    'Business owner or self-employed with AUM of 50,000 or more and no loan');
SELECT segment.create_tag('customer', 'wechat_unbound', $$mobile_banking and not wechat_bound$$, 'mining',
    'Uses mobile banking but has not bound the WeChat service account');

---------------------------------------------------------------------------
-- credit
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'loan_overdue', $$loan_overdue_days > 0$$, 'credit',
    'Loan payment overdue');
SELECT segment.create_tag('customer', 'loan_overdue_30d', $$loan_overdue_days >= 30$$, 'credit',
    'Loan payment overdue 30 days or more');
SELECT segment.create_tag('customer', 'mortgage_holder', $$loan_type = 'mortgage'$$, 'credit',
    'Holds a mortgage');

---------------------------------------------------------------------------
-- risk and compliance
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'risk_assessment_due',
    $$has_wealth and (risk_level is null or risk_assessed_date < segment.as_of() - 365)$$, 'risk',
    'Holds wealth products but the risk assessment is missing or over a year old');
SELECT segment.create_tag('customer', 'conservative_in_wealth', $$risk_level = 'R1' and has_wealth$$, 'risk',
    'Most conservative risk level but holds wealth products: suitability review');
SELECT segment.create_tag('customer', 'do_not_contact', $$do_not_call or marketing_consent is not true$$, 'risk',
    'Asked not to be called, or no marketing consent on file');
SELECT segment.create_tag('customer', 'kyc_incomplete', $$mobile is null or birth_date is null or gender is null$$, 'risk',
    'Mobile number, birth date or gender missing');

---------------------------------------------------------------------------
-- service: relationship coverage
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'has_manager', $$manager_id is not null$$, 'service',
    'Has a relationship manager');
SELECT segment.create_tag('customer', 'no_manager_high_value', $$manager_id is null and aum >= 500000$$, 'service',
    'AUM of 500,000 or more but no relationship manager');
SELECT segment.create_tag('customer', 'not_contacted_90d',
    $$manager_id is not null and coalesce(last_contact_date, date '1900-01-01') < segment.as_of() - 90$$, 'service',
    'Has a manager but no contact in 90 days');
SELECT segment.create_tag('customer', 'manager_priority',
    $$case when aum >= 1000000 then true
           when aum >= 200000 then coalesce(churn_score, 0) >= 0.3
           else false end$$, 'service',
    'Managers call first: AUM of 1 million or more, or 200,000 or more with some churn signal');

---------------------------------------------------------------------------
-- demographic and channel
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'senior', $$birth_date <= segment.as_of() - interval '65 years'$$, 'demographic',
    'Aged 65 or more');
SELECT segment.create_tag('customer', 'youth', $$birth_date > segment.as_of() - interval '25 years'$$, 'demographic',
    'Under 25');
SELECT segment.create_tag('customer', 'birthday_in_7d',
    $$to_char(birth_date, 'MM-DD') = to_char(segment.as_of() + 7, 'MM-DD')$$, 'demographic',
    'Birthday one week from the evaluation date: greeting');
SELECT segment.create_tag('customer', 'lives_tier1_city',
    $$city in ('Shanghai', 'Beijing', 'Shenzhen', 'Guangzhou')$$, 'demographic',
    'Lives in a tier-1 city outside the bank''s province');
SELECT segment.create_tag('customer', 'digital_native', $$digital_score >= 0.8$$, 'demographic',
    'Digital engagement score of 0.8 or more');
SELECT segment.create_tag('customer', 'qq_mail_user', $$email like '%@qq.com'$$, 'demographic',
    'E-mail at qq.com');
SELECT segment.create_tag('customer', 'far_from_branch', $$distance_to_branch_km > 10$$, 'demographic',
    'Lives more than 10 km from the sub-branch');
SELECT segment.create_tag('customer', 'staff', $$is_employee$$, 'demographic',
    'Bank employee (excluded from most campaigns)');
