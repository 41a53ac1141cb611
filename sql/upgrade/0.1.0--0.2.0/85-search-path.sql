-- 0.2.0: run_all pins search_path in each of its transactions (a procedure
-- cannot carry a SET clause); the SQL and PL/pgSQL functions get theirs from
-- the loop at the end of part 95, which ends this upgrade too.

CREATE OR REPLACE PROCEDURE segment.run_all(as_of date DEFAULT current_date, INOUT run_id bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    st record;
    step_counts jsonb;
    failed text;            -- 'step[:subject]' of the failed step
    fail_msg text;
    cancel_msg text;
    e_state text;
    e_msg text;
    e_detail text;
    e_hint text;
    e_context text;
    other record;
BEGIN
    -- A procedure cannot carry a SET clause (its COMMITs would fail), so the
    -- run pins search_path in each of its transactions: the setting is
    -- transaction-local and ends at every COMMIT (docs/security.md).
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The run commits step by step, so it cannot run inside a transaction
    -- block. Called from a function, the COMMIT below fails with 2D000.
    IF segment_internal._in_transaction_block() THEN
        RAISE EXCEPTION 'segment.run_all cannot run inside a transaction block'
            USING ERRCODE = 'active_sql_transaction',
                  DETAIL = 'The nightly run commits after each step, so that finished steps and its log survive a later failure.',
                  HINT = 'CALL segment.run_all() on its own, outside BEGIN ... COMMIT and not from a function (pg_cron calls it that way).';
    END IF;
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

    IF NOT pg_try_advisory_lock(24177, 0) THEN
        SELECT r.run_id, r.started_at, r.backend_pid INTO other
          FROM segment.nightly_run r WHERE r.status = 'running' ORDER BY r.run_id DESC LIMIT 1;
        INSERT INTO segment.nightly_run (as_of, finished_at, status, error, client)
        VALUES (as_of, clock_timestamp(), 'skipped',
                'skipped: another run in progress' ||
                CASE WHEN other.run_id IS NULL THEN ''
                     ELSE format(' (run %s, pid %s, started %s)', other.run_id, other.backend_pid, other.started_at) END,
                segment_internal._nightly_client())
        RETURNING nightly_run.run_id INTO run_id;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        RAISE NOTICE 'nightly run % skipped: another run is in progress', run_id;
        RETURN;
    END IF;

    -- Holding the lock, no other run is alive: a 'running' run left over was
    -- cut short (cancelled outside a step, terminated, server crash).
    UPDATE segment.nightly_step t SET status = CASE t.status WHEN 'running' THEN 'abandoned' ELSE 'skipped' END,
           finished_at = CASE t.status WHEN 'running' THEN clock_timestamp() END
      FROM segment.nightly_run r
     WHERE r.run_id = t.run_id AND r.status = 'running' AND t.status IN ('running', 'pending');
    UPDATE segment.nightly_run r SET status = 'abandoned', finished_at = clock_timestamp(),
           error = 'the run ended without finishing (session terminated, server restart or crash); a later run found it'
     WHERE r.status = 'running';

    INSERT INTO segment.nightly_run (as_of, status, client)
    VALUES (as_of, 'running', segment_internal._nightly_client())
    RETURNING nightly_run.run_id INTO run_id;
    INSERT INTO segment.nightly_step (run_id, step_no, step, subject, status)
    SELECT run_all.run_id, row_number() OVER (ORDER BY o, s), p, s, 'pending'
      FROM (SELECT 1 AS o, 'refresh'::text AS p, x.name AS s FROM segment.subject x
            UNION ALL VALUES (2, 'expire', NULL::name), (3, 'evaluate_outcomes', NULL),
                             (4, 'generate', NULL), (5, 'size_snapshots', NULL),
                             (6, 'advance_journeys', NULL)) steps;
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

    FOR st IN SELECT t.step_no, t.step, t.subject FROM segment.nightly_step t
               WHERE t.run_id = run_all.run_id ORDER BY t.step_no
    LOOP
        IF failed IS NOT NULL THEN
            UPDATE segment.nightly_step t SET status = 'skipped'
             WHERE t.run_id = run_all.run_id AND t.step_no = st.step_no;
            CONTINUE;
        END IF;
        UPDATE segment.nightly_step t SET status = 'running', started_at = clock_timestamp()
         WHERE t.run_id = run_all.run_id AND t.step_no = st.step_no;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        e_state := NULL;
        BEGIN
            step_counts := segment_internal._nightly_step(st.step, st.subject, as_of, run_id);
        EXCEPTION
            WHEN query_canceled THEN
                -- cancel / statement_timeout: record it, finish the log, then
                -- raise it again at the end so the caller sees it
                GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT,
                                        e_context = PG_EXCEPTION_CONTEXT;
                e_detail := NULL; e_hint := NULL;
                cancel_msg := e_msg;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT,
                                        e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT,
                                        e_context = PG_EXCEPTION_CONTEXT;
        END;
        IF e_state IS NULL THEN
            UPDATE segment.nightly_step t SET status = 'succeeded', finished_at = clock_timestamp(), counts = step_counts
             WHERE t.run_id = run_all.run_id AND t.step_no = st.step_no;
        ELSE
            failed := st.step || coalesce(':' || st.subject, '');
            fail_msg := e_msg;
            UPDATE segment.nightly_step t SET status = 'failed', finished_at = clock_timestamp(),
                   sqlstate = e_state, error = e_msg,
                   error_detail = nullif(concat_ws(E'\n', 'DETAIL: ' || nullif(e_detail, ''),
                                                   'HINT: ' || nullif(e_hint, ''),
                                                   'CONTEXT: ' || nullif(e_context, '')), '')
             WHERE t.run_id = run_all.run_id AND t.step_no = st.step_no;
        END IF;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;

    UPDATE segment.nightly_run r SET finished_at = clock_timestamp(),
           status = CASE WHEN failed IS NULL THEN 'succeeded' ELSE 'failed' END,
           error = CASE WHEN failed IS NOT NULL THEN format('step %s failed: %s', failed, fail_msg) END
     WHERE r.run_id = run_all.run_id;
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    -- release the lock, also if an earlier run in this session left it held
    WHILE EXISTS (SELECT 1 FROM pg_locks l
                   WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted
                     AND l.classid = 24177 AND l.objid = 0 AND l.objsubid = 2) LOOP
        PERFORM pg_advisory_unlock(24177, 0);
    END LOOP;
    IF cancel_msg IS NOT NULL THEN
        RAISE EXCEPTION 'nightly run % was cancelled during step %: %', run_id, failed, cancel_msg
            USING ERRCODE = 'query_canceled';
    END IF;
    IF failed IS NOT NULL THEN
        RAISE WARNING 'nightly run % failed at step %: %', run_id, failed, fail_msg
            USING HINT = 'See segment.nightly_step for the error; later steps were skipped.';
    END IF;
END $$;
