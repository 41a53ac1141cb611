-- segment install script, part 84: generating opportunities (issue 4,
-- parts 2-6). Set-based: the candidates of each rule come from its
-- audience's member set (no rescan of the rules), minus the members in
-- cool-down (a member set of the rule's recent opportunities); one join with
-- the subject's table fetches key, owner, org unit and renders the message;
-- the contact cap, assignment and the insert are one statement each over a
-- temporary table. docs/opportunities.md explains the policy; the order of
-- the steps is part of it:
--   audience -> cool-down -> render (failures recorded) -> contact cap
--   (priority wins) -> control group -> owner -> org unit -> pool.

-- Control membership: a fixed hash of (rule, member, period), so reruns and
-- back-fills agree. 10,000 buckets: holdout_pct has two decimals of effect.
CREATE FUNCTION segment._in_control(rule_id int, member_id int8, period date, holdout_pct numeric)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT abs(hashint8extended(member_id, rule_id::int8 * 1000003 + (period - date '2000-01-01')) % 10000)
           < holdout_pct * 100
$$;
COMMENT ON FUNCTION segment._in_control(int, int8, date, numeric) IS
    'whether a candidate falls in the control group of a rule for a period (deterministic)';

-- The staff of a subject as a temporary table _seg_staff(manager, org,
-- capacity, active, load): load is what each manager already has for the day.
CREATE FUNCTION segment._load_staff(sid int, as_of date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE st segment.staff;
BEGIN
    IF to_regclass('pg_temp._seg_staff') IS NULL THEN
        CREATE TEMP TABLE _seg_staff (manager text PRIMARY KEY, org text, capacity int,
                                      active boolean, load int NOT NULL DEFAULT 0) ON COMMIT DROP;
    ELSE
        TRUNCATE pg_temp._seg_staff;
    END IF;
    SELECT * INTO st FROM segment.staff f WHERE f.subject_id = sid;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    EXECUTE format('INSERT INTO pg_temp._seg_staff (manager, org, capacity, active)
                    SELECT DISTINCT ON (m.%1$I::text) m.%1$I::text, m.%2$I::text, %3$s, %4$s
                      FROM %5$s m WHERE m.%1$I IS NOT NULL ORDER BY m.%1$I::text',
                   st.manager_column, st.org_column,
                   CASE WHEN st.capacity_column IS NULL THEN 'NULL::int'
                        ELSE format('m.%I', st.capacity_column) END,
                   CASE WHEN st.active_column IS NULL THEN 'true'
                        ELSE format('coalesce(m.%I, false)', st.active_column) END,
                   st.relation);
    UPDATE pg_temp._seg_staff f SET load = x.n
      FROM (SELECT o.manager, count(*) AS n FROM segment.opportunity o
             WHERE o.subject_id = sid AND o.period = as_of AND o.manager IS NOT NULL
             GROUP BY o.manager) x
     WHERE x.manager = f.manager;
    RETURN true;
END $$;

-- Generates the opportunities of some rules of one subject for one day.
-- members: restrict candidates to these members (event-triggered generation).
-- The caller holds the subject's generation lock.
CREATE FUNCTION segment._generate(sid int, rule_ids int[], as_of date,
                                  members segment.memberset DEFAULT NULL, source text DEFAULT 'batch')
RETURNS TABLE (rule_name name, candidates bigint, generated bigint, control bigint,
               skipped_cooldown bigint, skipped_cap bigint, over_capacity bigint, failed bigint)
LANGUAGE plpgsql AS $$
DECLARE
    s segment.subject;
    cp segment.contact_policy;
    r segment.opportunity_rule;
    started timestamptz := clock_timestamp();
    aud segment.memberset;
    recent segment.memberset;
    n_aud int8;
    int_keys boolean;
    key_join text;
    key_expr text;
    insert_sql text;
    has_staff boolean;
    c record;
    err text;
    state text;
    merge_join text := current_setting('enable_mergejoin');
    nest_loop text := current_setting('enable_nestloop');
    jit_on text := current_setting('jit');
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
    key_expr := format('t.%I::text', s.key_column);

    -- work tables live until the end of the transaction (a second call in
    -- the same transaction empties them)
    IF to_regclass('pg_temp._seg_cand') IS NULL THEN
        CREATE TEMP TABLE _seg_cand (
            rule_id int NOT NULL, member_id int8 NOT NULL, key text, priority numeric,
            is_control boolean, owner text, org text, message text, error text, sqlstate text,
            manager text, assignment text, pool_reason text) ON COMMIT DROP;
        CREATE TEMP TABLE _seg_count (rule_id int PRIMARY KEY, candidates int8 NOT NULL,
            skipped_cooldown int8 NOT NULL, skipped_cap int8 NOT NULL DEFAULT 0,
            failed int8 NOT NULL DEFAULT 0) ON COMMIT DROP;
    ELSE
        TRUNCATE pg_temp._seg_cand, pg_temp._seg_count;
    END IF;

    -- 1. candidates per rule: audience minus cool-down, joined with the table
    FOR r IN SELECT * FROM segment.opportunity_rule x WHERE x.rule_id = ANY (rule_ids)
              ORDER BY x.priority DESC, x.rule_id
    LOOP
        aud := segment.audience(s.name, r.audience);
        IF members IS NOT NULL THEN
            aud := aud OPERATOR(segment.&) members;
        END IF;
        n_aud := segment.cardinality(aud);
        IF members IS NULL THEN
            SELECT segment.memberset_agg(o.member_id) INTO recent FROM segment.opportunity o
             WHERE o.rule_id = r.rule_id
               AND o.period > as_of - greatest(r.cooldown_days, 1)
               AND o.period < as_of + greatest(r.cooldown_days, 1);
        ELSE
            -- a few members (an event): look up just them, not the rule's
            -- whole window (unique index on rule, member, period)
            SELECT segment.memberset_agg(o.member_id) INTO recent FROM segment.opportunity o
             WHERE o.rule_id = r.rule_id AND o.member_id = ANY (segment.to_array(aud))
               AND o.period > as_of - greatest(r.cooldown_days, 1)
               AND o.period < as_of + greatest(r.cooldown_days, 1);
        END IF;
        IF recent IS NOT NULL THEN
            aud := aud OPERATOR(segment.-) recent;
        END IF;
        INSERT INTO pg_temp._seg_count (rule_id, candidates, skipped_cooldown)
        VALUES (r.rule_id, n_aud, n_aud - segment.cardinality(aud));
        CONTINUE WHEN segment.is_empty(aud);
        insert_sql := format(
            'INSERT INTO pg_temp._seg_cand (rule_id, member_id, key, priority, is_control, owner, org, message)
             SELECT %s, m.id, %s, %s, segment._in_control(%s, m.id, $2, %s), %s, %s, %%s
               FROM segment.member_ids($1) m(id) %s %s',
            r.rule_id, key_expr,
            CASE WHEN r.priority_scorecard IS NULL THEN r.priority::text
                 ELSE format('%s + coalesce(sc.score, 0)', r.priority) END,
            r.rule_id, r.holdout_pct,
            CASE WHEN s.owner_column IS NULL THEN 'NULL' ELSE format('t.%I::text', s.owner_column) END,
            CASE WHEN s.org_column IS NULL THEN 'NULL' ELSE format('t.%I::text', s.org_column) END,
            key_join,
            CASE WHEN r.priority_scorecard IS NULL THEN ''
                 ELSE format('LEFT JOIN (SELECT x.score, segment.member_ids(x.members) AS id
                                           FROM segment.score_state x WHERE x.scorecard_id = %s) sc
                                     ON sc.id = m.id', r.priority_scorecard) END);
        BEGIN
            EXECUTE format(insert_sql, coalesce(r.template_sql, 'NULL')) USING aud, as_of;
        EXCEPTION WHEN OTHERS THEN
            IF r.template_sql IS NULL THEN
                RAISE;
            END IF;
            -- a value that does not render: insert without messages, then
            -- render customer by customer and record the ones that fail
            EXECUTE format(insert_sql, 'NULL') USING aud, as_of;
            FOR c IN SELECT x.ctid AS tid, x.member_id FROM pg_temp._seg_cand x
                      WHERE x.rule_id = r.rule_id
            LOOP
                BEGIN
                    EXECUTE format('UPDATE pg_temp._seg_cand x SET message = %s
                                      FROM (SELECT $1 AS id) m %s WHERE x.ctid = $2',
                                   r.template_sql, key_join)
                    USING c.member_id, c.tid;
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
                    UPDATE pg_temp._seg_cand x SET error = err, sqlstate = state WHERE x.ctid = c.tid;
                END;
            END LOOP;
        END;
    END LOOP;

    -- the work table has no statistics yet; without them every join below
    -- is planned for one row
    ANALYZE pg_temp._seg_cand;

    -- failures are recorded and leave the run
    WITH f AS (DELETE FROM pg_temp._seg_cand x WHERE x.error IS NOT NULL
               RETURNING x.rule_id, x.member_id, x.key, x.error, x.sqlstate),
         ins AS (INSERT INTO segment.generation_failure (rule_id, member_id, key, period, error, sqlstate)
                 SELECT f.rule_id, f.member_id, f.key, as_of, f.error, f.sqlstate FROM f
                 RETURNING generation_failure.rule_id)
    UPDATE pg_temp._seg_count k SET failed = x.n
      FROM (SELECT ins.rule_id, count(*) AS n FROM ins GROUP BY ins.rule_id) x
     WHERE x.rule_id = k.rule_id;

    -- 2. contact cap: per customer, existing opportunities of the window plus
    -- the new ones in priority order; the ones past the cap are skipped
    IF cp.subject_id IS NOT NULL THEN
        WITH e AS (SELECT o.member_id, count(*) AS n FROM segment.opportunity o
                    WHERE o.subject_id = sid AND o.period > as_of - cp.period_days
                      AND o.period <= as_of
                      AND o.member_id IN (SELECT x.member_id FROM pg_temp._seg_cand x)
                    GROUP BY o.member_id),
             ranked AS (SELECT x.ctid AS tid,
                               row_number() OVER (PARTITION BY x.member_id
                                                  ORDER BY x.priority DESC, x.rule_id)
                               + coalesce(e.n, 0) AS total
                          FROM pg_temp._seg_cand x LEFT JOIN e USING (member_id)),
             d AS (DELETE FROM pg_temp._seg_cand x USING ranked
                    WHERE x.ctid = ranked.tid AND ranked.total > cp.max_contacts
                   RETURNING x.rule_id)
        UPDATE pg_temp._seg_count k SET skipped_cap = x.n
          FROM (SELECT d.rule_id, count(*) AS n FROM d GROUP BY d.rule_id) x
         WHERE x.rule_id = k.rule_id;
    END IF;

    -- 3. assignment of the treatment group
    UPDATE pg_temp._seg_cand x SET assignment = 'control' WHERE x.is_control;
    has_staff := segment._load_staff(sid, as_of);
    ANALYZE pg_temp._seg_staff;
    IF has_staff THEN
        -- the owner, in priority order, within the rule's and the manager's capacity
        WITH o AS (SELECT x.ctid AS tid, x.owner, x.rule_id, x.priority, x.member_id,
                          row_number() OVER (PARTITION BY x.owner, x.rule_id
                                             ORDER BY x.priority DESC, x.member_id) AS rank_rule
                     FROM pg_temp._seg_cand x
                     JOIN segment.opportunity_rule rr ON rr.rule_id = x.rule_id AND rr.assignment = 'owner'
                     JOIN pg_temp._seg_staff f ON f.manager = x.owner AND f.active
                    WHERE NOT x.is_control),
             used AS (SELECT o2.manager, o2.rule_id, count(*) AS n FROM segment.opportunity o2
                       WHERE o2.subject_id = sid AND o2.period = as_of AND o2.manager IS NOT NULL
                       GROUP BY o2.manager, o2.rule_id),
             within_rule AS (SELECT o.* FROM o
                               JOIN segment.opportunity_rule rr ON rr.rule_id = o.rule_id
                               LEFT JOIN used u ON u.manager = o.owner AND u.rule_id = o.rule_id
                              WHERE rr.capacity IS NULL OR o.rank_rule <= rr.capacity - coalesce(u.n, 0)),
             ranked AS (SELECT w.tid, w.owner,
                               row_number() OVER (PARTITION BY w.owner
                                                  ORDER BY w.priority DESC, w.rule_id, w.member_id) AS rank_all
                          FROM within_rule w)
        UPDATE pg_temp._seg_cand x SET manager = k.owner, assignment = 'owner'
          FROM ranked k JOIN pg_temp._seg_staff f ON f.manager = k.owner
         WHERE x.ctid = k.tid AND (f.capacity IS NULL OR k.rank_all <= f.capacity - f.load);
        UPDATE pg_temp._seg_staff f SET load = f.load + x.n
          FROM (SELECT y.manager, count(*) AS n FROM pg_temp._seg_cand y
                 WHERE y.manager IS NOT NULL GROUP BY y.manager) x
         WHERE x.manager = f.manager;

        -- the org unit: least-loaded active manager first (ties: manager id),
        -- rule by rule in priority order. A manager with room for k more
        -- offers slots at load+1 .. load+k; the i-th candidate of the unit
        -- takes the i-th lowest slot, which is what assigning one at a time to
        -- the least-loaded manager gives.
        -- candidates meet slots on (org, i): a hash join. The slot count is
        -- overestimated (generate_series), and a merge join on org alone
        -- would compare every candidate with every slot of its unit.
        PERFORM set_config('enable_mergejoin', 'off', true);
        PERFORM set_config('enable_nestloop', 'off', true);
        -- the disabled nested loop (the lateral generate_series needs one)
        -- costs 1e10, which would JIT-compile every statement of the loop:
        -- half a second each, for a few rows
        PERFORM set_config('jit', 'off', true);
        FOR r IN SELECT * FROM segment.opportunity_rule x
                  WHERE x.rule_id = ANY (rule_ids) AND x.assignment IN ('owner', 'org')
                  ORDER BY x.priority DESC, x.rule_id
        LOOP
            WITH cand AS (SELECT x.ctid AS tid, x.org,
                              row_number() OVER (PARTITION BY x.org
                                                 ORDER BY x.priority DESC, x.member_id) AS i,
                              count(*) OVER (PARTITION BY x.org) AS n
                         FROM pg_temp._seg_cand x
                        WHERE x.rule_id = r.rule_id AND NOT x.is_control
                          AND x.manager IS NULL AND x.org IS NOT NULL),
                 units AS (SELECT DISTINCT cand.org, cand.n FROM cand),
                 used AS (SELECT u.manager, count(*) AS n
                            FROM (SELECT o.manager FROM segment.opportunity o
                                   WHERE o.rule_id = r.rule_id AND o.period = as_of AND o.manager IS NOT NULL
                                  UNION ALL
                                  SELECT y.manager FROM pg_temp._seg_cand y
                                   WHERE y.rule_id = r.rule_id AND y.manager IS NOT NULL) u
                           GROUP BY u.manager),
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
            UPDATE pg_temp._seg_cand x SET manager = slots.manager, assignment = 'org'
              FROM cand JOIN slots ON slots.org = cand.org AND slots.i = cand.i
             WHERE x.ctid = cand.tid;
            UPDATE pg_temp._seg_staff f SET load = x.n
              FROM (SELECT y.manager, count(*) AS n
                      FROM (SELECT o.manager FROM segment.opportunity o
                             WHERE o.subject_id = sid AND o.period = as_of AND o.manager IS NOT NULL
                            UNION ALL
                            SELECT y2.manager FROM pg_temp._seg_cand y2 WHERE y2.manager IS NOT NULL) y
                     GROUP BY y.manager) x
             WHERE x.manager = f.manager;
        END LOOP;
        PERFORM set_config('enable_mergejoin', merge_join, true);
        PERFORM set_config('enable_nestloop', nest_loop, true);
        PERFORM set_config('jit', jit_on, true);
    END IF;

    -- the rest goes to the pool, with the reason
    UPDATE pg_temp._seg_cand x
       SET assignment = 'pool',
           pool_reason = CASE
               WHEN rr.assignment = 'pool' THEN 'rule assigns to the pool'
               WHEN NOT has_staff THEN 'no staff table'
               WHEN EXISTS (SELECT 1 FROM pg_temp._seg_staff f
                             WHERE f.active AND ((rr.assignment = 'owner' AND f.manager = x.owner)
                                                 OR f.org = x.org))
                   THEN 'managers at capacity'
               WHEN x.owner IS NULL AND x.org IS NULL THEN 'no owner and no org unit'
               ELSE 'no active manager for the customer' END
      FROM segment.opportunity_rule rr
     WHERE rr.rule_id = x.rule_id AND x.manager IS NULL AND NOT x.is_control;

    -- 4. insert; the unique (rule, member, period) is the last guard
    RETURN QUERY
    WITH ins AS (
        INSERT INTO segment.opportunity AS o
            (rule_id, rule_version, subject_id, member_id, key, period, valid_until, is_control,
             priority, message, org_unit, manager, assignment, pool_reason, source)
        SELECT x.rule_id, rr.version, sid, x.member_id, x.key, as_of, as_of + rr.valid_days - 1,
               x.is_control, x.priority, x.message, x.org, x.manager, x.assignment,
               x.pool_reason, _generate.source
          FROM pg_temp._seg_cand x JOIN segment.opportunity_rule rr USING (rule_id)
        ON CONFLICT (rule_id, member_id, period) DO NOTHING
        RETURNING o.rule_id, o.is_control, o.pool_reason),
         made AS (SELECT ins.rule_id,
                         count(*) FILTER (WHERE NOT ins.is_control) AS generated,
                         count(*) FILTER (WHERE ins.is_control) AS control,
                         count(*) FILTER (WHERE ins.pool_reason = 'managers at capacity') AS over_capacity
                    FROM ins GROUP BY ins.rule_id),
         logged AS (
        INSERT INTO segment.generation AS g (rule_id, period, started_at, candidates, generated, control,
                                             skipped_cooldown, skipped_cap, over_capacity, failed)
        SELECT k.rule_id, as_of, started, k.candidates, coalesce(m.generated, 0), coalesce(m.control, 0),
               k.skipped_cooldown, k.skipped_cap, coalesce(m.over_capacity, 0), k.failed
          FROM pg_temp._seg_count k LEFT JOIN made m USING (rule_id)
        RETURNING g.*)
    SELECT rr.name, l.candidates, l.generated, l.control, l.skipped_cooldown, l.skipped_cap,
           l.over_capacity, l.failed
      FROM logged l JOIN segment.opportunity_rule rr USING (rule_id)
     ORDER BY rr.name;
END $$;

CREATE FUNCTION segment.generate(rule name DEFAULT NULL, as_of date DEFAULT current_date)
RETURNS TABLE (rule_name name, candidates bigint, generated bigint, control bigint,
               skipped_cooldown bigint, skipped_cap bigint, over_capacity bigint, failed bigint)
LANGUAGE plpgsql AS $$
DECLARE
    one segment.opportunity_rule;
    g record;
BEGIN
    as_of := coalesce(as_of, current_date);
    IF rule IS NOT NULL THEN
        one := segment._opportunity_rule(rule);
        IF NOT one.active THEN
            RAISE EXCEPTION 'opportunity rule "%" is not active', rule
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Activate it with segment.alter_opportunity_rule(name => ..., active => true).';
        END IF;
        -- an event or entry rule's audience is who may get the lead when the
        -- event happens: a batch run would give it to all of them (part 85)
        IF segment._is_triggered(one.rule_id) THEN
            RAISE EXCEPTION 'opportunity rule "%" is made by events or audience entries, not by batch generation', rule
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'See segment.event_rule and segment.entry_rule; detach it to generate it in batch.';
        END IF;
    END IF;
    FOR g IN SELECT x.subject_id, array_agg(x.rule_id ORDER BY x.rule_id) AS ids
               FROM segment.opportunity_rule x
              WHERE x.active AND (one.rule_id IS NULL OR x.rule_id = one.rule_id)
                AND NOT segment._is_triggered(x.rule_id)
              GROUP BY x.subject_id ORDER BY x.subject_id
    LOOP
        -- one generation per subject at a time: the second waits, then sees
        -- what the first made (cool-down and the unique key keep it from
        -- making it twice)
        PERFORM pg_advisory_xact_lock(24175, g.subject_id);
        RETURN QUERY SELECT * FROM segment._generate(g.subject_id, g.ids, as_of);
    END LOOP;
END $$;
COMMENT ON FUNCTION segment.generate(name, date) IS
    'generates the opportunities of one rule (NULL: every active rule) for a day; idempotent';

-- The message of a rule for one customer, as generate() would render it.
CREATE FUNCTION segment.render(rule name, key text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r segment.opportunity_rule := segment._opportunity_rule(rule);
    s segment.subject;
    msg text;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    IF r.template_sql IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT %s FROM %s t WHERE t.%I::text = $1', r.template_sql, s.relation, s.key_column)
       INTO msg USING key;
    RETURN msg;
END $$;
COMMENT ON FUNCTION segment.render(name, text) IS
    'the message an opportunity rule renders for one customer (a preview of its template)';
