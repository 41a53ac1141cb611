-- upgrade 0.1.0 -> 0.2.0, part 05: the internal schema (issue 16; the same
-- schema as sql/install/01-internal-schema.sql). First of the upgrade on
-- purpose: every later part names helpers segment_internal._NAME (as
-- tools/internal-schema-move.sh wrote them), so the 0.1.0 helpers move here,
-- before those parts replace their bodies.
CREATE SCHEMA segment_internal;
COMMENT ON SCHEMA segment_internal IS
    'internal helpers of extension segment: not an API, may change in any release';

-- Every function of schema segment whose name starts with "_" and the
-- internal view keep their OIDs: triggers, event triggers, policies, views
-- and grants that use them follow them to the new schema.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'segment'::regnamespace AND p.proname LIKE '\_%'
              ORDER BY p.oid
    LOOP
        EXECUTE format('ALTER ROUTINE %s SET SCHEMA segment_internal', f);
    END LOOP;
    IF to_regclass('segment._opportunity_facts') IS NOT NULL THEN
        EXECUTE 'ALTER VIEW segment._opportunity_facts SET SCHEMA segment_internal';
    END IF;
END $$;

-- The 0.1.0 bodies name their helpers by text (segment + "._NAME"): rewrite
-- them the way the script rewrote the install parts, so that a body no later
-- part replaces reads the same as a fresh install's. Later parts replace
-- the bodies that changed since 0.1.0 with their final text.
DO $$
DECLARE
    f oid;
    old_name text := 'segment' || '._';
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace IN ('segment'::regnamespace, 'segment_internal'::regnamespace)
                AND p.prokind IN ('f', 'p')
                AND strpos(p.prosrc, old_name) > 0
              ORDER BY p.oid
    LOOP
        EXECUTE regexp_replace(pg_catalog.pg_get_functiondef(f), '\msegment\._([a-z0-9_])',
                               'segment_internal._\1', 'g');
    END LOOP;
END $$;
