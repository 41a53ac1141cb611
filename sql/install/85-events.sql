-- segment install script, part 85: opportunities made in the transaction
-- that inserts an event (docs/events.md), and opportunities fired when a
-- customer enters an audience.
--
-- An event rule attaches an opportunity rule to an event table: a
-- statement-level AFTER INSERT trigger (transition table, so a COPY of
-- 100,000 events is one call) keeps the events whose condition holds, maps
-- their customer keys to member ids and calls segment_internal._generate with that
-- member set, so cool-down, contact cap, control group, templates and
-- assignment are exactly those of batch generation. An entry rule does the
-- same for the customers who entered an audience in a refresh (the refresh
-- pipeline, src/refresh_pipeline.c, calls it after the state is written) or
-- in live maintenance. docs/events.md is the guide. The attachments
-- (segment.event_rule, segment.entry_rule) are tables of part 80, where
-- generation (part 84) can see which rules they claim.

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

SELECT pg_catalog.pg_extension_config_dump('segment.event_skip', '');
SELECT pg_catalog.pg_extension_config_dump('segment.event_skip_skip_id_seq', '');

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
CREATE FUNCTION segment_internal._lock_members(sid int, members segment.memberset) RETURNS void
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

-- The trigger of every event rule (src/event_trigger.c): TG_ARGV[0] is the
-- rule id; the inserted rows are the transition table segment_new_events.
-- It refuses to run from any trigger but the one attach_event_rule created,
-- does nothing for an inactive rule, keeps the rows with a customer key
-- whose condition holds (the condition runs as its owner) and calls
-- _event_fire below with their keys.
CREATE FUNCTION segment_internal._event_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'segment_event_trigger' LANGUAGE C;
COMMENT ON FUNCTION segment_internal._event_trigger() IS
    'statement trigger of an event rule: opportunities for the customers of the inserted events whose condition holds';

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
    -- the universe of the last refresh; live maintenance's overlay (part 71)
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

CREATE FUNCTION segment_internal._event_key_ok(subject_key regtype, event_key regtype) RETURNS boolean
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
    PERFORM segment_internal._lock_definitions();
    r := segment_internal._opportunity_rule(rule, true);
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = event_table;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', event_table
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Events are rows inserted into an ordinary or partitioned table.';
    END IF;
    IF segment_internal._relation_kind(event_table) = 'citus' THEN
        RAISE EXCEPTION 'event rules cannot watch the Citus table %', event_table
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'An event rule is a statement trigger with a transition table, which Citus does not run on distributed tables.',
                  HINT = 'Insert events into a local table on the coordinator, or generate from a refreshed audience with segment.generate().';
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
    IF NOT segment_internal._event_key_ok(s.key_type, ktype) THEN
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
    cols := segment_internal._rule_columns(event_table, condition,
                                  format('event rule "%s" on %s', rule, event_table));
    condition := segment_internal._rule_canonical(event_table, condition);
    -- the trigger reads the new rows under the table's own name: a column
    -- may be written "status" or "loan_application.status", not with its schema
    EXECUTE format('SELECT 1 FROM ONLY %s AS %I WHERE (%s) IS TRUE LIMIT 0',
                   event_table, (SELECT c.relname FROM pg_class c WHERE c.oid = event_table), condition);
    trg := format('segment_event_rule_%s', r.rule_id);
    INSERT INTO segment.event_rule (rule_id, event_table, key_column, key_type, condition,
                                    columns, column_types, trigger_name, owner)
    VALUES (r.rule_id, event_table, key_column, ktype, condition, cols,
            segment_internal._column_types(event_table, cols), trg, quote_ident(current_user)::regrole);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS segment_new_events
                    FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._event_trigger(%L)',
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
    PERFORM segment_internal._lock_definitions();
    r := segment_internal._opportunity_rule(rule, true);
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

CREATE FUNCTION segment.attach_entry_rule(rule name, audience text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
    s segment.subject;
BEGIN
    PERFORM segment_internal._lock_definitions();
    r := segment_internal._opportunity_rule(rule, true);
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    IF audience IS NULL OR btrim(audience) = '' THEN
        RAISE EXCEPTION 'the audience to watch must not be empty'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name a tag, segment or scheme bucket, or combine them: ''churn_risk and not vip''.';
    END IF;
    PERFORM segment_internal._audience_check(s.name, audience);
    IF EXISTS (SELECT 1 FROM segment.entry_rule e WHERE e.rule_id = r.rule_id AND e.audience = attach_entry_rule.audience) THEN
        RAISE EXCEPTION 'opportunity rule "%" already fires on entry into %', rule, quote_literal(audience)
            USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO segment.entry_rule (rule_id, subject_id, audience) VALUES (r.rule_id, r.subject_id, audience);
END $$;
COMMENT ON FUNCTION segment.attach_entry_rule(name, text) IS
    'makes an opportunity rule fire for the customers who enter an audience in a refresh (see docs/events.md)';

CREATE FUNCTION segment.detach_entry_rule(rule name, audience text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE r segment.opportunity_rule;
BEGIN
    PERFORM segment_internal._lock_definitions();
    r := segment_internal._opportunity_rule(rule, true);
    DELETE FROM segment.entry_rule e WHERE e.rule_id = r.rule_id AND e.audience = detach_entry_rule.audience;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'opportunity rule "%" does not fire on entry into %', rule, quote_literal(audience)
            USING ERRCODE = 'undefined_object',
                  HINT = 'Entry rules are listed in segment.entry_rule.';
    END IF;
END $$;
COMMENT ON FUNCTION segment.detach_entry_rule(name, text) IS
    'stops an opportunity rule firing on entry into an audience';

-- The hook: the customers in "entered" have just entered "audience" of
-- subject sid; make the opportunities of the active rules that fire on that
-- entry, for period as_of, with source 'entered:<audience>'. Called by
-- segment_internal._fire_entered (part 85, refresh pipeline): at the end of each
-- refresh (the step fire_entry_rules of src/refresh_pipeline.c) and in live
-- maintenance. Takes the generation locks itself. Returns the number of
-- opportunities made (controls included).
CREATE FUNCTION segment_internal._fire_entries(sid int, audience text, entered segment.memberset,
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
    PERFORM segment_internal._lock_members(sid, entered);
    SELECT coalesce(sum(g.generated + g.control), 0) INTO n
      FROM segment_internal._generate(sid, ids, coalesce(as_of, segment.as_of()), entered,
                             'entered:' || audience) g;
    RETURN n;
END $$;
COMMENT ON FUNCTION segment_internal._fire_entries(int, text, segment.memberset, date) IS
    'makes the opportunities of the rules that fire on entry into an audience, for the members that entered';

------------------------------------------------------------------------
-- Guards
------------------------------------------------------------------------

-- An opportunity rule with an event or entry rule cannot be dropped (its
-- trigger would stay on the event table): detach first.
CREATE FUNCTION segment_internal._opportunity_rule_drop_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE what text;
BEGIN
    IF TG_NAME <> 'segment_event_rule_guard' OR TG_RELID <> 'segment.opportunity_rule'::regclass THEN
        RAISE EXCEPTION 'trigger function segment_internal._opportunity_rule_drop_guard() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass);
    END IF;
    SELECT string_agg(x, ', ') INTO what FROM (
        SELECT format('event table %s', e.event_table) AS x FROM segment.event_rule e WHERE e.rule_id = OLD.rule_id
        UNION ALL
        SELECT format('entry into %L', e.audience) FROM segment.entry_rule e WHERE e.rule_id = OLD.rule_id) y;
    IF what IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop opportunity rule "%": it fires on %', OLD.name, what
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Detach it first: segment.detach_event_rule(rule, event_table), segment.detach_entry_rule(rule, audience).';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER segment_event_rule_guard BEFORE DELETE ON segment.opportunity_rule
    FOR EACH ROW EXECUTE FUNCTION segment_internal._opportunity_rule_drop_guard();

-- DDL guard: refuse an ALTER TABLE of an event table after which a
-- condition no longer analyses, a column it reads changed type, or the key
-- column is gone or of an incompatible type.
CREATE FUNCTION segment_internal._check_event_rules_of(rel oid) RETURNS void
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
            PERFORM segment_internal._rule_columns(e.event_table, e.condition, NULL);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": event rule "%" depends on it', e.event_table, e.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Condition %s would fail: %s', e.condition, SQLERRM),
                      HINT = 'Detach the event rule first (segment.detach_event_rule).';
        END;
        IF segment_internal._column_types(e.event_table, e.columns) IS DISTINCT FROM e.column_types THEN
            RAISE EXCEPTION 'cannot change the type of a column that event rule "%" reads', e.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Condition %s was written for columns %s of types %s.',
                                      e.condition, e.columns, e.column_types),
                      HINT = 'Detach the event rule, change the column, and attach it again.';
        END IF;
        SELECT a.atttypid::regtype INTO ktype FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attname = e.key_column AND a.attnum > 0 AND NOT a.attisdropped;
        IF ktype IS NULL OR NOT segment_internal._event_key_ok(e.subject_key, ktype) THEN
            RAISE EXCEPTION 'cannot change table "%": column "%" is the customer key of event rule "%"',
                            e.event_table, e.key_column, e.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Detach the event rule first (segment.detach_event_rule).';
        END IF;
    END LOOP;
END $$;

-- The DDL and drop guards of event tables are part 91 (_check_event_rules_of
-- above, _check_event_drops there).
