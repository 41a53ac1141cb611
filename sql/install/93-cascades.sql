-- segment install script, part 93: cascades and checks across features.
-- Tags, segments, schemes and scorecards share one namespace of audience
-- names (part 72), and segments, opportunity rules, entry rules and journeys
-- (parts 72 to 87) name them in their audiences. So what creating a tag,
-- dropping a name or dropping a subject must check or reach is in features
-- written after those of tags (part 50), schemes (74) and scorecards (75):
-- it is here, after all of them, so that no part calls a later one. The
-- functions are those of their features, moved here unchanged.

-- Dropping a name -----------------------------------------------------------

-- Before dropping `what` n (kind 'tag', 'segment', 'scheme', 'scorecard'):
-- refuse (2BP01) when segments use it, or with cascade drop them, and the
-- segments using those, recording each drop in definition_history.
CREATE FUNCTION segment_internal._drop_segments_using(kind text, n name, "cascade" boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    qualified boolean := kind IN ('scheme', 'scorecard');
    users text;
    nusers int;
    g record;
BEGIN
    PERFORM segment_internal._lock_definitions();
    -- opportunity rules are never dropped with what their audience uses:
    -- they hold the leads' history (part 81)
    PERFORM segment_internal._refuse_if_rules_use(kind, n);
    SELECT string_agg(format('"%s"', u.name), ', ' ORDER BY u.name), count(*) INTO users, nusers
      FROM segment_internal._segments_using(n, qualified) u WHERE NOT (kind = 'segment' AND u.name = n);
    IF users IS NULL THEN
        RETURN;
    END IF;
    IF NOT coalesce("cascade", false) THEN
        RAISE EXCEPTION 'cannot drop % "%" because segments use it', kind, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Used by %s %s.',
                                  CASE WHEN nusers > 1 THEN 'segments' ELSE 'segment' END, users),
                  HINT = 'Alter or drop those segments first, or pass cascade => true to drop them too.';
    END IF;
    -- every segment reached through "uses", nearest first
    FOR g IN
        WITH RECURSIVE reach(segment_id, name, depth) AS (
            SELECT u.segment_id, u.name, 1 FROM segment_internal._segments_using(n, qualified) u
            UNION ALL
            SELECT u.segment_id, u.name, d.depth + 1
              FROM reach d, LATERAL segment_internal._segments_using(d.name) u
             WHERE d.depth < 1000
        ) CYCLE segment_id SET is_cycle USING path
        SELECT x.*, min(d.depth) AS depth
          FROM reach d JOIN segment.segment x USING (segment_id)
         WHERE NOT (kind = 'segment' AND x.name = n)
         GROUP BY x.segment_id
         ORDER BY min(d.depth), x.name
    LOOP
        PERFORM segment_internal._refuse_if_rules_use('segment', g.name);
        RAISE NOTICE 'drop cascades to segment "%"', g.name;
        INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
        SELECT 'segment', x.segment_id, x.name, 'drop', segment_internal._segment_definition(x)
          FROM segment.segment x WHERE x.segment_id = g.segment_id;
        DELETE FROM segment.segment x WHERE x.segment_id = g.segment_id;
    END LOOP;
END $$;

CREATE FUNCTION segment.drop_tag(tag name, "cascade" boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE old segment.tag := segment_internal._tag(tag);
BEGIN
    -- refused while segments use the tag, unless cascade (72-segments.sql)
    PERFORM segment_internal._drop_segments_using('tag', tag, "cascade");
    DELETE FROM segment.tag t WHERE t.tag_id = old.tag_id;
    INSERT INTO segment.tag_history (tag_id, tag, action, old_rule, old_description, old_active)
    VALUES (old.tag_id, tag, 'drop', old.rule, old.description, old.active);
END $$;

CREATE FUNCTION segment.drop_segment(segment name, "cascade" boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE old segment.segment;
BEGIN
    PERFORM segment_internal._lock_definitions();
    old := segment_internal._segment(segment);
    PERFORM segment_internal._drop_segments_using('segment', segment, "cascade");
    DELETE FROM segment.segment g WHERE g.segment_id = old.segment_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    VALUES ('segment', old.segment_id, segment, 'drop', segment_internal._segment_definition(old));
END $$;
COMMENT ON FUNCTION segment.drop_segment(name, boolean) IS
    'drops a segment; refused while other segments use it, unless cascade';

CREATE FUNCTION segment.drop_scheme(scheme name, "cascade" boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old segment.scheme := segment_internal._scheme(scheme, true);
BEGIN
    -- segments that name its buckets or bands: refuse, or drop them too
    PERFORM segment_internal._drop_segments_using('scheme', scheme, "cascade");
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    VALUES ('scheme', old.scheme_id, scheme, 'drop', segment_internal._scheme_definition(old.scheme_id));
    DELETE FROM segment.scheme s WHERE s.scheme_id = old.scheme_id;
END $$;

CREATE FUNCTION segment.drop_scorecard(scorecard name, "cascade" boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old segment.scorecard := segment_internal._scorecard(scorecard, true);
BEGIN
    -- segments that name its buckets or bands: refuse, or drop them too
    PERFORM segment_internal._drop_segments_using('scorecard', scorecard, "cascade");
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    VALUES ('scorecard', old.scorecard_id, scorecard, 'drop', segment_internal._scorecard_definition(old.scorecard_id));
    DELETE FROM segment.scorecard s WHERE s.scorecard_id = old.scorecard_id;
END $$;

-- Creating a tag: one namespace with segments, schemes and scorecards -------

CREATE FUNCTION segment.create_tag(subject name, tag name, rule text,
                                   category text DEFAULT NULL, description text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    rel regclass;
    cols name[] := '{}';
    id int;
BEGIN
    PERFORM segment_internal._check_name('tag', tag);
    IF EXISTS (SELECT 1 FROM segment.tag t WHERE t.name = tag) THEN
        RAISE EXCEPTION 'tag "%" already exists', tag
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Tag names are unique across subjects; use segment.alter_tag() to change it.';
    END IF;
    IF rule IS NOT NULL THEN
        SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
        cols := segment_internal._rule_columns(rel, rule, format('tag "%s"', tag));
        rule := segment_internal._rule_canonical(rel, rule);
    END IF;
    PERFORM segment_internal._check_name_free('tag', tag);   -- one namespace with segments, schemes, scorecards
    INSERT INTO segment.tag (subject_id, name, rule, category, description, columns, column_types, owner)
    VALUES (sid, tag, rule, category, description, cols, segment_internal._column_types(rel, cols),
            quote_ident(current_user)::regrole)
    RETURNING tag_id INTO id;
    INSERT INTO segment.tag_history (tag_id, tag, action, new_rule, new_description, new_active)
    VALUES (id, tag, 'create', rule, description, true);
    RETURN id;
END $$;

-- Dropping a subject: every feature's definitions --------------------------

CREATE FUNCTION segment.unregister_subject(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE id int := segment_internal._subject_id(subject);
BEGIN
    INSERT INTO segment.tag_history (tag_id, tag, action, old_rule, old_description, old_active)
    SELECT t.tag_id, t.name, 'drop', t.rule, t.description, t.active
      FROM segment.tag t WHERE t.subject_id = id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    SELECT 'scheme', m.scheme_id, m.name, 'drop', segment_internal._scheme_definition(m.scheme_id)
      FROM segment.scheme m WHERE m.subject_id = id ORDER BY m.scheme_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    SELECT 'scorecard', c.scorecard_id, c.name, 'drop', segment_internal._scorecard_definition(c.scorecard_id)
      FROM segment.scorecard c WHERE c.subject_id = id ORDER BY c.scorecard_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    SELECT 'segment', g.segment_id, g.name, 'drop', segment_internal._segment_definition(g)
      FROM segment.segment g WHERE g.subject_id = id;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action, old_definition)
    SELECT r.rule_id, r.name, r.version, 'drop', segment_internal._opportunity_rule_definition(r)
      FROM segment.opportunity_rule r WHERE r.subject_id = id ORDER BY r.rule_id;
    -- opportunities have no foreign key (part 80): delete them here
    DELETE FROM segment.opportunity o WHERE o.subject_id = id;
    PERFORM segment_internal._live_drop_triggers(id);   -- part 86
    DELETE FROM segment.subject s WHERE s.subject_id = id;
END $$;
