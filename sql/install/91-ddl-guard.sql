-- segment install script, part 91: the DDL guard, one for every feature
-- (docs/dba-guide.md, docs/architecture.md). Two event triggers:
-- segment_ddl_guard (ALTER TABLE) calls each feature's checker for the
-- altered table -- _check_rules_of (tags and the subject's columns, here; it
-- calls the scheme and scorecard checker of part 74 and the opportunity
-- rules' of part 81), _check_event_rules_of (part 85), _check_journeys_of
-- (part 87); segment_drop_guard (DROP) refuses dropping a subject's table,
-- and calls _check_event_drops and _check_journey_drops (here). Last of the
-- feature parts, so that it calls only parts before it. The upgrade from
-- 0.1.0 runs this part too (the guards existed in 0.1.0, under separate
-- event triggers for event rules): CREATE OR REPLACE, and the event triggers
-- are created when missing.

-- Re-check every rule over a table after DDL on it; refuse the DDL when a
-- rule no longer analyses (a dropped, renamed or retyped column).
-- The guards run for every user's DDL: SECURITY DEFINER so that users
-- without access to segment's catalog can still alter their own tables.
CREATE OR REPLACE FUNCTION segment_internal._check_rules_of(rel oid) RETURNS void
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

CREATE OR REPLACE FUNCTION segment_internal._ddl_guard() RETURNS event_trigger
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
        IF EXISTS (SELECT 1 FROM segment.event_rule e WHERE e.event_table = c.objid) THEN
            PERFORM segment_internal._check_event_rules_of(c.objid);
        END IF;
        PERFORM segment_internal._check_journeys_of(c.objid);
    END LOOP;
END $$;

-- Dropping an event table, or an event rule's trigger by hand, is refused
-- while the rule is attached (detach_event_rule deletes the attachment
-- before it drops the trigger). Called by the drop guard only.
CREATE OR REPLACE FUNCTION segment_internal._check_event_drops() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE e record;
BEGIN
    FOR e IN SELECT r.name, d.object_identity, d.object_type
               FROM pg_event_trigger_dropped_objects() d
               JOIN segment.event_rule x
                 ON (d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND x.event_table::oid = d.objid)
                 OR (d.classid = 'pg_trigger'::regclass AND d.address_names[3] = x.trigger_name
                     AND x.event_table::oid = to_regclass(format('%I.%I', d.address_names[1], d.address_names[2])))
               JOIN segment.opportunity_rule r USING (rule_id)
    LOOP
        RAISE EXCEPTION 'cannot drop % %: event rule "%" is attached to it', e.object_type, e.object_identity, e.name
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Detach it first with segment.detach_event_rule().';
    END LOOP;
END $$;

-- Dropping a consent relation or a journey's entry-event table is refused
-- while segment reads it. Called by the drop guard only.
CREATE OR REPLACE FUNCTION segment_internal._check_journey_drops() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT d.object_identity,
                    (SELECT string_agg(format('consent to "%s"', c.channel), ', ')
                       FROM segment.consent c WHERE c.relation::oid = d.objid) AS consent,
                    (SELECT string_agg(format('entry events of journey "%s"', j.name), ', ')
                       FROM segment.journey_event x JOIN segment.journey j USING (journey_id)
                      WHERE x.event_table::oid = d.objid) AS events
               FROM pg_event_trigger_dropped_objects() d
              WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
    LOOP
        IF r.consent IS NOT NULL OR r.events IS NOT NULL THEN
            RAISE EXCEPTION 'cannot drop table %: journeys read it', r.object_identity
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('It holds %s.', concat_ws(', ', r.consent, r.events)),
                      HINT = 'Register the consent elsewhere (segment.register_consent) or drop the journey first.';
        END IF;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION segment_internal._drop_guard() RETURNS event_trigger
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
    PERFORM segment_internal._check_event_drops();
    PERFORM segment_internal._check_journey_drops();
END $$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'segment_ddl_guard') THEN
        CREATE EVENT TRIGGER segment_ddl_guard ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION segment_internal._ddl_guard();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'segment_drop_guard') THEN
        CREATE EVENT TRIGGER segment_drop_guard ON sql_drop
            EXECUTE FUNCTION segment_internal._drop_guard();
    END IF;
END $$;
