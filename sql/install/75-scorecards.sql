-- segment install script, part 75: scorecards (docs/segmentation.md):
-- create/alter/drop with validation and history. The tables are in part 70;
-- refresh (C) fills score_state; reading is part 76. See
-- docs/segmentation.md.

CREATE FUNCTION segment_internal._scorecard_items(rel regclass, scorecard name, items text[])
RETURNS TABLE (ord int, rule text, points numeric, columns name[], column_types regtype[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c int;
    i int;
    n int := 0;
    irule text;
BEGIN
    PERFORM segment_internal._check_entries(items, 'items', format('scorecard "%s"', scorecard), 2,
                                   '(rule, points) pairs', $e$ARRAY[['aum >= 500000', '40'], ['has_fund', '15']]$e$, false);
    c := array_lower(items, 2);
    FOR i IN array_lower(items, 1) .. array_upper(items, 1) LOOP
        n := n + 1;
        irule := items[i][c];
        IF irule IS NULL THEN
            RAISE EXCEPTION 'rule of item % of scorecard "%" is NULL', n, scorecard
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF items[i][c + 1] IS NULL THEN
            RAISE EXCEPTION 'points of item % of scorecard "%" are NULL', n, scorecard
                USING ERRCODE = 'null_value_not_allowed',
                      HINT = 'Give the points as a number, e.g. ''25''.';
        END IF;
        points := segment_internal._parse_number(items[i][c + 1],
                                        format('points "%%s" of item %s', n));
        ord := n;
        columns := segment_internal._rule_columns(rel, irule, format('item %s of scorecard "%s"', n, scorecard));
        rule := segment_internal._rule_canonical(rel, irule);
        column_types := segment_internal._column_types(rel, columns);
        RETURN NEXT;
    END LOOP;
END $$;

-- Validates bands (name, min_score, max_score); NULL or '' is an open bound.
-- A band holds min_score <= score < max_score; bands must not overlap.
CREATE FUNCTION segment_internal._scorecard_bands(scorecard name, bands text[])
RETURNS TABLE (name name, min_score numeric, max_score numeric)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    c int;
    i int;
    bname name;
    lo numeric;
    hi numeric;
    names name[] := '{}';
    ranges numrange[] := '{}';
    r numrange;
    j int;
BEGIN
    PERFORM segment_internal._check_entries(bands, 'bands', format('scorecard "%s"', scorecard), 3,
                                   '(name, min_score, max_score) triples', $e$ARRAY[['low', NULL, '600'], ['high', '600', NULL]]$e$, true);
    IF coalesce(array_ndims(bands), 0) = 0 THEN
        RETURN;
    END IF;
    c := array_lower(bands, 2);
    FOR i IN array_lower(bands, 1) .. array_upper(bands, 1) LOOP
        bname := segment_internal._check_part_name('band', bands[i][c]);
        IF bname = ANY (names) THEN
            RAISE EXCEPTION 'band "%" appears twice in scorecard "%"', bname, scorecard
                USING ERRCODE = 'duplicate_object';
        END IF;
        lo := CASE WHEN nullif(btrim(bands[i][c + 1]), '') IS NOT NULL
                   THEN segment_internal._parse_number(bands[i][c + 1], format('min_score "%%s" of band "%s"', bname)) END;
        hi := CASE WHEN nullif(btrim(bands[i][c + 2]), '') IS NOT NULL
                   THEN segment_internal._parse_number(bands[i][c + 2], format('max_score "%%s" of band "%s"', bname)) END;
        IF lo >= hi THEN
            RAISE EXCEPTION 'band "%" of scorecard "%" is empty', bname, scorecard
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('A band holds the scores s with min_score <= s < max_score; here min_score is %s and max_score %s.', lo, hi);
        END IF;
        r := numrange(lo, hi, '[)');
        FOR j IN 1 .. coalesce(array_length(names, 1), 0) LOOP
            IF ranges[j] && r THEN
                RAISE EXCEPTION 'bands "%" and "%" of scorecard "%" overlap', names[j], bname, scorecard
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = format('"%s" holds scores in %s and "%s" in %s (min_score included, max_score excluded).',
                                          names[j], ranges[j], bname, r),
                          HINT = 'Let each band start where another ends, e.g. [''low'', NULL, ''600''], [''high'', ''600'', NULL].';
            END IF;
        END LOOP;
        names := names || bname;
        ranges := ranges || r;
        name := bname;
        min_score := lo;
        max_score := hi;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION segment_internal._scorecard_definition(id int) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
               'subject', sub.name,
               'base', s.base,
               'description', s.description,
               'active', s.active,
               'items', (SELECT coalesce(jsonb_agg(jsonb_build_object('rule', i.rule, 'points', i.points)
                                                   ORDER BY i.position), '[]')
                           FROM segment.scorecard_item i WHERE i.scorecard_id = s.scorecard_id),
               'bands', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', b.name, 'min_score', b.min_score,
                                                                      'max_score', b.max_score)
                                                   ORDER BY b.min_score NULLS FIRST), '[]')
                           FROM segment.scorecard_band b WHERE b.scorecard_id = s.scorecard_id))
      FROM segment.scorecard s JOIN segment.subject sub USING (subject_id)
     WHERE s.scorecard_id = id
$$;

CREATE FUNCTION segment_internal._scorecard(scorecard name, for_update boolean DEFAULT false) RETURNS segment.scorecard
LANGUAGE plpgsql AS $$
DECLARE s segment.scorecard;
BEGIN
    IF for_update THEN
        SELECT * INTO s FROM segment.scorecard x WHERE x.name = scorecard FOR UPDATE;
    ELSE
        SELECT * INTO s FROM segment.scorecard x WHERE x.name = scorecard;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'scorecard "%" does not exist', scorecard USING ERRCODE = 'undefined_object';
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION segment_internal._check_base(scorecard name, base numeric) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF base IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric) THEN
        RAISE EXCEPTION 'base of scorecard "%" must be a finite number, not %', scorecard, base
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

CREATE FUNCTION segment.create_scorecard(subject name, scorecard name, base numeric, items text[],
                                         bands text[] DEFAULT NULL, description text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    rel regclass;
    item_defs segment.scorecard_item[];
    band_defs segment.scorecard_band[];
    id int;
BEGIN
    PERFORM segment_internal._check_name('scorecard', scorecard);
    PERFORM segment_internal._check_name_free('scorecard', scorecard);
    IF base IS NULL THEN
        RAISE EXCEPTION 'base of scorecard "%" must not be NULL', scorecard
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use 0 for a score that is the sum of the points alone.';
    END IF;
    PERFORM segment_internal._check_base(scorecard, base);
    SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
    -- validate everything before writing anything (no sequence value is used up)
    item_defs := ARRAY(SELECT ROW(0, i.ord, i.rule, i.points, i.columns, i.column_types)::segment.scorecard_item
                         FROM segment_internal._scorecard_items(rel, scorecard, items) i);
    band_defs := ARRAY(SELECT ROW(0, b.name, b.min_score, b.max_score)::segment.scorecard_band
                         FROM segment_internal._scorecard_bands(scorecard, coalesce(bands, '{}')) b);
    INSERT INTO segment.scorecard (subject_id, name, base, description, owner)
    VALUES (sid, scorecard, base, description, quote_ident(current_user)::regrole)
    RETURNING scorecard_id INTO id;
    INSERT INTO segment.scorecard_item (scorecard_id, position, rule, points, columns, column_types)
    SELECT id, d.position, d.rule, d.points, d.columns, d.column_types FROM unnest(item_defs) d;
    INSERT INTO segment.scorecard_band (scorecard_id, name, min_score, max_score)
    SELECT id, d.name, d.min_score, d.max_score FROM unnest(band_defs) d;
    INSERT INTO segment.definition_history (kind, object_id, name, action, new_definition)
    VALUES ('scorecard', id, scorecard, 'create', segment_internal._scorecard_definition(id));
    RETURN id;
END $$;
COMMENT ON FUNCTION segment.create_scorecard(name, name, numeric, text[], text[], text) IS
    'score = base + the points of every item whose rule is true; optional bands (name, min, max)';

CREATE FUNCTION segment.alter_scorecard(scorecard name, base numeric DEFAULT NULL,
                                        items text[] DEFAULT NULL, bands text[] DEFAULT NULL,
                                        description text DEFAULT NULL, active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.scorecard := segment_internal._scorecard(scorecard, true);
    old_def jsonb := segment_internal._scorecard_definition(old.scorecard_id);
    rel regclass;
    item_defs segment.scorecard_item[];
    band_defs segment.scorecard_band[];
BEGIN
    IF base IS NULL AND items IS NULL AND bands IS NULL AND description IS NULL AND active IS NULL THEN
        RAISE EXCEPTION 'nothing to change for scorecard "%"', scorecard
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass base, items, bands, description or active.';
    END IF;
    PERFORM segment_internal._check_base(scorecard, base);
    IF items IS NOT NULL THEN
        SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = old.subject_id;
        item_defs := ARRAY(SELECT ROW(old.scorecard_id, i.ord, i.rule, i.points, i.columns, i.column_types)::segment.scorecard_item
                             FROM segment_internal._scorecard_items(rel, scorecard, items) i);
    END IF;
    IF bands IS NOT NULL THEN
        band_defs := ARRAY(SELECT ROW(old.scorecard_id, b.name, b.min_score, b.max_score)::segment.scorecard_band
                             FROM segment_internal._scorecard_bands(scorecard, bands) b);
    END IF;
    IF items IS NOT NULL THEN
        DELETE FROM segment.scorecard_item i WHERE i.scorecard_id = old.scorecard_id;
        INSERT INTO segment.scorecard_item SELECT * FROM unnest(item_defs);
    END IF;
    IF bands IS NOT NULL THEN
        DELETE FROM segment.scorecard_band b WHERE b.scorecard_id = old.scorecard_id;
        INSERT INTO segment.scorecard_band SELECT * FROM unnest(band_defs);
    END IF;
    UPDATE segment.scorecard s
       SET base = coalesce(alter_scorecard.base, s.base),
           description = coalesce(alter_scorecard.description, s.description),
           active = coalesce(alter_scorecard.active, s.active),
           version = s.version + 1,
           updated_at = now(), updated_by = current_user,
           -- new items run as whoever wrote them
           owner = CASE WHEN alter_scorecard.items IS NULL THEN s.owner ELSE quote_ident(current_user)::regrole END
     WHERE s.scorecard_id = old.scorecard_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition, new_definition)
    VALUES ('scorecard', old.scorecard_id, scorecard, 'alter', old_def,
            segment_internal._scorecard_definition(old.scorecard_id));
END $$;

-- segment.drop_scorecard is in part 93 (what dropping a name reaches).

