-- segmentation.sql: the demo's schemes, scorecard and named segments over
-- subject 'customer' (dw.customer_wide), on top of test/data/tags.sql.
-- Loaded by test/demo.sh and test/bench.sh.

-- Value tiers by assets under management: first matching bucket wins, and
-- the last bucket takes everyone else.
SELECT segment.create_scheme('customer', 'value_tier', ARRAY[
    ['private',  'aum >= 6000000'],
    ['wealth',   'aum >= 1000000'],
    ['affluent', 'aum >= 200000'],
    ['emerging', 'aum >= 50000'],
    ['mass',     'true']],
    'Value tier by assets under management');

-- AIPL lifecycle: Loyalty, Purchase, Interest, Awareness (checked in that
-- order: the deepest relationship a customer qualifies for).
SELECT segment.create_scheme('customer', 'aipl', ARRAY[
    ['loyalty',   'products_held >= 3 and txn_count_90d >= 20 and open_date <= segment.as_of() - 365'],
    ['purchase',  'products_held >= 2 or coalesce(has_fund, false) or coalesce(has_wealth, false)'],
    ['interest',  'last_login_date >= segment.as_of() - 30 or txn_count_30d >= 5'],
    ['awareness', 'true']],
    'AIPL lifecycle stage');

-- Who to serve first: engagement and value points, with three bands.
SELECT segment.create_scorecard('customer', 'service_score', 0, ARRAY[
    ['aum >= 1000000',                                     '40'],
    ['aum >= 200000 and aum < 1000000',                    '25'],
    ['payroll_flag',                                       '15'],
    ['products_held >= 3',                                 '10'],
    ['mobile_banking',                                     '5'],
    ['last_login_date >= segment.as_of() - 30',            '5'],
    ['td_maturity_date - segment.as_of() between 0 and 30', '20'],
    ['xbank_same_name_out_30d >= 50000',                   '15'],
    ['complaint_count_12m > 0',                            '-10'],
    ['do_not_call',                                        '-30']],
    ARRAY[['low', '', '20'], ['medium', '20', '50'], ['high', '50', '']],
    'Priority of a customer for relationship managers');

-- Named segments: audiences with a name, usable like tags.
SELECT segment.create_segment('customer', 'retention_targets',
    '(churn_risk or xbank_transfer_out) and (value_tier.affluent or value_tier.wealth or value_tier.private)',
    'Valuable customers showing churn signals');
SELECT segment.create_segment('customer', 'maturity_calls',
    'maturing and not do_not_contact and has_manager',
    'Maturity reminders a manager can make');
SELECT segment.create_segment('customer', 'wealth_mining',
    'payroll_no_wealth and aipl.interest',
    'Payroll customers engaged online but without wealth products');
