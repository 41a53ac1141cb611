-- Live maintenance across evaluation dates (docs/live.md#dates): after a
-- refresh for a new date, every tag, bucket and score read with the overlay
-- merged equals the rule evaluated in plain SQL at that date, and no overlay
-- row has another as_of. Concurrent writers: test/specs/live_dates.spec.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;

CREATE SCHEMA ldt;
CREATE TABLE ldt.cust (id int8 PRIMARY KEY, login date, opened date, aum numeric);
INSERT INTO ldt.cust
SELECT g, CASE WHEN g % 97 = 0 THEN NULL ELSE date '2026-11-01' - (g * 7919 % 400)::int END,
       date '2026-11-01' - (g * 104729 % 900)::int, (g * 15485863 % 2000000)
  FROM generate_series(1::int8, 20000) g;
SELECT segment.register_subject('ldt', 'ldt.cust', 'id') > 0 AS registered;
SELECT segment.create_tag('ldt', 'ldt_active', 'login >= segment.as_of() - 30') > 0 AS created;
SELECT segment.create_tag('ldt', 'ldt_dormant', 'login < segment.as_of() - 180 OR login IS NULL') > 0 AS created;
SELECT segment.create_tag('ldt', 'ldt_new', 'opened > segment.as_of() - 90') > 0 AS created;
SELECT segment.create_tag('ldt', 'ldt_anniv', 'extract(day from segment.as_of()) = extract(day from opened)') > 0 AS created;
SELECT segment.create_tag('ldt', 'ldt_rich', 'aum >= 1000000') > 0 AS created;
SELECT segment.create_scheme('ldt', 'ldt_recency',
       ARRAY[['hot', 'login >= segment.as_of() - 7'], ['warm', 'login >= segment.as_of() - 60'], ['cold', 'true']]) > 0 AS created;
SELECT segment.create_scorecard('ldt', 'ldt_engage', 0,
       ARRAY[['login >= segment.as_of() - 30', '10'], ['opened > segment.as_of() - 365', '5'], ['aum >= 500000', '1']]) > 0 AS created;

-- What readers see against plain SQL at the date of the stored state: the
-- number of tags, buckets and scorecard scores that differ, and the overlay
-- rows evaluated at another date.
CREATE FUNCTION ldt.check(OUT state_as_of date, OUT wrong_tags int, OUT wrong_buckets int,
                          OUT wrong_scores int, OUT stale_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
    sid int := (SELECT subject_id FROM segment.subject WHERE name = 'ldt');
    t record;
    want segment.memberset;
    empty segment.memberset := segment.memberset('{}'::int8[]);
BEGIN
    SELECT st.as_of INTO state_as_of FROM segment.subject_state st WHERE st.subject_id = sid;
    PERFORM set_config('segment.as_of', state_as_of::text, true);
    wrong_tags := 0;
    FOR t IN SELECT name, rule FROM segment.tag WHERE subject_id = sid AND rule IS NOT NULL LOOP
        EXECUTE format('SELECT segment.memberset_agg(id) FROM ldt.cust WHERE (%s) IS TRUE', t.rule) INTO want;
        IF NOT coalesce(segment.audience('ldt', t.name) OPERATOR(segment.=) coalesce(want, empty), false) THEN
            wrong_tags := wrong_tags + 1;
        END IF;
    END LOOP;
    SELECT count(*) FILTER (WHERE NOT coalesce(segment.audience('ldt', 'ldt_recency.' || b)
                                               OPERATOR(segment.=) coalesce(m, empty), false))
      INTO wrong_buckets
      FROM (VALUES ('hot'), ('warm'), ('cold')) v(b)
      LEFT JOIN (SELECT CASE WHEN login >= state_as_of - 7 THEN 'hot'
                             WHEN login >= state_as_of - 60 THEN 'warm' ELSE 'cold' END AS b,
                        segment.memberset_agg(id) AS m
                   FROM ldt.cust GROUP BY 1) x USING (b);
    SELECT count(*) INTO wrong_scores
      FROM (SELECT s.score, s.members FROM segment_internal._live_scores(
                (SELECT scorecard_id FROM segment.scorecard WHERE name = 'ldt_engage'), sid) s) l
      FULL JOIN (SELECT (CASE WHEN login >= state_as_of - 30 THEN 10 ELSE 0 END
                         + CASE WHEN opened > state_as_of - 365 THEN 5 ELSE 0 END
                         + CASE WHEN aum >= 500000 THEN 1 ELSE 0 END)::numeric AS score,
                        segment.memberset_agg(id) AS members
                   FROM ldt.cust GROUP BY 1) q USING (score)
     WHERE NOT coalesce(l.members OPERATOR(segment.=) q.members, false);
    SELECT count(*) INTO stale_rows FROM segment.live_member l
     WHERE l.subject_id = sid AND l.as_of <> state_as_of;
END $$;

SELECT count(*) FROM segment.refresh('ldt', '2026-11-01');
SELECT segment.enable_live('ldt');
SELECT * FROM ldt.check();

-- writes at 2026-11-01: bulk (compared with the stored sets) and small ones
UPDATE ldt.cust SET login = login + 3 WHERE id % 10 = 1;
UPDATE ldt.cust SET login = date '2026-10-31' WHERE id IN (5, 6, 7);
INSERT INTO ldt.cust VALUES (30001, '2026-10-20', '2026-10-01', 10), (30002, NULL, '2020-01-01', 2000000);
DELETE FROM ldt.cust WHERE id IN (8, 9);
UPDATE ldt.cust SET id = 40010 WHERE id = 10;
SELECT count(*) > 0 AS overlay, min(as_of), max(as_of) FROM segment.live_member;
SELECT * FROM ldt.check();

-- the next day: the refresh folds the overlay; later writes are evaluated
-- at the new date whatever segment.as_of says
SELECT count(*) FROM segment.refresh('ldt', '2026-11-02');
SELECT count(*) AS overlay FROM segment.live_member;
SELECT * FROM ldt.check();
SET segment.as_of = '2026-11-01';
UPDATE ldt.cust SET login = login + 1 WHERE id % 10 = 2;
UPDATE ldt.cust SET login = '2026-10-03', opened = '2026-08-05' WHERE id IN (12, 13);
UPDATE ldt.cust SET id = 40020 WHERE id = 20;
DELETE FROM ldt.cust WHERE id = 21;
RESET segment.as_of;
SELECT min(as_of), max(as_of) FROM segment.live_member;
SELECT * FROM ldt.check();

-- forty days later
SELECT count(*) FROM segment.refresh('ldt', '2026-12-11');
SELECT * FROM ldt.check();
UPDATE ldt.cust SET login = '2026-12-10' WHERE id % 100 = 3;
INSERT INTO ldt.cust VALUES (30003, '2026-12-01', '2026-12-01', 1);
SELECT min(as_of), max(as_of) FROM segment.live_member;
SELECT * FROM ldt.check();

-- back to an earlier date moves everything back too
SELECT count(*) FROM segment.refresh('ldt', '2026-11-02');
UPDATE ldt.cust SET aum = aum + 1 WHERE id % 50 = 4;
SELECT * FROM ldt.check();

-- the writer's helper: internal, not for PUBLIC; NULL for no state
SELECT has_function_privilege('public', 'segment_internal._live_writer_as_of(int)', 'execute') AS public_may_call;
SELECT segment_internal._live_writer_as_of(NULL) IS NULL AS null_in_null_out,
       segment_internal._live_writer_as_of(-1) IS NULL AS unknown_subject,
       segment_internal._live_writer_as_of((SELECT subject_id FROM segment.subject WHERE name = 'ldt')) AS as_of;

SELECT segment.unregister_subject('ldt');
DROP SCHEMA ldt CASCADE;
