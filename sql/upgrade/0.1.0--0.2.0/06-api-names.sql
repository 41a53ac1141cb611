-- upgrade 0.1.0 -> 0.2.0, part 06: the naming pass of the API (issue 16).
-- The 0.1.0 functions take their 0.2.0 names here, keeping their OIDs, grants
-- and comments; part 99 (= install part 94) then creates the deprecated
-- wrappers under the old names. The renamed calls in the bodies are rewritten
-- the way tools/api-rename.sh rewrote the install parts (keep this table in
-- step with it), and a renamed function's references to its own parameters
-- (complete.converted) follow its new name.
DO $$
DECLARE
    renames CONSTANT text[][] := ARRAY[
        -- old, new, argument types (keep in step with tools/api-rename.sh)
        ['dispatch', 'opportunity_dispatch', 'bigint'],
        ['dispatch', 'opportunity_dispatch', 'bigint[]'],
        ['start', 'opportunity_start', 'bigint'],
        ['complete', 'opportunity_complete', 'bigint, boolean, numeric, text'],
        ['cancel', 'opportunity_cancel', 'bigint, text'],
        ['expire', 'expire_opportunities', 'date'],
        ['fire_on_entry', 'attach_entry_rule', 'name, text'],
        ['stop_fire_on_entry', 'detach_entry_rule', 'name, text']];
    i int;
    f record;
    def text;
BEGIN
    FOR i IN 1 .. array_length(renames, 1) LOOP
        EXECUTE format('ALTER FUNCTION segment.%I(%s) RENAME TO %I', renames[i][1], renames[i][3], renames[i][2]);
    END LOOP;
    FOR f IN SELECT p.oid, p.proname FROM pg_catalog.pg_proc p
              WHERE p.pronamespace IN ('segment'::regnamespace, 'segment_internal'::regnamespace)
                AND p.prokind IN ('f', 'p')
                AND EXISTS (SELECT 1 FROM generate_subscripts(renames, 1) k
                             WHERE p.prosrc ~ ('\msegment\.' || renames[k][1] || '\M')
                                OR (p.proname = renames[k][2] AND p.prosrc ~ ('(^|[^.\w])' || renames[k][1] || '\.')))
              ORDER BY p.oid
    LOOP
        def := pg_catalog.pg_get_functiondef(f.oid);
        FOR i IN 1 .. array_length(renames, 1) LOOP
            def := regexp_replace(def, '\msegment\.' || renames[i][1] || '\M', 'segment.' || renames[i][2], 'g');
            IF f.proname = renames[i][2] THEN
                def := regexp_replace(def, '(^|[^.\w])' || renames[i][1] || '\.', '\1' || renames[i][2] || '.', 'g');
            END IF;
        END LOOP;
        EXECUTE def;
    END LOOP;
END $$;
