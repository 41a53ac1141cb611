-- segment install script, part 80: the opportunity catalog (docs/opportunities.md).
-- Rules, staff, contact policy, the opportunities themselves and their
-- transition log. Everything here is business data, not recomputable
-- state, so all of it is dumped.

-- Who works the leads of a subject: one row per relationship manager, read
-- from a table the bank already has (manager, org unit, daily capacity,
-- active). Columns are stored by name and read with dynamic SQL.
CREATE TABLE segment.staff (
    subject_id      int PRIMARY KEY REFERENCES segment.subject ON DELETE CASCADE,
    relation        regclass NOT NULL,
    manager_column  name NOT NULL,
    org_column      name NOT NULL,
    capacity_column name,           -- NULL: no per-manager daily limit from staff
    active_column   name            -- NULL: every listed manager is active
);

-- Contact fatigue: at most max_contacts opportunities per customer in any
-- window of period_days days, across all rules of the subject.
CREATE TABLE segment.contact_policy (
    subject_id   int PRIMARY KEY REFERENCES segment.subject ON DELETE CASCADE,
    max_contacts int NOT NULL CHECK (max_contacts >= 1),
    period_days  int NOT NULL CHECK (period_days >= 1),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   name NOT NULL DEFAULT current_user
);

-- An opportunity rule: who (audience), what (product, channel, message),
-- how urgent (priority, optionally plus a scorecard's score), for how long
-- (valid_days), how often (cooldown_days), measured how (holdout_pct, goal),
-- worked by whom (assignment, capacity).
CREATE TABLE segment.opportunity_rule (
    rule_id            serial PRIMARY KEY,
    subject_id         int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    name               name NOT NULL UNIQUE,
    audience           text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('maintenance', 'mining')),
    product            text NOT NULL,
    channel            text NOT NULL,
    priority           numeric NOT NULL DEFAULT 0,
    priority_scorecard int REFERENCES segment.scorecard,
    template           text,
    template_sql       text,            -- the template compiled to a SQL expression over the row
    template_columns   name[] NOT NULL DEFAULT '{}',
    valid_days         int NOT NULL CHECK (valid_days >= 1),
    cooldown_days      int NOT NULL CHECK (cooldown_days >= 0),
    holdout_pct        numeric NOT NULL CHECK (holdout_pct >= 0 AND holdout_pct <= 50),
    goal               text,
    goal_columns       name[] NOT NULL DEFAULT '{}',
    goal_column_types  regtype[] NOT NULL DEFAULT '{}',
    assignment         text NOT NULL CHECK (assignment IN ('owner', 'org', 'pool')),
    capacity           int CHECK (capacity >= 0),   -- of this rule per manager per day
    description        text,
    active             boolean NOT NULL DEFAULT true,
    version            int NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    created_by         name NOT NULL DEFAULT current_user,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         name NOT NULL DEFAULT current_user,
    owner              regrole NOT NULL DEFAULT quote_ident(current_user)::regrole   -- the role its goal runs as
);
CREATE INDEX ON segment.opportunity_rule (subject_id);

CREATE TABLE segment.opportunity_rule_history (
    history_id     bigserial PRIMARY KEY,
    rule_id        int NOT NULL,
    name           name NOT NULL,
    version        int NOT NULL,
    action         text NOT NULL CHECK (action IN ('create', 'alter', 'drop')),
    changed_at     timestamptz NOT NULL DEFAULT now(),
    changed_by     name NOT NULL DEFAULT current_user,
    old_definition jsonb,
    new_definition jsonb
);
CREATE INDEX ON segment.opportunity_rule_history (rule_id);

-- One lead. period is the as_of date of the generate() that made it; a
-- rule makes at most one opportunity per customer per period, which is what
-- makes generate() idempotent. Control opportunities are recorded like the
-- others but never assigned nor dispatched.
--
-- No foreign keys on rule_id and subject_id: opportunities are inserted a
-- million at a time, and the two referential-integrity triggers per row cost
-- as much as the insert itself (measured: 1.9 s -> 3.8 s for 200,000 rows).
-- The functions keep them consistent instead: drop_opportunity_rule and
-- unregister_subject delete a rule's or a subject's opportunities.
CREATE TABLE segment.opportunity (
    opportunity_id bigserial PRIMARY KEY,
    rule_id        int NOT NULL,
    rule_version   int NOT NULL,
    subject_id     int NOT NULL,
    member_id      int8 NOT NULL,
    key            text NOT NULL,
    period         date NOT NULL,
    valid_until    date NOT NULL,      -- last day to act
    is_control     boolean NOT NULL,
    priority       numeric,
    message        text,
    org_unit       text,
    manager        text,               -- assigned manager; NULL: pool (or control)
    assignment     text NOT NULL CHECK (assignment IN ('owner', 'org', 'pool', 'control')),
    pool_reason    text,               -- why it went to the pool
    source         text NOT NULL DEFAULT 'batch',   -- 'batch' or the event that made it
    status         text NOT NULL DEFAULT 'generated'
                   CHECK (status IN ('generated', 'dispatched', 'in_progress',
                                     'completed', 'expired', 'cancelled')),
    status_at      timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    converted      boolean,            -- as reported by the manager on complete()
    amount         numeric,
    note           text,
    cancel_reason  text,
    goal_met       boolean,            -- set by evaluate_outcomes() when the window closes
    evaluated_at   timestamptz,
    UNIQUE (rule_id, member_id, period)
);
-- No index by customer: batch generation checks cool-downs and the contact
-- cap with member sets built from a window of periods; event-triggered
-- generation looks its customers up through (rule_id, member_id, period),
-- naming every rule of the subject.
-- Periods and deadlines grow with insertion order: BRIN indexes find a
-- day's or a window's rows (contact cap, manager loads, expire, review) for
-- almost nothing at insert time, where a btree would add ~2 us a row.
CREATE INDEX ON segment.opportunity USING brin (period);
CREATE INDEX ON segment.opportunity USING brin (valid_until);
-- A manager's load for a day (capacity checks; one event's generation looks
-- up only its customers' managers). Only assigned leads are in it.
CREATE INDEX ON segment.opportunity (period, manager) WHERE manager IS NOT NULL;

-- Every status change: who, when, from, to. (Creation is not logged: the
-- opportunity row itself says when and by which rule version.)
CREATE TABLE segment.opportunity_log (
    log_id         bigserial PRIMARY KEY,
    opportunity_id bigint NOT NULL REFERENCES segment.opportunity ON DELETE CASCADE,
    from_status    text NOT NULL,
    to_status      text NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    changed_by     name NOT NULL DEFAULT current_user,
    note           text
);
CREATE INDEX ON segment.opportunity_log (opportunity_id);

-- A customer whose opportunity could not be made (a template value that does
-- not render, ...): recorded, and the rest of the run goes on.
CREATE TABLE segment.generation_failure (
    failure_id  bigserial PRIMARY KEY,
    rule_id     int NOT NULL REFERENCES segment.opportunity_rule ON DELETE CASCADE,
    member_id   int8 NOT NULL,
    key         text NOT NULL,
    period      date NOT NULL,
    error       text NOT NULL,
    sqlstate    text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON segment.generation_failure (rule_id, period);

-- One row per rule per generate() call: what it did and what it skipped.
CREATE TABLE segment.generation (
    generation_id    bigserial PRIMARY KEY,
    rule_id          int NOT NULL REFERENCES segment.opportunity_rule ON DELETE CASCADE,
    period           date NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    candidates       bigint NOT NULL,
    generated        bigint NOT NULL,
    control          bigint NOT NULL,
    skipped_cooldown bigint NOT NULL,
    skipped_cap      bigint NOT NULL,
    over_capacity    bigint NOT NULL,
    failed           bigint NOT NULL,
    error            text,            -- the rule failed as a whole and made nothing
    run_by           name NOT NULL DEFAULT current_user
);
CREATE INDEX ON segment.generation (rule_id, period);

-- What makes a rule's opportunities besides batch generation: events and
-- entries into an audience (part 85 attaches and fires them).
-- One attachment of an opportunity rule to an event table.
CREATE TABLE segment.event_rule (
    rule_id      int NOT NULL REFERENCES segment.opportunity_rule,
    event_table  regclass NOT NULL,
    key_column   name NOT NULL,      -- the event column holding the customer key
    key_type     regtype NOT NULL,   -- its type when attached (the DDL guard keeps it)
    condition    text NOT NULL,      -- SQL boolean expression over the event row
    columns      name[] NOT NULL DEFAULT '{}',      -- columns the condition reads ...
    column_types regtype[] NOT NULL DEFAULT '{}',   -- ... and their types when attached
    trigger_name name NOT NULL,      -- segment_event_rule_<rule_id>
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   name NOT NULL DEFAULT current_user,
    owner        regrole NOT NULL DEFAULT quote_ident(current_user)::regrole,  -- the role its condition runs as
    PRIMARY KEY (rule_id, event_table)
);
CREATE INDEX ON segment.event_rule (event_table);

-- An opportunity rule fired for the customers who enter an audience.
CREATE TABLE segment.entry_rule (
    rule_id    int NOT NULL REFERENCES segment.opportunity_rule,
    subject_id int NOT NULL REFERENCES segment.subject ON DELETE CASCADE,
    audience   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by name NOT NULL DEFAULT current_user,
    PRIMARY KEY (rule_id, audience)
);
CREATE INDEX ON segment.entry_rule (subject_id);

SELECT pg_catalog.pg_extension_config_dump('segment.staff', '');
SELECT pg_catalog.pg_extension_config_dump('segment.contact_policy', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_rule', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_rule_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_rule_history', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_rule_history_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_opportunity_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_log', '');
SELECT pg_catalog.pg_extension_config_dump('segment.opportunity_log_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.generation_failure', '');
SELECT pg_catalog.pg_extension_config_dump('segment.generation_failure_failure_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.generation', '');
SELECT pg_catalog.pg_extension_config_dump('segment.generation_generation_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.event_rule', '');
SELECT pg_catalog.pg_extension_config_dump('segment.entry_rule', '');
