-- Part 87 (sql/install/87-journeys.sql): journeys. Channels (quiet hours,
-- fallback) and consent; a journey's entry audience, steps timed from an
-- anchor column or from entry, exit and goal; advance_journeys writes each
-- due touch once into the outbox (on a fallback channel, or skipped with a
-- reason); ack and record_response report on a touch; enter_journey enters
-- keys directly. Bad inputs fail with their SQLSTATE and change nothing.
\i test/fixtures/regress.psql

CREATE TABLE jr_cust (id int PRIMARY KEY, name text, maturity date, app boolean, sms boolean,
                      bought boolean DEFAULT false);
INSERT INTO jr_cust VALUES
    (1, 'Ann', '2027-01-31', true,  true),
    (2, 'Bob', '2027-01-16', true,  true),
    (3, 'Cai', '2027-01-08', false, true),
    (4, 'Dan', '2027-01-20', false, false);
SELECT segment.register_subject('jr', 'jr_cust', 'id') IS NOT NULL AS registered;
SELECT segment.create_tag('jr', 'jr_td', 'maturity IS NOT NULL') IS NOT NULL AS created;
SELECT segment.create_tag('jr', 'jr_bought', 'bought') IS NOT NULL AS created;
SELECT segment.create_tag('jr', 'jr_nobody', 'false') IS NOT NULL AS created;
SELECT count(*) FROM segment.refresh('jr', '2027-01-01');

SELECT segment.set_channel('jr_sms', quiet_from => '21:00', quiet_to => '09:00');
SELECT segment.set_channel('jr_app', fallback => ARRAY['jr_sms']);
SELECT segment.register_consent('jr', 'jr_cust', 'id', 'jr_app', 'app');
SELECT segment.register_consent('jr', 'jr_cust', 'id', 'jr_sms', 'sms');

SELECT segment.create_journey('jr', 'jr_maturity', 'jr_td', anchor_column => 'maturity', goal => 'jr_bought')
       IS NOT NULL AS created;
SELECT segment.add_journey_step('jr_maturity', 1, '-30 days', 'jr_app', 'Dear {name}, {maturity|date}');
SELECT segment.add_journey_step('jr_maturity', 2, '-7 days', 'jr_app', 'One week left, {name}');
SELECT segment.add_journey_step('jr_maturity', 3, '-1 day', 'jr_sms');

CREATE FUNCTION pg_temp.jr_outbox() RETURNS TABLE (customer text, step int, channel text, due_at timestamptz,
                                                   message text, status text, reason text, response text)
LANGUAGE sql AS $$
    SELECT customer, step, channel, due_at, message, status, reason, response FROM segment.outbox
     WHERE journey LIKE 'jr\_%' ORDER BY due_at, customer, step
$$;

-- the first advance: due touches only, each on its channel or a fallback
SELECT segment.advance_journeys('2027-01-01 10:00+00') AS written;
SELECT * FROM pg_temp.jr_outbox();
-- again at the same time: nothing new
SELECT segment.advance_journeys('2027-01-01 10:05+00') AS written;
-- daily advances: nothing due until Cai's last step (jr_sms, due on the 7th),
-- found at 23:00 in jr_sms's quiet hours: it goes out when they end
SELECT sum(segment.advance_journeys(d + time '10:00')) AS written
  FROM generate_series(date '2027-01-02', date '2027-01-06', interval '1 day') d;
SELECT segment.advance_journeys('2027-01-07 23:00+00') AS written;
SELECT * FROM pg_temp.jr_outbox();

-- reporting on a touch
SELECT outbox_id AS first FROM segment.outbox WHERE journey = 'jr_maturity' AND customer = '1' AND step = 1 \gset
SELECT segment.outbox_ack(:first, 'delivered');
SELECT segment.outbox_record_response(:first, 'clicked', '2027-01-02 12:00+00') IS NOT NULL AS escalated;
SELECT status, response FROM segment.outbox WHERE outbox_id = :first;
SELECT regress.err(format('SELECT segment.outbox_ack(%s, %L)', :first, 'delivered')) AS ack_twice;
SELECT regress.err(format('SELECT segment.outbox_ack(%s, %L)', :first, 'read')) AS ack_bad_status;
SELECT regress.err('SELECT segment.outbox_ack(-1, ''delivered'')') AS ack_unknown;

-- the goal: a customer who bought leaves at the next advance
UPDATE jr_cust SET bought = true WHERE id = 2;
SELECT count(*) FROM segment.refresh('jr', '2027-01-08');
SELECT segment.advance_journeys('2027-01-08 10:00+00') AS written;
SELECT key, status FROM segment.journey_instance i JOIN segment.journey j USING (journey_id)
 WHERE j.name = 'jr_maturity' ORDER BY key;

-- entered directly, steps timed from entry
SELECT segment.create_journey('jr', 'jr_welcome', 'jr_nobody', exit => 'jr_bought') IS NOT NULL AS created;
SELECT segment.add_journey_step('jr_welcome', 1, '0 days', 'jr_app', 'Welcome, {name}');
SELECT segment.enter_journey('jr_welcome', ARRAY['1', '2', '99'], '2027-01-08 10:00+00') AS entered;
SELECT customer, step, channel, message, status FROM segment.outbox WHERE journey = 'jr_welcome' ORDER BY customer;

-- definition changes
SELECT segment.alter_journey('jr_maturity', reentry_days => 30);
SELECT segment.drop_journey_step('jr_maturity', 3);
SELECT name, reentry_days, version FROM segment.journey WHERE name LIKE 'jr\_%' ORDER BY name;
SELECT name, action FROM segment.journey_history WHERE name LIKE 'jr\_%' ORDER BY history_id;

-- bad inputs, then nothing changed
SELECT regress.err($$SELECT segment.set_channel('Bad Name')$$) AS channel_name;
SELECT regress.err($$SELECT segment.set_channel('jr_x', fallback => ARRAY['no_such_channel'])$$) AS unknown_fallback;
SELECT regress.err($$SELECT segment.register_consent('jr', 'jr_cust', 'id', 'no_such_channel', 'app')$$) AS consent_channel;
SELECT regress.err($$SELECT segment.register_consent('jr', 'jr_cust', 'id', 'jr_app', 'name')$$) AS consent_not_boolean;
SELECT regress.err($$SELECT segment.create_journey('jr', 'jr_maturity', 'jr_td')$$) AS duplicate;
SELECT regress.err($$SELECT segment.create_journey('jr', 'jr_x', 'no_such_tag')$$) AS unknown_entry;
SELECT regress.err($$SELECT segment.create_journey('jr', 'jr_x', 'jr_td', anchor_column => 'name')$$) AS anchor_not_date;
SELECT regress.err($$SELECT segment.create_journey('jr', 'jr_x', 'jr_td', holdout_pct => 80)$$) AS holdout;
SELECT regress.err($$SELECT segment.add_journey_step('jr_maturity', 1, '-30 days', 'jr_app')$$) AS step_exists;
SELECT regress.err($$SELECT segment.add_journey_step('jr_maturity', 5, '1 day', 'no_such_channel')$$) AS step_channel;
SELECT regress.err($$SELECT segment.add_journey_step('jr_maturity', 5, '1 day', 'jr_app', 'Hi {nope}')$$) AS step_template;
SELECT regress.err($$SELECT segment.add_journey_step('jr_maturity', 0, '1 day', 'jr_app')$$) AS step_zero;
SELECT regress.err($$SELECT segment.drop_journey_step('jr_maturity', 9)$$) AS drop_missing_step;
SELECT regress.err($$SELECT segment.alter_journey('no_such_journey', active => false)$$) AS alter_unknown;
SELECT regress.err($$SELECT segment.enter_journey('jr_welcome', NULL)$$) AS enter_null_keys_enters_nobody;
SELECT regress.err($$SELECT segment.drop_journey('jr_maturity')$$) AS drop_with_instances;
SELECT name, reentry_days, version FROM segment.journey WHERE name LIKE 'jr\_%' ORDER BY name;

SELECT segment.drop_journey('jr_maturity', "cascade" => true);
SELECT segment.drop_journey('jr_welcome', "cascade" => true);
SELECT count(*) AS journeys_left FROM segment.journey WHERE name LIKE 'jr\_%';
SELECT segment.unregister_subject('jr');
DELETE FROM segment.channel WHERE name LIKE 'jr\_%';
DROP TABLE jr_cust;
