-- Upgrade part 98 (issue 15): segment_internal._event_trigger becomes the C
-- trigger of src/event_trigger.c (the same function, so the triggers of
-- existing attachments keep it), and segment_internal._event_fire takes the
-- rest of an event statement. Part 85 has the same bodies.

CREATE OR REPLACE FUNCTION segment_internal._event_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'segment_event_trigger' LANGUAGE C;

-- The rest of an event statement, once the trigger has kept the events whose
-- condition holds: their customer keys (int_keys for a subject with integer
-- keys, text_keys for text keys, with repeats) become member ids; keys
-- segment does not know are recorded in event_skip; the others get the
-- rule's opportunities (source: 'event:<schema>.<table>'). Static SQL only:
-- every statement keeps its plan for the session. Generic plans, here and in
-- the _generate it calls: a few customers plan alike whatever their ids, and
-- statements whose other branch is a batch's (members IS NULL) otherwise
-- stayed on custom plans, planned in every event transaction.
CREATE FUNCTION segment_internal._event_fire(rid int, event_table regclass, source text,
                                             int_keys int8[], text_keys text[])
RETURNS void LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s segment.subject;
    universe segment.memberset;
    gone_live segment.memberset;
    new_live segment.memberset;
    found_set segment.memberset;
    members segment.memberset;
    n_keys int8;
    unmapped text[];
    n_unknown int8;
BEGIN
    SELECT x.* INTO s FROM segment.subject x JOIN segment.opportunity_rule r USING (subject_id)
     WHERE r.rule_id = rid;
    -- the universe of the last refresh; live maintenance's overlay (part 86)
    -- is merged below, for the event's customers only
    SELECT x.universe INTO universe FROM segment.subject_state x WHERE x.subject_id = s.subject_id;

    -- the distinct customers, as member ids (integer keys outside
    -- 0..4294967295 and text keys without a keymap entry have none)
    IF s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN
        SELECT count(*), segment.memberset_agg(m.id),
               (array_agg(m.key::text ORDER BY m.key) FILTER (WHERE m.id IS NULL))[1:10]
          INTO n_keys, found_set, unmapped
          FROM (SELECT k.key, CASE WHEN k.key BETWEEN 0 AND 4294967295 THEN k.key END AS id
                  FROM (SELECT DISTINCT u.key FROM unnest(int_keys) u(key)) k) m;
    ELSE
        SELECT count(*), segment.memberset_agg(m.id),
               (array_agg(m.key::text ORDER BY m.key) FILTER (WHERE m.id IS NULL))[1:10]
          INTO n_keys, found_set, unmapped
          FROM (SELECT k.key, km.member_id AS id
                  FROM (SELECT DISTINCT u.key FROM unnest(text_keys) u(key)) k
                  LEFT JOIN segment.keymap km ON km.subject_id = s.subject_id AND km.key = k.key) m;
    END IF;
    IF n_keys = 0 THEN
        RETURN;
    END IF;

    -- customers segment does not know are skipped, and reported. With live
    -- maintenance's overlay, customers inserted since the refresh are known
    -- and deleted ones are not: for a few customers their overlay rows are
    -- read by key (merging the whole overlay into the universe costs in
    -- proportion to it, in every event transaction)
    IF found_set IS NOT NULL AND universe IS NOT NULL THEN
        IF segment.cardinality(found_set) <= 1000 THEN
            SELECT segment.memberset_agg(l.member_id) FILTER (WHERE l.deleted),
                   segment.memberset_agg(l.member_id) FILTER (WHERE NOT l.deleted)
              INTO gone_live, new_live
              FROM segment.live_member l
             WHERE l.subject_id = s.subject_id AND l.member_id = ANY (segment.to_array(found_set));
            members := found_set OPERATOR(segment.&) universe;
            IF gone_live IS NOT NULL THEN
                members := members OPERATOR(segment.-) gone_live;
            END IF;
            IF new_live IS NOT NULL THEN
                members := members OPERATOR(segment.|) new_live;
            END IF;
        ELSE
            universe := segment_internal._live_universe(universe, s.subject_id);
            members := found_set OPERATOR(segment.&) universe;
        END IF;
    ELSE
        members := NULL;
    END IF;
    n_unknown := n_keys - coalesce(segment.cardinality(members), 0);
    IF n_unknown > 0 THEN
        INSERT INTO segment.event_skip (rule_id, event_table, unknown, sample_keys)
        VALUES (rid, event_table, n_unknown,
                (coalesce(unmapped, '{}')
                 || CASE WHEN found_set IS NULL THEN '{}'::text[]
                         WHEN universe IS NULL THEN ARRAY(SELECT segment.keys(s.name, found_set) LIMIT 10)
                         ELSE ARRAY(SELECT segment.keys(s.name, found_set OPERATOR(segment.-) members) LIMIT 10)
                    END)[1:10]);
    END IF;
    IF members IS NULL OR segment.is_empty(members) THEN
        RETURN;
    END IF;

    PERFORM segment_internal._lock_members(s.subject_id, members);
    PERFORM segment_internal._generate(s.subject_id, ARRAY[rid], segment.as_of(), members, source);
END $$;
COMMENT ON FUNCTION segment_internal._event_fire(int, regclass, text, int8[], text[]) IS
    'the generation of an event statement for the customer keys its event rule''s trigger kept';

