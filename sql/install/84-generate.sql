-- segment install script, part 84: generating opportunities
-- (docs/opportunities.md). Set-based: the candidates of each rule come from its
-- audience's member set (no rescan of the rules), minus the members in
-- cool-down (a member set of the rule's recent opportunities); one join with
-- the subject's table fetches key, owner, org unit and renders the message;
-- the contact cap, assignment and the insert are one statement each over a
-- temporary table. docs/opportunities.md explains the policy; the order of
-- the steps is part of it:
--   audience -> cool-down -> render (failures recorded) -> contact cap
--   (priority wins) -> control group -> owner -> org unit -> pool.
-- Its batch entry point, segment.generate, is part 89: it leaves alone the
-- rules that events, entries and journeys make leads for.

-- Control membership: a fixed hash of (rule, member, period), so reruns and
-- back-fills agree. 10,000 buckets: holdout_pct has two decimals of effect.
CREATE FUNCTION segment_internal._in_control(rule_id int, member_id int8, period date, holdout_pct numeric)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT abs(hashint8extended(member_id, rule_id::int8 * 1000003 + (period - date '2000-01-01')) % 10000)
           < holdout_pct * 100
$$;
COMMENT ON FUNCTION segment_internal._in_control(int, int8, date, numeric) IS
    'whether a candidate falls in the control group of a rule for a period (deterministic)';

-- A column of the subject's row (alias t) as text in generated SQL, or a
-- NULL when the subject has no such column (owner, org unit).
CREATE FUNCTION segment_internal._column_as_text(col name) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN col IS NULL THEN 'NULL::text' ELSE format('t.%I::text', col) END
$$;

-- The staff of a subject as a temporary table _seg_staff(manager, org,
-- capacity, active, load): load is what each manager already has for the day.
-- members: only the managers who can take these customers (their owners and
-- the managers of their org units): an event's generation must not count the
-- whole day's opportunities of every manager.
CREATE FUNCTION segment_internal._load_staff(sid int, as_of date, members segment.memberset DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    st segment.staff;
    s segment.subject;
    keys text[];
    owners text[];
    orgs text[];
    only_these text := '';
BEGIN
    -- emptied at every call: TRUNCATE for a batch, DELETE for a few
    -- customers (an event: a TRUNCATE, or ON COMMIT DELETE ROWS, would make
    -- new files and rebuild the index in every event transaction)
    IF to_regclass('pg_temp._seg_staff') IS NULL THEN
        CREATE TEMP TABLE _seg_staff (manager text PRIMARY KEY, org text, capacity int,
                                      active boolean, load int NOT NULL DEFAULT 0);
    ELSIF members IS NOT NULL THEN
        DELETE FROM pg_temp._seg_staff;
    ELSE
        TRUNCATE pg_temp._seg_staff;
    END IF;
    SELECT * INTO st FROM segment.staff f WHERE f.subject_id = sid;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF members IS NOT NULL THEN
        SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
        IF s.key_type NOT IN ('int4'::regtype, 'int8'::regtype) THEN
            SELECT array_agg(k.key) INTO keys FROM segment.keymap k
             WHERE k.subject_id = sid AND k.member_id = ANY (segment.to_array(members));
        END IF;
        -- compared in the key's own type, so the key's index finds the rows
        EXECUTE format('SELECT array_agg(DISTINCT %s), array_agg(DISTINCT %s) FROM %s t WHERE t.%I = ANY (%s)%s',
                       segment_internal._column_as_text(s.owner_column),
                       segment_internal._column_as_text(s.org_column),
                       s.relation, s.key_column,
                       CASE WHEN s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN '$1' ELSE '$2' END,
                       segment_internal._snapshot_filter(sid, 't'))
           INTO owners, orgs USING segment.to_array(members), keys;
        only_these := format(' AND (m.%I::text = ANY (%L::text[]) OR m.%I::text = ANY (%L::text[]))',
                             st.manager_column, coalesce(owners, '{}'), st.org_column, coalesce(orgs, '{}'));
    END IF;
    EXECUTE format('INSERT INTO pg_temp._seg_staff (manager, org, capacity, active)
                    SELECT DISTINCT ON (m.%1$I::text) m.%1$I::text, m.%2$I::text, %3$s, %4$s
                      FROM %5$s m WHERE m.%1$I IS NOT NULL %6$s ORDER BY m.%1$I::text',
                   st.manager_column, st.org_column,
                   CASE WHEN st.capacity_column IS NULL THEN 'NULL::int'
                        ELSE format('m.%I', st.capacity_column) END,
                   CASE WHEN st.active_column IS NULL THEN 'true'
                        ELSE format('coalesce(m.%I, false)', st.active_column) END,
                   st.relation, only_these);
    -- the day's load per manager, from the index on (period, manager)
    UPDATE pg_temp._seg_staff f SET load = x.n
      FROM (SELECT o.manager, count(*) AS n FROM segment.opportunity o
             WHERE o.period = as_of AND o.manager IS NOT NULL AND o.subject_id = sid
               AND o.manager = ANY (ARRAY(SELECT g.manager FROM pg_temp._seg_staff g))
             GROUP BY o.manager) x
     WHERE x.manager = f.manager;
    RETURN true;
END $$;

-- The key (as text) of a member id of a subject.
CREATE FUNCTION segment_internal._key_of(sid int, member_id int8) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN member_id::text
                ELSE (SELECT k.key FROM segment.keymap k
                       WHERE k.subject_id = sid AND k.member_id = _key_of.member_id) END
      FROM segment.subject s WHERE s.subject_id = sid
$$;

-- Generates the opportunities of some rules of one subject for one day.
-- members: restrict candidates to these members (event-triggered generation).
-- The caller holds the subject's generation lock.
--
-- Rules are taken in priority order (then rule id): a higher-priority rule
-- takes the contact-cap room and the managers' capacity first. Per rule:
--   candidates = audience - members in cool-down - members at the contact cap
-- (all member-set operations, no scan), then one statement joins them with
-- the table, renders the message, draws the control group, ranks them per
-- owner and inserts straight into segment.opportunity the ones that are
-- decided (control, owner, pool). Only those waiting for an org-unit manager
-- go through a work table. The contact cap is kept as member sets by level
-- (level i: customers with at least i contacts in the window).
CREATE FUNCTION segment_internal._generate(sid int, rule_ids int[], as_of date,
                                  members segment.memberset DEFAULT NULL, source text DEFAULT 'batch')
RETURNS TABLE (rule_name name, candidates bigint, generated bigint, control bigint,
               skipped_cooldown bigint, skipped_cap bigint, over_capacity bigint, failed bigint)
-- The work-table statements are planned with forced join methods and their
-- costs look huge; JIT would compile them for ~0.5 s each (per event
-- statement too), for nothing.
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    s segment.subject;
    cp segment.contact_policy;
    r segment.opportunity_rule;
    started timestamptz;
    aud segment.memberset;
    recent segment.memberset;
    made segment.memberset;
    levels segment.memberset[];
    lv record;
    groups refcursor;
    n_aud int8;
    n_after_cool int8;
    n_cap int8;
    n_failed int8;
    n_gen int8;
    n_ctl int8;
    n_over int8;
    i int;
    int_keys boolean;
    key_join text;
    source_sql text;
    member_ids int8[];
    subject_rules int[];
    gen_sql text;
    stmt text;
    ms_type oid;
    stale text;
    msg text;
    has_staff boolean;
    staff_loaded boolean := false;
    needs_org text;
    id_expr text;
    from_sql text;
    where_sql text;
    n_rows float8;
    c record;
    err text;
    state text;
    rule_error text;
    merge_join text := current_setting('enable_mergejoin');
    nest_loop text := current_setting('enable_nestloop');
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
    SELECT * INTO cp FROM segment.contact_policy p WHERE p.subject_id = sid;
    int_keys := s.key_type IN ('int4'::regtype, 'int8'::regtype);
    IF int_keys THEN
        key_join := format('JOIN %s t ON t.%I = m.id', s.relation, s.key_column);
    ELSE
        key_join := format('JOIN segment.keymap k ON k.subject_id = %s AND k.member_id = m.id
                            JOIN %s t ON t.%I = k.key', sid, s.relation, s.key_column);
    END IF;
    -- a snapshot subject: the rows of the snapshot its member sets are from
    key_join := key_join || segment_internal._snapshot_filter(sid, 't');

    -- work table: candidates waiting for an org-unit manager. Created once
    -- per session (creating temporary tables in every event transaction cost
    -- more than the rest of an event's generation), emptied at every call:
    -- TRUNCATE for a batch, DELETE for a few customers (an event; a TRUNCATE
    -- or ON COMMIT DELETE ROWS makes new files in every event transaction)
    IF to_regclass('pg_temp._seg_cand') IS NULL THEN
        CREATE TEMP TABLE _seg_cand (
            opportunity_id int8 NOT NULL, rule_id int NOT NULL, member_id int8 NOT NULL,
            priority numeric, org text, manager text);
    ELSIF members IS NOT NULL THEN
        DELETE FROM pg_temp._seg_cand;
    ELSE
        TRUNCATE pg_temp._seg_cand;
    END IF;
    -- the staff and their loads of the day. For a few customers (an event)
    -- only when a rule assigns to managers: a pool rule reads none of it (its
    -- statement joins no manager and updates no load), so it is loaded just
    -- before the first rule that does (the work table must exist to plan it)
    IF members IS NULL OR to_regclass('pg_temp._seg_staff') IS NULL THEN
        has_staff := segment_internal._load_staff(sid, as_of, members);
        staff_loaded := true;
    END IF;
    IF members IS NULL THEN
        ANALYZE pg_temp._seg_staff;   -- a few customers (an event) plan fine without
    END IF;
    SELECT greatest(pc.reltuples, 0) INTO n_rows FROM pg_class pc WHERE pc.oid = s.relation;
    -- event-triggered generation looks at its few customers only (index on
    -- subject, member, period), not at every opportunity of the window
    IF members IS NOT NULL THEN
        member_ids := segment.to_array(members);
        -- (rule, member, period) is the index there is: name every rule
        SELECT array_agg(x.rule_id) INTO subject_rules FROM segment.opportunity_rule x WHERE x.subject_id = sid;
    END IF;

    -- contact-cap levels from the opportunities already in the window: level
    -- i holds the customers with at least i of them. An opportunity is
    -- unique per (rule, member, period), so a (rule, period) group holds a
    -- customer at most once: one member set per group, counted by set
    -- algebra (grouping a million opportunities by customer spilled to disk
    -- and took longer than the rest of a generation)
    IF cp.subject_id IS NOT NULL THEN
        levels := array_fill(NULL::segment.memberset, ARRAY[cp.max_contacts]);
        -- the groups stream (a batch: a few sets of up to every customer).
        -- Two statements, not one with a branch per case: the batch branch's
        -- cost kept the event's statement on custom plans, planned anew in
        -- every event transaction
        IF members IS NULL THEN
            OPEN groups FOR SELECT segment.memberset_agg(o.member_id) AS ids FROM segment.opportunity o
                             WHERE o.subject_id = sid AND o.period > as_of - cp.period_days AND o.period <= as_of
                             GROUP BY o.rule_id, o.period;
        ELSE
            OPEN groups FOR SELECT segment.memberset_agg(o.member_id) AS ids FROM segment.opportunity o
                             WHERE o.subject_id = sid AND o.period > as_of - cp.period_days AND o.period <= as_of
                               AND o.rule_id = ANY (subject_rules) AND o.member_id = ANY (member_ids)
                             GROUP BY o.rule_id, o.period;
        END IF;
        LOOP
            FETCH groups INTO lv;
            EXIT WHEN NOT FOUND;
            FOR i IN REVERSE cp.max_contacts .. 2 LOOP
                IF levels[i - 1] IS NOT NULL THEN
                    levels[i] := coalesce(levels[i], segment.memberset('{}'::int8[]))
                                 OPERATOR(segment.|) (levels[i - 1] OPERATOR(segment.&) lv.ids);
                END IF;
            END LOOP;
            levels[1] := CASE WHEN levels[1] IS NULL THEN lv.ids ELSE levels[1] OPERATOR(segment.|) lv.ids END;
        END LOOP;
        CLOSE groups;
    END IF;

    FOR r IN SELECT * FROM segment.opportunity_rule x WHERE x.rule_id = ANY (rule_ids)
              ORDER BY x.priority DESC, x.rule_id
    LOOP
        started := clock_timestamp();
        n_failed := 0; n_aud := 0; n_after_cool := 0; n_cap := 0;
        n_gen := 0; n_ctl := 0; n_over := 0; made := NULL; rule_error := NULL;
        -- a rule that fails as a whole (its audience names something not
        -- refreshed yet, a goal column gone) makes nothing and is logged; the
        -- other rules go on
        -- (outside the rule's block: a failing rule must not roll the load back)
        IF NOT staff_loaded AND r.assignment <> 'pool' THEN
            has_staff := segment_internal._load_staff(sid, as_of, members);
            staff_loaded := true;
        END IF;
        BEGIN
            IF members IS NULL THEN
                aud := segment.audience(s.name, r.audience);
            ELSE
                -- evaluated within the few members: no algebra over every customer
                aud := segment_internal._audience_within(s.name, r.audience, members);
            END IF;
            n_aud := segment.cardinality(aud);
            IF members IS NULL THEN
                SELECT segment.memberset_agg(o.member_id) INTO recent FROM segment.opportunity o
                 WHERE o.rule_id = r.rule_id AND o.period > as_of - greatest(r.cooldown_days, 1)
                   AND o.period < as_of + greatest(r.cooldown_days, 1);
            ELSE
                SELECT segment.memberset_agg(o.member_id) INTO recent FROM segment.opportunity o
                 WHERE o.rule_id = r.rule_id AND o.period > as_of - greatest(r.cooldown_days, 1)
                   AND o.period < as_of + greatest(r.cooldown_days, 1)
                   AND o.rule_id = ANY (subject_rules) AND o.member_id = ANY (member_ids);
            END IF;
            IF recent IS NOT NULL THEN
                aud := aud OPERATOR(segment.-) recent;
            END IF;
            n_after_cool := segment.cardinality(aud);
            IF cp.subject_id IS NOT NULL AND levels[cp.max_contacts] IS NOT NULL THEN
                aud := aud OPERATOR(segment.-) levels[cp.max_contacts];
            END IF;
            n_cap := n_after_cool - segment.cardinality(aud);

            IF NOT segment.is_empty(aud) THEN
                -- Where the candidates come from: a large audience is found by
                -- scanning the table with a member-set test per row; a small one
                -- (events, narrow rules) by key lookups.
                IF segment.cardinality(aud) * 20 > greatest(n_rows, 1) THEN
                    IF int_keys THEN
                        id_expr := format('t.%I::int8', s.key_column);
                        from_sql := format('%s t', s.relation);
                    ELSE
                        id_expr := 'k.member_id';
                        from_sql := format('%s t JOIN segment.keymap k ON k.subject_id = %s AND k.key = t.%I',
                                           s.relation, sid, s.key_column);
                    END IF;
                    where_sql := format('WHERE $1 OPERATOR(segment.@>) %s', id_expr)
                                 || segment_internal._snapshot_filter(sid, 't');
                    -- most of the table: hash joins with staff and scores, not a
                    -- lookup per row (the set-returning estimate is no help)
                    PERFORM set_config('enable_nestloop', 'off', true);
                ELSE
                    id_expr := 'm.id';
                    from_sql := 'segment.member_ids($1) m(id) ' || key_join;
                    where_sql := '';
                END IF;
                -- an owner gets the lead when the rule says so, the owner is an
                -- active manager, and within both the manager's capacity for the
                -- day and the rule's per-manager capacity (in priority order);
                -- then, in each org unit, as many of the others as the unit's
                -- managers have room left are staged for least-loaded assignment;
                -- the rest go to the pool now, with the reason
                needs_org := CASE WHEN has_staff AND r.assignment IN ('owner', 'org') AND s.org_column IS NOT NULL
                                  THEN 'true' ELSE 'false' END;
                source_sql := format(
                    $q$SELECT %1$s AS member_id, t.%2$I::text AS key, %3$s AS priority,
                              segment_internal._in_control(%4$s, %1$s, $2, %5$s) AS is_control,
                              %6$s AS owner, %7$s AS org, %%s AS message, f.manager AS staff,
                              least(f.capacity - f.load, %8$s - coalesce(u.n, 0)) AS room
                         FROM %9$s %10$s
                         LEFT JOIN pg_temp._seg_staff f ON %11$s AND f.manager = %6$s AND f.active
                         LEFT JOIN rule_used u ON u.manager = f.manager
                         %12$s$q$,
                    id_expr, s.key_column,
                    CASE WHEN r.priority_scorecard IS NULL THEN r.priority::text
                         ELSE format('%s + coalesce(sc.score, 0)', r.priority) END,
                    r.rule_id, r.holdout_pct,
                    segment_internal._column_as_text(s.owner_column),
                    segment_internal._column_as_text(s.org_column),
                    coalesce(r.capacity::text, 'NULL'),
                    from_sql,
                    CASE WHEN r.priority_scorecard IS NULL THEN ''
                         ELSE format('LEFT JOIN (SELECT x.score, segment.member_ids(x.members) AS id
                                                   FROM segment_internal._live_scores(%s, %s) x) sc
                                             ON sc.id = %s', r.priority_scorecard, sid, id_expr) END,
                    CASE WHEN has_staff AND r.assignment = 'owner' THEN 'true' ELSE 'false' END,
                    where_sql);
                msg := coalesce(r.template_sql, 'NULL::text');
                -- rule_used: what the rule's managers already have for the
                -- day, read only when the rule has a per-manager capacity (its
                -- one use); else every event would scan the rule's leads
                gen_sql := format($q$
                    WITH rule_used AS (%10$s),
                    src AS MATERIALIZED (%1$s),
                    -- the owners' picks: ranked on a narrow projection, so the
                    -- sort is small, and only the winners are joined back
                    owner_pick AS (
                        SELECT w.member_id, w.staff FROM (
                            SELECT d.member_id, d.staff, d.room,
                                   row_number() OVER (PARTITION BY d.staff ORDER BY d.priority DESC, d.member_id) AS k
                              FROM src d WHERE d.staff IS NOT NULL AND NOT d.is_control) w
                         WHERE w.room IS NULL OR w.k <= w.room),
                    ranked AS (
                        SELECT d.*, p.member_id IS NOT NULL AS to_owner
                          FROM src d LEFT JOIN owner_pick p ON p.member_id = d.member_id),
                    owner_took AS (
                        SELECT p.staff AS manager, count(*) AS n FROM owner_pick p GROUP BY p.staff),
                    org_room AS (
                        SELECT f.org, sum(greatest(0, least(
                                   coalesce(f.capacity - f.load - coalesce(t.n, 0), 2147483647),
                                   coalesce(%9$s - coalesce(u.n, 0) - coalesce(t.n, 0), 2147483647)))) AS room
                          FROM pg_temp._seg_staff f
                          LEFT JOIN owner_took t ON t.manager = f.manager
                          LEFT JOIN rule_used u ON u.manager = f.manager
                         WHERE f.active AND %8$s
                         GROUP BY f.org),
                    -- only units with room left rank their candidates (usually
                    -- few: owners fill most managers' days). Every candidate is
                    -- inserted by one statement (ranked and placed are read once,
                    -- so they stream); the ones for an org-unit manager go in as
                    -- 'org' without a manager and get one just after.
                    org_ranked AS (
                        SELECT d.member_id,
                               row_number() OVER (PARTITION BY d.org ORDER BY d.priority DESC, d.member_id) <= g.room AS to_org
                          FROM src d JOIN org_room g ON g.org = d.org AND g.room > 0
                         WHERE NOT d.is_control
                           AND NOT EXISTS (SELECT 1 FROM owner_pick p WHERE p.member_id = d.member_id)),
                    placed AS (
                        SELECT d.*, g.room IS NOT NULL AS org_staffed, coalesce(x.to_org, false) AS to_org
                          FROM ranked d LEFT JOIN org_room g ON g.org = d.org
                          LEFT JOIN org_ranked x ON x.member_id = d.member_id),
                    direct AS (
                        INSERT INTO segment.opportunity AS o
                            (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                             is_control, priority, message, org_unit, manager, assignment, pool_reason, source)
                        SELECT %2$s, %3$s, %4$s, d.member_id, d.key, $2, $2 + %5$s, d.is_control,
                               d.priority, d.message, d.org,
                               CASE WHEN d.to_owner THEN d.owner END,
                               CASE WHEN d.is_control THEN 'control' WHEN d.to_owner THEN 'owner'
                                    WHEN d.to_org THEN 'org' ELSE 'pool' END,
                               CASE WHEN d.is_control OR d.to_owner OR d.to_org THEN NULL
                                    WHEN %6$L = 'pool' THEN 'rule assigns to the pool'
                                    WHEN NOT %7$s THEN 'no staff table'
                                    WHEN d.staff IS NOT NULL OR d.org_staffed THEN 'managers at capacity'
                                    WHEN d.owner IS NULL AND d.org IS NULL THEN 'no owner and no org unit'
                                    ELSE 'no active manager for the customer' END,
                               $3
                          FROM placed d
                        RETURNING o.opportunity_id, o.member_id, o.is_control, o.manager, o.assignment,
                                  o.org_unit, o.priority, o.pool_reason),
                    staged AS (
                        INSERT INTO pg_temp._seg_cand (opportunity_id, rule_id, member_id, priority, org)
                        SELECT direct.opportunity_id, %2$s, direct.member_id, direct.priority, direct.org_unit
                          FROM direct
                         WHERE direct.assignment = 'org'
                        RETURNING 1),
                    loads AS (
                        UPDATE pg_temp._seg_staff f SET load = f.load + x.n
                          FROM (SELECT direct.manager, count(*) AS n FROM direct
                                 WHERE direct.manager IS NOT NULL GROUP BY direct.manager) x
                         WHERE f.manager = x.manager
                        RETURNING 1)
                    SELECT (SELECT segment.memberset_agg(direct.member_id) FROM direct),
                           (SELECT count(*) FROM direct WHERE NOT direct.is_control),
                           (SELECT count(*) FROM direct WHERE direct.is_control),
                           (SELECT count(*) FROM direct WHERE direct.pool_reason = 'managers at capacity')$q$,
                    format(source_sql, msg), r.rule_id, r.version, sid, r.valid_days - 1,
                    r.assignment, coalesce(has_staff, false)::text, needs_org, coalesce(r.capacity::text, 'NULL'),
                    CASE WHEN r.capacity IS NULL THEN 'SELECT NULL::text AS manager, 0::bigint AS n WHERE false'
                         ELSE format('SELECT o.manager, count(*) AS n FROM segment.opportunity o
                                       WHERE o.rule_id = %s AND o.period = $2 AND o.manager IS NOT NULL
                                       GROUP BY o.manager', r.rule_id) END);
                -- a pool rule for a few customers (an event): the same
                -- decisions without the owner and org-unit parts, which
                -- place nobody for a pool rule (no staff is joined, no unit
                -- has room, nothing is staged, no load changes), and whose
                -- executor start was most of the statement for one customer.
                -- test/pgtap/events_differential.sql compares it with batch.
                IF members IS NOT NULL AND r.assignment = 'pool' THEN
                    gen_sql := format($q$
                    WITH rule_used AS (%6$s),
                    src AS MATERIALIZED (%1$s),
                    direct AS (
                        INSERT INTO segment.opportunity AS o
                            (rule_id, rule_version, subject_id, member_id, key, period, valid_until,
                             is_control, priority, message, org_unit, manager, assignment, pool_reason, source)
                        SELECT %2$s, %3$s, %4$s, d.member_id, d.key, $2, $2 + %5$s, d.is_control,
                               d.priority, d.message, d.org, NULL,
                               CASE WHEN d.is_control THEN 'control' ELSE 'pool' END,
                               CASE WHEN d.is_control THEN NULL ELSE 'rule assigns to the pool' END,
                               $3
                          FROM src d
                        RETURNING o.member_id, o.is_control)
                    SELECT (SELECT segment.memberset_agg(direct.member_id) FROM direct),
                           (SELECT count(*) FROM direct WHERE NOT direct.is_control),
                           (SELECT count(*) FROM direct WHERE direct.is_control),
                           0::bigint$q$,
                    format(source_sql, msg), r.rule_id, r.version, sid, r.valid_days - 1,
                    'SELECT NULL::text AS manager, 0::bigint AS n WHERE false');
                END IF;
                BEGIN
                    IF members IS NULL THEN
                        EXECUTE gen_sql
                        INTO made, n_gen, n_ctl, n_over USING aud, as_of, source;
                    ELSE
                        -- a few customers (an event): planning this statement
                        -- cost more than running it, so it is prepared once
                        -- per session and text (the text names the rule and
                        -- its version), and its plan cached. The name also
                        -- has the memberset type's OID: a statement prepared
                        -- before the extension was re-created (same rule id
                        -- and version) takes the dropped type, XX000 "cache
                        -- lookup failed"; such statements are deallocated
                        ms_type := pg_catalog.to_regtype('segment.memberset')::oid;
                        stmt := 'segment_generate_' || md5(gen_sql || ' ' || ms_type);
                        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements p WHERE p.name = stmt) THEN
                            FOR stale IN SELECT p.name FROM pg_catalog.pg_prepared_statements p
                                          WHERE p.name LIKE 'segment\_generate\_%'
                                            AND p.parameter_types[1]::oid <> ms_type
                            LOOP
                                EXECUTE format('DEALLOCATE %I', stale);
                            END LOOP;
                            EXECUTE format('PREPARE %I (segment.memberset, date, text) AS %s', stmt, gen_sql);
                        END IF;
                        -- (a utility EXECUTE takes no $n: the few members as a literal)
                        EXECUTE format('EXECUTE %I (%L::segment.memberset, %L::date, %L::text)',
                                       stmt, aud, as_of, source)
                        INTO made, n_gen, n_ctl, n_over;
                    END IF;
                    PERFORM set_config('enable_nestloop', nest_loop, true);
                EXCEPTION WHEN OTHERS THEN
                    PERFORM set_config('enable_nestloop', nest_loop, true);
                    IF r.template_sql IS NULL THEN
                        RAISE;
                    END IF;
                    -- a value that does not render: render customer by customer,
                    -- record the ones that fail, and generate the others
                    FOR c IN EXECUTE format('SELECT m.id FROM segment.member_ids($1) m(id)') USING aud
                    LOOP
                        BEGIN
                            EXECUTE format('SELECT %s FROM (SELECT $1::int8 AS id) m %s', msg, key_join)
                               USING c.id;
                        EXCEPTION WHEN OTHERS THEN
                            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
                            INSERT INTO segment.generation_failure (rule_id, member_id, key, period, error, sqlstate)
                            SELECT r.rule_id, c.id, coalesce(segment_internal._key_of(sid, c.id), c.id::text), as_of, err, state;
                            aud := aud OPERATOR(segment.-) segment.memberset(ARRAY[c.id]);
                            n_failed := n_failed + 1;
                        END;
                    END LOOP;
                    -- the same statement as above, on the ones that render
                    EXECUTE gen_sql
                    INTO made, n_gen, n_ctl, n_over USING aud, as_of, source;
                END;

                -- the org unit: least-loaded active manager first (ties: manager
                -- id). A manager with room for k more offers slots at load+1 ..
                -- load+k; the i-th candidate of the unit takes the i-th lowest
                -- slot, which is what assigning one at a time to the least-loaded
                -- manager gives. Candidates meet slots on (org, i) by a hash join:
                -- the slot count is overestimated (generate_series) and a merge
                -- join on org alone would compare every candidate with every slot.
                IF EXISTS (SELECT 1 FROM pg_temp._seg_cand x WHERE x.rule_id = r.rule_id) THEN
                    IF members IS NULL THEN
                        ANALYZE pg_temp._seg_cand;
                    END IF;
                    PERFORM set_config('enable_mergejoin', 'off', true);
                    PERFORM set_config('enable_nestloop', 'off', true);
                    WITH cand AS (SELECT x.ctid AS tid, x.org,
                                         row_number() OVER (PARTITION BY x.org
                                                            ORDER BY x.priority DESC, x.member_id) AS i,
                                         count(*) OVER (PARTITION BY x.org) AS n
                                    FROM pg_temp._seg_cand x WHERE x.rule_id = r.rule_id),
                         units AS (SELECT DISTINCT cand.org, cand.n FROM cand),
                         used AS (SELECT o.manager, count(*) AS n FROM segment.opportunity o
                                   WHERE o.rule_id = r.rule_id AND o.period = as_of AND o.manager IS NOT NULL
                                     AND r.capacity IS NOT NULL   -- read only for a capacity
                                   GROUP BY o.manager),
                         slots AS (SELECT f.manager, f.org,
                                          row_number() OVER (PARTITION BY f.org ORDER BY f.load + g.k, f.manager) AS i
                                     FROM pg_temp._seg_staff f
                                     JOIN units ON units.org = f.org
                                     LEFT JOIN used ON used.manager = f.manager
                                     CROSS JOIN LATERAL generate_series(1, least(
                                          coalesce(f.capacity - f.load, units.n),
                                          coalesce(r.capacity - coalesce(used.n, 0), units.n),
                                          units.n)::int) AS g(k)
                                    WHERE f.active)
                    UPDATE pg_temp._seg_cand x SET manager = slots.manager
                      FROM cand JOIN slots ON slots.org = cand.org AND slots.i = cand.i
                     WHERE x.ctid = cand.tid;
                    PERFORM set_config('enable_mergejoin', merge_join, true);
                    PERFORM set_config('enable_nestloop', nest_loop, true);
                    UPDATE pg_temp._seg_staff f SET load = f.load + x.n
                      FROM (SELECT y.manager, count(*) AS n FROM pg_temp._seg_cand y
                             WHERE y.rule_id = r.rule_id AND y.manager IS NOT NULL GROUP BY y.manager) x
                     WHERE x.manager = f.manager;
                    -- the staged ones got their manager (a unit's room was
                    -- counted exactly, so none should be left without one)
                    WITH upd AS (
                        UPDATE segment.opportunity o
                           SET manager = x.manager,
                               assignment = CASE WHEN x.manager IS NULL THEN 'pool' ELSE 'org' END,
                               pool_reason = CASE WHEN x.manager IS NULL THEN 'managers at capacity' END
                          FROM pg_temp._seg_cand x
                         WHERE x.rule_id = r.rule_id AND o.opportunity_id = x.opportunity_id
                        RETURNING o.manager)
                    SELECT n_over + count(*) FILTER (WHERE upd.manager IS NULL) INTO n_over FROM upd;
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
            rule_error := format('%s (SQLSTATE %s)', err, state);
            n_gen := 0; n_ctl := 0; n_over := 0; made := NULL;
            PERFORM set_config('enable_nestloop', nest_loop, true);
            PERFORM set_config('enable_mergejoin', merge_join, true);
            RAISE WARNING 'opportunity rule "%" made nothing: %', r.name, rule_error
                USING HINT = 'The error is kept in segment.generation.error; the other rules were generated.';
        END;

        -- what this rule made counts against the cap for the next rules
        IF cp.subject_id IS NOT NULL AND made IS NOT NULL THEN
            FOR i IN REVERSE cp.max_contacts .. 2 LOOP
                IF levels[i - 1] IS NOT NULL THEN
                    levels[i] := coalesce(levels[i], segment.memberset('{}'::int8[]))
                                 OPERATOR(segment.|) (levels[i - 1] OPERATOR(segment.&) made);
                END IF;
            END LOOP;
            levels[1] := CASE WHEN levels[1] IS NULL THEN made ELSE levels[1] OPERATOR(segment.|) made END;
        END IF;

        INSERT INTO segment.generation (rule_id, period, started_at, candidates, generated, control,
                                        skipped_cooldown, skipped_cap, over_capacity, failed, error)
        VALUES (r.rule_id, as_of, started, n_aud, n_gen, n_ctl, n_aud - n_after_cool, n_cap,
                n_over, n_failed, rule_error);
        rule_name := r.name; candidates := n_aud; generated := n_gen; control := n_ctl;
        skipped_cooldown := n_aud - n_after_cool; skipped_cap := n_cap;
        over_capacity := n_over; failed := n_failed;
        RETURN NEXT;
    END LOOP;
END $$;

-- The message of a rule for one customer, as generate() would render it,
-- under governance's checks (part 13).
CREATE FUNCTION segment.render(rule name, key text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r segment.opportunity_rule := segment_internal._opportunity_rule(rule);
    s segment.subject;
    msg text;
    masked text;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    IF r.template_sql IS NULL THEN
        RETURN NULL;
    END IF;
    -- governance: the customer must be in the caller's scope, and personal
    -- columns are masked for a role without segment_exporter
    PERFORM segment_internal._check_customer(s.subject_id, key);
    SELECT string_agg(CASE WHEN m.column_name IS NULL THEN format('t0.%I', a.attname)
                           ELSE format('segment.mask(t0.%I::text) AS %I', a.attname, a.attname) END,
                      ', ' ORDER BY a.attnum)
      INTO masked
      FROM pg_attribute a
      LEFT JOIN segment.column_sensitivity m
        ON m.subject_id = s.subject_id AND m.column_name = a.attname AND segment_internal._masks_pii()
     WHERE a.attrelid = s.relation AND a.attnum > 0 AND NOT a.attisdropped;
    -- a snapshot subject: the row of the snapshot the current state holds
    EXECUTE format('SELECT %s FROM (SELECT %s FROM %s t0 WHERE t0.%I::text = $1%s) t',
                   r.template_sql, masked, s.relation, s.key_column,
                   segment_internal._snapshot_filter(s.subject_id, 't0'))
       INTO msg USING key;
    RETURN msg;
END $$;
COMMENT ON FUNCTION segment.render(name, text) IS
    'the message an opportunity rule renders for one customer (a preview of its template)';
