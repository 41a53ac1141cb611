-- Subjects and tags: definitions, validation errors, history, the DDL guard.
\set VERBOSITY default
SET client_min_messages = warning;

CREATE SCHEMA bank;
CREATE TABLE bank.customer (
    customer_id   bigint PRIMARY KEY,
    name          text,
    aum           numeric(18,2),
    has_fund      boolean,
    td_maturity   date,
    last_login    date,
    city          text,
    risk_level    int
);
INSERT INTO bank.customer VALUES
    (1, 'Li Wei',     750000.00, false, '2026-12-22', '2026-11-20', 'Shanghai', 3),
    (2, 'Wang Fang',  499999.99, true,  '2026-11-29', '2026-06-01', 'Beijing',  2),
    (3, 'Zhang Min',  NULL,      NULL,  NULL,         NULL,         NULL,       NULL),
    (4, 'Chen Jie',   500000.00, false, '2026-11-23', '2026-11-01', 'Shanghai', 5),
    (5, 'Liu Yang',   12000.50,  true,  '2026-12-07', '2025-01-01', 'Chengdu',  1);

-- registering
SELECT segment.register_subject('customer', 'bank.customer', 'customer_id');
SELECT segment.register_subject('customer', 'bank.customer', 'customer_id');   -- duplicate
SELECT segment.register_subject('other', 'bank.customer', 'nope');             -- no column
SELECT segment.register_subject('other', 'bank.customer', 'td_maturity');      -- key type
SELECT segment.register_subject('other', 'bank.customer', 'risk_level');       -- not unique
SELECT segment.register_subject('bad name', 'bank.customer', 'customer_id');   -- name
CREATE VIEW bank.v AS SELECT * FROM bank.customer;
CREATE SEQUENCE bank.seq;
SELECT segment.register_subject('other', 'bank.seq', 'customer_id');           -- no rows to read
SELECT name, relation, key_column, key_type FROM segment.subject;

-- tags and every rejection of a rule
SELECT segment.create_tag('customer', 'high_value', 'aum >= 500000', 'value', 'AUM of 500k or more');
SELECT segment.create_tag('customer', 'maturing',
    $$td_maturity - segment.as_of() in (30, 15, 7, 1)$$, 'deposit');
SELECT segment.create_tag('customer', 'dormant', 'last_login < segment.as_of() - 90', 'activity');
SELECT segment.create_tag('customer', 'vip_manual', NULL, 'manual', 'set by relationship managers');
SELECT segment.create_tag('nobody', 'x', 'true');                         -- unknown subject
SELECT segment.create_tag('customer', 'high_value', 'true');              -- duplicate
SELECT segment.create_tag('customer', 'and', 'true');                     -- keyword
SELECT segment.create_tag('customer', 'bad', 'aum >=');                   -- syntax
SELECT segment.create_tag('customer', 'bad', 'balance > 1');              -- unknown column
SELECT segment.create_tag('customer', 'bad', 'aum + 1');                  -- not boolean
SELECT segment.create_tag('customer', 'bad', 'aum > (select 1)');         -- subquery
SELECT segment.create_tag('customer', 'bad', 'sum(aum) > 1');             -- aggregate
SELECT segment.create_tag('customer', 'bad', 'rank() over () = 1');       -- window
SELECT segment.create_tag('customer', 'bad', 'generate_series(1, 2) = 1'); -- set-returning
SELECT segment.create_tag('customer', 'bad', 'random() > 0.5');           -- volatile
SELECT segment.create_tag('customer', 'bad', 'other.aum > 1');            -- another table
SELECT segment.create_tag('customer', 'bad', 'ctid is not null');         -- system column
SELECT segment.create_tag('customer', 'bad', 'aum > 1, aum < 5');         -- two expressions
SELECT segment.create_tag('customer', 'bad', '');                         -- empty
SELECT segment.create_tag('customer', 'bad', 'aum > 1 from bank.customer'); -- a query
-- stable functions are allowed
SELECT segment.create_tag('customer', 'this_month',
    $$date_trunc('month', last_login) = date_trunc('month', segment.as_of()::timestamp)$$);
SELECT name, rule, category, columns, version FROM segment.tag ORDER BY tag_id;

-- refresh: one scan, every active rule tag
SELECT * FROM segment.refresh('customer', '2026-11-22');
SELECT t.name, segment.to_array(s.members) AS members, s.as_of
  FROM segment.tag t JOIN segment.tag_state s USING (tag_id) ORDER BY t.name;
SELECT segment.refresh('nobody');
SELECT segment.refresh('customer', NULL);
SELECT segment.refresh('customer', 'infinity');

-- changes: entered / exited against the previous run
UPDATE bank.customer SET aum = 600000 WHERE customer_id = 2;
DELETE FROM bank.customer WHERE customer_id = 4;
SELECT * FROM segment.refresh('customer', '2026-11-22') WHERE tag = 'high_value';
SELECT segment.to_array(universe) FROM segment.subject_state;

-- altering and history
SELECT segment.alter_tag('high_value', rule => 'aum >= 700000');
SELECT segment.alter_tag('dormant', active => false);
SELECT segment.alter_tag('maturing', description => 'term deposit matures in 30/15/7/1 days');
SELECT segment.alter_tag('high_value', rule => 'aum >=');           -- invalid: nothing changes
SELECT segment.alter_tag('nope', active => true);
SELECT segment.alter_tag('high_value');
SELECT segment.alter_tag('vip_manual', rule => 'true');
SELECT * FROM segment.refresh('customer', '2026-11-22');
SELECT tag, action, old_rule, new_rule, old_active, new_active, new_description
  FROM segment.tag_history ORDER BY history_id;
SELECT name, rule, active, version FROM segment.tag WHERE name IN ('high_value', 'dormant') ORDER BY name;

-- manual tags
SELECT segment.set_tag('customer', 1, 'vip_manual');
SELECT segment.set_tag('customer', 5, 'vip_manual', expires_at => now() + interval '1 day');
SELECT segment.set_tag('customer', 1, 'high_value');                 -- a rule tag
SELECT segment.set_tag('customer', 'abc', 'vip_manual');             -- bad key
SELECT segment.set_tag('customer', -1, 'vip_manual');                -- out of range
SELECT segment.set_tag('customer', 2, 'vip_manual', expires_at => '2000-01-01');
SELECT key, member_id, expires_at IS NOT NULL AS expires FROM segment.manual_tag ORDER BY member_id;
SELECT segment.set_tag('customer', 5, 'vip_manual', false);
SELECT key FROM segment.manual_tag ORDER BY member_id;

-- the DDL guard: columns used by rules cannot be dropped, renamed or broken
DROP VIEW bank.v;
DROP SEQUENCE bank.seq;
ALTER TABLE bank.customer DROP COLUMN last_login;          -- used by dormant (inactive) and this_month
ALTER TABLE bank.customer ALTER COLUMN aum TYPE text;      -- breaks aum >= 700000
ALTER TABLE bank.customer RENAME COLUMN td_maturity TO td; -- used by maturing
ALTER TABLE bank.customer DROP COLUMN customer_id;         -- the key
DROP TABLE bank.customer;                                  -- the subject
ALTER TABLE bank.customer ALTER COLUMN aum TYPE numeric(20,4);  -- still valid: allowed
ALTER TABLE bank.customer DROP COLUMN city;                     -- unused: allowed
SELECT * FROM segment.refresh('customer', '2026-11-22') WHERE tag = 'high_value';

-- a rule that fails on some row keeps its previous set; the others refresh
SELECT segment.create_tag('customer', 'ratio', 'aum / risk_level > 100000');
UPDATE bank.customer SET risk_level = 0 WHERE customer_id = 5;
SELECT * FROM segment.refresh('customer', '2026-11-22');
SELECT tags, error IS NOT NULL AS failed, error FROM segment.run ORDER BY run_id DESC LIMIT 1;

-- a refresh that fails as a whole (a key outside the member id range) leaves
-- the session usable and changes nothing
SELECT segment.drop_tag('ratio');
SELECT member_count FROM segment.tag_state JOIN segment.tag USING (tag_id) WHERE name = 'maturing';
ALTER TABLE bank.customer ADD CHECK (true);   -- DDL on a subject table that keeps rules valid
INSERT INTO bank.customer (customer_id, aum) VALUES (5000000000, 1);
SELECT * FROM segment.refresh('customer', '2026-11-22');
SELECT member_count FROM segment.tag_state JOIN segment.tag USING (tag_id) WHERE name = 'maturing';
DELETE FROM bank.customer WHERE customer_id = 5000000000;

-- privileges: refreshing needs SELECT on the table; ordinary users' DDL
-- passes the guard without any access to segment's catalog
CREATE ROLE segment_regress_user;
GRANT CREATE ON SCHEMA public TO segment_regress_user;
SET ROLE segment_regress_user;
CREATE TABLE public.mine (id int);
ALTER TABLE public.mine ADD COLUMN y int;
DROP TABLE public.mine;
RESET ROLE;
GRANT USAGE ON SCHEMA segment TO segment_regress_user;
GRANT SELECT ON segment.subject TO segment_regress_user;
SET ROLE segment_regress_user;
SELECT * FROM segment.refresh('customer', '2026-11-22');
RESET ROLE;
REVOKE ALL ON SCHEMA segment FROM segment_regress_user;
REVOKE ALL ON segment.subject FROM segment_regress_user;
REVOKE ALL ON SCHEMA public FROM segment_regress_user;
DROP ROLE segment_regress_user;

-- a rule on the clock is accepted (current_date is stable) with a warning
SELECT segment.create_tag('customer', 'recent_clock', 'last_login >= current_date - 30');
SELECT segment.drop_tag('recent_clock');

-- drop and unregister
SELECT segment.create_tag('customer', 'ratio', 'aum / risk_level > 100000');
SELECT segment.drop_tag('ratio');
SELECT segment.drop_tag('ratio');
SELECT count(*) FROM segment.tag_history WHERE tag = 'ratio';
SELECT segment.unregister_subject('customer');
SELECT count(*) AS tags_left FROM segment.tag;
SELECT count(*) AS drops FROM segment.tag_history WHERE action = 'drop';
DROP TABLE bank.customer CASCADE;
