-- segment install script, part 88: the report (docs/report.md).
--
-- segment.report(subject, from_date, to_date, org_unit) returns one HTML5
-- page, self-contained and offline: inline CSS and inline SVG charts, no
-- script, no font, image or stylesheet fetched, no URL at all, so that it
-- opens from a file or an intranet share. Every figure on the page comes
-- from one of the segment.report_* functions below, which are API on their
-- own: a reader can query the same numbers, and the tests compare the page
-- with them (test/shell/report.sh).
--
-- Scope: with org_unit, the opportunities and customers of that org unit
-- and the units below it in the org tree (opportunity.org_unit, the
-- subject's org_column); segment_internal._report_units is the one place
-- that turns the argument into the set of units.
--
-- Personal data: the page holds aggregates only; no customer key, name,
-- phone or message. Manager ids and rule, tag and bucket names appear, all
-- escaped (segment_internal._html).
--
-- Every function here is SECURITY INVOKER with a pinned search_path and
-- schema-qualified references; plpgsql, so that the bodies are resolved
-- when called (part 90's tables do not exist yet when this part runs).

-- Text for HTML element content and attribute values: & < > " ' escaped.
-- NULL gives '' so that one missing value never blanks a whole page.
CREATE FUNCTION segment_internal._html(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
               pg_catalog.replace(t, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'),
               '''', '&#39;'), '')
$$;
COMMENT ON FUNCTION segment_internal._html(text) IS
    'internal: text escaped for HTML content and attributes (NULL gives the empty string)';

-- Numbers for people: 1,234,567 and 12.3%; n/a for NULL.
CREATE FUNCTION segment_internal._fmt_int(n numeric) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN n IS NULL THEN 'n/a'
                ELSE pg_catalog.to_char(pg_catalog.round(n), 'FM999,999,999,999,999,999,990') END
$$;
COMMENT ON FUNCTION segment_internal._fmt_int(numeric) IS
    'internal: a number rounded to an integer with thousands separators (report)';

CREATE FUNCTION segment_internal._fmt_pct(x float8, digits int DEFAULT 1) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN x IS NULL OR x = 'NaN'::float8 THEN 'n/a'
                ELSE pg_catalog.to_char(pg_catalog.round((x * 100)::numeric, digits),
                                        'FM999,999,990' || CASE WHEN digits > 0
                                                                THEN '.' || pg_catalog.repeat('0', digits) ELSE '' END)
                     || '%' END
$$;
COMMENT ON FUNCTION segment_internal._fmt_pct(float8, int) IS
    'internal: a ratio as a percentage with thousands separators (report)';

-- Checks the arguments every report function takes; returns the subject id.
-- An unknown subject is 42704 (segment_internal._subject_id, as everywhere).
CREATE FUNCTION segment_internal._report_check(subject name, from_date date, to_date date, org_unit text)
RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := segment_internal._subject_id(subject);
BEGIN
    IF from_date IS NULL OR to_date IS NULL THEN
        RAISE EXCEPTION 'from_date and to_date must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Give the period the report covers, e.g. current_date - 30 and current_date.';
    END IF;
    IF NOT pg_catalog.isfinite(from_date) OR NOT pg_catalog.isfinite(to_date) THEN
        RAISE EXCEPTION 'from_date and to_date must be finite dates'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give the period the report covers, e.g. current_date - 30 and current_date.';
    END IF;
    IF from_date > to_date THEN
        RAISE EXCEPTION 'from_date % is after to_date %', from_date, to_date
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The period is from_date to to_date inclusive: swap them.';
    END IF;
    IF org_unit IS NOT NULL AND (SELECT s.org_column FROM segment.subject s WHERE s.subject_id = sid) IS NULL THEN
        RAISE EXCEPTION 'subject "%" has no org column: a report cannot be scoped to org unit "%"', subject, org_unit
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Register the subject with org_column => ... (segment.register_subject), or leave org_unit NULL.';
    END IF;
    RETURN sid;
END $$;
COMMENT ON FUNCTION segment_internal._report_check(name, date, date, text) IS
    'internal: checks the arguments of the report functions; returns the subject id';

-- The org units a scoped report covers (NULL: no scope, everything): the
-- unit and every unit below it in the loaded org tree (part 12); a unit the
-- tree does not know (or no tree loaded) covers itself only.
CREATE FUNCTION segment_internal._report_units(sid int, org_unit text) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN org_unit IS NULL THEN NULL::text[]
                ELSE coalesce((SELECT array_agg(u ORDER BY u) FROM segment.org_subtree(org_unit) u),
                              ARRAY[org_unit]) END
$$;
COMMENT ON FUNCTION segment_internal._report_units(int, text) IS
    'internal: the org units a report scoped to org_unit covers (the unit and its subtree in the org tree)';

-- The customers in scope: the member ids of the rows of the subject's table
-- whose org column (as text) is one of the units, now. NULL: no scope.
-- Reads the subject's table, so a scoped report needs SELECT on it.
CREATE FUNCTION segment_internal._report_scope(sid int, units text[]) RETURNS segment.memberset
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s segment.subject;
    result segment.memberset;
BEGIN
    IF units IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO s FROM segment.subject x WHERE x.subject_id = sid;
    IF s.key_type IN ('int4'::regtype, 'int8'::regtype) THEN
        EXECUTE format('SELECT segment.memberset_agg(t.%1$I::int8) FROM %2$s t
                         WHERE t.%3$I::text OPERATOR(pg_catalog.=) ANY ($1)
                           AND t.%1$I::int8 BETWEEN 0 AND 4294967295%4$s',
                       s.key_column, s.relation, s.org_column, segment_internal._snapshot_filter(sid, 't'))
            INTO result USING units;
    ELSE
        EXECUTE format('SELECT segment.memberset_agg(k.member_id) FROM %2$s t
                          JOIN segment.keymap k ON k.subject_id OPERATOR(pg_catalog.=) $2
                                               AND k.key OPERATOR(pg_catalog.=) t.%1$I::text
                         WHERE t.%3$I::text OPERATOR(pg_catalog.=) ANY ($1)%4$s',
                       s.key_column, s.relation, s.org_column, segment_internal._snapshot_filter(sid, 't'))
            INTO result USING units, sid;
    END IF;
    RETURN coalesce(result, '{}'::segment.memberset);
END $$;
COMMENT ON FUNCTION segment_internal._report_scope(int, text[]) IS
    'internal: the member set of the customers whose org unit is one of units (NULL: no scope)';

-- One row per opportunity of the subject generated in the period (and in
-- scope), with what the report counts. "dispatched" as in the review views
-- (ever dispatched); "started" likewise: ever in progress.
CREATE FUNCTION segment_internal._report_opportunities(sid int, from_date date, to_date date, units text[])
RETURNS TABLE (rule_id int, is_control boolean, manager text, status text,
               was_dispatched boolean, was_started boolean, converted boolean,
               amount numeric, goal_met boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT o.rule_id, o.is_control, o.manager, o.status,
           o.status IN ('dispatched', 'in_progress', 'completed')
           OR (o.status IN ('expired', 'cancelled')
               AND EXISTS (SELECT 1 FROM segment.opportunity_log l
                            WHERE l.opportunity_id = o.opportunity_id AND l.to_status = 'dispatched')),
           o.status IN ('in_progress', 'completed')
           OR (o.status IN ('expired', 'cancelled')
               AND EXISTS (SELECT 1 FROM segment.opportunity_log l
                            WHERE l.opportunity_id = o.opportunity_id AND l.to_status = 'in_progress')),
           o.converted, o.amount, o.goal_met
      FROM segment.opportunity o
     WHERE o.subject_id = sid
       AND o.period BETWEEN from_date AND to_date
       AND (units IS NULL OR o.org_unit = ANY (units))
$$;
COMMENT ON FUNCTION segment_internal._report_opportunities(int, date, date, text[]) IS
    'internal: the opportunities a report counts, one row each, with their funnel flags';

-- Reading functions: the figures of the page ----------------------------------

CREATE FUNCTION segment_internal._report_summary(sid int, from_date date, to_date date, units text[], scope segment.memberset)
RETURNS TABLE (as_of date, customers bigint, opportunities bigint, treatment bigint, control bigint,
               dispatched bigint, started bigint, completed bigint, converted bigint,
               expired bigint, amount numeric, leak_rate float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u record;
BEGIN
    -- customers: the subject's universe at the last refresh on or before to_date
    SELECT h.as_of, h.universe, h.member_count INTO u
      FROM segment.universe_history h
     WHERE h.subject_id = sid AND h.as_of <= _report_summary.to_date
     ORDER BY h.as_of DESC LIMIT 1;
    RETURN QUERY
    SELECT u.as_of,
           CASE WHEN u.as_of IS NULL THEN NULL::bigint
                WHEN scope IS NULL THEN u.member_count
                ELSE segment.cardinality(u.universe OPERATOR(segment.&) scope) END,
           count(*), count(*) FILTER (WHERE NOT f.is_control), count(*) FILTER (WHERE f.is_control),
           count(*) FILTER (WHERE NOT f.is_control AND f.was_dispatched),
           count(*) FILTER (WHERE NOT f.is_control AND f.was_started),
           count(*) FILTER (WHERE NOT f.is_control AND f.status = 'completed'),
           count(*) FILTER (WHERE NOT f.is_control AND f.converted),
           count(*) FILTER (WHERE NOT f.is_control AND f.status = 'expired'),
           sum(f.amount) FILTER (WHERE NOT f.is_control AND f.converted),
           count(*) FILTER (WHERE NOT f.is_control AND f.status = 'expired')::float8
               / nullif(count(*) FILTER (WHERE NOT f.is_control AND f.status IN ('completed', 'expired')), 0)
      FROM segment_internal._report_opportunities(sid, from_date, to_date, units) f;
END $$;
COMMENT ON FUNCTION segment_internal._report_summary(int, date, date, text[], segment.memberset) IS
    'internal: the rows of segment.report_summary for a subject id, units and scope';

CREATE FUNCTION segment_internal._report_tag_trend(sid int, from_date date, to_date date, units text[], scope segment.memberset)
RETURNS TABLE (tag name, category text, as_of date, members bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
BEGIN
    IF scope IS NULL THEN
        -- every refresh in the period: the daily sizes refresh records
        RETURN QUERY
        SELECT t.name, t.category, z.as_of, z.members
          FROM segment.size_snapshot z
          JOIN segment.tag t ON t.subject_id = z.subject_id AND t.name::text = z.name
         WHERE z.subject_id = sid AND z.kind = 'tag' AND t.active
           AND z.as_of BETWEEN from_date AND to_date
         ORDER BY t.category NULLS LAST, t.name, z.as_of;
    ELSE
        -- per org unit, segment keeps only the current member sets: the last
        -- refresh, when it is in the period
        RETURN QUERY
        SELECT t.name, t.category, s.as_of, segment.cardinality(s.members OPERATOR(segment.&) scope)
          FROM segment.tag_state s
          JOIN segment.tag t USING (tag_id)
         WHERE t.subject_id = sid AND t.active
           AND s.as_of BETWEEN from_date AND to_date
         ORDER BY t.category NULLS LAST, t.name;
    END IF;
END $$;
COMMENT ON FUNCTION segment_internal._report_tag_trend(int, date, date, text[], segment.memberset) IS
    'internal: the rows of segment.report_tag_trend for a subject id, units and scope';

-- The snapshots a report compares for a scheme: the one in force at
-- from_date (or, when the scheme was first refreshed later, its first one in
-- the period) and the one in force at to_date.
CREATE FUNCTION segment_internal._report_snapshots(sid int, scheme_id int, from_date date, to_date date,
                                          OUT from_as_of date, OUT to_as_of date)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT max(h.as_of) FROM segment.bucket_history h
                      WHERE h.scheme_id = _report_snapshots.scheme_id AND h.as_of <= from_date
                        AND EXISTS (SELECT 1 FROM segment.universe_history u
                                     WHERE u.subject_id = sid AND u.as_of = h.as_of)),
                    (SELECT min(h.as_of) FROM segment.bucket_history h
                      WHERE h.scheme_id = _report_snapshots.scheme_id AND h.as_of BETWEEN from_date AND to_date
                        AND EXISTS (SELECT 1 FROM segment.universe_history u
                                     WHERE u.subject_id = sid AND u.as_of = h.as_of))),
           (SELECT max(h.as_of) FROM segment.bucket_history h
             WHERE h.scheme_id = _report_snapshots.scheme_id AND h.as_of <= to_date
               AND EXISTS (SELECT 1 FROM segment.universe_history u
                            WHERE u.subject_id = sid AND u.as_of = h.as_of))
$$;
COMMENT ON FUNCTION segment_internal._report_snapshots(int, int, date, date) IS
    'internal: the scheme snapshots a report compares for a period';

-- Positions: (entered) 0, the buckets 1..n, (none) n + 1, (exited) n + 2.
CREATE FUNCTION segment_internal._report_transitions(sid int, from_date date, to_date date, units text[], scope segment.memberset)
RETURNS TABLE (scheme name, from_as_of date, to_as_of date, from_bucket text, to_bucket text,
               from_position int, to_position int, customers bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sc record;
    n int;
BEGIN
    FOR sc IN
        SELECT m.scheme_id, m.name, d.from_as_of AS d1, d.to_as_of AS d2
          FROM segment.scheme m
         CROSS JOIN LATERAL segment_internal._report_snapshots(sid, m.scheme_id, from_date, to_date) d
         WHERE m.subject_id = sid AND m.active AND d.from_as_of IS NOT NULL AND d.to_as_of IS NOT NULL
         ORDER BY m.name
    LOOP
        SELECT count(*) INTO n FROM segment.scheme_bucket b WHERE b.scheme_id = sc.scheme_id;
        RETURN QUERY
        WITH u AS (
            SELECT (SELECT x.universe FROM segment.universe_history x WHERE x.subject_id = sid AND x.as_of = sc.d1) AS u1,
                   (SELECT x.universe FROM segment.universe_history x WHERE x.subject_id = sid AND x.as_of = sc.d2) AS u2
        ), h AS (
            SELECT x.as_of, x.bucket::text AS bucket, x.members FROM segment.bucket_history x
             WHERE x.scheme_id = sc.scheme_id AND x.as_of IN (sc.d1, sc.d2)
        ), side1 AS (
            SELECT h.bucket, h.members FROM h WHERE h.as_of = sc.d1
            UNION ALL
            SELECT '(none)', u.u1 OPERATOR(segment.-)
                   coalesce((SELECT segment.union_agg(h.members) FROM h WHERE h.as_of = sc.d1), '{}'::segment.memberset)
              FROM u
            UNION ALL
            SELECT '(entered)', u.u2 OPERATOR(segment.-) u.u1 FROM u
        ), side2 AS (
            SELECT h.bucket, h.members FROM h WHERE h.as_of = sc.d2
            UNION ALL
            SELECT '(none)', u.u2 OPERATOR(segment.-)
                   coalesce((SELECT segment.union_agg(h.members) FROM h WHERE h.as_of = sc.d2), '{}'::segment.memberset)
              FROM u
            UNION ALL
            SELECT '(exited)', u.u1 OPERATOR(segment.-) u.u2 FROM u
        ), pos AS (
            SELECT b.name::text AS bucket, b.position FROM segment.scheme_bucket b WHERE b.scheme_id = sc.scheme_id
        ), cells AS (
            SELECT a.bucket AS f, b.bucket AS t,
                   segment.cardinality(CASE WHEN scope IS NULL THEN a.members OPERATOR(segment.&) b.members
                                            ELSE a.members OPERATOR(segment.&) b.members OPERATOR(segment.&) scope END) AS c
              FROM side1 a CROSS JOIN side2 b
        )
        SELECT sc.name, sc.d1, sc.d2, c.f, c.t,
               CASE c.f WHEN '(entered)' THEN 0 WHEN '(none)' THEN n + 1 ELSE coalesce(pf.position, n + 1) END,
               CASE c.t WHEN '(none)' THEN n + 1 WHEN '(exited)' THEN n + 2 ELSE coalesce(pt.position, n + 1) END,
               c.c
          FROM cells c
          LEFT JOIN pos pf ON pf.bucket = c.f
          LEFT JOIN pos pt ON pt.bucket = c.t
         WHERE c.c > 0
         ORDER BY 6, 7;
    END LOOP;
END $$;
COMMENT ON FUNCTION segment_internal._report_transitions(int, date, date, text[], segment.memberset) IS
    'internal: the rows of segment.report_transitions for a subject id, units and scope';

CREATE FUNCTION segment_internal._report_funnel(sid int, from_date date, to_date date, units text[], scope segment.memberset)
RETURNS TABLE (scheme name, as_of date, "position" int, bucket name, customers bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
BEGIN
    RETURN QUERY
    SELECT m.name, d.to_as_of, b.position, b.name,
           coalesce(CASE WHEN scope IS NULL THEN h.member_count
                         ELSE segment.cardinality(h.members OPERATOR(segment.&) scope) END, 0)
      FROM segment.scheme m
     CROSS JOIN LATERAL segment_internal._report_snapshots(sid, m.scheme_id, from_date, to_date) d
      JOIN segment.scheme_bucket b ON b.scheme_id = m.scheme_id
      LEFT JOIN segment.bucket_history h ON h.scheme_id = m.scheme_id AND h.as_of = d.to_as_of AND h.bucket = b.name
     WHERE m.subject_id = sid AND m.active AND d.to_as_of IS NOT NULL
     ORDER BY m.name, b.position;
END $$;
COMMENT ON FUNCTION segment_internal._report_funnel(int, date, date, text[], segment.memberset) IS
    'internal: the rows of segment.report_funnel for a subject id, units and scope';

CREATE FUNCTION segment_internal._report_rules(sid int, from_date date, to_date date, units text[], scope segment.memberset)
RETURNS TABLE (rule name, rule_id int, kind text, generated bigint, control bigint, dispatched bigint,
               started bigint, completed bigint, converted bigint, cancelled bigint, expired bigint,
               open bigint, leak_rate float8, amount numeric,
               treatment_evaluated bigint, treatment_converted bigint,
               control_evaluated bigint, control_converted bigint,
               treatment_rate float8, control_rate float8, lift float8,
               lift_low float8, lift_high float8, p_value float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
BEGIN
    RETURN QUERY
    SELECT r.name, r.rule_id, r.kind, a.generated, a.control, a.dispatched, a.started, a.completed,
           a.converted, a.cancelled, a.expired, a.open,
           a.expired::float8 / nullif(a.completed + a.expired, 0), a.amount,
           a.t_n, a.t_x, a.c_n, a.c_x,
           s.treatment_rate, s.control_rate, s.lift, s.lift_low, s.lift_high, s.p_value
      FROM (SELECT f.rule_id,
                   count(*) FILTER (WHERE NOT f.is_control) AS generated,
                   count(*) FILTER (WHERE f.is_control) AS control,
                   count(*) FILTER (WHERE NOT f.is_control AND f.was_dispatched) AS dispatched,
                   count(*) FILTER (WHERE NOT f.is_control AND f.was_started) AS started,
                   count(*) FILTER (WHERE NOT f.is_control AND f.status = 'completed') AS completed,
                   count(*) FILTER (WHERE NOT f.is_control AND f.converted) AS converted,
                   count(*) FILTER (WHERE NOT f.is_control AND f.status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE NOT f.is_control AND f.status = 'expired') AS expired,
                   count(*) FILTER (WHERE NOT f.is_control
                                      AND f.status IN ('generated', 'dispatched', 'in_progress')) AS open,
                   sum(f.amount) FILTER (WHERE NOT f.is_control AND f.converted) AS amount,
                   count(*) FILTER (WHERE NOT f.is_control AND f.goal_met IS NOT NULL) AS t_n,
                   count(*) FILTER (WHERE NOT f.is_control AND f.goal_met) AS t_x,
                   count(*) FILTER (WHERE f.is_control AND f.goal_met IS NOT NULL) AS c_n,
                   count(*) FILTER (WHERE f.is_control AND f.goal_met) AS c_x
              FROM segment_internal._report_opportunities(sid, from_date, to_date, units) f
             GROUP BY f.rule_id) a
      JOIN segment.opportunity_rule r ON r.rule_id = a.rule_id
     CROSS JOIN LATERAL segment_internal._two_proportions(a.t_x, a.t_n, a.c_x, a.c_n) s
     ORDER BY r.name;
END $$;
COMMENT ON FUNCTION segment_internal._report_rules(int, date, date, text[], segment.memberset) IS
    'internal: the rows of segment.report_rules for a subject id, units and scope';

CREATE FUNCTION segment_internal._report_managers(sid int, from_date date, to_date date, units text[], scope segment.memberset)
RETURNS TABLE (manager text, assigned bigint, dispatched bigint, started bigint, completed bigint,
               converted bigint, conversion_rate float8, amount numeric, expired bigint,
               leak_rate float8, goal_rate float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
BEGIN
    RETURN QUERY
    SELECT f.manager, count(*),
           count(*) FILTER (WHERE f.was_dispatched),
           count(*) FILTER (WHERE f.was_started),
           count(*) FILTER (WHERE f.status = 'completed'),
           count(*) FILTER (WHERE f.converted),
           count(*) FILTER (WHERE f.converted)::float8 / count(*),
           sum(f.amount) FILTER (WHERE f.converted),
           count(*) FILTER (WHERE f.status = 'expired'),
           count(*) FILTER (WHERE f.status = 'expired')::float8
               / nullif(count(*) FILTER (WHERE f.status IN ('completed', 'expired')), 0),
           count(*) FILTER (WHERE f.goal_met)::float8 / nullif(count(*) FILTER (WHERE f.goal_met IS NOT NULL), 0)
      FROM segment_internal._report_opportunities(sid, from_date, to_date, units) f
     WHERE NOT f.is_control
     GROUP BY f.manager
     ORDER BY 6 DESC, 8 DESC NULLS LAST, 1 NULLS LAST;
END $$;
COMMENT ON FUNCTION segment_internal._report_managers(int, date, date, text[], segment.memberset) IS
    'internal: the rows of segment.report_managers for a subject id, units and scope';

-- The public functions: check the arguments, resolve the scope, return the
-- rows. segment.report calls the internal ones, resolving the scope once.
CREATE FUNCTION segment.report_summary(subject name, from_date date, to_date date, org_unit text DEFAULT NULL)
RETURNS TABLE (as_of date, customers bigint, opportunities bigint, treatment bigint, control bigint,
               dispatched bigint, started bigint, completed bigint, converted bigint,
               expired bigint, amount numeric, leak_rate float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := segment_internal._report_check(subject, from_date, to_date, org_unit);
    units text[] := segment_internal._report_units(sid, org_unit);
BEGIN
    RETURN QUERY SELECT * FROM segment_internal._report_summary(sid, from_date, to_date, units,
                                                    segment_internal._report_scope(sid, units));
END $$;
COMMENT ON FUNCTION segment.report_summary(name, date, date, text) IS
    'report: customers at the last refresh on or before to_date and the opportunity funnel of the period (one row)';

CREATE FUNCTION segment.report_tag_trend(subject name, from_date date, to_date date, org_unit text DEFAULT NULL)
RETURNS TABLE (tag name, category text, as_of date, members bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := segment_internal._report_check(subject, from_date, to_date, org_unit);
    units text[] := segment_internal._report_units(sid, org_unit);
BEGIN
    RETURN QUERY SELECT * FROM segment_internal._report_tag_trend(sid, from_date, to_date, units,
                                                    segment_internal._report_scope(sid, units));
END $$;
COMMENT ON FUNCTION segment.report_tag_trend(name, date, date, text) IS
    'report: members of every active tag per refreshed day of the period (scoped: at the last refresh only)';

CREATE FUNCTION segment.report_transitions(subject name, from_date date, to_date date, org_unit text DEFAULT NULL)
RETURNS TABLE (scheme name, from_as_of date, to_as_of date, from_bucket text, to_bucket text,
               from_position int, to_position int, customers bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := segment_internal._report_check(subject, from_date, to_date, org_unit);
    units text[] := segment_internal._report_units(sid, org_unit);
BEGIN
    RETURN QUERY SELECT * FROM segment_internal._report_transitions(sid, from_date, to_date, units,
                                                    segment_internal._report_scope(sid, units));
END $$;
COMMENT ON FUNCTION segment.report_transitions(name, date, date, text) IS
    'report: per active scheme, customers per (bucket at the start, bucket at the end of the period), as segment.transitions';

CREATE FUNCTION segment.report_funnel(subject name, from_date date, to_date date, org_unit text DEFAULT NULL)
RETURNS TABLE (scheme name, as_of date, "position" int, bucket name, customers bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := segment_internal._report_check(subject, from_date, to_date, org_unit);
    units text[] := segment_internal._report_units(sid, org_unit);
BEGIN
    RETURN QUERY SELECT * FROM segment_internal._report_funnel(sid, from_date, to_date, units,
                                                    segment_internal._report_scope(sid, units));
END $$;
COMMENT ON FUNCTION segment.report_funnel(name, date, date, text) IS
    'report: customers per bucket of every active scheme at the last refresh on or before to_date, in bucket order';

CREATE FUNCTION segment.report_rules(subject name, from_date date, to_date date, org_unit text DEFAULT NULL)
RETURNS TABLE (rule name, rule_id int, kind text, generated bigint, control bigint, dispatched bigint,
               started bigint, completed bigint, converted bigint, cancelled bigint, expired bigint,
               open bigint, leak_rate float8, amount numeric,
               treatment_evaluated bigint, treatment_converted bigint,
               control_evaluated bigint, control_converted bigint,
               treatment_rate float8, control_rate float8, lift float8,
               lift_low float8, lift_high float8, p_value float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := segment_internal._report_check(subject, from_date, to_date, org_unit);
    units text[] := segment_internal._report_units(sid, org_unit);
BEGIN
    RETURN QUERY SELECT * FROM segment_internal._report_rules(sid, from_date, to_date, units,
                                                    NULL);
END $$;
COMMENT ON FUNCTION segment.report_rules(name, date, date, text) IS
    'report: per opportunity rule, the funnel generated > dispatched > started > completed > converted, leak, and lift against control with its 95% interval (as segment.review)';

CREATE FUNCTION segment.report_managers(subject name, from_date date, to_date date, org_unit text DEFAULT NULL)
RETURNS TABLE (manager text, assigned bigint, dispatched bigint, started bigint, completed bigint,
               converted bigint, conversion_rate float8, amount numeric, expired bigint,
               leak_rate float8, goal_rate float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := segment_internal._report_check(subject, from_date, to_date, org_unit);
    units text[] := segment_internal._report_units(sid, org_unit);
BEGIN
    RETURN QUERY SELECT * FROM segment_internal._report_managers(sid, from_date, to_date, units,
                                                    NULL);
END $$;
COMMENT ON FUNCTION segment.report_managers(name, date, date, text) IS
    'report: per manager (NULL: the pool), the treatment opportunities of the period: assigned, funnel, conversions, amount, leak';

CREATE FUNCTION segment.report_runs(subject name, from_date date, to_date date)
RETURNS TABLE (kind text, run_id bigint, as_of date, started_at timestamptz, finished_at timestamptz,
               seconds float8, status text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := segment_internal._report_check(subject, from_date, to_date, NULL);
BEGIN
    RETURN QUERY
    SELECT x.* FROM (
        SELECT 'refresh'::text, r.run_id, r.as_of, r.started_at, r.finished_at,
               extract(epoch FROM r.finished_at - r.started_at)::float8,
               CASE WHEN r.error IS NULL THEN 'succeeded' ELSE 'failed tags' END
          FROM segment.run r
         WHERE r.subject_id = sid AND r.as_of BETWEEN from_date AND to_date
        UNION ALL
        SELECT 'nightly'::text, n.run_id, n.as_of, n.started_at, n.finished_at,
               extract(epoch FROM n.finished_at - n.started_at)::float8, n.status
          FROM segment.nightly_run n
         WHERE n.as_of BETWEEN from_date AND to_date AND n.status <> 'skipped') x
     ORDER BY 4, 1, 2;
END $$;
COMMENT ON FUNCTION segment.report_runs(name, date, date) IS
    'report: durations of the refreshes of the subject and of the nightly runs (segment.run_all) for as_of dates in the period';

-- Drawing ----------------------------------------------------------------------

-- About n round tick values covering lo..hi.
CREATE FUNCTION segment_internal._report_ticks(lo float8, hi float8, n int DEFAULT 5) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    span float8 := hi - lo;
    raw float8;
    mag float8;
    step float8;
    t float8;
    result float8[] := '{}';
BEGIN
    -- NaN and infinities would never end the loop; more than 100 ticks is no axis
    IF lo IS NULL OR hi IS NULL OR n IS NULL OR lo IN ('NaN', 'Infinity', '-Infinity')
       OR hi IN ('NaN', 'Infinity', '-Infinity') OR span <= 0 OR span = 'Infinity' OR n < 1 THEN
        RETURN ARRAY[lo];
    END IF;
    raw := span / least(n, 100);
    mag := power(10, floor(log(raw)));
    step := CASE WHEN raw / mag <= 1 THEN 1 WHEN raw / mag <= 2 THEN 2 WHEN raw / mag <= 5 THEN 5 ELSE 10 END * mag;
    t := ceil(lo / step) * step;
    WHILE t <= hi + step * 1e-9 AND cardinality(result) <= 1000 LOOP
        result := result || (round(t / step) * step);
        t := t + step;
    END LOOP;
    RETURN result;
END $$;
COMMENT ON FUNCTION segment_internal._report_ticks(float8, float8, int) IS
    'internal: round axis tick values between lo and hi (report)';

-- One section: a title, the one-line reading, and its chart(s).
CREATE FUNCTION segment_internal._report_section(id text, title text, reading text, body text, note text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT '<section id="' || segment_internal._html(id) || '"><h2>' || segment_internal._html(title) || '</h2>'
           || '<p class="reading">' || segment_internal._html(reading) || '</p>'
           || coalesce(body, '')
           || CASE WHEN note IS NULL THEN '' ELSE '<p class="note">' || segment_internal._html(note) || '</p>' END
           || '</section>' || E'\n'
$$;
COMMENT ON FUNCTION segment_internal._report_section(text, text, text, text, text) IS
    'internal: one section of the report page';

-- An SVG that says there is nothing to draw (keeps the layout readable).
CREATE FUNCTION segment_internal._report_empty(message text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT '<svg class="chart empty" viewBox="0 0 600 60" width="600" height="60" role="img" aria-label="'
           || segment_internal._html(message) || '"><rect x="0.5" y="0.5" width="599" height="59" class="frame"/>'
           || '<text x="300" y="35" text-anchor="middle" class="muted">' || segment_internal._html(message) || '</text></svg>'
$$;
COMMENT ON FUNCTION segment_internal._report_empty(text) IS 'internal: an empty chart with a message (report)';

CREATE FUNCTION segment.report(subject name, from_date date, to_date date, org_unit text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sid int := segment_internal._report_check(subject, from_date, to_date, org_unit);
    units text[] := segment_internal._report_units(sid, org_unit);
    scope_label text := CASE WHEN org_unit IS NULL THEN 'all org units' ELSE 'org unit ' || org_unit END;
    scope segment.memberset;
    j_tag_trend jsonb;
    j_transitions jsonb;
    j_funnel jsonb;
    j_rules jsonb;
    j_managers jsonb;
    j_runs jsonb;
    sm record;
    tg record;
    fo record;
    mg record;
    rn record;
    page text;
    body text;
    chart text;
    reading text;
    note text;
    sc record;
    n int;
    w int;
    h int;
    ticks float8[];
    lo float8;
    hi float8;
    x0 int;
    pw int;
BEGIN
    -- 1. Key figures ---------------------------------------------------------
    -- Every figure is read once, here, from the functions behind the
    -- report_* API (the scope too: it scans the subject's table); the
    -- sections below draw from these rows.
    scope := segment_internal._report_scope(sid, units);
    SELECT * INTO sm FROM segment_internal._report_summary(sid, from_date, to_date, units, scope);
    j_tag_trend := coalesce((SELECT jsonb_agg(x) FROM segment_internal._report_tag_trend(sid, from_date, to_date, units, scope) x), '[]');
    j_transitions := coalesce((SELECT jsonb_agg(x) FROM segment_internal._report_transitions(sid, from_date, to_date, units, scope) x), '[]');
    j_funnel := coalesce((SELECT jsonb_agg(x) FROM segment_internal._report_funnel(sid, from_date, to_date, units, scope) x), '[]');
    j_rules := coalesce((SELECT jsonb_agg(x) FROM segment_internal._report_rules(sid, from_date, to_date, units, scope) x), '[]');
    j_managers := coalesce((SELECT jsonb_agg(x) FROM segment_internal._report_managers(sid, from_date, to_date, units, scope) x), '[]');
    j_runs := coalesce((SELECT jsonb_agg(x) FROM segment.report_runs(subject, from_date, to_date) x), '[]');
    body := '<div class="kpis">'
        || (SELECT string_agg(format('<div class="kpi"><span class="v" data-figure="%s" data-value="%s">%s</span>'
                                     '<span class="l">%s</span></div>',
                                     k.id, coalesce(k.v::text, ''), segment_internal._html(k.shown), segment_internal._html(k.label)), '' ORDER BY k.o)
              FROM (VALUES
                  (1, 'customers', sm.customers::numeric, segment_internal._fmt_int(sm.customers),
                      'customers' || coalesce(' at ' || sm.as_of, '')),
                  (2, 'opportunities', sm.opportunities, segment_internal._fmt_int(sm.opportunities),
                      'opportunities generated (' || segment_internal._fmt_int(sm.control) || ' control)'),
                  (3, 'dispatched', sm.dispatched, segment_internal._fmt_int(sm.dispatched),
                      'dispatched (' || segment_internal._fmt_pct(sm.dispatched::float8 / nullif(sm.treatment, 0)) || ' of treatment)'),
                  (4, 'converted', sm.converted, segment_internal._fmt_int(sm.converted), 'converted, reported by managers'),
                  (5, 'amount', round(coalesce(sm.amount, 0)), segment_internal._fmt_int(coalesce(sm.amount, 0)), 'amount converted'),
                  (6, 'leak_rate', round(sm.leak_rate::numeric, 6), segment_internal._fmt_pct(sm.leak_rate),
                      'leak: expired of completed + expired')) k(o, id, v, shown, label))
        || '</div>';
    page := segment_internal._report_section('summary', 'Key figures',
        format('%s opportunities generated from %s to %s for %s; %s reached a manager, %s converted.',
               segment_internal._fmt_int(sm.opportunities), from_date, to_date, scope_label,
               segment_internal._fmt_pct(sm.dispatched::float8 / nullif(sm.treatment, 0)), segment_internal._fmt_int(sm.converted)),
        body);

    -- 2. Tag member trends: small multiples -----------------------------------
    -- x: the day within the period's refreshed days; y: the tag's own range
    WITH d AS (SELECT * FROM pg_catalog.jsonb_to_recordset(j_tag_trend) tt(tag name, category text, as_of date, members bigint)),
    dr AS (SELECT min(d.as_of) AS d0, max(d.as_of) AS d1, count(DISTINCT d.as_of) AS days FROM d),
    p AS (SELECT d.*, min(d.members) OVER w AS lo, max(d.members) OVER w AS hi
            FROM d WINDOW w AS (PARTITION BY d.tag)),
    t AS (SELECT p.tag, p.category, min(p.lo) AS lo, max(p.hi) AS hi,
                 (array_agg(p.members ORDER BY p.as_of))[1] AS first_v,
                 (array_agg(p.members ORDER BY p.as_of DESC))[1] AS last_v,
                 string_agg(format('%s,%s',
                     round((40 + 190 * CASE WHEN dr.d1 = dr.d0 THEN 0.5
                                            ELSE (p.as_of - dr.d0)::float8 / (dr.d1 - dr.d0) END)::numeric, 1),
                     round((78 - 50 * CASE WHEN p.hi = p.lo THEN 0.5
                                           ELSE (p.members - p.lo)::float8 / (p.hi - p.lo) END)::numeric, 1)),
                     ' ' ORDER BY p.as_of) AS pts,
                 count(*) AS np
            FROM p, dr
           GROUP BY p.tag, p.category)
    SELECT count(*) AS tags, min(dr.days) AS days, min(dr.d0) AS d0, min(dr.d1) AS d1,
           string_agg(format(
               '<svg class="chart multiple" viewBox="0 0 250 110" width="250" height="110" role="img" aria-label="%1$s" data-tag="%1$s" data-last="%2$s">'
               '<title>%1$s</title>'
               '<text x="4" y="13" class="mtitle">%3$s</text>'
               '<text x="246" y="13" text-anchor="end" class="mval">%4$s</text>'
               '<line x1="40" y1="24" x2="40" y2="80" class="axis"/><line x1="40" y1="80" x2="234" y2="80" class="axis"/>'
               '<text x="36" y="31" text-anchor="end" class="tick">%5$s</text>'
               '<text x="36" y="81" text-anchor="end" class="tick">%6$s</text>'
               '<text x="40" y="95" class="tick">%7$s</text><text x="234" y="95" text-anchor="end" class="tick">%8$s</text>'
               '%9$s</svg>',
               segment_internal._html(t.tag), t.last_v,
               segment_internal._html(CASE WHEN length(t.tag) > 24 THEN left(t.tag, 23) || '…' ELSE t.tag END),
               segment_internal._html(segment_internal._fmt_int(t.last_v)),
               segment_internal._html(segment_internal._fmt_int(t.hi)), segment_internal._html(segment_internal._fmt_int(t.lo)),
               to_char(dr.d0, 'MM-DD'), to_char(dr.d1, 'MM-DD'),
               CASE WHEN t.np = 1
                    THEN format('<circle cx="%s" r="3" class="s1"/>', replace(t.pts, ',', '" cy="'))
                    ELSE format('<polyline points="%s" class="line s1"/>', t.pts) END),
               '' ORDER BY t.category NULLS LAST, t.tag) AS svgs,
           (array_agg(t.tag ORDER BY t.last_v - t.first_v DESC, t.tag))[1] AS rise_tag,
           max(t.last_v - t.first_v) AS rise,
           (array_agg(t.tag ORDER BY t.last_v - t.first_v, t.tag))[1] AS fall_tag,
           min(t.last_v - t.first_v) AS fall
      INTO tg
      FROM t, dr;
    IF coalesce(tg.tags, 0) = 0 THEN
        chart := segment_internal._report_empty('No tag was refreshed in this period');
        reading := 'No refresh of the subject''s tags falls in the period.';
    ELSE
        chart := '<div class="multiples">' || tg.svgs || '</div>';
        reading := format('%s tags over %s refreshed days (%s to %s); largest rise: %s (%s), largest fall: %s (%s).',
                          tg.tags, tg.days, tg.d0, tg.d1, tg.rise_tag, segment_internal._fmt_int(tg.rise),
                          tg.fall_tag, segment_internal._fmt_int(tg.fall));
    END IF;
    IF org_unit IS NOT NULL THEN
        note := 'Scoped to ' || scope_label || ': segment keeps per-day tag sizes for the whole subject only, so each tag shows its members in the unit at the last refresh.';
    ELSE
        note := NULL;
    END IF;
    page := page || segment_internal._report_section('tags', 'Tag members over the period',
        reading || ' Each panel: customers (y, own scale: min and max marked) per refreshed day (x).', chart, note);

    -- 3. Scheme transitions: heatmaps; 4. scheme funnels --------------------------
    body := '';
    reading := NULL;
    FOR sc IN
        SELECT t.scheme, min(t.from_as_of) AS d1, min(t.to_as_of) AS d2
          FROM pg_catalog.jsonb_to_recordset(j_transitions) t(scheme name, from_as_of date, to_as_of date, from_bucket text, to_bucket text, from_position int, to_position int, customers bigint)
         GROUP BY t.scheme ORDER BY t.scheme
    LOOP
        WITH t AS (SELECT * FROM pg_catalog.jsonb_to_recordset(j_transitions) x(scheme name, from_as_of date, to_as_of date, from_bucket text, to_bucket text, from_position int, to_position int, customers bigint)
                    WHERE x.scheme = sc.scheme),
        b AS (SELECT bb.name::text AS bucket, bb.position FROM segment.scheme_bucket bb
                JOIN segment.scheme m USING (scheme_id) WHERE m.name = sc.scheme),
        rows_ AS (SELECT r.label, r.pos, row_number() OVER (ORDER BY r.pos, r.label) - 1 AS i
                    FROM (SELECT b.bucket AS label, b.position AS pos FROM b
                          UNION SELECT t.from_bucket, t.from_position FROM t) r),
        cols AS (SELECT c.label, c.pos, row_number() OVER (ORDER BY c.pos, c.label) - 1 AS j
                   FROM (SELECT b.bucket AS label, b.position AS pos FROM b
                         UNION SELECT t.to_bucket, t.to_position FROM t) c),
        rt AS (SELECT t.from_bucket, sum(t.customers) AS n FROM t GROUP BY 1)
        SELECT (SELECT count(*) FROM rows_) AS nr, (SELECT count(*) FROM cols) AS nc,
               (SELECT string_agg(format('<text x="146" y="%s" text-anchor="end" class="lab">%s</text>',
                                         70 + 30 * r.i + 19, segment_internal._html(r.label)), '' ORDER BY r.i) FROM rows_ r) AS rl,
               (SELECT string_agg(format('<text x="%s" y="62" text-anchor="middle" class="lab">%s</text>',
                                         150 + 84 * c.j + 42, segment_internal._html(c.label)), '' ORDER BY c.j) FROM cols c) AS cl,
               (SELECT string_agg(format(
                        '<g data-from="%1$s" data-to="%2$s" data-value="%3$s"><title>%1$s → %2$s: %4$s customers</title>'
                        '<rect x="%5$s" y="%6$s" width="82" height="28" class="cell%9$s" fill-opacity="%7$s"/>'
                        '<text x="%10$s" y="%11$s" text-anchor="middle" class="%8$s">%4$s</text></g>',
                        segment_internal._html(t.from_bucket), segment_internal._html(t.to_bucket), t.customers,
                        segment_internal._fmt_int(t.customers), 150 + 84 * c.j, 70 + 30 * r.i,
                        round((0.08 + 0.92 * t.customers::numeric / nullif(rt.n, 0)), 3),
                        CASE WHEN t.customers::numeric / nullif(rt.n, 0) > 0.5 THEN 'cv dark' ELSE 'cv' END,
                        CASE WHEN t.from_bucket = t.to_bucket THEN ' diag' ELSE '' END,
                        150 + 84 * c.j + 41, 70 + 30 * r.i + 19), '' ORDER BY r.i, c.j)
                  FROM t JOIN rows_ r ON r.label = t.from_bucket JOIN cols c ON c.label = t.to_bucket
                  JOIN rt ON rt.from_bucket = t.from_bucket) AS cells
          INTO h, w, chart, reading, note;
        -- h: rows, w: columns; chart: row labels; reading: column labels; note: cells
        body := body || format(
            '<figure><figcaption>%1$s: bucket on %2$s (rows) → bucket on %3$s (columns), customers; shade: share of the row</figcaption>'
            '<svg class="chart heatmap" viewBox="0 0 %4$s %5$s" width="%4$s" height="%5$s" role="img" aria-label="transitions of %1$s" data-scheme="%1$s">'
            '<text x="%6$s" y="20" text-anchor="middle" class="axt">to: bucket on %3$s</text>'
            '<text x="4" y="40" class="axt">from: bucket on %2$s</text>%7$s'
            '%8$s%9$s%10$s</svg></figure>',
            segment_internal._html(sc.scheme), sc.d1, sc.d2, 150 + 84 * w + 10, 70 + 30 * h + 10,
            150 + 42 * w, '', chart, reading, note);
    END LOOP;
    SELECT string_agg(format('%s: %s stayed in their bucket, %s moved to an earlier bucket, %s to a later one',
                             x.scheme, segment_internal._fmt_pct(x.stayed::float8 / nullif(x.tot, 0)),
                             segment_internal._fmt_int(x.up), segment_internal._fmt_int(x.down)), '; ' ORDER BY x.scheme)
      INTO reading
      FROM (SELECT t.scheme, sum(t.customers) FILTER (WHERE t.from_position BETWEEN 1 AND t.nb) AS tot,
                   coalesce(sum(t.customers) FILTER (WHERE t.from_bucket = t.to_bucket AND t.from_position BETWEEN 1 AND t.nb), 0) AS stayed,
                   coalesce(sum(t.customers) FILTER (WHERE t.from_position BETWEEN 1 AND t.nb AND t.to_position BETWEEN 1 AND t.nb
                                                       AND t.to_position < t.from_position), 0) AS up,
                   coalesce(sum(t.customers) FILTER (WHERE t.from_position BETWEEN 1 AND t.nb AND t.to_position BETWEEN 1 AND t.nb
                                                       AND t.to_position > t.from_position), 0) AS down
              FROM (SELECT x.*, (SELECT count(*) FROM segment.scheme_bucket b JOIN segment.scheme m USING (scheme_id)
                                  WHERE m.name = x.scheme) AS nb
                      FROM pg_catalog.jsonb_to_recordset(j_transitions) x(scheme name, from_as_of date, to_as_of date, from_bucket text, to_bucket text, from_position int, to_position int, customers bigint)) t
             GROUP BY t.scheme) x;
    IF body = '' THEN
        body := segment_internal._report_empty('No scheme has refreshes in this period');
        reading := 'No active scheme of the subject was refreshed on or before the end of the period.';
    ELSE
        reading := reading || '.';
    END IF;
    page := page || segment_internal._report_section('transitions', 'Tier and scheme transitions', reading, body,
        CASE WHEN org_unit IS NOT NULL THEN 'Scoped to ' || scope_label || ': customers are placed in the unit by their org unit now.' END);

    body := '';
    FOR sc IN
        SELECT f.scheme, min(f.as_of) AS as_of, sum(f.customers) AS total, max(f.customers) AS mx, count(*) AS nb,
               (array_agg(f.bucket ORDER BY f.customers DESC, f.position))[1] AS largest
          FROM pg_catalog.jsonb_to_recordset(j_funnel) f(scheme name, as_of date, "position" int, bucket name, customers bigint)
         GROUP BY f.scheme ORDER BY f.scheme
    LOOP
        SELECT string_agg(format(
                   '<g data-bucket="%1$s" data-value="%2$s"><text x="176" y="%3$s" text-anchor="end" class="lab">%1$s</text>'
                   '<rect x="180" y="%4$s" width="%5$s" height="20" class="bar s%6$s"/>'
                   '<text x="%7$s" y="%3$s" class="val">%8$s (%9$s)</text></g>',
                   segment_internal._html(f.bucket), f.customers, 44 + 26 * (f.position - 1) + 14, 44 + 26 * (f.position - 1),
                   round(600 * f.customers::numeric / nullif(sc.mx, 0), 1) + 0.5, 1 + (f.position - 1) % 6,
                   186 + round(600 * f.customers::numeric / nullif(sc.mx, 0)), segment_internal._fmt_int(f.customers),
                   segment_internal._fmt_pct(f.customers::float8 / nullif(sc.total, 0))), '' ORDER BY f.position)
          INTO chart
          FROM pg_catalog.jsonb_to_recordset(j_funnel) f(scheme name, as_of date, "position" int, bucket name, customers bigint) WHERE f.scheme = sc.scheme;
        ticks := segment_internal._report_ticks(0, greatest(sc.mx, 1), 4);
        body := body || format(
            '<figure><figcaption>%1$s on %2$s: customers per bucket, in the scheme''s order (%% of the scheme''s customers)</figcaption>'
            '<svg class="chart funnel" viewBox="0 0 900 %3$s" width="900" height="%3$s" role="img" aria-label="funnel of %1$s" data-scheme="%1$s">'
            '<text x="180" y="16" class="axt">customers</text>%4$s'
            '<line x1="180" y1="36" x2="180" y2="%5$s" class="axis"/>%6$s</svg></figure>',
            segment_internal._html(sc.scheme), sc.as_of, 44 + 26 * sc.nb + 10,
            (SELECT string_agg(format('<line x1="%1$s" y1="32" x2="%1$s" y2="%2$s" class="grid"/>'
                                      '<text x="%1$s" y="30" text-anchor="middle" class="tick">%3$s</text>',
                                      180 + round(600 * tk / greatest(sc.mx, 1))::int, 44 + 26 * sc.nb,
                                      segment_internal._fmt_int(tk::numeric)), '')
               FROM unnest(ticks) tk WHERE tk <= sc.mx),
            44 + 26 * sc.nb, chart);
    END LOOP;
    SELECT string_agg(format('%s: largest bucket %s (%s of %s customers)', x.scheme, x.largest,
                             segment_internal._fmt_pct(x.mx::float8 / nullif(x.total, 0)), segment_internal._fmt_int(x.total)),
                      '; ' ORDER BY x.scheme)
      INTO reading
      FROM (SELECT f.scheme, sum(f.customers) AS total, max(f.customers) AS mx,
                   (array_agg(f.bucket ORDER BY f.customers DESC, f.position))[1] AS largest
              FROM pg_catalog.jsonb_to_recordset(j_funnel) f(scheme name, as_of date, "position" int, bucket name, customers bigint) GROUP BY f.scheme) x;
    IF body = '' THEN
        body := segment_internal._report_empty('No scheme has refreshes in this period');
        reading := 'No active scheme of the subject was refreshed on or before the end of the period.';
    ELSE
        reading := reading || '.';
    END IF;
    page := page || segment_internal._report_section('funnel', 'Segment funnel: customers per stage and tier', reading, body);

    -- 5. Opportunity funnel per rule ------------------------------------------
    SELECT count(*), max(length(r.rule)) INTO n, w FROM pg_catalog.jsonb_to_recordset(j_rules) r(rule name, rule_id int, kind text, generated bigint, control bigint, dispatched bigint, started bigint, completed bigint, converted bigint, cancelled bigint, expired bigint, open bigint, leak_rate float8, amount numeric, treatment_evaluated bigint, treatment_converted bigint, control_evaluated bigint, control_converted bigint, treatment_rate float8, control_rate float8, lift float8, lift_low float8, lift_high float8, p_value float8);
    IF n = 0 THEN
        body := segment_internal._report_empty('No opportunity was generated in this period');
        reading := 'No opportunity was generated in the period.';
    ELSE
        x0 := 210;
        WITH r AS (SELECT x.*, row_number() OVER (ORDER BY x.rule) - 1 AS i
                     FROM pg_catalog.jsonb_to_recordset(j_rules) x(rule name, rule_id int, kind text, generated bigint, control bigint, dispatched bigint, started bigint, completed bigint, converted bigint, cancelled bigint, expired bigint, open bigint, leak_rate float8, amount numeric, treatment_evaluated bigint, treatment_converted bigint, control_evaluated bigint, control_converted bigint, treatment_rate float8, control_rate float8, lift float8, lift_low float8, lift_high float8, p_value float8)),
        st AS (SELECT * FROM (VALUES (0, 'generated'), (1, 'dispatched'), (2, 'started'), (3, 'completed'), (4, 'converted')) v(k, stage))
        SELECT string_agg(format(
                   '<g data-rule="%1$s" data-stage="%2$s" data-value="%3$s"><title>%1$s, %2$s: %4$s</title>'
                   '<rect x="%5$s" y="%6$s" width="118" height="18" class="track"/>'
                   '<rect x="%5$s" y="%6$s" width="%7$s" height="18" class="bar s%8$s"/>'
                   '<text x="%9$s" y="%10$s" class="val">%4$s</text></g>',
                   segment_internal._html(r.rule), st.stage, v.val, segment_internal._fmt_int(v.val),
                   x0 + 130 * st.k, 40 + 26 * r.i,
                   round(118 * v.val::numeric / greatest(r.generated, 1), 1), st.k + 1,
                   x0 + 130 * st.k + 4, 40 + 26 * r.i + 13), '' ORDER BY r.i, st.k)
               || string_agg(DISTINCT format(
                   '<text x="%1$s" y="%2$s" text-anchor="end" class="lab">%3$s</text>'
                   '<g data-rule="%3$s" data-stage="leak" data-value="%7$s"><text x="%4$s" y="%2$s" class="val%6$s">%5$s</text></g>',
                   x0 - 6, 40 + 26 * r.i + 13, segment_internal._html(r.rule), x0 + 130 * 5 + 4,
                   segment_internal._html(segment_internal._fmt_pct(r.leak_rate) || ' (' || segment_internal._fmt_int(r.expired) || ' expired)'),
                   CASE WHEN r.leak_rate > 0.5 THEN ' warn' ELSE '' END, r.expired), '')
          INTO chart
          FROM r CROSS JOIN st
         CROSS JOIN LATERAL (SELECT CASE st.k WHEN 0 THEN r.generated WHEN 1 THEN r.dispatched WHEN 2 THEN r.started
                                              WHEN 3 THEN r.completed ELSE r.converted END AS val) v;
        body := format(
            '<svg class="chart oppfunnel" viewBox="0 0 1080 %1$s" width="1080" height="%1$s" role="img" aria-label="opportunity funnel per rule">'
            '<text x="%2$s" y="14" class="axt">treatment opportunities per stage (bar: share of the rule''s generated)</text>'
            '%3$s<text x="%4$s" y="32" class="axt">leak</text>%5$s</svg>',
            40 + 26 * n + 4, x0,
            (SELECT string_agg(format('<text x="%s" y="32" class="axt">%s</text>', x0 + 130 * v.k, v.stage), '')
               FROM (VALUES (0, 'generated'), (1, 'dispatched'), (2, 'started'), (3, 'completed'), (4, 'converted')) v(k, stage)),
            x0 + 130 * 5 + 4, chart);
        reading := format('Of %s treatment opportunities, %s were dispatched, %s started, %s completed and %s converted; %s leaked (expired unworked: %s).',
                          segment_internal._fmt_int(sm.treatment),
                          segment_internal._fmt_pct(sm.dispatched::float8 / nullif(sm.treatment, 0)),
                          segment_internal._fmt_pct(sm.started::float8 / nullif(sm.treatment, 0)),
                          segment_internal._fmt_pct(sm.completed::float8 / nullif(sm.treatment, 0)),
                          segment_internal._fmt_int(sm.converted), segment_internal._fmt_pct(sm.leak_rate), segment_internal._fmt_int(sm.expired));
    END IF;
    page := page || segment_internal._report_section('opportunities', 'Opportunity funnel per rule', reading, body,
        'Leak: expired / (completed + expired). Control opportunities are not worked and not counted here.');

    -- 6. Lift against control: forest plot --------------------------------------
    SELECT count(*), min(least(r.lift_low, 0)), max(greatest(r.lift_high, 0))
      INTO n, lo, hi
      FROM pg_catalog.jsonb_to_recordset(j_rules) r(rule name, rule_id int, kind text, generated bigint, control bigint, dispatched bigint, started bigint, completed bigint, converted bigint, cancelled bigint, expired bigint, open bigint, leak_rate float8, amount numeric, treatment_evaluated bigint, treatment_converted bigint, control_evaluated bigint, control_converted bigint, treatment_rate float8, control_rate float8, lift float8, lift_low float8, lift_high float8, p_value float8) WHERE r.lift IS NOT NULL;
    IF n = 0 THEN
        body := segment_internal._report_empty('No rule has outcomes for both treatment and control in this period');
        reading := 'No rule has evaluated outcomes for both its treatment and its control group in the period.';
    ELSE
        IF hi - lo < 1e-9 THEN lo := lo - 0.01; hi := hi + 0.01; END IF;
        ticks := segment_internal._report_ticks(lo * 100, hi * 100, 6);
        lo := least(lo, ticks[1] / 100);
        hi := greatest(hi, ticks[array_upper(ticks, 1)] / 100);
        x0 := 210;
        pw := 520;
        WITH r AS (SELECT x.*, row_number() OVER (ORDER BY x.lift DESC, x.rule) - 1 AS i
                     FROM pg_catalog.jsonb_to_recordset(j_rules) x(rule name, rule_id int, kind text, generated bigint, control bigint, dispatched bigint, started bigint, completed bigint, converted bigint, cancelled bigint, expired bigint, open bigint, leak_rate float8, amount numeric, treatment_evaluated bigint, treatment_converted bigint, control_evaluated bigint, control_converted bigint, treatment_rate float8, control_rate float8, lift float8, lift_low float8, lift_high float8, p_value float8) WHERE x.lift IS NOT NULL)
        SELECT string_agg(format(
                   '<g data-rule="%1$s" data-lift="%2$s" data-low="%3$s" data-high="%4$s">'
                   '<title>%1$s: lift %5$s</title>'
                   '<text x="%6$s" y="%7$s" text-anchor="end" class="lab">%1$s</text>'
                   '<line x1="%8$s" y1="%9$s" x2="%10$s" y2="%9$s" class="ci%13$s"/>'
                   '<rect x="%11$s" y="%12$s" width="8" height="8" class="pt%13$s"/>'
                   '<text x="%14$s" y="%7$s" class="val">%5$s</text></g>',
                   segment_internal._html(r.rule), round(r.lift::numeric, 6), round(r.lift_low::numeric, 6), round(r.lift_high::numeric, 6),
                   segment_internal._html(format('%s pts [%s, %s]; %s vs %s (n %s / %s); p %s',
                       to_char(round((r.lift * 100)::numeric, 1), 'FMSG990.0'),
                       to_char(round((r.lift_low * 100)::numeric, 1), 'FMSG990.0'),
                       to_char(round((r.lift_high * 100)::numeric, 1), 'FMSG990.0'),
                       segment_internal._fmt_pct(r.treatment_rate), segment_internal._fmt_pct(r.control_rate),
                       segment_internal._fmt_int(r.treatment_evaluated), segment_internal._fmt_int(r.control_evaluated),
                       CASE WHEN r.p_value IS NULL THEN 'n/a' WHEN r.p_value < 0.0001 THEN '<0.0001'
                            ELSE round(r.p_value::numeric, 4)::text END)),
                   x0 - 6, 50 + 24 * r.i + 4,
                   round((x0 + pw * (r.lift_low - lo) / (hi - lo))::numeric, 1), 50 + 24 * r.i,
                   round((x0 + pw * (r.lift_high - lo) / (hi - lo))::numeric, 1),
                   round((x0 + pw * (r.lift - lo) / (hi - lo) - 4)::numeric, 1), 50 + 24 * r.i - 4,
                   CASE WHEN r.lift_low > 0 THEN ' pos' WHEN r.lift_high < 0 THEN ' neg' ELSE '' END,
                   x0 + pw + 12), '' ORDER BY r.i) AS rows_,
               count(*) FILTER (WHERE r.lift_low > 0) AS better,
               (array_agg(r.rule ORDER BY r.lift DESC, r.rule))[1] AS best,
               to_char(round((max(r.lift) * 100)::numeric, 1), 'FMSG990.0') AS best_lift
          INTO fo
          FROM r;
        body := format(
            '<svg class="chart forest" viewBox="0 0 1080 %1$s" width="1080" height="%1$s" role="img" aria-label="lift against control per rule">'
            '<text x="%2$s" y="14" class="axt">absolute lift, percentage points: treatment rate − control rate, with its 95%% interval</text>'
            '%3$s<line x1="%4$s" y1="30" x2="%4$s" y2="%5$s" class="zero"/>%6$s'
            '<text x="%7$s" y="14" class="axt">lift [95%% CI]; treatment vs control rate</text></svg>',
            50 + 24 * n + 12, x0,
            (SELECT string_agg(format('<line x1="%1$s" y1="30" x2="%1$s" y2="%2$s" class="grid"/>'
                                      '<text x="%1$s" y="%3$s" text-anchor="middle" class="tick">%4$s</text>',
                                      round((x0 + pw * (tk / 100 - lo) / (hi - lo))::numeric, 1), 50 + 24 * n - 8,
                                      50 + 24 * n + 6, to_char(round(tk::numeric, 1), 'FMSG9990.0')), '')
               FROM unnest(ticks) tk),
            round((x0 + pw * (0 - lo) / (hi - lo))::numeric, 1), 50 + 24 * n - 8,
            fo.rows_, x0 + pw + 12);
        reading := format('%s of %s rules with a control group convert better than control at 95%% confidence; the largest lift is %s (%s points).',
                          fo.better, n, fo.best, fo.best_lift);
    END IF;
    page := page || segment_internal._report_section('lift', 'Lift against control per rule', reading, body,
        'Conversion = goal met when the window closed (segment.evaluate_outcomes), intent to treat; interval: Wald, 95%; p: two-proportion z-test.');

    -- 7. Manager league ---------------------------------------------------------
    SELECT count(*) FILTER (WHERE m.manager IS NOT NULL) AS managers,
           max(m.converted) FILTER (WHERE m.manager IS NOT NULL) AS max_conv,
           max(m.amount) FILTER (WHERE m.manager IS NOT NULL) AS max_amount,
           sum(m.assigned) FILTER (WHERE m.manager IS NULL) AS pool
      INTO mg
      FROM pg_catalog.jsonb_to_recordset(j_managers) m(manager text, assigned bigint, dispatched bigint, started bigint, completed bigint, converted bigint, conversion_rate float8, amount numeric, expired bigint, leak_rate float8, goal_rate float8);
    IF mg.managers = 0 THEN
        body := segment_internal._report_empty('No opportunity was assigned to a manager in this period');
        reading := 'No treatment opportunity of the period was assigned to a manager.';
    ELSE
        WITH m AS (SELECT x.*, row_number() OVER (ORDER BY x.converted DESC, x.amount DESC NULLS LAST, x.manager) - 1 AS i
                     FROM pg_catalog.jsonb_to_recordset(j_managers) x(manager text, assigned bigint, dispatched bigint, started bigint, completed bigint, converted bigint, conversion_rate float8, amount numeric, expired bigint, leak_rate float8, goal_rate float8)
                    WHERE x.manager IS NOT NULL),
        top AS (SELECT * FROM m WHERE m.i < 20)
        SELECT string_agg(format(
                   '<g data-manager="%1$s" data-converted="%2$s" data-amount="%3$s" data-leak="%4$s">'
                   '<text x="136" y="%5$s" text-anchor="end" class="lab">%1$s</text>'
                   '<rect x="140" y="%6$s" width="%7$s" height="16" class="bar s1"/>'
                   '<text x="%8$s" y="%5$s" class="val">%9$s</text>'
                   '<rect x="460" y="%6$s" width="%10$s" height="16" class="bar s3"/>'
                   '<text x="%11$s" y="%5$s" class="val">%12$s</text>'
                   '<rect x="780" y="%6$s" width="%13$s" height="16" class="bar s5"/>'
                   '<text x="%14$s" y="%5$s" class="val">%15$s</text></g>',
                   segment_internal._html(t.manager), t.converted, coalesce(t.amount, 0), coalesce(round(t.leak_rate::numeric, 6)::text, ''),
                   48 + 22 * t.i + 12, 48 + 22 * t.i,
                   round(200 * t.converted::numeric / greatest(mg.max_conv, 1), 1),
                   144 + round(200 * t.converted::numeric / greatest(mg.max_conv, 1)),
                   segment_internal._html(segment_internal._fmt_int(t.converted) || ' (' || segment_internal._fmt_pct(t.conversion_rate) || ' of '
                                 || segment_internal._fmt_int(t.assigned) || ')'),
                   round(200 * coalesce(t.amount, 0) / greatest(mg.max_amount, 1), 1),
                   464 + round(200 * coalesce(t.amount, 0) / greatest(mg.max_amount, 1)),
                   segment_internal._fmt_int(coalesce(t.amount, 0)),
                   round((200 * coalesce(t.leak_rate, 0))::numeric, 1),
                   784 + round((200 * coalesce(t.leak_rate, 0))::numeric),
                   segment_internal._html(segment_internal._fmt_pct(t.leak_rate) || ' (' || segment_internal._fmt_int(t.expired) || ')')),
                   '' ORDER BY t.i),
               count(*), (array_agg(t.manager ORDER BY t.i))[1], (array_agg(t.converted ORDER BY t.i))[1],
               (array_agg(t.amount ORDER BY t.i))[1]
          INTO chart, w, note, h, lo
          FROM top t;
        body := format(
            '<svg class="chart league" viewBox="0 0 1080 %1$s" width="1080" height="%1$s" role="img" aria-label="manager league">'
            '<text x="136" y="32" text-anchor="end" class="axt">manager</text>'
            '<text x="140" y="32" class="axt">conversions (count; %% of assigned leads)</text>'
            '<text x="460" y="32" class="axt">amount converted</text>'
            '<text x="780" y="32" class="axt">leak rate (expired)</text>'
            '<line x1="140" y1="40" x2="140" y2="%2$s" class="axis"/><line x1="460" y1="40" x2="460" y2="%2$s" class="axis"/>'
            '<line x1="780" y1="40" x2="780" y2="%2$s" class="axis"/>%3$s</svg>',
            48 + 22 * w + 8, 48 + 22 * w, chart);
        reading := format('%s managers had leads; the top converter is %s with %s conversions (amount %s)%s. Showing the top %s.',
                          segment_internal._fmt_int(mg.managers), note, segment_internal._fmt_int(h), segment_internal._fmt_int(coalesce(lo, 0)::numeric),
                          CASE WHEN mg.pool IS NOT NULL THEN '; ' || segment_internal._fmt_int(mg.pool) || ' leads stayed in the pool' ELSE '' END,
                          w);
    END IF;
    page := page || segment_internal._report_section('managers', 'Manager league', reading, body);

    -- 8. Nightly run durations ----------------------------------------------------
    SELECT count(*) AS runs, max(r.seconds) AS longest,
           count(*) FILTER (WHERE r.kind = 'refresh') AS refreshes, count(*) FILTER (WHERE r.kind = 'nightly') AS nightly,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY r.seconds) FILTER (WHERE r.kind = 'refresh') AS median,
           count(*) FILTER (WHERE r.kind = 'nightly' AND r.status <> 'succeeded') AS bad
      INTO rn
      FROM pg_catalog.jsonb_to_recordset(j_runs) r(kind text, run_id bigint, as_of date, started_at timestamptz, finished_at timestamptz, seconds float8, status text) WHERE r.seconds IS NOT NULL;
    IF rn.runs = 0 THEN
        body := segment_internal._report_empty('No refresh or nightly run in this period');
        reading := 'No refresh of the subject and no nightly run has an as_of date in the period.';
    ELSE
        hi := greatest(rn.longest, 0.001);
        ticks := segment_internal._report_ticks(0, hi, 4);
        hi := greatest(hi, ticks[array_upper(ticks, 1)]);
        w := least(28, greatest(3, 900 / rn.runs - 4));
        WITH r AS (SELECT x.*, row_number() OVER (ORDER BY x.started_at, x.kind, x.run_id) - 1 AS i
                     FROM pg_catalog.jsonb_to_recordset(j_runs) x(kind text, run_id bigint, as_of date, started_at timestamptz, finished_at timestamptz, seconds float8, status text) WHERE x.seconds IS NOT NULL)
        SELECT string_agg(format(
                   '<g data-kind="%1$s" data-run="%2$s" data-seconds="%3$s"><title>%1$s run %2$s as of %4$s: %5$s s (%6$s)</title>'
                   '<rect x="%7$s" y="%8$s" width="%9$s" height="%10$s" class="bar %11$s"/></g>%12$s',
                   r.kind, r.run_id, round(r.seconds::numeric, 3), r.as_of, round(r.seconds::numeric, 2), segment_internal._html(r.status),
                   80 + (w + 4) * r.i, round((250 - 210 * r.seconds / hi)::numeric, 1), w,
                   round((210 * r.seconds / hi)::numeric, 1) + 0.5,
                   CASE WHEN r.kind = 'refresh' THEN 's1' ELSE 's4' END
                   || CASE WHEN r.status NOT IN ('succeeded') THEN ' failed' ELSE '' END,
                   CASE WHEN r.i % greatest(1, (rn.runs / 15)::int) = 0
                        THEN format('<text x="%s" y="266" text-anchor="middle" class="tick">%s</text>',
                                    80 + (w + 4) * r.i + w / 2, to_char(r.as_of, 'MM-DD')) ELSE '' END),
                   '' ORDER BY r.i)
          INTO chart FROM r;
        body := format(
            '<svg class="chart runs" viewBox="0 0 1080 300" width="1080" height="300" role="img" aria-label="run durations">'
            '<text x="12" y="24" class="axt">seconds</text>%1$s'
            '<line x1="76" y1="250" x2="%2$s" y2="250" class="axis"/><line x1="76" y1="34" x2="76" y2="250" class="axis"/>%3$s'
            '<text x="%4$s" y="290" text-anchor="middle" class="axt">as_of date of each run, in the order they ran</text>'
            '<rect x="820" y="12" width="12" height="12" class="bar s1"/><text x="838" y="22" class="tick">refresh of %5$s</text>'
            '<rect x="960" y="12" width="12" height="12" class="bar s4"/><text x="978" y="22" class="tick">nightly run</text></svg>',
            (SELECT string_agg(format('<line x1="76" y1="%1$s" x2="1070" y2="%1$s" class="grid"/>'
                                      '<text x="70" y="%2$s" text-anchor="end" class="tick">%3$s</text>',
                                      round((250 - 210 * tk / hi)::numeric, 1), round((250 - 210 * tk / hi)::numeric, 1) + 4,
                                      CASE WHEN hi >= 10 THEN segment_internal._fmt_int(tk::numeric) ELSE round(tk::numeric, 2)::text END), '')
               FROM unnest(ticks) tk),
            80 + (w + 4) * rn.runs, chart, 80 + ((w + 4) * rn.runs) / 2, segment_internal._html(subject));
        reading := format('%s refreshes (median %s s, longest run %s s) and %s nightly runs%s.',
                          rn.refreshes, coalesce(round(rn.median::numeric, 2)::text, 'n/a'), round(rn.longest::numeric, 2),
                          rn.nightly, CASE WHEN rn.bad > 0 THEN format(' (%s not succeeded, in red)', rn.bad) ELSE '' END);
    END IF;
    page := page || segment_internal._report_section('runs', 'Nightly run durations', reading, body,
        'Runs are not scoped: one refresh covers every org unit.');

    RETURN '<!DOCTYPE html>' || E'\n'
        || '<html lang="zh-CN"><head><meta charset="utf-8">'
        || '<meta name="viewport" content="width=device-width, initial-scale=1">'
        || '<title>' || segment_internal._html(format('segment report: %s, %s to %s, %s', subject, from_date, to_date, scope_label)) || '</title>'
        || '<style>'
        || 'body{font-family:"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei",'
        || 'system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1f2933;background:#f7f8fa;margin:0;padding:24px 32px;max-width:1120px}'
        || 'header h1{font-size:24px;margin:0 0 4px}header p{margin:2px 0;color:#52606d}'
        || 'section{background:#fff;border:1px solid #d9dee4;border-radius:6px;padding:12px 18px;margin:16px 0}'
        || 'h2{font-size:18px;margin:4px 0 2px}p.reading{margin:2px 0 10px;color:#243b53;font-weight:600}'
        || 'p.note{margin:6px 0 0;color:#7b8794;font-size:12px}figure{margin:8px 0 14px}figcaption{font-size:13px;color:#52606d;margin-bottom:4px}'
        || '.kpis{display:flex;flex-wrap:wrap;gap:12px}.kpi{background:#f0f4f8;border-radius:6px;padding:10px 14px;min-width:150px}'
        || '.kpi .v{display:block;font-size:22px;font-weight:700;color:#102a43}.kpi .l{font-size:12px;color:#52606d}'
        || '.multiples{display:flex;flex-wrap:wrap;gap:6px}svg.chart{display:block;max-width:100%;height:auto;background:#fff}'
        || 'svg.multiple{display:inline-block;border:1px solid #e4e7eb;border-radius:4px}'
        || 'svg text{font-family:inherit;font-size:12px;fill:#323f4b}svg .mtitle{font-weight:600}svg .mval{fill:#1d4ed8;font-weight:600}'
        || 'svg .tick{font-size:10px;fill:#7b8794}svg .axt{font-size:12px;font-weight:600;fill:#52606d}svg .muted{fill:#9aa5b1}'
        || 'svg .lab{font-size:12px}svg .val{font-size:11px;stroke:#fff;stroke-width:3px;paint-order:stroke;stroke-linejoin:round}svg .val.warn{fill:#c53030;font-weight:600}'
        || 'svg .axis{stroke:#7b8794;stroke-width:1}svg .grid{stroke:#e4e7eb;stroke-width:1}svg .zero{stroke:#323f4b;stroke-width:1.5}'
        || 'svg .frame{fill:#fafbfc;stroke:#d9dee4}svg .track{fill:#f0f4f8}'
        || 'svg .line{fill:none;stroke-width:2}svg polyline.s1{stroke:#2563eb}svg circle.s1{fill:#2563eb}'
        || 'svg .bar.s1{fill:#2563eb}svg .bar.s2{fill:#0891b2}svg .bar.s3{fill:#059669}svg .bar.s4{fill:#d97706}'
        || 'svg .bar.s5{fill:#dc2626}svg .bar.s6{fill:#7c3aed}svg .bar.failed{fill:#b91c1c}'
        || 'svg .cell{fill:#1d4ed8}svg .cell.diag{stroke:#102a43;stroke-width:1.5}svg .cv{font-size:11px;fill:#102a43}svg .cv.dark{fill:#fff}'
        || 'svg .ci{stroke:#7b8794;stroke-width:2}svg .ci.pos{stroke:#059669}svg .ci.neg{stroke:#dc2626}'
        || 'svg .pt{fill:#52606d}svg .pt.pos{fill:#059669}svg .pt.neg{fill:#dc2626}'
        || 'footer{color:#7b8794;font-size:12px;margin-top:20px}'
        || '@media print{body{background:#fff}section{break-inside:avoid}}'
        || '</style></head><body>' || E'\n'
        || '<header><h1>' || segment_internal._html(format('Customer operations report: %s', subject)) || '</h1>'
        || '<p>' || segment_internal._html(format('Period %s to %s · scope: %s · opportunities by generation date, tags and tiers by refresh date.',
                                         from_date, to_date, scope_label)) || '</p></header>' || E'\n'
        || page
        || '<footer>' || segment_internal._html(format(
               'Generated by segment.report(%L, %L, %L, %s) at %s. Aggregates only: no customer key, name, phone or message. '
               'Each figure comes from segment.report_summary, report_tag_trend, report_transitions, report_funnel, '
               'report_rules, report_managers and report_runs with the same arguments.',
               subject, from_date, to_date, coalesce(quote_literal(org_unit), 'NULL'),
               to_char(now(), 'YYYY-MM-DD HH24:MI:SS TZ')))
        || '</footer></body></html>' || E'\n';
END $$;
COMMENT ON FUNCTION segment.report(name, date, date, text) IS
    'one self-contained offline HTML page (inline SVG charts) of a subject''s tags, tiers, opportunities, lift, managers and runs over a period; org_unit scopes it';
