-- segment install script (assembled by the Makefile from sql/install/*.sql in name order).
\echo Use "CREATE EXTENSION segment" to load this file. \quit
-- segment install script, part 10: the catalog.
-- Definitions (subjects, tags, manual tags, key map, history, run log) are
-- registered with pg_extension_config_dump so pg_dump keeps them; computed
-- state (member sets) is not dumped: a refresh after restore rebuilds it.

-- A registered wide table. Integer keys are their own member ids; text keys
-- get dense ids from segment.keymap.
CREATE TABLE segment.subject (
    subject_id   serial PRIMARY KEY,
    name         name NOT NULL UNIQUE,
    relation     regclass NOT NULL,
    key_column   name NOT NULL,
    key_type     regtype NOT NULL,
    org_column   name,
    owner_column name,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   name NOT NULL DEFAULT current_user,
    CHECK (key_type IN ('int4'::regtype, 'int8'::regtype, 'text'::regtype, 'varchar'::regtype))
);

-- A tag: a rule over the subject's row (rule is null for a manual tag).
-- Tag names are global so that alter_tag/drop_tag need only the name.
CREATE TABLE segment.tag (
    tag_id      serial PRIMARY KEY,
    subject_id  int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    name        name NOT NULL UNIQUE,
    rule        text,
    category    text,
    description text,
    active      boolean NOT NULL DEFAULT true,
    columns     name[] NOT NULL DEFAULT '{}',   -- columns the rule reads ...
    column_types regtype[] NOT NULL DEFAULT '{}', -- ... and their types when it was written
    version     int NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  name NOT NULL DEFAULT current_user,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  name NOT NULL DEFAULT current_user
);
CREATE INDEX ON segment.tag (subject_id);

-- Every definition change, kept forever: who, when, old and new.
CREATE TABLE segment.tag_history (
    history_id      bigserial PRIMARY KEY,
    tag_id          int NOT NULL,
    tag             name NOT NULL,
    action          text NOT NULL CHECK (action IN ('create', 'alter', 'drop')),
    changed_at      timestamptz NOT NULL DEFAULT now(),
    changed_by      name NOT NULL DEFAULT current_user,
    old_rule        text,
    new_rule        text,
    old_description text,
    new_description text,
    old_active      boolean,
    new_active      boolean
);
CREATE INDEX ON segment.tag_history (tag_id);

-- Dense member ids for subjects keyed by text.
CREATE TABLE segment.keymap (
    subject_id int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    key        text NOT NULL,
    member_id  int8 NOT NULL,
    PRIMARY KEY (subject_id, key),
    UNIQUE (subject_id, member_id)
);

-- Manual tags set by staff; an expired row stops counting at read time.
CREATE TABLE segment.manual_tag (
    tag_id     int NOT NULL REFERENCES segment.tag ON DELETE CASCADE,
    key        text NOT NULL,
    member_id  int8 NOT NULL,
    expires_at timestamptz,
    set_at     timestamptz NOT NULL DEFAULT now(),
    set_by     name NOT NULL DEFAULT current_user,
    PRIMARY KEY (tag_id, member_id)
);

-- One row per refresh of a subject.
CREATE TABLE segment.run (
    run_id      bigserial PRIMARY KEY,
    subject_id  int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    as_of       date NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    rows_scanned bigint,
    tags        int,
    error       text,
    run_by      name NOT NULL DEFAULT current_user
);
CREATE INDEX ON segment.run (subject_id, started_at);

SELECT pg_catalog.pg_extension_config_dump('segment.subject', '');
SELECT pg_catalog.pg_extension_config_dump('segment.subject_subject_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.tag', '');
SELECT pg_catalog.pg_extension_config_dump('segment.tag_tag_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.tag_history', '');
SELECT pg_catalog.pg_extension_config_dump('segment.tag_history_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.keymap', '');
SELECT pg_catalog.pg_extension_config_dump('segment.manual_tag', '');
SELECT pg_catalog.pg_extension_config_dump('segment.run', '');
SELECT pg_catalog.pg_extension_config_dump('segment.run_run_id_seq', '');
-- segment install script, part 20: the member set type.
-- segment.memberset is a set of member ids (integers 0..4294967295) stored
-- as a CRoaring portable serialization. Text form: {1,2,5}. See
-- docs/reference-memberset.md.

CREATE TYPE segment.memberset;

CREATE FUNCTION segment.memberset_in(cstring) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_out(segment.memberset) RETURNS cstring
    AS 'MODULE_PATHNAME', 'memberset_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_recv(internal) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_send(segment.memberset) RETURNS bytea
    AS 'MODULE_PATHNAME', 'memberset_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Stored out of line without compression: the portable format is already
-- compact, and skipping pglz keeps reads fast.
CREATE TYPE segment.memberset (
    INPUT = segment.memberset_in,
    OUTPUT = segment.memberset_out,
    RECEIVE = segment.memberset_recv,
    SEND = segment.memberset_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = int4,
    STORAGE = external
);
COMMENT ON TYPE segment.memberset IS
    'set of member ids 0..4294967295 (CRoaring bitmap); text form {1,2,5}';

-- Set algebra -----------------------------------------------------------

CREATE FUNCTION segment.memberset_and(segment.memberset, segment.memberset) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_and' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_or(segment.memberset, segment.memberset) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_or' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_andnot(segment.memberset, segment.memberset) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_andnot' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_eq(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_ne(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_contains(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_contains' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_contained(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_contained' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_contains_member(segment.memberset, int8) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_contains_member' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_member_contained(int8, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_member_contained' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_overlaps(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_overlaps' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR segment.& (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_and, COMMUTATOR = OPERATOR(segment.&));
CREATE OPERATOR segment.| (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_or, COMMUTATOR = OPERATOR(segment.|));
CREATE OPERATOR segment.- (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_andnot);
CREATE OPERATOR segment.= (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_eq,
    COMMUTATOR = OPERATOR(segment.=), NEGATOR = OPERATOR(segment.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR segment.<> (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_ne,
    COMMUTATOR = OPERATOR(segment.<>), NEGATOR = OPERATOR(segment.=),
    RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR segment.@> (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_contains, COMMUTATOR = OPERATOR(segment.<@),
    RESTRICT = contsel, JOIN = contjoinsel);
CREATE OPERATOR segment.<@ (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_contained, COMMUTATOR = OPERATOR(segment.@>),
    RESTRICT = contsel, JOIN = contjoinsel);
CREATE OPERATOR segment.@> (
    LEFTARG = segment.memberset, RIGHTARG = int8,
    FUNCTION = segment.memberset_contains_member, COMMUTATOR = OPERATOR(segment.<@),
    RESTRICT = contsel, JOIN = contjoinsel);
CREATE OPERATOR segment.<@ (
    LEFTARG = int8, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_member_contained, COMMUTATOR = OPERATOR(segment.@>),
    RESTRICT = contsel, JOIN = contjoinsel);
CREATE OPERATOR segment.&& (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_overlaps, COMMUTATOR = OPERATOR(segment.&&),
    RESTRICT = areasel, JOIN = areajoinsel);

-- Functions -------------------------------------------------------------

CREATE FUNCTION segment.cardinality(segment.memberset) RETURNS int8
    AS 'MODULE_PATHNAME', 'memberset_cardinality' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment.cardinality(segment.memberset) IS 'number of members';
CREATE OPERATOR segment.# (RIGHTARG = segment.memberset, FUNCTION = segment.cardinality);

CREATE FUNCTION segment.is_empty(segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_is_empty' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION segment.member_ids(segment.memberset) RETURNS SETOF int8
    AS 'MODULE_PATHNAME', 'memberset_member_ids' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    ROWS 1000;
COMMENT ON FUNCTION segment.member_ids(segment.memberset) IS 'the member ids, ascending';

CREATE FUNCTION segment.memberset(int8[]) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_from_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.to_array(segment.memberset) RETURNS int8[]
    AS 'MODULE_PATHNAME', 'memberset_to_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE CAST (int8[] AS segment.memberset) WITH FUNCTION segment.memberset(int8[]);
CREATE CAST (segment.memberset AS int8[]) WITH FUNCTION segment.to_array(segment.memberset);

CREATE FUNCTION segment.memberset_stats(segment.memberset,
    OUT cardinality int8, OUT containers int4, OUT array_containers int4,
    OUT bitset_containers int4, OUT run_containers int4, OUT bytes int8)
    AS 'MODULE_PATHNAME', 'memberset_stats' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment.memberset_stats(segment.memberset) IS
    'cardinality, container make-up and stored size of a member set';

-- Aggregates --------------------------------------------------------------

CREATE FUNCTION segment.memberset_agg_trans(internal, int8) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_union_trans(internal, segment.memberset) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_union_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_intersect_trans(internal, segment.memberset) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_intersect_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_union_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_union_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_intersect_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_intersect_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_agg_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'memberset_agg_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_agg_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_agg_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_agg_final(internal) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_agg_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE segment.memberset_agg(int8) (
    SFUNC = segment.memberset_agg_trans, STYPE = internal,
    FINALFUNC = segment.memberset_agg_final,
    COMBINEFUNC = segment.memberset_union_combine,
    SERIALFUNC = segment.memberset_agg_serialize,
    DESERIALFUNC = segment.memberset_agg_deserialize,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment.memberset_agg(int8) IS 'the set of the (non-null) input ids';

CREATE AGGREGATE segment.union_agg(segment.memberset) (
    SFUNC = segment.memberset_union_trans, STYPE = internal,
    FINALFUNC = segment.memberset_agg_final,
    COMBINEFUNC = segment.memberset_union_combine,
    SERIALFUNC = segment.memberset_agg_serialize,
    DESERIALFUNC = segment.memberset_agg_deserialize,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment.union_agg(segment.memberset) IS 'union of the (non-null) input sets';

CREATE AGGREGATE segment.intersect_agg(segment.memberset) (
    SFUNC = segment.memberset_intersect_trans, STYPE = internal,
    FINALFUNC = segment.memberset_agg_final,
    COMBINEFUNC = segment.memberset_intersect_combine,
    SERIALFUNC = segment.memberset_agg_serialize,
    DESERIALFUNC = segment.memberset_agg_deserialize,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment.intersect_agg(segment.memberset) IS 'intersection of the (non-null) input sets';
-- segment install script, part 30: computed state. Not dumped: a refresh
-- rebuilds it. Readers see the previous row until the refresh commits.

CREATE TABLE segment.subject_state (
    subject_id   int PRIMARY KEY REFERENCES segment.subject ON DELETE CASCADE,
    universe     segment.memberset NOT NULL,   -- every row seen by the last refresh
    member_count bigint NOT NULL,
    as_of        date NOT NULL,
    refreshed_at timestamptz NOT NULL,
    run_id       bigint NOT NULL
);

CREATE TABLE segment.tag_state (
    tag_id       int PRIMARY KEY REFERENCES segment.tag ON DELETE CASCADE,
    members      segment.memberset NOT NULL,
    member_count bigint NOT NULL,
    entered      bigint NOT NULL,
    exited       bigint NOT NULL,
    as_of        date NOT NULL,
    refreshed_at timestamptz NOT NULL,
    run_id       bigint NOT NULL
);
-- segment install script, part 40: reading audiences and tags.
-- An audience is a small language over tag names: and, or, not,
-- parentheses (docs/audiences.md). These functions read the member sets
-- left by the last refresh plus unexpired manual tags; they never scan the
-- subject's table. They query the catalog through SPI, hence PARALLEL
-- RESTRICTED.

CREATE FUNCTION segment.count(subject name, audience text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'segment_count' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.count(name, text) IS 'number of members of an audience';

CREATE FUNCTION segment.members(subject name, audience text) RETURNS SETOF bigint
    AS 'MODULE_PATHNAME', 'segment_members' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 10000;
COMMENT ON FUNCTION segment.members(name, text) IS
    'keys of the members of an audience, ascending (integer-keyed subjects)';

CREATE FUNCTION segment.members_text(subject name, audience text) RETURNS SETOF text
    AS 'MODULE_PATHNAME', 'segment_members_text' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 10000;
COMMENT ON FUNCTION segment.members_text(name, text) IS
    'keys of the members of an audience as text, in member-id order (any subject)';

CREATE FUNCTION segment.audience(subject name, audience text) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'segment_audience' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.audience(name, text) IS
    'the member set of an audience, e.g. to keep a snapshot in a table';

CREATE FUNCTION segment.keys(subject name, set segment.memberset) RETURNS SETOF text
    AS 'MODULE_PATHNAME', 'segment_keys' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 10000;
COMMENT ON FUNCTION segment.keys(name, segment.memberset) IS
    'the keys (as text) of the members of a member set, in member-id order';

CREATE FUNCTION segment.has_tag(subject name, key bigint, tag name) RETURNS boolean
    AS 'MODULE_PATHNAME', 'segment_has_tag_int8' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION segment.has_tag(subject name, key text, tag name) RETURNS boolean
    AS 'MODULE_PATHNAME', 'segment_has_tag_text' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.has_tag(name, bigint, name) IS 'whether the customer has the tag now';
COMMENT ON FUNCTION segment.has_tag(name, text, name) IS 'whether the customer has the tag now';

CREATE FUNCTION segment.tags(subject name, key bigint) RETURNS text[]
    AS 'MODULE_PATHNAME', 'segment_tags_int8' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION segment.tags(subject name, key text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'segment_tags_text' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.tags(name, bigint) IS 'sorted names of the active tags the customer has now';
COMMENT ON FUNCTION segment.tags(name, text) IS 'sorted names of the active tags the customer has now';
-- segment install script, part 50: subjects and tags (definitions).
-- Orchestration is PL/pgSQL; rule analysis is C (segment._rule_columns).

CREATE FUNCTION segment.as_of() RETURNS date
    AS 'MODULE_PATHNAME', 'segment_as_of' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.as_of() IS
    'Evaluation date of rules: the refresh''s as_of inside a refresh, else the GUC segment.as_of, else current_date';

-- Validates a rule against a table; returns the columns it reads.
CREATE FUNCTION segment._rule_columns(relation regclass, rule text, what text DEFAULT NULL)
    RETURNS name[]
    AS 'MODULE_PATHNAME', 'segment_rule_columns' LANGUAGE C STABLE;

-- Current types of a table's columns, in the order given (NULL where missing).
CREATE FUNCTION segment._column_types(relation regclass, cols name[]) RETURNS regtype[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(a.atttypid::regtype ORDER BY c.n), '{}')
      FROM unnest(cols) WITH ORDINALITY AS c(col, n)
      LEFT JOIN pg_catalog.pg_attribute a
        ON a.attrelid = relation AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- Names usable in audiences: identifier-like, no keywords of the audience language.
CREATE FUNCTION segment._check_name(kind text, n name) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF n IS NULL OR n !~ '^[A-Za-z_\u0080-\uFFFF][A-Za-z0-9_\u0080-\uFFFF]*$' THEN
        RAISE EXCEPTION 'invalid % name "%"', kind, n
            USING ERRCODE = 'invalid_name',
                  HINT = 'Use letters, digits and underscores, starting with a letter or underscore.';
    END IF;
    IF lower(n) IN ('and', 'or', 'not') THEN
        RAISE EXCEPTION 'invalid % name "%"', kind, n
            USING ERRCODE = 'invalid_name',
                  DETAIL = 'and, or and not are keywords of the audience language.';
    END IF;
END $$;

CREATE FUNCTION segment._subject_id(subject name) RETURNS int
LANGUAGE plpgsql STABLE AS $$
DECLARE id int;
BEGIN
    SELECT s.subject_id INTO id FROM segment.subject s WHERE s.name = subject;
    IF id IS NULL THEN
        RAISE EXCEPTION 'subject "%" is not registered', subject
            USING ERRCODE = 'undefined_object',
                  HINT = 'Register it with segment.register_subject(); registered subjects are listed in segment.subject.';
    END IF;
    RETURN id;
END $$;

CREATE FUNCTION segment.register_subject(subject name, relation regclass, key_column name,
                                         org_column name DEFAULT NULL,
                                         owner_column name DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    kind char;
    ktype regtype;
    col name;
    id int;
BEGIN
    PERFORM segment._check_name('subject', subject);
    IF relation IS NULL OR key_column IS NULL THEN
        RAISE EXCEPTION 'relation and key_column must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT 1 FROM segment.subject s WHERE s.name = subject) THEN
        RAISE EXCEPTION 'subject "%" already exists', subject USING ERRCODE = 'duplicate_object';
    END IF;
    IF NOT has_table_privilege(relation, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', relation
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A subject''s rules read every row: its table must be readable by you.';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = relation;
    IF kind NOT IN ('r', 'm') THEN
        RAISE EXCEPTION '"%" is not a table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'A subject is an ordinary table or materialized view; partitioned tables are not supported yet.';
    END IF;
    SELECT a.atttypid::regtype INTO ktype FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF ktype IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', key_column, relation
            USING ERRCODE = 'undefined_column';
    END IF;
    IF ktype NOT IN ('int4'::regtype, 'int8'::regtype, 'text'::regtype, 'varchar'::regtype) THEN
        RAISE EXCEPTION 'key column "%" has type %, not integer, bigint or text', key_column, ktype
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Register the subject on a column of type integer, bigint, text or varchar.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = relation AND i.indisunique AND i.indnkeyatts = 1
                      AND i.indpred IS NULL AND i.indexprs IS NULL
                      AND i.indkey[0] = (SELECT a.attnum FROM pg_attribute a
                                          WHERE a.attrelid = relation AND a.attname = key_column)) THEN
        RAISE EXCEPTION 'key column "%" of "%" is not unique', key_column, relation
            USING ERRCODE = 'invalid_column_reference',
                  HINT = 'Add a primary key or unique index on the key column.';
    END IF;
    FOREACH col IN ARRAY ARRAY[org_column, owner_column] LOOP
        IF col IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_attribute a
             WHERE a.attrelid = relation AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, relation
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    INSERT INTO segment.subject (name, relation, key_column, key_type, org_column, owner_column)
    VALUES (subject, relation, key_column, ktype, org_column, owner_column)
    RETURNING subject_id INTO id;
    RETURN id;
END $$;

CREATE FUNCTION segment.unregister_subject(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE id int := segment._subject_id(subject);
BEGIN
    INSERT INTO segment.tag_history (tag_id, tag, action, old_rule, old_description, old_active)
    SELECT t.tag_id, t.name, 'drop', t.rule, t.description, t.active
      FROM segment.tag t WHERE t.subject_id = id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    SELECT 'scheme', m.scheme_id, m.name, 'drop', segment._scheme_definition(m.scheme_id)
      FROM segment.scheme m WHERE m.subject_id = id ORDER BY m.scheme_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    SELECT 'scorecard', c.scorecard_id, c.name, 'drop', segment._scorecard_definition(c.scorecard_id)
      FROM segment.scorecard c WHERE c.subject_id = id ORDER BY c.scorecard_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    SELECT 'segment', g.segment_id, g.name, 'drop', segment._segment_definition(g)
      FROM segment.segment g WHERE g.subject_id = id;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action, old_definition)
    SELECT r.rule_id, r.name, r.version, 'drop', segment._opportunity_rule_definition(r)
      FROM segment.opportunity_rule r WHERE r.subject_id = id ORDER BY r.rule_id;
    -- opportunities have no foreign key (part 80): delete them here
    DELETE FROM segment.opportunity o WHERE o.subject_id = id;
    PERFORM segment._live_drop_triggers(id);   -- part 86
    DELETE FROM segment.subject s WHERE s.subject_id = id;
END $$;

CREATE FUNCTION segment.create_tag(subject name, tag name, rule text,
                                   category text DEFAULT NULL, description text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment._subject_id(subject);
    rel regclass;
    cols name[] := '{}';
    id int;
BEGIN
    PERFORM segment._check_name('tag', tag);
    IF EXISTS (SELECT 1 FROM segment.tag t WHERE t.name = tag) THEN
        RAISE EXCEPTION 'tag "%" already exists', tag
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Tag names are unique across subjects; use segment.alter_tag() to change it.';
    END IF;
    IF rule IS NOT NULL THEN
        SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
        cols := segment._rule_columns(rel, rule, format('tag "%s"', tag));
    END IF;
    PERFORM segment._check_name_free('tag', tag);   -- one namespace with segments, schemes, scorecards
    INSERT INTO segment.tag (subject_id, name, rule, category, description, columns, column_types)
    VALUES (sid, tag, rule, category, description, cols, segment._column_types(rel, cols))
    RETURNING tag_id INTO id;
    INSERT INTO segment.tag_history (tag_id, tag, action, new_rule, new_description, new_active)
    VALUES (id, tag, 'create', rule, description, true);
    RETURN id;
END $$;

CREATE FUNCTION segment._tag(tag name) RETURNS segment.tag
LANGUAGE plpgsql STABLE AS $$
DECLARE t segment.tag;
BEGIN
    SELECT * INTO t FROM segment.tag x WHERE x.name = tag;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tag "%" does not exist', tag USING ERRCODE = 'undefined_object';
    END IF;
    RETURN t;
END $$;

CREATE FUNCTION segment.alter_tag(tag name, rule text DEFAULT NULL, description text DEFAULT NULL,
                                  active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.tag := segment._tag(tag);
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
        cols := segment._rule_columns(rel, rule, format('tag "%s"', tag));
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
           column_types = segment._column_types(
               (SELECT s.relation FROM segment.subject s WHERE s.subject_id = old.subject_id), cols),
           version = t.version + 1,
           updated_at = now(), updated_by = current_user
     WHERE t.tag_id = old.tag_id;
    INSERT INTO segment.tag_history (tag_id, tag, action, old_rule, new_rule,
                                     old_description, new_description, old_active, new_active)
    VALUES (old.tag_id, tag, 'alter', old.rule, coalesce(rule, old.rule),
            old.description, coalesce(description, old.description),
            old.active, coalesce(active, old.active));
END $$;

CREATE FUNCTION segment.drop_tag(tag name, "cascade" boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE old segment.tag := segment._tag(tag);
BEGIN
    -- refused while segments use the tag, unless cascade (72-segments.sql)
    PERFORM segment._drop_segments_using('tag', tag, "cascade");
    DELETE FROM segment.tag t WHERE t.tag_id = old.tag_id;
    INSERT INTO segment.tag_history (tag_id, tag, action, old_rule, old_description, old_active)
    VALUES (old.tag_id, tag, 'drop', old.rule, old.description, old.active);
END $$;

-- Member id of a key; for text keys, assigns one if create (under the subject lock).
CREATE FUNCTION segment._member_id(sid int, key text, "create" boolean) RETURNS int8
LANGUAGE plpgsql AS $$
DECLARE
    ktype regtype;
    id int8;
BEGIN
    SELECT s.key_type INTO ktype FROM segment.subject s WHERE s.subject_id = sid;
    IF ktype IN ('int4'::regtype, 'int8'::regtype) THEN
        BEGIN
            id := key::int8;
        EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            RAISE EXCEPTION 'invalid key "%" for a subject with % keys', key, ktype
                USING ERRCODE = 'invalid_text_representation';
        END;
        IF id < 0 OR id > 4294967295 THEN
            RAISE EXCEPTION 'key % is outside the range of member ids', id
                USING ERRCODE = 'numeric_value_out_of_range',
                      DETAIL = 'Integer keys are used as member ids and must be between 0 and 4294967295.';
        END IF;
        RETURN id;
    END IF;
    SELECT m.member_id INTO id FROM segment.keymap m WHERE m.subject_id = sid AND m.key = _member_id.key;
    IF id IS NULL AND "create" THEN
        PERFORM pg_advisory_xact_lock(24173, sid);
        SELECT m.member_id INTO id FROM segment.keymap m WHERE m.subject_id = sid AND m.key = _member_id.key;
        IF id IS NULL THEN
            SELECT coalesce(max(m.member_id) + 1, 0) INTO id FROM segment.keymap m WHERE m.subject_id = sid;
            INSERT INTO segment.keymap (subject_id, key, member_id) VALUES (sid, key, id);
        END IF;
    END IF;
    RETURN id;
END $$;

CREATE FUNCTION segment.set_tag(subject name, key text, tag name, "on" boolean DEFAULT true,
                                expires_at timestamptz DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment._subject_id(subject);
    t segment.tag := segment._tag(tag);
    mid int8;
BEGIN
    IF t.subject_id <> sid THEN
        RAISE EXCEPTION 'tag "%" does not belong to subject "%"', tag, subject
            USING ERRCODE = 'undefined_object';
    END IF;
    IF t.rule IS NOT NULL THEN
        RAISE EXCEPTION 'tag "%" is a rule tag', tag
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = 'Its members come from its rule at each refresh.',
                  HINT = 'Create a manual tag (rule NULL) with segment.create_tag() and set that.';
    END IF;
    IF key IS NULL THEN
        RAISE EXCEPTION 'key must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF "on" IS NULL THEN
        RAISE EXCEPTION '"on" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF expires_at IS NOT NULL AND expires_at <= now() AND "on" THEN
        RAISE EXCEPTION 'expires_at % is not in the future', expires_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    mid := segment._member_id(sid, key, "on");
    IF "on" THEN
        INSERT INTO segment.manual_tag AS m (tag_id, key, member_id, expires_at)
        VALUES (t.tag_id, key, mid, set_tag.expires_at)
        ON CONFLICT (tag_id, member_id) DO UPDATE
           SET expires_at = excluded.expires_at, set_at = now(), set_by = current_user;
    ELSIF mid IS NOT NULL THEN
        DELETE FROM segment.manual_tag m WHERE m.tag_id = t.tag_id AND m.member_id = mid;
    END IF;
END $$;

CREATE FUNCTION segment.set_tag(subject name, key bigint, tag name, "on" boolean DEFAULT true,
                                expires_at timestamptz DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
    SELECT segment.set_tag(subject, key::text, tag, "on", expires_at)
$$;
-- segment install script, part 60: refresh, explain, and the guard that
-- keeps subject tables and the rules over them consistent.

CREATE FUNCTION segment.refresh(subject name DEFAULT NULL, as_of date DEFAULT current_date)
RETURNS TABLE (subject name, tag name, members bigint, entered bigint, exited bigint)
    AS 'MODULE_PATHNAME', 'segment_refresh' LANGUAGE C VOLATILE CALLED ON NULL INPUT;

CREATE FUNCTION segment.explain(subject name, key text, what text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'segment_explain' LANGUAGE C STABLE STRICT;
CREATE FUNCTION segment.explain(subject name, key bigint, what text) RETURNS jsonb
    LANGUAGE sql STABLE STRICT AS $$ SELECT segment.explain(subject, key::text, what) $$;

-- Re-check every rule over a table after DDL on it; refuse the DDL when a
-- rule no longer analyses (a dropped, renamed or retyped column).
-- The guards run for every user's DDL: SECURITY DEFINER so that users
-- without access to segment's catalog can still alter their own tables.
CREATE FUNCTION segment._check_rules_of(rel oid) RETURNS void
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
            PERFORM segment._rule_columns(t.relation, t.rule, NULL);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": tag "%" of subject "%" depends on it', t.relation, t.tag, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s would fail: %s', t.rule, SQLERRM),
                      HINT = 'Alter or drop the tag first (segment.alter_tag, segment.drop_tag).';
        END;
        -- a rule that still parses after a retype may mean something else
        -- (numeric rounded to integer, a date compared as text): refuse too
        IF segment._column_types(t.relation, t.columns) IS DISTINCT FROM t.column_types THEN
            RAISE EXCEPTION 'cannot change the type of a column that tag "%" of subject "%" reads', t.tag, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s was written for columns %s of types %s, now %s.',
                                      t.rule, t.columns, t.column_types,
                                      segment._column_types(t.relation, t.columns)),
                      HINT = 'Drop the tag, change the column, and create the tag again (or alter its rule to the new type first).';
        END IF;
    END LOOP;
    FOR t IN SELECT s.name AS subject, s.key_column, s.key_type, s.relation FROM segment.subject s
              WHERE s.relation = rel
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = rel AND a.attname = t.key_column AND NOT a.attisdropped
                          AND a.atttypid = t.key_type) THEN
            RAISE EXCEPTION 'cannot change table "%": column "%" is the key of subject "%"', t.relation, t.key_column, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Unregister the subject first with segment.unregister_subject().';
        END IF;
    END LOOP;
    -- scheme buckets and scorecard items (part 74)
    PERFORM segment._check_scheme_rules_of(rel);
    -- goals and templates of opportunity rules (part 81)
    PERFORM segment._check_opportunity_rules_of(rel);
END $$;

CREATE FUNCTION segment._ddl_guard() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT DISTINCT objid FROM pg_event_trigger_ddl_commands()
              WHERE command_tag = 'ALTER TABLE' AND classid = 'pg_class'::regclass
    LOOP
        IF EXISTS (SELECT 1 FROM segment.subject s WHERE s.relation = c.objid) THEN
            PERFORM segment._check_rules_of(c.objid);
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION segment._drop_guard() RETURNS event_trigger
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
    WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION segment._ddl_guard();
CREATE EVENT TRIGGER segment_drop_guard ON sql_drop
    EXECUTE FUNCTION segment._drop_guard();
-- segment install script, part 70: segments, schemes and scorecards (issue 3).
-- Definitions and history are dumped; current state is rebuilt by refresh.

-- A named audience. Tags, segments, schemes and scorecards share one
-- namespace of names, so an audience name means one thing.
CREATE TABLE segment.segment (
    segment_id  serial PRIMARY KEY,
    subject_id  int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    name        name NOT NULL UNIQUE,
    audience    text NOT NULL,
    description text,
    version     int NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  name NOT NULL DEFAULT current_user,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  name NOT NULL DEFAULT current_user
);
CREATE INDEX ON segment.segment (subject_id);

-- Ordered tiers: a customer is in the first bucket whose rule is true.
CREATE TABLE segment.scheme (
    scheme_id   serial PRIMARY KEY,
    subject_id  int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    name        name NOT NULL UNIQUE,
    description text,
    active      boolean NOT NULL DEFAULT true,
    version     int NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  name NOT NULL DEFAULT current_user,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  name NOT NULL DEFAULT current_user
);
CREATE INDEX ON segment.scheme (subject_id);

CREATE TABLE segment.scheme_bucket (
    scheme_id    int NOT NULL REFERENCES segment.scheme ON DELETE CASCADE,
    position     int NOT NULL,            -- 1, 2, ...: evaluation order
    name         name NOT NULL,
    rule         text NOT NULL,
    columns      name[] NOT NULL DEFAULT '{}',
    column_types regtype[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (scheme_id, position),
    UNIQUE (scheme_id, name)
);

-- Points per condition, summed on top of a base; optional named bands.
CREATE TABLE segment.scorecard (
    scorecard_id serial PRIMARY KEY,
    subject_id   int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    name         name NOT NULL UNIQUE,
    base         numeric NOT NULL DEFAULT 0,
    description  text,
    active       boolean NOT NULL DEFAULT true,
    version      int NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   name NOT NULL DEFAULT current_user,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   name NOT NULL DEFAULT current_user
);
CREATE INDEX ON segment.scorecard (subject_id);

CREATE TABLE segment.scorecard_item (
    scorecard_id int NOT NULL REFERENCES segment.scorecard ON DELETE CASCADE,
    position     int NOT NULL,
    rule         text NOT NULL,
    points       numeric NOT NULL,
    columns      name[] NOT NULL DEFAULT '{}',
    column_types regtype[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (scorecard_id, position)
);

-- A band holds the members whose score s satisfies min_score <= s < max_score
-- (a NULL bound is open).
CREATE TABLE segment.scorecard_band (
    scorecard_id int NOT NULL REFERENCES segment.scorecard ON DELETE CASCADE,
    name         name NOT NULL,
    min_score    numeric,
    max_score    numeric,
    PRIMARY KEY (scorecard_id, name)
);

-- Every definition change of segments, schemes and scorecards.
CREATE TABLE segment.definition_history (
    history_id  bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('segment', 'scheme', 'scorecard')),
    object_id   int NOT NULL,
    name        name NOT NULL,
    action      text NOT NULL CHECK (action IN ('create', 'alter', 'drop')),
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  name NOT NULL DEFAULT current_user,
    old_definition jsonb,
    new_definition jsonb
);

-- Current state, written by refresh in the same pass as the tags.
CREATE TABLE segment.bucket_state (
    scheme_id    int NOT NULL REFERENCES segment.scheme ON DELETE CASCADE,
    bucket       name NOT NULL,
    members      segment.memberset NOT NULL,
    member_count bigint NOT NULL,
    as_of        date NOT NULL,
    run_id       bigint NOT NULL,
    PRIMARY KEY (scheme_id, bucket)
);

-- Members per distinct score: top-n walks scores downwards.
CREATE TABLE segment.score_state (
    scorecard_id int NOT NULL REFERENCES segment.scorecard ON DELETE CASCADE,
    score        numeric NOT NULL,
    members      segment.memberset NOT NULL,
    member_count bigint NOT NULL,
    as_of        date NOT NULL,
    run_id       bigint NOT NULL,
    PRIMARY KEY (scorecard_id, score)
);

-- History for transitions and trends: bucket sets and the universe per
-- evaluation date (the last refresh for a date wins), sizes per day.
CREATE TABLE segment.bucket_history (
    scheme_id    int NOT NULL REFERENCES segment.scheme ON DELETE CASCADE,
    as_of        date NOT NULL,
    bucket       name NOT NULL,
    members      segment.memberset NOT NULL,
    member_count bigint NOT NULL,
    run_id       bigint NOT NULL,
    PRIMARY KEY (scheme_id, as_of, bucket)
);

CREATE TABLE segment.universe_history (
    subject_id   int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    as_of        date NOT NULL,
    universe     segment.memberset NOT NULL,
    member_count bigint NOT NULL,
    run_id       bigint NOT NULL,
    PRIMARY KEY (subject_id, as_of)
);

CREATE TABLE segment.size_snapshot (
    subject_id  int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    as_of       date NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('tag', 'segment', 'bucket', 'band')),
    name        text NOT NULL,            -- tag, segment, or scheme.bucket / scorecard.band
    members     bigint NOT NULL,
    run_id      bigint NOT NULL,
    PRIMARY KEY (subject_id, as_of, kind, name)
);

SELECT pg_catalog.pg_extension_config_dump('segment.segment', '');
SELECT pg_catalog.pg_extension_config_dump('segment.segment_segment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.scheme', '');
SELECT pg_catalog.pg_extension_config_dump('segment.scheme_scheme_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.scheme_bucket', '');
SELECT pg_catalog.pg_extension_config_dump('segment.scorecard', '');
SELECT pg_catalog.pg_extension_config_dump('segment.scorecard_scorecard_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.scorecard_item', '');
SELECT pg_catalog.pg_extension_config_dump('segment.scorecard_band', '');
SELECT pg_catalog.pg_extension_config_dump('segment.definition_history', '');
SELECT pg_catalog.pg_extension_config_dump('segment.definition_history_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.bucket_history', '');
SELECT pg_catalog.pg_extension_config_dump('segment.universe_history', '');
SELECT pg_catalog.pg_extension_config_dump('segment.size_snapshot', '');
-- segment install script, part 72: named segments (issue 3, part 1) and
-- overlap of audiences (part 5).
--
-- A segment is a named audience of one subject; wherever an audience is
-- read, its name stands for that audience (expanded recursively by
-- src/audience.c). Tags, segments, schemes and scorecards share one
-- namespace of names. The audience text is the definition: the names it
-- uses are found by parsing it (segment._audience_names), so there is no
-- dependency table to keep in step.

-- Definition-time check of an audience (syntax, names, cycles); `segment`
-- stands for the new text. Sets are not read: names not refreshed yet are fine.
CREATE FUNCTION segment._audience_check(subject name, audience text, segment name DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'segment_audience_check' LANGUAGE C STABLE;

-- The distinct names an audience uses (qualifier: scheme or scorecard of a
-- dotted name), in order of first appearance. Syntax only.
CREATE FUNCTION segment._audience_names(audience text)
    RETURNS TABLE (qualifier name, name name)
    AS 'MODULE_PATHNAME', 'segment_audience_names' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Serializes changes to the namespace and to references between
-- definitions (create/drop of tags and segments), so that two sessions
-- cannot take one name twice, nor refer to a name another is dropping.
CREATE FUNCTION segment._lock_definitions() RETURNS void
LANGUAGE sql AS $$ SELECT pg_advisory_xact_lock(24174, 0) $$;

-- What holds an audience name: 'tag', 'segment', 'scheme', 'scorecard' or NULL.
CREATE FUNCTION segment._name_kind(n name) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT k FROM (SELECT 'tag' AS k, 1 AS o FROM segment.tag t WHERE t.name = n
                   UNION ALL SELECT 'segment', 2 FROM segment.segment g WHERE g.name = n
                   UNION ALL SELECT 'scheme', 3 FROM segment.scheme c WHERE c.name = n
                   UNION ALL SELECT 'scorecard', 4 FROM segment.scorecard c WHERE c.name = n) x
     ORDER BY o LIMIT 1
$$;

-- Takes the definitions lock and refuses (42710) a name already used by a
-- tag, segment, scheme or scorecard. kind: what is being created.
CREATE FUNCTION segment._check_name_free(kind text, n name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE used text;
BEGIN
    PERFORM segment._lock_definitions();
    used := segment._name_kind(n);
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
CREATE FUNCTION segment._segments_using(n name, qualified boolean DEFAULT false)
RETURNS SETOF segment.segment
LANGUAGE sql STABLE AS $$
    SELECT g.* FROM segment.segment g
     WHERE EXISTS (SELECT 1 FROM segment._audience_names(g.audience) r
                    WHERE CASE WHEN qualified THEN r.qualifier = n
                               ELSE r.qualifier IS NULL AND r.name = n END)
     ORDER BY g.name
$$;

CREATE FUNCTION segment._segment_definition(g segment.segment) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('subject', (SELECT s.name FROM segment.subject s
                                           WHERE s.subject_id = g.subject_id),
                              'audience', g.audience, 'description', g.description,
                              'version', g.version)
$$;

-- Before dropping `what` n (kind 'tag', 'segment', 'scheme', 'scorecard'):
-- refuse (2BP01) when segments use it, or with cascade drop them, and the
-- segments using those, recording each drop in definition_history.
CREATE FUNCTION segment._drop_segments_using(kind text, n name, "cascade" boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    qualified boolean := kind IN ('scheme', 'scorecard');
    users text;
    nusers int;
    g record;
BEGIN
    PERFORM segment._lock_definitions();
    -- opportunity rules are never dropped with what their audience uses:
    -- they hold the leads' history (part 81)
    PERFORM segment._refuse_if_rules_use(kind, n);
    SELECT string_agg(format('"%s"', u.name), ', ' ORDER BY u.name), count(*) INTO users, nusers
      FROM segment._segments_using(n, qualified) u WHERE NOT (kind = 'segment' AND u.name = n);
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
            SELECT u.segment_id, u.name, 1 FROM segment._segments_using(n, qualified) u
            UNION ALL
            SELECT u.segment_id, u.name, d.depth + 1
              FROM reach d, LATERAL segment._segments_using(d.name) u
             WHERE d.depth < 1000
        ) CYCLE segment_id SET is_cycle USING path
        SELECT x.*, min(d.depth) AS depth
          FROM reach d JOIN segment.segment x USING (segment_id)
         WHERE NOT (kind = 'segment' AND x.name = n)
         GROUP BY x.segment_id
         ORDER BY min(d.depth), x.name
    LOOP
        PERFORM segment._refuse_if_rules_use('segment', g.name);
        RAISE NOTICE 'drop cascades to segment "%"', g.name;
        INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
        SELECT 'segment', x.segment_id, x.name, 'drop', segment._segment_definition(x)
          FROM segment.segment x WHERE x.segment_id = g.segment_id;
        DELETE FROM segment.segment x WHERE x.segment_id = g.segment_id;
    END LOOP;
END $$;

CREATE FUNCTION segment._segment(segment name) RETURNS segment.segment
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
    sid int := segment._subject_id(subject);
    g segment.segment;
BEGIN
    PERFORM segment._check_name('segment', segment);
    IF audience IS NULL THEN
        RAISE EXCEPTION 'audience must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM segment._check_name_free('segment', segment);
    PERFORM segment._audience_check(subject, audience, segment);
    INSERT INTO segment.segment (subject_id, name, audience, description)
    VALUES (sid, segment, audience, description)
    RETURNING * INTO g;
    INSERT INTO segment.definition_history (kind, object_id, name, action, new_definition)
    VALUES ('segment', g.segment_id, segment, 'create', segment._segment_definition(g));
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
    PERFORM segment._lock_definitions();
    old := segment._segment(segment);
    IF audience IS NULL AND description IS NULL THEN
        RAISE EXCEPTION 'nothing to change for segment "%"', segment
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass audience or description.';
    END IF;
    IF audience IS NOT NULL THEN
        PERFORM segment._audience_check(
            (SELECT s.name FROM segment.subject s WHERE s.subject_id = old.subject_id),
            audience, segment);
    END IF;
    UPDATE segment.segment g
       SET audience = coalesce(alter_segment.audience, g.audience),
           description = coalesce(alter_segment.description, g.description),
           version = g.version + 1,
           updated_at = now(), updated_by = current_user
     WHERE g.segment_id = old.segment_id
    RETURNING * INTO new;
    INSERT INTO segment.definition_history (kind, object_id, name, action,
                                            old_definition, new_definition)
    VALUES ('segment', old.segment_id, segment, 'alter',
            segment._segment_definition(old), segment._segment_definition(new));
END $$;
COMMENT ON FUNCTION segment.alter_segment(name, text, text) IS
    'changes the audience or description of a segment';

CREATE FUNCTION segment.drop_segment(segment name, "cascade" boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE old segment.segment;
BEGIN
    PERFORM segment._lock_definitions();
    old := segment._segment(segment);
    PERFORM segment._drop_segments_using('segment', segment, "cascade");
    DELETE FROM segment.segment g WHERE g.segment_id = old.segment_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    VALUES ('segment', old.segment_id, segment, 'drop', segment._segment_definition(old));
END $$;
COMMENT ON FUNCTION segment.drop_segment(name, boolean) IS
    'drops a segment; refused while other segments use it, unless cascade';

CREATE FUNCTION segment.overlap(subject name, audiences text[])
    RETURNS TABLE (a text, b text, a_members bigint, b_members bigint,
                   both_members bigint, jaccard float8)
    AS 'MODULE_PATHNAME', 'segment_overlap' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 100;
COMMENT ON FUNCTION segment.overlap(name, text[]) IS
    'sizes, intersection and Jaccard index of every pair of audiences';
-- segment install script, part 74: schemes and scorecards (issue 3, parts 2-4).
-- Definitions (create/alter/drop with validation and history) and the
-- functions that read what refresh stores: bucket_of, score, top,
-- transitions, and the view size_history. The tables are in part 70;
-- refresh (C) fills bucket_state, score_state, bucket_history,
-- universe_history and size_snapshot. See docs/segmentation.md.

-- Names --------------------------------------------------------------------

-- A name taken from a text array (bucket, band): the name type would
-- silently cut it at 63 bytes.
CREATE FUNCTION segment._check_part_name(kind text, n text) RETURNS name
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF octet_length(n) > 63 THEN
        RAISE EXCEPTION '% name "%" is too long', kind, n
            USING ERRCODE = 'name_too_long',
                  DETAIL = 'Names are at most 63 bytes.';
    END IF;
    PERFORM segment._check_name(kind, n::name);
    RETURN n::name;
END $$;

-- A numeric given as text (points, band bounds): finite, or an error saying
-- which one it is.
CREATE FUNCTION segment._parse_number(v text, what text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE x numeric;
BEGIN
    BEGIN
        x := v::numeric;
    EXCEPTION WHEN invalid_text_representation THEN
        x := NULL;
    END;
    IF x IS NULL OR x IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric) THEN
        RAISE EXCEPTION '% is not a number', format(what, v)
            USING ERRCODE = 'invalid_text_representation',
                  HINT = 'Write a finite decimal number such as 25, -10 or 2.5.';
    END IF;
    RETURN x;
END $$;

-- Checks that a definition array (buckets, items, bands) is a non-empty
-- two-dimensional array of entries of width elements; raises 22004 / 22023.
CREATE FUNCTION segment._check_entries(a text[], arg text, owner text, width int, shape text,
                                       example text, allow_empty boolean) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF a IS NULL THEN
        RAISE EXCEPTION '% of % must not be NULL', arg, owner
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF coalesce(array_ndims(a), 0) = 0 THEN
        IF allow_empty THEN
            RETURN;
        END IF;
        RAISE EXCEPTION '% has no %', owner, arg
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Give at least one, e.g. %s.', example);
    END IF;
    IF array_ndims(a) <> 2 OR array_length(a, 2) <> width THEN
        RAISE EXCEPTION '% of % must be % of % elements', arg, owner, shape, width
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = CASE WHEN array_ndims(a) <> 2
                                THEN format('Got a %s-dimensional array.', array_ndims(a))
                                WHEN array_length(a, 2) = 1 THEN 'Each entry has 1 element.'
                                ELSE format('Each entry has %s elements.', array_length(a, 2)) END,
                  HINT = format('Pass a two-dimensional array, e.g. %s.', example);
    END IF;
END $$;

-- Schemes ------------------------------------------------------------------

-- Validates a bucket list against the subject's table; returns the rows to
-- store. Raises the rule's own error (with position and context) for a bad
-- rule.
CREATE FUNCTION segment._scheme_buckets(rel regclass, scheme name, buckets text[])
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
    PERFORM segment._check_entries(buckets, 'buckets', format('scheme "%s"', scheme), 2,
                                   '(name, rule) pairs', $e$ARRAY[['affluent', 'aum >= 500000'], ['mass', 'true']]$e$, false);
    c := array_lower(buckets, 2);
    lo := array_lower(buckets, 1);
    FOR i IN lo .. array_upper(buckets, 1) LOOP
        n := n + 1;
        bname := segment._check_part_name('bucket', buckets[i][c]);
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
        rule := brule;
        columns := segment._rule_columns(rel, brule, format('bucket "%s" of scheme "%s"', bname, scheme));
        column_types := segment._column_types(rel, columns);
        RETURN NEXT;
    END LOOP;
END $$;

-- A scheme's definition as stored in segment.definition_history.
CREATE FUNCTION segment._scheme_definition(id int) RETURNS jsonb
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

CREATE FUNCTION segment._scheme(scheme name, for_update boolean DEFAULT false) RETURNS segment.scheme
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
    sid int := segment._subject_id(subject);
    rel regclass;
    defs segment.scheme_bucket[];
    id int;
BEGIN
    PERFORM segment._check_name('scheme', scheme);
    PERFORM segment._check_name_free('scheme', scheme);   -- one namespace of audience names
    SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
    -- validate everything before writing anything (no sequence value is used up)
    defs := ARRAY(SELECT ROW(0, b.ord, b.name, b.rule, b.columns, b.column_types)::segment.scheme_bucket
                    FROM segment._scheme_buckets(rel, scheme, buckets) b);
    INSERT INTO segment.scheme (subject_id, name, description)
    VALUES (sid, scheme, description)
    RETURNING scheme_id INTO id;
    INSERT INTO segment.scheme_bucket (scheme_id, position, name, rule, columns, column_types)
    SELECT id, d.position, d.name, d.rule, d.columns, d.column_types FROM unnest(defs) d;
    INSERT INTO segment.definition_history (kind, object_id, name, action, new_definition)
    VALUES ('scheme', id, scheme, 'create', segment._scheme_definition(id));
    RETURN id;
END $$;
COMMENT ON FUNCTION segment.create_scheme(name, name, text[], text) IS
    'ordered (bucket, rule) pairs: each customer lands in the first bucket whose rule is true';

CREATE FUNCTION segment.alter_scheme(scheme name, buckets text[] DEFAULT NULL,
                                     description text DEFAULT NULL, active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.scheme := segment._scheme(scheme, true);
    old_def jsonb := segment._scheme_definition(old.scheme_id);
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
                        FROM segment._scheme_buckets(rel, scheme, buckets) b);
        DELETE FROM segment.scheme_bucket b WHERE b.scheme_id = old.scheme_id;
        INSERT INTO segment.scheme_bucket SELECT * FROM unnest(defs);
    END IF;
    UPDATE segment.scheme s
       SET description = coalesce(alter_scheme.description, s.description),
           active = coalesce(alter_scheme.active, s.active),
           version = s.version + 1,
           updated_at = now(), updated_by = current_user
     WHERE s.scheme_id = old.scheme_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition, new_definition)
    VALUES ('scheme', old.scheme_id, scheme, 'alter', old_def, segment._scheme_definition(old.scheme_id));
END $$;

CREATE FUNCTION segment.drop_scheme(scheme name, "cascade" boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old segment.scheme := segment._scheme(scheme, true);
BEGIN
    -- segments that name its buckets or bands: refuse, or drop them too
    PERFORM segment._drop_segments_using('scheme', scheme, "cascade");
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    VALUES ('scheme', old.scheme_id, scheme, 'drop', segment._scheme_definition(old.scheme_id));
    DELETE FROM segment.scheme s WHERE s.scheme_id = old.scheme_id;
END $$;

-- Scorecards ---------------------------------------------------------------

CREATE FUNCTION segment._scorecard_items(rel regclass, scorecard name, items text[])
RETURNS TABLE (ord int, rule text, points numeric, columns name[], column_types regtype[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c int;
    i int;
    n int := 0;
    irule text;
BEGIN
    PERFORM segment._check_entries(items, 'items', format('scorecard "%s"', scorecard), 2,
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
        points := segment._parse_number(items[i][c + 1],
                                        format('points "%%s" of item %s', n));
        ord := n;
        rule := irule;
        columns := segment._rule_columns(rel, irule, format('item %s of scorecard "%s"', n, scorecard));
        column_types := segment._column_types(rel, columns);
        RETURN NEXT;
    END LOOP;
END $$;

-- Validates bands (name, min_score, max_score); NULL or '' is an open bound.
-- A band holds min_score <= score < max_score; bands must not overlap.
CREATE FUNCTION segment._scorecard_bands(scorecard name, bands text[])
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
    PERFORM segment._check_entries(bands, 'bands', format('scorecard "%s"', scorecard), 3,
                                   '(name, min_score, max_score) triples', $e$ARRAY[['low', NULL, '600'], ['high', '600', NULL]]$e$, true);
    IF coalesce(array_ndims(bands), 0) = 0 THEN
        RETURN;
    END IF;
    c := array_lower(bands, 2);
    FOR i IN array_lower(bands, 1) .. array_upper(bands, 1) LOOP
        bname := segment._check_part_name('band', bands[i][c]);
        IF bname = ANY (names) THEN
            RAISE EXCEPTION 'band "%" appears twice in scorecard "%"', bname, scorecard
                USING ERRCODE = 'duplicate_object';
        END IF;
        lo := CASE WHEN nullif(btrim(bands[i][c + 1]), '') IS NOT NULL
                   THEN segment._parse_number(bands[i][c + 1], format('min_score "%%s" of band "%s"', bname)) END;
        hi := CASE WHEN nullif(btrim(bands[i][c + 2]), '') IS NOT NULL
                   THEN segment._parse_number(bands[i][c + 2], format('max_score "%%s" of band "%s"', bname)) END;
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

CREATE FUNCTION segment._scorecard_definition(id int) RETURNS jsonb
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

CREATE FUNCTION segment._scorecard(scorecard name, for_update boolean DEFAULT false) RETURNS segment.scorecard
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

CREATE FUNCTION segment._check_base(scorecard name, base numeric) RETURNS void
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
    sid int := segment._subject_id(subject);
    rel regclass;
    item_defs segment.scorecard_item[];
    band_defs segment.scorecard_band[];
    id int;
BEGIN
    PERFORM segment._check_name('scorecard', scorecard);
    PERFORM segment._check_name_free('scorecard', scorecard);
    IF base IS NULL THEN
        RAISE EXCEPTION 'base of scorecard "%" must not be NULL', scorecard
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use 0 for a score that is the sum of the points alone.';
    END IF;
    PERFORM segment._check_base(scorecard, base);
    SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
    -- validate everything before writing anything (no sequence value is used up)
    item_defs := ARRAY(SELECT ROW(0, i.ord, i.rule, i.points, i.columns, i.column_types)::segment.scorecard_item
                         FROM segment._scorecard_items(rel, scorecard, items) i);
    band_defs := ARRAY(SELECT ROW(0, b.name, b.min_score, b.max_score)::segment.scorecard_band
                         FROM segment._scorecard_bands(scorecard, coalesce(bands, '{}')) b);
    INSERT INTO segment.scorecard (subject_id, name, base, description)
    VALUES (sid, scorecard, base, description)
    RETURNING scorecard_id INTO id;
    INSERT INTO segment.scorecard_item (scorecard_id, position, rule, points, columns, column_types)
    SELECT id, d.position, d.rule, d.points, d.columns, d.column_types FROM unnest(item_defs) d;
    INSERT INTO segment.scorecard_band (scorecard_id, name, min_score, max_score)
    SELECT id, d.name, d.min_score, d.max_score FROM unnest(band_defs) d;
    INSERT INTO segment.definition_history (kind, object_id, name, action, new_definition)
    VALUES ('scorecard', id, scorecard, 'create', segment._scorecard_definition(id));
    RETURN id;
END $$;
COMMENT ON FUNCTION segment.create_scorecard(name, name, numeric, text[], text[], text) IS
    'score = base + the points of every item whose rule is true; optional bands (name, min, max)';

CREATE FUNCTION segment.alter_scorecard(scorecard name, base numeric DEFAULT NULL,
                                        items text[] DEFAULT NULL, bands text[] DEFAULT NULL,
                                        description text DEFAULT NULL, active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.scorecard := segment._scorecard(scorecard, true);
    old_def jsonb := segment._scorecard_definition(old.scorecard_id);
    rel regclass;
    item_defs segment.scorecard_item[];
    band_defs segment.scorecard_band[];
BEGIN
    IF base IS NULL AND items IS NULL AND bands IS NULL AND description IS NULL AND active IS NULL THEN
        RAISE EXCEPTION 'nothing to change for scorecard "%"', scorecard
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass base, items, bands, description or active.';
    END IF;
    PERFORM segment._check_base(scorecard, base);
    IF items IS NOT NULL THEN
        SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = old.subject_id;
        item_defs := ARRAY(SELECT ROW(old.scorecard_id, i.ord, i.rule, i.points, i.columns, i.column_types)::segment.scorecard_item
                             FROM segment._scorecard_items(rel, scorecard, items) i);
    END IF;
    IF bands IS NOT NULL THEN
        band_defs := ARRAY(SELECT ROW(old.scorecard_id, b.name, b.min_score, b.max_score)::segment.scorecard_band
                             FROM segment._scorecard_bands(scorecard, bands) b);
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
           updated_at = now(), updated_by = current_user
     WHERE s.scorecard_id = old.scorecard_id;
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition, new_definition)
    VALUES ('scorecard', old.scorecard_id, scorecard, 'alter', old_def,
            segment._scorecard_definition(old.scorecard_id));
END $$;

CREATE FUNCTION segment.drop_scorecard(scorecard name, "cascade" boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old segment.scorecard := segment._scorecard(scorecard, true);
BEGIN
    -- segments that name its buckets or bands: refuse, or drop them too
    PERFORM segment._drop_segments_using('scorecard', scorecard, "cascade");
    INSERT INTO segment.definition_history (kind, object_id, name, action, old_definition)
    VALUES ('scorecard', old.scorecard_id, scorecard, 'drop', segment._scorecard_definition(old.scorecard_id));
    DELETE FROM segment.scorecard s WHERE s.scorecard_id = old.scorecard_id;
END $$;

-- Reading ------------------------------------------------------------------

-- The scheme of a subject, ready to read: exists, belongs to the subject,
-- active, refreshed at least once.
CREATE FUNCTION segment._readable_scheme(sid int, subject name, scheme name) RETURNS segment.scheme
LANGUAGE plpgsql STABLE AS $$
DECLARE s segment.scheme := segment._scheme(scheme);
BEGIN
    IF s.subject_id <> sid THEN
        RAISE EXCEPTION 'scheme "%" does not belong to subject "%"', scheme, subject
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT s.active THEN
        RAISE EXCEPTION 'scheme "%" is inactive', scheme
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Activate it with segment.alter_scheme(%L, active => true).', scheme);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.bucket_state b WHERE b.scheme_id = s.scheme_id) THEN
        RAISE EXCEPTION 'scheme "%" has not been refreshed', scheme
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Run segment.refresh(%L) first.', subject);
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION segment._readable_scorecard(sid int, subject name, scorecard name) RETURNS segment.scorecard
LANGUAGE plpgsql STABLE AS $$
DECLARE s segment.scorecard := segment._scorecard(scorecard);
BEGIN
    IF s.subject_id <> sid THEN
        RAISE EXCEPTION 'scorecard "%" does not belong to subject "%"', scorecard, subject
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT s.active THEN
        RAISE EXCEPTION 'scorecard "%" is inactive', scorecard
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Activate it with segment.alter_scorecard(%L, active => true).', scorecard);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.score_state x WHERE x.scorecard_id = s.scorecard_id) THEN
        RAISE EXCEPTION 'scorecard "%" has not been refreshed', scorecard
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Run segment.refresh(%L) first.', subject);
    END IF;
    RETURN s;
END $$;

CREATE FUNCTION segment.bucket_of(subject name, key text, scheme name) RETURNS name
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    sid int := segment._subject_id(subject);
    s segment.scheme := segment._readable_scheme(sid, subject, scheme);
    mid int8 := segment._member_id(sid, key, false);
    b name;
BEGIN
    IF mid IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT x.bucket INTO b FROM segment.bucket_state x
     WHERE x.scheme_id = s.scheme_id AND segment._live_in_bucket(x.members, x.scheme_id, x.bucket, mid)
     ORDER BY x.bucket LIMIT 1;
    RETURN b;
END $$;
CREATE FUNCTION segment.bucket_of(subject name, key bigint, scheme name) RETURNS name
LANGUAGE sql STABLE STRICT AS $$ SELECT segment.bucket_of(subject, key::text, scheme) $$;
COMMENT ON FUNCTION segment.bucket_of(name, text, name) IS
    'the bucket of the scheme the customer is in after the last refresh; NULL when in none';
COMMENT ON FUNCTION segment.bucket_of(name, bigint, name) IS
    'the bucket of the scheme the customer is in after the last refresh; NULL when in none';

CREATE FUNCTION segment.score(subject name, key text, scorecard name) RETURNS numeric
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    sid int := segment._subject_id(subject);
    s segment.scorecard := segment._readable_scorecard(sid, subject, scorecard);
    mid int8 := segment._member_id(sid, key, false);
    v numeric;
BEGIN
    IF mid IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT x.score INTO v FROM segment._live_scores(s.scorecard_id, sid) x
     WHERE x.members OPERATOR(segment.@>) mid
     ORDER BY x.score DESC LIMIT 1;
    RETURN v;
END $$;
CREATE FUNCTION segment.score(subject name, key bigint, scorecard name) RETURNS numeric
LANGUAGE sql STABLE STRICT AS $$ SELECT segment.score(subject, key::text, scorecard) $$;
COMMENT ON FUNCTION segment.score(name, text, name) IS
    'the customer''s score after the last refresh; NULL when not scored (no row)';
COMMENT ON FUNCTION segment.score(name, bigint, name) IS
    'the customer''s score after the last refresh; NULL when not scored (no row)';

-- The n highest-scoring members of an audience (NULL: every scored
-- customer), highest first, ties by key. Walks the distinct scores downwards
-- and stops as soon as it has n.
CREATE FUNCTION segment.top(subject name, scorecard name, audience text, n int)
RETURNS TABLE (key text, score numeric)
LANGUAGE plpgsql STABLE ROWS 100 AS $$
DECLARE
    sid int := segment._subject_id(subject);
    s segment.scorecard := segment._readable_scorecard(sid, subject, scorecard);
    int_keys boolean;
    aud segment.memberset;
    part segment.memberset;
    r record;
    c int8;
    left_ int8 := n;
BEGIN
    IF n IS NULL THEN
        RAISE EXCEPTION 'n must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF n < 0 THEN
        RAISE EXCEPTION 'n must not be negative, got %', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n = 0 THEN
        RETURN;
    END IF;
    SELECT x.key_type IN ('int4'::regtype, 'int8'::regtype) INTO int_keys
      FROM segment.subject x WHERE x.subject_id = sid;
    IF audience IS NOT NULL THEN
        aud := segment.audience(subject, audience);
    END IF;
    FOR r IN SELECT x.score, x.members FROM segment._live_scores(s.scorecard_id, sid) x
              ORDER BY x.score DESC
    LOOP
        part := CASE WHEN aud IS NULL THEN r.members ELSE r.members OPERATOR(segment.&) aud END;
        c := segment.cardinality(part);
        CONTINUE WHEN c = 0;
        IF int_keys AND c <= 50000000 THEN
            -- member id = key, ids ascending: the first ones are the lowest
            -- keys; slicing the array is much faster than a set-returning scan
            RETURN QUERY SELECT m::text, r.score
                           FROM unnest((segment.to_array(part))[1:left_]) m;
        ELSIF int_keys THEN
            RETURN QUERY SELECT m::text, r.score
                           FROM segment.member_ids(part) WITH ORDINALITY AS x(m, o)
                          ORDER BY x.o LIMIT left_;
        ELSE
            RETURN QUERY SELECT k, r.score FROM segment.keys(subject, part) k
                          ORDER BY k LIMIT left_;
        END IF;
        left_ := left_ - least(c, left_);
        EXIT WHEN left_ = 0;
    END LOOP;
END $$;
COMMENT ON FUNCTION segment.top(name, name, text, int) IS
    'the n highest-scoring members of an audience (NULL: all), highest first, ties by key';

-- The transition matrix of a scheme between the snapshots in force at two
-- dates (the latest refresh on or before each).
CREATE FUNCTION segment.transitions(subject name, scheme name, from_date date, to_date date)
RETURNS TABLE (from_bucket text, to_bucket text, customers bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    sid int := segment._subject_id(subject);
    s segment.scheme := segment._scheme(scheme);
    dates date[] := ARRAY[from_date, to_date];
    snap date[] := '{}';
    d date;
    first_ date;
BEGIN
    IF s.subject_id <> sid THEN
        RAISE EXCEPTION 'scheme "%" does not belong to subject "%"', scheme, subject
            USING ERRCODE = 'undefined_object';
    END IF;
    IF from_date IS NULL OR to_date IS NULL THEN
        RAISE EXCEPTION 'from_date and to_date must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOREACH d IN ARRAY dates LOOP
        snap := snap || (SELECT max(h.as_of) FROM segment.bucket_history h
                          WHERE h.scheme_id = s.scheme_id AND h.as_of <= d);
        IF snap[array_upper(snap, 1)] IS NULL THEN
            SELECT min(h.as_of) INTO first_ FROM segment.bucket_history h WHERE h.scheme_id = s.scheme_id;
            RAISE EXCEPTION 'scheme "%" has no history on or before %', scheme, to_char(d, 'YYYY-MM-DD')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = CASE WHEN first_ IS NULL THEN 'The scheme has never been refreshed.'
                                    ELSE format('Its first recorded refresh is as of %s.', to_char(first_, 'YYYY-MM-DD')) END,
                      HINT = 'Each segment.refresh() records the buckets as of its as_of date.';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM segment.universe_history u
                        WHERE u.subject_id = sid AND u.as_of = snap[array_upper(snap, 1)]) THEN
            RAISE EXCEPTION 'subject "%" has no universe recorded as of %', subject,
                            to_char(snap[array_upper(snap, 1)], 'YYYY-MM-DD')
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = format('Scheme "%s" has buckets recorded as of %s but the subject''s universe is missing.',
                                      scheme, to_char(snap[array_upper(snap, 1)], 'YYYY-MM-DD'));
        END IF;
    END LOOP;
    RETURN QUERY
    WITH u AS (
        SELECT (SELECT x.universe FROM segment.universe_history x
                 WHERE x.subject_id = sid AND x.as_of = snap[1]) AS u1,
               (SELECT x.universe FROM segment.universe_history x
                 WHERE x.subject_id = sid AND x.as_of = snap[2]) AS u2
    ), h AS (
        SELECT x.as_of, x.bucket::text AS bucket, x.members FROM segment.bucket_history x
         WHERE x.scheme_id = s.scheme_id AND x.as_of IN (snap[1], snap[2])
    ), side1 AS (
        SELECT h.bucket, h.members FROM h WHERE h.as_of = snap[1]
        UNION ALL
        SELECT '(none)', u.u1 OPERATOR(segment.-)
               coalesce((SELECT segment.union_agg(h.members) FROM h WHERE h.as_of = snap[1]),
                        '{}'::segment.memberset)
          FROM u
        UNION ALL
        SELECT '(entered)', u.u2 OPERATOR(segment.-) u.u1 FROM u
    ), side2 AS (
        SELECT h.bucket, h.members FROM h WHERE h.as_of = snap[2]
        UNION ALL
        SELECT '(none)', u.u2 OPERATOR(segment.-)
               coalesce((SELECT segment.union_agg(h.members) FROM h WHERE h.as_of = snap[2]),
                        '{}'::segment.memberset)
          FROM u
        UNION ALL
        SELECT '(exited)', u.u1 OPERATOR(segment.-) u.u2 FROM u
    ), pos AS (
        SELECT b.name::text AS bucket, b.position FROM segment.scheme_bucket b
         WHERE b.scheme_id = s.scheme_id
    ), cells AS (
        SELECT a.bucket AS f, b.bucket AS t,
               segment.cardinality(a.members OPERATOR(segment.&) b.members) AS n
          FROM side1 a CROSS JOIN side2 b
    )
    SELECT c.f, c.t, c.n
      FROM cells c
      LEFT JOIN pos pf ON pf.bucket = c.f
      LEFT JOIN pos pt ON pt.bucket = c.t
     WHERE c.n > 0
     ORDER BY CASE c.f WHEN '(entered)' THEN 0 WHEN '(none)' THEN 3
                       ELSE CASE WHEN pf.position IS NULL THEN 2 ELSE 1 END END,
              pf.position, c.f,
              CASE c.t WHEN '(none)' THEN 3 WHEN '(exited)' THEN 4
                       ELSE CASE WHEN pt.position IS NULL THEN 2 ELSE 1 END END,
              pt.position, c.t;
END $$;
COMMENT ON FUNCTION segment.transitions(name, name, date, date) IS
    'customers per (from bucket, to bucket) between the snapshots in force at two dates, with (entered), (exited) and (none)';

-- Daily sizes of every tag, segment, bucket and band, for trend charts.
CREATE VIEW segment.size_history AS
SELECT z.as_of, s.name AS subject, z.kind, z.name, z.members
  FROM segment.size_snapshot z JOIN segment.subject s USING (subject_id);
COMMENT ON VIEW segment.size_history IS
    'members of every tag, segment, scheme.bucket and scorecard.band per subject and as_of date';

-- The DDL guard for scheme buckets and scorecard items (called by
-- segment._check_rules_of after the tags): refuse an ALTER TABLE after which
-- a bucket or item rule no longer analyses or a column it reads has another
-- type.
CREATE FUNCTION segment._check_scheme_rules_of(rel oid) RETURNS void
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
            PERFORM segment._rule_columns(t.relation, t.rule, NULL);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": % of subject "%" depends on it', t.relation, t.what, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s would fail: %s', t.rule, SQLERRM),
                      HINT = format('Alter the %1$s''s %2$s or drop the %1$s first (segment.alter_%1$s, segment.drop_%1$s).',
                                    t.kind, CASE t.kind WHEN 'scheme' THEN 'buckets' ELSE 'items' END);
        END;
        IF segment._column_types(t.relation, t.columns) IS DISTINCT FROM t.column_types THEN
            RAISE EXCEPTION 'cannot change the type of a column that % of subject "%" reads', t.what, t.subject
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Rule %s was written for columns %s of types %s, now %s.',
                                      t.rule, t.columns, t.column_types,
                                      segment._column_types(t.relation, t.columns)),
                      HINT = format('Drop the %1$s, change the column, and create the %1$s again (or alter its %2$s to the new type first).',
                                    t.kind, CASE t.kind WHEN 'scheme' THEN 'buckets' ELSE 'items' END);
        END IF;
    END LOOP;
END $$;
-- segment install script, part 80: the opportunity catalog (issue 4).
-- Rules, staff, contact policy, the opportunities themselves and their
-- transition log. Everything here is business data, not recomputable
-- state, so all of it is dumped.

-- Who works the leads of a subject: one row per relationship manager, read
-- from a table the bank already has (manager, org unit, daily capacity,
-- active). Columns are stored by name and read with dynamic SQL.
CREATE TABLE segment.staff (
    subject_id      int PRIMARY KEY REFERENCES segment.subject ON DELETE CASCADE,
    relation        regclass NOT NULL,
    manager_column  name NOT NULL,
    org_column      name NOT NULL,
    capacity_column name,           -- NULL: no per-manager daily limit from staff
    active_column   name            -- NULL: every listed manager is active
);

-- Contact fatigue: at most max_contacts opportunities per customer in any
-- window of period_days days, across all rules of the subject.
CREATE TABLE segment.contact_policy (
    subject_id   int PRIMARY KEY REFERENCES segment.subject ON DELETE CASCADE,
    max_contacts int NOT NULL CHECK (max_contacts >= 1),
    period_days  int NOT NULL CHECK (period_days >= 1),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   name NOT NULL DEFAULT current_user
);

-- An opportunity rule: who (audience), what (product, channel, message),
-- how urgent (priority, optionally plus a scorecard's score), for how long
-- (valid_days), how often (cooldown_days), measured how (holdout_pct, goal),
-- worked by whom (assignment, capacity).
CREATE TABLE segment.opportunity_rule (
    rule_id            serial PRIMARY KEY,
    subject_id         int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    name               name NOT NULL UNIQUE,
    audience           text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('maintenance', 'mining')),
    product            text NOT NULL,
    channel            text NOT NULL,
    priority           numeric NOT NULL DEFAULT 0,
    priority_scorecard int REFERENCES segment.scorecard,
    template           text,
    template_sql       text,            -- the template compiled to a SQL expression over the row
    template_columns   name[] NOT NULL DEFAULT '{}',
    valid_days         int NOT NULL CHECK (valid_days >= 1),
    cooldown_days      int NOT NULL CHECK (cooldown_days >= 0),
    holdout_pct        numeric NOT NULL CHECK (holdout_pct >= 0 AND holdout_pct <= 50),
    goal               text,
    goal_columns       name[] NOT NULL DEFAULT '{}',
    goal_column_types  regtype[] NOT NULL DEFAULT '{}',
    assignment         text NOT NULL CHECK (assignment IN ('owner', 'org', 'pool')),
    capacity           int CHECK (capacity >= 0),   -- of this rule per manager per day
    description        text,
    active             boolean NOT NULL DEFAULT true,
    version            int NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    created_by         name NOT NULL DEFAULT current_user,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         name NOT NULL DEFAULT current_user
);
CREATE INDEX ON segment.opportunity_rule (subject_id);

CREATE TABLE segment.opportunity_rule_history (
    history_id     bigserial PRIMARY KEY,
    rule_id        int NOT NULL,
    name           name NOT NULL,
    version        int NOT NULL,
    action         text NOT NULL CHECK (action IN ('create', 'alter', 'drop')),
    changed_at     timestamptz NOT NULL DEFAULT now(),
    changed_by     name NOT NULL DEFAULT current_user,
    old_definition jsonb,
    new_definition jsonb
);
CREATE INDEX ON segment.opportunity_rule_history (rule_id);

-- One lead. period is the as_of date of the generate() that made it; a
-- rule makes at most one opportunity per customer per period, which is what
-- makes generate() idempotent. Control opportunities are recorded like the
-- others but never assigned nor dispatched.
--
-- No foreign keys on rule_id and subject_id: opportunities are inserted a
-- million at a time, and the two referential-integrity triggers per row cost
-- as much as the insert itself (measured: 1.9 s -> 3.8 s for 200,000 rows).
-- The functions keep them consistent instead: drop_opportunity_rule and
-- unregister_subject delete a rule's or a subject's opportunities.
CREATE TABLE segment.opportunity (
    opportunity_id bigserial PRIMARY KEY,
    rule_id        int NOT NULL,
    rule_version   int NOT NULL,
    subject_id     int NOT NULL,
    member_id      int8 NOT NULL,
    key            text NOT NULL,
    period         date NOT NULL,
    valid_until    date NOT NULL,      -- last day to act
    is_control     boolean NOT NULL,
    priority       numeric,
    message        text,
    org_unit       text,
    manager        text,               -- assigned manager; NULL: pool (or control)
    assignment     text NOT NULL CHECK (assignment IN ('owner', 'org', 'pool', 'control')),
    pool_reason    text,               -- why it went to the pool
    source         text NOT NULL DEFAULT 'batch',   -- 'batch' or the event that made it
    status         text NOT NULL DEFAULT 'generated'
                   CHECK (status IN ('generated', 'dispatched', 'in_progress',
                                     'completed', 'expired', 'cancelled')),
    status_at      timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    converted      boolean,            -- as reported by the manager on complete()
    amount         numeric,
    note           text,
    cancel_reason  text,
    goal_met       boolean,            -- set by evaluate_outcomes() when the window closes
    evaluated_at   timestamptz,
    UNIQUE (rule_id, member_id, period)
);
-- No index by customer: batch generation checks cool-downs and the contact
-- cap with member sets built from a window of periods; event-triggered
-- generation looks its customers up through (rule_id, member_id, period),
-- naming every rule of the subject.
-- Periods and deadlines grow with insertion order: BRIN indexes find a
-- day's or a window's rows (contact cap, manager loads, expire, review) for
-- almost nothing at insert time, where a btree would add ~2 us a row.
CREATE INDEX ON segment.opportunity USING brin (period);
CREATE INDEX ON segment.opportunity USING brin (valid_until);
-- A manager's load for a day (capacity checks; one event's generation looks
-- up only its customers' managers). Only assigned leads are in it.
CREATE INDEX ON segment.opportunity (period, manager) WHERE manager IS NOT NULL;

-- Every status change: who, when, from, to. (Creation is not logged: the
-- opportunity row itself says when and by which rule version.)
CREATE TABLE segment.opportunity_log (
    log_id         bigserial PRIMARY KEY,
    opportunity_id bigint NOT NULL REFERENCES segment.opportunity ON DELETE CASCADE,
    from_status    text NOT NULL,
    to_status      text NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    changed_by     name NOT NULL DEFAULT current_user,
    note           text
);
CREATE INDEX ON segment.opportunity_log (opportunity_id);

-- A customer whose opportunity could not be made (a template value that does
-- not render, ...): recorded, and the rest of the run goes on.
CREATE TABLE segment.generation_failure (
    failure_id  bigserial PRIMARY KEY,
    rule_id     int NOT NULL REFERENCES segment.opportunity_rule ON DELETE CASCADE,
    member_id   int8 NOT NULL,
    key         text NOT NULL,
    period      date NOT NULL,
    error       text NOT NULL,
    sqlstate    text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON segment.generation_failure (rule_id, period);

-- One row per rule per generate() call: what it did and what it skipped.
CREATE TABLE segment.generation (
    generation_id    bigserial PRIMARY KEY,
    rule_id          int NOT NULL REFERENCES segment.opportunity_rule ON DELETE CASCADE,
    period           date NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    candidates       bigint NOT NULL,
    generated        bigint NOT NULL,
    control          bigint NOT NULL,
    skipped_cooldown bigint NOT NULL,
    skipped_cap      bigint NOT NULL,
    over_capacity    bigint NOT NULL,
    failed           bigint NOT NULL,
    error            text,            -- the rule failed as a whole and made nothing
    run_by           name NOT NULL DEFAULT current_user
);
CREATE INDEX ON segment.generation (rule_id, period);

SELECT pg_catalog.pg_extension_config_dump('segment.staff', '');
SELECT pg_catalog.pg_extension_config_dump('segment.contact_policy', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_rule', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_rule_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_rule_history', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_rule_history_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_opportunity_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_log', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_log_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.generation_failure', '');
SELECT pg_catalog.pg_extension_config_dump('segment.generation_failure_failure_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.generation', '');
SELECT pg_catalog.pg_extension_config_dump('segment.generation_generation_id_seq', '');
-- segment install script, part 81: defining opportunity rules (issue 4,
-- parts 1, 2, 5, 6): staff, contact policy, message templates and the rules
-- themselves. Generation is part 84, the lifecycle part 82.

-- The staff table of a subject: who can be assigned its leads.
CREATE FUNCTION segment.register_staff(subject name, relation regclass, manager_column name,
                                       org_column name, capacity_column name DEFAULT NULL,
                                       active_column name DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment._subject_id(subject);
    col name;
    typ regtype;
BEGIN
    IF relation IS NULL OR manager_column IS NULL OR org_column IS NULL THEN
        RAISE EXCEPTION 'relation, manager_column and org_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT has_table_privilege(relation, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', relation
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Generation reads the staff table: it must be readable by you.';
    END IF;
    FOREACH col IN ARRAY ARRAY[manager_column, org_column, capacity_column, active_column] LOOP
        CONTINUE WHEN col IS NULL;
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
         WHERE a.attrelid = relation AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS NULL THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, relation
                USING ERRCODE = 'undefined_column';
        END IF;
        IF col = capacity_column AND typ NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN
            RAISE EXCEPTION 'capacity column "%" has type %, not an integer', col, typ
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'The capacity column holds how many leads a manager can take per day.';
        END IF;
        IF col = active_column AND typ <> 'bool'::regtype THEN
            RAISE EXCEPTION 'active column "%" has type %, not boolean', col, typ
                USING ERRCODE = 'datatype_mismatch';
        END IF;
    END LOOP;
    INSERT INTO segment.staff AS s (subject_id, relation, manager_column, org_column,
                                    capacity_column, active_column)
    VALUES (sid, relation, manager_column, org_column, capacity_column, active_column)
    ON CONFLICT (subject_id) DO UPDATE
       SET relation = excluded.relation, manager_column = excluded.manager_column,
           org_column = excluded.org_column, capacity_column = excluded.capacity_column,
           active_column = excluded.active_column;
END $$;
COMMENT ON FUNCTION segment.register_staff(name, regclass, name, name, name, name) IS
    'names the table of relationship managers (manager, org unit, daily capacity, active) that leads are assigned to';

CREATE FUNCTION segment.set_contact_policy(subject name, max_contacts int, period_days int DEFAULT 30)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE sid int := segment._subject_id(subject);
BEGIN
    IF max_contacts IS NULL THEN
        DELETE FROM segment.contact_policy p WHERE p.subject_id = sid;
        RETURN;
    END IF;
    IF max_contacts < 1 OR period_days IS NULL OR period_days < 1 THEN
        RAISE EXCEPTION 'contact policy needs max_contacts >= 1 and period_days >= 1, got % and %',
                        max_contacts, period_days
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass max_contacts => NULL to remove the policy.';
    END IF;
    INSERT INTO segment.contact_policy AS p (subject_id, max_contacts, period_days)
    VALUES (sid, max_contacts, period_days)
    ON CONFLICT (subject_id) DO UPDATE
       SET max_contacts = excluded.max_contacts, period_days = excluded.period_days,
           updated_at = now(), updated_by = current_user;
END $$;
COMMENT ON FUNCTION segment.set_contact_policy(name, int, int) IS
    'at most max_contacts opportunities per customer in any period_days days, across all rules (NULL removes it)';

-- Masks a sensitive value for display to managers (src/mask.c): a value
-- with 7 or more digits (phone, id or card number) keeps its first 3 and last
-- 4 characters; an e-mail keeps the first character of its local part and the
-- domain; anything else (a name) keeps its first character.
CREATE FUNCTION segment.mask(value text) RETURNS text
    AS 'MODULE_PATHNAME', 'segment_mask' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment.mask(text) IS
    'masks a phone/id number (138****5678), an e-mail (a***@x.com) or a name (first character kept)';

-- Compiles a message template to a SQL expression over row alias "t" of the
-- subject's table. {column} or {column|format}; {{ and }} are literal braces.
-- Formats: mask, date, date:<to_char pattern>, amount, integer, upper, lower.
-- A NULL value renders as the empty string. Errors carry the position.
CREATE FUNCTION segment._compile_template(rel regclass, template text, what text,
                                          OUT sql text, OUT columns name[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    i int := 1;
    n int := length(template);
    ch text;
    lit text := '';
    parts text[] := '{}';
    close_at int;
    ph text;
    col text;
    fmt text;
    arg text;
    typ regtype;
    expr text;
    numeric_types regtype[] := '{int2,int4,int8,numeric,float4,float8,money}';
    date_types regtype[] := '{date,timestamp,timestamptz}';
    text_types regtype[] := '{text,varchar,bpchar}';
BEGIN
    columns := '{}';
    WHILE i <= n LOOP
        ch := substr(template, i, 1);
        IF ch = '{' AND substr(template, i + 1, 1) = '{' THEN
            lit := lit || '{'; i := i + 2; CONTINUE;
        ELSIF ch = '}' AND substr(template, i + 1, 1) = '}' THEN
            lit := lit || '}'; i := i + 2; CONTINUE;
        ELSIF ch = '}' THEN
            RAISE EXCEPTION 'unmatched "}" in the template of %', what
                USING ERRCODE = 'syntax_error',
                      DETAIL = format('At character %s of %L.', i, template),
                      HINT = 'Write }} for a literal brace.';
        ELSIF ch <> '{' THEN
            lit := lit || ch; i := i + 1; CONTINUE;
        END IF;
        close_at := position('}' IN substr(template, i + 1));
        IF close_at = 0 THEN
            RAISE EXCEPTION 'unterminated placeholder in the template of %', what
                USING ERRCODE = 'syntax_error',
                      DETAIL = format('The "{" at character %s of %L has no closing "}".', i, template),
                      HINT = 'Write {column} or {column|format}; {{ for a literal brace.';
        END IF;
        ph := substr(template, i + 1, close_at - 1);
        col := btrim(split_part(ph, '|', 1));
        fmt := nullif(btrim(substr(ph, length(split_part(ph, '|', 1)) + 2)), '');
        arg := NULL;
        IF fmt LIKE '%:%' THEN
            arg := substr(fmt, position(':' IN fmt) + 1);
            fmt := btrim(split_part(fmt, ':', 1));
        END IF;
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS NULL THEN
            RAISE EXCEPTION 'unknown placeholder {%} in the template of %', ph, what
                USING ERRCODE = 'undefined_column',
                      DETAIL = format('%s has no column "%s" (character %s of the template).', rel, col, i),
                      HINT = 'Placeholders name columns of the subject''s table, e.g. {customer_name|mask}.';
        END IF;
        expr := format('t.%I', col);
        IF fmt IS NULL THEN
            expr := expr || '::text';
        ELSIF fmt = 'mask' AND arg IS NULL THEN
            expr := format('segment.mask(%s::text)', expr);
        ELSIF fmt IN ('upper', 'lower') AND arg IS NULL THEN
            expr := format('%s(%s::text)', fmt, expr);
        ELSIF fmt = 'date' AND (typ = ANY (date_types) OR typ = ANY (text_types)) THEN
            -- a text column is cast: a value that is not a date fails for that
            -- customer only (recorded by generate as a failure)
            expr := format('to_char(%s::%s, %L)', expr,
                           CASE WHEN typ = ANY (text_types) THEN 'date' ELSE typ::text END,
                           coalesce(arg, 'YYYY-MM-DD'));
        ELSIF fmt IN ('amount', 'integer') AND arg IS NULL
              AND (typ = ANY (numeric_types) OR typ = ANY (text_types)) THEN
            expr := format('to_char(%s::numeric, %L)', expr,
                           CASE fmt WHEN 'amount' THEN 'FM999,999,999,999,990.00'
                                    ELSE 'FM999,999,999,999,990' END);
        ELSIF fmt IN ('mask', 'date', 'amount', 'integer', 'upper', 'lower') THEN
            RAISE EXCEPTION 'format "%" does not apply to column "%" of type % in the template of %',
                            ph, col, typ, what
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'date takes date, timestamp or text columns, optionally date:<to_char pattern>; '
                             'amount and integer take numbers or text; mask, upper and lower take anything, without an argument.';
        ELSE
            RAISE EXCEPTION 'unknown format "%" in placeholder {%} of the template of %', fmt, ph, what
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Formats: mask, date, date:<to_char pattern>, amount, integer, upper, lower.';
        END IF;
        IF lit <> '' THEN
            parts := parts || quote_literal(lit);
            lit := '';
        END IF;
        parts := parts || expr;
        IF NOT col = ANY (columns) THEN
            columns := columns || col::name;
        END IF;
        i := i + close_at + 1;
    END LOOP;
    IF lit <> '' THEN
        parts := parts || quote_literal(lit);
    END IF;
    sql := CASE cardinality(parts) WHEN 0 THEN quote_literal('')
                                   ELSE 'concat(' || array_to_string(parts, ', ') || ')' END;
END $$;

CREATE FUNCTION segment._opportunity_rule(rule name, for_update boolean DEFAULT false)
RETURNS segment.opportunity_rule LANGUAGE plpgsql AS $$
DECLARE r segment.opportunity_rule;
BEGIN
    IF for_update THEN
        SELECT * INTO r FROM segment.opportunity_rule x WHERE x.name = rule FOR UPDATE;
    ELSE
        SELECT * INTO r FROM segment.opportunity_rule x WHERE x.name = rule;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'opportunity rule "%" does not exist', rule
            USING ERRCODE = 'undefined_object',
                  HINT = 'Rules are listed in segment.opportunity_rule.';
    END IF;
    RETURN r;
END $$;

CREATE FUNCTION segment._opportunity_rule_definition(r segment.opportunity_rule) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'audience', r.audience, 'kind', r.kind, 'product', r.product, 'channel', r.channel,
        'priority', r.priority,
        'priority_scorecard', (SELECT c.name FROM segment.scorecard c WHERE c.scorecard_id = r.priority_scorecard),
        'template', r.template, 'valid_days', r.valid_days, 'cooldown_days', r.cooldown_days,
        'holdout_pct', r.holdout_pct, 'goal', r.goal, 'assignment', r.assignment,
        'capacity', r.capacity, 'description', r.description, 'active', r.active)
$$;

-- Validates a rule as it would be after a create or alter and fills in the
-- derived columns (template_sql, template_columns, goal_columns, ...).
-- Raises on the first bad parameter; changes nothing.
CREATE FUNCTION segment._check_opportunity_rule(r segment.opportunity_rule, scorecard name)
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
    PERFORM segment._audience_check(s.name, r.audience);
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
        r.goal_columns := segment._rule_columns(s.relation, r.goal, 'goal of ' || what);
    END IF;
    r.goal_column_types := segment._column_types(s.relation, r.goal_columns);
    r.template := nullif(r.template, '');
    r.template_sql := NULL;
    r.template_columns := '{}';
    IF r.template IS NOT NULL THEN
        SELECT x.sql, x.columns INTO t FROM segment._compile_template(s.relation, r.template, what) x;
        r.template_sql := t.sql;
        r.template_columns := t.columns;
    END IF;
    RETURN r;
END $$;

CREATE FUNCTION segment.create_opportunity_rule(
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
    r.subject_id := segment._subject_id(subject);
    PERFORM segment._check_name('opportunity rule', name);
    PERFORM segment._lock_definitions();
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
    r := segment._check_opportunity_rule(r, priority_scorecard);
    INSERT INTO segment.opportunity_rule
        (subject_id, name, audience, kind, product, channel, priority, priority_scorecard,
         template, template_sql, template_columns, valid_days, cooldown_days, holdout_pct,
         goal, goal_columns, goal_column_types, assignment, capacity, description)
    VALUES (r.subject_id, r.name, r.audience, r.kind, r.product, r.channel, r.priority,
            r.priority_scorecard, r.template, r.template_sql, r.template_columns, r.valid_days,
            r.cooldown_days, r.holdout_pct, r.goal, r.goal_columns, r.goal_column_types,
            r.assignment, r.capacity, r.description)
    RETURNING * INTO r;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action, new_definition)
    VALUES (r.rule_id, r.name, r.version, 'create', segment._opportunity_rule_definition(r));
    RETURN r.rule_id;
END $$;
COMMENT ON FUNCTION segment.create_opportunity_rule(name, name, text, text, text, text, numeric,
    name, text, int, int, numeric, text, text, int, text) IS
    'defines a rule that generates leads for an audience (see docs/opportunities.md)';

-- Every parameter NULL keeps the current value; '' removes a template or goal.
CREATE FUNCTION segment.alter_opportunity_rule(
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
    PERFORM segment._lock_definitions();
    old := segment._opportunity_rule(name, true);
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
    r := segment._check_opportunity_rule(r, card);
    IF segment._opportunity_rule_definition(r) = segment._opportunity_rule_definition(old) THEN
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
           updated_at = now(), updated_by = current_user
     WHERE x.rule_id = old.rule_id
    RETURNING * INTO r;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action,
                                                  old_definition, new_definition)
    VALUES (r.rule_id, r.name, r.version, 'alter', segment._opportunity_rule_definition(old),
            segment._opportunity_rule_definition(r));
END $$;
COMMENT ON FUNCTION segment.alter_opportunity_rule(name, text, text, text, text, numeric, name,
    text, int, int, numeric, text, text, int, text, boolean) IS
    'changes an opportunity rule (a new version); NULL keeps a value, '''' removes a template, goal or scorecard';

CREATE FUNCTION segment.drop_opportunity_rule(name name, "cascade" boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
    n bigint;
BEGIN
    PERFORM segment._lock_definitions();
    r := segment._opportunity_rule(name, true);
    SELECT count(*) INTO n FROM segment.opportunity o WHERE o.rule_id = r.rule_id;
    IF n > 0 AND NOT coalesce("cascade", false) THEN
        RAISE EXCEPTION 'cannot drop opportunity rule "%": it has % opportunities', name, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Deactivate it with segment.alter_opportunity_rule(name => ..., active => false) to keep its history, or drop it with "cascade" => true to delete its opportunities too.';
    END IF;
    DELETE FROM segment.opportunity o WHERE o.rule_id = r.rule_id;
    DELETE FROM segment.generation g WHERE g.rule_id = r.rule_id;
    DELETE FROM segment.opportunity_rule x WHERE x.rule_id = r.rule_id;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action, old_definition)
    VALUES (r.rule_id, r.name, r.version, 'drop', segment._opportunity_rule_definition(r));
END $$;
COMMENT ON FUNCTION segment.drop_opportunity_rule(name, boolean) IS
    'drops an opportunity rule; with "cascade" also its opportunities';

-- Refuses (2BP01) to drop a tag, segment, scheme or scorecard that an
-- opportunity rule's audience, priority or entry audience uses.
CREATE FUNCTION segment._refuse_if_rules_use(kind text, n name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    qualified boolean := kind IN ('scheme', 'scorecard');
    users text;
BEGIN
    SELECT string_agg(DISTINCT format('"%s"', r.name), ', ') INTO users
      FROM segment.opportunity_rule r
      LEFT JOIN segment.entry_rule e USING (rule_id)
     WHERE EXISTS (SELECT 1 FROM segment._audience_names(r.audience) a
                    WHERE CASE WHEN qualified THEN a.qualifier = n
                               ELSE a.qualifier IS NULL AND a.name = n END)
        OR EXISTS (SELECT 1 FROM segment._audience_names(e.audience) a
                    WHERE CASE WHEN qualified THEN a.qualifier = n
                               ELSE a.qualifier IS NULL AND a.name = n END)
        OR (_refuse_if_rules_use.kind = 'scorecard' AND r.priority_scorecard =
            (SELECT c.scorecard_id FROM segment.scorecard c WHERE c.name = n));
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop % "%" because opportunity rules use it', kind, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Used by opportunity rule(s) %s (audience, entry audience or priority scorecard).', users),
                  HINT = 'Change those rules with segment.alter_opportunity_rule() or drop them first; cascade does not drop opportunity rules.';
    END IF;
END $$;

-- DDL guard (part 60): refuse changes to columns a goal or template reads.
CREATE FUNCTION segment._check_opportunity_rules_of(rel oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT o.name, o.goal, o.goal_columns, o.goal_column_types, o.template, s.relation
               FROM segment.opportunity_rule o JOIN segment.subject s USING (subject_id)
              WHERE s.relation = rel
    LOOP
        BEGIN
            IF r.goal IS NOT NULL THEN
                PERFORM segment._rule_columns(r.relation, r.goal, NULL);
            END IF;
            IF r.template IS NOT NULL THEN
                PERFORM segment._compile_template(r.relation, r.template, 'x');
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": opportunity rule "%" depends on it', r.relation, r.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Its goal or template would fail: %s', SQLERRM),
                      HINT = 'Alter or drop the opportunity rule first (segment.alter_opportunity_rule).';
        END;
        IF segment._column_types(r.relation, r.goal_columns) IS DISTINCT FROM r.goal_column_types THEN
            RAISE EXCEPTION 'cannot change the type of a column that the goal of opportunity rule "%" reads', r.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Alter the rule''s goal first.';
        END IF;
    END LOOP;
END $$;
-- segment install script, part 82: the life of an opportunity (issue 4,
-- parts 7 and 8). The state machine (dispatch, start, complete, cancel,
-- expire), every transition logged in segment.opportunity_log; the outcome
-- of each opportunity once its window closes (evaluate_outcomes); and the
-- review: per rule and month, treatment against control with lift, its 95%
-- interval and p-value; per manager, executed, converted and leaked.
--
--   generated --dispatch--> dispatched --start--> in_progress --complete--> completed
--       |                       |                      |
--       +-----------------------+----------------------+--cancel--> cancelled
--       +-----------------------+----------------------+--expire--> expired
--
-- completed, expired and cancelled are final. Control opportunities are
-- never dispatched, started or completed; they can be cancelled or expire.
-- dispatch, start, complete and cancel act only up to the last day to act
-- (valid_until, compared with current_date): after it, the only way out is
-- expire(), so that a missed deadline always shows as a leak.

-- The normal distribution function (src/stats.c, erfc from the C library).
CREATE FUNCTION segment._normal_cdf(x float8) RETURNS float8
    AS 'MODULE_PATHNAME', 'segment_normal_cdf' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment._normal_cdf(float8) IS
    'P(Z <= x) for a standard normal Z (internal: used by the review views)';

-- Locks one opportunity and checks that verb may move it from its status
-- to to_status now; returns the locked row. Errors: 22004 (NULL id), 42704
-- (unknown id), 55000 (wrong status, control, deadline passed).
CREATE FUNCTION segment._lock_for(opportunity_id bigint, verb text, allowed_from text[],
                                  to_status text, control_allowed boolean)
RETURNS segment.opportunity LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    IF opportunity_id IS NULL THEN
        RAISE EXCEPTION 'opportunity_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO o FROM segment.opportunity x WHERE x.opportunity_id = _lock_for.opportunity_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'opportunity % does not exist', opportunity_id
            USING ERRCODE = 'undefined_object',
                  HINT = 'Opportunities are listed in segment.opportunity.';
    END IF;
    IF NOT o.status = ANY (allowed_from) THEN
        RAISE EXCEPTION 'cannot % opportunity %: it is %', verb, opportunity_id, o.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The transition from "%s" to "%s" is not allowed.', o.status, to_status),
                  HINT = CASE
                      WHEN o.status IN ('completed', 'expired', 'cancelled')
                          THEN 'Completed, expired and cancelled opportunities are final.'
                      ELSE format('%s applies to an opportunity that is %s.', verb,
                                  array_to_string(allowed_from, ', ', '') || CASE
                                      WHEN to_status = 'in_progress' THEN ' (dispatch it first)'
                                      WHEN to_status = 'completed' THEN ' (start it first with segment.start())'
                                      ELSE '' END)
                  END;
    END IF;
    IF o.is_control AND NOT control_allowed THEN
        RAISE EXCEPTION 'cannot % opportunity %: it is a control opportunity', verb, opportunity_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The transition from "%s" to "%s" is not allowed for the control group.', o.status, to_status),
                  HINT = 'Control opportunities measure what happens without contact: they are never dispatched, started or completed, only cancelled or expired.';
    END IF;
    IF o.valid_until < current_date THEN
        RAISE EXCEPTION 'cannot % opportunity %: its last day to act was %', verb, opportunity_id, o.valid_until
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The transition from "%s" to "%s" is not allowed after valid_until.', o.status, to_status),
                  HINT = 'A missed deadline is closed by segment.expire(), which marks the opportunity expired.';
    END IF;
    RETURN o;
END $$;

-- Records one transition of a row already locked and updated.
CREATE FUNCTION segment._log_transition(opportunity_id bigint, from_status text, to_status text, note text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO segment.opportunity_log (opportunity_id, from_status, to_status, changed_at, changed_by, note)
    VALUES (opportunity_id, from_status, to_status, now(), current_user, note);
$$;

CREATE FUNCTION segment.dispatch(opportunity_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    o := segment._lock_for(opportunity_id, 'dispatch', '{generated}', 'dispatched', false);
    UPDATE segment.opportunity x SET status = 'dispatched', status_at = now()
     WHERE x.opportunity_id = o.opportunity_id;
    PERFORM segment._log_transition(o.opportunity_id, o.status, 'dispatched', NULL);
END $$;
COMMENT ON FUNCTION segment.dispatch(bigint) IS
    'generated -> dispatched (not for control opportunities, not after valid_until)';

-- A batch: all or nothing. Rows are locked in id order (no deadlock between
-- two batches); an id given twice counts once. Returns how many were dispatched.
CREATE FUNCTION segment.dispatch(opportunity_ids bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    id bigint;
    n bigint := 0;
BEGIN
    IF opportunity_ids IS NULL THEN
        RAISE EXCEPTION 'opportunity_ids must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF array_position(opportunity_ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'opportunity_ids must not contain NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  DETAIL = format('Element %s is NULL.', array_position(opportunity_ids, NULL));
    END IF;
    FOR id IN SELECT DISTINCT u FROM unnest(opportunity_ids) u ORDER BY u LOOP
        PERFORM segment.dispatch(id);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION segment.dispatch(bigint[]) IS
    'Dispatches every opportunity of the array, or none if one cannot be; returns the count';

CREATE FUNCTION segment.start(opportunity_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    o := segment._lock_for(opportunity_id, 'start', '{dispatched}', 'in_progress', false);
    UPDATE segment.opportunity x SET status = 'in_progress', status_at = now()
     WHERE x.opportunity_id = o.opportunity_id;
    PERFORM segment._log_transition(o.opportunity_id, o.status, 'in_progress', NULL);
END $$;
COMMENT ON FUNCTION segment.start(bigint) IS
    'dispatched -> in_progress: the manager is working the opportunity';

CREATE FUNCTION segment.complete(opportunity_id bigint, converted boolean,
                                 amount numeric DEFAULT NULL, note text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    IF converted IS NULL THEN
        RAISE EXCEPTION 'converted must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Say whether the customer took the product: true or false.';
    END IF;
    IF amount < 0 OR amount IN ('NaN'::numeric, 'Infinity'::numeric) THEN
        RAISE EXCEPTION 'amount must be a finite number, zero or positive, not %', amount
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT converted AND amount <> 0 THEN
        RAISE EXCEPTION 'amount % given for an opportunity that did not convert', amount
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Leave amount NULL (or 0) when converted is false.';
    END IF;
    o := segment._lock_for(opportunity_id, 'complete', '{in_progress}', 'completed', false);
    UPDATE segment.opportunity x
       SET status = 'completed', status_at = now(),
           converted = complete.converted, amount = complete.amount, note = complete.note
     WHERE x.opportunity_id = o.opportunity_id;
    PERFORM segment._log_transition(o.opportunity_id, o.status, 'completed', note);
END $$;
COMMENT ON FUNCTION segment.complete(bigint, boolean, numeric, text) IS
    'in_progress -> completed, with the manager''s outcome (converted, amount, note)';

CREATE FUNCTION segment.cancel(opportunity_id bigint, reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o segment.opportunity;
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'a reason is required to cancel an opportunity'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Say why, e.g. segment.cancel(42, ''customer asked not to be contacted'').';
    END IF;
    o := segment._lock_for(opportunity_id, 'cancel', '{generated,dispatched,in_progress}', 'cancelled', true);
    UPDATE segment.opportunity x
       SET status = 'cancelled', status_at = now(), cancel_reason = reason
     WHERE x.opportunity_id = o.opportunity_id;
    PERFORM segment._log_transition(o.opportunity_id, o.status, 'cancelled', reason);
END $$;
COMMENT ON FUNCTION segment.cancel(bigint, text) IS
    'Any open state -> cancelled, with a reason (control opportunities too; not after valid_until)';

-- Every open opportunity whose last day to act is before as_of becomes
-- expired, control ones included. Safe to run concurrently with the others:
-- rows are locked, and one completed meanwhile is left alone.
CREATE FUNCTION segment.expire(as_of date DEFAULT current_date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date, not %', coalesce(as_of::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH due AS (
        SELECT o.opportunity_id, o.status, o.valid_until
          FROM segment.opportunity o
         WHERE o.status IN ('generated', 'dispatched', 'in_progress')
           AND o.valid_until < expire.as_of
         ORDER BY o.opportunity_id
           FOR UPDATE
    ), moved AS (
        UPDATE segment.opportunity o SET status = 'expired', status_at = now()
          FROM due
         WHERE o.opportunity_id = due.opportunity_id
        RETURNING due.opportunity_id, due.status AS from_status, due.valid_until
    )
    INSERT INTO segment.opportunity_log (opportunity_id, from_status, to_status, changed_at, changed_by, note)
    SELECT m.opportunity_id, m.from_status, 'expired', now(), current_user,
           format('last day to act %s passed (expire as of %s)', m.valid_until, expire.as_of)
      FROM moved m;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
COMMENT ON FUNCTION segment.expire(date) IS
    'Open opportunities with valid_until < as_of -> expired; returns how many';

-- For every opportunity whose window has closed (valid_until < as_of) and
-- that has no outcome yet, treatment and control alike: goal_met = the
-- rule's goal IS TRUE on the customer's current row (false when the row is
-- gone), evaluated with segment.as_of() = as_of. A rule without a goal
-- takes the manager's word: goal_met = converted IS TRUE for treatment,
-- NULL for control (nobody reports on control customers). Each opportunity
-- is evaluated once; a rerun finds nothing left to do.
CREATE FUNCTION segment.evaluate_outcomes(as_of date DEFAULT current_date) RETURNS bigint
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
        SELECT ru.rule_id, ru.name, ru.goal, s.relation, s.key_column, s.key_type
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
            -- The goal is evaluated in a scope where only the customer's
            -- row is visible, so its column names cannot clash with ours.
            BEGIN
                EXECUTE format($q$
                    WITH due AS (
                        SELECT o.opportunity_id, o.%1$I AS k FROM segment.opportunity o
                         WHERE o.rule_id = $1 AND o.valid_until < $2 AND o.evaluated_at IS NULL
                         ORDER BY o.opportunity_id
                           FOR UPDATE
                    ), met AS (
                        SELECT %2$s AS k, ((%3$s) IS TRUE) AS met
                          FROM %4$s t
                         WHERE %2$s IN (SELECT due.k FROM due)
                    )
                    UPDATE segment.opportunity o
                       SET goal_met = coalesce(met.met, false), evaluated_at = now()
                      FROM due LEFT JOIN met ON met.k = due.k
                     WHERE o.opportunity_id = due.opportunity_id$q$,
                    opp_key, key_expr, r.goal, r.relation)
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
COMMENT ON FUNCTION segment.evaluate_outcomes(date) IS
    'Sets goal_met for every opportunity whose window closed before as_of and that has no outcome yet; returns how many';

-- The two-proportion comparison of treatment (xt converted of nt) against
-- control (xc of nc): rates, absolute lift with its 95% Wald interval
-- (unpooled standard error), relative lift, and the two-sided p-value of
-- the z-test with the pooled standard error. NULL where undefined.
CREATE FUNCTION segment._two_proportions(xt bigint, nt bigint, xc bigint, nc bigint,
    OUT treatment_rate float8, OUT control_rate float8, OUT lift float8,
    OUT relative_lift float8, OUT lift_low float8, OUT lift_high float8,
    OUT z float8, OUT p_value float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    pt float8;
    pc float8;
    pp float8;
    se float8;
    se0 float8;
BEGIN
    IF nt > 0 THEN pt := xt::float8 / nt; END IF;
    IF nc > 0 THEN pc := xc::float8 / nc; END IF;
    treatment_rate := pt;
    control_rate := pc;
    IF pt IS NULL OR pc IS NULL THEN
        RETURN;
    END IF;
    lift := pt - pc;
    IF pc > 0 THEN relative_lift := pt / pc - 1; END IF;
    se := sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc);
    -- 1.959963984540054 = the 97.5% quantile of the standard normal
    lift_low := lift - 1.959963984540054 * se;
    lift_high := lift + 1.959963984540054 * se;
    pp := (xt + xc)::float8 / (nt + nc);
    se0 := sqrt(pp * (1 - pp) * (1.0 / nt + 1.0 / nc));
    IF se0 > 0 THEN
        z := lift / se0;
        p_value := 2 * segment._normal_cdf(-abs(z));
    END IF;
END $$;

-- One row per opportunity with what the reviews count.
CREATE VIEW segment._opportunity_facts AS
SELECT o.opportunity_id, o.rule_id, o.subject_id, o.period,
       date_trunc('month', o.period)::date AS month,
       o.is_control, o.manager, o.org_unit, o.status,
       (o.status IN ('dispatched', 'in_progress', 'completed')
        OR (o.status IN ('expired', 'cancelled')
            AND EXISTS (SELECT 1 FROM segment.opportunity_log l
                         WHERE l.opportunity_id = o.opportunity_id AND l.to_status = 'dispatched')))
           AS was_dispatched,
       o.converted, o.amount, o.goal_met, o.evaluated_at IS NOT NULL AS evaluated
  FROM segment.opportunity o;

-- Aggregates of the facts per rule over a set of periods (month NULL: all).
CREATE FUNCTION segment._rule_review_rows(from_period date, to_period date, by_month boolean)
RETURNS TABLE (rule name, rule_id int, period date, generated bigint, control bigint,
               dispatched bigint, executed bigint, cancelled bigint, expired bigint,
               open bigint, leak_rate float8, reported_converted bigint, amount numeric,
               treatment_evaluated bigint, treatment_converted bigint,
               control_evaluated bigint, control_converted bigint,
               treatment_rate float8, control_rate float8, lift float8, relative_lift float8,
               lift_low float8, lift_high float8, p_value float8)
LANGUAGE sql STABLE AS $$
    SELECT r.name, a.rule_id, a.month, a.generated, a.control, a.dispatched, a.executed,
           a.cancelled, a.expired, a.open,
           a.expired::float8 / nullif(a.executed + a.expired, 0),
           a.reported_converted, a.amount,
           a.t_n, a.t_x, a.c_n, a.c_x,
           s.treatment_rate, s.control_rate, s.lift, s.relative_lift, s.lift_low, s.lift_high, s.p_value
      FROM (SELECT f.rule_id, CASE WHEN by_month THEN f.month END AS month,
                   count(*) FILTER (WHERE NOT f.is_control) AS generated,
                   count(*) FILTER (WHERE f.is_control) AS control,
                   count(*) FILTER (WHERE NOT f.is_control AND f.was_dispatched) AS dispatched,
                   count(*) FILTER (WHERE NOT f.is_control AND f.status = 'completed') AS executed,
                   count(*) FILTER (WHERE NOT f.is_control AND f.status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE NOT f.is_control AND f.status = 'expired') AS expired,
                   count(*) FILTER (WHERE NOT f.is_control
                                      AND f.status IN ('generated', 'dispatched', 'in_progress')) AS open,
                   count(*) FILTER (WHERE NOT f.is_control AND f.converted) AS reported_converted,
                   sum(f.amount) FILTER (WHERE NOT f.is_control AND f.converted) AS amount,
                   count(*) FILTER (WHERE NOT f.is_control AND f.goal_met IS NOT NULL) AS t_n,
                   count(*) FILTER (WHERE NOT f.is_control AND f.goal_met) AS t_x,
                   count(*) FILTER (WHERE f.is_control AND f.goal_met IS NOT NULL) AS c_n,
                   count(*) FILTER (WHERE f.is_control AND f.goal_met) AS c_x
              FROM segment._opportunity_facts f
             WHERE (from_period IS NULL OR f.period >= from_period)
               AND (to_period IS NULL OR f.period <= to_period)
             GROUP BY 1, 2) a
      JOIN segment.opportunity_rule r ON r.rule_id = a.rule_id
     CROSS JOIN LATERAL segment._two_proportions(a.t_x, a.t_n, a.c_x, a.c_n) s
$$;

-- Per rule and calendar month of generation (opportunity.period).
CREATE VIEW segment.rule_review AS
SELECT * FROM segment._rule_review_rows(NULL, NULL, true);
COMMENT ON VIEW segment.rule_review IS
    'Per opportunity rule and month of generation: funnel, leak rate, treatment against control conversion, lift, 95% interval, p-value';

-- The same for any window of generation dates (inclusive), one row per rule.
CREATE FUNCTION segment.review(from_period date, to_period date)
RETURNS TABLE (rule name, rule_id int, period_from date, period_to date, generated bigint,
               control bigint, dispatched bigint, executed bigint, cancelled bigint,
               expired bigint, open bigint, leak_rate float8, reported_converted bigint,
               amount numeric, treatment_evaluated bigint, treatment_converted bigint,
               control_evaluated bigint, control_converted bigint,
               treatment_rate float8, control_rate float8, lift float8, relative_lift float8,
               lift_low float8, lift_high float8, p_value float8)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF from_period IS NULL OR to_period IS NULL THEN
        RAISE EXCEPTION 'from_period and to_period must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF from_period > to_period THEN
        RAISE EXCEPTION 'from_period % is after to_period %', from_period, to_period
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT x.rule, x.rule_id, review.from_period, review.to_period, x.generated, x.control,
           x.dispatched, x.executed, x.cancelled, x.expired, x.open, x.leak_rate,
           x.reported_converted, x.amount, x.treatment_evaluated, x.treatment_converted,
           x.control_evaluated, x.control_converted, x.treatment_rate, x.control_rate,
           x.lift, x.relative_lift, x.lift_low, x.lift_high, x.p_value
      FROM segment._rule_review_rows(review.from_period, review.to_period, false) x
     ORDER BY x.rule;
END $$;
COMMENT ON FUNCTION segment.review(date, date) IS
    'segment.rule_review over the opportunities generated from from_period to to_period (inclusive), one row per rule';

-- Per manager and month: the treatment opportunities assigned to them. The
-- unassigned pool is the row with manager NULL.
CREATE VIEW segment.manager_review AS
SELECT f.manager, f.month AS period,
       count(*) AS assigned,
       count(*) FILTER (WHERE f.was_dispatched) AS dispatched,
       count(*) FILTER (WHERE f.status = 'completed') AS executed,
       count(*) FILTER (WHERE f.status = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE f.status = 'expired') AS expired,
       count(*) FILTER (WHERE f.status IN ('generated', 'dispatched', 'in_progress')) AS open,
       count(*) FILTER (WHERE f.status = 'expired')::float8
           / nullif(count(*) FILTER (WHERE f.status IN ('completed', 'expired')), 0) AS leak_rate,
       count(*) FILTER (WHERE f.converted) AS reported_converted,
       count(*) FILTER (WHERE f.converted)::float8
           / nullif(count(*) FILTER (WHERE f.status = 'completed'), 0) AS reported_conversion_rate,
       sum(f.amount) FILTER (WHERE f.converted) AS amount,
       count(*) FILTER (WHERE f.goal_met IS NOT NULL) AS evaluated,
       count(*) FILTER (WHERE f.goal_met) AS goal_met,
       count(*) FILTER (WHERE f.goal_met)::float8
           / nullif(count(*) FILTER (WHERE f.goal_met IS NOT NULL), 0) AS goal_rate
  FROM segment._opportunity_facts f
 WHERE NOT f.is_control
 GROUP BY f.manager, f.month;
COMMENT ON VIEW segment.manager_review IS
    'Per manager (NULL: the pool) and month of generation: assigned, dispatched, executed, expired, leak rate, converted';
-- segment install script, part 84: generating opportunities (issue 4,
-- parts 2-6). Set-based: the candidates of each rule come from its
-- audience's member set (no rescan of the rules), minus the members in
-- cool-down (a member set of the rule's recent opportunities); one join with
-- the subject's table fetches key, owner, org unit and renders the message;
-- the contact cap, assignment and the insert are one statement each over a
-- temporary table. docs/opportunities.md explains the policy; the order of
-- the steps is part of it:
--   audience -> cool-down -> render (failures recorded) -> contact cap
--   (priority wins) -> control group -> owner -> org unit -> pool.

-- Control membership: a fixed hash of (rule, member, period), so reruns and
-- back-fills agree. 10,000 buckets: holdout_pct has two decimals of effect.
CREATE FUNCTION segment._in_control(rule_id int, member_id int8, period date, holdout_pct numeric)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT abs(hashint8extended(member_id, rule_id::int8 * 1000003 + (period - date '2000-01-01')) % 10000)
           < holdout_pct * 100
$$;
COMMENT ON FUNCTION segment._in_control(int, int8, date, numeric) IS
    'whether a candidate falls in the control group of a rule for a period (deterministic)';

-- A column of the subject's row (alias t) as text in generated SQL, or a
-- NULL when the subject has no such column (owner, org unit).
CREATE FUNCTION segment._column_as_text(col name) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN col IS NULL THEN 'NULL::text' ELSE format('t.%I::text', col) END
$$;

-- The staff of a subject as a temporary table _seg_staff(manager, org,
-- capacity, active, load): load is what each manager already has for the day.
-- members: only the managers who can take these customers (their owners and
-- the managers of their org units): an event's generation must not count the
-- whole day's opportunities of every manager.
CREATE FUNCTION segment._load_staff(sid int, as_of date, members segment.memberset DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    st segment.staff;
    s segment.subject;
    keys text[];
    owners text[];
    orgs text[];
    only_these text := '';
BEGIN
    IF to_regclass('pg_temp._seg_staff') IS NULL THEN
        CREATE TEMP TABLE _seg_staff (manager text PRIMARY KEY, org text, capacity int,
                                      active boolean, load int NOT NULL DEFAULT 0) ON COMMIT DELETE ROWS;
    ELSE
        TRUNCATE pg_temp._seg_staff;
    END IF;
    SELECT * INTO st FROM segment.staff f WHERE f.subject_id = sid;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF members IS NOT NULL THEN
        SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
        IF s.key_type NOT IN ('int4'::regtype, 'int8'::regtype) THEN
            SELECT array_agg(k.key) INTO keys FROM segment.keymap k
             WHERE k.subject_id = sid AND k.member_id = ANY (segment.to_array(members));
        END IF;
        -- compared in the key's own type, so the key's index finds the rows
        EXECUTE format('SELECT array_agg(DISTINCT %s), array_agg(DISTINCT %s) FROM %s t WHERE t.%I = ANY (%s)',
                       segment._column_as_text(s.owner_column),
                       segment._column_as_text(s.org_column),
                       s.relation, s.key_column,
                       CASE WHEN s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN '$1' ELSE '$2' END)
           INTO owners, orgs USING segment.to_array(members), keys;
        only_these := format(' AND (m.%I::text = ANY (%L::text[]) OR m.%I::text = ANY (%L::text[]))',
                             st.manager_column, coalesce(owners, '{}'), st.org_column, coalesce(orgs, '{}'));
    END IF;
    EXECUTE format('INSERT INTO pg_temp._seg_staff (manager, org, capacity, active)
                    SELECT DISTINCT ON (m.%1$I::text) m.%1$I::text, m.%2$I::text, %3$s, %4$s
                      FROM %5$s m WHERE m.%1$I IS NOT NULL %6$s ORDER BY m.%1$I::text',
                   st.manager_column, st.org_column,
                   CASE WHEN st.capacity_column IS NULL THEN 'NULL::int'
                        ELSE format('m.%I', st.capacity_column) END,
                   CASE WHEN st.active_column IS NULL THEN 'true'
                        ELSE format('coalesce(m.%I, false)', st.active_column) END,
                   st.relation, only_these);
    -- the day's load per manager, from the index on (period, manager)
    UPDATE pg_temp._seg_staff f SET load = x.n
      FROM (SELECT o.manager, count(*) AS n FROM segment.opportunity o
             WHERE o.period = as_of AND o.manager IS NOT NULL AND o.subject_id = sid
               AND o.manager = ANY (ARRAY(SELECT g.manager FROM pg_temp._seg_staff g))
             GROUP BY o.manager) x
     WHERE x.manager = f.manager;
    RETURN true;
END $$;

-- The key (as text) of a member id of a subject.
CREATE FUNCTION segment._key_of(sid int, member_id int8) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN member_id::text
                ELSE (SELECT k.key FROM segment.keymap k
                       WHERE k.subject_id = sid AND k.member_id = _key_of.member_id) END
      FROM segment.subject s WHERE s.subject_id = sid
$$;

-- Generates the opportunities of some rules of one subject for one day.
-- members: restrict candidates to these members (event-triggered generation).
-- The caller holds the subject's generation lock.
--
-- Rules are taken in priority order (then rule id): a higher-priority rule
-- takes the contact-cap room and the managers' capacity first. Per rule:
--   candidates = audience - members in cool-down - members at the contact cap
-- (all member-set operations, no scan), then one statement joins them with
-- the table, renders the message, draws the control group, ranks them per
-- owner and inserts straight into segment.opportunity the ones that are
-- decided (control, owner, pool). Only those waiting for an org-unit manager
-- go through a work table. The contact cap is kept as member sets by level
-- (level i: customers with at least i contacts in the window).
CREATE FUNCTION segment._generate(sid int, rule_ids int[], as_of date,
                                  members segment.memberset DEFAULT NULL, source text DEFAULT 'batch')
RETURNS TABLE (rule_name name, candidates bigint, generated bigint, control bigint,
               skipped_cooldown bigint, skipped_cap bigint, over_capacity bigint, failed bigint)
-- The work-table statements are planned with forced join methods and their
-- costs look huge; JIT would compile them for ~0.5 s each (per event
-- statement too), for nothing.
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    s segment.subject;
    cp segment.contact_policy;
    r segment.opportunity_rule;
    started timestamptz;
    aud segment.memberset;
    recent segment.memberset;
    made segment.memberset;
    levels segment.memberset[];
    lv record;
    n_aud int8;
    n_after_cool int8;
    n_cap int8;
    n_failed int8;
    n_gen int8;
    n_ctl int8;
    n_over int8;
    i int;
    int_keys boolean;
    key_join text;
    source_sql text;
    member_filter text := '';
    member_ids int8[];
    subject_rules int[];
    gen_sql text;
    msg text;
    has_staff boolean;
    needs_org text;
    id_expr text;
    from_sql text;
    where_sql text;
    n_rows float8;
    c record;
    err text;
    state text;
    rule_error text;
    merge_join text := current_setting('enable_mergejoin');
    nest_loop text := current_setting('enable_nestloop');
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
    SELECT * INTO cp FROM segment.contact_policy p WHERE p.subject_id = sid;
    int_keys := s.key_type IN ('int4'::regtype, 'int8'::regtype);
    IF int_keys THEN
        key_join := format('JOIN %s t ON t.%I = m.id', s.relation, s.key_column);
    ELSE
        key_join := format('JOIN segment.keymap k ON k.subject_id = %s AND k.member_id = m.id
                            JOIN %s t ON t.%I = k.key', sid, s.relation, s.key_column);
    END IF;

    -- work table: candidates waiting for an org-unit manager. Created once
    -- per session (creating temporary tables in every event transaction cost
    -- more than the rest of an event's generation), emptied at commit and at
    -- every call.
    IF to_regclass('pg_temp._seg_cand') IS NULL THEN
        CREATE TEMP TABLE _seg_cand (
            opportunity_id int8 NOT NULL, rule_id int NOT NULL, member_id int8 NOT NULL,
            priority numeric, org text, manager text) ON COMMIT DELETE ROWS;
    ELSE
        TRUNCATE pg_temp._seg_cand;
    END IF;
    has_staff := segment._load_staff(sid, as_of, members);
    IF members IS NULL THEN
        ANALYZE pg_temp._seg_staff;   -- a few customers (an event) plan fine without
    END IF;
    SELECT greatest(pc.reltuples, 0) INTO n_rows FROM pg_class pc WHERE pc.oid = s.relation;
    -- event-triggered generation looks at its few customers only (index on
    -- subject, member, period), not at every opportunity of the window
    IF members IS NOT NULL THEN
        member_ids := segment.to_array(members);
        -- (rule, member, period) is the index there is: name every rule
        member_filter := 'AND o.rule_id = ANY ($6) AND o.member_id = ANY ($5)';
        SELECT array_agg(x.rule_id) INTO subject_rules FROM segment.opportunity_rule x WHERE x.subject_id = sid;
    END IF;

    -- contact-cap levels from the opportunities already in the window
    IF cp.subject_id IS NOT NULL THEN
        levels := array_fill(NULL::segment.memberset, ARRAY[cp.max_contacts]);
        FOR lv IN EXECUTE format(
                   'SELECT x.n, segment.memberset_agg(x.member_id) AS ids
                      FROM (SELECT o.member_id, least(count(*), $4)::int AS n
                              FROM segment.opportunity o
                             WHERE o.subject_id = $1 AND o.period > $2 - $3 AND o.period <= $2 %s
                             GROUP BY o.member_id) x
                     GROUP BY x.n', member_filter)
                  USING sid, as_of, cp.period_days, cp.max_contacts, member_ids, subject_rules
        LOOP
            FOR i IN 1 .. lv.n LOOP
                levels[i] := CASE WHEN levels[i] IS NULL THEN lv.ids
                                  ELSE levels[i] OPERATOR(segment.|) lv.ids END;
            END LOOP;
        END LOOP;
    END IF;

    FOR r IN SELECT * FROM segment.opportunity_rule x WHERE x.rule_id = ANY (rule_ids)
              ORDER BY x.priority DESC, x.rule_id
    LOOP
        started := clock_timestamp();
        n_failed := 0; n_aud := 0; n_after_cool := 0; n_cap := 0;
        n_gen := 0; n_ctl := 0; n_over := 0; made := NULL; rule_error := NULL;
        -- a rule that fails as a whole (its audience names something not
        -- refreshed yet, a goal column gone) makes nothing and is logged; the
        -- other rules go on
        BEGIN
            aud := segment.audience(s.name, r.audience);
            IF members IS NOT NULL THEN
                aud := aud OPERATOR(segment.&) members;
            END IF;
            n_aud := segment.cardinality(aud);
            EXECUTE format('SELECT segment.memberset_agg(o.member_id) FROM segment.opportunity o
                             WHERE o.rule_id = $1 AND o.period > $2 - $3 AND o.period < $2 + $3 %s',
                           member_filter)
               INTO recent USING r.rule_id, as_of, greatest(r.cooldown_days, 1), NULL, member_ids, subject_rules;
            IF recent IS NOT NULL THEN
                aud := aud OPERATOR(segment.-) recent;
            END IF;
            n_after_cool := segment.cardinality(aud);
            IF cp.subject_id IS NOT NULL AND levels[cp.max_contacts] IS NOT NULL THEN
                aud := aud OPERATOR(segment.-) levels[cp.max_contacts];
            END IF;
            n_cap := n_after_cool - segment.cardinality(aud);

            IF NOT segment.is_empty(aud) THEN
                -- Where the candidates come from: a large audience is found by
                -- scanning the table with a member-set test per row; a small one
                -- (events, narrow rules) by key lookups.
                IF segment.cardinality(aud) * 20 > greatest(n_rows, 1) THEN
                    IF int_keys THEN
                        id_expr := format('t.%I::int8', s.key_column);
                        from_sql := format('%s t', s.relation);
                    ELSE
                        id_expr := 'k.member_id';
                        from_sql := format('%s t JOIN segment.keymap k ON k.subject_id = %s AND k.key = t.%I',
                                           s.relation, sid, s.key_column);
                    END IF;
                    where_sql := format('WHERE $1 OPERATOR(segment.@>) %s', id_expr);
                    -- most of the table: hash joins with staff and scores, not a
                    -- lookup per row (the set-returning estimate is no help)
                    PERFORM set_config('enable_nestloop', 'off', true);
                ELSE
                    id_expr := 'm.id';
                    from_sql := 'segment.member_ids($1) m(id) ' || key_join;
                    where_sql := '';
                END IF;
                -- an owner gets the lead when the rule says so, the owner is an
                -- active manager, and within both the manager's capacity for the
                -- day and the rule's per-manager capacity (in priority order);
                -- then, in each org unit, as many of the others as the unit's
                -- managers have room left are staged for least-loaded assignment;
                -- the rest go to the pool now, with the reason
                needs_org := CASE WHEN has_staff AND r.assignment IN ('owner', 'org') AND s.org_column IS NOT NULL
                                  THEN 'true' ELSE 'false' END;
                source_sql := format(
                    $q$SELECT %1$s AS member_id, t.%2$I::text AS key, %3$s AS priority,
                              segment._in_control(%4$s, %1$s, $2, %5$s) AS is_control,
                              %6$s AS owner, %7$s AS org, %%s AS message, f.manager AS staff,
                              least(f.capacity - f.load, %8$s - coalesce(u.n, 0)) AS room
                         FROM %9$s %10$s
                         LEFT JOIN pg_temp._seg_staff f ON %11$s AND f.manager = %6$s AND f.active
                         LEFT JOIN rule_used u ON u.manager = f.manager
                         %12$s$q$,
                    id_expr, s.key_column,
                    CASE WHEN r.priority_scorecard IS NULL THEN r.priority::text
                         ELSE format('%s + coalesce(sc.score, 0)', r.priority) END,
                    r.rule_id, r.holdout_pct,
                    segment._column_as_text(s.owner_column),
                    segment._column_as_text(s.org_column),
                    coalesce(r.capacity::text, 'NULL'),
                    from_sql,
                    CASE WHEN r.priority_scorecard IS NULL THEN ''
                         ELSE format('LEFT JOIN (SELECT x.score, segment.member_ids(x.members) AS id
                                                   FROM segment._live_scores(%s, %s) x) sc
                                             ON sc.id = %s', r.priority_scorecard, sid, id_expr) END,
                    CASE WHEN has_staff AND r.assignment = 'owner' THEN 'true' ELSE 'false' END,
                    where_sql);
                msg := coalesce(r.template_sql, 'NULL::text');
                gen_sql := format($q$
                    WITH rule_used AS (
                        SELECT o.manager, count(*) AS n FROM segment.opportunity o
                         WHERE o.rule_id = %2$s AND o.period = $2 AND o.manager IS NOT NULL
                         GROUP BY o.manager),
                    src AS MATERIALIZED (%1$s),
                    -- the owners' picks: ranked on a narrow projection, so the
                    -- sort is small, and only the winners are joined back
                    owner_pick AS (
                        SELECT w.member_id, w.staff FROM (
                            SELECT d.member_id, d.staff, d.room,
                                   row_number() OVER (PARTITION BY d.staff ORDER BY d.priority DESC, d.member_id) AS k
                              FROM src d WHERE d.staff IS NOT NULL AND NOT d.is_control) w
                         WHERE w.room IS NULL OR w.k <= w.room),
                    ranked AS (
                        SELECT d.*, p.member_id IS NOT NULL AS to_owner
                          FROM src d LEFT JOIN owner_pick p ON p.member_id = d.member_id),
                    owner_took AS (
                        SELECT p.staff AS manager, count(*) AS n FROM owner_pick p GROUP BY p.staff),
                    org_room AS (
                        SELECT f.org, sum(greatest(0, least(
                                   coalesce(f.capacity - f.load - coalesce(t.n, 0), 2147483647),
                                   coalesce(%9$s - coalesce(u.n, 0) - coalesce(t.n, 0), 2147483647)))) AS room
                          FROM pg_temp._seg_staff f
                          LEFT JOIN owner_took t ON t.manager = f.manager
                          LEFT JOIN rule_used u ON u.manager = f.manager
                         WHERE f.active AND %8$s
                         GROUP BY f.org),
                    -- only units with room left rank their candidates (usually
                    -- few: owners fill most managers' days). Every candidate is
                    -- inserted by one statement (ranked and placed are read once,
                    -- so they stream); the ones for an org-unit manager go in as
                    -- 'org' without a manager and get one just after.
                    org_ranked AS (
                        SELECT d.member_id,
                               row_number() OVER (PARTITION BY d.org ORDER BY d.priority DESC, d.member_id) <= g.room AS to_org
                          FROM src d JOIN org_room g ON g.org = d.org AND g.room > 0
                         WHERE NOT d.is_control
                           AND NOT EXISTS (SELECT 1 FROM owner_pick p WHERE p.member_id = d.member_id)),
                    placed AS (
                        SELECT d.*, g.room IS NOT NULL AS org_staffed, coalesce(x.to_org, false) AS to_org
                          FROM ranked d LEFT JOIN org_room g ON g.org = d.org
                          LEFT JOIN org_ranked x ON x.member_id = d.member_id),
                    direct AS (
                        INSERT INTO segment.opportunity AS o
                            (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                             is_control, priority, message, org_unit, manager, assignment, pool_reason, source)
                        SELECT %2$s, %3$s, %4$s, d.member_id, d.key, $2, $2 + %5$s, d.is_control,
                               d.priority, d.message, d.org,
                               CASE WHEN d.to_owner THEN d.owner END,
                               CASE WHEN d.is_control THEN 'control' WHEN d.to_owner THEN 'owner'
                                    WHEN d.to_org THEN 'org' ELSE 'pool' END,
                               CASE WHEN d.is_control OR d.to_owner OR d.to_org THEN NULL
                                    WHEN %6$L = 'pool' THEN 'rule assigns to the pool'
                                    WHEN NOT %7$s THEN 'no staff table'
                                    WHEN d.staff IS NOT NULL OR d.org_staffed THEN 'managers at capacity'
                                    WHEN d.owner IS NULL AND d.org IS NULL THEN 'no owner and no org unit'
                                    ELSE 'no active manager for the customer' END,
                               $3
                          FROM placed d
                        RETURNING o.opportunity_id, o.member_id, o.is_control, o.manager, o.assignment,
                                  o.org_unit, o.priority, o.pool_reason),
                    staged AS (
                        INSERT INTO pg_temp._seg_cand (opportunity_id, rule_id, member_id, priority, org)
                        SELECT direct.opportunity_id, %2$s, direct.member_id, direct.priority, direct.org_unit
                          FROM direct
                         WHERE direct.assignment = 'org'
                        RETURNING 1),
                    loads AS (
                        UPDATE pg_temp._seg_staff f SET load = f.load + x.n
                          FROM (SELECT direct.manager, count(*) AS n FROM direct
                                 WHERE direct.manager IS NOT NULL GROUP BY direct.manager) x
                         WHERE f.manager = x.manager
                        RETURNING 1)
                    SELECT (SELECT segment.memberset_agg(direct.member_id) FROM direct),
                           (SELECT count(*) FROM direct WHERE NOT direct.is_control),
                           (SELECT count(*) FROM direct WHERE direct.is_control),
                           (SELECT count(*) FROM direct WHERE direct.pool_reason = 'managers at capacity')$q$,
                    format(source_sql, msg), r.rule_id, r.version, sid, r.valid_days - 1,
                    r.assignment, has_staff::text, needs_org, coalesce(r.capacity::text, 'NULL'));
                BEGIN
                    EXECUTE gen_sql
                    INTO made, n_gen, n_ctl, n_over USING aud, as_of, source;
                    PERFORM set_config('enable_nestloop', nest_loop, true);
                EXCEPTION WHEN OTHERS THEN
                    PERFORM set_config('enable_nestloop', nest_loop, true);
                    IF r.template_sql IS NULL THEN
                        RAISE;
                    END IF;
                    -- a value that does not render: render customer by customer,
                    -- record the ones that fail, and generate the others
                    FOR c IN EXECUTE format('SELECT m.id FROM segment.member_ids($1) m(id)') USING aud
                    LOOP
                        BEGIN
                            EXECUTE format('SELECT %s FROM (SELECT $1::int8 AS id) m %s', msg, key_join)
                               USING c.id;
                        EXCEPTION WHEN OTHERS THEN
                            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
                            INSERT INTO segment.generation_failure (rule_id, member_id, key, period, error, sqlstate)
                            SELECT r.rule_id, c.id, coalesce(segment._key_of(sid, c.id), c.id::text), as_of, err, state;
                            aud := aud OPERATOR(segment.-) segment.memberset(ARRAY[c.id]);
                            n_failed := n_failed + 1;
                        END;
                    END LOOP;
                    -- the same statement as above, on the ones that render
                    EXECUTE gen_sql
                    INTO made, n_gen, n_ctl, n_over USING aud, as_of, source;
                END;

                -- the org unit: least-loaded active manager first (ties: manager
                -- id). A manager with room for k more offers slots at load+1 ..
                -- load+k; the i-th candidate of the unit takes the i-th lowest
                -- slot, which is what assigning one at a time to the least-loaded
                -- manager gives. Candidates meet slots on (org, i) by a hash join:
                -- the slot count is overestimated (generate_series) and a merge
                -- join on org alone would compare every candidate with every slot.
                IF EXISTS (SELECT 1 FROM pg_temp._seg_cand x WHERE x.rule_id = r.rule_id) THEN
                    IF members IS NULL THEN
                        ANALYZE pg_temp._seg_cand;
                    END IF;
                    PERFORM set_config('enable_mergejoin', 'off', true);
                    PERFORM set_config('enable_nestloop', 'off', true);
                    WITH cand AS (SELECT x.ctid AS tid, x.org,
                                         row_number() OVER (PARTITION BY x.org
                                                            ORDER BY x.priority DESC, x.member_id) AS i,
                                         count(*) OVER (PARTITION BY x.org) AS n
                                    FROM pg_temp._seg_cand x WHERE x.rule_id = r.rule_id),
                         units AS (SELECT DISTINCT cand.org, cand.n FROM cand),
                         used AS (SELECT o.manager, count(*) AS n FROM segment.opportunity o
                                   WHERE o.rule_id = r.rule_id AND o.period = as_of AND o.manager IS NOT NULL
                                   GROUP BY o.manager),
                         slots AS (SELECT f.manager, f.org,
                                          row_number() OVER (PARTITION BY f.org ORDER BY f.load + g.k, f.manager) AS i
                                     FROM pg_temp._seg_staff f
                                     JOIN units ON units.org = f.org
                                     LEFT JOIN used ON used.manager = f.manager
                                     CROSS JOIN LATERAL generate_series(1, least(
                                          coalesce(f.capacity - f.load, units.n),
                                          coalesce(r.capacity - coalesce(used.n, 0), units.n),
                                          units.n)::int) AS g(k)
                                    WHERE f.active)
                    UPDATE pg_temp._seg_cand x SET manager = slots.manager
                      FROM cand JOIN slots ON slots.org = cand.org AND slots.i = cand.i
                     WHERE x.ctid = cand.tid;
                    PERFORM set_config('enable_mergejoin', merge_join, true);
                    PERFORM set_config('enable_nestloop', nest_loop, true);
                    UPDATE pg_temp._seg_staff f SET load = f.load + x.n
                      FROM (SELECT y.manager, count(*) AS n FROM pg_temp._seg_cand y
                             WHERE y.rule_id = r.rule_id AND y.manager IS NOT NULL GROUP BY y.manager) x
                     WHERE x.manager = f.manager;
                    -- the staged ones got their manager (a unit's room was
                    -- counted exactly, so none should be left without one)
                    WITH upd AS (
                        UPDATE segment.opportunity o
                           SET manager = x.manager,
                               assignment = CASE WHEN x.manager IS NULL THEN 'pool' ELSE 'org' END,
                               pool_reason = CASE WHEN x.manager IS NULL THEN 'managers at capacity' END
                          FROM pg_temp._seg_cand x
                         WHERE x.rule_id = r.rule_id AND o.opportunity_id = x.opportunity_id
                        RETURNING o.manager)
                    SELECT n_over + count(*) FILTER (WHERE upd.manager IS NULL) INTO n_over FROM upd;
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
            rule_error := format('%s (SQLSTATE %s)', err, state);
            n_gen := 0; n_ctl := 0; n_over := 0; made := NULL;
            PERFORM set_config('enable_nestloop', nest_loop, true);
            PERFORM set_config('enable_mergejoin', merge_join, true);
            RAISE WARNING 'opportunity rule "%" made nothing: %', r.name, rule_error
                USING HINT = 'The error is kept in segment.generation.error; the other rules were generated.';
        END;

        -- what this rule made counts against the cap for the next rules
        IF cp.subject_id IS NOT NULL AND made IS NOT NULL THEN
            FOR i IN REVERSE cp.max_contacts .. 2 LOOP
                IF levels[i - 1] IS NOT NULL THEN
                    levels[i] := coalesce(levels[i], segment.memberset('{}'::int8[]))
                                 OPERATOR(segment.|) (levels[i - 1] OPERATOR(segment.&) made);
                END IF;
            END LOOP;
            levels[1] := CASE WHEN levels[1] IS NULL THEN made ELSE levels[1] OPERATOR(segment.|) made END;
        END IF;

        INSERT INTO segment.generation (rule_id, period, started_at, candidates, generated, control,
                                        skipped_cooldown, skipped_cap, over_capacity, failed, error)
        VALUES (r.rule_id, as_of, started, n_aud, n_gen, n_ctl, n_aud - n_after_cool, n_cap,
                n_over, n_failed, rule_error);
        rule_name := r.name; candidates := n_aud; generated := n_gen; control := n_ctl;
        skipped_cooldown := n_aud - n_after_cool; skipped_cap := n_cap;
        over_capacity := n_over; failed := n_failed;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION segment.generate(rule name DEFAULT NULL, as_of date DEFAULT current_date)
RETURNS TABLE (rule_name name, candidates bigint, generated bigint, control bigint,
               skipped_cooldown bigint, skipped_cap bigint, over_capacity bigint, failed bigint)
LANGUAGE plpgsql AS $$
DECLARE
    one segment.opportunity_rule;
    g record;
BEGIN
    as_of := coalesce(as_of, current_date);
    IF rule IS NOT NULL THEN
        one := segment._opportunity_rule(rule);
        IF NOT one.active THEN
            RAISE EXCEPTION 'opportunity rule "%" is not active', rule
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Activate it with segment.alter_opportunity_rule(name => ..., active => true).';
        END IF;
        -- an event or entry rule's audience is who may get the lead when the
        -- event happens: a batch run would give it to all of them (part 85)
        IF segment._is_triggered(one.rule_id) THEN
            RAISE EXCEPTION 'opportunity rule "%" is made by events or audience entries, not by batch generation', rule
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'See segment.event_rule and segment.entry_rule; detach it to generate it in batch.';
        END IF;
    END IF;
    FOR g IN SELECT x.subject_id, array_agg(x.rule_id ORDER BY x.rule_id) AS ids
               FROM segment.opportunity_rule x
              WHERE x.active AND (one.rule_id IS NULL OR x.rule_id = one.rule_id)
                AND NOT segment._is_triggered(x.rule_id)
              GROUP BY x.subject_id ORDER BY x.subject_id
    LOOP
        -- one generation per subject at a time: the second waits, then sees
        -- what the first made (cool-down and the unique key keep it from
        -- making it twice)
        PERFORM pg_advisory_xact_lock(24175, g.subject_id);
        RETURN QUERY SELECT * FROM segment._generate(g.subject_id, g.ids, as_of);
    END LOOP;
END $$;
COMMENT ON FUNCTION segment.generate(name, date) IS
    'generates the opportunities of one rule (NULL: every active rule) for a day; idempotent';

-- The message of a rule for one customer, as generate() would render it.
CREATE FUNCTION segment.render(rule name, key text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r segment.opportunity_rule := segment._opportunity_rule(rule);
    s segment.subject;
    msg text;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    IF r.template_sql IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT %s FROM %s t WHERE t.%I::text = $1', r.template_sql, s.relation, s.key_column)
       INTO msg USING key;
    RETURN msg;
END $$;
COMMENT ON FUNCTION segment.render(name, text) IS
    'the message an opportunity rule renders for one customer (a preview of its template)';
-- segment install script, part 85: opportunities made in the transaction
-- that inserts an event (issue 5, part 2), and opportunities fired when a
-- customer enters an audience.
--
-- An event rule attaches an opportunity rule to an event table: a
-- statement-level AFTER INSERT trigger (transition table, so a COPY of
-- 100,000 events is one call) keeps the events whose condition holds, maps
-- their customer keys to member ids and calls segment._generate with that
-- member set, so cool-down, contact cap, control group, templates and
-- assignment are exactly those of batch generation. An entry rule does the
-- same for the customers who entered an audience in a refresh (or, through
-- segment._fire_entries, in live maintenance). docs/events.md is the guide.

-- One attachment of an opportunity rule to an event table.
CREATE TABLE segment.event_rule (
    rule_id      int NOT NULL REFERENCES segment.opportunity_rule,
    event_table  regclass NOT NULL,
    key_column   name NOT NULL,      -- the event column holding the customer key
    key_type     regtype NOT NULL,   -- its type when attached (the DDL guard keeps it)
    condition    text NOT NULL,      -- SQL boolean expression over the event row
    columns      name[] NOT NULL DEFAULT '{}',      -- columns the condition reads ...
    column_types regtype[] NOT NULL DEFAULT '{}',   -- ... and their types when attached
    trigger_name name NOT NULL,      -- segment_event_rule_<rule_id>
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   name NOT NULL DEFAULT current_user,
    PRIMARY KEY (rule_id, event_table)
);
CREATE INDEX ON segment.event_rule (event_table);

-- Events whose customer segment does not know (not in the subject's
-- universe: never refreshed, or not a customer at all): one row per
-- statement that had any, with their number and up to 10 of their keys.
CREATE TABLE segment.event_skip (
    skip_id     bigserial PRIMARY KEY,
    rule_id     int NOT NULL REFERENCES segment.opportunity_rule ON DELETE CASCADE,
    event_table regclass NOT NULL,
    skipped_at  timestamptz NOT NULL DEFAULT now(),
    unknown     bigint NOT NULL,     -- distinct unknown customer keys
    sample_keys text[] NOT NULL
);
CREATE INDEX ON segment.event_skip (rule_id, skipped_at);

-- An opportunity rule fired for the customers who enter an audience.
CREATE TABLE segment.entry_rule (
    rule_id    int NOT NULL REFERENCES segment.opportunity_rule,
    subject_id int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    audience   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by name NOT NULL DEFAULT current_user,
    PRIMARY KEY (rule_id, audience)
);
CREATE INDEX ON segment.entry_rule (subject_id);

SELECT pg_catalog.pg_extension_config_dump('segment.event_rule', '');
SELECT pg_catalog.pg_extension_config_dump('segment.event_skip', '');
SELECT pg_catalog.pg_extension_config_dump('segment.event_skip_skip_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.entry_rule', '');

-- Whether a rule is made by events or entries only: batch generate() with
-- no rule name skips it (its audience is who MAY get the lead when the event
-- happens, not who gets it every day).
CREATE FUNCTION segment._is_triggered(rule_id int) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM segment.event_rule e WHERE e.rule_id = _is_triggered.rule_id)
        OR EXISTS (SELECT 1 FROM segment.entry_rule e WHERE e.rule_id = _is_triggered.rule_id)
$$;

-- The locks of generation for a few customers of a subject, held until
-- commit. A batch generate() holds pg_advisory_xact_lock(24175, subject)
-- exclusively. Here:
--   * up to 64 customers (an OLTP insert): 24175 in SHARED mode (waits for
--     a running batch; a batch waits for us), then one exclusive lock per
--     customer, (24176, hash of subject and member), in key order, so two
--     transactions for the same customer run the cool-down and cap checks
--     one after the other, and transactions for other customers do not wait;
--   * more (a bulk load): 24175 exclusively, like a batch; taking 100,000
--     advisory locks would exhaust the lock table.
CREATE FUNCTION segment._lock_members(sid int, members segment.memberset) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE k int;
BEGIN
    IF segment.cardinality(members) > 64 THEN
        PERFORM pg_advisory_xact_lock(24175, sid);
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(24175, sid);
    FOR k IN SELECT DISTINCT (hashint8extended(m.id, sid) & 2147483647)::int
               FROM segment.member_ids(members) m(id) ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(24176, k);
    END LOOP;
END $$;

------------------------------------------------------------------------
-- Event rules
------------------------------------------------------------------------

-- The trigger of every event rule: TG_ARGV[0] is the rule id; the inserted
-- rows are the transition table segment_new_events.
CREATE FUNCTION segment._event_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    rid int := TG_ARGV[0]::int;
    a segment.event_rule;
    r segment.opportunity_rule;
    s segment.subject;
    universe segment.memberset;
    found_set segment.memberset;
    members segment.memberset;
    n_keys int8;
    unmapped text[];
    n_unknown int8;
    id_expr text;
    map_join text;
BEGIN
    SELECT * INTO a FROM segment.event_rule x WHERE x.rule_id = rid AND x.event_table = TG_RELID;
    SELECT * INTO r FROM segment.opportunity_rule x WHERE x.rule_id = rid;
    IF a.rule_id IS NULL OR NOT r.active THEN
        RETURN NULL;        -- detached by hand, or the rule is deactivated
    END IF;
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    -- with live maintenance's overlay (part 86): customers inserted since the refresh are known
    SELECT segment._live_universe(x.universe, x.subject_id) INTO universe
      FROM segment.subject_state x WHERE x.subject_id = s.subject_id;

    -- the distinct customers of the events whose condition holds, as member ids
    IF s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN
        id_expr := 'CASE WHEN k.key BETWEEN 0 AND 4294967295 THEN k.key END';
        map_join := '';
    ELSE
        id_expr := 'km.member_id';
        map_join := format('LEFT JOIN segment.keymap km ON km.subject_id = %s AND km.key = k.key', s.subject_id);
    END IF;
    EXECUTE format('SELECT count(*), segment.memberset_agg(m.id),
                           (array_agg(m.key::text ORDER BY m.key) FILTER (WHERE m.id IS NULL))[1:10]
                      FROM (SELECT %1$s AS id, k.key
                              FROM (SELECT DISTINCT %6$I.%2$I%3$s AS key FROM segment_new_events AS %6$I
                                     WHERE (%4$s) IS TRUE AND %6$I.%2$I IS NOT NULL) k %5$s) m',
                   id_expr, a.key_column,
                   CASE WHEN s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN '::int8' ELSE '::text' END,
                   a.condition, map_join, TG_TABLE_NAME)
       INTO n_keys, found_set, unmapped;
    IF n_keys = 0 THEN
        RETURN NULL;
    END IF;

    -- customers segment does not know are skipped, and reported
    IF found_set IS NULL OR universe IS NULL THEN
        members := NULL;
    ELSE
        members := found_set OPERATOR(segment.&) universe;
    END IF;
    n_unknown := n_keys - coalesce(segment.cardinality(members), 0);
    IF n_unknown > 0 THEN
        INSERT INTO segment.event_skip (rule_id, event_table, unknown, sample_keys)
        VALUES (rid, TG_RELID, n_unknown,
                (coalesce(unmapped, '{}')
                 || CASE WHEN found_set IS NULL THEN '{}'::text[]
                         WHEN universe IS NULL THEN ARRAY(SELECT segment.keys(s.name, found_set) LIMIT 10)
                         ELSE ARRAY(SELECT segment.keys(s.name, found_set OPERATOR(segment.-) universe) LIMIT 10)
                    END)[1:10]);
    END IF;
    IF members IS NULL OR segment.is_empty(members) THEN
        RETURN NULL;
    END IF;

    PERFORM segment._lock_members(s.subject_id, members);
    PERFORM segment._generate(s.subject_id, ARRAY[rid], segment.as_of(), members,
                              format('event:%s.%s', TG_TABLE_SCHEMA, TG_TABLE_NAME));
    RETURN NULL;
END $$;
COMMENT ON FUNCTION segment._event_trigger() IS
    'statement trigger of an event rule: opportunities for the customers of the inserted events whose condition holds';

CREATE FUNCTION segment._event_key_ok(subject_key regtype, event_key regtype) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN subject_key IN ('int4'::regtype, 'int8'::regtype)
                THEN event_key IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
                ELSE event_key IN ('text'::regtype, 'varchar'::regtype) END
$$;

CREATE FUNCTION segment.attach_event_rule(rule name, event_table regclass, key_column name,
                                          condition text DEFAULT 'true')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
    s segment.subject;
    kind "char";
    ktype regtype;
    cols name[];
    trg name;
BEGIN
    IF rule IS NULL OR event_table IS NULL OR key_column IS NULL THEN
        RAISE EXCEPTION 'rule, event_table and key_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM segment._lock_definitions();
    r := segment._opportunity_rule(rule, true);
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = event_table;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', event_table
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Events are rows inserted into an ordinary or partitioned table.';
    END IF;
    IF EXISTS (SELECT 1 FROM segment.event_rule e WHERE e.rule_id = r.rule_id AND e.event_table = attach_event_rule.event_table) THEN
        RAISE EXCEPTION 'opportunity rule "%" is already attached to table %', rule, event_table
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Detach it first with segment.detach_event_rule() to change the key or the condition.';
    END IF;
    SELECT a.atttypid::regtype INTO ktype FROM pg_attribute a
     WHERE a.attrelid = event_table AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF ktype IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', key_column, event_table
            USING ERRCODE = 'undefined_column',
                  HINT = 'key_column is the event column that holds the customer key.';
    END IF;
    IF NOT segment._event_key_ok(s.key_type, ktype) THEN
        RAISE EXCEPTION 'key column "%" of % has type %, but subject "%" is keyed by %',
                        key_column, event_table, ktype, s.name, s.key_type
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Integer subjects take an int2, int4 or int8 event key; text subjects a text or varchar key.';
    END IF;
    IF condition IS NULL OR btrim(condition) = '' THEN
        RAISE EXCEPTION 'the condition of an event rule must not be empty'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Write ''true'' to make every event count.';
    END IF;
    cols := segment._rule_columns(event_table, condition,
                                  format('event rule "%s" on %s', rule, event_table));
    -- the trigger reads the new rows under the table's own name: a column
    -- may be written "status" or "loan_application.status", not with its schema
    EXECUTE format('SELECT 1 FROM ONLY %s AS %I WHERE (%s) IS TRUE LIMIT 0',
                   event_table, (SELECT c.relname FROM pg_class c WHERE c.oid = event_table), condition);
    trg := format('segment_event_rule_%s', r.rule_id);
    INSERT INTO segment.event_rule (rule_id, event_table, key_column, key_type, condition,
                                    columns, column_types, trigger_name)
    VALUES (r.rule_id, event_table, key_column, ktype, condition, cols,
            segment._column_types(event_table, cols), trg);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS segment_new_events
                    FOR EACH STATEMENT EXECUTE FUNCTION segment._event_trigger(%L)',
                   trg, event_table, r.rule_id);
END $$;
COMMENT ON FUNCTION segment.attach_event_rule(name, regclass, name, text) IS
    'makes an opportunity rule fire in the transaction that inserts an event whose condition holds (see docs/events.md)';

CREATE FUNCTION segment.detach_event_rule(rule name, event_table regclass)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
    a segment.event_rule;
BEGIN
    PERFORM segment._lock_definitions();
    r := segment._opportunity_rule(rule, true);
    DELETE FROM segment.event_rule e WHERE e.rule_id = r.rule_id AND e.event_table = detach_event_rule.event_table
    RETURNING * INTO a;
    IF a.rule_id IS NULL THEN
        RAISE EXCEPTION 'opportunity rule "%" is not attached to table %', rule, event_table
            USING ERRCODE = 'undefined_object',
                  HINT = 'Attachments are listed in segment.event_rule.';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', a.trigger_name, a.event_table);
END $$;
COMMENT ON FUNCTION segment.detach_event_rule(name, regclass) IS
    'removes an event rule''s trigger from its event table';

------------------------------------------------------------------------
-- Entry rules
------------------------------------------------------------------------

CREATE FUNCTION segment.fire_on_entry(rule name, audience text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
    s segment.subject;
BEGIN
    PERFORM segment._lock_definitions();
    r := segment._opportunity_rule(rule, true);
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    IF audience IS NULL OR btrim(audience) = '' THEN
        RAISE EXCEPTION 'the audience to watch must not be empty'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name a tag, segment or scheme bucket, or combine them: ''churn_risk and not vip''.';
    END IF;
    PERFORM segment._audience_check(s.name, audience);
    IF EXISTS (SELECT 1 FROM segment.entry_rule e WHERE e.rule_id = r.rule_id AND e.audience = fire_on_entry.audience) THEN
        RAISE EXCEPTION 'opportunity rule "%" already fires on entry into %', rule, quote_literal(audience)
            USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO segment.entry_rule (rule_id, subject_id, audience) VALUES (r.rule_id, r.subject_id, audience);
END $$;
COMMENT ON FUNCTION segment.fire_on_entry(name, text) IS
    'makes an opportunity rule fire for the customers who enter an audience in a refresh (see docs/events.md)';

CREATE FUNCTION segment.stop_fire_on_entry(rule name, audience text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE r segment.opportunity_rule;
BEGIN
    PERFORM segment._lock_definitions();
    r := segment._opportunity_rule(rule, true);
    DELETE FROM segment.entry_rule e WHERE e.rule_id = r.rule_id AND e.audience = stop_fire_on_entry.audience;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'opportunity rule "%" does not fire on entry into %', rule, quote_literal(audience)
            USING ERRCODE = 'undefined_object',
                  HINT = 'Entry rules are listed in segment.entry_rule.';
    END IF;
END $$;
COMMENT ON FUNCTION segment.stop_fire_on_entry(name, text) IS
    'stops an opportunity rule firing on entry into an audience';

-- The hook: the customers in "entered" have just entered "audience" of
-- subject sid; make the opportunities of the active rules that fire on that
-- entry, for period as_of, with source 'entered:<audience>'. Called at the
-- end of each refresh (below) and meant for live maintenance. Takes the
-- generation locks itself. Returns the number of opportunities made
-- (controls included).
CREATE FUNCTION segment._fire_entries(sid int, audience text, entered segment.memberset,
                                      as_of date DEFAULT segment.as_of())
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    ids int[];
    n bigint;
BEGIN
    IF entered IS NULL OR segment.is_empty(entered) THEN
        RETURN 0;
    END IF;
    SELECT array_agg(e.rule_id ORDER BY e.rule_id) INTO ids
      FROM segment.entry_rule e JOIN segment.opportunity_rule r USING (rule_id)
     WHERE e.subject_id = sid AND e.audience = _fire_entries.audience AND r.active;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM segment._lock_members(sid, entered);
    SELECT coalesce(sum(g.generated + g.control), 0) INTO n
      FROM segment._generate(sid, ids, coalesce(as_of, segment.as_of()), entered,
                             'entered:' || audience) g;
    RETURN n;
END $$;
COMMENT ON FUNCTION segment._fire_entries(int, text, segment.memberset, date) IS
    'makes the opportunities of the rules that fire on entry into an audience, for the members that entered';

-- Refresh: before the first state row of a run of a subject with entry
-- rules is written, keep each watched audience as it was; after the run's
-- universe history row (the last state a refresh writes), entered = now
-- minus before. An audience that cannot be evaluated before (never
-- refreshed) or after fires nothing.
CREATE FUNCTION segment._entry_before() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sid int;
    w record;
    before segment.memberset;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM segment.entry_rule) THEN
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'tag_state' THEN
        SELECT t.subject_id INTO sid FROM segment.tag t WHERE t.tag_id = NEW.tag_id;
    ELSIF TG_TABLE_NAME = 'bucket_state' THEN
        SELECT m.subject_id INTO sid FROM segment.scheme m WHERE m.scheme_id = NEW.scheme_id;
    ELSIF TG_TABLE_NAME = 'score_state' THEN
        SELECT c.subject_id INTO sid FROM segment.scorecard c WHERE c.scorecard_id = NEW.scorecard_id;
    ELSE
        sid := NEW.subject_id;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.entry_rule e WHERE e.subject_id = sid)
       OR NOT EXISTS (SELECT 1 FROM segment.run x WHERE x.run_id = NEW.run_id AND x.subject_id = sid
                                                     AND x.finished_at IS NULL) THEN
        RETURN NEW;     -- no entry rule, or not written by a refresh
    END IF;
    IF to_regclass('pg_temp._seg_entry_before') IS NULL THEN
        CREATE TEMP TABLE _seg_entry_before (subject_id int, run_id int8, audience text,
                                             members segment.memberset) ON COMMIT DROP;
    ELSIF EXISTS (SELECT 1 FROM pg_temp._seg_entry_before b WHERE b.run_id = NEW.run_id) THEN
        RETURN NEW;
    END IF;
    FOR w IN SELECT DISTINCT e.audience, s.name FROM segment.entry_rule e
               JOIN segment.subject s USING (subject_id) WHERE e.subject_id = sid
    LOOP
        BEGIN
            before := segment.audience(w.name, w.audience);
        EXCEPTION WHEN OTHERS THEN
            before := NULL;
        END;
        INSERT INTO pg_temp._seg_entry_before VALUES (sid, NEW.run_id, w.audience, before);
    END LOOP;
    RETURN NEW;
END $$;

CREATE FUNCTION segment._entry_after() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    b record;
    after segment.memberset;
    sname name;
BEGIN
    IF to_regclass('pg_temp._seg_entry_before') IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT x.name INTO sname FROM segment.subject x WHERE x.subject_id = NEW.subject_id;
    FOR b IN DELETE FROM pg_temp._seg_entry_before x WHERE x.run_id = NEW.run_id
             RETURNING x.audience, x.members
    LOOP
        CONTINUE WHEN b.members IS NULL;
        BEGIN
            after := segment.audience(sname, b.audience);
        EXCEPTION WHEN OTHERS THEN
            CONTINUE;
        END;
        -- a failing entry rule must not fail the refresh: it is reported
        BEGIN
            PERFORM segment._fire_entries(NEW.subject_id, b.audience,
                                          after OPERATOR(segment.-) b.members, NEW.as_of);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'entry rules on % of subject "%" failed: %', quote_literal(b.audience), sname, SQLERRM
                USING DETAIL = format('SQLSTATE %s; the refresh goes on, no opportunity was made for this entry.', SQLSTATE);
        END;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER segment_entry_before BEFORE INSERT OR UPDATE ON segment.tag_state
    FOR EACH ROW EXECUTE FUNCTION segment._entry_before();
CREATE TRIGGER segment_entry_before BEFORE INSERT OR UPDATE ON segment.bucket_state
    FOR EACH ROW EXECUTE FUNCTION segment._entry_before();
CREATE TRIGGER segment_entry_before BEFORE INSERT OR UPDATE ON segment.score_state
    FOR EACH ROW EXECUTE FUNCTION segment._entry_before();
CREATE TRIGGER segment_entry_before BEFORE INSERT OR UPDATE ON segment.subject_state
    FOR EACH ROW EXECUTE FUNCTION segment._entry_before();
CREATE TRIGGER segment_entry_after AFTER INSERT OR UPDATE ON segment.universe_history
    FOR EACH ROW EXECUTE FUNCTION segment._entry_after();

------------------------------------------------------------------------
-- Guards
------------------------------------------------------------------------

-- An opportunity rule with an event or entry rule cannot be dropped (its
-- trigger would stay on the event table): detach first.
CREATE FUNCTION segment._opportunity_rule_drop_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE what text;
BEGIN
    SELECT string_agg(x, ', ') INTO what FROM (
        SELECT format('event table %s', e.event_table) AS x FROM segment.event_rule e WHERE e.rule_id = OLD.rule_id
        UNION ALL
        SELECT format('entry into %L', e.audience) FROM segment.entry_rule e WHERE e.rule_id = OLD.rule_id) y;
    IF what IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop opportunity rule "%": it fires on %', OLD.name, what
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Detach it first: segment.detach_event_rule(rule, event_table), segment.stop_fire_on_entry(rule, audience).';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER segment_event_rule_guard BEFORE DELETE ON segment.opportunity_rule
    FOR EACH ROW EXECUTE FUNCTION segment._opportunity_rule_drop_guard();

-- DDL guard: refuse an ALTER TABLE of an event table after which a
-- condition no longer analyses, a column it reads changed type, or the key
-- column is gone or of an incompatible type.
CREATE FUNCTION segment._check_event_rules_of(rel oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e record;
    ktype regtype;
BEGIN
    FOR e IN SELECT x.*, r.name, s.key_type AS subject_key
               FROM segment.event_rule x JOIN segment.opportunity_rule r USING (rule_id)
               JOIN segment.subject s ON s.subject_id = r.subject_id
              WHERE x.event_table = rel
    LOOP
        BEGIN
            PERFORM segment._rule_columns(e.event_table, e.condition, NULL);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": event rule "%" depends on it', e.event_table, e.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Condition %s would fail: %s', e.condition, SQLERRM),
                      HINT = 'Detach the event rule first (segment.detach_event_rule).';
        END;
        IF segment._column_types(e.event_table, e.columns) IS DISTINCT FROM e.column_types THEN
            RAISE EXCEPTION 'cannot change the type of a column that event rule "%" reads', e.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Condition %s was written for columns %s of types %s.',
                                      e.condition, e.columns, e.column_types),
                      HINT = 'Detach the event rule, change the column, and attach it again.';
        END IF;
        SELECT a.atttypid::regtype INTO ktype FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attname = e.key_column AND a.attnum > 0 AND NOT a.attisdropped;
        IF ktype IS NULL OR NOT segment._event_key_ok(e.subject_key, ktype) THEN
            RAISE EXCEPTION 'cannot change table "%": column "%" is the customer key of event rule "%"',
                            e.event_table, e.key_column, e.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Detach the event rule first (segment.detach_event_rule).';
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION segment._event_ddl_guard() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE c record;
BEGIN
    FOR c IN SELECT DISTINCT objid FROM pg_event_trigger_ddl_commands()
              WHERE command_tag = 'ALTER TABLE' AND classid = 'pg_class'::regclass
    LOOP
        IF EXISTS (SELECT 1 FROM segment.event_rule e WHERE e.event_table = c.objid) THEN
            PERFORM segment._check_event_rules_of(c.objid);
        END IF;
    END LOOP;
END $$;

-- Dropping an event table, or an event rule's trigger by hand, is refused
-- while the rule is attached (detach_event_rule deletes the attachment
-- before it drops the trigger).
CREATE FUNCTION segment._event_drop_guard() RETURNS event_trigger
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

CREATE EVENT TRIGGER segment_event_ddl_guard ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION segment._event_ddl_guard();
CREATE EVENT TRIGGER segment_event_drop_guard ON sql_drop
    EXECUTE FUNCTION segment._event_drop_guard();
-- segment install script, part 86: live maintenance (docs/live.md).
-- enable_live(subject) installs statement-level triggers with transition
-- tables on the subject's table; for every statement they write one row per
-- changed customer into the overlay segment.live_member. Readers merge the
-- overlay over the sets of the last refresh with the _live_* functions
-- below; a refresh folds the overlay rows it has seen (C, live_fold).

-- Subjects with live maintenance on (dumped: a restore recreates the
-- triggers with the table, and this row says they belong to segment).
CREATE TABLE segment.live_subject (
    subject_id int PRIMARY KEY REFERENCES segment.subject ON DELETE CASCADE,
    enabled_at timestamptz NOT NULL DEFAULT now(),
    enabled_by name NOT NULL DEFAULT current_user
);
SELECT pg_catalog.pg_extension_config_dump('segment.live_subject', '');

-- The overlay: the state of each customer changed since the last refresh.
-- One row per customer, so concurrent writers of different customers lock
-- different rows. Computed state: not dumped (a refresh rebuilds it).
CREATE TABLE segment.live_member (
    subject_id int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    member_id  int8 NOT NULL,
    deleted    boolean NOT NULL,            -- the key left the table
    tags       int4[] NOT NULL,             -- tag_ids of the rule tags it is in
    buckets    jsonb NOT NULL,              -- {"scheme_id": "bucket", ...}
    scores     jsonb NOT NULL,              -- {"scorecard_id": score, ...}
    as_of      date NOT NULL,               -- evaluation date used
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (subject_id, member_id)
);

CREATE FUNCTION segment._live_rows()
RETURNS TABLE (subject_id int, member_id int8, deleted boolean, tags int4[],
               buckets jsonb, scores jsonb, as_of date)
    AS 'MODULE_PATHNAME', 'segment_live_rows' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION segment._live_rows() IS
    'internal: the overlay rows of the statement the live trigger is processing';

-- Runs as the extension owner, so that writers need no rights on
-- segment's tables; with a fixed search_path, so that a writer cannot make
-- the rules it parses call functions of the writer's choosing. Rules must
-- therefore name functions outside pg_catalog with their schema (as
-- segment.as_of() is).
CREATE FUNCTION segment._live_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'segment_live_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;

-- A key changed by an UPDATE: the old key leaves the table. A row trigger
-- that fires only when the key column changes, so that the statement
-- trigger on UPDATE needs no OLD TABLE (capturing the old rows of every
-- bulk UPDATE would cost more than this rare case).
CREATE FUNCTION segment._live_key_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := TG_ARGV[0]::int;
    old_key int8 := (to_jsonb(OLD) ->> TG_ARGV[1])::int8;
BEGIN
    IF old_key BETWEEN 0 AND 4294967295 THEN
        INSERT INTO segment.live_member AS l (subject_id, member_id, deleted, tags, buckets, scores, as_of, changed_at)
        SELECT sid, old_key, true, '{}', '{}', '{}', st.as_of, now()
          FROM segment.subject_state st WHERE st.subject_id = sid
        ON CONFLICT (subject_id, member_id) DO UPDATE SET deleted = true, tags = '{}', buckets = '{}',
               scores = '{}', as_of = excluded.as_of, changed_at = excluded.changed_at;
    END IF;
    RETURN NULL;
END $$;

-- Merging: for any set X of the last refresh,
--   X now = (X - every overlay member) | (overlay members that are in X now).
-- Without overlay rows for the subject the stored set is returned as is.

CREATE FUNCTION segment._live_tag(base segment.memberset, sid int, tag int)
RETURNS segment.memberset LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN base IS NULL
                  OR NOT EXISTS (SELECT 1 FROM segment.live_member l WHERE l.subject_id = sid)
                THEN base
                ELSE (SELECT (base OPERATOR(segment.-) segment.memberset_agg(l.member_id))
                             OPERATOR(segment.|)
                             COALESCE(segment.memberset_agg(l.member_id)
                                          FILTER (WHERE NOT l.deleted AND tag = ANY (l.tags)),
                                      segment.memberset('{}'::int8[]))
                        FROM segment.live_member l WHERE l.subject_id = sid)
           END
$$;

CREATE FUNCTION segment._live_bucket(base segment.memberset, sid int, scheme int, bucket name)
RETURNS segment.memberset LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN base IS NULL
                  OR NOT EXISTS (SELECT 1 FROM segment.live_member l WHERE l.subject_id = sid)
                THEN base
                ELSE (SELECT (base OPERATOR(segment.-) segment.memberset_agg(l.member_id))
                             OPERATOR(segment.|)
                             COALESCE(segment.memberset_agg(l.member_id)
                                          FILTER (WHERE NOT l.deleted AND l.buckets ->> scheme::text = bucket::text),
                                      segment.memberset('{}'::int8[]))
                        FROM segment.live_member l WHERE l.subject_id = sid)
           END
$$;

-- The universe (every customer in the table): deleted keys leave it, new ones join.
CREATE FUNCTION segment._live_universe(base segment.memberset, sid int)
RETURNS segment.memberset LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN base IS NULL
                  OR NOT EXISTS (SELECT 1 FROM segment.live_member l WHERE l.subject_id = sid)
                THEN base
                ELSE (SELECT (base OPERATOR(segment.-) segment.memberset_agg(l.member_id))
                             OPERATOR(segment.|)
                             COALESCE(segment.memberset_agg(l.member_id) FILTER (WHERE NOT l.deleted),
                                      segment.memberset('{}'::int8[]))
                        FROM segment.live_member l WHERE l.subject_id = sid)
           END
$$;

-- The members per distinct score of a scorecard, as score_state holds them
-- after a refresh, with the overlay applied (no empty sets). Nothing
-- before the scorecard's first refresh.
CREATE FUNCTION segment._live_scores(card int, sid int)
RETURNS TABLE (score numeric, members segment.memberset)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 100 AS $$
DECLARE
    changed segment.memberset;
BEGIN
    SELECT segment.memberset_agg(l.member_id) INTO changed
      FROM segment.live_member l WHERE l.subject_id = sid;
    IF changed IS NULL THEN
        RETURN QUERY SELECT x.score, x.members FROM segment.score_state x WHERE x.scorecard_id = card;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.score_state x WHERE x.scorecard_id = card) THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT m.score, m.members FROM (
        SELECT COALESCE(b.score, o.score) AS score,
               COALESCE(b.members OPERATOR(segment.-) changed, segment.memberset('{}'::int8[]))
                   OPERATOR(segment.|) COALESCE(o.members, segment.memberset('{}'::int8[])) AS members
          FROM (SELECT x.score, x.members FROM segment.score_state x WHERE x.scorecard_id = card) b
          FULL JOIN (SELECT (l.scores ->> card::text)::numeric AS score,
                            segment.memberset_agg(l.member_id) AS members
                       FROM segment.live_member l
                      WHERE l.subject_id = sid AND NOT l.deleted AND l.scores ? card::text
                      GROUP BY 1) o ON o.score = b.score) m
     WHERE NOT segment.is_empty(m.members);
END $$;

-- One customer: is it in the tag / bucket now (the overlay row decides when there is one).
CREATE FUNCTION segment._live_has(base segment.memberset, sid int, tag int, mid int8)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE((SELECT NOT l.deleted AND tag = ANY (l.tags) FROM segment.live_member l
                      WHERE l.subject_id = sid AND l.member_id = mid),
                    base OPERATOR(segment.@>) mid)
$$;

CREATE FUNCTION segment._live_in_bucket(base segment.memberset, scheme int, bucket name, mid int8)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE((SELECT NOT l.deleted AND l.buckets ->> scheme::text IS NOT DISTINCT FROM bucket::text
                       FROM segment.live_member l
                      WHERE l.subject_id = (SELECT s.subject_id FROM segment.scheme s WHERE s.scheme_id = scheme)
                        AND l.member_id = mid),
                    base OPERATOR(segment.@>) mid)
$$;

-- Installing and removing the triggers ---------------------------------------

CREATE FUNCTION segment._live_trigger_names(sid int) RETURNS name[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[format('segment_live_%s_insert', sid), format('segment_live_%s_update', sid),
                 format('segment_live_%s_delete', sid), format('segment_live_%s_key', sid)]::name[]
$$;

CREATE FUNCTION segment._live_drop_triggers(sid int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel regclass;
    t name;
BEGIN
    SELECT s.relation INTO rel FROM segment.subject s WHERE s.subject_id = sid;
    IF rel IS NULL THEN
        RETURN;
    END IF;
    FOR t IN SELECT g.tgname FROM pg_catalog.pg_trigger g
              WHERE g.tgrelid = rel AND g.tgname = ANY (segment._live_trigger_names(sid))
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, rel);
    END LOOP;
END $$;

CREATE FUNCTION segment.enable_live(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment._subject_id(subject);
    s segment.subject;
    names name[] := segment._live_trigger_names(sid);
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
    -- one enable/disable/refresh of a subject at a time
    PERFORM pg_advisory_xact_lock(24173, sid);
    IF EXISTS (SELECT 1 FROM segment.live_subject l WHERE l.subject_id = sid) THEN
        RAISE EXCEPTION 'live maintenance of subject "%" is already enabled', subject
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Turn it off with segment.disable_live(%L).', subject);
    END IF;
    IF s.key_type NOT IN ('int4'::regtype, 'int8'::regtype) THEN
        RAISE EXCEPTION 'live maintenance supports integer-keyed subjects only; subject "%" is keyed by %',
                        subject, s.key_type
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'A new text key would need a new member id from segment.keymap, a single point every writer would wait on.',
                  HINT = 'Keep the subject current with segment.refresh().';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.subject_state x WHERE x.subject_id = sid) THEN
        RAISE EXCEPTION 'subject "%" has not been refreshed', subject
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Live changes are evaluated as of the date of the last refresh and merged over its sets.',
                  HINT = format('Run segment.refresh(%L) first.', subject);
    END IF;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS segment_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment._live_trigger(%L)', names[1], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING NEW TABLE AS segment_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment._live_trigger(%L)', names[2], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %I ON %s FOR EACH ROW '
                   'WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION segment._live_key_change(%L, %L)',
                   names[4], s.key_column, s.relation, s.key_column, s.key_column, sid, s.key_column);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS segment_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment._live_trigger(%L)', names[3], s.relation, sid);
    INSERT INTO segment.live_subject (subject_id) VALUES (sid);
END $$;
COMMENT ON FUNCTION segment.enable_live(name) IS
    'keep the subject''s tags, buckets and scores current on every INSERT, UPDATE and DELETE';

CREATE FUNCTION segment.disable_live(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment._subject_id(subject);
BEGIN
    PERFORM pg_advisory_xact_lock(24173, sid);
    IF NOT EXISTS (SELECT 1 FROM segment.live_subject l WHERE l.subject_id = sid) THEN
        RAISE EXCEPTION 'live maintenance of subject "%" is not enabled', subject
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Turn it on with segment.enable_live(%L).', subject);
    END IF;
    PERFORM segment._live_drop_triggers(sid);
    DELETE FROM segment.live_subject l WHERE l.subject_id = sid;
END $$;
COMMENT ON FUNCTION segment.disable_live(name) IS
    'stop live maintenance; changes made so far stay visible until the next refresh folds them';

-- Entry rules (part 85) fired from live maintenance: the live trigger of a
-- subject with entry rules evaluates each watched audience over the
-- statement's customers before and after writing the overlay, and calls
-- segment._fire_entries with those who entered, for the period
-- segment.as_of() (the day of the write, as event rules). Like a refresh, a failing
-- entry is reported with a WARNING and does not fail the writing statement.
CREATE FUNCTION segment._live_entry_before(sid int, changed segment.memberset)
RETURNS TABLE (audience text, members segment.memberset)
LANGUAGE plpgsql AS $$
DECLARE
    w record;
BEGIN
    FOR w IN SELECT DISTINCT e.audience, s.name FROM segment.entry_rule e
               JOIN segment.subject s USING (subject_id) WHERE e.subject_id = sid ORDER BY 1
    LOOP
        audience := w.audience;
        BEGIN
            members := segment.audience(w.name, w.audience) OPERATOR(segment.&) changed;
        EXCEPTION WHEN OTHERS THEN
            members := NULL;    -- not evaluable (never refreshed ...): fires nothing
        END;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION segment._live_entry_after(sid int, changed segment.memberset, audiences text[],
                                          befores segment.memberset[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    sname name := (SELECT s.name FROM segment.subject s WHERE s.subject_id = sid);
    after segment.memberset;
    made bigint := 0;
BEGIN
    FOR i IN 1 .. coalesce(array_length(audiences, 1), 0) LOOP
        CONTINUE WHEN befores[i] IS NULL;
        BEGIN
            after := segment.audience(sname, audiences[i]) OPERATOR(segment.&) changed;
        EXCEPTION WHEN OTHERS THEN
            CONTINUE;
        END;
        BEGIN
            -- period: segment.as_of() now, as for event rules (not the refresh's date)
            made := made + segment._fire_entries(sid, audiences[i], after OPERATOR(segment.-) befores[i], NULL);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'entry rules on % of subject "%" failed: %', quote_literal(audiences[i]), sname, SQLERRM
                USING DETAIL = format('SQLSTATE %s; the write goes on, no opportunity was made for this entry.', SQLSTATE);
        END;
    END LOOP;
    RETURN made;
END $$;
-- segment install script, part 90: the nightly run and its pg_cron glue
-- (issue 5, parts 3 and 4).
--
-- segment.run_all(as_of) is a PROCEDURE: it refreshes every subject, expires
-- overdue opportunities, evaluates outcomes, generates opportunities and
-- checks the day's size snapshots, committing after every step. One step =
-- one subtransaction: a failed step is rolled back, recorded with its error,
-- and the steps after it are recorded as skipped. Committing per step means
-- that what finished stays finished and the log survives a cancel, a
-- terminated session or a crash (the next run marks such a run abandoned),
-- and that the locks a refresh takes are not held for the whole night.
-- Runs never overlap: a session-level advisory lock (24177, 0) is held for
-- the run; a second run records itself as skipped and returns.
--
-- segment.schedule / segment.unschedule put `CALL segment.run_all()` into
-- pg_cron (only when pg_cron is preloaded, runs jobs from this database and
-- its extension exists here; otherwise a 55000 error says what to do).
-- segment itself does not depend on pg_cron: everything touching the cron
-- schema is dynamic SQL, and the view segment.nightly_history reads
-- cron.job_run_details only when it is there. See docs/scheduling.md.

-- One row per call of run_all.
CREATE TABLE segment.nightly_run (
    run_id      bigserial PRIMARY KEY,
    as_of       date NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned')),
    error       text,                         -- failed / skipped / abandoned: why
    run_by      name NOT NULL DEFAULT current_user,
    backend_pid int NOT NULL DEFAULT pg_backend_pid(),  -- = cron.job_run_details.job_pid under pg_cron
    client      text                          -- application_name or backend type ('pg_cron' ...)
);
CREATE INDEX ON segment.nightly_run (as_of);

-- One row per step of a run, written before the step starts.
CREATE TABLE segment.nightly_step (
    run_id      bigint NOT NULL REFERENCES segment.nightly_run ON DELETE CASCADE,
    step_no     int NOT NULL,
    step        text NOT NULL CHECK (step IN ('refresh', 'expire', 'evaluate_outcomes', 'generate', 'size_snapshots')),
    subject     name,                         -- refresh steps: the subject refreshed
    status      text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'skipped', 'abandoned')),
    started_at  timestamptz,
    finished_at timestamptz,
    counts      jsonb,                        -- what the step did (see docs/scheduling.md)
    sqlstate    text,
    error       text,
    error_detail text,                        -- DETAIL, HINT and CONTEXT of the error
    PRIMARY KEY (run_id, step_no)
);

SELECT pg_catalog.pg_extension_config_dump('segment.nightly_run', '');
SELECT pg_catalog.pg_extension_config_dump('segment.nightly_run_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.nightly_step', '');

CREATE FUNCTION segment._in_transaction_block() RETURNS boolean
    AS 'MODULE_PATHNAME', 'segment_in_transaction_block' LANGUAGE C VOLATILE;

-- Run one step's work (no logging, no transaction control); returns its counts.
CREATE FUNCTION segment._nightly_step(step text, subject name, as_of date, run_id bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    result jsonb;
    n bigint;
    refresh_run bigint;
    sid int;
    s record;
BEGIN
    IF step = 'refresh' THEN
        SELECT x.subject_id INTO sid FROM segment.subject x WHERE x.name = _nightly_step.subject;
        SELECT jsonb_build_object(
                   'results', count(*),
                   'failed_rules', count(*) FILTER (WHERE r.members IS NULL),
                   'entered', coalesce(sum(r.entered), 0),
                   'exited', coalesce(sum(r.exited), 0))
          INTO result
          FROM segment.refresh(_nightly_step.subject, _nightly_step.as_of) r;
        SELECT r.run_id, r.rows_scanned, r.error INTO s
          FROM segment.run r WHERE r.subject_id = sid ORDER BY r.run_id DESC LIMIT 1;
        RETURN result || jsonb_build_object('refresh_run_id', s.run_id, 'rows_scanned', s.rows_scanned)
                      || CASE WHEN s.error IS NULL THEN '{}'::jsonb
                              ELSE jsonb_build_object('rule_errors', s.error) END;
    ELSIF step = 'expire' THEN
        EXECUTE 'SELECT segment.expire($1)' INTO n USING as_of;
        RETURN jsonb_build_object('expired', n);
    ELSIF step = 'evaluate_outcomes' THEN
        EXECUTE 'SELECT segment.evaluate_outcomes($1)' INTO n USING as_of;
        RETURN jsonb_build_object('evaluated', n);
    ELSIF step = 'generate' THEN
        -- columns read by name from the row as jsonb: the rule's name is the
        -- first column (rule_name), the counts are bigint columns
        EXECUTE $q$
            WITH g AS (SELECT to_jsonb(g) AS j, (to_jsonb(g) ->> (SELECT k FROM jsonb_object_keys(to_jsonb(g)) k
                                                                   WHERE k IN ('rule_name', 'rule') LIMIT 1)) AS rule
                         FROM segment.generate(NULL, $1) g)
            SELECT jsonb_build_object('rules', count(*))
                   || (SELECT jsonb_object_agg(c, coalesce(s, 0)) FROM
                         (SELECT c, sum((g.j ->> c)::bigint) AS s
                            FROM unnest(ARRAY['candidates', 'generated', 'control', 'skipped_cooldown',
                                              'skipped_cap', 'over_capacity', 'failed']) c
                            LEFT JOIN g ON g.j ? c GROUP BY c) t)
                   || jsonb_build_object('by_rule', coalesce(jsonb_object_agg(g.rule, g.j - 'rule_name' - 'rule')
                                                             FILTER (WHERE g.rule IS NOT NULL), '{}'))
              FROM g $q$
          INTO result USING as_of;
        RETURN result;
    ELSIF step = 'size_snapshots' THEN
        -- refresh writes segment.size_snapshot (and universe_history) for its
        -- as_of; this step checks that every subject refreshed in this run
        -- has them (from its refresh or a later one of the same date)
        result := '{}';
        FOR s IN SELECT t.subject, (t.counts ->> 'refresh_run_id')::bigint AS refresh_run, x.subject_id
                   FROM segment.nightly_step t JOIN segment.subject x ON x.name = t.subject
                  WHERE t.run_id = _nightly_step.run_id AND t.step = 'refresh' AND t.status = 'succeeded'
                  ORDER BY t.step_no
        LOOP
            IF NOT EXISTS (SELECT 1 FROM segment.universe_history u
                            WHERE u.subject_id = s.subject_id AND u.as_of = _nightly_step.as_of
                              AND u.run_id >= s.refresh_run) THEN
                RAISE EXCEPTION 'subject "%" has no size snapshot for %', s.subject, as_of
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = format('Its refresh (segment.run %s) succeeded but segment.universe_history has no row for that date from it or a later refresh.', s.refresh_run),
                          HINT = 'Something removed the snapshot after the refresh; run the nightly run for this date again.';
            END IF;
            SELECT count(*) INTO n FROM segment.size_snapshot z
             WHERE z.subject_id = s.subject_id AND z.as_of = _nightly_step.as_of;
            result := result || jsonb_build_object(s.subject, n);
        END LOOP;
        RETURN jsonb_build_object('subjects', (SELECT count(*) FROM jsonb_object_keys(result)),
                                  'rows', (SELECT coalesce(sum(v::bigint), 0) FROM jsonb_each_text(result) e(k, v)),
                                  'by_subject', result);
    END IF;
    RAISE EXCEPTION 'unknown nightly step "%"', step USING ERRCODE = 'invalid_parameter_value';
END $$;

-- The nightly run. CALL it outside an explicit transaction block (it commits).
CREATE PROCEDURE segment.run_all(as_of date DEFAULT current_date, INOUT run_id bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    st record;
    step_counts jsonb;
    failed text;            -- 'step[:subject]' of the failed step
    fail_msg text;
    cancel_msg text;
    e_state text;
    e_msg text;
    e_detail text;
    e_hint text;
    e_context text;
    other record;
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The run commits step by step, so it cannot run inside a transaction
    -- block. Called from a function, the COMMIT below fails with 2D000.
    IF segment._in_transaction_block() THEN
        RAISE EXCEPTION 'segment.run_all cannot run inside a transaction block'
            USING ERRCODE = 'active_sql_transaction',
                  DETAIL = 'The nightly run commits after each step, so that finished steps and its log survive a later failure.',
                  HINT = 'CALL segment.run_all() on its own, outside BEGIN ... COMMIT and not from a function (pg_cron calls it that way).';
    END IF;
    COMMIT;

    IF NOT pg_try_advisory_lock(24177, 0) THEN
        SELECT r.run_id, r.started_at, r.backend_pid INTO other
          FROM segment.nightly_run r WHERE r.status = 'running' ORDER BY r.run_id DESC LIMIT 1;
        INSERT INTO segment.nightly_run (as_of, finished_at, status, error, client)
        VALUES (as_of, clock_timestamp(), 'skipped',
                'skipped: another run in progress' ||
                CASE WHEN other.run_id IS NULL THEN ''
                     ELSE format(' (run %s, pid %s, started %s)', other.run_id, other.backend_pid, other.started_at) END,
                segment._nightly_client())
        RETURNING nightly_run.run_id INTO run_id;
        COMMIT;
        RAISE NOTICE 'nightly run % skipped: another run is in progress', run_id;
        RETURN;
    END IF;

    -- Holding the lock, no other run is alive: a 'running' run left over was
    -- cut short (cancelled outside a step, terminated, server crash).
    UPDATE segment.nightly_step t SET status = CASE t.status WHEN 'running' THEN 'abandoned' ELSE 'skipped' END,
           finished_at = CASE t.status WHEN 'running' THEN clock_timestamp() END
      FROM segment.nightly_run r
     WHERE r.run_id = t.run_id AND r.status = 'running' AND t.status IN ('running', 'pending');
    UPDATE segment.nightly_run r SET status = 'abandoned', finished_at = clock_timestamp(),
           error = 'the run ended without finishing (session terminated, server restart or crash); a later run found it'
     WHERE r.status = 'running';

    INSERT INTO segment.nightly_run (as_of, status, client)
    VALUES (as_of, 'running', segment._nightly_client())
    RETURNING nightly_run.run_id INTO run_id;
    INSERT INTO segment.nightly_step (run_id, step_no, step, subject, status)
    SELECT run_all.run_id, row_number() OVER (ORDER BY o, s), p, s, 'pending'
      FROM (SELECT 1 AS o, 'refresh'::text AS p, x.name AS s FROM segment.subject x
            UNION ALL VALUES (2, 'expire', NULL::name), (3, 'evaluate_outcomes', NULL),
                             (4, 'generate', NULL), (5, 'size_snapshots', NULL)) steps;
    COMMIT;

    FOR st IN SELECT t.step_no, t.step, t.subject FROM segment.nightly_step t
               WHERE t.run_id = run_all.run_id ORDER BY t.step_no
    LOOP
        IF failed IS NOT NULL THEN
            UPDATE segment.nightly_step t SET status = 'skipped'
             WHERE t.run_id = run_all.run_id AND t.step_no = st.step_no;
            CONTINUE;
        END IF;
        UPDATE segment.nightly_step t SET status = 'running', started_at = clock_timestamp()
         WHERE t.run_id = run_all.run_id AND t.step_no = st.step_no;
        COMMIT;
        e_state := NULL;
        BEGIN
            step_counts := segment._nightly_step(st.step, st.subject, as_of, run_id);
        EXCEPTION
            WHEN query_canceled THEN
                -- cancel / statement_timeout: record it, finish the log, then
                -- raise it again at the end so the caller sees it
                GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT,
                                        e_context = PG_EXCEPTION_CONTEXT;
                e_detail := NULL; e_hint := NULL;
                cancel_msg := e_msg;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT,
                                        e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT,
                                        e_context = PG_EXCEPTION_CONTEXT;
        END;
        IF e_state IS NULL THEN
            UPDATE segment.nightly_step t SET status = 'succeeded', finished_at = clock_timestamp(), counts = step_counts
             WHERE t.run_id = run_all.run_id AND t.step_no = st.step_no;
        ELSE
            failed := st.step || coalesce(':' || st.subject, '');
            fail_msg := e_msg;
            UPDATE segment.nightly_step t SET status = 'failed', finished_at = clock_timestamp(),
                   sqlstate = e_state, error = e_msg,
                   error_detail = nullif(concat_ws(E'\n', 'DETAIL: ' || nullif(e_detail, ''),
                                                   'HINT: ' || nullif(e_hint, ''),
                                                   'CONTEXT: ' || nullif(e_context, '')), '')
             WHERE t.run_id = run_all.run_id AND t.step_no = st.step_no;
        END IF;
        COMMIT;
    END LOOP;

    UPDATE segment.nightly_run r SET finished_at = clock_timestamp(),
           status = CASE WHEN failed IS NULL THEN 'succeeded' ELSE 'failed' END,
           error = CASE WHEN failed IS NOT NULL THEN format('step %s failed: %s', failed, fail_msg) END
     WHERE r.run_id = run_all.run_id;
    COMMIT;
    -- release the lock, also if an earlier run in this session left it held
    WHILE EXISTS (SELECT 1 FROM pg_locks l
                   WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted
                     AND l.classid = 24177 AND l.objid = 0 AND l.objsubid = 2) LOOP
        PERFORM pg_advisory_unlock(24177, 0);
    END LOOP;
    IF cancel_msg IS NOT NULL THEN
        RAISE EXCEPTION 'nightly run % was cancelled during step %: %', run_id, failed, cancel_msg
            USING ERRCODE = 'query_canceled';
    END IF;
    IF failed IS NOT NULL THEN
        RAISE WARNING 'nightly run % failed at step %: %', run_id, failed, fail_msg
            USING HINT = 'See segment.nightly_step for the error; later steps were skipped.';
    END IF;
END $$;

CREATE FUNCTION segment._nightly_client() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(a.application_name, ''), a.backend_type)
      FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()
$$;

-- Raises why pg_cron cannot be used from here; true when it can. The decision
-- is a pure function of its inputs (tested with each combination);
-- segment._require_cron() feeds it the server's real state.
CREATE FUNCTION segment._cron_check(preloaded boolean, cron_database text, cron_installed boolean, this_database text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT preloaded THEN
        RAISE EXCEPTION 'pg_cron is not loaded: segment.schedule needs it'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron runs jobs from a background process that exists only when the server preloads it.',
                  HINT = format('Add to postgresql.conf: shared_preload_libraries = ''pg_cron'' (keep what is already there, comma-separated) and cron.database_name = %L; restart the server; then run CREATE EXTENSION pg_cron; in database %s.',
                                this_database, quote_ident(this_database));
    END IF;
    IF cron_database IS DISTINCT FROM this_database THEN
        RAISE EXCEPTION 'pg_cron runs jobs from database "%", not from "%"', cron_database, this_database
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron keeps its jobs in the database named by cron.database_name; segment.schedule must be called there.',
                  HINT = format('Set cron.database_name = %L in postgresql.conf, restart, and run CREATE EXTENSION pg_cron; here. Or, connected to %s, run: SELECT cron.schedule_in_database(''segment-nightly'', ''0 2 * * *'', ''CALL segment.run_all()'', %L);',
                                this_database, quote_ident(cron_database), this_database);
    END IF;
    IF NOT cron_installed THEN
        RAISE EXCEPTION 'extension "pg_cron" is not installed in database "%"', this_database
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron is preloaded and runs jobs from this database, but its extension (schema cron) has not been created.',
                  HINT = 'Run CREATE EXTENSION pg_cron; in this database (as a superuser).';
    END IF;
    RETURN true;
END $$;

CREATE FUNCTION segment._require_cron() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM segment._cron_check(
        'pg_cron' = ANY (string_to_array(translate(current_setting('shared_preload_libraries'), ' "', ''), ','))
            AND current_setting('cron.database_name', true) IS NOT NULL,
        coalesce(current_setting('cron.database_name', true), 'postgres'),
        EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'),
        current_database());
END $$;

CREATE FUNCTION segment.schedule(job text DEFAULT 'segment-nightly', cron text DEFAULT '0 2 * * *')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    jobid bigint;
BEGIN
    IF job IS NULL OR cron IS NULL THEN
        RAISE EXCEPTION 'job and cron must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(job) = '' THEN
        RAISE EXCEPTION 'job name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM segment._require_cron();
    -- same name, same user: pg_cron replaces the job's schedule
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO jobid USING job, cron, 'CALL segment.run_all()';
    RETURN jobid;
END $$;

CREATE FUNCTION segment.unschedule(job text DEFAULT 'segment-nightly')
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    found_it boolean;
BEGIN
    IF job IS NULL THEN
        RAISE EXCEPTION 'job must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM segment._require_cron();
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1 AND username = current_user)'
       INTO found_it USING job;
    IF found_it THEN
        EXECUTE 'SELECT cron.unschedule($1)' USING job;
    END IF;
    RETURN found_it;
END $$;

-- segment's runs joined with pg_cron's record of the job runs that called
-- them (same backend pid, run started within the job run). Cron runs of
-- segment.run_all that never reached it (a connection failure, an error
-- before the run started) appear with run_id NULL. Without pg_cron in this
-- database the cron columns are NULL.
CREATE FUNCTION segment._nightly_history()
RETURNS TABLE (run_id bigint, as_of date, status text, started_at timestamptz, finished_at timestamptz,
               error text, failed_step text, steps jsonb,
               cron_jobid bigint, cron_runid bigint, cron_status text, cron_message text,
               cron_start timestamptz, cron_end timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    segment_runs constant text := $q$
        SELECT r.run_id, r.as_of, r.status, r.started_at, r.finished_at, r.error, r.backend_pid,
               (SELECT t.step || coalesce(':' || t.subject, '') FROM segment.nightly_step t
                 WHERE t.run_id = r.run_id AND t.status IN ('failed', 'abandoned') ORDER BY t.step_no LIMIT 1) AS failed_step,
               (SELECT jsonb_object_agg(t.status, t.n) FROM
                  (SELECT t.status, count(*) AS n FROM segment.nightly_step t WHERE t.run_id = r.run_id GROUP BY t.status) t) AS steps
          FROM segment.nightly_run r $q$;
BEGIN
    IF to_regclass('cron.job_run_details') IS NOT NULL
       AND has_table_privilege('cron.job_run_details', 'SELECT') THEN
        RETURN QUERY EXECUTE format($q$
            WITH r AS (%s),
                 d AS (SELECT * FROM cron.job_run_details d WHERE d.command ~* 'segment\.run_all')
            SELECT r.run_id, r.as_of, r.status, r.started_at, r.finished_at, r.error, r.failed_step, r.steps,
                   d.jobid, d.runid, d.status, d.return_message, d.start_time, d.end_time
              FROM r FULL JOIN d ON d.job_pid = r.backend_pid
                                AND r.started_at >= d.start_time - interval '1 second'
                                AND r.started_at <= coalesce(d.end_time, 'infinity')
             ORDER BY coalesce(r.started_at, d.start_time), r.run_id $q$, segment_runs);
    ELSE
        RETURN QUERY EXECUTE format($q$
            SELECT r.run_id, r.as_of, r.status, r.started_at, r.finished_at, r.error, r.failed_step, r.steps,
                   NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::timestamptz, NULL::timestamptz
              FROM (%s) r ORDER BY r.started_at, r.run_id $q$, segment_runs);
    END IF;
END $$;

CREATE VIEW segment.nightly_history AS SELECT * FROM segment._nightly_history();
