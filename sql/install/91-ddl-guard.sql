-- segment install script, part 91: the DDL guard that keeps subject tables
-- and the rules over them consistent (moved from part 60 by issue 16: it
-- calls the checkers of parts 74 and 81, and a part calls only parts before
-- it). Event rules (part 85) and journeys (part 87) guard their own tables
-- with event triggers of the same shape.

-- Re-check every rule over a table after DDL on it; refuse the DDL when a
-- rule no longer analyses (a dropped, renamed or retyped column).
-- The guards run for every user's DDL: SECURITY DEFINER so that users
-- without access to segment's catalog can still alter their own tables.
CREATE FUNCTION segment_internal._check_rules_of(rel oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    keycol name;
BEGIN
    FOR t IN SELECT g.name AS tag, g.rule, g.columns, g.column_types, s.relation, s.name AS subject
               FROM segment.tag g JOIN segment.subject s USING (subject_id)
              WHERE s.relation = rel AND g.rule IS NOT NULL
    LOOP
        BEGIN
            PERFORM segment_internal._rule_columns(t.relation, t.rule, NULL);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": tag "%" of subject "%" depends on it', t.relation, t.tag, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s would fail: %s', t.rule, SQLERRM),
                      HINT = 'Alter or drop the tag first (segment.alter_tag, segment.drop_tag).';
        END;
        -- a rule that still parses after a retype may mean something else
        -- (numeric rounded to integer, a date compared as text): refuse too
        IF segment_internal._column_types(t.relation, t.columns) IS DISTINCT FROM t.column_types THEN
            RAISE EXCEPTION 'cannot change the type of a column that tag "%" of subject "%" reads', t.tag, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s was written for columns %s of types %s, now %s.',
                                      t.rule, t.columns, t.column_types,
                                      segment_internal._column_types(t.relation, t.columns)),
                      HINT = 'Drop the tag, change the column, and create the tag again (or alter its rule to the new type first).';
        END IF;
    END LOOP;
    FOR t IN SELECT s.name AS subject, s.key_column, s.key_type, s.relation, s.snapshot_column FROM segment.subject s
              WHERE s.relation = rel
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = rel AND a.attname = t.key_column AND NOT a.attisdropped
                          AND a.atttypid = t.key_type) THEN
            RAISE EXCEPTION 'cannot change table "%": column "%" is the key of subject "%"', t.relation, t.key_column, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Unregister the subject first with segment.unregister_subject().';
        END IF;
        -- a snapshot subject's date column (part 33)
        IF t.snapshot_column IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = rel AND a.attname = t.snapshot_column AND NOT a.attisdropped
                          AND a.atttypid = 'date'::regtype) THEN
            RAISE EXCEPTION 'cannot change table "%": column "%" is the snapshot column of subject "%"', t.relation, t.snapshot_column, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Unregister the subject first with segment.unregister_subject().';
        END IF;
    END LOOP;
    -- scheme buckets and scorecard items (part 74)
    PERFORM segment_internal._check_scheme_rules_of(rel);
    -- goals and templates of opportunity rules (part 81)
    PERFORM segment_internal._check_opportunity_rules_of(rel);
END $$;

CREATE FUNCTION segment_internal._ddl_guard() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT DISTINCT objid FROM pg_event_trigger_ddl_commands()
              WHERE command_tag = 'ALTER TABLE' AND classid = 'pg_class'::regclass
    LOOP
        IF EXISTS (SELECT 1 FROM segment.subject s WHERE s.relation = c.objid) THEN
            PERFORM segment_internal._check_rules_of(c.objid);
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION segment_internal._drop_guard() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT x.name, d.object_identity
               FROM pg_event_trigger_dropped_objects() d
               JOIN segment.subject x ON x.relation::oid = d.objid
              WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
    LOOP
        RAISE EXCEPTION 'cannot drop table %: it is registered as subject "%"', s.object_identity, s.name
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Unregister the subject first with segment.unregister_subject().';
    END LOOP;
END $$;

CREATE EVENT TRIGGER segment_ddl_guard ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION segment_internal._ddl_guard();
CREATE EVENT TRIGGER segment_drop_guard ON sql_drop
    EXECUTE FUNCTION segment_internal._drop_guard();
