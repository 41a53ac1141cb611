-- segment install script, part 92: governance (docs/security.md).
--
-- Built-in roles (their list; segment.install_roles is in part 95), loading
-- the bank's org tree (register_org_tree; its tables are in part 12), logins
-- bound to a manager id or an org unit (map_user), row-level security on the
-- opportunities, their log and the reviews, marking personal columns
-- (set_column_sensitivity) and the audit of catalog changes and lifecycle
-- actions. The catalog these change, the audit trail and the checks of
-- scope, export control and masking that readers call are in part 13.
--
-- Governance is enforced in a database only once segment.install_roles()
-- has run there (a row in segment.governance; segment_internal._governed()): roles
-- are cluster-wide and CREATE EXTENSION does not create them, and an
-- existing install keeps its behaviour until the DBA opts in. The policies
-- are created by install_roles too (they name the roles), so a database
-- that never ran it has no row-level security at all and pays nothing.

-- A manager listing their opportunities (row-level security by manager
-- id), and a branch's (by org unit).
CREATE INDEX ON segment.opportunity (manager) WHERE manager IS NOT NULL;

------------------------------------------------------------------------
-- Auditing catalog changes and lifecycle actions (the trail: part 13)
------------------------------------------------------------------------

-- Definition changes, role mappings, manual tags: one audit row per row
-- changed in segment's catalog, with the row before and after. Triggers
-- rather than calls in each function, so that every path is covered
-- (create/alter/drop functions, cascades of unregister_subject, a DBA's
-- direct INSERT).
CREATE FUNCTION segment_internal._audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    before jsonb;
    after jsonb;
    obj text;
BEGIN
    IF TG_NAME <> 'segment_audit' OR TG_LEVEL <> 'ROW' OR TG_WHEN <> 'AFTER'
       OR TG_RELID NOT IN ('segment.subject'::regclass, 'segment.tag'::regclass,
                           'segment.manual_tag'::regclass, 'segment.segment'::regclass,
                           'segment.scheme'::regclass, 'segment.scheme_bucket'::regclass,
                           'segment.scorecard'::regclass, 'segment.scorecard_item'::regclass,
                           'segment.scorecard_band'::regclass,
                           'segment.opportunity_rule'::regclass, 'segment.event_rule'::regclass,
                           'segment.entry_rule'::regclass, 'segment.staff'::regclass,
                           'segment.contact_policy'::regclass, 'segment.live_subject'::regclass,
                           'segment.org_tree'::regclass, 'segment.user_map'::regclass,
                           'segment.column_sensitivity'::regclass,
                           'segment.journey'::regclass, 'segment.journey_step'::regclass,
                           'segment.channel'::regclass, 'segment.consent'::regclass) THEN
        RAISE EXCEPTION 'trigger function segment_internal._audit_row() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    IF NOT segment_internal._governed() THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN before := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN after := to_jsonb(NEW); END IF;
    IF TG_OP = 'UPDATE' AND before = after THEN
        RETURN NULL;
    END IF;
    obj := coalesce(after ->> 'name', before ->> 'name', after ->> 'login', before ->> 'login',
                    after ->> 'key', before ->> 'key',
                    coalesce(after, before) ->> 'column_name',
                    coalesce(after, before) ->> 'relation');
    PERFORM segment_internal._audit(TG_TABLE_NAME || '.' || lower(TG_OP), obj,
                           jsonb_strip_nulls(jsonb_build_object('before', before, 'after', after,
                                                                'role', current_user::text)));
    RETURN NULL;
END $$;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['subject', 'tag', 'manual_tag', 'segment', 'scheme', 'scheme_bucket',
                             'scorecard', 'scorecard_item', 'scorecard_band', 'opportunity_rule',
                             'event_rule', 'entry_rule', 'staff', 'contact_policy', 'live_subject',
                             'org_tree', 'user_map', 'column_sensitivity',
                             'journey', 'journey_step', 'channel', 'consent'] LOOP
        EXECUTE format('CREATE TRIGGER segment_audit AFTER INSERT OR UPDATE OR DELETE ON segment.%I '
                       'FOR EACH ROW EXECUTE FUNCTION segment_internal._audit_row()', t);
    END LOOP;
END $$;

-- Lifecycle actions: one audit row per transition a person made (expire,
-- the nightly job's, is not one).
CREATE FUNCTION segment_internal._audit_transition() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_NAME <> 'segment_audit' OR TG_LEVEL <> 'ROW' OR TG_WHEN <> 'AFTER' OR TG_OP <> 'INSERT'
       OR TG_RELID <> 'segment.opportunity_log'::regclass THEN
        RAISE EXCEPTION 'trigger function segment_internal._audit_transition() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    IF NEW.to_status <> 'expired' AND segment_internal._governed() THEN
        PERFORM segment_internal._audit('opportunity.' || NEW.to_status, NEW.opportunity_id::text,
                               jsonb_strip_nulls(jsonb_build_object(
                                   'from', NEW.from_status, 'to', NEW.to_status,
                                   'note', NEW.note, 'role', NEW.changed_by)));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER segment_audit AFTER INSERT ON segment.opportunity_log
    FOR EACH ROW EXECUTE FUNCTION segment_internal._audit_transition();

------------------------------------------------------------------------
-- The org tree and the user map
------------------------------------------------------------------------

CREATE FUNCTION segment_internal._bump_scope_version() RETURNS void
LANGUAGE sql AS $$
    INSERT INTO segment.scope_version AS v (version) VALUES (1)
    ON CONFLICT (singleton) DO UPDATE SET version = v.version + 1;
$$;

-- Reads relation(id_column, parent_column) into segment.org_unit. Refused,
-- with nothing changed: an unknown column (42703), a NULL or duplicate id
-- (23502 / 23505), a parent that is no unit (an orphan, 23503), a cycle
-- (42P19), no root at all (42P19), an empty table (22023).
CREATE FUNCTION segment.register_org_tree(relation regclass, id_column name, parent_column name)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
    bad text;
    reached int;
BEGIN
    IF relation IS NULL OR id_column IS NULL OR parent_column IS NULL THEN
        RAISE EXCEPTION 'relation, id_column and parent_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOREACH bad IN ARRAY ARRAY[id_column, parent_column] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = relation AND a.attname = bad
                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of relation % does not exist', bad, relation
                USING ERRCODE = 'undefined_column',
                      HINT = 'register_org_tree(relation, id_column, parent_column) names the unit id and its parent''s id.';
        END IF;
    END LOOP;
    CREATE TEMP TABLE IF NOT EXISTS segment_org_load (unit text, parent text) ON COMMIT DROP;
    TRUNCATE segment_org_load;
    EXECUTE format('INSERT INTO pg_temp.segment_org_load SELECT %I::text, %I::text FROM %s',
                   id_column, parent_column, relation);
    SELECT count(*) INTO n FROM pg_temp.segment_org_load;
    IF n = 0 THEN
        RAISE EXCEPTION 'org table % is empty', relation USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_temp.segment_org_load WHERE unit IS NULL) THEN
        RAISE EXCEPTION 'org table % has a unit whose id is NULL', relation
            USING ERRCODE = 'not_null_violation';
    END IF;
    SELECT l.unit INTO bad FROM pg_temp.segment_org_load l GROUP BY l.unit HAVING count(*) > 1 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'org table % has unit "%" more than once', relation, bad
            USING ERRCODE = 'unique_violation';
    END IF;
    SELECT l.unit INTO bad FROM pg_temp.segment_org_load l
     WHERE l.parent IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_temp.segment_org_load p WHERE p.unit = l.parent)
     ORDER BY l.unit LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'org unit "%" is an orphan: its parent is not in %', bad, relation
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Parent "%s" is not a unit of the table.',
                                  (SELECT l.parent FROM pg_temp.segment_org_load l WHERE l.unit = bad)),
                  HINT = 'Every parent must be a unit of the same table; a root has a NULL parent.';
    END IF;
    -- every unit must be reached from a root (NULL parent); what is not is on a cycle
    -- (a unit that is its own parent included) or below one
    CREATE TEMP TABLE IF NOT EXISTS segment_org_depth (unit text PRIMARY KEY, parent text, depth int) ON COMMIT DROP;
    TRUNCATE segment_org_depth;
    WITH RECURSIVE t(unit, parent, depth) AS (
        SELECT l.unit, l.parent, 0 FROM pg_temp.segment_org_load l WHERE l.parent IS NULL
        UNION ALL
        SELECT l.unit, l.parent, t.depth + 1 FROM pg_temp.segment_org_load l JOIN t ON l.parent = t.unit
         WHERE t.depth < n)
    INSERT INTO pg_temp.segment_org_depth SELECT * FROM t;
    SELECT count(*) INTO reached FROM pg_temp.segment_org_depth;
    IF reached < n THEN
        SELECT l.unit INTO bad FROM pg_temp.segment_org_load l
         WHERE NOT EXISTS (SELECT 1 FROM pg_temp.segment_org_depth d WHERE d.unit = l.unit)
         ORDER BY l.unit LIMIT 1;
        RAISE EXCEPTION 'org table % has a cycle: unit "%" is not below any root', relation, bad
            USING ERRCODE = 'invalid_recursion',
                  DETAIL = format('%s of %s units cannot be reached from a unit with a NULL parent.', n - reached, n),
                  HINT = 'Break the cycle: the chain of parents of every unit must end at a root.';
    END IF;
    -- mappings to units that are gone are refused at commit (deferred foreign key)
    DELETE FROM segment.org_unit o
     WHERE NOT EXISTS (SELECT 1 FROM pg_temp.segment_org_depth d WHERE d.unit = o.unit);
    INSERT INTO segment.org_unit AS o (unit, parent, depth)
    SELECT d.unit, d.parent, d.depth FROM pg_temp.segment_org_depth d
    ON CONFLICT (unit) DO UPDATE SET parent = excluded.parent, depth = excluded.depth
     WHERE (o.parent, o.depth) IS DISTINCT FROM (excluded.parent, excluded.depth);
    SELECT l.login INTO bad FROM segment.user_map l
     WHERE l.org_unit IS NOT NULL AND NOT EXISTS (SELECT 1 FROM segment.org_unit o WHERE o.unit = l.org_unit)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'login "%" is mapped to an org unit that the new tree does not have', bad
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'Map it elsewhere first: segment.map_user(login, manager, org_unit).';
    END IF;
    INSERT INTO segment.org_tree AS t (relation, id_column, parent_column, units)
    VALUES (register_org_tree.relation, register_org_tree.id_column, register_org_tree.parent_column, n)
    ON CONFLICT (singleton) DO UPDATE
       SET relation = excluded.relation, id_column = excluded.id_column,
           parent_column = excluded.parent_column, units = excluded.units,
           loaded_at = now(), loaded_by = current_user;
    PERFORM segment_internal._bump_scope_version();
    DROP TABLE pg_temp.segment_org_load;
    DROP TABLE pg_temp.segment_org_depth;
    RETURN n;
END $$;
COMMENT ON FUNCTION segment.register_org_tree(regclass, name, name) IS
    'reads the org table (unit id, parent id) into segment.org_unit; cycles and orphans refused; returns the number of units';

-- Reads the registered org table again (after the warehouse changed it).
CREATE FUNCTION segment.refresh_org_tree() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    t segment.org_tree;
BEGIN
    SELECT * INTO t FROM segment.org_tree;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no org tree is registered'
            USING ERRCODE = 'undefined_object',
                  HINT = 'segment.register_org_tree(relation, id_column, parent_column) registers it.';
    END IF;
    RETURN segment.register_org_tree(t.relation, t.id_column, t.parent_column);
END $$;
COMMENT ON FUNCTION segment.refresh_org_tree() IS
    'reads the registered org table again; returns the number of units';

-- Binds a login to a manager id and/or an org unit; both NULL removes the
-- mapping. Errors: 42704 unknown login or org unit, 22004 NULL login.
CREATE FUNCTION segment.map_user(login name, manager text DEFAULT NULL, org_unit text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF login IS NULL THEN
        RAISE EXCEPTION 'login must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = map_user.login) THEN
        RAISE EXCEPTION 'role "%" does not exist', login
            USING ERRCODE = 'undefined_object',
                  HINT = 'map_user binds an existing login role; create it first.';
    END IF;
    IF org_unit IS NOT NULL AND NOT EXISTS (SELECT 1 FROM segment.org_unit o WHERE o.unit = map_user.org_unit) THEN
        RAISE EXCEPTION 'org unit "%" does not exist', org_unit
            USING ERRCODE = 'undefined_object',
                  HINT = CASE WHEN EXISTS (SELECT 1 FROM segment.org_tree)
                              THEN 'Units are listed in segment.org_unit (segment.refresh_org_tree() reads the org table again).'
                              ELSE 'Register the org tree first: segment.register_org_tree(relation, id_column, parent_column).' END;
    END IF;
    IF manager IS NULL AND org_unit IS NULL THEN
        DELETE FROM segment.user_map m WHERE m.login = map_user.login;
    ELSE
        INSERT INTO segment.user_map AS m (login, manager, org_unit)
        VALUES (map_user.login, map_user.manager, map_user.org_unit)
        ON CONFLICT ON CONSTRAINT user_map_pkey DO UPDATE
           SET manager = excluded.manager, org_unit = excluded.org_unit,
               mapped_at = now(), mapped_by = current_user;
    END IF;
    PERFORM segment_internal._bump_scope_version();
END $$;
COMMENT ON FUNCTION segment.map_user(name, text, text) IS
    'binds a login role to a manager id (the subject''s owner column) and/or an org unit; both NULL unmaps it';


------------------------------------------------------------------------
-- Visibility (src/governance.c)
------------------------------------------------------------------------

-- The current user's manager id (user_map), NULL when not mapped to one.
CREATE FUNCTION segment_internal._my_manager() RETURNS text
    AS 'MODULE_PATHNAME', 'segment_my_manager' LANGUAGE C STABLE PARALLEL RESTRICTED;
-- Whether an org unit is in the current user's subtree (user_map.org_unit
-- and every unit below it). The subtree is cached per backend and login,
-- and rebuilt when segment.scope_version changes.
CREATE FUNCTION segment_internal._in_scope(org_unit text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'segment_in_scope' LANGUAGE C STABLE PARALLEL RESTRICTED;
-- Whether the current user sees every customer (admin, analyst, auditor,
-- exporter-only roles excluded), or governance is not installed.
CREATE FUNCTION segment_internal._sees_all() RETURNS boolean
    AS 'MODULE_PATHNAME', 'segment_sees_all' LANGUAGE C STABLE PARALLEL RESTRICTED;

-- The owner (owner_column) and org unit (org_column) of one customer, for
-- the per-customer readers' check (tags, has_tag, explain). SECURITY
-- DEFINER: the caller need not read the subject's table.
CREATE FUNCTION segment_internal._customer_scope(subject_id int, key text)
RETURNS TABLE (owner text, org text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s segment.subject;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = _customer_scope.subject_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format('SELECT %s::text, %s::text FROM %s WHERE %I = $1::%s LIMIT 1',
                                coalesce(quote_ident(s.owner_column), 'NULL'),
                                coalesce(quote_ident(s.org_column), 'NULL'),
                                s.relation, s.key_column, s.key_type)
        USING key;
END $$;

-- The reviews read the opportunities with the privileges (and row-level
-- security) of whoever queries them.
ALTER VIEW segment_internal._opportunity_facts SET (security_invoker = true);
ALTER VIEW segment.rule_review SET (security_invoker = true);
ALTER VIEW segment.manager_review SET (security_invoker = true);

------------------------------------------------------------------------
-- The built-in roles
------------------------------------------------------------------------

-- What each built-in role gets, as kinds of segment.grant_role.
CREATE FUNCTION segment_internal._builtin_roles()
RETURNS TABLE (role name, kinds text[], description text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('segment_admin'::name, ARRAY['admin'], 'subjects, rules, schedules, the org tree and user mappings; sees every row'),
           ('segment_analyst', ARRAY['author', 'refresher'], 'tags, segments, schemes, audiences, counts, reviews; no customer-level lists'),
           ('segment_manager', ARRAY['reader', 'worker'], 'works own opportunities (user_map.manager)'),
           ('segment_branch_head', ARRAY['reader', 'worker'], 'sees and reassigns within the org subtree (user_map.org_unit)'),
           ('segment_auditor', ARRAY['reader'], 'reads aggregates and the audit trail; no personal data'),
           ('segment_exporter', ARRAY['reader'], 'may list members and export (together with a role that sees the rows)')
$$;

-- Row-level security on the opportunities and their log: the policies
-- name the built-in roles, so they are created when the database becomes
-- governed, not by CREATE EXTENSION. pg_dump does not dump the policies of
-- an extension's tables; the trigger below creates them again when a
-- restore loads segment.governance's row (the roles must exist in the
-- target cluster: restore the globals first).
CREATE FUNCTION segment_internal._install_policies() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    ALTER TABLE segment.opportunity ENABLE ROW LEVEL SECURITY;
    ALTER TABLE segment.opportunity_log ENABLE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS segment_all ON segment.opportunity;
    DROP POLICY IF EXISTS segment_own ON segment.opportunity;
    DROP POLICY IF EXISTS segment_subtree ON segment.opportunity;
    DROP POLICY IF EXISTS segment_insert ON segment.opportunity;
    DROP POLICY IF EXISTS segment_visible ON segment.opportunity_log;
    DROP POLICY IF EXISTS segment_insert ON segment.opportunity_log;
    CREATE POLICY segment_all ON segment.opportunity
        TO segment_admin, segment_analyst, segment_auditor USING (true) WITH CHECK (true);
    CREATE POLICY segment_own ON segment.opportunity
        TO segment_manager USING (manager = segment_internal._my_manager());
    CREATE POLICY segment_subtree ON segment.opportunity
        TO segment_branch_head USING (segment_internal._in_scope(org_unit));
    -- generation inserts (refresher, event writer): what it may insert is
    -- decided by its table privileges, not by rows it sees
    CREATE POLICY segment_insert ON segment.opportunity FOR INSERT TO PUBLIC WITH CHECK (true);
    CREATE POLICY segment_visible ON segment.opportunity_log FOR SELECT TO PUBLIC
        USING (EXISTS (SELECT 1 FROM segment.opportunity o
                        WHERE o.opportunity_id = opportunity_log.opportunity_id));
    CREATE POLICY segment_insert ON segment.opportunity_log FOR INSERT TO PUBLIC WITH CHECK (true);
END $$;

CREATE FUNCTION segment_internal._governance_installed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_NAME <> 'segment_governance_installed' OR TG_LEVEL <> 'ROW' OR TG_WHEN <> 'AFTER'
       OR TG_OP <> 'INSERT' OR TG_RELID <> 'segment.governance'::regclass THEN
        RAISE EXCEPTION 'trigger function segment_internal._governance_installed() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    PERFORM segment_internal._install_policies();
    RETURN NULL;
END $$;
CREATE TRIGGER segment_governance_installed AFTER INSERT ON segment.governance
    FOR EACH ROW EXECUTE FUNCTION segment_internal._governance_installed();

-- segment.install_roles(), which grants each built-in role its kinds through
-- segment.grant_role, is in part 95 with grant_role.

------------------------------------------------------------------------
-- Reassignment (branch heads, within their subtree)
------------------------------------------------------------------------

-- Gives an open opportunity to another manager. Row-level security decides
-- which opportunities the caller may move (a branch head: its org
-- subtree; the opportunity keeps its org unit); in a governed database a
-- manager may not reassign (42501). Errors: 22004 NULL argument, 42704 no
-- such (visible) opportunity, 55000 not open.
CREATE FUNCTION segment.opportunity_reassign(opportunity_id bigint, manager text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
    refused boolean;
BEGIN
    IF manager IS NULL OR btrim(manager) = '' THEN
        RAISE EXCEPTION 'manager must not be NULL or empty' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    refused := CASE WHEN NOT segment_internal._governed() OR segment_internal._sees_all() THEN false
                    WHEN NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'segment_branch_head') THEN true
                    ELSE NOT pg_has_role('segment_branch_head', 'USAGE') END;
    IF refused THEN
        RAISE EXCEPTION 'permission denied to reassign opportunity %', opportunity_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Branch heads (segment_branch_head) reassign within their org subtree.';
    END IF;
    o := segment_internal._lock_for(opportunity_id, 'reassign', '{generated,dispatched,in_progress}', 'reassigned', false);
    -- the audit trigger tells a reassignment from generation's assignment by this
    PERFORM set_config('segment_gov.reassigning', 'on', true);
    UPDATE segment.opportunity x
       SET manager = opportunity_reassign.manager,
           assignment = CASE WHEN x.assignment = 'pool' THEN 'org' ELSE x.assignment END,
           pool_reason = NULL
     WHERE x.opportunity_id = o.opportunity_id;
    PERFORM set_config('segment_gov.reassigning', '', true);
END $$;
COMMENT ON FUNCTION segment.opportunity_reassign(bigint, text) IS
    'gives an open opportunity to another manager (branch heads: within their org subtree)';

-- Reassignments are lifecycle actions: audited.
CREATE FUNCTION segment_internal._audit_reassign() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_NAME <> 'segment_audit_reassign' OR TG_LEVEL <> 'ROW' OR TG_WHEN <> 'AFTER' OR TG_OP <> 'UPDATE'
       OR TG_RELID <> 'segment.opportunity'::regclass THEN
        RAISE EXCEPTION 'trigger function segment_internal._audit_reassign() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    IF coalesce(current_setting('segment_gov.reassigning', true), '') = 'on' AND segment_internal._governed() THEN
        PERFORM segment_internal._audit('opportunity.reassign', NEW.opportunity_id::text,
                               jsonb_build_object('from', OLD.manager, 'to', NEW.manager,
                                                  'org_unit', NEW.org_unit, 'role', current_user::text));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER segment_audit_reassign AFTER UPDATE OF manager ON segment.opportunity
    FOR EACH ROW WHEN (OLD.manager IS DISTINCT FROM NEW.manager)
    EXECUTE FUNCTION segment_internal._audit_reassign();

------------------------------------------------------------------------
-- Personal columns (masked by the checks of part 13)
------------------------------------------------------------------------

-- Marks a column of a subject's table as personal data ('pii'), or not
-- (NULL). explain, render and the per-customer readers show it masked
-- (segment.mask: 138****5678, 王*明) to roles without segment_exporter.
-- Errors: 42704 unknown subject, 42703 unknown column, 22023 unknown sensitivity.
CREATE FUNCTION segment.set_column_sensitivity(subject name, column_name name, sensitivity text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s segment.subject;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.name = set_column_sensitivity.subject;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subject "%" is not registered', subject
            USING ERRCODE = 'undefined_object',
                  HINT = 'Registered subjects are listed in segment.subject.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = s.relation AND a.attname = column_name
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', column_name, s.relation
            USING ERRCODE = 'undefined_column';
    END IF;
    IF sensitivity IS NOT NULL AND sensitivity <> 'pii' THEN
        RAISE EXCEPTION 'unknown sensitivity "%"', sensitivity
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Sensitivity is ''pii'' (personal data, masked), or NULL (not personal).';
    END IF;
    IF sensitivity IS NULL THEN
        DELETE FROM segment.column_sensitivity c
         WHERE c.subject_id = s.subject_id AND c.column_name = set_column_sensitivity.column_name;
    ELSE
        INSERT INTO segment.column_sensitivity AS c (subject_id, column_name, sensitivity)
        VALUES (s.subject_id, set_column_sensitivity.column_name, sensitivity)
        ON CONFLICT ON CONSTRAINT column_sensitivity_pkey DO UPDATE
           SET sensitivity = excluded.sensitivity, set_at = now(), set_by = current_user;
    END IF;
END $$;
COMMENT ON FUNCTION segment.set_column_sensitivity(name, name, text) IS
    'marks a column of the subject''s table as personal (''pii'': masked for roles without segment_exporter) or not (NULL)';
