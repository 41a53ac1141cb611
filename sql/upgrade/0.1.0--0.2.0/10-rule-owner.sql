-- Rule owners, evaluation as the owner, column privileges at definition,
-- pinned search_path and canonical rule text (issue 11, holes 1, 4, 5).
-- See docs/dba-guide.md#upgrade: review the owners after the update.

-- Every object with user-written code records the role it runs as. Rows
-- written by 0.1.0 get the author of their latest definition change when
-- that role still exists, else the extension's owner.
CREATE FUNCTION segment_internal._upgrade_owner(author name) RETURNS regrole
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT r.oid::regrole FROM pg_catalog.pg_roles r WHERE r.rolname = author),
                    (SELECT e.extowner::regrole FROM pg_catalog.pg_extension e WHERE e.extname = 'segment'))
$$;

ALTER TABLE segment.tag ADD COLUMN owner regrole;
UPDATE segment.tag t
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.tag_history h
                    WHERE h.tag_id = t.tag_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), t.updated_by));
ALTER TABLE segment.tag ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.segment ADD COLUMN owner regrole;
UPDATE segment.segment g
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.definition_history h
                    WHERE h.kind = 'segment' AND h.object_id = g.segment_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), g.updated_by));
ALTER TABLE segment.segment ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.scheme ADD COLUMN owner regrole;
UPDATE segment.scheme c
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.definition_history h
                    WHERE h.kind = 'scheme' AND h.object_id = c.scheme_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), c.updated_by));
ALTER TABLE segment.scheme ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.scorecard ADD COLUMN owner regrole;
UPDATE segment.scorecard c
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.definition_history h
                    WHERE h.kind = 'scorecard' AND h.object_id = c.scorecard_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), c.updated_by));
ALTER TABLE segment.scorecard ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.opportunity_rule ADD COLUMN owner regrole;
UPDATE segment.opportunity_rule r
   SET owner = segment_internal._upgrade_owner(
         coalesce((SELECT h.changed_by FROM segment.opportunity_rule_history h
                    WHERE h.rule_id = r.rule_id AND h.action IN ('create', 'alter')
                    ORDER BY h.history_id DESC LIMIT 1), r.updated_by));
ALTER TABLE segment.opportunity_rule ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

ALTER TABLE segment.event_rule ADD COLUMN owner regrole;
UPDATE segment.event_rule e SET owner = segment_internal._upgrade_owner(e.created_by);
ALTER TABLE segment.event_rule ALTER COLUMN owner SET NOT NULL,
    ALTER COLUMN owner SET DEFAULT quote_ident(current_user)::regrole;

DROP FUNCTION segment_internal._upgrade_owner(name);

-- The text to store for a rule: itself if it means the same under
-- search_path = pg_catalog, pg_temp, else deparsed with every object outside
-- pg_catalog schema-qualified (docs/dba-guide.md#rule-owners).
CREATE FUNCTION segment_internal._rule_canonical(relation regclass, rule text) RETURNS text
    AS 'MODULE_PATHNAME', 'segment_rule_canonical' LANGUAGE C STABLE STRICT;

-- Whether a stored goal ('goal') or event condition ('event') of an
-- opportunity rule is true for each row, evaluated as the rule's owner.
CREATE FUNCTION segment_internal._rule_matches(kind text, rule_id int, relation regclass, rows anyarray)
    RETURNS boolean[]
    AS 'MODULE_PATHNAME', 'segment_rule_matches' LANGUAGE C STABLE STRICT;

CREATE OR REPLACE FUNCTION segment.create_tag(subject name, tag name, rule text,
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

CREATE OR REPLACE FUNCTION segment.alter_tag(tag name, rule text DEFAULT NULL, description text DEFAULT NULL,
                                  active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.tag := segment_internal._tag(tag);
    rel regclass;
    cols name[] := old.columns;
BEGIN
    IF rule IS NOT NULL THEN
        IF old.rule IS NULL THEN
            RAISE EXCEPTION 'tag "%" is a manual tag', tag
                USING ERRCODE = 'wrong_object_type',
                      HINT = 'Manual tags have no rule; create a rule tag instead.';
        END IF;
        SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = old.subject_id;
        cols := segment_internal._rule_columns(rel, rule, format('tag "%s"', tag));
        rule := segment_internal._rule_canonical(rel, rule);
    END IF;
    IF rule IS NOT DISTINCT FROM NULL AND description IS NULL AND active IS NULL THEN
        RAISE EXCEPTION 'nothing to change for tag "%"', tag
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass rule, description or active.';
    END IF;
    UPDATE segment.tag t
       SET rule = coalesce(alter_tag.rule, t.rule),
           description = coalesce(alter_tag.description, t.description),
           active = coalesce(alter_tag.active, t.active),
           columns = cols,
           column_types = segment_internal._column_types(
               (SELECT s.relation FROM segment.subject s WHERE s.subject_id = old.subject_id), cols),
           version = t.version + 1,
           updated_at = now(), updated_by = current_user,
           -- a new rule runs as whoever wrote it
           owner = CASE WHEN alter_tag.rule IS NULL THEN t.owner ELSE quote_ident(current_user)::regrole END
     WHERE t.tag_id = old.tag_id;
    INSERT INTO segment.tag_history (tag_id, tag, action, old_rule, new_rule,
                                     old_description, new_description, old_active, new_active)
    VALUES (old.tag_id, tag, 'alter', old.rule, coalesce(rule, old.rule),
            old.description, coalesce(description, old.description),
            old.active, coalesce(active, old.active));
END $$;

CREATE OR REPLACE FUNCTION segment.create_segment(subject name, segment name, audience text,
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

CREATE OR REPLACE FUNCTION segment.alter_segment(segment name, audience text DEFAULT NULL,
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

-- Validates a bucket list against the subject's table; returns the rows to
-- store. Raises the rule's own error (with position and context) for a bad
-- rule.
CREATE OR REPLACE FUNCTION segment_internal._scheme_buckets(rel regclass, scheme name, buckets text[])
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

CREATE OR REPLACE FUNCTION segment.create_scheme(subject name, scheme name, buckets text[],
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

CREATE OR REPLACE FUNCTION segment.alter_scheme(scheme name, buckets text[] DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION segment_internal._scorecard_items(rel regclass, scorecard name, items text[])
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

CREATE OR REPLACE FUNCTION segment.create_scorecard(subject name, scorecard name, base numeric, items text[],
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

CREATE OR REPLACE FUNCTION segment.alter_scorecard(scorecard name, base numeric DEFAULT NULL,
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

-- Validates a rule as it would be after a create or alter and fills in the
-- derived columns (template_sql, template_columns, goal_columns, ...).
-- Raises on the first bad parameter; changes nothing.
CREATE OR REPLACE FUNCTION segment_internal._check_opportunity_rule(r segment.opportunity_rule, scorecard name)
RETURNS segment.opportunity_rule LANGUAGE plpgsql AS $$
DECLARE
    s segment.subject;
    what text := format('opportunity rule "%s"', r.name);
    t record;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    IF r.audience IS NULL OR btrim(r.audience) = '' THEN
        RAISE EXCEPTION 'the audience of % must not be empty', what
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'An audience combines tags, segments and scheme buckets, e.g. ''payroll and not has_wealth''.';
    END IF;
    PERFORM segment_internal._audience_check(s.name, r.audience);
    IF r.kind IS NULL OR r.kind NOT IN ('maintenance', 'mining') THEN
        RAISE EXCEPTION 'kind of % must be ''maintenance'' or ''mining'', got %', what, coalesce(quote_literal(r.kind), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'maintenance keeps existing business (a maturing deposit); mining surfaces a new need.';
    END IF;
    IF r.product IS NULL OR btrim(r.product) = '' THEN
        RAISE EXCEPTION 'product of % must not be empty', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF r.channel IS NULL OR btrim(r.channel) = '' THEN
        RAISE EXCEPTION 'channel of % must not be empty', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF r.priority IS NULL OR r.priority IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric) THEN
        RAISE EXCEPTION 'priority of % must be a finite number', what USING ERRCODE = 'invalid_parameter_value';
    END IF;
    r.priority_scorecard := NULL;
    IF scorecard IS NOT NULL THEN
        SELECT c.scorecard_id INTO r.priority_scorecard FROM segment.scorecard c
         WHERE c.name = scorecard AND c.subject_id = r.subject_id;
        IF r.priority_scorecard IS NULL THEN
            RAISE EXCEPTION 'scorecard "%" of subject "%" does not exist', scorecard, s.name
                USING ERRCODE = 'undefined_object',
                      HINT = 'priority_scorecard names a scorecard whose score ranks the candidates.';
        END IF;
    END IF;
    IF r.valid_days IS NULL OR r.valid_days < 1 OR r.valid_days > 3660 THEN
        RAISE EXCEPTION 'valid_days of % must be between 1 and 3660, got %', what, r.valid_days
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'valid_days is how many days a manager has to act, counting the day it is generated.';
    END IF;
    IF r.cooldown_days IS NULL OR r.cooldown_days < 0 OR r.cooldown_days > 3660 THEN
        RAISE EXCEPTION 'cooldown_days of % must be between 0 and 3660, got %', what, r.cooldown_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF r.holdout_pct IS NULL OR NOT (r.holdout_pct >= 0 AND r.holdout_pct <= 50) THEN
        RAISE EXCEPTION 'holdout_pct of % must be between 0 and 50, got %', what, r.holdout_pct
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'holdout_pct is the percentage of candidates kept as a control group.';
    END IF;
    IF r.assignment IS NULL OR r.assignment NOT IN ('owner', 'org', 'pool') THEN
        RAISE EXCEPTION 'assignment of % must be ''owner'', ''org'' or ''pool'', got %', what,
                        coalesce(quote_literal(r.assignment), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'owner: the customer''s manager, else the least-loaded manager of the org unit, else the pool; org: skip the owner; pool: unassigned.';
    END IF;
    IF r.assignment IN ('owner', 'org') THEN
        IF NOT EXISTS (SELECT 1 FROM segment.staff f WHERE f.subject_id = r.subject_id) THEN
            RAISE EXCEPTION 'assignment ''%'' of % needs the staff table of subject "%"', r.assignment, what, s.name
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Call segment.register_staff() first, or use assignment => ''pool''.';
        END IF;
        IF r.assignment = 'owner' AND s.owner_column IS NULL AND s.org_column IS NULL THEN
            RAISE EXCEPTION 'assignment ''owner'' of % needs an owner or org column on subject "%"', what, s.name
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Register the subject with owner_column and org_column, or use assignment => ''pool''.';
        END IF;
        IF r.assignment = 'org' AND s.org_column IS NULL THEN
            RAISE EXCEPTION 'assignment ''org'' of % needs an org column on subject "%"', what, s.name
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Register the subject with org_column, or use assignment => ''pool''.';
        END IF;
    END IF;
    IF r.capacity < 0 THEN
        RAISE EXCEPTION 'capacity of % must not be negative, got %', what, r.capacity
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'capacity is how many leads of this rule one manager gets per day; NULL: no limit of the rule.';
    END IF;
    r.goal := nullif(btrim(r.goal), '');
    r.goal_columns := '{}';
    IF r.goal IS NOT NULL THEN
        r.goal_columns := segment_internal._rule_columns(s.relation, r.goal, 'goal of ' || what);
        r.goal := segment_internal._rule_canonical(s.relation, r.goal);
    END IF;
    r.goal_column_types := segment_internal._column_types(s.relation, r.goal_columns);
    r.template := nullif(r.template, '');
    r.template_sql := NULL;
    r.template_columns := '{}';
    IF r.template IS NOT NULL THEN
        SELECT x.sql, x.columns INTO t FROM segment_internal._compile_template(s.relation, r.template, what) x;
        r.template_sql := t.sql;
        r.template_columns := t.columns;
        -- a template shows column values: only columns its author may read
        SELECT c.col INTO t FROM unnest(r.template_columns) AS c(col)
         WHERE NOT has_column_privilege(s.relation, c.col, 'SELECT') LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'permission denied for column "%" of table %, read by the template of %',
                            t.col, s.relation, what
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'A template may show only columns its author may read.',
                      HINT = format('Grant SELECT on the column (or the table) to role "%s".', current_user);
        END IF;
    END IF;
    RETURN r;
END $$;

CREATE OR REPLACE FUNCTION segment.create_opportunity_rule(
    subject name, name name, audience text, kind text, product text,
    channel text DEFAULT 'manager', priority numeric DEFAULT 0,
    priority_scorecard name DEFAULT NULL, template text DEFAULT NULL,
    valid_days int DEFAULT 7, cooldown_days int DEFAULT 30, holdout_pct numeric DEFAULT 0,
    goal text DEFAULT NULL, assignment text DEFAULT 'owner', capacity int DEFAULT NULL,
    description text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
BEGIN
    r.subject_id := segment_internal._subject_id(subject);
    PERFORM segment_internal._check_name('opportunity rule', name);
    PERFORM segment_internal._lock_definitions();
    IF EXISTS (SELECT 1 FROM segment.opportunity_rule x WHERE x.name = create_opportunity_rule.name) THEN
        RAISE EXCEPTION 'opportunity rule "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use segment.alter_opportunity_rule() to change it.';
    END IF;
    r.name := name; r.audience := audience; r.kind := kind; r.product := product;
    r.channel := channel; r.priority := priority; r.template := template;
    r.valid_days := valid_days; r.cooldown_days := cooldown_days; r.holdout_pct := holdout_pct;
    r.goal := goal; r.assignment := assignment; r.capacity := capacity;
    r.description := description;
    r := segment_internal._check_opportunity_rule(r, priority_scorecard);
    INSERT INTO segment.opportunity_rule
        (subject_id, name, audience, kind, product, channel, priority, priority_scorecard,
         template, template_sql, template_columns, valid_days, cooldown_days, holdout_pct,
         goal, goal_columns, goal_column_types, assignment, capacity, description, owner)
    VALUES (r.subject_id, r.name, r.audience, r.kind, r.product, r.channel, r.priority,
            r.priority_scorecard, r.template, r.template_sql, r.template_columns, r.valid_days,
            r.cooldown_days, r.holdout_pct, r.goal, r.goal_columns, r.goal_column_types,
            r.assignment, r.capacity, r.description, quote_ident(current_user)::regrole)
    RETURNING * INTO r;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action, new_definition)
    VALUES (r.rule_id, r.name, r.version, 'create', segment_internal._opportunity_rule_definition(r));
    RETURN r.rule_id;
END $$;

-- Every parameter NULL keeps the current value; '' removes a template or goal.
CREATE OR REPLACE FUNCTION segment.alter_opportunity_rule(
    name name, audience text DEFAULT NULL, kind text DEFAULT NULL, product text DEFAULT NULL,
    channel text DEFAULT NULL, priority numeric DEFAULT NULL,
    priority_scorecard name DEFAULT NULL, template text DEFAULT NULL,
    valid_days int DEFAULT NULL, cooldown_days int DEFAULT NULL, holdout_pct numeric DEFAULT NULL,
    goal text DEFAULT NULL, assignment text DEFAULT NULL, capacity int DEFAULT NULL,
    description text DEFAULT NULL, active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.opportunity_rule;
    r segment.opportunity_rule;
    card name;
BEGIN
    PERFORM segment_internal._lock_definitions();
    old := segment_internal._opportunity_rule(name, true);
    r := old;
    r.audience := coalesce(audience, r.audience);
    r.kind := coalesce(kind, r.kind);
    r.product := coalesce(product, r.product);
    r.channel := coalesce(channel, r.channel);
    r.priority := coalesce(priority, r.priority);
    r.template := coalesce(template, r.template);
    r.valid_days := coalesce(valid_days, r.valid_days);
    r.cooldown_days := coalesce(cooldown_days, r.cooldown_days);
    r.holdout_pct := coalesce(holdout_pct, r.holdout_pct);
    r.goal := coalesce(goal, r.goal);
    r.assignment := coalesce(assignment, r.assignment);
    r.capacity := coalesce(capacity, r.capacity);
    r.description := coalesce(description, r.description);
    r.active := coalesce(active, r.active);
    card := coalesce(priority_scorecard,
                     (SELECT c.name FROM segment.scorecard c WHERE c.scorecard_id = old.priority_scorecard));
    IF priority_scorecard = '' THEN
        card := NULL;
    END IF;
    r := segment_internal._check_opportunity_rule(r, card);
    IF segment_internal._opportunity_rule_definition(r) = segment_internal._opportunity_rule_definition(old) THEN
        RAISE EXCEPTION 'nothing to change for opportunity rule "%"', name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass at least one parameter with a new value.';
    END IF;
    UPDATE segment.opportunity_rule x
       SET audience = r.audience, kind = r.kind, product = r.product, channel = r.channel,
           priority = r.priority, priority_scorecard = r.priority_scorecard,
           template = r.template, template_sql = r.template_sql,
           template_columns = r.template_columns, valid_days = r.valid_days,
           cooldown_days = r.cooldown_days, holdout_pct = r.holdout_pct, goal = r.goal,
           goal_columns = r.goal_columns, goal_column_types = r.goal_column_types,
           assignment = r.assignment, capacity = r.capacity, description = r.description,
           active = r.active, version = x.version + 1,
           updated_at = now(), updated_by = current_user,
           -- a new goal or template is run as whoever wrote it
           owner = CASE WHEN r.goal IS DISTINCT FROM old.goal OR r.template IS DISTINCT FROM old.template
                        THEN quote_ident(current_user)::regrole ELSE x.owner END
     WHERE x.rule_id = old.rule_id
    RETURNING * INTO r;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action,
                                                  old_definition, new_definition)
    VALUES (r.rule_id, r.name, r.version, 'alter', segment_internal._opportunity_rule_definition(old),
            segment_internal._opportunity_rule_definition(r));
END $$;

-- For every opportunity whose window has closed (valid_until < as_of) and
-- that has no outcome yet, treatment and control alike: goal_met = the
-- rule's goal IS TRUE on the customer's current row (false when the row is
-- gone), evaluated with segment.as_of() = as_of. A rule without a goal
-- takes the manager's word: goal_met = converted IS TRUE for treatment,
-- NULL for control (nobody reports on control customers). Each opportunity
-- is evaluated once; a rerun finds nothing left to do.
CREATE OR REPLACE FUNCTION segment.evaluate_outcomes(as_of date DEFAULT current_date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint;
    total bigint := 0;
    old_as_of text;
    key_expr text;
    opp_key text;
    msg text;
    state text;
BEGIN
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date, not %', coalesce(as_of::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    old_as_of := current_setting('segment.as_of', true);
    PERFORM set_config('segment.as_of', to_char(as_of, 'YYYY-MM-DD'), true);

    FOR r IN
        SELECT ru.rule_id, ru.name, ru.goal, s.relation, s.key_column, s.key_type,
               segment_internal._snapshot_filter(s.subject_id, 't') AS snapshot_filter
          FROM segment.opportunity_rule ru
          JOIN segment.subject s ON s.subject_id = ru.subject_id
         WHERE EXISTS (SELECT 1 FROM segment.opportunity o
                        WHERE o.rule_id = ru.rule_id AND o.valid_until < evaluate_outcomes.as_of
                          AND o.evaluated_at IS NULL)
         ORDER BY ru.rule_id
    LOOP
        IF r.goal IS NULL THEN
            WITH due AS (
                SELECT o.opportunity_id FROM segment.opportunity o
                 WHERE o.rule_id = r.rule_id AND o.valid_until < evaluate_outcomes.as_of
                   AND o.evaluated_at IS NULL
                 ORDER BY o.opportunity_id
                   FOR UPDATE
            )
            UPDATE segment.opportunity o
               SET goal_met = CASE WHEN o.is_control THEN NULL ELSE o.converted IS TRUE END,
                   evaluated_at = now()
              FROM due WHERE o.opportunity_id = due.opportunity_id;
            GET DIAGNOSTICS n = ROW_COUNT;
        ELSE
            -- Integer keys are the member ids; other keys compare as text.
            IF r.key_type IN ('int4'::regtype, 'int8'::regtype) THEN
                key_expr := format('t.%I', r.key_column);
                opp_key := 'member_id';
            ELSIF r.key_type = 'text'::regtype THEN
                key_expr := format('t.%I', r.key_column);
                opp_key := 'key';
            ELSE
                key_expr := format('t.%I::text', r.key_column);
                opp_key := 'key';
            END IF;
            -- The goal runs as its owner (segment_internal._rule_matches) over the
            -- rows of the due customers, which we read with our own rights.
            BEGIN
                EXECUTE format($q$
                    WITH due AS (
                        SELECT o.opportunity_id, o.%1$I AS k FROM segment.opportunity o
                         WHERE o.rule_id = $1 AND o.valid_until < $2 AND o.evaluated_at IS NULL
                         ORDER BY o.opportunity_id
                           FOR UPDATE
                    ), due_rows AS (
                        SELECT array_agg(%2$s) AS keys, array_agg(t) AS rows
                          FROM %3$s t
                         WHERE %2$s IN (SELECT due.k FROM due)%5$s
                    ), met AS (
                        SELECT u.k, u.met
                          FROM due_rows d,
                               unnest(d.keys, segment_internal._rule_matches('goal', $1, %4$L::regclass, d.rows)) AS u(k, met)
                    )
                    UPDATE segment.opportunity o
                       SET goal_met = coalesce(met.met, false), evaluated_at = now()
                      FROM due LEFT JOIN met ON met.k = due.k
                     WHERE o.opportunity_id = due.opportunity_id$q$,
                    opp_key, key_expr, r.relation, r.relation::oid, r.snapshot_filter)
                USING r.rule_id, as_of;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
                RAISE EXCEPTION 'could not evaluate the goal of opportunity rule "%": %', r.name, msg
                    USING ERRCODE = state,
                          DETAIL = format('Goal: %s', r.goal),
                          HINT = 'Fix the goal with segment.alter_opportunity_rule(); nothing was evaluated.';
            END;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;
        total := total + n;
    END LOOP;

    PERFORM set_config('segment.as_of', coalesce(old_as_of, ''), true);
    RETURN total;
END $$;

-- The trigger of every event rule: TG_ARGV[0] is the rule id; the inserted
-- rows are the transition table segment_new_events.
