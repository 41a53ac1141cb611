-- segment install script, part 85 (refresh pipeline): the log of the steps
-- a refresh runs after writing a subject's state, and the SQL those steps
-- call. The steps, their order and their error handling are in one place,
-- src/refresh_pipeline.c (docs/dba-guide.md#the-refresh-pipeline); no
-- trigger on segment's own state tables does anything when a refresh
-- writes them. Also the upgrade part of the same name (new objects only).

-- One row per step of a refresh, in the order the steps ran. Refreshes that
-- roll back leave none; a step that failed has its error here, and the
-- refresh kept the state it wrote.
CREATE TABLE segment.run_step (
    run_id     bigint NOT NULL REFERENCES segment.run ON DELETE CASCADE,
    step_no    int NOT NULL,            -- 1, 2, ...: the order the steps ran in
    step       text NOT NULL,           -- capture_entry_audiences, invalidate_live_definitions, fire_entry_rules
    started_at timestamptz NOT NULL,
    duration   interval NOT NULL,
    rows       bigint,                  -- how many of `what` the step handled; NULL: nothing to count
    what       text,                    -- 'audiences', 'opportunities'
    error      text,                    -- NULL: the step succeeded
    PRIMARY KEY (run_id, step_no)
);
SELECT pg_catalog.pg_extension_config_dump('segment.run_step', '');

-- The audiences watched by a subject's entry rules (part 85), as they are
-- now, restricted to scope when it is given: one row per audience, in name
-- order; members NULL when the audience does not evaluate (never refreshed,
-- a tag dropped ...), which fires nothing. The refresh pipeline calls it
-- before the refresh writes the state, live maintenance before it writes
-- the overlay (segment_internal._live_entry_before, scope: the statement's customers).
CREATE FUNCTION segment_internal._entry_audiences(sid int, scope segment.memberset DEFAULT NULL)
RETURNS TABLE (audience text, members segment.memberset)
LANGUAGE plpgsql AS $$
DECLARE
    w record;
BEGIN
    FOR w IN SELECT DISTINCT e.audience, s.name FROM segment.entry_rule e
               JOIN segment.subject s USING (subject_id) WHERE e.subject_id = sid ORDER BY 1
    LOOP
        audience := w.audience;
        BEGIN
            members := segment.audience(w.name, w.audience);
            IF scope IS NOT NULL THEN
                members := members OPERATOR(segment.&) scope;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            members := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION segment_internal._entry_audiences(int, segment.memberset) IS
    'internal: the audiences of a subject''s entry rules as they are now (before a refresh or a live write)';

-- After the state (or overlay) is written: entered = the audience now minus
-- befores[i] (within scope), and the opportunities of the rules that fire on
-- that entry, for period as_of (NULL: segment.as_of()). A failing entry
-- rule is reported with a WARNING and in `failed`, and does not fail the
-- caller (doing: 'refresh' or 'write', for the message). made: the number
-- of opportunities made, controls included.
CREATE FUNCTION segment_internal._fire_entered(sid int, scope segment.memberset, audiences text[],
                                      befores segment.memberset[], as_of date, doing text,
                                      OUT made bigint, OUT failed text)
LANGUAGE plpgsql AS $$
DECLARE
    sname name := (SELECT s.name FROM segment.subject s WHERE s.subject_id = sid);
    after segment.memberset;
BEGIN
    made := 0;
    FOR i IN 1 .. coalesce(array_length(audiences, 1), 0) LOOP
        CONTINUE WHEN befores[i] IS NULL;
        BEGIN
            after := segment.audience(sname, audiences[i]);
            IF scope IS NOT NULL THEN
                after := after OPERATOR(segment.&) scope;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            CONTINUE;
        END;
        BEGIN
            made := made + segment_internal._fire_entries(sid, audiences[i], after OPERATOR(segment.-) befores[i], as_of);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'entry rules on % of subject "%" failed: %', quote_literal(audiences[i]), sname, SQLERRM
                USING DETAIL = format('SQLSTATE %s; the %s goes on, no opportunity was made for this entry.', SQLSTATE, doing);
            failed := concat_ws('; ', failed, format('entry into %s: %s', quote_literal(audiences[i]), SQLERRM));
        END;
    END LOOP;
END $$;
COMMENT ON FUNCTION segment_internal._fire_entered(int, segment.memberset, text[], segment.memberset[], date, text) IS
    'internal: fires the entry rules for the members who entered each audience since segment_internal._entry_audiences';
