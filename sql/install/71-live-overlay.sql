-- segment install script, part 71: the overlay of live maintenance and its
-- readers (docs/live.md). Live maintenance (part 86) writes one row per
-- customer changed since the last refresh into segment.live_member; every
-- reader of a set merges those rows over the set of the last refresh with
-- the _live_* functions below: the scheme and scorecard readers of part 76,
-- the event rules of part 85, and C (catalog_names.c, catalog_read.c).
-- Early, so that those readers come after what they call. Without overlay
-- rows (live maintenance off) each returns the stored set as is.

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
