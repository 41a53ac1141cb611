-- segment install script, part 33: daily snapshot subjects (docs/dba-guide.md#snapshot-subjects).
-- A subject registered with snapshot_column reads one snapshot per refresh:
-- the newest on or before as_of. Its member sets are also kept per snapshot
-- date, the `snapshot_retention` newest dates, so that count(), members(),
-- members_text() and audience() can read an earlier snapshot (as_of => date).
-- Also the upgrade part of the same name (only ALTER TABLE ADD COLUMN and
-- new objects here).

ALTER TABLE segment.subject
    ADD COLUMN snapshot_column name,                       -- NULL: not a snapshot subject
    ADD COLUMN snapshot_retention int NOT NULL DEFAULT 2
        CHECK (snapshot_retention BETWEEN 1 AND 3660);

-- What each refresh read: the snapshot date and the relations (leaf
-- partitions) whose rows it read.
ALTER TABLE segment.run
    ADD COLUMN snapshot_date date,
    ADD COLUMN read_relations text[];

-- Member sets per snapshot date (snapshot subjects). Not dumped: a refresh
-- rebuilds them.
CREATE TABLE segment.tag_snapshot (
    tag_id        int NOT NULL REFERENCES segment.tag ON DELETE CASCADE,
    snapshot_date date NOT NULL,
    members       segment.memberset NOT NULL,
    member_count  bigint NOT NULL,
    entered       bigint NOT NULL,       -- since the previous snapshot refreshed
    exited        bigint NOT NULL,
    run_id        bigint NOT NULL,
    refreshed_at  timestamptz NOT NULL,
    PRIMARY KEY (tag_id, snapshot_date)
);

CREATE TABLE segment.subject_snapshot (
    subject_id    int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    snapshot_date date NOT NULL,
    universe      segment.memberset NOT NULL,   -- every key of that snapshot
    member_count  bigint NOT NULL,
    run_id        bigint NOT NULL,
    refreshed_at  timestamptz NOT NULL,
    PRIMARY KEY (subject_id, snapshot_date)
);

-- What SQL that reads a customer's current row adds to its WHERE / ON for
-- the subject's rows aliased `alias`: nothing for a subject that is not a
-- snapshot subject, else the snapshot date of its current state (generate,
-- render, evaluate_outcomes and the report read those rows).
CREATE FUNCTION segment_internal._snapshot_filter(sid int, alias text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    col name;
    d date;
BEGIN
    SELECT x.snapshot_column INTO col FROM segment.subject x WHERE x.subject_id = sid;
    IF col IS NULL THEN
        RETURN '';
    END IF;
    SELECT st.as_of INTO d FROM segment.subject_state st WHERE st.subject_id = sid;
    IF d IS NULL THEN
        RETURN ' AND false';       -- never refreshed: no member, no row
    END IF;
    RETURN format(' AND %I.%I = %L::pg_catalog.date', alias, col, to_char(d, 'YYYY-MM-DD'));
END $$;

CREATE FUNCTION segment.latest_snapshot(subject name, as_of date DEFAULT current_date) RETURNS date
    AS 'MODULE_PATHNAME', 'segment_latest_snapshot' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION segment.latest_snapshot(name, date) IS
    'the snapshot date a refresh for as_of would read (the newest on or before it), NULL if none';

CREATE FUNCTION segment.snapshots(subject name)
RETURNS TABLE (snapshot_date date, members bigint, run_id bigint, refreshed_at timestamptz, current boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE sid int := segment_internal._subject_id(subject);
BEGIN
    RETURN QUERY
    SELECT x.snapshot_date, x.member_count, x.run_id, x.refreshed_at,
           x.snapshot_date IS NOT DISTINCT FROM (SELECT st.as_of FROM segment.subject_state st
                                                  WHERE st.subject_id = sid)
      FROM segment.subject_snapshot x
     WHERE x.subject_id = sid
     ORDER BY x.snapshot_date DESC;
END $$;
COMMENT ON FUNCTION segment.snapshots(name) IS
    'the snapshot dates whose member sets are retained (as_of => date readable), newest first';

CREATE FUNCTION segment.set_snapshot_retention(subject name, keep int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
BEGIN
    IF keep IS NULL OR keep < 1 OR keep > 3660 THEN
        RAISE EXCEPTION 'snapshot retention must be between 1 and 3660, not %', coalesce(keep::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Retention counts snapshot dates; the newest refreshed one is always kept.';
    END IF;
    IF (SELECT x.snapshot_column FROM segment.subject x WHERE x.subject_id = sid) IS NULL THEN
        RAISE EXCEPTION 'subject "%" is not a snapshot subject', subject
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Register it with snapshot_column => ... to keep member sets per snapshot date.';
    END IF;
    -- serialized with refreshes of the subject
    PERFORM pg_catalog.pg_advisory_xact_lock(24173, sid);
    UPDATE segment.subject x SET snapshot_retention = keep WHERE x.subject_id = sid;
    WITH keepers AS (
        (SELECT x.snapshot_date FROM segment.subject_snapshot x
          WHERE x.subject_id = sid ORDER BY x.snapshot_date DESC LIMIT keep)
        UNION SELECT st.as_of FROM segment.subject_state st WHERE st.subject_id = sid),
    gone AS (DELETE FROM segment.subject_snapshot x
              WHERE x.subject_id = sid AND x.snapshot_date NOT IN (SELECT * FROM keepers))
    DELETE FROM segment.tag_snapshot s USING segment.tag t
     WHERE s.tag_id = t.tag_id AND t.subject_id = sid
       AND s.snapshot_date NOT IN (SELECT * FROM keepers);
END $$;
COMMENT ON FUNCTION segment.set_snapshot_retention(name, int) IS
    'how many snapshot dates of a snapshot subject keep their member sets (the newest ones); prunes now';

-- Readers of one retained snapshot (src/snapshot_read.c).
CREATE FUNCTION segment.count(subject name, audience text, as_of date) RETURNS bigint
    AS 'MODULE_PATHNAME', 'segment_count_as_of' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.count(name, text, date) IS
    'number of members of an audience in a retained snapshot of a snapshot subject';

CREATE FUNCTION segment.members(subject name, audience text, as_of date) RETURNS SETOF bigint
    AS 'MODULE_PATHNAME', 'segment_members_as_of' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 10000
    SUPPORT segment_internal._members_support;
COMMENT ON FUNCTION segment.members(name, text, date) IS
    'keys of the members of an audience in a retained snapshot, ascending (integer-keyed subjects)';

CREATE FUNCTION segment.members_text(subject name, audience text, as_of date) RETURNS SETOF text
    AS 'MODULE_PATHNAME', 'segment_members_text_as_of' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 10000;
COMMENT ON FUNCTION segment.members_text(name, text, date) IS
    'keys of the members of an audience in a retained snapshot as text (any subject)';

CREATE FUNCTION segment.audience(subject name, audience text, as_of date) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'segment_audience_as_of' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.audience(name, text, date) IS
    'the member set of an audience in a retained snapshot of a snapshot subject';
