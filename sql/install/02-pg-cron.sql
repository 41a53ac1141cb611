-- segment install script, part 02: whether pg_cron can run segment's jobs
-- in this database (docs/scheduling.md). segment.schedule and unschedule
-- (part 90) and segment.schedule_journeys (part 87) call _require_cron()
-- before they touch the cron schema; segment itself does not depend on
-- pg_cron. Early, because it depends on nothing of segment's.

-- Raises why pg_cron cannot be used from here; true when it can. The decision
-- is a pure function of its inputs (tested with each combination);
-- segment_internal._require_cron() feeds it the server's real state.
CREATE FUNCTION segment_internal._cron_check(preloaded boolean, cron_database text, cron_installed boolean, this_database text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT preloaded THEN
        RAISE EXCEPTION 'pg_cron is not loaded: segment.schedule needs it'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron runs jobs from a background process that exists only when the server preloads it.',
                  HINT = format('Add to postgresql.conf: shared_preload_libraries = ''pg_cron'' (keep what is already there, comma-separated) and cron.database_name = %L; restart the server; then run CREATE EXTENSION pg_cron; in database %s.',
                                this_database, quote_ident(this_database));
    END IF;
    IF cron_database IS DISTINCT FROM this_database THEN
        RAISE EXCEPTION 'pg_cron runs jobs from database "%", not from "%"', cron_database, this_database
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron keeps its jobs in the database named by cron.database_name; segment.schedule must be called there.',
                  HINT = format('Set cron.database_name = %L in postgresql.conf, restart, and run CREATE EXTENSION pg_cron; here. Or, connected to %s, run: SELECT cron.schedule_in_database(''segment-nightly'', ''0 2 * * *'', ''CALL segment.run_all()'', %L);',
                                this_database, quote_ident(cron_database), this_database);
    END IF;
    IF NOT cron_installed THEN
        RAISE EXCEPTION 'extension "pg_cron" is not installed in database "%"', this_database
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron is preloaded and runs jobs from this database, but its extension (schema cron) has not been created.',
                  HINT = 'Run CREATE EXTENSION pg_cron; in this database (as a superuser).';
    END IF;
    RETURN true;
END $$;

CREATE FUNCTION segment_internal._require_cron() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM segment_internal._cron_check(
        'pg_cron' = ANY (string_to_array(translate(current_setting('shared_preload_libraries'), ' "', ''), ','))
            AND current_setting('cron.database_name', true) IS NOT NULL,
        coalesce(current_setting('cron.database_name', true), 'postgres'),
        EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'),
        current_database());
END $$;
