-- opportunities.sql: the demo bank's opportunity set-up over subject
-- 'customer' (dw.customer_wide), on top of test/data/tags.sql and
-- test/data/segmentation.sql: the staff table, a contact policy, six
-- more tags, and 25 opportunity rules drawn from retail banking.
-- Loaded by test/demo.sh and test/pgtap/demo_opportunities.sql; the rules
-- are listed in docs/demo-data.md.
--
-- Conventions of the rules below:
--   * kind: maintenance keeps business the bank has (a maturing deposit, a
--     dormant user, money leaving); mining surfaces a new need (payroll
--     without wealth, idle cash, a card prospect).
--   * channel: manager (a relationship manager calls or meets), phone (the
--     sub-branch's phone team), sms, app (push / in-app message), branch
--     (a counter or lobby manager). Digital and sms leads go to the
--     unassigned pool (the remote team that runs those campaigns).
--   * priority: maturity and churn first; several rules add the
--     service_score scorecard so that the most valuable customers of the
--     audience come first (for the contact cap and for manager capacity).
--   * holdout_pct: 10-20 % on rules whose effect is measured; the
--     birthday greeting has no control group and no goal.
--   * goal: SQL over the customer row, evaluated on the row as it is when
--     the rule's window has closed (segment.evaluate_outcomes);
--     segment.as_of() is the evaluation date then.
--   * every audience excludes do_not_contact (no consent or asked not to be
--     called), except the regulatory and service ones where noted.
--
-- Usage (after test/data/tags.sql and test/data/segmentation.sql):
--   \i test/data/opportunities.sql
--   SELECT count(*) FROM segment.refresh('customer');   -- the tags added here
--   SELECT * FROM segment.generate();

-- Who works the leads: dw.manager, one row per relationship manager;
-- branch_id is the manager's sub-branch (the org unit of the customer's
-- sub_branch_id), daily_capacity the leads a manager can take per day.
SELECT segment.register_staff('customer', 'dw.manager', 'manager_id', 'branch_id',
                              'daily_capacity', 'active');

-- Contact fatigue: at most 3 opportunities per customer in any 30 days,
-- across all rules; the higher priority wins.
SELECT segment.set_contact_policy('customer', 3, 30);

---------------------------------------------------------------------------
-- Tags for the reminder days (tags.sql has "maturing" = any of 30, 15, 7,
-- 1 days and maturing_1d): one tag per day, so that each reminder is its own
-- rule with its own channel.
---------------------------------------------------------------------------
SELECT segment.create_tag('customer', 'td_due_30d', $$td_maturity_date = segment.as_of() + 30$$, 'maturity',
    'Term deposit matures in exactly 30 days: first reminder');
SELECT segment.create_tag('customer', 'td_due_15d', $$td_maturity_date = segment.as_of() + 15$$, 'maturity',
    'Term deposit matures in exactly 15 days: second reminder');
SELECT segment.create_tag('customer', 'td_due_7d', $$td_maturity_date = segment.as_of() + 7$$, 'maturity',
    'Term deposit matures in exactly 7 days: manager call');
SELECT segment.create_tag('customer', 'risk_assessment_expired',
    $$risk_level is not null and risk_assessed_date < segment.as_of() - 365$$, 'risk',
    'Risk assessment older than a year: must be renewed before the next wealth or fund purchase');
SELECT segment.create_tag('customer', 'risk_r2_plus', $$risk_level in ('R2', 'R3', 'R4', 'R5')$$, 'risk',
    'Risk appetite R2 or above (a wealth product can be proposed)');
SELECT segment.create_tag('customer', 'wealth_holder', $$has_wealth$$, 'value',
    'Holds wealth-management products');

---------------------------------------------------------------------------
-- maintenance: deposits coming due. Goal of all four reminders: the money is
-- still on term deposit with a maturity after the evaluation date (renewed),
-- evaluated once the reminder's window has closed.
---------------------------------------------------------------------------
SELECT segment.create_opportunity_rule('customer', 'td_maturity_30d',
    audience      => 'td_due_30d and not do_not_contact and not staff',
    kind          => 'maintenance',
    product       => 'term deposit renewal',
    channel       => 'app',
    priority      => 40,
    template      => 'Dear {customer_name|mask}, your term deposit of {term_balance|amount} CNY matures on {td_maturity_date|date}. Renew it in the app in two taps to keep earning.',
    valid_days    => 14,
    cooldown_days => 20,
    holdout_pct   => 20,
    goal          => 'term_balance > 0 and td_maturity_date > segment.as_of()',
    assignment    => 'pool',
    description   => 'First maturity reminder, 30 days ahead, in the app');

SELECT segment.create_opportunity_rule('customer', 'td_maturity_15d',
    audience      => 'td_due_15d and not do_not_contact and not staff',
    kind          => 'maintenance',
    product       => 'term deposit renewal',
    channel       => 'sms',
    priority      => 50,
    template      => '[Bank] {customer_name|mask}: your deposit of {term_balance|amount} CNY matures on {td_maturity_date|date:DD Mon YYYY}. Reply 1 to renew at today''s rate.',
    valid_days    => 10,
    cooldown_days => 10,
    holdout_pct   => 15,
    goal          => 'term_balance > 0 and td_maturity_date > segment.as_of()',
    assignment    => 'pool',
    description   => 'Second maturity reminder, 15 days ahead, by SMS');

SELECT segment.create_opportunity_rule('customer', 'td_maturity_7d',
    audience      => 'td_due_7d and not do_not_contact and not staff',
    kind          => 'maintenance',
    product       => 'term deposit renewal',
    channel       => 'manager',
    priority      => 70,
    priority_scorecard => 'service_score',
    template      => 'Call {customer_name|mask} ({mobile|mask}): {term_balance|amount} CNY on term deposit matures {td_maturity_date|date}; offer renewal or a wealth product.',
    valid_days    => 7,
    cooldown_days => 5,
    holdout_pct   => 10,
    goal          => 'term_balance > 0 and td_maturity_date > segment.as_of()',
    assignment    => 'owner',
    description   => 'Third maturity reminder, 7 days ahead: the relationship manager calls');

SELECT segment.create_opportunity_rule('customer', 'td_maturity_1d',
    audience      => 'maturing_1d and not do_not_contact and not staff',
    kind          => 'maintenance',
    product       => 'term deposit renewal',
    channel       => 'phone',
    priority      => 90,
    priority_scorecard => 'service_score',
    template      => 'URGENT {customer_name|mask} ({mobile|mask}): {term_balance|amount} CNY matures tomorrow ({td_maturity_date|date}). Confirm renewal today.',
    valid_days    => 2,
    cooldown_days => 1,
    holdout_pct   => 10,
    goal          => 'term_balance > 0 and td_maturity_date > segment.as_of()',
    assignment    => 'owner',
    capacity      => 10,
    description   => 'Last maturity reminder, the day before: phone call');

SELECT segment.create_opportunity_rule('customer', 'td_matured_not_renewed',
    audience      => 'matured_not_renewed and not do_not_contact and not staff',
    kind          => 'maintenance',
    product       => 'term deposit renewal',
    channel       => 'phone',
    priority      => 60,
    template      => '{customer_name|mask} ({mobile|mask}): {term_balance|amount} CNY matured on {td_maturity_date|date} and sits at the demand rate.',
    valid_days    => 10,
    cooldown_days => 30,
    holdout_pct   => 15,
    goal          => 'term_balance > 0 and td_maturity_date > segment.as_of()',
    assignment    => 'org',
    description   => 'Matured in the last 30 days and not renewed: the sub-branch phone team calls');

SELECT segment.create_opportunity_rule('customer', 'wealth_maturing',
    audience      => 'wealth_maturing_15d and not do_not_contact',
    kind          => 'maintenance',
    product       => 'wealth management reinvestment',
    channel       => 'manager',
    priority      => 65,
    priority_scorecard => 'service_score',
    template      => '{customer_name|mask}: wealth product of {wealth_balance|amount} CNY matures {wealth_maturity_date|date}. Propose the next issue before the money goes idle.',
    valid_days    => 14,
    cooldown_days => 30,
    holdout_pct   => 15,
    goal          => 'wealth_maturity_date > segment.as_of()',
    assignment    => 'owner',
    description   => 'Wealth-management product maturing within 15 days: reinvest');

---------------------------------------------------------------------------
-- maintenance: money leaving, customers drifting away
---------------------------------------------------------------------------
SELECT segment.create_opportunity_rule('customer', 'churn_warning',
    audience      => 'churn_risk_high_value and not do_not_contact and not staff',
    kind          => 'maintenance',
    product       => 'retention call',
    channel       => 'manager',
    priority      => 80,
    priority_scorecard => 'service_score',
    template      => 'Retention: {customer_name|mask} ({mobile|mask}) deposits down to {current_balance|amount} CNY from {balance_3m_ago|amount} three months ago.',
    valid_days    => 10,
    cooldown_days => 45,
    holdout_pct   => 20,
    goal          => 'current_balance + coalesce(term_balance, 0) >= 0.9 * balance_3m_ago',
    assignment    => 'owner',
    description   => 'Deposits of 200,000 or more three months ago, down more than 30 %');

SELECT segment.create_opportunity_rule('customer', 'xbank_transfer_out',
    audience      => 'xbank_transfer_out and not do_not_contact and not staff',
    kind          => 'maintenance',
    product       => 'preferential deposit rate',
    channel       => 'manager',
    priority      => 85,
    priority_scorecard => 'service_score',
    template      => '{customer_name|mask} moved {xbank_same_name_out_30d|amount} CNY to own accounts at other banks in 30 days ({xbank_out_count_30d} transfers). Offer a rate match.',
    valid_days    => 7,
    cooldown_days => 30,
    holdout_pct   => 15,
    goal          => 'coalesce(xbank_same_name_out_30d, 0) < 50000 and current_balance >= 50000',
    assignment    => 'owner',
    description   => 'Same-name transfers of 50,000 or more to other banks in 30 days');

SELECT segment.create_opportunity_rule('customer', 'dormant_reactivation',
    audience      => 'dormant and value_tier.affluent and not do_not_contact',
    kind          => 'maintenance',
    product       => 'mobile banking',
    channel       => 'sms',
    priority      => 20,
    template      => '[Bank] {customer_name|mask}, we miss you: log in to mobile banking before {td_maturity_date|date} and get a 5 CNY phone top-up.',
    valid_days    => 14,
    cooldown_days => 90,
    holdout_pct   => 20,
    goal          => 'last_login_date >= segment.as_of() - 30',
    assignment    => 'pool',
    description   => 'Affluent mobile-banking users (200,000 to 1 million) who have not logged in for 90 days');

SELECT segment.create_opportunity_rule('customer', 'high_value_no_manager',
    audience      => 'no_manager_high_value and not staff',
    kind          => 'maintenance',
    product       => 'relationship manager coverage',
    channel       => 'branch',
    priority      => 75,
    priority_scorecard => 'service_score',
    template      => 'Assign a relationship manager to {customer_name|mask}: AUM {aum|amount} CNY, no manager.',
    valid_days    => 14,
    cooldown_days => 60,
    holdout_pct   => 10,
    goal          => 'manager_id is not null',
    assignment    => 'org',
    description   => 'AUM of 500,000 or more and nobody looks after the customer (contact consent not needed: it is service)');

SELECT segment.create_opportunity_rule('customer', 'risk_assessment_renewal',
    audience      => 'risk_assessment_expired and wealth_holder and (value_tier.affluent or value_tier.wealth or value_tier.private)',
    kind          => 'maintenance',
    product       => 'risk assessment',
    channel       => 'app',
    priority      => 35,
    template      => '{customer_name|mask}, your risk assessment ({risk_level}) dates from {risk_assessed_date|date}; renew it in the app before your next wealth or fund purchase.',
    valid_days    => 14,
    cooldown_days => 90,
    holdout_pct   => 10,
    goal          => 'risk_assessed_date >= segment.as_of() - 60',
    assignment    => 'pool',
    description   => 'Affluent wealth-product holders whose risk assessment is over a year old: regulatory, sent regardless of marketing consent');

SELECT segment.create_opportunity_rule('customer', 'loan_overdue_reminder',
    audience      => 'loan_overdue and not loan_overdue_30d',
    kind          => 'maintenance',
    product       => 'loan repayment',
    channel       => 'sms',
    priority      => 55,
    template      => '[Bank] {customer_name|mask}: your {loan_type} loan repayment is {loan_overdue_days} days overdue. Repay in the app to protect your credit record.',
    valid_days    => 7,
    cooldown_days => 14,
    holdout_pct   => 10,
    goal          => 'loan_overdue_days = 0',
    assignment    => 'pool',
    description   => 'Early arrears (under 30 days): a reminder before collections');

SELECT segment.create_opportunity_rule('customer', 'birthday_greeting',
    audience      => 'birthday_in_7d and has_manager and (value_tier.affluent or value_tier.wealth or value_tier.private)',
    kind          => 'maintenance',
    product       => 'birthday greeting',
    channel       => 'manager',
    priority      => 10,
    template      => 'Birthday of {customer_name|mask} on {birth_date|date:MM-DD}: send the card and the gift voucher.',
    valid_days    => 7,
    cooldown_days => 300,
    holdout_pct   => 0,
    assignment    => 'owner',
    description   => 'Affluent customers with a manager, birthday in 7 days: no goal, no control group (a courtesy, not a campaign)');

---------------------------------------------------------------------------
-- mining: new needs
---------------------------------------------------------------------------
SELECT segment.create_opportunity_rule('customer', 'payroll_wealth',
    audience      => 'wealth_mining and not do_not_contact and not staff',
    kind          => 'mining',
    product       => 'wealth management',
    channel       => 'manager',
    priority      => 30,
    priority_scorecard => 'service_score',
    template      => '{customer_name|mask}: salary {monthly_salary|amount} CNY a month paid here, no wealth or fund product. Propose a monthly investment plan.',
    valid_days    => 14,
    cooldown_days => 60,
    holdout_pct   => 20,
    goal          => 'has_wealth or has_fund',
    assignment    => 'owner',
    capacity      => 5,
    description   => 'Payroll customers active online without wealth or fund products');

SELECT segment.create_opportunity_rule('customer', 'idle_cash',
    audience      => 'idle_cash and not dormant and not do_not_contact and not staff',
    kind          => 'mining',
    product       => 'wealth management',
    channel       => 'manager',
    priority      => 45,
    priority_scorecard => 'service_score',
    template      => '{customer_name|mask} keeps {current_balance|amount} CNY in demand deposits and no investment product.',
    valid_days    => 14,
    cooldown_days => 60,
    holdout_pct   => 15,
    goal          => 'has_wealth or has_fund',
    assignment    => 'owner',
    capacity      => 5,
    description   => '100,000 or more idle on current account');

SELECT segment.create_opportunity_rule('customer', 'large_td_to_wealth',
    audience      => 'large_td_maturing_30d and risk_r2_plus and not wealth_holder and not do_not_contact',
    kind          => 'mining',
    product       => 'wealth management',
    channel       => 'manager',
    priority      => 58,
    priority_scorecard => 'service_score',
    template      => '{customer_name|mask}: {term_balance|amount} CNY on deposit maturing {td_maturity_date|date}, risk level {risk_level}: present the wealth alternative.',
    valid_days    => 14,
    cooldown_days => 60,
    holdout_pct   => 15,
    goal          => 'has_wealth',
    assignment    => 'owner',
    capacity      => 3,
    description   => 'Large deposit maturing within 30 days, risk appetite R2 or above, no wealth product yet');

SELECT segment.create_opportunity_rule('customer', 'failed_loan_assist',
    audience      => 'failed_loan_app_30d and not loan_overdue and not do_not_contact',
    kind          => 'mining',
    product       => 'consumer loan',
    channel       => 'phone',
    priority      => 50,
    template      => '{customer_name|mask} ({mobile|mask}): online loan application rejected on {loan_app_failed_date|date}. Offer an assisted application with income proof.',
    valid_days    => 7,
    cooldown_days => 30,
    holdout_pct   => 15,
    goal          => 'has_loan',
    assignment    => 'org',
    description   => 'Online loan application rejected in the last 30 days, no arrears');

SELECT segment.create_opportunity_rule('customer', 'card_activation',
    audience      => 'card_not_activated and young_card_holder and not do_not_contact',
    kind          => 'mining',
    product       => 'credit card',
    channel       => 'sms',
    priority      => 25,
    template      => '[Bank] {customer_name|mask}, your credit card with a {card_limit|integer} CNY limit is waiting: activate it in the app and get 50 CNY off your first purchase.',
    valid_days    => 14,
    cooldown_days => 60,
    holdout_pct   => 20,
    goal          => 'card_activated',
    assignment    => 'pool',
    description   => 'Card holders under 30 whose credit card was never activated');

SELECT segment.create_opportunity_rule('customer', 'card_prospect',
    audience      => 'card_prospect and active_digital and not do_not_contact and not staff',
    kind          => 'mining',
    product       => 'credit card',
    channel       => 'app',
    priority      => 15,
    template      => '{customer_name|mask}, you are pre-approved for a credit card: apply in the app in 3 minutes.',
    valid_days    => 14,
    cooldown_days => 90,
    holdout_pct   => 20,
    goal          => 'has_credit_card',
    assignment    => 'pool',
    description   => 'Good credit score, aged 22 to 45, active online, no card');

SELECT segment.create_opportunity_rule('customer', 'fund_prospect',
    audience      => 'fund_prospect and not risk_assessment_expired and (value_tier.affluent or value_tier.wealth or value_tier.private) and not do_not_contact and not staff',
    kind          => 'mining',
    product       => 'mutual fund',
    channel       => 'manager',
    priority      => 28,
    priority_scorecard => 'service_score',
    template      => '{customer_name|mask}: risk level {risk_level}, AUM {aum|amount} CNY, no fund. Present the balanced fund portfolio.',
    valid_days    => 14,
    cooldown_days => 90,
    holdout_pct   => 15,
    goal          => 'has_fund',
    assignment    => 'owner',
    capacity      => 5,
    description   => 'Affluent and above, risk appetite R3+, valid risk assessment, no fund');

SELECT segment.create_opportunity_rule('customer', 'insurance_prospect',
    audience      => 'insurance_prospect and (value_tier.affluent or value_tier.wealth or value_tier.private) and not senior and not do_not_contact and not staff',
    kind          => 'mining',
    product       => 'family protection insurance',
    channel       => 'manager',
    priority      => 22,
    priority_scorecard => 'service_score',
    template      => '{customer_name|mask}: married, AUM {aum|amount} CNY, no insurance. Propose the family protection plan.',
    valid_days    => 21,
    cooldown_days => 90,
    holdout_pct   => 15,
    goal          => 'has_insurance',
    assignment    => 'org',
    capacity      => 4,
    description   => 'Married, affluent and above, under 65, no insurance');

SELECT segment.create_opportunity_rule('customer', 'pension_prospect',
    audience      => 'pension_prospect and (payroll_high_salary or value_tier.affluent or value_tier.wealth) and not do_not_contact',
    kind          => 'mining',
    product       => 'personal pension account',
    channel       => 'app',
    priority      => 18,
    template      => '{customer_name|mask}, open your personal pension account: up to 12,000 CNY a year off your taxable income.',
    valid_days    => 21,
    cooldown_days => 90,
    holdout_pct   => 20,
    goal          => 'has_pension_account',
    assignment    => 'pool',
    description   => 'Aged 50 to 60, good income or affluent, no pension account');

SELECT segment.create_opportunity_rule('customer', 'tier_upgrade',
    audience      => 'near_upgrade and not do_not_contact and not staff',
    kind          => 'mining',
    product       => 'affluent tier upgrade',
    channel       => 'manager',
    priority      => 32,
    priority_scorecard => 'service_score',
    template      => '{customer_name|mask}: AUM {aum|amount} CNY, within reach of the affluent tier (200,000). Invite to bring more money for the upgrade benefits.',
    valid_days    => 21,
    cooldown_days => 60,
    holdout_pct   => 15,
    goal          => 'aum >= 200000',
    assignment    => 'owner',
    capacity      => 5,
    description   => 'AUM from 160,000 to 200,000');

SELECT segment.create_opportunity_rule('customer', 'wechat_binding',
    audience      => 'wechat_unbound and active_digital and (value_tier.emerging or value_tier.affluent) and not do_not_contact',
    kind          => 'mining',
    product       => 'WeChat service account',
    channel       => 'app',
    priority      => 5,
    template      => 'Bind the WeChat service account, {customer_name|mask}, and get balance alerts for free.',
    valid_days    => 14,
    cooldown_days => 60,
    holdout_pct   => 10,
    goal          => 'wechat_bound',
    assignment    => 'pool',
    description   => 'Emerging and affluent mobile-banking users, active this week, WeChat not bound');

SELECT segment.create_opportunity_rule('customer', 'business_loan',
    audience      => 'business_owner_no_loan and (value_tier.affluent or value_tier.wealth or value_tier.private) and not do_not_contact and not staff',
    kind          => 'mining',
    product       => 'business loan',
    channel       => 'manager',
    priority      => 26,
    template      => '{customer_name|mask} ({occupation}): AUM {aum|amount} CNY and no loan. Present the small-business credit line.',
    valid_days    => 21,
    cooldown_days => 90,
    holdout_pct   => 15,
    goal          => 'has_loan',
    assignment    => 'org',
    capacity      => 3,
    description   => 'Affluent business owners and self-employed, no loan');
