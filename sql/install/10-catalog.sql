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
    updated_by  name NOT NULL DEFAULT current_user,
    owner       regrole NOT NULL DEFAULT quote_ident(current_user)::regrole   -- the role its rule runs as (docs/dba-guide.md#rule-owners)
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

-- A registered subject's id by name (every part looks subjects up by name).
CREATE FUNCTION segment_internal._subject_id(subject name) RETURNS int
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
