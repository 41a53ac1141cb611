-- segment install script, part 87: contact journeys (docs/journeys.md).
-- A journey is a sequence of timed steps (touches on channels) that
-- customers of an entry audience go through: 30/15/7/1 days before a date
-- column (anchor), or day 0/1/3/7 after they entered. Channels have a
-- fallback list, quiet hours, a daily capacity and a cost; consent is read
-- from the warehouse. advance_journeys(at) writes the due touches to
-- segment.outbox, idempotently: every touch has a unique idempotency key
-- (journey:version:instance:step), the journey's advance is serialised by
-- a transaction-level advisory lock, and a watermark (the last `now` an
-- advance of the journey committed) says which steps are already decided.
-- Audiences (entry, exit, goal, step conditions) are read from member sets
-- of the subject's latest refresh: no user code runs. Templates are
-- compiled by segment_internal._compile_template (column references and formats).
-- docs/journeys.md explains the policy.

-- A channel that touches go out on.
CREATE TABLE segment.channel (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]*$'),
    fallback       text[] NOT NULL DEFAULT '{}',   -- in order: where a touch goes instead
    quiet_from     time,                           -- no touch from quiet_from to quiet_to
    quiet_to       time,                           -- (local time; may wrap midnight)
    daily_capacity int CHECK (daily_capacity >= 0),
    cost           numeric CHECK (cost >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     name NOT NULL DEFAULT current_user,
    CHECK ((quiet_from IS NULL) = (quiet_to IS NULL))
);

-- Where a subject's consent to a channel is read: a boolean column of a
-- warehouse relation keyed by the customer key. TRUE is consent; FALSE,
-- NULL or no row is none. A channel without a row here needs no consent.
CREATE TABLE segment.consent (
    subject_id      int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    channel         text NOT NULL REFERENCES segment.channel ON DELETE CASCADE,
    relation        regclass NOT NULL,
    key_column      name NOT NULL,
    opted_in_column name NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    registered_by   name NOT NULL DEFAULT current_user,
    CONSTRAINT consent_pkey PRIMARY KEY (subject_id, channel)
);

-- A journey: who enters (entry audience), when its steps are due (anchor
-- column, or the entry time), who leaves (exit, goal), the holdout share,
-- and when a customer may enter again. Versioned like opportunity rules.
CREATE TABLE segment.journey (
    journey_id    serial PRIMARY KEY,
    subject_id    int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    name          name NOT NULL UNIQUE,
    entry         text NOT NULL,
    anchor_column name,
    exit          text,
    goal          text,
    holdout_pct   numeric NOT NULL DEFAULT 0 CHECK (holdout_pct >= 0 AND holdout_pct <= 50),
    reentry_days  int CHECK (reentry_days >= 0),
    priority      numeric NOT NULL DEFAULT 0 CHECK (priority NOT IN ('NaN', 'Infinity', '-Infinity')),
    active        boolean NOT NULL DEFAULT true,
    version       int NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    name NOT NULL DEFAULT current_user,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    name NOT NULL DEFAULT current_user,
    owner         regrole NOT NULL DEFAULT quote_ident(current_user)::regrole
);

CREATE TABLE segment.journey_history (
    history_id     bigserial PRIMARY KEY,
    journey_id     int NOT NULL,
    name           name NOT NULL,
    version        int NOT NULL,
    action         text NOT NULL CHECK (action IN ('create', 'alter', 'add_step', 'drop_step', 'drop')),
    changed_at     timestamptz NOT NULL DEFAULT now(),
    changed_by     name NOT NULL DEFAULT current_user,
    old_definition jsonb,
    new_definition jsonb
);
CREATE INDEX ON segment.journey_history (journey_id);

-- A step: at `at` from the anchor (negative: before it) or from entry, a
-- touch on `channel` with a message, if the condition audience holds.
CREATE TABLE segment.journey_step (
    journey_id       int NOT NULL REFERENCES segment.journey ON DELETE CASCADE,
    step             int NOT NULL CHECK (step >= 1),
    at               interval NOT NULL,
    channel          text NOT NULL REFERENCES segment.channel,
    template         text,
    template_sql     text,
    template_columns name[] NOT NULL DEFAULT '{}',
    condition        text,
    PRIMARY KEY (journey_id, step)
);

-- Per journey: up to which time its advance has decided every due step.
CREATE TABLE segment.journey_state (
    journey_id     int PRIMARY KEY REFERENCES segment.journey ON DELETE CASCADE,
    advanced_until timestamptz NOT NULL,
    advanced_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One customer's pass through a journey, from entry to its end: exit,
-- goal, completed (every step decided). An escalated one waits for the
-- opportunity it was referred to (no steps, no re-entry) until it returns. anchor_at is the time steps are
-- counted from: the anchor date's midnight, or the entry time.
CREATE TABLE segment.journey_instance (
    instance_id     bigserial PRIMARY KEY,
    journey_id      int NOT NULL,
    journey_version int NOT NULL,
    member_id       int8 NOT NULL,
    key             text NOT NULL,
    entered_at      timestamptz NOT NULL,
    entry_day       date NOT NULL,
    anchor_at       timestamptz NOT NULL,
    is_holdout      boolean NOT NULL,
    source          text NOT NULL DEFAULT 'audience',   -- 'audience' or 'event'
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'escalated', 'exited', 'goal', 'completed')),
    ended_at        timestamptz
);
-- one active pass per customer and journey
CREATE UNIQUE INDEX journey_instance_active ON segment.journey_instance (journey_id, member_id)
    WHERE status = 'active';
CREATE INDEX ON segment.journey_instance (journey_id, member_id);

-- The touches, for the channel systems: pending until ack() says delivered
-- or failed. A step that was decided but sends nothing (its condition is
-- false, no consented channel, capacity, the contact cap) is a 'skipped'
-- row with its reason, so that it is decided once.
CREATE TABLE segment.outbox (
    outbox_id       bigserial PRIMARY KEY,
    journey_id      int NOT NULL,
    journey         name NOT NULL,
    journey_version int NOT NULL,
    instance_id     int8 NOT NULL,
    step            int NOT NULL,            -- 0: a return touch (see journey_escalation)
    member_id       int8 NOT NULL,
    customer        text NOT NULL,
    channel         text,                    -- NULL when skipped without a channel
    planned_channel text NOT NULL,
    due_at          timestamptz NOT NULL,
    message         text,
    idempotency_key text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    reason          text,                    -- why skipped, or why on a fallback channel
    created_at      timestamptz NOT NULL DEFAULT now(),
    status_at       timestamptz,
    response        text,
    responded_at    timestamptz,
    CONSTRAINT outbox_idempotency_key_key UNIQUE (idempotency_key)
);
-- what a channel system polls
CREATE INDEX outbox_pending ON segment.outbox (due_at) WHERE status = 'pending';

SELECT pg_catalog.pg_extension_config_dump('segment.channel', '');
SELECT pg_catalog.pg_extension_config_dump('segment.consent', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey_journey_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey_history', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey_history_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey_step', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey_state', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey_instance', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey_instance_instance_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('segment.outbox_outbox_id_seq', '');

------------------------------------------------------------------------
-- Channels and consent
------------------------------------------------------------------------

CREATE FUNCTION segment.set_channel(channel text, fallback text[] DEFAULT NULL,
                                    quiet_from time DEFAULT NULL, quiet_to time DEFAULT NULL,
                                    daily_capacity int DEFAULT NULL, cost numeric DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    f text;
BEGIN
    IF channel IS NULL OR channel !~ '^[a-z_][a-z0-9_]*$' THEN
        RAISE EXCEPTION 'invalid channel name %', coalesce(quote_literal(channel), 'NULL')
            USING ERRCODE = 'invalid_name',
                  HINT = 'Use lower-case letters, digits and underscores, e.g. ''app'', ''sms'', ''remote_team''.';
    END IF;
    IF (quiet_from IS NULL) <> (quiet_to IS NULL) OR quiet_from = quiet_to THEN
        RAISE EXCEPTION 'quiet hours of channel "%" need both quiet_from and quiet_to, and they must differ', channel
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'E.g. quiet_from => ''21:00'', quiet_to => ''09:00'' (the window may wrap midnight); both NULL: no quiet hours.';
    END IF;
    IF daily_capacity < 0 OR cost < 0 THEN
        RAISE EXCEPTION 'daily_capacity and cost of channel "%" must not be negative', channel
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF array_position(fallback, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'fallback of channel "%" must not contain NULL', channel
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOREACH f IN ARRAY coalesce(fallback, '{}') LOOP
        IF f = channel THEN
            RAISE EXCEPTION 'channel "%" cannot be its own fallback', channel
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM segment.channel c WHERE c.name = f) THEN
            RAISE EXCEPTION 'fallback channel "%" of channel "%" does not exist', f, channel
                USING ERRCODE = 'undefined_object',
                      HINT = 'Define it first with segment.set_channel().';
        END IF;
    END LOOP;
    IF (SELECT count(DISTINCT x) FROM unnest(fallback) x) <> cardinality(fallback) THEN
        RAISE EXCEPTION 'fallback of channel "%" names a channel twice', channel
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO segment.channel AS c (name, fallback, quiet_from, quiet_to, daily_capacity, cost)
    VALUES (set_channel.channel, coalesce(set_channel.fallback, '{}'), set_channel.quiet_from,
            set_channel.quiet_to, set_channel.daily_capacity, set_channel.cost)
    ON CONFLICT ON CONSTRAINT channel_pkey DO UPDATE
       SET fallback = excluded.fallback, quiet_from = excluded.quiet_from, quiet_to = excluded.quiet_to,
           daily_capacity = excluded.daily_capacity, cost = excluded.cost,
           updated_at = now(), updated_by = current_user;
END $$;
COMMENT ON FUNCTION segment.set_channel(text, text[], time, time, int, numeric) IS
    'defines or redefines a contact channel: fallback channels, quiet hours, daily capacity, cost';

CREATE FUNCTION segment.register_consent(subject name, relation regclass, key_column name,
                                         channel text, opted_in_column name)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    col name;
    typ regtype;
BEGIN
    IF relation IS NULL OR key_column IS NULL OR channel IS NULL OR opted_in_column IS NULL THEN
        RAISE EXCEPTION 'relation, key_column, channel and opted_in_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.channel c WHERE c.name = register_consent.channel) THEN
        RAISE EXCEPTION 'channel "%" does not exist', channel
            USING ERRCODE = 'undefined_object', HINT = 'Define it first with segment.set_channel().';
    END IF;
    IF NOT has_table_privilege(relation, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', relation
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'advance_journeys reads the consent relation: it must be readable by you.';
    END IF;
    FOREACH col IN ARRAY ARRAY[key_column, opted_in_column] LOOP
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
         WHERE a.attrelid = relation AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS NULL THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, relation
                USING ERRCODE = 'undefined_column';
        END IF;
        IF col = opted_in_column AND typ <> 'bool'::regtype THEN
            RAISE EXCEPTION 'consent column "%" has type %, not boolean', col, typ
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'The column says whether the customer opted in to the channel (true) or not.';
        END IF;
    END LOOP;
    INSERT INTO segment.consent AS c (subject_id, channel, relation, key_column, opted_in_column)
    VALUES (sid, register_consent.channel, register_consent.relation, register_consent.key_column,
            register_consent.opted_in_column)
    ON CONFLICT ON CONSTRAINT consent_pkey DO UPDATE
       SET relation = excluded.relation, key_column = excluded.key_column,
           opted_in_column = excluded.opted_in_column,
           registered_at = now(), registered_by = current_user;
END $$;
COMMENT ON FUNCTION segment.register_consent(name, regclass, name, text, name) IS
    'names the warehouse column that says whether a customer consents to a channel';

------------------------------------------------------------------------
-- Journeys and steps
------------------------------------------------------------------------

CREATE FUNCTION segment_internal._journey(journey name, for_update boolean DEFAULT false)
RETURNS segment.journey LANGUAGE plpgsql AS $$
DECLARE j segment.journey;
BEGIN
    IF for_update THEN
        SELECT * INTO j FROM segment.journey x WHERE x.name = journey FOR UPDATE;
    ELSE
        SELECT * INTO j FROM segment.journey x WHERE x.name = journey;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'journey "%" does not exist', journey
            USING ERRCODE = 'undefined_object', HINT = 'Journeys are listed in segment.journey.';
    END IF;
    RETURN j;
END $$;

CREATE FUNCTION segment_internal._journey_definition(jid int) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'entry', j.entry, 'anchor_column', j.anchor_column, 'exit', j.exit, 'goal', j.goal,
        'holdout_pct', j.holdout_pct, 'reentry_days', j.reentry_days, 'priority', j.priority, 'active', j.active,
        'steps', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                 'step', s.step, 'at', s.at, 'channel', s.channel,
                                 'template', s.template, 'condition', s.condition) ORDER BY s.step)
                             FROM segment.journey_step s WHERE s.journey_id = j.journey_id), '[]'))
      FROM segment.journey j WHERE j.journey_id = jid
$$;

-- A journey's priority orders journeys under the contact cap: a finite number.
CREATE FUNCTION segment_internal._check_journey_priority(journey name, priority numeric) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF priority IS NULL OR priority IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric) THEN
        RAISE EXCEPTION 'priority of journey "%" must be a finite number, got %', journey, coalesce(priority::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Under a contact cap, journeys of higher priority are advanced first and take the room.';
    END IF;
END $$;

-- Checks an optional audience of a journey ('' or NULL: none).
CREATE FUNCTION segment_internal._journey_audience(subject name, audience text, what text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    audience := nullif(btrim(audience), '');
    IF audience IS NOT NULL THEN
        BEGIN
            PERFORM segment_internal._audience_check(subject, audience);
        EXCEPTION WHEN OTHERS THEN
            DECLARE st text; m text; d text; h text;
            BEGIN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT,
                                        d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
                RAISE EXCEPTION '%: %', what, m USING ERRCODE = st, DETAIL = d, HINT = h;
            END;
        END;
    END IF;
    RETURN audience;
END $$;

CREATE FUNCTION segment.create_journey(subject name, journey name, entry text,
                                       anchor_column name DEFAULT NULL, exit text DEFAULT NULL,
                                       goal text DEFAULT NULL, holdout_pct numeric DEFAULT 0,
                                       reentry_days int DEFAULT NULL, priority numeric DEFAULT 0)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    s segment.subject;
    j segment.journey;
    typ regtype;
    v_entry text;
    v_exit text;
    v_goal text;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
    PERFORM segment_internal._check_name('journey', journey);
    PERFORM segment_internal._lock_definitions();
    IF EXISTS (SELECT 1 FROM segment.journey x WHERE x.name = create_journey.journey) THEN
        RAISE EXCEPTION 'journey "%" already exists', journey
            USING ERRCODE = 'duplicate_object', HINT = 'Drop it first with segment.drop_journey().';
    END IF;
    IF entry IS NULL OR btrim(entry) = '' THEN
        RAISE EXCEPTION 'the entry audience of journey "%" must not be empty', journey
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Customers of the entry audience enter the journey, e.g. ''has_term_deposit''.';
    END IF;
    v_entry := segment_internal._journey_audience(subject, create_journey.entry, format('entry of journey "%s"', journey));
    v_exit := segment_internal._journey_audience(subject, create_journey.exit, format('exit of journey "%s"', journey));
    v_goal := segment_internal._journey_audience(subject, create_journey.goal, format('goal of journey "%s"', journey));
    IF anchor_column IS NOT NULL THEN
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
         WHERE a.attrelid = s.relation AND a.attname = anchor_column AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS NULL THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', anchor_column, s.relation
                USING ERRCODE = 'undefined_column';
        END IF;
        IF typ NOT IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype) THEN
            RAISE EXCEPTION 'anchor column "%" has type %, not a date', anchor_column, typ
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'Steps are timed from the anchor''s day: use a date or timestamp column such as td_maturity_date.';
        END IF;
        IF NOT has_column_privilege(s.relation, anchor_column, 'SELECT') THEN
            RAISE EXCEPTION 'permission denied for column "%" of table %', anchor_column, s.relation
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF holdout_pct IS NULL OR NOT (holdout_pct >= 0 AND holdout_pct <= 50) THEN
        RAISE EXCEPTION 'holdout_pct of journey "%" must be between 0 and 50, got %', journey, holdout_pct
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'holdout_pct is the percentage of entrants kept out of every touch, to measure lift.';
    END IF;
    IF reentry_days < 0 THEN
        RAISE EXCEPTION 'reentry_days of journey "%" must not be negative, got %', journey, reentry_days
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'NULL: a customer goes through the journey once; N: again N days after the previous pass ended.';
    END IF;
    PERFORM segment_internal._check_journey_priority(journey, create_journey.priority);
    INSERT INTO segment.journey (subject_id, name, entry, anchor_column, exit, goal, holdout_pct, reentry_days, priority)
    VALUES (sid, create_journey.journey, v_entry, create_journey.anchor_column, v_exit, v_goal,
            create_journey.holdout_pct, create_journey.reentry_days, create_journey.priority)
    RETURNING * INTO j;
    INSERT INTO segment.journey_history (journey_id, name, version, action, new_definition)
    VALUES (j.journey_id, j.name, j.version, 'create', segment_internal._journey_definition(j.journey_id));
    RETURN j.journey_id;
END $$;
COMMENT ON FUNCTION segment.create_journey(name, name, text, name, text, text, numeric, int, numeric) IS
    'defines a contact journey: entry audience, anchor date column, exit and goal audiences, holdout, re-entry, priority under the contact cap';

CREATE FUNCTION segment.add_journey_step(journey name, step int, at interval, channel text,
                                         template text DEFAULT NULL, condition text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    j segment.journey;
    s segment.subject;
    old jsonb;
    what text;
    tsql text;
    tcols name[] := '{}';
    v_cond text;
    v_template text;
BEGIN
    PERFORM segment_internal._lock_definitions();
    j := segment_internal._journey(journey, true);
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = j.subject_id;
    what := format('step %s of journey "%s"', step, journey);
    IF step IS NULL OR step < 1 THEN
        RAISE EXCEPTION 'step number of journey "%" must be 1 or more, got %', journey, coalesce(step::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM segment.journey_step x WHERE x.journey_id = j.journey_id AND x.step = add_journey_step.step) THEN
        RAISE EXCEPTION '% already exists', what
            USING ERRCODE = 'duplicate_object', HINT = 'Drop it first with segment.drop_journey_step().';
    END IF;
    IF at IS NULL THEN
        RAISE EXCEPTION '"at" of % must not be NULL', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF j.anchor_column IS NULL AND at < interval '0' THEN
        RAISE EXCEPTION '"at" of % is negative, but the journey has no anchor column', what
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Without an anchor column steps are timed from entry: day 0 is ''0 days''; "before" needs an anchor date.';
    END IF;
    IF date_part('month', at) <> 0 OR date_part('year', at) <> 0 THEN
        RAISE EXCEPTION '"at" of % must be in days, hours and minutes, not months', what
            USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. ''-30 days'' or ''1 day''.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.channel c WHERE c.name = add_journey_step.channel) THEN
        RAISE EXCEPTION 'channel "%" of % does not exist', channel, what
            USING ERRCODE = 'undefined_object', HINT = 'Define it with segment.set_channel().';
    END IF;
    v_cond := segment_internal._journey_audience(s.name, add_journey_step.condition, 'condition of ' || what);
    v_template := nullif(add_journey_step.template, '');
    IF v_template IS NOT NULL THEN
        SELECT x.sql, x.columns INTO tsql, tcols FROM segment_internal._compile_template(s.relation, v_template, what) x;
        IF EXISTS (SELECT 1 FROM unnest(tcols) AS c(col)
                    WHERE NOT has_column_privilege(s.relation, c.col, 'SELECT')) THEN
            RAISE EXCEPTION 'permission denied for a column of table % read by the template of %', s.relation, what
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'A template may show only columns its author may read.';
        END IF;
    END IF;
    old := segment_internal._journey_definition(j.journey_id);
    INSERT INTO segment.journey_step (journey_id, step, at, channel, template, template_sql,
                                      template_columns, condition)
    VALUES (j.journey_id, add_journey_step.step, add_journey_step.at, add_journey_step.channel,
            v_template, tsql, tcols, v_cond);
    UPDATE segment.journey x SET version = x.version + 1, updated_at = now(), updated_by = current_user,
           owner = quote_ident(current_user)::regrole
     WHERE x.journey_id = j.journey_id
    RETURNING * INTO j;
    INSERT INTO segment.journey_history (journey_id, name, version, action, old_definition, new_definition)
    VALUES (j.journey_id, j.name, j.version, 'add_step', old, segment_internal._journey_definition(j.journey_id));
END $$;
COMMENT ON FUNCTION segment.add_journey_step(name, int, interval, text, text, text) IS
    'adds a step to a journey: when (from the anchor or entry), on which channel, which message, under which condition';

CREATE FUNCTION segment.drop_journey_step(journey name, step int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    j segment.journey;
    old jsonb;
BEGIN
    PERFORM segment_internal._lock_definitions();
    j := segment_internal._journey(journey, true);
    old := segment_internal._journey_definition(j.journey_id);
    DELETE FROM segment.journey_step x WHERE x.journey_id = j.journey_id AND x.step = drop_journey_step.step;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'step % of journey "%" does not exist', step, journey
            USING ERRCODE = 'undefined_object';
    END IF;
    UPDATE segment.journey x SET version = x.version + 1, updated_at = now(), updated_by = current_user
     WHERE x.journey_id = j.journey_id
    RETURNING * INTO j;
    INSERT INTO segment.journey_history (journey_id, name, version, action, old_definition, new_definition)
    VALUES (j.journey_id, j.name, j.version, 'drop_step', old, segment_internal._journey_definition(j.journey_id));
END $$;
COMMENT ON FUNCTION segment.drop_journey_step(name, int) IS 'removes a step of a journey (a new version)';

-- NULL keeps a value; '' removes an exit or goal.
CREATE FUNCTION segment.alter_journey(journey name, entry text DEFAULT NULL, exit text DEFAULT NULL,
                                      goal text DEFAULT NULL, holdout_pct numeric DEFAULT NULL,
                                      reentry_days int DEFAULT NULL, active boolean DEFAULT NULL,
                                      priority numeric DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    j segment.journey;
    s segment.subject;
    old jsonb;
BEGIN
    PERFORM segment_internal._lock_definitions();
    j := segment_internal._journey(journey, true);
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = j.subject_id;
    IF alter_journey.entry IS NOT NULL THEN
        IF btrim(alter_journey.entry) = '' THEN
            RAISE EXCEPTION 'the entry audience of journey "%" must not be empty', journey
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        j.entry := segment_internal._journey_audience(s.name, alter_journey.entry, format('entry of journey "%s"', journey));
    END IF;
    IF alter_journey.exit IS NOT NULL THEN
        j.exit := segment_internal._journey_audience(s.name, alter_journey.exit, format('exit of journey "%s"', journey));
    END IF;
    IF alter_journey.goal IS NOT NULL THEN
        j.goal := segment_internal._journey_audience(s.name, alter_journey.goal, format('goal of journey "%s"', journey));
    END IF;
    IF alter_journey.holdout_pct IS NOT NULL AND NOT (alter_journey.holdout_pct >= 0 AND alter_journey.holdout_pct <= 50) THEN
        RAISE EXCEPTION 'holdout_pct of journey "%" must be between 0 and 50, got %', journey, alter_journey.holdout_pct
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF alter_journey.reentry_days < 0 THEN
        RAISE EXCEPTION 'reentry_days of journey "%" must not be negative, got %', journey, alter_journey.reentry_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF alter_journey.priority IS NOT NULL THEN
        PERFORM segment_internal._check_journey_priority(journey, alter_journey.priority);
    END IF;
    old := segment_internal._journey_definition(j.journey_id);
    UPDATE segment.journey x
       SET entry = j.entry, exit = j.exit, goal = j.goal,
           priority = coalesce(alter_journey.priority, x.priority),
           holdout_pct = coalesce(alter_journey.holdout_pct, x.holdout_pct),
           reentry_days = coalesce(alter_journey.reentry_days, x.reentry_days),
           active = coalesce(alter_journey.active, x.active),
           version = x.version + 1, updated_at = now(), updated_by = current_user
     WHERE x.journey_id = j.journey_id
    RETURNING * INTO j;
    IF segment_internal._journey_definition(j.journey_id) = old THEN
        RAISE EXCEPTION 'nothing to change for journey "%"', journey
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass at least one parameter with a new value.';
    END IF;
    INSERT INTO segment.journey_history (journey_id, name, version, action, old_definition, new_definition)
    VALUES (j.journey_id, j.name, j.version, 'alter', old, segment_internal._journey_definition(j.journey_id));
END $$;
COMMENT ON FUNCTION segment.alter_journey(name, text, text, text, numeric, int, boolean, numeric) IS
    'changes a journey (a new version); NULL keeps a value, '''' removes an exit or goal';

CREATE FUNCTION segment.drop_journey(journey name, "cascade" boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    j segment.journey;
    n bigint;
    ev record;
BEGIN
    PERFORM segment_internal._lock_definitions();
    j := segment_internal._journey(journey, true);
    SELECT count(*) INTO n FROM segment.journey_instance i WHERE i.journey_id = j.journey_id;
    IF n > 0 AND NOT coalesce("cascade", false) THEN
        RAISE EXCEPTION 'cannot drop journey "%": % customers have entered it', journey, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Deactivate it with segment.alter_journey(journey => ..., active => false) to keep its history, or drop it with "cascade" => true to delete its instances and touches too.';
    END IF;
    INSERT INTO segment.journey_history (journey_id, name, version, action, old_definition)
    VALUES (j.journey_id, j.name, j.version, 'drop', segment_internal._journey_definition(j.journey_id));
    FOR ev IN SELECT * FROM segment.journey_event x WHERE x.journey_id = j.journey_id LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', ev.trigger_name, ev.event_table);
    END LOOP;
    DELETE FROM segment.outbox o WHERE o.journey_id = j.journey_id;
    DELETE FROM segment.journey_instance i WHERE i.journey_id = j.journey_id;
    DELETE FROM segment.journey x WHERE x.journey_id = j.journey_id;
END $$;
COMMENT ON FUNCTION segment.drop_journey(name, boolean) IS
    'drops a journey; with "cascade" also its instances and outbox rows';

------------------------------------------------------------------------
-- Advancing
------------------------------------------------------------------------

-- Holdout membership: a fixed hash of (journey, member), so every pass of a
-- customer through one journey lands on the same side.
CREATE FUNCTION segment_internal._journey_holdout(journey_id int, member_id int8, holdout_pct numeric)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT abs(hashint8extended(member_id, journey_id::int8 * 7919 + 13) % 10000) < holdout_pct * 100
$$;
COMMENT ON FUNCTION segment_internal._journey_holdout(int, int8, numeric) IS
    'whether a customer is in the holdout of a journey (deterministic)';

-- SQL for "the send time `ts` (timestamptz expression) moved out of the
-- quiet hours of the channel named by `ch` (text expression)": a CASE over
-- the channels that have quiet hours, with their times as literals.
CREATE FUNCTION segment_internal._quiet_sql(ch text, ts text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c record;
    arms text := '';
BEGIN
    FOR c IN SELECT x.name, x.quiet_from, x.quiet_to FROM segment.channel x
              WHERE x.quiet_from IS NOT NULL ORDER BY x.name
    LOOP
        IF c.quiet_from < c.quiet_to THEN
            -- same-day window: [from, to) moves to `to` of that day
            arms := arms || format(' WHEN %1$L THEN CASE WHEN (%2$s)::time >= %3$L::time AND (%2$s)::time < %4$L::time'
                                   ' THEN ((%2$s)::date + %4$L::time)::timestamptz ELSE %2$s END',
                                   c.name, ts, c.quiet_from, c.quiet_to);
        ELSE
            -- wraps midnight: after `from` moves to `to` of the next day,
            -- before `to` to `to` of the same day
            arms := arms || format(' WHEN %1$L THEN CASE WHEN (%2$s)::time >= %3$L::time'
                                   ' THEN ((%2$s)::date + 1 + %4$L::time)::timestamptz'
                                   ' WHEN (%2$s)::time < %4$L::time THEN ((%2$s)::date + %4$L::time)::timestamptz'
                                   ' ELSE %2$s END',
                                   c.name, ts, c.quiet_from, c.quiet_to);
        END IF;
    END LOOP;
    IF arms = '' THEN
        RETURN ts;
    END IF;
    RETURN format('CASE %s%s ELSE %s END', ch, arms, ts);
END $$;

-- The channels a step may go out on, in order: its own, then its fallbacks.
CREATE FUNCTION segment_internal._channel_chain(channel text) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY[channel] || coalesce((SELECT c.fallback FROM segment.channel c WHERE c.name = channel), '{}')
$$;

-- Decides and writes the due steps of one journey at time t; returns
-- (touches written, steps skipped). The caller holds the journey's lock.
--   wm: steps due at or before wm were decided by an earlier advance, except
--       for instances that entered at or after wm;
--   only_ids: just these instances (an entry by event), whatever wm says.
-- Step by step of each instance: holdout -> condition -> consent (fallback
-- chain) -> contact cap -> channel capacity (next consented fallback) ->
-- quiet hours. One INSERT ... SELECT ... ON CONFLICT DO NOTHING when no
-- channel has a capacity and the subject has no contact policy; otherwise
-- the candidates go through a work table first.
CREATE FUNCTION segment_internal._journey_touches(j segment.journey, t timestamptz, wm timestamptz,
                                         only_ids int8[] DEFAULT NULL, OUT touches bigint, OUT skipped bigint)
LANGUAGE plpgsql SET jit = off SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s segment.subject;
    cp segment.contact_policy;
    st record;
    ch text;
    conds segment.memberset[] := '{}';
    cond_arms text := '';
    msg_arms text := '';
    chan_arms text := '';
    elig_arms text := '';
    joins text := '';
    consent_alias jsonb := '{}';
    needs_row boolean := false;
    slow boolean := false;
    int_keys boolean;
    cand_sql text;
    k int;
    max_chain int := 0;
    day date := t::date;
    a text;
    c record;
    arm text;
    ins_sql text;
    can_skip boolean;
    guarded boolean;
BEGIN
    touches := 0; skipped := 0;
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = j.subject_id;
    SELECT * INTO cp FROM segment.contact_policy p WHERE p.subject_id = j.subject_id;
    int_keys := s.key_type IN ('int4'::regtype, 'int8'::regtype);
    IF NOT EXISTS (SELECT 1 FROM segment.journey_step x WHERE x.journey_id = j.journey_id) THEN
        RETURN;
    END IF;
    slow := cp.subject_id IS NOT NULL;
    can_skip := false;
    FOR st IN SELECT x.*, segment_internal._channel_chain(x.channel) AS chain
                FROM segment.journey_step x WHERE x.journey_id = j.journey_id ORDER BY x.step
    LOOP
        IF st.condition IS NOT NULL THEN
            can_skip := true;
            conds := conds || segment.audience(s.name, st.condition);
            cond_arms := cond_arms || format(' WHEN %s THEN ($4)[%s] OPERATOR(segment.@>) i.member_id',
                                             st.step, cardinality(conds));
        END IF;
        IF st.template_sql IS NOT NULL THEN
            needs_row := true;
            msg_arms := msg_arms || format(' WHEN %s THEN %s', st.step, st.template_sql);
        END IF;
        max_chain := greatest(max_chain, cardinality(st.chain));
        arm := '';
        FOREACH ch IN ARRAY st.chain LOOP
            IF EXISTS (SELECT 1 FROM segment.channel x WHERE x.name = ch AND x.daily_capacity IS NOT NULL) THEN
                slow := true;
            END IF;
            -- a consent relation joined once per channel, as the set of
            -- consenting keys
            SELECT * INTO c FROM segment.consent x WHERE x.subject_id = j.subject_id AND x.channel = ch;
            IF FOUND AND c.relation = s.relation AND c.key_column = s.key_column THEN
                -- a column of the subject's own row: read it from the row
                needs_row := true;
                guarded := true;
                arm := arm || format(', CASE WHEN t.%I IS TRUE THEN %L END', c.opted_in_column, ch);
            ELSIF FOUND THEN
                IF NOT consent_alias ? ch THEN
                    a := 'c' || (SELECT count(*) FROM jsonb_object_keys(consent_alias));
                    consent_alias := consent_alias || jsonb_build_object(ch, a);
                    joins := joins || format(
                        ' LEFT JOIN (SELECT DISTINCT x.%1$I%2$s AS k FROM %3$s x WHERE x.%4$I IS TRUE) %5$s ON %5$s.k = %6$s',
                        c.key_column, CASE WHEN int_keys THEN '::int8' ELSE '::text' END, c.relation,
                        c.opted_in_column, a, CASE WHEN int_keys THEN 'i.member_id' ELSE 'i.key' END);
                END IF;
                guarded := true;
                arm := arm || format(', CASE WHEN %s.k IS NOT NULL THEN %L END', consent_alias ->> ch, ch);
            ELSE
                guarded := false;
                arm := arm || format(', %L', ch);
            END IF;
        END LOOP;
        -- the chain's last channel needs consent: the step can find none
        can_skip := can_skip OR guarded;
        -- eligible channels in order (consented ones), as an array
        elig_arms := elig_arms || format(' WHEN %s THEN array_remove(ARRAY[%s]::text[], NULL)', st.step, substr(arm, 3));
        chan_arms := chan_arms || format(' WHEN %s THEN coalesce(%s)', st.step, substr(arm, 3));
    END LOOP;

    -- the candidates: (instance, step) due in (wm, t], or due by t for an
    -- instance that entered at or after wm; never a step due before the
    -- day the customer entered; holdouts get nothing
    cand_sql := format(
        $q$SELECT i.instance_id, i.member_id, i.key, st.step, st.channel AS planned,
                  i.anchor_at + st.at AS due, i.journey_version,
                  %1$s AS cond_ok, %2$s AS message, %3$s AS eligible
             FROM segment.journey_instance i
             JOIN segment.journey_step st ON st.journey_id = i.journey_id
             %4$s %5$s
            WHERE i.journey_id = %6$s AND i.status = 'active' AND NOT i.is_holdout
              AND i.anchor_at + st.at <= $1
              AND (i.anchor_at + st.at)::date >= i.entry_day
              AND %7$s$q$,
        CASE WHEN cond_arms = '' THEN 'true' ELSE format('CASE st.step%s ELSE true END', cond_arms) END,
        CASE WHEN msg_arms = '' THEN 'NULL::text' ELSE format('CASE st.step%s END', msg_arms) END,
        '@@ELIGIBLE@@',
        CASE WHEN needs_row THEN
            CASE WHEN int_keys THEN format('JOIN %s t ON t.%I = i.member_id', s.relation, s.key_column)
                 ELSE format('JOIN %s t ON t.%I::text = i.key', s.relation, s.key_column) END
             ELSE '' END,
        joins, j.journey_id,
        CASE WHEN only_ids IS NOT NULL THEN 'i.instance_id = ANY ($3)'
             ELSE '(i.anchor_at + st.at > $2 OR i.entered_at >= $2)' END);

    IF NOT slow THEN
        ins_sql := format(
            $q$INSERT INTO segment.outbox AS o
                   (journey_id, journey, journey_version, instance_id, step, member_id, customer,
                    channel, planned_channel, due_at, message, idempotency_key, status, reason)
               SELECT %1$s, %2$L, d.journey_version, d.instance_id, d.step, d.member_id, d.key,
                      CASE WHEN d.cond_ok THEN d.ch END, d.planned,
                      %3$s, d.message,
                      %1$s || ':' || d.journey_version || ':' || d.instance_id || ':' || d.step,
                      CASE WHEN d.cond_ok AND d.ch IS NOT NULL THEN 'pending' ELSE 'skipped' END,
                      CASE WHEN NOT d.cond_ok THEN 'condition false'
                           WHEN d.ch IS NULL THEN 'no consented channel'
                           WHEN d.ch <> d.planned THEN 'fallback: no consent to ' || d.planned END
                 FROM (%4$s) d
               ON CONFLICT ON CONSTRAINT outbox_idempotency_key_key DO NOTHING$q$,
            j.journey_id, j.name,
            segment_internal._quiet_sql('d.ch', 'greatest(d.due, $1)'),
            replace(cand_sql, '@@ELIGIBLE@@', format('CASE st.step%s END AS ch, NULL::text[]', chan_arms)));
        IF can_skip THEN
            EXECUTE format('WITH ins AS (%s RETURNING o.status)
                            SELECT count(*) FILTER (WHERE ins.status = ''pending''),
                                   count(*) FILTER (WHERE ins.status = ''skipped'') FROM ins', ins_sql)
              INTO touches, skipped USING t, wm, only_ids, conds;
        ELSE
            -- no condition, and every chain ends on a channel that needs no
            -- consent: nothing can be skipped, the row count is the touches
            EXECUTE ins_sql USING t, wm, only_ids, conds;
            GET DIAGNOSTICS touches = ROW_COUNT;
        END IF;
        RETURN;
    END IF;

    -- the work table: candidates not decided yet, with their consented
    -- channels in order
    IF to_regclass('pg_temp._seg_jt') IS NULL THEN
        CREATE TEMP TABLE _seg_jt (instance_id int8, member_id int8, key text, step int, planned text,
                                   due timestamptz, journey_version int, cond_ok boolean, message text,
                                   eligible text[], channel text, reason text) ON COMMIT DELETE ROWS;
    ELSE
        TRUNCATE pg_temp._seg_jt;
    END IF;
    EXECUTE format(
        $q$INSERT INTO pg_temp._seg_jt (instance_id, member_id, key, step, planned, due, journey_version,
                                        cond_ok, message, eligible)
           SELECT d.instance_id, d.member_id, d.key, d.step, d.planned, d.due, d.journey_version,
                  d.cond_ok, d.message, d.eligible
             FROM (%s) d
            WHERE NOT EXISTS (SELECT 1 FROM segment.outbox o
                               WHERE o.idempotency_key = %s || ':' || d.journey_version || ':' || d.instance_id || ':' || d.step)$q$,
        replace(cand_sql, '@@ELIGIBLE@@', format('CASE st.step%s END', elig_arms)), j.journey_id)
      USING t, wm, only_ids, conds;
    UPDATE pg_temp._seg_jt x SET reason = 'condition false' WHERE NOT x.cond_ok;
    UPDATE pg_temp._seg_jt x SET reason = 'no consented channel'
     WHERE x.reason IS NULL AND cardinality(x.eligible) = 0;
    -- the contact cap: touches (any journey) and opportunities (not
    -- control) of the customer in the window, then these in due order
    IF cp.subject_id IS NOT NULL THEN
        WITH used AS (
                SELECT u.member_id, count(*) AS n FROM (
                    SELECT o.member_id FROM segment.outbox o
                     WHERE o.status <> 'skipped' AND o.due_at >= (day - cp.period_days + 1)::timestamptz
                       AND o.due_at < (day + 1)::timestamptz
                       AND o.member_id IN (SELECT y.member_id FROM pg_temp._seg_jt y)
                       AND o.journey_id IN (SELECT x.journey_id FROM segment.journey x WHERE x.subject_id = j.subject_id)
                    UNION ALL
                    SELECT p.member_id FROM segment.opportunity p
                     WHERE p.subject_id = j.subject_id AND NOT p.is_control
                       AND p.period > day - cp.period_days AND p.period <= day
                       AND p.member_id IN (SELECT y.member_id FROM pg_temp._seg_jt y)) u
                 GROUP BY u.member_id),
             ranked AS (
                SELECT x.ctid AS tid, coalesce(used.n, 0)
                         + row_number() OVER (PARTITION BY x.member_id ORDER BY x.due, x.step) AS nth
                  FROM pg_temp._seg_jt x LEFT JOIN used ON used.member_id = x.member_id
                 WHERE x.reason IS NULL)
        UPDATE pg_temp._seg_jt x SET reason = 'contact cap'
          FROM ranked WHERE x.ctid = ranked.tid AND ranked.nth > cp.max_contacts;
    END IF;
    -- channel capacity for the day: each level of the fallback chains in
    -- turn takes what its channel has room for (earliest due first)
    FOR k IN 1 .. max_chain LOOP
        WITH room AS (
                SELECT cc.name, cc.daily_capacity - (SELECT count(*) FROM segment.outbox o
                                                      WHERE o.channel = cc.name AND o.status <> 'skipped'
                                                        AND o.due_at >= day::timestamptz
                                                        AND o.due_at < (day + 1)::timestamptz)
                                                  - (SELECT count(*) FROM pg_temp._seg_jt y
                                                      WHERE y.channel = cc.name) AS n
                  FROM segment.channel cc),
             ranked AS (
                SELECT x.ctid AS tid, x.eligible[k] AS ch,
                       row_number() OVER (PARTITION BY x.eligible[k] ORDER BY x.due, x.member_id, x.step) AS nth
                  FROM pg_temp._seg_jt x
                 WHERE x.reason IS NULL AND x.channel IS NULL AND x.eligible[k] IS NOT NULL)
        UPDATE pg_temp._seg_jt x SET channel = ranked.ch
          FROM ranked JOIN room ON room.name = ranked.ch
         WHERE x.ctid = ranked.tid AND (room.n IS NULL OR ranked.nth <= room.n);
    END LOOP;
    UPDATE pg_temp._seg_jt x SET reason = 'over capacity' WHERE x.reason IS NULL AND x.channel IS NULL;
    EXECUTE format(
        $q$WITH ins AS (
             INSERT INTO segment.outbox AS o
                 (journey_id, journey, journey_version, instance_id, step, member_id, customer,
                  channel, planned_channel, due_at, message, idempotency_key, status, reason)
             SELECT %1$s, %2$L, d.journey_version, d.instance_id, d.step, d.member_id, d.key,
                    d.channel, d.planned, %3$s, d.message,
                    %1$s || ':' || d.journey_version || ':' || d.instance_id || ':' || d.step,
                    CASE WHEN d.reason IS NULL THEN 'pending' ELSE 'skipped' END,
                    coalesce(d.reason, CASE WHEN d.channel <> d.planned THEN
                                 CASE WHEN d.planned = ANY (d.eligible) THEN 'fallback: ' || d.planned || ' over capacity'
                                      ELSE 'fallback: no consent to ' || d.planned END END)
               FROM pg_temp._seg_jt d
             ON CONFLICT ON CONSTRAINT outbox_idempotency_key_key DO NOTHING
             RETURNING o.status)
           SELECT count(*) FILTER (WHERE ins.status = 'pending'), count(*) FILTER (WHERE ins.status = 'skipped')
             FROM ins$q$,
        j.journey_id, j.name, segment_internal._quiet_sql('d.channel', 'greatest(d.due, $1)'))
      INTO touches, skipped USING t;
END $$;

-- Enters the given members (a member set) into a journey at time t;
-- returns the new instances' ids. Members already in it, or not allowed
-- back yet (reentry_days), or without an anchor date, do not enter.
CREATE FUNCTION segment_internal._journey_enter(j segment.journey, t timestamptz, members segment.memberset,
                                       source text)
RETURNS int8[] LANGUAGE plpgsql AS $$
DECLARE
    s segment.subject;
    blocked segment.memberset;
    ids int8[];
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = j.subject_id;
    SELECT segment.memberset_agg(i.member_id) INTO blocked FROM segment.journey_instance i
     WHERE i.journey_id = j.journey_id
       AND (i.status IN ('active', 'escalated') OR j.reentry_days IS NULL
            OR i.ended_at > t - make_interval(days => j.reentry_days));
    IF blocked IS NOT NULL THEN
        members := members OPERATOR(segment.-) blocked;
    END IF;
    IF segment.is_empty(members) THEN
        RETURN '{}';
    END IF;
    EXECUTE format(
        $q$WITH ins AS (
             INSERT INTO segment.journey_instance (journey_id, journey_version, member_id, key, entered_at,
                                                   entry_day, anchor_at, is_holdout, source)
             SELECT %1$s, %2$s, m.id, t.%3$I::text, $2, $2::date, %4$s,
                    segment_internal._journey_holdout(%1$s, m.id, %5$s), $3
               FROM segment.member_ids($1) m(id) %6$s
              WHERE %4$s IS NOT NULL
             RETURNING instance_id)
           SELECT array_agg(ins.instance_id) FROM ins$q$,
        j.journey_id, j.version, s.key_column,
        CASE WHEN j.anchor_column IS NULL THEN '$2' ELSE format('(t.%I)::date::timestamptz', j.anchor_column) END,
        j.holdout_pct,
        CASE WHEN s.key_type IN ('int4'::regtype, 'int8'::regtype)
             THEN format('JOIN %s t ON t.%I = m.id', s.relation, s.key_column)
             ELSE format('JOIN segment.keymap k ON k.subject_id = %s AND k.member_id = m.id JOIN %s t ON t.%I = k.key',
                         s.subject_id, s.relation, s.key_column) END)
      INTO ids USING members, t, source;
    RETURN coalesce(ids, '{}');
END $$;

-- Advances one journey to time t (the caller checked it is active):
-- goal and exit end instances, the entry audience enters new ones, the due
-- steps are decided, finished instances complete. Returns touches written.
CREATE FUNCTION segment_internal._advance_journey(jid int, t timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    j segment.journey;
    s segment.subject;
    wm timestamptz;
    aud segment.memberset;
    out_set segment.memberset;
    n_touch bigint := 0;
    n_skip bigint := 0;
    n_enter int := 0;
    last_at interval;
    msgs text;
BEGIN
    -- one advance of a journey at a time; a second one waits, then finds
    -- the steps decided (watermark) and the touches written (unique key)
    PERFORM pg_advisory_xact_lock(24178, jid);
    SELECT * INTO j FROM segment.journey x WHERE x.journey_id = jid;
    IF NOT FOUND OR NOT j.active THEN
        RETURN 0;
    END IF;
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = j.subject_id;
    SELECT x.advanced_until INTO wm FROM segment.journey_state x WHERE x.journey_id = jid;
    wm := coalesce(wm, '-infinity');

    -- goal first (it is what the journey is for), then exit
    IF j.goal IS NOT NULL THEN
        out_set := segment.audience(s.name, j.goal);
        UPDATE segment.journey_instance i SET status = 'goal', ended_at = t
         WHERE i.journey_id = jid AND i.status IN ('active', 'escalated')
           AND out_set OPERATOR(segment.@>) i.member_id;
    END IF;
    IF j.exit IS NOT NULL THEN
        aud := segment.audience(s.name, j.exit);
        UPDATE segment.journey_instance i SET status = 'exited', ended_at = t
         WHERE i.journey_id = jid AND i.status IN ('active', 'escalated')
           AND aud OPERATOR(segment.@>) i.member_id;
        out_set := CASE WHEN out_set IS NULL THEN aud ELSE out_set OPERATOR(segment.|) aud END;
    END IF;

    -- entry: the entry audience minus exit and goal
    IF t >= wm THEN
        aud := segment.audience(s.name, j.entry);
        IF out_set IS NOT NULL THEN
            aud := aud OPERATOR(segment.-) out_set;
        END IF;
        n_enter := cardinality(segment_internal._journey_enter(j, t, aud, 'audience'));
        -- many new instances (a first advance): plan the touches with
        -- statistics that know them (a non-owner's ANALYZE only warns)
        IF n_enter > 10000 THEN
            msgs := current_setting('client_min_messages');
            PERFORM set_config('client_min_messages', 'error', true);
            ANALYZE segment.journey_instance;
            PERFORM set_config('client_min_messages', msgs, true);
        END IF;
    END IF;

    -- referred customers whose opportunity was not worked come back
    n_touch := segment_internal._journey_returns(j, t);

    SELECT n_touch + x.touches, x.skipped INTO n_touch, n_skip FROM segment_internal._journey_touches(j, t, wm) x;

    -- instances whose last step is due are complete
    SELECT max(x.at) INTO last_at FROM segment.journey_step x WHERE x.journey_id = jid;
    IF last_at IS NOT NULL THEN
        UPDATE segment.journey_instance i SET status = 'completed', ended_at = t
         WHERE i.journey_id = jid AND i.status = 'active' AND i.anchor_at + last_at <= t;
    END IF;

    INSERT INTO segment.journey_state AS x (journey_id, advanced_until)
    VALUES (jid, t)
    ON CONFLICT ON CONSTRAINT journey_state_pkey DO UPDATE
       SET advanced_until = greatest(x.advanced_until, excluded.advanced_until),
           advanced_at = clock_timestamp();
    IF n_touch > 0 THEN
        PERFORM pg_notify('segment_outbox', json_build_object(
            'journey', j.name, 'touches', n_touch, 'advanced_to', t)::text);
    END IF;
    RETURN n_touch;
END $$;

CREATE FUNCTION segment.advance_journeys(at timestamptz DEFAULT now())
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    jid int;
    n bigint := 0;
    err text;
    state text;
BEGIN
    IF at IS NULL OR NOT isfinite(at) THEN
        RAISE EXCEPTION 'at must be a finite timestamp' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- higher priority first: under a contact cap it takes the room
    FOR jid IN SELECT x.journey_id FROM segment.journey x WHERE x.active
                ORDER BY x.priority DESC, x.journey_id LOOP
        -- a journey that fails as a whole (an audience not refreshed yet)
        -- advances nothing and says why; the others go on
        BEGIN
            n := n + segment_internal._advance_journey(jid, at);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
            RAISE WARNING 'journey "%" did not advance: % (SQLSTATE %)',
                          (SELECT x.name FROM segment.journey x WHERE x.journey_id = jid), err, state
                USING HINT = 'Nothing of it was written; the next advance retries it.';
        END;
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION segment.advance_journeys(timestamptz) IS
    'moves every active journey instance to time at: exits, goals, entries, due touches into segment.outbox; idempotent';

-- Entry by event: the customers enter now (if allowed) and their due steps
-- (day 0) are written at once. Returns the touches written.
CREATE FUNCTION segment.enter_journey(journey name, keys text[], at timestamptz DEFAULT now())
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    j segment.journey := segment_internal._journey(journey);
    s segment.subject;
    wm timestamptz;
    ids int8[];
    members segment.memberset;
    out_set segment.memberset;
    r record;
BEGIN
    IF at IS NULL OR NOT isfinite(at) THEN
        RAISE EXCEPTION 'at must be a finite timestamp' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT j.active THEN
        RAISE EXCEPTION 'journey "%" is not active', journey
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = j.subject_id;
    PERFORM pg_advisory_xact_lock(24178, j.journey_id);
    SELECT x.advanced_until INTO wm FROM segment.journey_state x WHERE x.journey_id = j.journey_id;
    -- not before what an advance has decided already, so no step falls
    -- between the two
    at := greatest(at, wm);
    IF s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN
        BEGIN
            members := segment.memberset(keys::int8[]);
        EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            RAISE EXCEPTION 'keys of subject "%" must be integers', s.name
                USING ERRCODE = 'invalid_text_representation';
        END;
    ELSE
        SELECT segment.memberset(coalesce(array_agg(k.member_id), '{}')) INTO members
          FROM segment.keymap k WHERE k.subject_id = s.subject_id AND k.key = ANY (keys);
    END IF;
    IF j.goal IS NOT NULL THEN
        members := members OPERATOR(segment.-) segment.audience(s.name, j.goal);
    END IF;
    IF j.exit IS NOT NULL THEN
        members := members OPERATOR(segment.-) segment.audience(s.name, j.exit);
    END IF;
    ids := segment_internal._journey_enter(j, at, members, 'event');
    IF cardinality(ids) = 0 THEN
        RETURN 0;
    END IF;
    SELECT * INTO r FROM segment_internal._journey_touches(j, at, '-infinity', ids);
    IF r.touches > 0 THEN
        PERFORM pg_notify('segment_outbox', json_build_object(
            'journey', j.name, 'touches', r.touches, 'entered', cardinality(ids))::text);
    END IF;
    RETURN r.touches;
END $$;
COMMENT ON FUNCTION segment.enter_journey(name, text[], timestamptz) IS
    'enters customers into a journey now (entry by event) and writes their due touches at once';

------------------------------------------------------------------------
-- Delivery
------------------------------------------------------------------------

CREATE FUNCTION segment.outbox_ack(outbox_id bigint, status text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o segment.outbox;
BEGIN
    IF status IS NULL OR status NOT IN ('delivered', 'failed') THEN
        RAISE EXCEPTION 'status must be ''delivered'' or ''failed'', got %', coalesce(quote_literal(status), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO o FROM segment.outbox x WHERE x.outbox_id = outbox_ack.outbox_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox row % does not exist', outbox_id USING ERRCODE = 'no_data_found';
    END IF;
    IF o.status NOT IN ('pending', 'failed') THEN
        RAISE EXCEPTION 'outbox row % is %, not pending', outbox_id, o.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a pending touch (or a failed one, retried) can be acknowledged.';
    END IF;
    UPDATE segment.outbox x SET status = outbox_ack.status, status_at = now() WHERE x.outbox_id = outbox_ack.outbox_id;
END $$;
COMMENT ON FUNCTION segment.outbox_ack(bigint, text) IS
    'a channel system records that a touch was delivered or failed';

------------------------------------------------------------------------
-- Responses, referral (escalation to a person) and return
------------------------------------------------------------------------

-- A journey's referral: a response in on_responses (and, with a scorecard,
-- a score of at least min_score: the hot score) escalates the customer to
-- a person as an opportunity of `rule` (its channel, assignment, capacity,
-- cool-down and contact cap apply). An opportunity not worked (still
-- generated or dispatched, or expired) return_after_days days after it was
-- made is cancelled and the customer returns to the journey with a touch
-- on return_channel, the cheaper one.
CREATE TABLE segment.journey_escalation (
    journey_id        int PRIMARY KEY REFERENCES segment.journey ON DELETE CASCADE,
    rule_id           int NOT NULL REFERENCES segment.opportunity_rule,
    on_responses      text[] NOT NULL,
    scorecard_id      int REFERENCES segment.scorecard,
    min_score         numeric,
    return_after_days int CHECK (return_after_days >= 1),
    return_channel    text REFERENCES segment.channel,
    return_template   text,
    return_template_sql text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        name NOT NULL DEFAULT current_user,
    CHECK ((return_after_days IS NULL) = (return_channel IS NULL))
);

-- The moves that are neither an entry, a touch nor an end (those are
-- segment.journey_instance and segment.outbox rows): responses, referrals
-- to a person, returns. segment.journey_lifecycle shows all of them.
CREATE TABLE segment.journey_log (
    log_id         bigserial PRIMARY KEY,
    instance_id    int8 NOT NULL,
    journey_id     int NOT NULL,
    event          text NOT NULL CHECK (event IN ('response', 'escalate', 'escalation_skipped', 'return')),
    at             timestamptz NOT NULL DEFAULT now(),
    outbox_id      int8,
    opportunity_id int8,
    detail         text,
    by_user        name NOT NULL DEFAULT current_user
);
CREATE INDEX ON segment.journey_log (instance_id);
CREATE INDEX ON segment.journey_log (opportunity_id) WHERE opportunity_id IS NOT NULL;

SELECT pg_catalog.pg_extension_config_dump('segment.journey_escalation', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey_log', '');
SELECT pg_catalog.pg_extension_config_dump('segment.journey_log_log_id_seq', '');

CREATE FUNCTION segment.set_journey_escalation(journey name, rule name,
                                               on_responses text[] DEFAULT '{clicked,replied}',
                                               scorecard name DEFAULT NULL, min_score numeric DEFAULT NULL,
                                               return_after_days int DEFAULT NULL,
                                               return_channel text DEFAULT NULL,
                                               return_template text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    j segment.journey;
    r segment.opportunity_rule;
    s segment.subject;
    card int;
    tsql text;
    tcols name[];
BEGIN
    PERFORM segment_internal._lock_definitions();
    j := segment_internal._journey(journey, true);
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = j.subject_id;
    IF rule IS NULL THEN
        DELETE FROM segment.journey_escalation e WHERE e.journey_id = j.journey_id;
        RETURN;
    END IF;
    r := segment_internal._opportunity_rule(rule);
    IF r.subject_id <> j.subject_id THEN
        RAISE EXCEPTION 'opportunity rule "%" is not of the subject of journey "%"', rule, journey
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF on_responses IS NULL OR cardinality(on_responses) = 0 OR array_position(on_responses, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'on_responses of journey "%" must name at least one response', journey
            USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. ARRAY[''clicked'', ''replied''].';
    END IF;
    IF (scorecard IS NULL) <> (min_score IS NULL) THEN
        RAISE EXCEPTION 'a hot score needs both scorecard and min_score' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF scorecard IS NOT NULL THEN
        SELECT c.scorecard_id INTO card FROM segment.scorecard c
         WHERE c.name = set_journey_escalation.scorecard AND c.subject_id = j.subject_id;
        IF card IS NULL THEN
            RAISE EXCEPTION 'scorecard "%" of subject "%" does not exist', scorecard, s.name
                USING ERRCODE = 'undefined_object';
        END IF;
    END IF;
    IF (return_after_days IS NULL) <> (return_channel IS NULL) THEN
        RAISE EXCEPTION 'a return needs both return_after_days and return_channel'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'return_after_days: how long the person has; return_channel: where the customer goes back to.';
    END IF;
    IF return_after_days < 1 THEN
        RAISE EXCEPTION 'return_after_days must be 1 or more, got %', return_after_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF return_channel IS NOT NULL AND NOT EXISTS (SELECT 1 FROM segment.channel c WHERE c.name = return_channel) THEN
        RAISE EXCEPTION 'channel "%" does not exist', return_channel
            USING ERRCODE = 'undefined_object', HINT = 'Define it with segment.set_channel().';
    END IF;
    IF nullif(return_template, '') IS NOT NULL THEN
        SELECT x.sql, x.columns INTO tsql, tcols
          FROM segment_internal._compile_template(s.relation, return_template, format('return template of journey "%s"', journey)) x;
        IF EXISTS (SELECT 1 FROM unnest(tcols) AS c(col) WHERE NOT has_column_privilege(s.relation, c.col, 'SELECT')) THEN
            RAISE EXCEPTION 'permission denied for a column of table % read by the return template', s.relation
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    INSERT INTO segment.journey_escalation AS e (journey_id, rule_id, on_responses, scorecard_id, min_score,
                                                 return_after_days, return_channel, return_template, return_template_sql)
    VALUES (j.journey_id, r.rule_id, on_responses, card, min_score, return_after_days, return_channel,
            nullif(return_template, ''), tsql)
    ON CONFLICT ON CONSTRAINT journey_escalation_pkey DO UPDATE
       SET rule_id = excluded.rule_id, on_responses = excluded.on_responses,
           scorecard_id = excluded.scorecard_id, min_score = excluded.min_score,
           return_after_days = excluded.return_after_days, return_channel = excluded.return_channel,
           return_template = excluded.return_template, return_template_sql = excluded.return_template_sql,
           updated_at = now(), updated_by = current_user;
END $$;
COMMENT ON FUNCTION segment.set_journey_escalation(name, name, text[], name, numeric, int, text, text) IS
    'escalates responding (hot) customers of a journey to a person as an opportunity, and returns unworked ones to a cheaper channel; rule NULL removes it';

-- A customer's response to a touch (clicked, replied, declined, ...). A
-- response the journey escalates on, from a customer hot enough, makes an
-- opportunity for a person at once; the instance then waits for it.
-- Returns the opportunity made, or NULL. `at`: when the customer responded
-- (the opportunity's period is its day).
CREATE FUNCTION segment.outbox_record_response(outbox_id bigint, response text, at timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    o segment.outbox;
    i segment.journey_instance;
    j segment.journey;
    e segment.journey_escalation;
    s segment.subject;
    score numeric;
    opp bigint;
    why text;
    g record;
BEGIN
    IF at IS NULL OR NOT isfinite(at) THEN
        RAISE EXCEPTION 'at must be a finite timestamp' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF response IS NULL OR response !~ '^[a-z_]+$' THEN
        RAISE EXCEPTION 'invalid response %', coalesce(quote_literal(response), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A response is a lower-case word: clicked, replied, declined, opened, ...';
    END IF;
    SELECT * INTO o FROM segment.outbox x WHERE x.outbox_id = outbox_record_response.outbox_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox row % does not exist', outbox_id USING ERRCODE = 'no_data_found';
    END IF;
    IF o.status = 'skipped' THEN
        RAISE EXCEPTION 'outbox row % was skipped (%): nobody could respond to it', outbox_id, o.reason
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO i FROM segment.journey_instance x WHERE x.instance_id = o.instance_id FOR UPDATE;
    SELECT * INTO j FROM segment.journey x WHERE x.journey_id = o.journey_id;
    UPDATE segment.outbox x SET response = outbox_record_response.response, responded_at = at
     WHERE x.outbox_id = o.outbox_id;
    INSERT INTO segment.journey_log (instance_id, journey_id, event, at, outbox_id, detail)
    VALUES (o.instance_id, o.journey_id, 'response', at, o.outbox_id, response);

    SELECT * INTO e FROM segment.journey_escalation x WHERE x.journey_id = o.journey_id;
    IF e.journey_id IS NULL OR NOT response = ANY (e.on_responses) OR i.status <> 'active' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = j.subject_id;
    IF e.scorecard_id IS NOT NULL THEN
        score := segment.score(s.name, o.customer, (SELECT c.name FROM segment.scorecard c WHERE c.scorecard_id = e.scorecard_id));
        IF score IS NULL OR score < e.min_score THEN
            INSERT INTO segment.journey_log (instance_id, journey_id, event, at, outbox_id, detail)
            VALUES (o.instance_id, o.journey_id, 'escalation_skipped', at, o.outbox_id,
                    format('score %s below %s', coalesce(score::text, 'NULL'), e.min_score));
            RETURN NULL;
        END IF;
    END IF;
    -- the opportunity rule's own generation, for this one customer: its
    -- cool-down, contact cap, control group and assignment apply
    PERFORM segment_internal._lock_members(s.subject_id, segment.memberset(ARRAY[o.member_id]));
    SELECT * INTO g FROM segment_internal._generate(s.subject_id, ARRAY[e.rule_id], at::date,
                                           segment.memberset(ARRAY[o.member_id]),
                                           'journey:' || j.name) x;
    SELECT x.opportunity_id INTO opp FROM segment.opportunity x
     WHERE x.rule_id = e.rule_id AND x.member_id = o.member_id AND x.period = at::date
       AND x.source = 'journey:' || j.name AND NOT x.is_control;
    IF opp IS NULL THEN
        why := CASE WHEN g.control > 0 THEN 'control group of the opportunity rule'
                    WHEN g.skipped_cooldown > 0 THEN 'cool-down of the opportunity rule'
                    WHEN g.skipped_cap > 0 THEN 'contact cap'
                    WHEN g.failed > 0 THEN 'the message did not render'
                    ELSE 'not in the audience of the opportunity rule' END;
        INSERT INTO segment.journey_log (instance_id, journey_id, event, at, outbox_id, detail)
        VALUES (o.instance_id, o.journey_id, 'escalation_skipped', at, o.outbox_id, why);
        RETURN NULL;
    END IF;
    UPDATE segment.journey_instance x SET status = 'escalated' WHERE x.instance_id = i.instance_id;
    INSERT INTO segment.journey_log (instance_id, journey_id, event, at, outbox_id, opportunity_id, detail)
    SELECT o.instance_id, o.journey_id, 'escalate', at, o.outbox_id, opp,
           format('to %s (%s)', coalesce(p.manager, 'the pool'), p.assignment)
      FROM segment.opportunity p WHERE p.opportunity_id = opp;
    RETURN opp;
END $$;
COMMENT ON FUNCTION segment.outbox_record_response(bigint, text, timestamptz) IS
    'records a customer''s response to a touch; may escalate the customer to a person (returns the opportunity)';

-- Returns, at time t, the escalated customers of a journey whose
-- opportunity was not worked in time: the opportunity is cancelled, the
-- instance is active again and gets a touch on the return channel (step 0;
-- idempotency key journey:version:instance:return:opportunity).
CREATE FUNCTION segment_internal._journey_returns(j segment.journey, t timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    e segment.journey_escalation;
    s segment.subject;
    x record;
    chain text[];
    ch text;
    c segment.consent;
    ok boolean;
    msg text;
    n bigint := 0;
    int_keys boolean;
BEGIN
    SELECT * INTO e FROM segment.journey_escalation y WHERE y.journey_id = j.journey_id;
    IF e.journey_id IS NULL OR e.return_after_days IS NULL THEN
        RETURN 0;
    END IF;
    SELECT * INTO s FROM segment.subject y WHERE y.subject_id = j.subject_id;
    int_keys := s.key_type IN ('int4'::regtype, 'int8'::regtype);
    chain := segment_internal._channel_chain(e.return_channel);
    FOR x IN SELECT i.instance_id, i.member_id, i.key, i.journey_version, l.opportunity_id, p.status AS opp_status
               FROM segment.journey_instance i
               JOIN LATERAL (SELECT y.opportunity_id FROM segment.journey_log y
                              WHERE y.instance_id = i.instance_id AND y.event = 'escalate'
                              ORDER BY y.log_id DESC LIMIT 1) l ON true
               JOIN segment.opportunity p ON p.opportunity_id = l.opportunity_id
              WHERE i.journey_id = j.journey_id AND i.status = 'escalated'
                AND p.status IN ('generated', 'dispatched', 'expired')
                AND p.period + e.return_after_days <= t::date
              ORDER BY i.instance_id
    LOOP
        IF x.opp_status <> 'expired' THEN
            PERFORM segment.opportunity_cancel(x.opportunity_id,
                                   format('returned to journey %s: not worked within %s days', j.name, e.return_after_days));
        END IF;
        -- the first consented channel of the return channel's chain
        ch := NULL;
        FOREACH msg IN ARRAY chain LOOP
            SELECT * INTO c FROM segment.consent y WHERE y.subject_id = j.subject_id AND y.channel = msg;
            IF c.subject_id IS NULL THEN
                ok := true;
            ELSE
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s y WHERE y.%I::text = $1 AND y.%I IS TRUE)',
                               c.relation, c.key_column, c.opted_in_column) INTO ok USING x.key;
            END IF;
            IF ok THEN
                ch := msg;
                EXIT;
            END IF;
        END LOOP;
        msg := NULL;
        IF e.return_template_sql IS NOT NULL THEN
            EXECUTE format('SELECT %s FROM %s t WHERE %s', e.return_template_sql, s.relation,
                           CASE WHEN int_keys THEN format('t.%I = $1::int8', s.key_column)
                                ELSE format('t.%I::text = $1', s.key_column) END)
               INTO msg USING x.key;
        END IF;
        INSERT INTO segment.outbox AS o (journey_id, journey, journey_version, instance_id, step, member_id, customer,
                                         channel, planned_channel, due_at, message, idempotency_key, status, reason)
        VALUES (j.journey_id, j.name, x.journey_version, x.instance_id, 0, x.member_id, x.key, ch, e.return_channel,
                t, msg, format('%s:%s:%s:return:%s', j.journey_id, x.journey_version, x.instance_id, x.opportunity_id),
                CASE WHEN ch IS NULL THEN 'skipped' ELSE 'pending' END,
                CASE WHEN ch IS NULL THEN 'no consented channel'
                     WHEN ch <> e.return_channel THEN 'fallback: no consent to ' || e.return_channel END)
        ON CONFLICT ON CONSTRAINT outbox_idempotency_key_key DO NOTHING;
        UPDATE segment.journey_instance i SET status = 'active' WHERE i.instance_id = x.instance_id;
        INSERT INTO segment.journey_log (instance_id, journey_id, event, at, opportunity_id, detail)
        VALUES (x.instance_id, j.journey_id, 'return', t, x.opportunity_id,
                format('opportunity %s %s after %s days; back on %s', x.opportunity_id,
                       CASE WHEN x.opp_status = 'expired' THEN 'expired' ELSE 'not worked, cancelled' END,
                       e.return_after_days, coalesce(ch, 'no channel (no consent)')));
        IF ch IS NOT NULL THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;

------------------------------------------------------------------------
-- Entry by event
------------------------------------------------------------------------

-- Event tables attached to journeys: the trigger checks it is one of these.
CREATE TABLE segment.journey_event (
    journey_id   int NOT NULL REFERENCES segment.journey ON DELETE CASCADE,
    event_table  regclass NOT NULL,
    key_column   name NOT NULL,
    trigger_name name NOT NULL,
    CONSTRAINT journey_event_pkey PRIMARY KEY (journey_id, event_table)
);
SELECT pg_catalog.pg_extension_config_dump('segment.journey_event', '');

-- The statement-level trigger of an event table attached to a journey:
-- the keys of the new rows enter the journey now.
CREATE FUNCTION segment_internal._journey_event_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    a segment.journey_event;
    keys text[];
BEGIN
    -- only from the trigger attach_journey_event created on the event table
    SELECT * INTO a FROM segment.journey_event x WHERE x.event_table = TG_RELID AND x.trigger_name = TG_NAME;
    IF a.journey_id IS NULL OR TG_NARGS <> 0 OR TG_LEVEL <> 'STATEMENT' OR TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'trigger function segment_internal._journey_event_trigger() fired on a relation segment did not attach it to'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Trigger "%s" on %s.', TG_NAME, TG_RELID::regclass),
                  HINT = 'Journeys install their triggers with segment.attach_journey_event().';
    END IF;
    EXECUTE format('SELECT array_agg(DISTINCT n.%I::text) FROM segment_new_rows n WHERE n.%I IS NOT NULL',
                   a.key_column, a.key_column)
       INTO keys;
    IF keys IS NOT NULL THEN
        PERFORM segment.enter_journey((SELECT j.name FROM segment.journey j WHERE j.journey_id = a.journey_id), keys);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION segment.attach_journey_event(journey name, event_table regclass, key_column name)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    j segment.journey := segment_internal._journey(journey);
    tg name;
BEGIN
    IF event_table IS NULL OR key_column IS NULL THEN
        RAISE EXCEPTION 'event_table and key_column must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = event_table AND a.attname = key_column
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', key_column, event_table
            USING ERRCODE = 'undefined_column';
    END IF;
    IF EXISTS (SELECT 1 FROM segment.journey_event x WHERE x.journey_id = j.journey_id
                  AND x.event_table = attach_journey_event.event_table) THEN
        RAISE EXCEPTION 'journey "%" is already attached to %', journey, event_table
            USING ERRCODE = 'duplicate_object';
    END IF;
    tg := 'segment_journey_' || j.journey_id;
    INSERT INTO segment.journey_event (journey_id, event_table, key_column, trigger_name)
    VALUES (j.journey_id, attach_journey_event.event_table, attach_journey_event.key_column, tg);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS segment_new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION segment_internal._journey_event_trigger()',
                   tg, event_table);
END $$;
COMMENT ON FUNCTION segment.attach_journey_event(name, regclass, name) IS
    'customers named by new rows of an event table enter the journey at once (entry by event)';

------------------------------------------------------------------------
-- Scheduling: advance every 5 minutes with pg_cron
------------------------------------------------------------------------

CREATE FUNCTION segment.schedule_journeys(job text DEFAULT 'segment-journeys', cron text DEFAULT '*/5 * * * *')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    jobid bigint;
BEGIN
    IF job IS NULL OR cron IS NULL OR btrim(job) = '' THEN
        RAISE EXCEPTION 'job and cron must not be NULL or empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM segment_internal._require_cron();
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO jobid USING job, cron, 'SELECT segment.advance_journeys()';
    RETURN jobid;
END $$;
COMMENT ON FUNCTION segment.schedule_journeys(text, text) IS
    'schedules segment.advance_journeys() with pg_cron (every 5 minutes by default); segment.unschedule(job) removes it';

------------------------------------------------------------------------
-- Measurement
------------------------------------------------------------------------

-- Every move of every customer through the journeys: at is the journey's
-- time (entry, a touch's due time, a response's time, the advance that
-- ended or returned it), so that a simulated run reads in order.
CREATE VIEW segment.journey_lifecycle AS
SELECT i.journey_id, i.instance_id, i.key AS customer, i.entered_at AS at, 'enter'::text AS event,
       NULL::int AS step, NULL::text AS channel, NULL::int8 AS outbox_id, NULL::int8 AS opportunity_id,
       CASE WHEN i.is_holdout THEN 'holdout' END AS detail
  FROM segment.journey_instance i
UNION ALL
SELECT o.journey_id, o.instance_id, o.customer, o.due_at,
       CASE WHEN o.status = 'skipped' THEN 'skip' WHEN o.step = 0 THEN 'return_touch' ELSE 'touch' END,
       o.step, o.channel, o.outbox_id, NULL, concat_ws('; ', o.status, o.reason)
  FROM segment.outbox o
UNION ALL
SELECT l.journey_id, l.instance_id, i.key, l.at, l.event, NULL, NULL, l.outbox_id, l.opportunity_id, l.detail
  FROM segment.journey_log l JOIN segment.journey_instance i USING (instance_id)
UNION ALL
SELECT i.journey_id, i.instance_id, i.key, i.ended_at, i.status, NULL, NULL, NULL, NULL, NULL
  FROM segment.journey_instance i WHERE i.ended_at IS NOT NULL;
COMMENT ON VIEW segment.journey_lifecycle IS
    'every move of customers through journeys: enter, touch, skip, response, escalate, return, exit, goal, completed';

-- Per journey and step: entered (treatment instances), due (steps
-- decided), sent, delivered, failed, responded, converted (the instance
-- reached the goal after this step's touch), fallbacks and skips by reason.
CREATE VIEW segment.journey_funnel AS
WITH inst AS (
    SELECT i.journey_id, count(*) FILTER (WHERE NOT i.is_holdout) AS entered,
           count(*) FILTER (WHERE i.is_holdout) AS holdout
      FROM segment.journey_instance i GROUP BY i.journey_id),
sk AS (
    SELECT o.journey_id, o.step, jsonb_object_agg(o.reason, o.n) AS skipped_by_reason
      FROM (SELECT o.journey_id, o.step, o.reason, count(*) AS n FROM segment.outbox o
             WHERE o.status = 'skipped' GROUP BY 1, 2, 3) o
     GROUP BY 1, 2),
st AS (
    SELECT o.journey_id, o.step,
           count(*) AS due,
           count(*) FILTER (WHERE o.status <> 'skipped') AS sent,
           count(*) FILTER (WHERE o.status = 'delivered') AS delivered,
           count(*) FILTER (WHERE o.status = 'failed') AS failed,
           count(*) FILTER (WHERE o.response IS NOT NULL) AS responded,
           count(*) FILTER (WHERE o.status <> 'skipped' AND i.status = 'goal' AND i.ended_at >= o.due_at) AS converted,
           count(*) FILTER (WHERE o.status = 'skipped') AS skipped,
           count(*) FILTER (WHERE o.status <> 'skipped' AND o.channel <> o.planned_channel) AS fallback
      FROM segment.outbox o JOIN segment.journey_instance i USING (instance_id)
     GROUP BY 1, 2)
SELECT j.name AS journey, s.step, s.at, s.channel,
       coalesce(inst.entered, 0) AS entered, coalesce(inst.holdout, 0) AS holdout,
       coalesce(st.due, 0) AS due, coalesce(st.sent, 0) AS sent, coalesce(st.delivered, 0) AS delivered,
       coalesce(st.failed, 0) AS failed, coalesce(st.responded, 0) AS responded,
       coalesce(st.converted, 0) AS converted, coalesce(st.fallback, 0) AS fallback,
       coalesce(st.skipped, 0) AS skipped, coalesce(sk.skipped_by_reason, '{}') AS skipped_by_reason
  FROM segment.journey j
  JOIN segment.journey_step s ON s.journey_id = j.journey_id
  LEFT JOIN inst ON inst.journey_id = j.journey_id
  LEFT JOIN st ON st.journey_id = j.journey_id AND st.step = s.step
  LEFT JOIN sk ON sk.journey_id = j.journey_id AND sk.step = s.step;
COMMENT ON VIEW segment.journey_funnel IS
    'per journey step: entered, due, sent, delivered, failed, responded, converted, fallbacks, skips by reason';

-- Per journey: goal reached by the touched group against the holdout, lift
-- with its 95% Wald interval and the two-sided p-value (segment_internal._two_proportions).
CREATE VIEW segment.journey_review AS
SELECT j.name AS journey, c.treated, c.treated_converted, c.holdout, c.holdout_converted,
       p.treatment_rate, p.control_rate AS holdout_rate, p.lift, p.relative_lift,
       p.lift_low, p.lift_high, p.p_value
  FROM segment.journey j
  CROSS JOIN LATERAL (
      SELECT count(*) FILTER (WHERE NOT i.is_holdout) AS treated,
             count(*) FILTER (WHERE NOT i.is_holdout AND i.status = 'goal') AS treated_converted,
             count(*) FILTER (WHERE i.is_holdout) AS holdout,
             count(*) FILTER (WHERE i.is_holdout AND i.status = 'goal') AS holdout_converted
        FROM segment.journey_instance i WHERE i.journey_id = j.journey_id) c
  CROSS JOIN LATERAL segment_internal._two_proportions(c.treated_converted, c.treated,
                                              c.holdout_converted, c.holdout) p;
COMMENT ON VIEW segment.journey_review IS
    'per journey: goal rate of the touched customers against the holdout, lift with its 95% interval and p-value';

-- Per journey: customers who entered (not holdout) and were never touched;
-- of them, the ones whose pass is over already (the leak proper).
CREATE VIEW segment.journey_leak AS
SELECT j.name AS journey, c.entered, c.touched, c.entered - c.touched AS never_touched,
       c.ended_untouched, CASE WHEN c.entered > 0 THEN round(c.ended_untouched::numeric / c.entered, 4) END AS leak_rate
  FROM segment.journey j
  CROSS JOIN LATERAL (
      SELECT count(*) AS entered,
             count(*) FILTER (WHERE t.instance_id IS NOT NULL) AS touched,
             count(*) FILTER (WHERE t.instance_id IS NULL AND i.status NOT IN ('active', 'escalated')) AS ended_untouched
        FROM segment.journey_instance i
        LEFT JOIN (SELECT DISTINCT o.instance_id FROM segment.outbox o
                    WHERE o.journey_id = j.journey_id AND o.status <> 'skipped') t ON t.instance_id = i.instance_id
       WHERE i.journey_id = j.journey_id AND NOT i.is_holdout) c;
COMMENT ON VIEW segment.journey_leak IS
    'per journey: entered, touched, never touched, and never touched although their pass is over (leak)';

------------------------------------------------------------------------
-- DDL guard: what journeys read from warehouse tables stays readable
------------------------------------------------------------------------

-- Refuse an ALTER TABLE after which a journey's anchor column, a step's or
-- the return's template, a consent column or an entry event's key column no
-- longer reads (dropped, renamed, retyped to something else).
CREATE FUNCTION segment_internal._check_journeys_of(rel oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    typ regtype;
BEGIN
    FOR r IN SELECT j.name, j.anchor_column FROM segment.journey j JOIN segment.subject s USING (subject_id)
              WHERE s.relation = rel AND j.anchor_column IS NOT NULL
    LOOP
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attname = r.anchor_column AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS NULL OR typ NOT IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype) THEN
            RAISE EXCEPTION 'cannot change table "%": column "%" is the anchor date of journey "%"',
                            rel::regclass, r.anchor_column, r.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = 'Its steps are timed from that date column.',
                      HINT = 'Drop the journey first (segment.drop_journey).';
        END IF;
    END LOOP;
    FOR r IN SELECT j.name, format('step %s', st.step) AS what, st.template
               FROM segment.journey j JOIN segment.subject s USING (subject_id)
               JOIN segment.journey_step st USING (journey_id)
              WHERE s.relation = rel AND st.template IS NOT NULL
             UNION ALL
             SELECT j.name, 'the return', e.return_template
               FROM segment.journey j JOIN segment.subject s USING (subject_id)
               JOIN segment.journey_escalation e USING (journey_id)
              WHERE s.relation = rel AND e.return_template IS NOT NULL
    LOOP
        BEGIN
            PERFORM segment_internal._compile_template(rel, r.template, 'x');
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": the template of % of journey "%" reads it', rel::regclass, r.what, r.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('The template would fail: %s', SQLERRM),
                      HINT = 'Drop the step (segment.drop_journey_step) or change the escalation (segment.set_journey_escalation) first.';
        END;
    END LOOP;
    FOR r IN SELECT c.channel, c.key_column, c.opted_in_column, s.name AS subject
               FROM segment.consent c JOIN segment.subject s USING (subject_id)
              WHERE c.relation = rel
    LOOP
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attname = r.opted_in_column AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS DISTINCT FROM 'bool'::regtype
           OR NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = r.key_column
                             AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'cannot change table "%": it holds the consent of subject "%" to channel "%"',
                            rel::regclass, r.subject, r.channel
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Consent is read from columns %I (key) and %I (boolean).', r.key_column, r.opted_in_column),
                      HINT = 'Register the consent again with segment.register_consent() on the new columns first.';
        END IF;
    END LOOP;
    FOR r IN SELECT j.name, x.key_column FROM segment.journey_event x JOIN segment.journey j USING (journey_id)
              WHERE x.event_table = rel
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = r.key_column
                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'cannot change table "%": column "%" names the customers who enter journey "%"',
                            rel::regclass, r.key_column, r.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Drop the journey first (segment.drop_journey).';
        END IF;
    END LOOP;
END $$;

-- The DDL and drop guards of journeys' tables are part 91 (_check_journeys_of
-- above, _check_journey_drops there).
