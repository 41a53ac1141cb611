-- Upgrade part 98 (issue 15): final body of segment_internal._event_trigger (part
-- 85 has the same). For up to 1,000 customers the live overlay is read by
-- key instead of merged whole into the universe in every event transaction.

CREATE OR REPLACE FUNCTION segment_internal._event_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    rid int := TG_ARGV[0]::int;
    a segment.event_rule;
    r segment.opportunity_rule;
    s segment.subject;
    universe segment.memberset;
    gone_live segment.memberset;
    new_live segment.memberset;
    found_set segment.memberset;
    members segment.memberset;
    n_keys int8;
    unmapped text[];
    n_unknown int8;
    id_expr text;
    map_join text;
BEGIN
    -- only from the trigger attach_event_rule created on the event table
    SELECT * INTO a FROM segment.event_rule x WHERE x.rule_id = rid AND x.event_table = TG_RELID;
    IF a.rule_id IS NULL OR a.trigger_name <> TG_NAME OR TG_NARGS <> 1 THEN
        RAISE EXCEPTION 'trigger function segment_internal._event_trigger() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass),
                  HINT = 'Event rules install their triggers with segment.attach_event_rule().';
    END IF;
    SELECT * INTO r FROM segment.opportunity_rule x WHERE x.rule_id = rid;
    IF NOT r.active THEN
        RETURN NULL;        -- the rule is deactivated
    END IF;
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    -- the universe of the last refresh; live maintenance's overlay (part 71)
    -- is merged below, for the event's customers only
    SELECT x.universe INTO universe FROM segment.subject_state x WHERE x.subject_id = s.subject_id;

    -- the distinct customers of the events whose condition holds, as member ids;
    -- the condition runs as its owner (segment_internal._rule_matches), over the rows
    -- with a key, collected here as the event table's row type
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
                              FROM (SELECT DISTINCT u.key
                                      FROM (SELECT array_agg(e.%2$I%3$s) AS keys, array_agg(ROW(e.*)::%4$s) AS rows
                                              FROM segment_new_events e WHERE e.%2$I IS NOT NULL) ev,
                                           unnest(ev.keys, segment_internal._rule_matches(''event'', $1, $2, ev.rows)) AS u(key, ok)
                                     WHERE u.ok) k %5$s) m',
                   id_expr, a.key_column,
                   CASE WHEN s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN '::int8' ELSE '::text' END,
                   TG_RELID::regclass, map_join)
       INTO n_keys, found_set, unmapped
      USING rid, TG_RELID::regclass;
    IF n_keys = 0 THEN
        RETURN NULL;
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
        VALUES (rid, TG_RELID, n_unknown,
                (coalesce(unmapped, '{}')
                 || CASE WHEN found_set IS NULL THEN '{}'::text[]
                         WHEN universe IS NULL THEN ARRAY(SELECT segment.keys(s.name, found_set) LIMIT 10)
                         ELSE ARRAY(SELECT segment.keys(s.name, found_set OPERATOR(segment.-) members) LIMIT 10)
                    END)[1:10]);
    END IF;
    IF members IS NULL OR segment.is_empty(members) THEN
        RETURN NULL;
    END IF;

    PERFORM segment_internal._lock_members(s.subject_id, members);
    PERFORM segment_internal._generate(s.subject_id, ARRAY[rid], segment.as_of(), members,
                              format('event:%s.%s', TG_TABLE_SCHEMA, TG_TABLE_NAME));
    RETURN NULL;
END $$;
