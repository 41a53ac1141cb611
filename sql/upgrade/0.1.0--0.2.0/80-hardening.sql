-- segment upgrade 0.1.0 -> 0.2.0, part 80: hardening (issue 11, items 3
-- and 6; holes 2, 3, 7; docs/security.md). The same changes as the install
-- parts 50, 85, 86 and 95. Must stay the LAST part: it revokes PUBLIC's
-- EXECUTE from the internal functions that every part before it created.

-- _rule_columns: NULL, bad OID and unreadable relation checked in C first
CREATE OR REPLACE FUNCTION segment._rule_columns(relation regclass, rule text, what text DEFAULT NULL)
    RETURNS name[]
    AS 'MODULE_PATHNAME', 'segment_rule_columns_checked' LANGUAGE C STABLE;

-- live maintenance records the triggers it created (hole 2)
ALTER TABLE segment.live_subject ADD COLUMN triggers name[];
UPDATE segment.live_subject SET triggers = segment._live_trigger_names(subject_id);
ALTER TABLE segment.live_subject ALTER COLUMN triggers SET NOT NULL;

CREATE OR REPLACE FUNCTION segment._live_key_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := TG_ARGV[0]::int;
    old_key int8;
BEGIN
    -- only from the trigger enable_live created on the subject's table
    IF NOT EXISTS (SELECT 1 FROM segment.live_subject l JOIN segment.subject s USING (subject_id)
                    WHERE l.subject_id = sid AND s.relation = TG_RELID AND TG_NAME = ANY (l.triggers)
                      AND s.key_column = TG_ARGV[1] AND TG_NARGS = 2) THEN
        RAISE EXCEPTION 'trigger function segment._live_key_change() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass),
                  HINT = 'Live maintenance installs its triggers with segment.enable_live(subject).';
    END IF;
    old_key := (to_jsonb(OLD) ->> TG_ARGV[1])::int8;
    IF old_key BETWEEN 0 AND 4294967295 THEN
        INSERT INTO segment.live_member AS l (subject_id, member_id, deleted, tags, buckets, scores, as_of, changed_at)
        SELECT sid, old_key, true, '{}', '{}', '{}', st.as_of, now()
          FROM segment.subject_state st WHERE st.subject_id = sid
        ON CONFLICT (subject_id, member_id) DO UPDATE SET deleted = true, tags = '{}', buckets = '{}',
               scores = '{}', as_of = excluded.as_of, changed_at = excluded.changed_at;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION segment.enable_live(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment._subject_id(subject);
    s segment.subject;
    names name[] := segment._live_trigger_names(sid);
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
    -- one enable/disable/refresh of a subject at a time
    PERFORM pg_advisory_xact_lock(24173, sid);
    IF EXISTS (SELECT 1 FROM segment.live_subject l WHERE l.subject_id = sid) THEN
        RAISE EXCEPTION 'live maintenance of subject "%" is already enabled', subject
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Turn it off with segment.disable_live(%L).', subject);
    END IF;
    IF s.key_type NOT IN ('int4'::regtype, 'int8'::regtype) THEN
        RAISE EXCEPTION 'live maintenance supports integer-keyed subjects only; subject "%" is keyed by %',
                        subject, s.key_type
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'A new text key would need a new member id from segment.keymap, a single point every writer would wait on.',
                  HINT = 'Keep the subject current with segment.refresh().';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.subject_state x WHERE x.subject_id = sid) THEN
        RAISE EXCEPTION 'subject "%" has not been refreshed', subject
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Live changes are evaluated as of the date of the last refresh and merged over its sets.',
                  HINT = format('Run segment.refresh(%L) first.', subject);
    END IF;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS segment_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment._live_trigger(%L)', names[1], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING NEW TABLE AS segment_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment._live_trigger(%L)', names[2], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %I ON %s FOR EACH ROW '
                   'WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION segment._live_key_change(%L, %L)',
                   names[4], s.key_column, s.relation, s.key_column, s.key_column, sid, s.key_column);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS segment_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment._live_trigger(%L)', names[3], s.relation, sid);
    INSERT INTO segment.live_subject (subject_id, triggers) VALUES (sid, names);
END $$;

CREATE OR REPLACE FUNCTION segment._event_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    rid int := TG_ARGV[0]::int;
    a segment.event_rule;
    r segment.opportunity_rule;
    s segment.subject;
    universe segment.memberset;
    found_set segment.memberset;
    members segment.memberset;
    n_keys int8;
    unmapped text[];
    n_unknown int8;
    id_expr text;
    map_join text;
BEGIN
    -- only from the trigger attach_event_rule created on the event table
    SELECT * INTO a FROM segment.event_rule x WHERE x.rule_id = rid AND x.event_table = TG_RELID;
    IF a.rule_id IS NULL OR a.trigger_name <> TG_NAME OR TG_NARGS <> 1 THEN
        RAISE EXCEPTION 'trigger function segment._event_trigger() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass),
                  HINT = 'Event rules install their triggers with segment.attach_event_rule().';
    END IF;
    SELECT * INTO r FROM segment.opportunity_rule x WHERE x.rule_id = rid;
    IF NOT r.active THEN
        RETURN NULL;        -- the rule is deactivated
    END IF;
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    -- with live maintenance's overlay (part 86): customers inserted since the refresh are known
    SELECT segment._live_universe(x.universe, x.subject_id) INTO universe
      FROM segment.subject_state x WHERE x.subject_id = s.subject_id;

    -- the distinct customers of the events whose condition holds, as member ids
    IF s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN
        id_expr := 'CASE WHEN k.key BETWEEN 0 AND 4294967295 THEN k.key END';
        map_join := '';
    ELSE
        id_expr := 'km.member_id';
        map_join := format('LEFT JOIN segment.keymap km ON km.subject_id = %s AND km.key = k.key', s.subject_id);
    END IF;
    EXECUTE format('SELECT count(*), segment.memberset_agg(m.id),
                           (array_agg(m.key::text ORDER BY m.key) FILTER (WHERE m.id IS NULL))[1:10]
                      FROM (SELECT %1$s AS id, k.key
                              FROM (SELECT DISTINCT %6$I.%2$I%3$s AS key FROM segment_new_events AS %6$I
                                     WHERE (%4$s) IS TRUE AND %6$I.%2$I IS NOT NULL) k %5$s) m',
                   id_expr, a.key_column,
                   CASE WHEN s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN '::int8' ELSE '::text' END,
                   a.condition, map_join, TG_TABLE_NAME)
       INTO n_keys, found_set, unmapped;
    IF n_keys = 0 THEN
        RETURN NULL;
    END IF;

    -- customers segment does not know are skipped, and reported
    IF found_set IS NULL OR universe IS NULL THEN
        members := NULL;
    ELSE
        members := found_set OPERATOR(segment.&) universe;
    END IF;
    n_unknown := n_keys - coalesce(segment.cardinality(members), 0);
    IF n_unknown > 0 THEN
        INSERT INTO segment.event_skip (rule_id, event_table, unknown, sample_keys)
        VALUES (rid, TG_RELID, n_unknown,
                (coalesce(unmapped, '{}')
                 || CASE WHEN found_set IS NULL THEN '{}'::text[]
                         WHEN universe IS NULL THEN ARRAY(SELECT segment.keys(s.name, found_set) LIMIT 10)
                         ELSE ARRAY(SELECT segment.keys(s.name, found_set OPERATOR(segment.-) universe) LIMIT 10)
                    END)[1:10]);
    END IF;
    IF members IS NULL OR segment.is_empty(members) THEN
        RETURN NULL;
    END IF;

    PERFORM segment._lock_members(s.subject_id, members);
    PERFORM segment._generate(s.subject_id, ARRAY[rid], segment.as_of(), members,
                              format('event:%s.%s', TG_TABLE_SCHEMA, TG_TABLE_NAME));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION segment._entry_before() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sid int;
    w record;
    before segment.memberset;
BEGIN
    IF TG_NAME <> 'segment_entry_before' OR TG_RELID NOT IN ('segment.tag_state'::regclass,
            'segment.bucket_state'::regclass, 'segment.score_state'::regclass, 'segment.subject_state'::regclass) THEN
        RAISE EXCEPTION 'trigger function segment._entry_before() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.entry_rule) THEN
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'tag_state' THEN
        SELECT t.subject_id INTO sid FROM segment.tag t WHERE t.tag_id = NEW.tag_id;
    ELSIF TG_TABLE_NAME = 'bucket_state' THEN
        SELECT m.subject_id INTO sid FROM segment.scheme m WHERE m.scheme_id = NEW.scheme_id;
    ELSIF TG_TABLE_NAME = 'score_state' THEN
        SELECT c.subject_id INTO sid FROM segment.scorecard c WHERE c.scorecard_id = NEW.scorecard_id;
    ELSE
        sid := NEW.subject_id;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.entry_rule e WHERE e.subject_id = sid)
       OR NOT EXISTS (SELECT 1 FROM segment.run x WHERE x.run_id = NEW.run_id AND x.subject_id = sid
                                                     AND x.finished_at IS NULL) THEN
        RETURN NEW;     -- no entry rule, or not written by a refresh
    END IF;
    IF to_regclass('pg_temp._seg_entry_before') IS NULL THEN
        CREATE TEMP TABLE _seg_entry_before (subject_id int, run_id int8, audience text,
                                             members segment.memberset) ON COMMIT DROP;
    ELSIF EXISTS (SELECT 1 FROM pg_temp._seg_entry_before b WHERE b.run_id = NEW.run_id) THEN
        RETURN NEW;
    END IF;
    FOR w IN SELECT DISTINCT e.audience, s.name FROM segment.entry_rule e
               JOIN segment.subject s USING (subject_id) WHERE e.subject_id = sid
    LOOP
        BEGIN
            before := segment.audience(w.name, w.audience);
        EXCEPTION WHEN OTHERS THEN
            before := NULL;
        END;
        INSERT INTO pg_temp._seg_entry_before VALUES (sid, NEW.run_id, w.audience, before);
    END LOOP;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION segment._entry_after() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    b record;
    after segment.memberset;
    sname name;
BEGIN
    IF TG_NAME <> 'segment_entry_after' OR TG_RELID <> 'segment.universe_history'::regclass THEN
        RAISE EXCEPTION 'trigger function segment._entry_after() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    IF to_regclass('pg_temp._seg_entry_before') IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT x.name INTO sname FROM segment.subject x WHERE x.subject_id = NEW.subject_id;
    FOR b IN DELETE FROM pg_temp._seg_entry_before x WHERE x.run_id = NEW.run_id
             RETURNING x.audience, x.members
    LOOP
        CONTINUE WHEN b.members IS NULL;
        BEGIN
            after := segment.audience(sname, b.audience);
        EXCEPTION WHEN OTHERS THEN
            CONTINUE;
        END;
        -- a failing entry rule must not fail the refresh: it is reported
        BEGIN
            PERFORM segment._fire_entries(NEW.subject_id, b.audience,
                                          after OPERATOR(segment.-) b.members, NEW.as_of);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'entry rules on % of subject "%" failed: %', quote_literal(b.audience), sname, SQLERRM
                USING DETAIL = format('SQLSTATE %s; the refresh goes on, no opportunity was made for this entry.', SQLSTATE);
        END;
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION segment._opportunity_rule_drop_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE what text;
BEGIN
    IF TG_NAME <> 'segment_event_rule_guard' OR TG_RELID <> 'segment.opportunity_rule'::regclass THEN
        RAISE EXCEPTION 'trigger function segment._opportunity_rule_drop_guard() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    SELECT string_agg(x, ', ') INTO what FROM (
        SELECT format('event table %s', e.event_table) AS x FROM segment.event_rule e WHERE e.rule_id = OLD.rule_id
        UNION ALL
        SELECT format('entry into %L', e.audience) FROM segment.entry_rule e WHERE e.rule_id = OLD.rule_id) y;
    IF what IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop opportunity rule "%": it fires on %', OLD.name, what
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Detach it first: segment.detach_event_rule(rule, event_table), segment.stop_fire_on_entry(rule, audience).';
    END IF;
    RETURN OLD;
END $$;

-- part 95: privileges
-- What each kind of user needs, one row per privilege set on one object (or
-- '*': every object of that type in schema segment; functions: every
-- overload of that name). A kind also gets what the kinds in `includes` get.
CREATE FUNCTION segment._role_grants(kind text)
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
        -- refresher: refresh (with the entry rules it fires), generate,
        -- expire, evaluate_outcomes, CALL run_all
        ('refresher', 'table', 'subject_state', 'INSERT, UPDATE'),
        ('refresher', 'table', 'tag_state', 'INSERT, UPDATE'),
        ('refresher', 'table', 'bucket_state', 'INSERT, UPDATE, DELETE'),
        ('refresher', 'table', 'score_state', 'INSERT, UPDATE, DELETE'),
        ('refresher', 'table', 'bucket_history', 'INSERT, UPDATE'),
        ('refresher', 'table', 'universe_history', 'INSERT, UPDATE'),
        ('refresher', 'table', 'size_snapshot', 'INSERT, UPDATE, DELETE'),
        ('refresher', 'table', 'run', 'INSERT, UPDATE'),
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
        ('refresher', 'function', '_generate', 'EXECUTE'),
        ('refresher', 'function', '_rule_matches', 'EXECUTE'),
        ('refresher', 'function', '_in_control', 'EXECUTE'),
        ('refresher', 'function', '_is_triggered', 'EXECUTE'),
        ('refresher', 'function', '_load_staff', 'EXECUTE'),
        ('refresher', 'function', '_lock_members', 'EXECUTE'),
        ('refresher', 'function', '_in_transaction_block', 'EXECUTE'),
        ('refresher', 'function', '_nightly_client', 'EXECUTE'),
        ('refresher', 'function', '_nightly_step', 'EXECUTE'),
        -- event_writer: an application role that inserts into event tables
        -- (the event rule's trigger generates as the inserting role)
        ('event_writer', 'table', 'opportunity', 'INSERT, UPDATE'),
        ('event_writer', 'table', 'opportunity_log', 'INSERT'),
        ('event_writer', 'table', 'generation', 'INSERT, UPDATE'),
        ('event_writer', 'table', 'generation_failure', 'INSERT'),
        ('event_writer', 'table', 'event_skip', 'INSERT'),
        ('event_writer', 'sequence', '*', 'USAGE'),
        ('event_writer', 'function', '_generate', 'EXECUTE'),
        ('event_writer', 'function', '_rule_matches', 'EXECUTE'),
        ('event_writer', 'function', '_in_control', 'EXECUTE'),
        ('event_writer', 'function', '_load_staff', 'EXECUTE'),
        ('event_writer', 'function', '_lock_members', 'EXECUTE'),
        -- worker: dispatch, start, complete, cancel opportunities
        ('worker', 'table', 'opportunity', 'UPDATE'),
        ('worker', 'table', 'opportunity_log', 'INSERT'),
        ('worker', 'sequence', '*', 'USAGE'),
        ('worker', 'function', '_lock_for', 'EXECUTE'),
        ('worker', 'function', '_log_transition', 'EXECUTE'),
        -- admin: everything, including register_subject, enable_live,
        -- attach_event_rule (their triggers need EXECUTE on the trigger
        -- functions) and schedule
        ('admin', 'schema', 'segment', 'USAGE'),
        ('admin', 'table', '*', 'SELECT, INSERT, UPDATE, DELETE'),
        ('admin', 'sequence', '*', 'USAGE, SELECT, UPDATE'),
        ('admin', 'function', '*', 'EXECUTE'))
    SELECT DISTINCT g.object_type, g.object_name::name, g.privileges
      FROM g JOIN kinds ON kinds.k = g.kind
$$;
COMMENT ON FUNCTION segment._role_grants(text) IS
    'internal: the privileges each kind of segment.grant_role needs';

-- The privileges of one kind, expanded to the objects of schema segment
-- that exist now, as GRANT statements.
CREATE FUNCTION segment._role_grant_statements(role regrole, kind text)
RETURNS TABLE (object_type text, object text, privileges text, statement text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH o AS (
        SELECT 'schema' AS object_type, 'segment'::text AS object, g.privileges
          FROM segment._role_grants(kind) g WHERE g.object_type = 'schema'
        UNION ALL
        SELECT g.object_type, c.oid::regclass::text, g.privileges
          FROM segment._role_grants(kind) g
          JOIN pg_class c ON c.relnamespace = 'segment'::regnamespace
               AND (g.object_name = '*' OR c.relname = g.object_name)
               AND ((g.object_type = 'table' AND c.relkind IN ('r', 'p', 'v', 'm'))
                 OR (g.object_type = 'sequence' AND c.relkind = 'S'))
        UNION ALL
        SELECT g.object_type, p.oid::regprocedure::text, g.privileges
          FROM segment._role_grants(kind) g
          JOIN pg_proc p ON p.pronamespace = 'segment'::regnamespace
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
    IF NOT EXISTS (SELECT 1 FROM segment._role_grants(kind)) THEN
        RAISE EXCEPTION 'unknown kind of segment role "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Kinds: reader, author, refresher, event_writer, worker, admin (docs/security.md).';
    END IF;
    -- GRANT without the grant option only warns: refuse before granting anything
    FOR g IN SELECT * FROM segment._role_grant_statements(role, kind) LOOP
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
    FOR g IN SELECT * FROM segment._role_grant_statements(role, kind) LOOP
        EXECUTE g.statement;
        RETURN NEXT g.statement;
    END LOOP;
END $$;
COMMENT ON FUNCTION segment.grant_role(regrole, text) IS
    'grants a role what a kind of segment user needs (reader, author, refresher, event_writer, worker, admin); returns the GRANT statements';

-- Internal functions are not for PUBLIC: every function of the schema whose
-- name starts with "_" (the API's SECURITY INVOKER functions call them with
-- the caller's EXECUTE, which segment.grant_role gives). Trigger functions
-- are internal too, so that nobody can attach them to a table of theirs.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'segment'::regnamespace
                AND (p.proname LIKE '\_%' OR p.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype))
              ORDER BY p.oid
    LOOP
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', f);
    END LOOP;
END $$;
