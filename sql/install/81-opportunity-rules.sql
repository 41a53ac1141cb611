-- segment install script, part 81: defining opportunity rules
-- (docs/opportunities.md): staff, contact policy, message templates and the rules
-- themselves. Generation is part 84, the lifecycle part 82.

-- The staff table of a subject: who can be assigned its leads.
CREATE FUNCTION segment.register_staff(subject name, relation regclass, manager_column name,
                                       org_column name, capacity_column name DEFAULT NULL,
                                       active_column name DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
    col name;
    typ regtype;
BEGIN
    IF relation IS NULL OR manager_column IS NULL OR org_column IS NULL THEN
        RAISE EXCEPTION 'relation, manager_column and org_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT has_table_privilege(relation, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', relation
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Generation reads the staff table: it must be readable by you.';
    END IF;
    FOREACH col IN ARRAY ARRAY[manager_column, org_column, capacity_column, active_column] LOOP
        CONTINUE WHEN col IS NULL;
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
         WHERE a.attrelid = relation AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS NULL THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, relation
                USING ERRCODE = 'undefined_column';
        END IF;
        IF col = capacity_column AND typ NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN
            RAISE EXCEPTION 'capacity column "%" has type %, not an integer', col, typ
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'The capacity column holds how many leads a manager can take per day.';
        END IF;
        IF col = active_column AND typ <> 'bool'::regtype THEN
            RAISE EXCEPTION 'active column "%" has type %, not boolean', col, typ
                USING ERRCODE = 'datatype_mismatch';
        END IF;
    END LOOP;
    INSERT INTO segment.staff AS s (subject_id, relation, manager_column, org_column,
                                    capacity_column, active_column)
    VALUES (sid, relation, manager_column, org_column, capacity_column, active_column)
    ON CONFLICT (subject_id) DO UPDATE
       SET relation = excluded.relation, manager_column = excluded.manager_column,
           org_column = excluded.org_column, capacity_column = excluded.capacity_column,
           active_column = excluded.active_column;
END $$;
COMMENT ON FUNCTION segment.register_staff(name, regclass, name, name, name, name) IS
    'names the table of relationship managers (manager, org unit, daily capacity, active) that leads are assigned to';

CREATE FUNCTION segment.set_contact_policy(subject name, max_contacts int, period_days int DEFAULT 30)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE sid int := segment_internal._subject_id(subject);
BEGIN
    IF max_contacts IS NULL THEN
        DELETE FROM segment.contact_policy p WHERE p.subject_id = sid;
        RETURN;
    END IF;
    IF max_contacts < 1 OR period_days IS NULL OR period_days < 1 THEN
        RAISE EXCEPTION 'contact policy needs max_contacts >= 1 and period_days >= 1, got % and %',
                        max_contacts, period_days
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass max_contacts => NULL to remove the policy.';
    END IF;
    INSERT INTO segment.contact_policy AS p (subject_id, max_contacts, period_days)
    VALUES (sid, max_contacts, period_days)
    ON CONFLICT (subject_id) DO UPDATE
       SET max_contacts = excluded.max_contacts, period_days = excluded.period_days,
           updated_at = now(), updated_by = current_user;
END $$;
COMMENT ON FUNCTION segment.set_contact_policy(name, int, int) IS
    'at most max_contacts opportunities per customer in any period_days days, across all rules (NULL removes it)';

-- Masks a sensitive value for display to managers (src/mask.c): a value
-- with 7 or more digits (phone, id or card number) keeps its first 3 and last
-- 4 characters; an e-mail keeps the first character of its local part and the
-- domain; anything else (a name) keeps its first character.
CREATE FUNCTION segment.mask(value text) RETURNS text
    AS 'MODULE_PATHNAME', 'segment_mask' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment.mask(text) IS
    'masks a phone/id number (138****5678), an e-mail (a***@x.com) or a name (first character kept)';

-- Compiles a message template to a SQL expression over row alias "t" of the
-- subject's table. {column} or {column|format}; {{ and }} are literal braces.
-- Formats: mask, date, date:<to_char pattern>, amount, integer, upper, lower.
-- A NULL value renders as the empty string. Errors carry the position.
CREATE FUNCTION segment_internal._compile_template(rel regclass, template text, what text,
                                          OUT sql text, OUT columns name[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    i int := 1;
    n int := length(template);
    ch text;
    lit text := '';
    parts text[] := '{}';
    close_at int;
    ph text;
    col text;
    fmt text;
    arg text;
    typ regtype;
    expr text;
    numeric_types regtype[] := '{int2,int4,int8,numeric,float4,float8,money}';
    date_types regtype[] := '{date,timestamp,timestamptz}';
    text_types regtype[] := '{text,varchar,bpchar}';
BEGIN
    columns := '{}';
    WHILE i <= n LOOP
        ch := substr(template, i, 1);
        IF ch = '{' AND substr(template, i + 1, 1) = '{' THEN
            lit := lit || '{'; i := i + 2; CONTINUE;
        ELSIF ch = '}' AND substr(template, i + 1, 1) = '}' THEN
            lit := lit || '}'; i := i + 2; CONTINUE;
        ELSIF ch = '}' THEN
            RAISE EXCEPTION 'unmatched "}" in the template of %', what
                USING ERRCODE = 'syntax_error',
                      DETAIL = format('At character %s of %L.', i, template),
                      HINT = 'Write }} for a literal brace.';
        ELSIF ch <> '{' THEN
            lit := lit || ch; i := i + 1; CONTINUE;
        END IF;
        close_at := position('}' IN substr(template, i + 1));
        IF close_at = 0 THEN
            RAISE EXCEPTION 'unterminated placeholder in the template of %', what
                USING ERRCODE = 'syntax_error',
                      DETAIL = format('The "{" at character %s of %L has no closing "}".', i, template),
                      HINT = 'Write {column} or {column|format}; {{ for a literal brace.';
        END IF;
        ph := substr(template, i + 1, close_at - 1);
        col := btrim(split_part(ph, '|', 1));
        fmt := nullif(btrim(substr(ph, length(split_part(ph, '|', 1)) + 2)), '');
        arg := NULL;
        IF fmt LIKE '%:%' THEN
            arg := substr(fmt, position(':' IN fmt) + 1);
            fmt := btrim(split_part(fmt, ':', 1));
        END IF;
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS NULL THEN
            RAISE EXCEPTION 'unknown placeholder {%} in the template of %', ph, what
                USING ERRCODE = 'undefined_column',
                      DETAIL = format('%s has no column "%s" (character %s of the template).', rel, col, i),
                      HINT = 'Placeholders name columns of the subject''s table, e.g. {customer_name|mask}.';
        END IF;
        expr := format('t.%I', col);
        IF fmt IS NULL THEN
            expr := expr || '::text';
        ELSIF fmt = 'mask' AND arg IS NULL THEN
            expr := format('segment.mask(%s::text)', expr);
        ELSIF fmt IN ('upper', 'lower') AND arg IS NULL THEN
            expr := format('%s(%s::text)', fmt, expr);
        ELSIF fmt = 'date' AND (typ = ANY (date_types) OR typ = ANY (text_types)) THEN
            -- a text column is cast: a value that is not a date fails for that
            -- customer only (recorded by generate as a failure)
            expr := format('to_char(%s::%s, %L)', expr,
                           CASE WHEN typ = ANY (text_types) THEN 'date' ELSE typ::text END,
                           coalesce(arg, 'YYYY-MM-DD'));
        ELSIF fmt IN ('amount', 'integer') AND arg IS NULL
              AND (typ = ANY (numeric_types) OR typ = ANY (text_types)) THEN
            expr := format('to_char(%s::numeric, %L)', expr,
                           CASE fmt WHEN 'amount' THEN 'FM999,999,999,999,990.00'
                                    ELSE 'FM999,999,999,999,990' END);
        ELSIF fmt IN ('mask', 'date', 'amount', 'integer', 'upper', 'lower') THEN
            RAISE EXCEPTION 'format "%" does not apply to column "%" of type % in the template of %',
                            ph, col, typ, what
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'date takes date, timestamp or text columns, optionally date:<to_char pattern>; '
                             'amount and integer take numbers or text; mask, upper and lower take anything, without an argument.';
        ELSE
            RAISE EXCEPTION 'unknown format "%" in placeholder {%} of the template of %', fmt, ph, what
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Formats: mask, date, date:<to_char pattern>, amount, integer, upper, lower.';
        END IF;
        IF lit <> '' THEN
            parts := parts || quote_literal(lit);
            lit := '';
        END IF;
        parts := parts || expr;
        IF NOT col = ANY (columns) THEN
            columns := columns || col::name;
        END IF;
        i := i + close_at + 1;
    END LOOP;
    IF lit <> '' THEN
        parts := parts || quote_literal(lit);
    END IF;
    sql := CASE cardinality(parts) WHEN 0 THEN quote_literal('')
                                   ELSE 'concat(' || array_to_string(parts, ', ') || ')' END;
END $$;

CREATE FUNCTION segment_internal._opportunity_rule(rule name, for_update boolean DEFAULT false)
RETURNS segment.opportunity_rule LANGUAGE plpgsql AS $$
DECLARE r segment.opportunity_rule;
BEGIN
    IF for_update THEN
        SELECT * INTO r FROM segment.opportunity_rule x WHERE x.name = rule FOR UPDATE;
    ELSE
        SELECT * INTO r FROM segment.opportunity_rule x WHERE x.name = rule;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'opportunity rule "%" does not exist', rule
            USING ERRCODE = 'undefined_object',
                  HINT = 'Rules are listed in segment.opportunity_rule.';
    END IF;
    RETURN r;
END $$;

CREATE FUNCTION segment_internal._opportunity_rule_definition(r segment.opportunity_rule) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'audience', r.audience, 'kind', r.kind, 'product', r.product, 'channel', r.channel,
        'priority', r.priority,
        'priority_scorecard', (SELECT c.name FROM segment.scorecard c WHERE c.scorecard_id = r.priority_scorecard),
        'template', r.template, 'valid_days', r.valid_days, 'cooldown_days', r.cooldown_days,
        'holdout_pct', r.holdout_pct, 'goal', r.goal, 'assignment', r.assignment,
        'capacity', r.capacity, 'description', r.description, 'active', r.active)
$$;

-- Validates a rule as it would be after a create or alter and fills in the
-- derived columns (template_sql, template_columns, goal_columns, ...).
-- Raises on the first bad parameter; changes nothing.
CREATE FUNCTION segment_internal._check_opportunity_rule(r segment.opportunity_rule, scorecard name)
RETURNS segment.opportunity_rule LANGUAGE plpgsql AS $$
DECLARE
    s segment.subject;
    what text := format('opportunity rule "%s"', r.name);
    t record;
BEGIN
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = r.subject_id;
    IF r.audience IS NULL OR btrim(r.audience) = '' THEN
        RAISE EXCEPTION 'the audience of % must not be empty', what
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'An audience combines tags, segments and scheme buckets, e.g. ''payroll and not has_wealth''.';
    END IF;
    PERFORM segment_internal._audience_check(s.name, r.audience);
    IF r.kind IS NULL OR r.kind NOT IN ('maintenance', 'mining') THEN
        RAISE EXCEPTION 'kind of % must be ''maintenance'' or ''mining'', got %', what, coalesce(quote_literal(r.kind), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'maintenance keeps existing business (a maturing deposit); mining surfaces a new need.';
    END IF;
    IF r.product IS NULL OR btrim(r.product) = '' THEN
        RAISE EXCEPTION 'product of % must not be empty', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF r.channel IS NULL OR btrim(r.channel) = '' THEN
        RAISE EXCEPTION 'channel of % must not be empty', what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF r.priority IS NULL OR r.priority IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric) THEN
        RAISE EXCEPTION 'priority of % must be a finite number', what USING ERRCODE = 'invalid_parameter_value';
    END IF;
    r.priority_scorecard := NULL;
    IF scorecard IS NOT NULL THEN
        SELECT c.scorecard_id INTO r.priority_scorecard FROM segment.scorecard c
         WHERE c.name = scorecard AND c.subject_id = r.subject_id;
        IF r.priority_scorecard IS NULL THEN
            RAISE EXCEPTION 'scorecard "%" of subject "%" does not exist', scorecard, s.name
                USING ERRCODE = 'undefined_object',
                      HINT = 'priority_scorecard names a scorecard whose score ranks the candidates.';
        END IF;
    END IF;
    IF r.valid_days IS NULL OR r.valid_days < 1 OR r.valid_days > 3660 THEN
        RAISE EXCEPTION 'valid_days of % must be between 1 and 3660, got %', what, r.valid_days
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'valid_days is how many days a manager has to act, counting the day it is generated.';
    END IF;
    IF r.cooldown_days IS NULL OR r.cooldown_days < 0 OR r.cooldown_days > 3660 THEN
        RAISE EXCEPTION 'cooldown_days of % must be between 0 and 3660, got %', what, r.cooldown_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF r.holdout_pct IS NULL OR NOT (r.holdout_pct >= 0 AND r.holdout_pct <= 50) THEN
        RAISE EXCEPTION 'holdout_pct of % must be between 0 and 50, got %', what, r.holdout_pct
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'holdout_pct is the percentage of candidates kept as a control group.';
    END IF;
    IF r.assignment IS NULL OR r.assignment NOT IN ('owner', 'org', 'pool') THEN
        RAISE EXCEPTION 'assignment of % must be ''owner'', ''org'' or ''pool'', got %', what,
                        coalesce(quote_literal(r.assignment), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'owner: the customer''s manager, else the least-loaded manager of the org unit, else the pool; org: skip the owner; pool: unassigned.';
    END IF;
    IF r.assignment IN ('owner', 'org') THEN
        IF NOT EXISTS (SELECT 1 FROM segment.staff f WHERE f.subject_id = r.subject_id) THEN
            RAISE EXCEPTION 'assignment ''%'' of % needs the staff table of subject "%"', r.assignment, what, s.name
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Call segment.register_staff() first, or use assignment => ''pool''.';
        END IF;
        IF r.assignment = 'owner' AND s.owner_column IS NULL AND s.org_column IS NULL THEN
            RAISE EXCEPTION 'assignment ''owner'' of % needs an owner or org column on subject "%"', what, s.name
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Register the subject with owner_column and org_column, or use assignment => ''pool''.';
        END IF;
        IF r.assignment = 'org' AND s.org_column IS NULL THEN
            RAISE EXCEPTION 'assignment ''org'' of % needs an org column on subject "%"', what, s.name
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Register the subject with org_column, or use assignment => ''pool''.';
        END IF;
    END IF;
    IF r.capacity < 0 THEN
        RAISE EXCEPTION 'capacity of % must not be negative, got %', what, r.capacity
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'capacity is how many leads of this rule one manager gets per day; NULL: no limit of the rule.';
    END IF;
    r.goal := nullif(btrim(r.goal), '');
    r.goal_columns := '{}';
    IF r.goal IS NOT NULL THEN
        r.goal_columns := segment_internal._rule_columns(s.relation, r.goal, 'goal of ' || what);
        r.goal := segment_internal._rule_canonical(s.relation, r.goal);
    END IF;
    r.goal_column_types := segment_internal._column_types(s.relation, r.goal_columns);
    r.template := nullif(r.template, '');
    r.template_sql := NULL;
    r.template_columns := '{}';
    IF r.template IS NOT NULL THEN
        SELECT x.sql, x.columns INTO t FROM segment_internal._compile_template(s.relation, r.template, what) x;
        r.template_sql := t.sql;
        r.template_columns := t.columns;
        -- a template shows column values: only columns its author may read
        SELECT c.col INTO t FROM unnest(r.template_columns) AS c(col)
         WHERE NOT has_column_privilege(s.relation, c.col, 'SELECT') LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'permission denied for column "%" of table %, read by the template of %',
                            t.col, s.relation, what
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'A template may show only columns its author may read.',
                      HINT = format('Grant SELECT on the column (or the table) to role "%s".', current_user);
        END IF;
    END IF;
    RETURN r;
END $$;

CREATE FUNCTION segment.create_opportunity_rule(
    subject name, name name, audience text, kind text, product text,
    channel text DEFAULT 'manager', priority numeric DEFAULT 0,
    priority_scorecard name DEFAULT NULL, template text DEFAULT NULL,
    valid_days int DEFAULT 7, cooldown_days int DEFAULT 30, holdout_pct numeric DEFAULT 0,
    goal text DEFAULT NULL, assignment text DEFAULT 'owner', capacity int DEFAULT NULL,
    description text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
BEGIN
    r.subject_id := segment_internal._subject_id(subject);
    PERFORM segment_internal._check_name('opportunity rule', name);
    PERFORM segment_internal._lock_definitions();
    IF EXISTS (SELECT 1 FROM segment.opportunity_rule x WHERE x.name = create_opportunity_rule.name) THEN
        RAISE EXCEPTION 'opportunity rule "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use segment.alter_opportunity_rule() to change it.';
    END IF;
    r.name := name; r.audience := audience; r.kind := kind; r.product := product;
    r.channel := channel; r.priority := priority; r.template := template;
    r.valid_days := valid_days; r.cooldown_days := cooldown_days; r.holdout_pct := holdout_pct;
    r.goal := goal; r.assignment := assignment; r.capacity := capacity;
    r.description := description;
    r := segment_internal._check_opportunity_rule(r, priority_scorecard);
    INSERT INTO segment.opportunity_rule
        (subject_id, name, audience, kind, product, channel, priority, priority_scorecard,
         template, template_sql, template_columns, valid_days, cooldown_days, holdout_pct,
         goal, goal_columns, goal_column_types, assignment, capacity, description, owner)
    VALUES (r.subject_id, r.name, r.audience, r.kind, r.product, r.channel, r.priority,
            r.priority_scorecard, r.template, r.template_sql, r.template_columns, r.valid_days,
            r.cooldown_days, r.holdout_pct, r.goal, r.goal_columns, r.goal_column_types,
            r.assignment, r.capacity, r.description, quote_ident(current_user)::regrole)
    RETURNING * INTO r;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action, new_definition)
    VALUES (r.rule_id, r.name, r.version, 'create', segment_internal._opportunity_rule_definition(r));
    RETURN r.rule_id;
END $$;
COMMENT ON FUNCTION segment.create_opportunity_rule(name, name, text, text, text, text, numeric,
    name, text, int, int, numeric, text, text, int, text) IS
    'defines a rule that generates leads for an audience (see docs/opportunities.md)';

-- Every parameter NULL keeps the current value; '' removes a template or goal.
CREATE FUNCTION segment.alter_opportunity_rule(
    name name, audience text DEFAULT NULL, kind text DEFAULT NULL, product text DEFAULT NULL,
    channel text DEFAULT NULL, priority numeric DEFAULT NULL,
    priority_scorecard name DEFAULT NULL, template text DEFAULT NULL,
    valid_days int DEFAULT NULL, cooldown_days int DEFAULT NULL, holdout_pct numeric DEFAULT NULL,
    goal text DEFAULT NULL, assignment text DEFAULT NULL, capacity int DEFAULT NULL,
    description text DEFAULT NULL, active boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    old segment.opportunity_rule;
    r segment.opportunity_rule;
    card name;
BEGIN
    PERFORM segment_internal._lock_definitions();
    old := segment_internal._opportunity_rule(name, true);
    r := old;
    r.audience := coalesce(audience, r.audience);
    r.kind := coalesce(kind, r.kind);
    r.product := coalesce(product, r.product);
    r.channel := coalesce(channel, r.channel);
    r.priority := coalesce(priority, r.priority);
    r.template := coalesce(template, r.template);
    r.valid_days := coalesce(valid_days, r.valid_days);
    r.cooldown_days := coalesce(cooldown_days, r.cooldown_days);
    r.holdout_pct := coalesce(holdout_pct, r.holdout_pct);
    r.goal := coalesce(goal, r.goal);
    r.assignment := coalesce(assignment, r.assignment);
    r.capacity := coalesce(capacity, r.capacity);
    r.description := coalesce(description, r.description);
    r.active := coalesce(active, r.active);
    card := coalesce(priority_scorecard,
                     (SELECT c.name FROM segment.scorecard c WHERE c.scorecard_id = old.priority_scorecard));
    IF priority_scorecard = '' THEN
        card := NULL;
    END IF;
    r := segment_internal._check_opportunity_rule(r, card);
    IF segment_internal._opportunity_rule_definition(r) = segment_internal._opportunity_rule_definition(old) THEN
        RAISE EXCEPTION 'nothing to change for opportunity rule "%"', name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass at least one parameter with a new value.';
    END IF;
    UPDATE segment.opportunity_rule x
       SET audience = r.audience, kind = r.kind, product = r.product, channel = r.channel,
           priority = r.priority, priority_scorecard = r.priority_scorecard,
           template = r.template, template_sql = r.template_sql,
           template_columns = r.template_columns, valid_days = r.valid_days,
           cooldown_days = r.cooldown_days, holdout_pct = r.holdout_pct, goal = r.goal,
           goal_columns = r.goal_columns, goal_column_types = r.goal_column_types,
           assignment = r.assignment, capacity = r.capacity, description = r.description,
           active = r.active, version = x.version + 1,
           updated_at = now(), updated_by = current_user,
           -- a new goal or template is run as whoever wrote it
           owner = CASE WHEN r.goal IS DISTINCT FROM old.goal OR r.template IS DISTINCT FROM old.template
                        THEN quote_ident(current_user)::regrole ELSE x.owner END
     WHERE x.rule_id = old.rule_id
    RETURNING * INTO r;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action,
                                                  old_definition, new_definition)
    VALUES (r.rule_id, r.name, r.version, 'alter', segment_internal._opportunity_rule_definition(old),
            segment_internal._opportunity_rule_definition(r));
END $$;
COMMENT ON FUNCTION segment.alter_opportunity_rule(name, text, text, text, text, numeric, name,
    text, int, int, numeric, text, text, int, text, boolean) IS
    'changes an opportunity rule (a new version); NULL keeps a value, '''' removes a template, goal or scorecard';

CREATE FUNCTION segment.drop_opportunity_rule(name name, "cascade" boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r segment.opportunity_rule;
    n bigint;
BEGIN
    PERFORM segment_internal._lock_definitions();
    r := segment_internal._opportunity_rule(name, true);
    SELECT count(*) INTO n FROM segment.opportunity o WHERE o.rule_id = r.rule_id;
    IF n > 0 AND NOT coalesce("cascade", false) THEN
        RAISE EXCEPTION 'cannot drop opportunity rule "%": it has % opportunities', name, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Deactivate it with segment.alter_opportunity_rule(name => ..., active => false) to keep its history, or drop it with "cascade" => true to delete its opportunities too.';
    END IF;
    -- a journey escalates to it (part 87): cascade never drops a journey's referral
    IF EXISTS (SELECT 1 FROM segment.journey_escalation e WHERE e.rule_id = r.rule_id) THEN
        RAISE EXCEPTION 'cannot drop opportunity rule "%" because journeys escalate to it', name
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Escalation of journey(s) %s.',
                                  (SELECT string_agg(format('"%s"', j.name), ', ' ORDER BY j.name)
                                     FROM segment.journey_escalation e JOIN segment.journey j USING (journey_id)
                                    WHERE e.rule_id = r.rule_id)),
                  HINT = 'Remove the escalation first with segment.set_journey_escalation(journey, NULL).';
    END IF;
    DELETE FROM segment.opportunity o WHERE o.rule_id = r.rule_id;
    DELETE FROM segment.generation g WHERE g.rule_id = r.rule_id;
    DELETE FROM segment.opportunity_rule x WHERE x.rule_id = r.rule_id;
    INSERT INTO segment.opportunity_rule_history (rule_id, name, version, action, old_definition)
    VALUES (r.rule_id, r.name, r.version, 'drop', segment_internal._opportunity_rule_definition(r));
END $$;
COMMENT ON FUNCTION segment.drop_opportunity_rule(name, boolean) IS
    'drops an opportunity rule; with "cascade" also its opportunities';

-- Refuses (2BP01) to drop a tag, segment, scheme or scorecard that an
-- opportunity rule's audience, priority or entry audience uses, or that a
-- journey's audiences or escalation use.
CREATE FUNCTION segment_internal._refuse_if_rules_use(kind text, n name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    qualified boolean := kind IN ('scheme', 'scorecard');
    users text;
BEGIN
    SELECT string_agg(DISTINCT format('"%s"', r.name), ', ') INTO users
      FROM segment.opportunity_rule r
      LEFT JOIN segment.entry_rule e USING (rule_id)
     WHERE EXISTS (SELECT 1 FROM segment_internal._audience_names(r.audience) a
                    WHERE CASE WHEN qualified THEN a.qualifier = n
                               ELSE a.qualifier IS NULL AND a.name = n END)
        OR EXISTS (SELECT 1 FROM segment_internal._audience_names(e.audience) a
                    WHERE CASE WHEN qualified THEN a.qualifier = n
                               ELSE a.qualifier IS NULL AND a.name = n END)
        OR (_refuse_if_rules_use.kind = 'scorecard' AND r.priority_scorecard =
            (SELECT c.scorecard_id FROM segment.scorecard c WHERE c.name = n));
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop % "%" because opportunity rules use it', kind, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Used by opportunity rule(s) %s (audience, entry audience or priority scorecard).', users),
                  HINT = 'Change those rules with segment.alter_opportunity_rule() or drop them first; cascade does not drop opportunity rules.';
    END IF;
    -- journeys (part 87): entry, exit, goal, step conditions, escalation score
    SELECT string_agg(DISTINCT format('"%s"', j.name), ', ') INTO users
      FROM segment.journey j
     WHERE EXISTS (SELECT 1
                     FROM unnest(ARRAY[j.entry, j.exit, j.goal]
                                 || ARRAY(SELECT st.condition FROM segment.journey_step st
                                           WHERE st.journey_id = j.journey_id)) AS u(audience),
                          segment_internal._audience_names(u.audience) a
                    WHERE CASE WHEN qualified THEN a.qualifier = n
                               ELSE a.qualifier IS NULL AND a.name = n END)
        OR (_refuse_if_rules_use.kind = 'scorecard' AND EXISTS (
                SELECT 1 FROM segment.journey_escalation e JOIN segment.scorecard c USING (scorecard_id)
                 WHERE e.journey_id = j.journey_id AND c.name = n));
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop % "%" because journeys use it', kind, n
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Used by journey(s) %s (entry, exit, goal, a step''s condition or the escalation scorecard).', users),
                  HINT = 'Change those journeys with segment.alter_journey(), segment.drop_journey_step() or segment.set_journey_escalation(), or drop them first.';
    END IF;
END $$;

-- DDL guard (part 91): refuse changes to columns a goal or template reads.
CREATE FUNCTION segment_internal._check_opportunity_rules_of(rel oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT o.name, o.goal, o.goal_columns, o.goal_column_types, o.template, s.relation
               FROM segment.opportunity_rule o JOIN segment.subject s USING (subject_id)
              WHERE s.relation = rel
    LOOP
        BEGIN
            IF r.goal IS NOT NULL THEN
                PERFORM segment_internal._rule_columns(r.relation, r.goal, NULL);
            END IF;
            IF r.template IS NOT NULL THEN
                PERFORM segment_internal._compile_template(r.relation, r.template, 'x');
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'cannot change table "%": opportunity rule "%" depends on it', r.relation, r.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('Its goal or template would fail: %s', SQLERRM),
                      HINT = 'Alter or drop the opportunity rule first (segment.alter_opportunity_rule).';
        END;
        IF segment_internal._column_types(r.relation, r.goal_columns) IS DISTINCT FROM r.goal_column_types THEN
            RAISE EXCEPTION 'cannot change the type of a column that the goal of opportunity rule "%" reads', r.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Alter the rule''s goal first.';
        END IF;
    END LOOP;
END $$;
