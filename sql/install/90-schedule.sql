-- segment install script, part 90: the nightly run and its pg_cron glue
-- (docs/scheduling.md).
--
-- segment.run_all(as_of) is a PROCEDURE: it refreshes every subject, expires
-- overdue opportunities, evaluates outcomes, generates opportunities and
-- checks the day's size snapshots, committing after every step. One step =
-- one subtransaction: a failed step is rolled back, recorded with its error,
-- and the steps after it are recorded as skipped. Committing per step means
-- that what finished stays finished and the log survives a cancel, a
-- terminated session or a crash (the next run marks such a run abandoned),
-- and that the locks a refresh takes are not held for the whole night.
-- Runs never overlap: a session-level advisory lock (24177, 0) is held for
-- the run; a second run records itself as skipped and returns.
--
-- segment.schedule / segment.unschedule put `CALL segment.run_all()` into
-- pg_cron (only when pg_cron is preloaded, runs jobs from this database and
-- its extension exists here; otherwise a 55000 error says what to do: the
-- check is part 02's).
-- segment itself does not depend on pg_cron: everything touching the cron
-- schema is dynamic SQL, and the view segment.nightly_history reads
-- cron.job_run_details only when it is there. See docs/scheduling.md.

-- One row per call of run_all.
CREATE TABLE segment.nightly_run (
    run_id      bigserial PRIMARY KEY,
    as_of       date NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned')),
    error       text,                         -- failed / skipped / abandoned: why
    run_by      name NOT NULL DEFAULT current_user,
    backend_pid int NOT NULL DEFAULT pg_backend_pid(),  -- = cron.job_run_details.job_pid under pg_cron
    client      text                          -- application_name or backend type ('pg_cron' ...)
);
CREATE INDEX ON segment.nightly_run (as_of);

-- One row per step of a run, written before the step starts.
CREATE TABLE segment.nightly_step (
    run_id      bigint NOT NULL REFERENCES segment.nightly_run ON DELETE CASCADE,
    step_no     int NOT NULL,
    step        text NOT NULL CHECK (step IN ('refresh', 'expire', 'evaluate_outcomes', 'generate', 'size_snapshots',
                                      'advance_journeys')),
    subject     name,                         -- refresh steps: the subject refreshed
    status      text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'skipped', 'abandoned')),
    started_at  timestamptz,
    finished_at timestamptz,
    counts      jsonb,                        -- what the step did (see docs/scheduling.md)
    sqlstate    text,
    error       text,
    error_detail text,                        -- DETAIL, HINT and CONTEXT of the error
    PRIMARY KEY (run_id, step_no)
);

SELECT pg_catalog.pg_extension_config_dump('segment.nightly_run', '');
SELECT pg_catalog.pg_extension_config_dump('segment.nightly_run_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.nightly_step', '');

CREATE FUNCTION segment_internal._in_transaction_block() RETURNS boolean
    AS 'MODULE_PATHNAME', 'segment_in_transaction_block' LANGUAGE C VOLATILE;

-- Run one step's work (no logging, no transaction control); returns its counts.
CREATE FUNCTION segment_internal._nightly_step(step text, subject name, as_of date, run_id bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    result jsonb;
    n bigint;
    refresh_run bigint;
    sid int;
    s record;
    snap date;
BEGIN
    IF step = 'refresh' THEN
        SELECT x.subject_id INTO sid FROM segment.subject x WHERE x.name = _nightly_step.subject;
        -- a snapshot subject (part 33): the night's snapshot must be loaded;
        -- never silently yesterday's again
        IF (SELECT x.snapshot_column FROM segment.subject x WHERE x.subject_id = sid) IS NOT NULL THEN
            snap := segment.latest_snapshot(_nightly_step.subject, _nightly_step.as_of);
            IF snap IS DISTINCT FROM _nightly_step.as_of THEN
                RAISE EXCEPTION 'subject "%": the snapshot of % is not loaded yet',
                                _nightly_step.subject, to_char(_nightly_step.as_of, 'YYYY-MM-DD')
                    USING ERRCODE = 'no_data_found',
                          DETAIL = CASE WHEN snap IS NULL THEN 'The table has no snapshot on or before that date.'
                                        ELSE format('The newest snapshot is %s; the nightly run does not reuse an older snapshot.',
                                                    to_char(snap, 'YYYY-MM-DD')) END,
                          HINT = 'Run the nightly run after the ETL load (docs/dba-guide.md#snapshot-subjects); segment.refresh(subject, as_of) reads an older snapshot deliberately.';
            END IF;
        END IF;
        SELECT jsonb_build_object(
                   'results', count(*),
                   'failed_rules', count(*) FILTER (WHERE r.members IS NULL),
                   'entered', coalesce(sum(r.entered), 0),
                   'exited', coalesce(sum(r.exited), 0))
          INTO result
          FROM segment.refresh(_nightly_step.subject, _nightly_step.as_of) r;
        SELECT r.run_id, r.rows_scanned, r.error INTO s
          FROM segment.run r WHERE r.subject_id = sid ORDER BY r.run_id DESC LIMIT 1;
        RETURN result || jsonb_build_object('refresh_run_id', s.run_id, 'rows_scanned', s.rows_scanned)
                      || CASE WHEN s.error IS NULL THEN '{}'::jsonb
                              ELSE jsonb_build_object('rule_errors', s.error) END;
    ELSIF step = 'expire' THEN
        EXECUTE 'SELECT segment.expire_opportunities($1)' INTO n USING as_of;
        RETURN jsonb_build_object('expired', n);
    ELSIF step = 'evaluate_outcomes' THEN
        EXECUTE 'SELECT segment.evaluate_outcomes($1)' INTO n USING as_of;
        RETURN jsonb_build_object('evaluated', n);
    ELSIF step = 'generate' THEN
        -- columns read by name from the row as jsonb: the rule's name is the
        -- first column (rule_name), the counts are bigint columns
        EXECUTE $q$
            WITH g AS (SELECT to_jsonb(g) AS j, (to_jsonb(g) ->> (SELECT k FROM jsonb_object_keys(to_jsonb(g)) k
                                                                   WHERE k IN ('rule_name', 'rule') LIMIT 1)) AS rule
                         FROM segment.generate(NULL, $1) g)
            SELECT jsonb_build_object('rules', count(*))
                   || (SELECT jsonb_object_agg(c, coalesce(s, 0)) FROM
                         (SELECT c, sum((g.j ->> c)::bigint) AS s
                            FROM unnest(ARRAY['candidates', 'generated', 'control', 'skipped_cooldown',
                                              'skipped_cap', 'over_capacity', 'failed']) c
                            LEFT JOIN g ON g.j ? c GROUP BY c) t)
                   || jsonb_build_object('by_rule', coalesce(jsonb_object_agg(g.rule, g.j - 'rule_name' - 'rule')
                                                             FILTER (WHERE g.rule IS NOT NULL), '{}'))
              FROM g $q$
          INTO result USING as_of;
        RETURN result;
    ELSIF step = 'advance_journeys' THEN
        -- journeys (part 87) after generate, so that the contact cap counts
        -- the day's opportunities: to now, or to the end of a past day
        EXECUTE 'SELECT segment.advance_journeys($1)' INTO n
          USING CASE WHEN as_of >= current_date THEN now()
                     ELSE (as_of + 1)::timestamptz - interval '1 microsecond' END;
        RETURN jsonb_build_object('touches', n,
                                  'journeys', (SELECT count(*) FROM segment.journey j WHERE j.active));
    ELSIF step = 'size_snapshots' THEN
        -- refresh writes segment.size_snapshot (and universe_history) for its
        -- as_of; this step checks that every subject refreshed in this run
        -- has them (from its refresh or a later one of the same date)
        result := '{}';
        FOR s IN SELECT t.subject, (t.counts ->> 'refresh_run_id')::bigint AS refresh_run, x.subject_id
                   FROM segment.nightly_step t JOIN segment.subject x ON x.name = t.subject
                  WHERE t.run_id = _nightly_step.run_id AND t.step = 'refresh' AND t.status = 'succeeded'
                  ORDER BY t.step_no
        LOOP
            IF NOT EXISTS (SELECT 1 FROM segment.universe_history u
                            WHERE u.subject_id = s.subject_id AND u.as_of = _nightly_step.as_of
                              AND u.run_id >= s.refresh_run) THEN
                RAISE EXCEPTION 'subject "%" has no size snapshot for %', s.subject, as_of
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = format('Its refresh (segment.run %s) succeeded but segment.universe_history has no row for that date from it or a later refresh.', s.refresh_run),
                          HINT = 'Something removed the snapshot after the refresh; run the nightly run for this date again.';
            END IF;
            SELECT count(*) INTO n FROM segment.size_snapshot z
             WHERE z.subject_id = s.subject_id AND z.as_of = _nightly_step.as_of;
            result := result || jsonb_build_object(s.subject, n);
        END LOOP;
        RETURN jsonb_build_object('subjects', (SELECT count(*) FROM jsonb_object_keys(result)),
                                  'rows', (SELECT coalesce(sum(v::bigint), 0) FROM jsonb_each_text(result) e(k, v)),
                                  'by_subject', result);
    END IF;
    RAISE EXCEPTION 'unknown nightly step "%"', step USING ERRCODE = 'invalid_parameter_value';
END $$;

-- The nightly run. CALL it outside an explicit transaction block (it commits).
CREATE PROCEDURE segment.run_all(as_of date DEFAULT current_date, INOUT run_id bigint DEFAULT NULL)
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

CREATE FUNCTION segment_internal._nightly_client() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(a.application_name, ''), a.backend_type)
      FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()
$$;

CREATE FUNCTION segment.schedule(job text DEFAULT 'segment-nightly', cron text DEFAULT '0 2 * * *')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    jobid bigint;
BEGIN
    IF job IS NULL OR cron IS NULL THEN
        RAISE EXCEPTION 'job and cron must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(job) = '' THEN
        RAISE EXCEPTION 'job name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM segment_internal._require_cron();
    -- same name, same user: pg_cron replaces the job's schedule
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO jobid USING job, cron, 'CALL segment.run_all()';
    RETURN jobid;
END $$;

CREATE FUNCTION segment.unschedule(job text DEFAULT 'segment-nightly')
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    found_it boolean;
BEGIN
    IF job IS NULL THEN
        RAISE EXCEPTION 'job must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM segment_internal._require_cron();
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1 AND username = current_user)'
       INTO found_it USING job;
    IF found_it THEN
        EXECUTE 'SELECT cron.unschedule($1)' USING job;
    END IF;
    RETURN found_it;
END $$;

-- segment's runs joined with pg_cron's record of the job runs that called
-- them (same backend pid, run started within the job run). Cron runs of
-- segment.run_all that never reached it (a connection failure, an error
-- before the run started) appear with run_id NULL. Without pg_cron in this
-- database the cron columns are NULL.
CREATE FUNCTION segment_internal._nightly_history()
RETURNS TABLE (run_id bigint, as_of date, status text, started_at timestamptz, finished_at timestamptz,
               error text, failed_step text, steps jsonb,
               cron_jobid bigint, cron_runid bigint, cron_status text, cron_message text,
               cron_start timestamptz, cron_end timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    segment_runs constant text := $q$
        SELECT r.run_id, r.as_of, r.status, r.started_at, r.finished_at, r.error, r.backend_pid,
               (SELECT t.step || coalesce(':' || t.subject, '') FROM segment.nightly_step t
                 WHERE t.run_id = r.run_id AND t.status IN ('failed', 'abandoned') ORDER BY t.step_no LIMIT 1) AS failed_step,
               (SELECT jsonb_object_agg(t.status, t.n) FROM
                  (SELECT t.status, count(*) AS n FROM segment.nightly_step t WHERE t.run_id = r.run_id GROUP BY t.status) t) AS steps
          FROM segment.nightly_run r $q$;
BEGIN
    IF to_regclass('cron.job_run_details') IS NOT NULL
       AND has_table_privilege('cron.job_run_details', 'SELECT') THEN
        RETURN QUERY EXECUTE format($q$
            WITH r AS (%s),
                 d AS (SELECT * FROM cron.job_run_details d WHERE d.command ~* 'segment\.run_all')
            SELECT r.run_id, r.as_of, r.status, r.started_at, r.finished_at, r.error, r.failed_step, r.steps,
                   d.jobid, d.runid, d.status, d.return_message, d.start_time, d.end_time
              FROM r FULL JOIN d ON d.job_pid = r.backend_pid
                                AND r.started_at >= d.start_time - interval '1 second'
                                AND r.started_at <= coalesce(d.end_time, 'infinity')
             ORDER BY coalesce(r.started_at, d.start_time), r.run_id $q$, segment_runs);
    ELSE
        RETURN QUERY EXECUTE format($q$
            SELECT r.run_id, r.as_of, r.status, r.started_at, r.finished_at, r.error, r.failed_step, r.steps,
                   NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::timestamptz, NULL::timestamptz
              FROM (%s) r ORDER BY r.started_at, r.run_id $q$, segment_runs);
    END IF;
END $$;

CREATE VIEW segment.nightly_history AS SELECT * FROM segment_internal._nightly_history();
