-- segment install script, part 74: schemes (docs/segmentation.md):
-- create/alter/drop with validation and history, and the DDL guard for
-- scheme buckets and scorecard items. The tables are in part 70; refresh (C)
-- fills bucket_state and bucket_history; reading is part 76. See
-- docs/segmentation.md.

-- Validates a bucket list against the subject's table; returns the rows to
-- store. Raises the rule's own error (with position and context) for a bad
-- rule.
CREATE FUNCTION segment_internal._scheme_buckets(rel regclass, scheme name, buckets text[])
RETURNS TABLE (ord int, name name, rule text, columns name[], column_types regtype[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lo int;
    c int;
    i int;
    n int := 0;
    bname name;
    brule text;
    seen name[] := '{}';
BEGIN
    PERFORM segment_internal._check_entries(buckets, 'buckets', format('scheme "%s"', scheme), 2,
                                   '(name, rule) pairs', $e$ARRAY[['affluent', 'aum >= 500000'], ['mass', 'true']]$e$, false);
    c := array_lower(buckets, 2);
    lo := array_lower(buckets, 1);
    FOR i IN lo .. array_upper(buckets, 1) LOOP
        n := n + 1;
        bname := segment_internal._check_part_name('bucket', buckets[i][c]);
        IF bname = ANY (seen) THEN
            RAISE EXCEPTION 'bucket "%" appears twice in scheme "%"', bname, scheme
                USING ERRCODE = 'duplicate_object',
                      DETAIL = format('Buckets %s and %s have the same name.',
                                      array_position(seen, bname), n);
        END IF;
        seen := seen || bname;
        brule := buckets[i][c + 1];
        IF brule IS NULL THEN
            RAISE EXCEPTION 'rule of bucket "%" of scheme "%" is NULL', bname, scheme
                USING ERRCODE = 'null_value_not_allowed',
                      HINT = 'Write true for a bucket that takes everyone left.';
        END IF;
        ord := n;
        name := bname;
        columns := segment_internal._rule_columns(rel, brule, format('bucket "%s" of scheme "%s"', bname, scheme));
        rule := segment_internal._rule_canonical(rel, brule);
        column_types := segment_internal._column_types(rel, columns);
        RETURN NEXT;
    END LOOP;
END $$;

-- A scheme's definition as stored in segment.definition_history.
CREATE FUNCTION segment_internal._scheme_definition(id int) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
               'subject', sub.name,
               'description', s.description,
               'active', s.active,
               'buckets', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', b.name, 'rule', b.rule)
                                                     ORDER BY b.position), '[]')
                             FROM segment.scheme_bucket b WHERE b.scheme_id = s.scheme_id))
      FROM segment.scheme s JOIN segment.subject sub USING (subject_id)
     WHERE s.scheme_id = id
$$;

CREATE FUNCTION segment_internal._scheme(scheme name, for_update boolean DEFAULT false) RETURNS segment.scheme
LANGUAGE plpgsql AS $$
DECLARE s segment.scheme;
BEGIN
    IF for_update THEN
        SELECT * INTO s FROM segment.scheme x WHERE x.name = scheme FOR UPDATE;
    ELSE
        SELECT * INTO s FROM segment.scheme x WHERE x.name = scheme;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'scheme "%" does not exist', scheme USING ERRCODE = 'undefined_object';
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION segment.create_scheme(subject name, scheme name, buckets text[],
                                      description text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    rel regclass;
    defs segment.scheme_bucket[];
    id int;
BEGIN
    PERFORM segment_internal._check_name('scheme', scheme);
    PERFORM segment_internal._check_name_free('scheme', scheme);   -- one namespace of audience names
    SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
    -- validate everything before writing anything (no sequence value is used up)
    defs := ARRAY(SELECT ROW(0, b.ord, b.name, b.rule, b.columns, b.column_types)::segment.scheme_bucket
                    FROM segment_internal._scheme_buckets(rel, scheme, buckets) b);
    INSERT INTO segment.scheme (subject_id, name, description, owner)
    VALUES (sid, scheme, description, quote_ident(current_user)::regrole)
    RETURNING scheme_id INTO id;
    INSERT INTO segment.scheme_bucket (scheme_id, position, name, rule, columns, column_types)
    SELECT id, d.position, d.name, d.rule, d.columns, d.column_types FROM unnest(defs) d;
    INSERT INTO segment.definition_history (kind, object_id, name, action, new_definition)
    VALUES ('scheme', id, scheme, 'create', segment_internal._scheme_definition(id));
    RETURN id;
END $$;
COMMENT ON FUNCTION segment.create_scheme(name, name, text[], text) IS
    'ordered (bucket, rule) pairs: each customer lands in the first bucket whose rule is true';

CREATE FUNCTION segment.alter_scheme(scheme name, buckets text[] DEFAULT NULL,
                                     description text DEFAULT NULL, active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.scheme := segment_internal._scheme(scheme, true);
    old_def jsonb := segment_internal._scheme_definition(old.scheme_id);
    rel regclass;
    defs segment.scheme_bucket[];
BEGIN
    IF buckets IS NULL AND description IS NULL AND active IS NULL THEN
        RAISE EXCEPTION 'nothing to change for scheme "%"', scheme
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass buckets, description or active.';
    END IF;
    IF buckets IS NOT NULL THEN
        SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = old.subject_id;
        defs := ARRAY(SELECT ROW(old.scheme_id, b.ord, b.name, b.rule, b.columns, b.column_types)::segment.scheme_bucket
                        FROM segment_internal._scheme_buckets(rel, scheme, buckets) b);
        DELETE FROM segment.scheme_bucket b WHERE b.scheme_id = old.scheme_id;
        INSERT INTO segment.scheme_bucket SELECT * FROM unnest(defs);
    END IF;
    UPDATE segment.scheme s
       SET description = coalesce(alter_scheme.description, s.description),
           active = coalesce(alter_scheme.active, s.active),
           version = s.version + 1,
           updated_at = now(), updated_by = current_user,
           -- new buckets run as whoever wrote them
           owner = CASE WHEN alter_scheme.buckets IS NULL THEN s.owner ELSE quote_ident(current_user)::regrole END
     WHERE s.scheme_id = old.scheme_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition, new_definition)
    VALUES ('scheme', old.scheme_id, scheme, 'alter', old_def, segment_internal._scheme_definition(old.scheme_id));
END $$;

-- segment.drop_scheme is in part 93 (what dropping a name reaches).

-- The DDL guard for scheme buckets and scorecard items (called by
-- segment_internal._check_rules_of after the tags): refuse an ALTER TABLE after which
-- a bucket or item rule no longer analyses or a column it reads has another
-- type.
CREATE FUNCTION segment_internal._check_scheme_rules_of(rel oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT 'scheme' AS kind, m.name AS owner, b.position,
                    format('scheme "%s" (bucket "%s")', m.name, b.name) AS what,
                    b.rule, b.columns, b.column_types, s.relation, s.name AS subject
               FROM segment.scheme m JOIN segment.scheme_bucket b USING (scheme_id)
               JOIN segment.subject s ON s.subject_id = m.subject_id
              WHERE s.relation = rel
             UNION ALL
             SELECT 'scorecard', c.name, i.position, format('scorecard "%s" (item %s)', c.name, i.position),
                    i.rule, i.columns, i.column_types, s.relation, s.name
               FROM segment.scorecard c JOIN segment.scorecard_item i USING (scorecard_id)
               JOIN segment.subject s ON s.subject_id = c.subject_id
              WHERE s.relation = rel
              ORDER BY 1, 2, 3
    LOOP
        BEGIN
            PERFORM segment_internal._rule_columns(t.relation, t.rule, NULL);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": % of subject "%" depends on it', t.relation, t.what, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s would fail: %s', t.rule, SQLERRM),
                      HINT = format('Alter the %1$s''s %2$s or drop the %1$s first (segment.alter_%1$s, segment.drop_%1$s).',
                                    t.kind, CASE t.kind WHEN 'scheme' THEN 'buckets' ELSE 'items' END);
        END;
        IF segment_internal._column_types(t.relation, t.columns) IS DISTINCT FROM t.column_types THEN
            RAISE EXCEPTION 'cannot change the type of a column that % of subject "%" reads', t.what, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s was written for columns %s of types %s, now %s.',
                                      t.rule, t.columns, t.column_types,
                                      segment_internal._column_types(t.relation, t.columns)),
                      HINT = format('Drop the %1$s, change the column, and create the %1$s again (or alter its %2$s to the new type first).',
                                    t.kind, CASE t.kind WHEN 'scheme' THEN 'buckets' ELSE 'items' END);
        END IF;
    END LOOP;
END $$;
