-- segment install script, part 70: segments, schemes and scorecards (docs/segmentation.md).
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
    updated_by  name NOT NULL DEFAULT current_user,
    owner       regrole NOT NULL DEFAULT quote_ident(current_user)::regrole   -- the role that wrote its audience
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
    updated_by  name NOT NULL DEFAULT current_user,
    owner       regrole NOT NULL DEFAULT quote_ident(current_user)::regrole   -- the role its bucket rules run as
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
    updated_by   name NOT NULL DEFAULT current_user,
    owner        regrole NOT NULL DEFAULT quote_ident(current_user)::regrole   -- the role its item rules run as
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
