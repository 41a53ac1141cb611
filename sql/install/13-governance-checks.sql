-- segment install script, part 13: governance's catalog and the checks the
-- features call (docs/security.md#governance).
--
-- Who is governed (segment.governance), mapped (user_map) and what is
-- personal (column_sensitivity); the append-only, hash-chained audit trail
-- (segment.audit, verify_audit); and the checks readers of later parts
-- call: the customer's scope (_check_customer: _member_id of part 50,
-- render of part 84), export control (_check_export, _audit_export: top of
-- part 76) and masking (_mask_pii, _masks_pii: render). Early, so that those
-- readers are written once, with their checks, where they belong. What
-- changes this catalog (map_user, install_roles, set_column_sensitivity,
-- the org tree's loading) and row-level security are in part 92; the org
-- tree's tables in part 12.
--
-- The catalog tables of this part are readable by PUBLIC: the org tree and
-- who is mapped to what are what the visibility checks (run as the caller)
-- read. The audit trail is not: only segment_auditor and segment_admin read it.

------------------------------------------------------------------------
-- Catalog
------------------------------------------------------------------------

-- One row once install_roles() has run in this database.
CREATE TABLE segment.governance (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    installed_at timestamptz NOT NULL DEFAULT now(),
    installed_by name NOT NULL DEFAULT current_user
);

-- A login bound to a manager id (the value of the subject's owner column
-- and of segment.opportunity.manager) and/or an org unit.
CREATE TABLE segment.user_map (
    login     name PRIMARY KEY,
    manager   text,
    org_unit  text REFERENCES segment.org_unit DEFERRABLE INITIALLY DEFERRED,
    mapped_at timestamptz NOT NULL DEFAULT now(),
    mapped_by name NOT NULL DEFAULT current_user,
    CHECK (manager IS NOT NULL OR org_unit IS NOT NULL)
);

-- Bumped in the transaction that changes the tree or a mapping: the
-- backend caches of src/governance.c (a login's manager id and org subtree)
-- are keyed by it.
CREATE TABLE segment.scope_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL
);

-- Columns of a subject's table that hold personal data.
CREATE TABLE segment.column_sensitivity (
    subject_id  int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    column_name name NOT NULL,
    sensitivity text NOT NULL CHECK (sensitivity IN ('pii')),
    set_at      timestamptz NOT NULL DEFAULT now(),
    set_by      name NOT NULL DEFAULT current_user,
    PRIMARY KEY (subject_id, column_name)
);

-- The audit trail. Append-only: UPDATE, DELETE and TRUNCATE are refused by
-- triggers that fire for everyone (ENABLE ALWAYS, so that
-- session_replication_role = replica does not skip them); what a superuser
-- changes with the triggers disabled breaks the hash chain, which
-- verify_audit() finds. hash = sha256(prev_hash || the row's canonical text).
CREATE TABLE segment.audit (
    audit_id  bigint PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     name NOT NULL,          -- session_user: the login accountable
    action    text NOT NULL,          -- e.g. tag.insert, export, opportunity.dispatched
    object    text,
    detail    jsonb,
    prev_hash bytea,                  -- NULL for the first row only
    hash      bytea NOT NULL
);
CREATE SEQUENCE segment.audit_audit_id_seq OWNED BY segment.audit.audit_id;

-- The chain's head: the last row appended. Appends lock it (serialising
-- them, so that two writers never fork the chain) and it lets
-- verify_audit() notice rows removed from the end.
CREATE TABLE segment.audit_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id   bigint NOT NULL,
    last_hash bytea NOT NULL
);

SELECT pg_catalog.pg_extension_config_dump('segment.governance', '');
SELECT pg_catalog.pg_extension_config_dump('segment.user_map', '');
SELECT pg_catalog.pg_extension_config_dump('segment.scope_version', '');
SELECT pg_catalog.pg_extension_config_dump('segment.column_sensitivity', '');
SELECT pg_catalog.pg_extension_config_dump('segment.audit', '');
SELECT pg_catalog.pg_extension_config_dump('segment.audit_audit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.audit_head', '');

GRANT SELECT ON segment.governance, segment.org_tree, segment.org_unit, segment.user_map,
                segment.scope_version, segment.column_sensitivity TO PUBLIC;

------------------------------------------------------------------------
-- Governed or not
------------------------------------------------------------------------

CREATE FUNCTION segment_internal._governed() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM segment.governance)
$$;

------------------------------------------------------------------------
-- The audit trail
------------------------------------------------------------------------

-- The canonical text of a row, hashed after its predecessor's hash. The
-- time as epoch seconds, so that neither TimeZone nor DateStyle changes it.
CREATE FUNCTION segment_internal._audit_hash(prev_hash bytea, audit_id bigint, at timestamptz, actor name,
                                    action text, object text, detail jsonb)
RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(coalesce(prev_hash, '\x'::bytea)
                  || convert_to(format('%s|%s|%L|%L|%L|%L', audit_id, extract(epoch FROM at),
                                       actor, action, object, detail::text), 'UTF8'))
$$;

-- Appends one row; returns its audit_id. SECURITY DEFINER: nobody else may
-- insert into segment.audit. The actor is session_user, the login that
-- connected (SET ROLE does not change it).
CREATE FUNCTION segment_internal._audit(action text, object text, detail jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    prev bytea;
    last bigint;
    id bigint;
    t timestamptz := clock_timestamp();
    h bytea;
BEGIN
    INSERT INTO segment.audit_head (last_id, last_hash) VALUES (0, '\x') ON CONFLICT DO NOTHING;
    -- the lock serialises appends until commit; under REPEATABLE READ a
    -- concurrent append fails with 40001 instead of forking the chain
    SELECT CASE WHEN h0.last_id = 0 THEN NULL ELSE h0.last_hash END, h0.last_id INTO prev, last
      FROM segment.audit_head h0 FOR UPDATE;
    -- ids grow along the chain even when the sequence lags the table (a
    -- restore sets the sequence after the catalog rows it loads were audited)
    id := greatest(nextval('segment.audit_audit_id_seq'), last + 1);
    h := segment_internal._audit_hash(prev, id, t, session_user, action, object, detail);
    INSERT INTO segment.audit (audit_id, at, actor, action, object, detail, prev_hash, hash)
    VALUES (id, t, session_user, action, object, detail, prev, h);
    UPDATE segment.audit_head SET last_id = id, last_hash = h;
    RETURN id;
END $$;

-- An export: who listed how many customers of which audience.
CREATE FUNCTION segment_internal._audit_export(what text, subject name, audience text, row_count bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF segment_internal._governed() THEN
        PERFORM segment_internal._audit('export', subject::text,
                               jsonb_build_object('function', what, 'audience', audience,
                                                  'rows', row_count, 'role', current_setting('role')));
    END IF;
END $$;

-- The audit_id of the first row whose link is broken (its prev_hash is not
-- its predecessor's hash, or its hash is not that of its content), or of
-- the head when rows were removed from the end; NULL when intact.
CREATE FUNCTION segment.verify_audit() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(
        (SELECT x.audit_id
           FROM (SELECT a.audit_id, a.prev_hash, a.hash,
                        lag(a.hash) OVER (ORDER BY a.audit_id) AS expected_prev,
                        segment_internal._audit_hash(a.prev_hash, a.audit_id, a.at, a.actor, a.action,
                                            a.object, a.detail) AS expected_hash
                   FROM segment.audit a) x
          WHERE x.prev_hash IS DISTINCT FROM x.expected_prev OR x.hash <> x.expected_hash
          ORDER BY x.audit_id LIMIT 1),
        (SELECT h.last_id FROM segment.audit_head h
          WHERE h.last_id > 0
            AND NOT EXISTS (SELECT 1 FROM segment.audit a
                             WHERE a.audit_id = h.last_id AND a.hash = h.last_hash
                               AND NOT EXISTS (SELECT 1 FROM segment.audit b WHERE b.audit_id > h.last_id))))
$$;
REVOKE EXECUTE ON FUNCTION segment.verify_audit() FROM PUBLIC;
COMMENT ON FUNCTION segment.verify_audit() IS
    'the audit_id of the first broken link of segment.audit''s hash chain, NULL when intact';

CREATE FUNCTION segment_internal._audit_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_NAME NOT IN ('segment_audit_append_only', 'segment_audit_no_truncate')
       OR TG_RELID NOT IN ('segment.audit'::regclass, 'segment.audit_head'::regclass) THEN
        RAISE EXCEPTION 'trigger function segment_internal._audit_refuse() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    IF TG_RELID = 'segment.audit_head'::regclass AND TG_OP = 'UPDATE' THEN
        RETURN NEW;     -- segment_internal._audit moves the head
    END IF;
    RAISE EXCEPTION 'segment.audit is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'The audit trail is hash-chained; rows are never changed or removed.',
              HINT = 'Ship it off-box to keep a copy (docs/security.md#shipping-the-audit-trail-off-box).';
END $$;
CREATE TRIGGER segment_audit_append_only BEFORE UPDATE OR DELETE ON segment.audit
    FOR EACH ROW EXECUTE FUNCTION segment_internal._audit_refuse();
CREATE TRIGGER segment_audit_no_truncate BEFORE TRUNCATE ON segment.audit
    FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._audit_refuse();
CREATE TRIGGER segment_audit_append_only BEFORE UPDATE OR DELETE ON segment.audit_head
    FOR EACH ROW EXECUTE FUNCTION segment_internal._audit_refuse();
CREATE TRIGGER segment_audit_no_truncate BEFORE TRUNCATE ON segment.audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._audit_refuse();
ALTER TABLE segment.audit ENABLE ALWAYS TRIGGER segment_audit_append_only;
ALTER TABLE segment.audit ENABLE ALWAYS TRIGGER segment_audit_no_truncate;
ALTER TABLE segment.audit_head ENABLE ALWAYS TRIGGER segment_audit_append_only;
ALTER TABLE segment.audit_head ENABLE ALWAYS TRIGGER segment_audit_no_truncate;

------------------------------------------------------------------------
-- Per-customer scope, export control and masking (src/governance.c)
------------------------------------------------------------------------

-- 42501 unless the customer is in the caller's scope (src/governance.c).
CREATE FUNCTION segment_internal._check_customer(subject_id int, key text) RETURNS void
    AS 'MODULE_PATHNAME', 'segment_check_customer' LANGUAGE C STABLE PARALLEL RESTRICTED;
-- 42501 unless the caller may list customers (segment_exporter).
CREATE FUNCTION segment_internal._check_export(what text) RETURNS void
    AS 'MODULE_PATHNAME', 'segment_check_export' LANGUAGE C STABLE PARALLEL RESTRICTED;
-- The value, masked when the column is personal and the caller lacks segment_exporter.
CREATE FUNCTION segment_internal._mask_pii(subject_id int, column_name name, value text) RETURNS text
    AS 'MODULE_PATHNAME', 'segment_mask_pii' LANGUAGE C STABLE PARALLEL RESTRICTED;
-- Whether personal columns are masked for the caller: governed, and neither
-- a superuser nor a member of segment_exporter.
CREATE FUNCTION segment_internal._masks_pii() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT segment_internal._governed() THEN false
                WHEN (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN false
                WHEN NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'segment_exporter') THEN true
                ELSE NOT pg_has_role('segment_exporter', 'USAGE') END
$$;
