-- The nightly run (segment.run_all) and the pg_cron checks, in a database of
-- its own so that subjects of other tests do not take part in the run:
-- step order and log, counts, a failed step (rolled back, recorded, later
-- steps skipped, earlier runs kept), a rerun, bad arguments, a run left
-- 'running' by a dead session, nightly_history without pg_cron, and the
-- pg_cron prerequisite errors. Overlapping and cancelled runs are the spec
-- test/specs/nightly_overlap.spec, a terminated one
-- test/shell/nightly-overlap.sh, a real pg_cron job test/shell/pg-cron.sh.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE DATABASE segment_nightly_regress;
\c segment_nightly_regress
SET client_min_messages = warning;
CREATE EXTENSION segment;

CREATE TABLE acct (id int8 PRIMARY KEY, balance numeric, opened date, branch text, rm text);
INSERT INTO acct SELECT g, g * 100, date '2026-01-01' + g, 'b1', 'rm' || g % 3 FROM generate_series(1, 50) g;
CREATE TABLE card (no text PRIMARY KEY, spend numeric);
INSERT INTO card SELECT 'C' || g, g * 10 FROM generate_series(1, 30) g;
SELECT segment.register_subject('acct', 'acct', 'id', 'branch', 'rm');
SELECT segment.register_subject('card', 'card', 'no');
SELECT segment.create_tag('acct', 'rich', 'balance >= 4000');
SELECT segment.create_tag('acct', 'new_acct', 'opened > segment.as_of() - 10');
SELECT segment.create_tag('card', 'big_spender', 'spend > 200');

------------------------------------------------------------------------
-- 1. A run: steps in order, each logged with its counts
------------------------------------------------------------------------
CALL segment.run_all('2026-02-10');
SELECT run_id, as_of, status, error, finished_at >= started_at AS timed, run_by = current_user AS by_me
  FROM segment.nightly_run ORDER BY run_id;
SELECT step_no, step, subject, status, started_at <= finished_at AS timed, sqlstate, error
  FROM segment.nightly_step WHERE run_id = 1 ORDER BY step_no;
-- steps ran one after the other, in step order
SELECT bool_and(t.started_at >= p.finished_at) AS sequential
  FROM segment.nightly_step t JOIN segment.nightly_step p ON p.run_id = t.run_id AND p.step_no = t.step_no - 1
 WHERE t.run_id = 1;
SELECT subject, counts - 'refresh_run_id' AS counts
  FROM segment.nightly_step WHERE run_id = 1 AND step = 'refresh' ORDER BY step_no;
-- the refresh step's run is the subject's latest segment.run, for the run's date
SELECT s.subject, r.as_of, r.run_id = (s.counts ->> 'refresh_run_id')::bigint AS same_run
  FROM segment.nightly_step s JOIN segment.subject x ON x.name = s.subject
  JOIN LATERAL (SELECT * FROM segment.run r WHERE r.subject_id = x.subject_id ORDER BY run_id DESC LIMIT 1) r ON true
 WHERE s.run_id = 1 AND s.step = 'refresh' ORDER BY s.step_no;
SELECT counts FROM segment.nightly_step WHERE run_id = 1 AND step = 'size_snapshots';
SELECT (counts ->> 'rules')::int AS rules, (counts ->> 'generated')::int AS generated
  FROM segment.nightly_step WHERE run_id = 1 AND step = 'generate';
SELECT segment.count('acct', 'rich') AS rich, segment.count('acct', 'new_acct') AS new_acct,
       segment.count('card', 'big_spender') AS big_spender;
-- the lock is released at the end
SELECT count(*) AS locks_left FROM pg_locks WHERE locktype = 'advisory' AND classid = 24177;

------------------------------------------------------------------------
-- 2. A failed step: card's refresh fails as a whole (its run log cannot be
--    written). acct's refresh, before it, stays; card keeps its old sets;
--    the later steps are skipped; run 1 is untouched.
------------------------------------------------------------------------
CREATE FUNCTION public.refuse_card_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.subject_id = (SELECT subject_id FROM segment.subject WHERE name = 'card') THEN
        RAISE EXCEPTION 'card runs are refused today' USING ERRCODE = 'P0001', HINT = 'drop trigger refuse_card';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_card BEFORE INSERT ON segment.run FOR EACH ROW EXECUTE FUNCTION public.refuse_card_runs();
UPDATE card SET spend = 1000;                  -- would make every card a big spender
CALL segment.run_all('2026-02-11');
SELECT run_id, as_of, status, error FROM segment.nightly_run ORDER BY run_id;
SELECT step_no, step, subject, status, sqlstate, error, error_detail ~ 'HINT: drop trigger refuse_card' AS hint_kept,
       started_at IS NOT NULL AS started
  FROM segment.nightly_step WHERE run_id = 2 ORDER BY step_no;
-- acct was refreshed for 2026-02-11 and that stays; card was not
SELECT x.name, max(r.as_of) AS last_refresh
  FROM segment.run r JOIN segment.subject x USING (subject_id) GROUP BY x.name ORDER BY x.name;
SELECT segment.count('card', 'big_spender') AS big_spender_still;
-- run 1's log is intact
SELECT status, count(*) FROM segment.nightly_step WHERE run_id = 1 GROUP BY status;
SELECT count(*) AS locks_left FROM pg_locks WHERE locktype = 'advisory' AND classid = 24177;

------------------------------------------------------------------------
-- 3. Recovery: fix the cause, run the date again
------------------------------------------------------------------------
DROP TRIGGER refuse_card ON segment.run;
CALL segment.run_all('2026-02-11');
SELECT run_id, as_of, status, error FROM segment.nightly_run ORDER BY run_id;
SELECT segment.count('card', 'big_spender') AS big_spender_now;
SELECT subject, counts ->> 'entered' AS entered FROM segment.nightly_step WHERE run_id = 3 AND step = 'refresh' ORDER BY step_no;

------------------------------------------------------------------------
-- 4. Bad calls change nothing
------------------------------------------------------------------------
CALL segment.run_all(NULL);
CALL segment.run_all('infinity');
BEGIN;
CALL segment.run_all('2026-02-12');            -- it commits per step: not inside a transaction block
ROLLBACK;
CREATE FUNCTION pg_temp.nightly_from_a_function() RETURNS void LANGUAGE plpgsql AS $$
DECLARE r bigint;
BEGIN CALL segment.run_all('2026-02-12', r); END $$;
SELECT pg_temp.nightly_from_a_function();     -- nor from a function
SELECT count(*) AS runs, max(run_id) AS last_run FROM segment.nightly_run;
SELECT count(*) AS locks_left FROM pg_locks WHERE locktype = 'advisory' AND classid = 24177;

------------------------------------------------------------------------
-- 5. A run left 'running' by a session that died is marked abandoned by the
--    next run (which holds the lock, so the other cannot be alive)
------------------------------------------------------------------------
INSERT INTO segment.nightly_run (run_id, as_of, status, backend_pid) VALUES (100, '2026-02-12', 'running', 0);
INSERT INTO segment.nightly_step (run_id, step_no, step, subject, status, started_at)
VALUES (100, 1, 'refresh', 'acct', 'running', now()), (100, 2, 'expire', NULL, 'pending', NULL);
CALL segment.run_all('2026-02-12');
SELECT run_id, status, error FROM segment.nightly_run WHERE run_id >= 100 OR run_id = 4 ORDER BY run_id;
SELECT run_id, step_no, status FROM segment.nightly_step WHERE run_id = 100 ORDER BY step_no;

------------------------------------------------------------------------
-- 6. nightly_history without pg_cron here: segment's columns, cron's NULL
------------------------------------------------------------------------
SELECT run_id, as_of, status, failed_step, steps, cron_jobid, cron_status FROM segment.nightly_history;

------------------------------------------------------------------------
-- 7. pg_cron prerequisites: each case's error and hint (the checking
--    function is fed the server state by segment_internal._require_cron)
------------------------------------------------------------------------
SELECT segment_internal._cron_check(false, NULL, false, 'bank');         -- not in shared_preload_libraries
SELECT segment_internal._cron_check(true, 'postgres', false, 'bank');    -- jobs run from another database
SELECT segment_internal._cron_check(true, 'bank', false, 'bank');        -- CREATE EXTENSION pg_cron missing
SELECT segment_internal._cron_check(true, 'bank', true, 'bank') AS ready;
-- here (the test cluster runs jobs from database postgres): schedule and
-- unschedule refuse, with the same error
SELECT segment.schedule();
SELECT segment.unschedule();
SELECT segment.schedule(NULL);
SELECT segment.schedule('', '* * * * *');

------------------------------------------------------------------------
-- 8. Opportunities through the nightly run: generated on one night,
--    expired and evaluated on a later one (cool-down keeps them from being
--    generated again)
------------------------------------------------------------------------
SELECT segment.create_opportunity_rule('acct', 'call_rich', 'rich', 'mining', 'fund',
                                       valid_days => 3, cooldown_days => 30, assignment => 'pool');
CALL segment.run_all('2026-03-01');
CALL segment.run_all('2026-03-05');
SELECT t.run_id, t.step, t.status, t.counts - 'by_rule' AS counts
  FROM segment.nightly_step t
 WHERE t.run_id IN (5, 6) AND t.step IN ('expire', 'evaluate_outcomes', 'generate') ORDER BY t.run_id, t.step_no;
SELECT counts -> 'by_rule' -> 'call_rich' ->> 'generated' AS generated_by_rule
  FROM segment.nightly_step WHERE run_id = 5 AND step = 'generate';
SELECT period, status, count(*) FROM segment.opportunity GROUP BY period, status;

-- tidy up
\c contrib_regression
DROP DATABASE segment_nightly_regress;
