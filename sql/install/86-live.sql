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
    enabled_by name NOT NULL DEFAULT current_user,
    -- the triggers enable_live created on the subject's table: the trigger
    -- functions refuse to run from any other trigger (names, not OIDs, so
    -- that a dump and restore keeps them valid)
    triggers   name[] NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('segment.live_subject', '');

-- The overlay: the state of each customer changed since the last refresh.
-- One row per customer, so concurrent writers of different customers lock
-- different rows. Computed state: not dumped (a refresh rebuilds it). No
-- foreign key to segment.subject: checking it would lock the subject's one
-- row FOR KEY SHARE in every writer (part 89 deletes a dropped subject's
-- rows instead).
CREATE TABLE segment.live_member (
    subject_id int NOT NULL,
    member_id  int8 NOT NULL,
    deleted    boolean NOT NULL,            -- the key left the table
    tags       int4[] NOT NULL,             -- tag_ids of the rule tags it is in
    buckets    jsonb NOT NULL,              -- {"scheme_id": "bucket", ...}
    scores     jsonb NOT NULL,              -- {"scorecard_id": score, ...}
    as_of      date NOT NULL,               -- evaluation date used
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (subject_id, member_id)
);

CREATE FUNCTION segment_internal._live_rows()
RETURNS TABLE (subject_id int, member_id int8, deleted boolean, tags int4[],
               buckets jsonb, scores jsonb, as_of date)
    AS 'MODULE_PATHNAME', 'segment_live_rows' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION segment_internal._live_rows() IS
    'internal: the overlay rows of the statement the live trigger is processing';

-- Runs as the extension owner, so that writers need no rights on
-- segment's tables; with a fixed search_path, so that a writer cannot make
-- the rules it parses call functions of the writer's choosing. Rules must
-- therefore name functions outside pg_catalog with their schema (as
-- segment.as_of() is).
CREATE FUNCTION segment_internal._live_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'segment_live_trigger' LANGUAGE C SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;

-- A live writer's share of the subject's live lock (class 24178, held to the
-- end of the transaction; a refresh that moves the date takes it
-- exclusively), then the date of the subject's state as committed now, not
-- as of the caller's snapshot: the date an overlay row must be evaluated at.
-- NULL when the subject was never refreshed. For the key-change trigger; the
-- statement trigger does the same in C.
CREATE FUNCTION segment_internal._live_writer_as_of(sid int) RETURNS date
    AS 'MODULE_PATHNAME', 'segment_live_writer_as_of' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION segment_internal._live_writer_as_of(int) IS
    'internal: take a live writer''s share of the subject''s live lock; the date of its state as committed now';
REVOKE EXECUTE ON FUNCTION segment_internal._live_writer_as_of(int) FROM PUBLIC;

-- A key changed by an UPDATE: the old key leaves the table. A row trigger
-- that fires only when the key column changes, so that the statement
-- trigger on UPDATE needs no OLD TABLE (capturing the old rows of every
-- bulk UPDATE would cost more than this rare case).
CREATE FUNCTION segment_internal._live_key_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := TG_ARGV[0]::int;
    old_key int8;
    d date;
BEGIN
    -- only from the trigger enable_live created on the subject's table
    IF NOT EXISTS (SELECT 1 FROM segment.live_subject l JOIN segment.subject s USING (subject_id)
                    WHERE l.subject_id = sid AND s.relation = TG_RELID AND TG_NAME = ANY (l.triggers)
                      AND s.key_column = TG_ARGV[1] AND TG_NARGS = 2) THEN
        RAISE EXCEPTION 'trigger function segment_internal._live_key_change() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass),
                  HINT = 'Live maintenance installs its triggers with segment.enable_live(subject).';
    END IF;
    old_key := (to_jsonb(OLD) ->> TG_ARGV[1])::int8;
    IF old_key BETWEEN 0 AND 4294967295 THEN
        d := segment_internal._live_writer_as_of(sid);
        IF d IS NOT NULL THEN
            INSERT INTO segment.live_member AS l (subject_id, member_id, deleted, tags, buckets, scores, as_of, changed_at)
            VALUES (sid, old_key, true, '{}', '{}', '{}', d, now())
            ON CONFLICT (subject_id, member_id) DO UPDATE SET deleted = true, tags = '{}', buckets = '{}',
                   scores = '{}', as_of = excluded.as_of, changed_at = excluded.changed_at;
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- Merging: for any set X of the last refresh,
--   X now = (X - every overlay member) | (overlay members that are in X now).
-- Without overlay rows for the subject the stored set is returned as is.

CREATE FUNCTION segment_internal._live_tag(base segment.memberset, sid int, tag int)
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

CREATE FUNCTION segment_internal._live_bucket(base segment.memberset, sid int, scheme int, bucket name)
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
CREATE FUNCTION segment_internal._live_universe(base segment.memberset, sid int)
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
CREATE FUNCTION segment_internal._live_scores(card int, sid int)
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
CREATE FUNCTION segment_internal._live_has(base segment.memberset, sid int, tag int, mid int8)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE((SELECT NOT l.deleted AND tag = ANY (l.tags) FROM segment.live_member l
                      WHERE l.subject_id = sid AND l.member_id = mid),
                    base OPERATOR(segment.@>) mid)
$$;

CREATE FUNCTION segment_internal._live_in_bucket(base segment.memberset, scheme int, bucket name, mid int8)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE((SELECT NOT l.deleted AND l.buckets ->> scheme::text IS NOT DISTINCT FROM bucket::text
                       FROM segment.live_member l
                      WHERE l.subject_id = (SELECT s.subject_id FROM segment.scheme s WHERE s.scheme_id = scheme)
                        AND l.member_id = mid),
                    base OPERATOR(segment.@>) mid)
$$;

-- Installing and removing the triggers ---------------------------------------

CREATE FUNCTION segment_internal._live_trigger_names(sid int) RETURNS name[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[format('segment_live_%s_insert', sid), format('segment_live_%s_update', sid),
                 format('segment_live_%s_delete', sid), format('segment_live_%s_key', sid)]::name[]
$$;

CREATE FUNCTION segment_internal._live_drop_triggers(sid int) RETURNS void
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
              WHERE g.tgrelid = rel AND g.tgname = ANY (segment_internal._live_trigger_names(sid))
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, rel);
    END LOOP;
END $$;

CREATE FUNCTION segment.enable_live(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    s segment.subject;
    names name[] := segment_internal._live_trigger_names(sid);
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
    -- one enable/disable/refresh of a subject at a time
    PERFORM pg_advisory_xact_lock(24173, sid);
    IF EXISTS (SELECT 1 FROM segment.live_subject l WHERE l.subject_id = sid) THEN
        RAISE EXCEPTION 'live maintenance of subject "%" is already enabled', subject
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Turn it off with segment.disable_live(%L).', subject);
    END IF;
    IF s.snapshot_column IS NOT NULL THEN
        RAISE EXCEPTION 'live maintenance does not apply to snapshot subject "%"', subject
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Its table holds one snapshot per data date, loaded by the ETL: there is no row change to follow, and segment puts no trigger on a warehouse table.',
                  HINT = 'Chain segment.refresh() or CALL segment.run_all() after the ETL load (docs/dba-guide.md#snapshot-subjects).';
    END IF;
    IF s.key_type NOT IN ('int4'::regtype, 'int8'::regtype) THEN
        RAISE EXCEPTION 'live maintenance supports integer-keyed subjects only; subject "%" is keyed by %',
                        subject, s.key_type
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'A new text key would need a new member id from segment.keymap, a single point every writer would wait on.',
                  HINT = 'Keep the subject current with segment.refresh().';
    END IF;
    IF segment_internal._relation_kind(s.relation) IS DISTINCT FROM 'table' THEN
        RAISE EXCEPTION 'live maintenance needs an ordinary table; the relation of subject "%" is a %',
                        subject, segment_internal._relation_kind(s.relation)
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = CASE segment_internal._relation_kind(s.relation)
                           WHEN 'citus' THEN 'Live maintenance uses triggers with transition tables, which Citus does not run on distributed tables.'
                           WHEN 'view' THEN 'A view has no rows of its own to put triggers on.'
                           ELSE 'Live maintenance uses statement triggers with transition tables on the subject table.' END,
                  HINT = format('Keep the subject current with segment.refresh(%L), e.g. scheduled after the load.', subject);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.subject_state x WHERE x.subject_id = sid) THEN
        RAISE EXCEPTION 'subject "%" has not been refreshed', subject
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Live changes are evaluated as of the date of the last refresh and merged over its sets.',
                  HINT = format('Run segment.refresh(%L) first.', subject);
    END IF;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS segment_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._live_trigger(%L)', names[1], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING NEW TABLE AS segment_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._live_trigger(%L)', names[2], s.relation, sid);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %I ON %s FOR EACH ROW '
                   'WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION segment_internal._live_key_change(%L, %L)',
                   names[4], s.key_column, s.relation, s.key_column, s.key_column, sid, s.key_column);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS segment_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._live_trigger(%L)', names[3], s.relation, sid);
    INSERT INTO segment.live_subject (subject_id, triggers) VALUES (sid, names);
END $$;
COMMENT ON FUNCTION segment.enable_live(name) IS
    'keep the subject''s tags, buckets and scores current on every INSERT, UPDATE and DELETE';

CREATE FUNCTION segment.disable_live(subject name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
BEGIN
    PERFORM pg_advisory_xact_lock(24173, sid);
    IF NOT EXISTS (SELECT 1 FROM segment.live_subject l WHERE l.subject_id = sid) THEN
        RAISE EXCEPTION 'live maintenance of subject "%" is not enabled', subject
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Turn it on with segment.enable_live(%L).', subject);
    END IF;
    PERFORM segment_internal._live_drop_triggers(sid);
    DELETE FROM segment.live_subject l WHERE l.subject_id = sid;
END $$;
COMMENT ON FUNCTION segment.disable_live(name) IS
    'stop live maintenance; changes made so far stay visible until the next refresh folds them';

-- Entry rules (part 85) fired from live maintenance: the live trigger of a
-- subject with entry rules evaluates each watched audience over the
-- statement's customers before and after writing the overlay, and calls
-- segment_internal._fire_entries with those who entered, for the period
-- segment.as_of() (the day of the write, as event rules). Like a refresh, a failing
-- entry is reported with a WARNING and does not fail the writing statement.
CREATE FUNCTION segment_internal._live_entry_before(sid int, changed segment.memberset)
RETURNS TABLE (audience text, members segment.memberset)
LANGUAGE sql AS $$
    SELECT * FROM segment_internal._entry_audiences(sid, changed)
$$;

CREATE FUNCTION segment_internal._live_entry_after(sid int, changed segment.memberset, audiences text[],
                                          befores segment.memberset[])
RETURNS bigint LANGUAGE sql AS $$
    -- period: segment.as_of() now, as for event rules (not the refresh's date)
    SELECT f.made FROM segment_internal._fire_entered(sid, changed, audiences, befores, NULL, 'write') f
$$;
