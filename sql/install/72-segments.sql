-- segment install script, part 72: named segments and overlap of
-- audiences (docs/segmentation.md, docs/audiences.md).
--
-- A segment is a named audience of one subject; wherever an audience is
-- read, its name stands for that audience (expanded recursively by
-- src/audience.c). Tags, segments, schemes and scorecards share one
-- namespace of names. The audience text is the definition: the names it
-- uses are found by parsing it (segment_internal._audience_names), so there is no
-- dependency table to keep in step.

-- Definition-time check of an audience (syntax, names, cycles); `segment`
-- stands for the new text. Sets are not read: names not refreshed yet are fine.
CREATE FUNCTION segment_internal._audience_check(subject name, audience text, segment name DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'segment_audience_check' LANGUAGE C STABLE;

-- The distinct names an audience uses (qualifier: scheme or scorecard of a
-- dotted name), in order of first appearance. Syntax only.
CREATE FUNCTION segment_internal._audience_names(audience text)
    RETURNS TABLE (qualifier name, name name)
    AS 'MODULE_PATHNAME', 'segment_audience_names' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Serializes changes to the namespace and to references between
-- definitions (create/drop of tags and segments), so that two sessions
-- cannot take one name twice, nor refer to a name another is dropping.
CREATE FUNCTION segment_internal._lock_definitions() RETURNS void
LANGUAGE sql AS $$ SELECT pg_advisory_xact_lock(24174, 0) $$;

-- What holds an audience name: 'tag', 'segment', 'scheme', 'scorecard' or NULL.
CREATE FUNCTION segment_internal._name_kind(n name) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT k FROM (SELECT 'tag' AS k, 1 AS o FROM segment.tag t WHERE t.name = n
                   UNION ALL SELECT 'segment', 2 FROM segment.segment g WHERE g.name = n
                   UNION ALL SELECT 'scheme', 3 FROM segment.scheme c WHERE c.name = n
                   UNION ALL SELECT 'scorecard', 4 FROM segment.scorecard c WHERE c.name = n) x
     ORDER BY o LIMIT 1
$$;

-- Takes the definitions lock and refuses (42710) a name already used by a
-- tag, segment, scheme or scorecard. kind: what is being created.
CREATE FUNCTION segment_internal._check_name_free(kind text, n name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE used text;
BEGIN
    PERFORM segment_internal._lock_definitions();
    used := segment_internal._name_kind(n);
    IF used = kind THEN
        RAISE EXCEPTION '% "%" already exists', kind, n
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Use segment.alter_%s() to change it.', kind);
    ELSIF used IS NOT NULL THEN
        RAISE EXCEPTION 'name "%" is already used by a %', n, used
            USING ERRCODE = 'duplicate_object',
                  DETAIL = 'Tags, segments, schemes and scorecards share one namespace, so that a name in an audience means one thing.',
                  HINT = format('Choose another name for the %s.', kind);
    END IF;
END $$;

-- Segments whose audience uses name n directly: as a plain name, or with
-- qualified, as the scheme or scorecard of a dotted name.
CREATE FUNCTION segment_internal._segments_using(n name, qualified boolean DEFAULT false)
RETURNS SETOF segment.segment
LANGUAGE sql STABLE AS $$
    SELECT g.* FROM segment.segment g
     WHERE EXISTS (SELECT 1 FROM segment_internal._audience_names(g.audience) r
                    WHERE CASE WHEN qualified THEN r.qualifier = n
                               ELSE r.qualifier IS NULL AND r.name = n END)
     ORDER BY g.name
$$;

CREATE FUNCTION segment_internal._segment_definition(g segment.segment) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('subject', (SELECT s.name FROM segment.subject s
                                           WHERE s.subject_id = g.subject_id),
                              'audience', g.audience, 'description', g.description,
                              'version', g.version)
$$;

-- segment_internal._drop_segments_using and segment.drop_segment are in part
-- 93: a drop is refused while opportunity rules or journeys use the name.

CREATE FUNCTION segment_internal._segment(segment name) RETURNS segment.segment
LANGUAGE plpgsql STABLE AS $$
DECLARE g segment.segment;
BEGIN
    SELECT * INTO g FROM segment.segment x WHERE x.name = segment;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'segment "%" does not exist', segment
            USING ERRCODE = 'undefined_object',
                  HINT = 'Segments are listed in segment.segment.';
    END IF;
    RETURN g;
END $$;

CREATE FUNCTION segment.create_segment(subject name, segment name, audience text,
                                       description text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    g segment.segment;
BEGIN
    PERFORM segment_internal._check_name('segment', segment);
    IF audience IS NULL THEN
        RAISE EXCEPTION 'audience must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM segment_internal._check_name_free('segment', segment);
    PERFORM segment_internal._audience_check(subject, audience, segment);
    INSERT INTO segment.segment (subject_id, name, audience, description, owner)
    VALUES (sid, segment, audience, description, quote_ident(current_user)::regrole)
    RETURNING * INTO g;
    INSERT INTO segment.definition_history (kind, object_id, name, action, new_definition)
    VALUES ('segment', g.segment_id, segment, 'create', segment_internal._segment_definition(g));
    RETURN g.segment_id;
END $$;
COMMENT ON FUNCTION segment.create_segment(name, name, text, text) IS
    'names an audience of a subject; the name can then be used in audiences';

CREATE FUNCTION segment.alter_segment(segment name, audience text DEFAULT NULL,
                                      description text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.segment;
    new segment.segment;
BEGIN
    PERFORM segment_internal._lock_definitions();
    old := segment_internal._segment(segment);
    IF audience IS NULL AND description IS NULL THEN
        RAISE EXCEPTION 'nothing to change for segment "%"', segment
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass audience or description.';
    END IF;
    IF audience IS NOT NULL THEN
        PERFORM segment_internal._audience_check(
            (SELECT s.name FROM segment.subject s WHERE s.subject_id = old.subject_id),
            audience, segment);
    END IF;
    UPDATE segment.segment g
       SET audience = coalesce(alter_segment.audience, g.audience),
           description = coalesce(alter_segment.description, g.description),
           version = g.version + 1,
           updated_at = now(), updated_by = current_user,
           owner = CASE WHEN alter_segment.audience IS NULL THEN g.owner ELSE quote_ident(current_user)::regrole END
     WHERE g.segment_id = old.segment_id
    RETURNING * INTO new;
    INSERT INTO segment.definition_history (kind, object_id, name, action,
                                            old_definition, new_definition)
    VALUES ('segment', old.segment_id, segment, 'alter',
            segment_internal._segment_definition(old), segment_internal._segment_definition(new));
END $$;
COMMENT ON FUNCTION segment.alter_segment(name, text, text) IS
    'changes the audience or description of a segment';

CREATE FUNCTION segment.overlap(subject name, audiences text[])
    RETURNS TABLE (a text, b text, a_members bigint, b_members bigint,
                   both_members bigint, jaccard float8)
    AS 'MODULE_PATHNAME', 'segment_overlap' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 100;
COMMENT ON FUNCTION segment.overlap(name, text[]) IS
    'sizes, intersection and Jaccard index of every pair of audiences';
