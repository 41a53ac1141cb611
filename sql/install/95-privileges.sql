-- segment install script, part 95: privileges (docs/security.md).
-- Last part on purpose: the internal functions of every part before it lose
-- PUBLIC's EXECUTE here, and segment.grant_role() is the one place that says
-- what each kind of user needs. The Makefile appends this part, unchanged,
-- to the upgrade script as its last step.

-- What each kind of user needs, one row per privilege set on one object (or
-- '*': every object of that type in schemas segment and segment_internal;
-- functions: every overload of that name, in either schema: the helpers
-- _NAME are in segment_internal, part 01). A kind also gets what the kinds in
-- `includes` get.
CREATE FUNCTION segment_internal._role_grants(kind text)
RETURNS TABLE (object_type text, object_name name, privileges text)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE
    includes(kind, included) AS (VALUES
        ('reader', NULL), ('author', 'reader'), ('refresher', 'reader'),
        ('event_writer', 'reader'), ('worker', 'reader'), ('admin', NULL)),
    kinds(k) AS (
        SELECT i.kind FROM includes i WHERE i.kind = _role_grants.kind
        UNION
        SELECT i.included FROM kinds JOIN includes i ON i.kind = kinds.k WHERE i.included IS NOT NULL),
    g(kind, object_type, object_name, privileges) AS (VALUES
        -- reader: count, members, audience, has_tag, tags, keys, overlap,
        -- bucket_of, score, top, transitions, explain, render, review views
        ('reader', 'schema', 'segment', 'USAGE'),
        ('reader', 'schema', 'segment_internal', 'USAGE'),
        ('reader', 'table', '*', 'SELECT'),
        ('reader', 'function', '_subject_id', 'EXECUTE'),
        ('reader', 'function', '_member_id', 'EXECUTE'),
        ('reader', 'function', '_live_tag', 'EXECUTE'),
        ('reader', 'function', '_live_bucket', 'EXECUTE'),
        ('reader', 'function', '_live_universe', 'EXECUTE'),
        ('reader', 'function', '_live_scores', 'EXECUTE'),
        ('reader', 'function', '_live_has', 'EXECUTE'),
        ('reader', 'function', '_live_in_bucket', 'EXECUTE'),
        ('reader', 'function', '_readable_scheme', 'EXECUTE'),
        ('reader', 'function', '_readable_scorecard', 'EXECUTE'),
        ('reader', 'function', '_scheme', 'EXECUTE'),
        ('reader', 'function', '_scorecard', 'EXECUTE'),
        ('reader', 'function', '_opportunity_rule', 'EXECUTE'),
        ('reader', 'function', '_normal_cdf', 'EXECUTE'),
        ('reader', 'function', '_two_proportions', 'EXECUTE'),
        ('reader', 'function', '_rule_review_rows', 'EXECUTE'),
        ('reader', 'function', '_nightly_history', 'EXECUTE'),
        ('reader', 'function', '_column_as_text', 'EXECUTE'),
        ('reader', 'function', '_key_of', 'EXECUTE'),
        ('reader', 'function', '_snapshot_filter', 'EXECUTE'),
        -- reader: governance (install parts 13 and 92): the row-level
        -- security policies and the per-customer, export and masking checks
        ('reader', 'function', '_my_manager', 'EXECUTE'),
        ('reader', 'function', '_in_scope', 'EXECUTE'),
        ('reader', 'function', '_sees_all', 'EXECUTE'),
        ('reader', 'function', '_governed', 'EXECUTE'),
        ('reader', 'function', '_customer_scope', 'EXECUTE'),
        ('reader', 'function', '_audit_export', 'EXECUTE'),
        ('reader', 'function', '_check_customer', 'EXECUTE'),
        ('reader', 'function', '_check_export', 'EXECUTE'),
        ('reader', 'function', '_mask_pii', 'EXECUTE'),
        ('reader', 'function', '_masks_pii', 'EXECUTE'),
        -- reader: segment.report and the segment.report_* functions
        ('reader', 'function', '_html', 'EXECUTE'),
        ('reader', 'function', '_fmt_int', 'EXECUTE'),
        ('reader', 'function', '_fmt_pct', 'EXECUTE'),
        ('reader', 'function', '_report_check', 'EXECUTE'),
        ('reader', 'function', '_report_units', 'EXECUTE'),
        ('reader', 'function', '_report_scope', 'EXECUTE'),
        ('reader', 'function', '_report_opportunities', 'EXECUTE'),
        ('reader', 'function', '_report_summary', 'EXECUTE'),
        ('reader', 'function', '_report_tag_trend', 'EXECUTE'),
        ('reader', 'function', '_report_transitions', 'EXECUTE'),
        ('reader', 'function', '_report_funnel', 'EXECUTE'),
        ('reader', 'function', '_report_rules', 'EXECUTE'),
        ('reader', 'function', '_report_managers', 'EXECUTE'),
        ('reader', 'function', '_report_snapshots', 'EXECUTE'),
        ('reader', 'function', '_report_ticks', 'EXECUTE'),
        ('reader', 'function', '_report_section', 'EXECUTE'),
        ('reader', 'function', '_report_empty', 'EXECUTE'),
        -- author: create/alter/drop of tags, segments, schemes, scorecards,
        -- opportunity rules and entry rules; set_tag
        ('author', 'table', 'tag', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'tag_history', 'INSERT'),
        ('author', 'table', 'manual_tag', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'keymap', 'INSERT'),
        ('author', 'table', 'segment', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'scheme', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'scheme_bucket', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'scorecard', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'scorecard_item', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'scorecard_band', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'definition_history', 'INSERT'),
        ('author', 'table', 'opportunity_rule', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'opportunity_rule_history', 'INSERT'),
        ('author', 'table', 'entry_rule', 'INSERT, DELETE'),
        ('author', 'table', 'opportunity', 'DELETE'),     -- drop_opportunity_rule
        ('author', 'table', 'generation', 'DELETE'),
        ('author', 'sequence', '*', 'USAGE'),
        ('author', 'function', '_rule_columns', 'EXECUTE'),
        ('author', 'function', '_rule_canonical', 'EXECUTE'),
        ('author', 'function', '_relation_kind', 'EXECUTE'),
        ('author', 'function', '_audience_check', 'EXECUTE'),
        ('author', 'function', '_audience_names', 'EXECUTE'),
        ('author', 'function', '_check_base', 'EXECUTE'),
        ('author', 'function', '_check_entries', 'EXECUTE'),
        ('author', 'function', '_check_name', 'EXECUTE'),
        ('author', 'function', '_check_name_free', 'EXECUTE'),
        ('author', 'function', '_check_opportunity_rule', 'EXECUTE'),
        ('author', 'function', '_check_part_name', 'EXECUTE'),
        ('author', 'function', '_column_types', 'EXECUTE'),
        ('author', 'function', '_compile_template', 'EXECUTE'),
        ('author', 'function', '_drop_segments_using', 'EXECUTE'),
        ('author', 'function', '_lock_definitions', 'EXECUTE'),
        ('author', 'function', '_name_kind', 'EXECUTE'),
        ('author', 'function', '_opportunity_rule_definition', 'EXECUTE'),
        ('author', 'function', '_parse_number', 'EXECUTE'),
        ('author', 'function', '_refuse_if_rules_use', 'EXECUTE'),
        ('author', 'function', '_scheme_buckets', 'EXECUTE'),
        ('author', 'function', '_scheme_definition', 'EXECUTE'),
        ('author', 'function', '_scorecard_bands', 'EXECUTE'),
        ('author', 'function', '_scorecard_definition', 'EXECUTE'),
        ('author', 'function', '_scorecard_items', 'EXECUTE'),
        ('author', 'function', '_segment', 'EXECUTE'),
        ('author', 'function', '_segment_definition', 'EXECUTE'),
        ('author', 'function', '_segments_using', 'EXECUTE'),
        ('author', 'function', '_tag', 'EXECUTE'),
        -- author: journeys, their steps and escalation, channels, consent (part 87)
        ('author', 'table', 'channel', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'consent', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'journey', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'journey_history', 'INSERT'),
        ('author', 'table', 'journey_step', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'journey_escalation', 'INSERT, UPDATE, DELETE'),
        ('author', 'table', 'journey_event', 'INSERT, DELETE'),
        ('author', 'table', 'journey_instance', 'DELETE'),   -- drop_journey cascade
        ('author', 'table', 'outbox', 'DELETE'),
        ('author', 'function', '_journey', 'EXECUTE'),
        ('author', 'function', '_journey_definition', 'EXECUTE'),
        ('author', 'function', '_journey_audience', 'EXECUTE'),
        -- refresher: refresh (with the entry rules it fires), generate,
        -- expire_opportunities, evaluate_outcomes, CALL run_all
        ('refresher', 'table', 'subject_state', 'INSERT, UPDATE'),
        ('refresher', 'table', 'tag_state', 'INSERT, UPDATE'),
        ('refresher', 'table', 'bucket_state', 'INSERT, UPDATE, DELETE'),
        ('refresher', 'table', 'score_state', 'INSERT, UPDATE, DELETE'),
        ('refresher', 'table', 'bucket_history', 'INSERT, UPDATE'),
        ('refresher', 'table', 'universe_history', 'INSERT, UPDATE'),
        ('refresher', 'table', 'size_snapshot', 'INSERT, UPDATE, DELETE'),
        ('refresher', 'table', 'run', 'INSERT, UPDATE'),
        ('refresher', 'table', 'tag_snapshot', 'INSERT, UPDATE, DELETE'),
        ('refresher', 'table', 'subject_snapshot', 'INSERT, UPDATE, DELETE'),
        ('refresher', 'table', 'keymap', 'INSERT'),
        ('refresher', 'table', 'live_member', 'DELETE'),
        ('refresher', 'table', 'opportunity', 'INSERT, UPDATE'),
        ('refresher', 'table', 'opportunity_log', 'INSERT'),
        ('refresher', 'table', 'generation', 'INSERT, UPDATE'),
        ('refresher', 'table', 'generation_failure', 'INSERT'),
        ('refresher', 'table', 'nightly_run', 'INSERT, UPDATE'),
        ('refresher', 'table', 'nightly_step', 'INSERT, UPDATE'),
        ('refresher', 'sequence', '*', 'USAGE'),
        ('refresher', 'function', '_fire_entries', 'EXECUTE'),
        -- refresher: the refresh pipeline's steps and their log (part 85)
        ('refresher', 'table', 'run_step', 'INSERT'),
        ('refresher', 'function', '_entry_audiences', 'EXECUTE'),
        ('refresher', 'function', '_fire_entered', 'EXECUTE'),
        ('refresher', 'function', '_generate', 'EXECUTE'),
        ('refresher', 'function', '_audience_within', 'EXECUTE'),
        ('refresher', 'function', '_rule_matches', 'EXECUTE'),
        ('refresher', 'function', '_in_control', 'EXECUTE'),
        ('refresher', 'function', '_is_triggered', 'EXECUTE'),
        ('refresher', 'function', '_load_staff', 'EXECUTE'),
        ('refresher', 'function', '_lock_members', 'EXECUTE'),
        ('refresher', 'function', '_in_transaction_block', 'EXECUTE'),
        ('refresher', 'function', '_nightly_client', 'EXECUTE'),
        ('refresher', 'function', '_nightly_step', 'EXECUTE'),
        -- refresher: advance_journeys (part 87; a return cancels an opportunity)
        ('refresher', 'table', 'journey_instance', 'INSERT, UPDATE'),
        ('refresher', 'table', 'journey_state', 'INSERT, UPDATE'),
        ('refresher', 'table', 'journey_log', 'INSERT'),
        ('refresher', 'table', 'outbox', 'INSERT'),
        ('refresher', 'function', '_advance_journey', 'EXECUTE'),
        ('refresher', 'function', '_journey', 'EXECUTE'),
        ('refresher', 'function', '_journey_enter', 'EXECUTE'),
        ('refresher', 'function', '_journey_touches', 'EXECUTE'),
        ('refresher', 'function', '_journey_returns', 'EXECUTE'),
        ('refresher', 'function', '_journey_holdout', 'EXECUTE'),
        ('refresher', 'function', '_quiet_sql', 'EXECUTE'),
        ('refresher', 'function', '_channel_chain', 'EXECUTE'),
        ('refresher', 'function', '_lock_for', 'EXECUTE'),
        ('refresher', 'function', '_log_transition', 'EXECUTE'),
        -- event_writer: an application role that inserts into event tables
        -- (the event rule's trigger generates as the inserting role)
        ('event_writer', 'table', 'opportunity', 'INSERT, UPDATE'),
        ('event_writer', 'table', 'opportunity_log', 'INSERT'),
        ('event_writer', 'table', 'generation', 'INSERT, UPDATE'),
        ('event_writer', 'table', 'generation_failure', 'INSERT'),
        ('event_writer', 'table', 'event_skip', 'INSERT'),
        ('event_writer', 'sequence', '*', 'USAGE'),
        ('event_writer', 'function', '_generate', 'EXECUTE'),
        ('event_writer', 'function', '_audience_within', 'EXECUTE'),
        ('event_writer', 'function', '_event_fire', 'EXECUTE'),
        ('event_writer', 'function', '_in_control', 'EXECUTE'),
        ('event_writer', 'function', '_load_staff', 'EXECUTE'),
        ('event_writer', 'function', '_lock_members', 'EXECUTE'),
        -- event_writer: entry by event into a journey (part 87)
        ('event_writer', 'table', 'journey_instance', 'INSERT'),
        ('event_writer', 'table', 'outbox', 'INSERT'),
        ('event_writer', 'function', '_journey_event_trigger', 'EXECUTE'),
        ('event_writer', 'function', '_journey', 'EXECUTE'),
        ('event_writer', 'function', '_journey_enter', 'EXECUTE'),
        ('event_writer', 'function', '_journey_touches', 'EXECUTE'),
        ('event_writer', 'function', '_journey_holdout', 'EXECUTE'),
        ('event_writer', 'function', '_quiet_sql', 'EXECUTE'),
        ('event_writer', 'function', '_channel_chain', 'EXECUTE'),
        -- worker: opportunity_dispatch, _start, _complete, _cancel
        ('worker', 'table', 'opportunity', 'UPDATE'),
        ('worker', 'table', 'opportunity_log', 'INSERT'),
        ('worker', 'sequence', '*', 'USAGE'),
        ('worker', 'function', '_lock_for', 'EXECUTE'),
        ('worker', 'function', '_log_transition', 'EXECUTE'),
        -- worker: a channel system's ack and record_response (which may
        -- escalate: the escalation rule's generation for one customer)
        ('worker', 'table', 'outbox', 'UPDATE'),
        ('worker', 'table', 'journey_instance', 'UPDATE'),
        ('worker', 'table', 'journey_log', 'INSERT'),
        ('worker', 'table', 'opportunity', 'INSERT'),
        ('worker', 'table', 'generation', 'INSERT, UPDATE'),
        ('worker', 'table', 'generation_failure', 'INSERT'),
        ('worker', 'function', '_generate', 'EXECUTE'),
        ('worker', 'function', '_audience_within', 'EXECUTE'),
        ('worker', 'function', '_rule_matches', 'EXECUTE'),
        ('worker', 'function', '_in_control', 'EXECUTE'),
        ('worker', 'function', '_load_staff', 'EXECUTE'),
        ('worker', 'function', '_lock_members', 'EXECUTE'),
        -- admin: everything, including register_subject, enable_live,
        -- attach_event_rule (their triggers need EXECUTE on the trigger
        -- functions) and schedule
        ('admin', 'schema', 'segment', 'USAGE'),
        ('admin', 'schema', 'segment_internal', 'USAGE'),
        ('admin', 'table', '*', 'SELECT, INSERT, UPDATE, DELETE'),
        ('admin', 'sequence', '*', 'USAGE, SELECT, UPDATE'),
        ('admin', 'function', '*', 'EXECUTE'))
    SELECT DISTINCT g.object_type, g.object_name::name, g.privileges
      FROM g JOIN kinds ON kinds.k = g.kind
$$;
COMMENT ON FUNCTION segment_internal._role_grants(text) IS
    'internal: the privileges each kind of segment.grant_role needs';

-- The privileges of one kind, expanded to the objects of schemas segment and
-- segment_internal that exist now, as GRANT statements.
CREATE FUNCTION segment_internal._role_grant_statements(role regrole, kind text)
RETURNS TABLE (object_type text, object text, privileges text, statement text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH o AS (
        SELECT 'schema' AS object_type, quote_ident(g.object_name) AS object, g.privileges
          FROM segment_internal._role_grants(kind) g WHERE g.object_type = 'schema'
        UNION ALL
        SELECT g.object_type, c.oid::regclass::text, g.privileges
          FROM segment_internal._role_grants(kind) g
          JOIN pg_class c ON c.relnamespace IN ('segment'::regnamespace, 'segment_internal'::regnamespace)
               AND (g.object_name = '*' OR c.relname = g.object_name)
               AND ((g.object_type = 'table' AND c.relkind IN ('r', 'p', 'v', 'm'))
                 OR (g.object_type = 'sequence' AND c.relkind = 'S'))
        UNION ALL
        SELECT g.object_type, p.oid::regprocedure::text, g.privileges
          FROM segment_internal._role_grants(kind) g
          JOIN pg_proc p ON p.pronamespace IN ('segment'::regnamespace, 'segment_internal'::regnamespace)
               AND (g.object_name = '*' OR p.proname = g.object_name)
         WHERE g.object_type = 'function')
    SELECT o.object_type, o.object, o.privileges,
           format('GRANT %s ON %s %s TO %s', o.privileges,
                  CASE o.object_type WHEN 'function' THEN 'ROUTINE' WHEN 'table' THEN 'TABLE'
                                     ELSE upper(o.object_type) END,
                  o.object, role)
      FROM o ORDER BY array_position(ARRAY['schema', 'table', 'sequence', 'function'], o.object_type), 2
$$;

-- The one way to give a role what a kind of segment user needs.
CREATE FUNCTION segment.grant_role(role regrole, kind text)
RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g record;
    priv text;
    ok boolean;
BEGIN
    IF role IS NULL OR kind IS NULL THEN
        RAISE EXCEPTION 'role and kind must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment_internal._role_grants(kind)) THEN
        RAISE EXCEPTION 'unknown kind of segment role "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Kinds: reader, author, refresher, event_writer, worker, admin (docs/security.md).';
    END IF;
    -- GRANT without the grant option only warns: refuse before granting anything
    FOR g IN SELECT * FROM segment_internal._role_grant_statements(role, kind) LOOP
        FOREACH priv IN ARRAY string_to_array(replace(g.privileges, ' ', ''), ',') LOOP
            ok := CASE g.object_type
                WHEN 'schema' THEN pg_catalog.has_schema_privilege(g.object, priv || ' WITH GRANT OPTION')
                WHEN 'table' THEN pg_catalog.has_table_privilege(g.object, priv || ' WITH GRANT OPTION')
                WHEN 'sequence' THEN pg_catalog.has_sequence_privilege(g.object, priv || ' WITH GRANT OPTION')
                ELSE pg_catalog.has_function_privilege(g.object, priv || ' WITH GRANT OPTION') END;
            IF NOT ok THEN
                RAISE EXCEPTION 'permission denied to grant segment role kind "%"', kind
                    USING ERRCODE = 'insufficient_privilege',
                          DETAIL = format('%s lacks %s WITH GRANT OPTION on %s %s.',
                                          current_user, priv, g.object_type, g.object),
                          HINT = 'Run segment.grant_role as the owner of extension segment.';
            END IF;
        END LOOP;
    END LOOP;
    FOR g IN SELECT * FROM segment_internal._role_grant_statements(role, kind) LOOP
        EXECUTE g.statement;
        RETURN NEXT g.statement;
    END LOOP;
END $$;
COMMENT ON FUNCTION segment.grant_role(regrole, text) IS
    'grants a role what a kind of segment user needs (reader, author, refresher, event_writer, worker, admin); returns the GRANT statements';

-- The built-in roles of governance (segment_internal._builtin_roles, part
-- 92) get their kinds through grant_role.
-- Creates the built-in roles (NOLOGIN) when missing, grants them what they
-- need, turns on row-level security and marks this database governed.
-- Idempotent: run it again after an upgrade, to grant new objects.
CREATE FUNCTION segment.install_roles() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    k text;
    cols text;
    first_time boolean := NOT segment_internal._governed();
BEGIN
    FOR r IN SELECT * FROM segment_internal._builtin_roles() LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles x WHERE x.rolname = r.role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r.role);
            RETURN NEXT format('created role %s', r.role);
        END IF;
        EXECUTE format('COMMENT ON ROLE %I IS %L', r.role, 'segment: ' || r.description);
        FOREACH k IN ARRAY r.kinds LOOP
            PERFORM segment.grant_role(r.role::regrole, k);
        END LOOP;
    END LOOP;
    -- the audit trail: the auditor and the admin read it; nobody writes it
    -- but segment_internal._audit
    REVOKE ALL ON segment.audit, segment.audit_head
      FROM segment_admin, segment_analyst, segment_manager, segment_branch_head,
           segment_auditor, segment_exporter;
    GRANT SELECT ON segment.audit, segment.audit_head TO segment_auditor, segment_admin;
    GRANT EXECUTE ON FUNCTION segment.verify_audit() TO segment_auditor, segment_admin;
    -- no personal columns of the opportunities, journey instances and the
    -- journeys' outbox for the analyst and the auditor; the outbox and the
    -- journey instances (customer-level lists without an owner or org
    -- unit) not at all for managers and branch heads: the channel systems
    -- read the outbox as segment_admin or segment_exporter
    FOR r IN SELECT * FROM (VALUES ('segment.opportunity'::regclass, 'key, member_id, message, note'),
                                   ('segment.journey_instance'::regclass, 'key, member_id'),
                                   ('segment.outbox'::regclass, 'member_id, customer, message, idempotency_key, response'))
                      AS x(rel, personal) LOOP
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
          FROM pg_attribute a
         WHERE a.attrelid = r.rel AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attname <> ALL (string_to_array(replace(r.personal, ' ', ''), ','));
        EXECUTE format('REVOKE SELECT ON %s FROM segment_analyst, segment_auditor', r.rel);
        EXECUTE format('GRANT SELECT (%s) ON %s TO segment_analyst, segment_auditor', cols, r.rel);
        IF r.rel <> 'segment.opportunity'::regclass THEN
            EXECUTE format('REVOKE SELECT ON %s FROM segment_manager, segment_branch_head', r.rel);
        END IF;
    END LOOP;
    -- row-level security: by the trigger on segment.governance the first
    -- time, directly when run again
    IF NOT first_time THEN
        PERFORM segment_internal._install_policies();
    END IF;
    IF first_time THEN
        INSERT INTO segment.governance DEFAULT VALUES;
        RETURN NEXT 'governance installed: row-level security, export control, masking and the audit trail are on';
    END IF;
    PERFORM segment_internal._audit('governance.install_roles', current_database()::text,
                           jsonb_build_object('roles', (SELECT jsonb_agg(b.role) FROM segment_internal._builtin_roles() b),
                                              'first_time', first_time));
END $$;
COMMENT ON FUNCTION segment.install_roles() IS
    'creates the built-in roles segment_admin, _analyst, _manager, _branch_head, _auditor, _exporter, grants them, turns on row-level security and the audit trail (idempotent)';

-- Internal functions are not for PUBLIC: every function of schema
-- segment_internal (PUBLIC has no USAGE on it either; the API's SECURITY
-- INVOKER functions call them with the caller's USAGE and EXECUTE, which
-- segment.grant_role gives). Trigger functions are internal too, so that
-- nobody can attach them to a table of theirs.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'segment_internal'::regnamespace
                 OR (p.pronamespace = 'segment'::regnamespace
                     AND p.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype))
              ORDER BY p.oid
    LOOP
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', f);
    END LOOP;
END $$;

-- Every SQL and PL/pgSQL function of the schema resolves names under
-- search_path = pg_catalog, pg_temp, whoever calls it: the dynamic SQL that
-- generate, render and the nightly steps build calls built-in functions and
-- operators unqualified, and a look-alike in a schema the caller's
-- search_path puts first (a writable public) must not capture them
-- (docs/security.md). A loop, so that functions added later are covered;
-- test/shell/search-path.sh proves it against a shadow of pg_catalog.
-- Left out: functions that pin a path of their own already, procedures (a
-- SET clause forbids their COMMITs; run_all pins per transaction instead),
-- _in_control, an IMMUTABLE SQL function that generation's per-row query
-- inlines (a SET clause would stop that; its only caller pins), and the
-- functions that store a new rule schema-qualified: they analyse it under
-- its author's search_path (docs/security.md), so that path must reach them.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace IN ('segment'::regnamespace, 'segment_internal'::regnamespace)
                AND p.prokind = 'f'
                AND p.proname NOT IN ('_in_control',
                                      'create_tag', 'alter_tag',
                                      'create_scheme', 'alter_scheme', '_scheme_buckets',
                                      'create_scorecard', 'alter_scorecard', '_scorecard_items',
                                      'create_opportunity_rule', 'alter_opportunity_rule',
                                      '_check_opportunity_rule', 'attach_event_rule')
                AND p.prolang IN (SELECT l.oid FROM pg_catalog.pg_language l
                                   WHERE l.lanname IN ('sql', 'plpgsql'))
                AND p.proconfig IS NULL
              ORDER BY p.oid
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
END $$;
