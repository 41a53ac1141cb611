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
