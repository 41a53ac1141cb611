-- 0.2.0: the nightly run advances the contact journeys (part 87) as its
-- last step: a new step name, and _nightly_step's final body (part 93's
-- snapshot check of the refresh step and the advance_journeys step; this
-- part comes after 93 so that its body is the one that stays). run_all's
-- final body (with the step in its list) is in 85-search-path.sql.
ALTER TABLE segment.nightly_step DROP CONSTRAINT nightly_step_step_check;
ALTER TABLE segment.nightly_step ADD CONSTRAINT nightly_step_step_check
    CHECK (step IN ('refresh', 'expire', 'evaluate_outcomes', 'generate', 'size_snapshots',
                    'advance_journeys'));

CREATE OR REPLACE FUNCTION segment_internal._nightly_step(step text, subject name, as_of date, run_id bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    result jsonb;
    n bigint;
    refresh_run bigint;
    sid int;
    s record;
    snap date;
BEGIN
    IF step = 'refresh' THEN
        SELECT x.subject_id INTO sid FROM segment.subject x WHERE x.name = _nightly_step.subject;
        -- a snapshot subject (part 33): the night's snapshot must be loaded;
        -- never silently yesterday's again
        IF (SELECT x.snapshot_column FROM segment.subject x WHERE x.subject_id = sid) IS NOT NULL THEN
            snap := segment.latest_snapshot(_nightly_step.subject, _nightly_step.as_of);
            IF snap IS DISTINCT FROM _nightly_step.as_of THEN
                RAISE EXCEPTION 'subject "%": the snapshot of % is not loaded yet',
                                _nightly_step.subject, to_char(_nightly_step.as_of, 'YYYY-MM-DD')
                    USING ERRCODE = 'no_data_found',
                          DETAIL = CASE WHEN snap IS NULL THEN 'The table has no snapshot on or before that date.'
                                        ELSE format('The newest snapshot is %s; the nightly run does not reuse an older snapshot.',
                                                    to_char(snap, 'YYYY-MM-DD')) END,
                          HINT = 'Run the nightly run after the ETL load (docs/dba-guide.md#snapshot-subjects); segment.refresh(subject, as_of) reads an older snapshot deliberately.';
            END IF;
        END IF;
        SELECT jsonb_build_object(
                   'results', count(*),
                   'failed_rules', count(*) FILTER (WHERE r.members IS NULL),
                   'entered', coalesce(sum(r.entered), 0),
                   'exited', coalesce(sum(r.exited), 0))
          INTO result
          FROM segment.refresh(_nightly_step.subject, _nightly_step.as_of) r;
        SELECT r.run_id, r.rows_scanned, r.error INTO s
          FROM segment.run r WHERE r.subject_id = sid ORDER BY r.run_id DESC LIMIT 1;
        RETURN result || jsonb_build_object('refresh_run_id', s.run_id, 'rows_scanned', s.rows_scanned)
                      || CASE WHEN s.error IS NULL THEN '{}'::jsonb
                              ELSE jsonb_build_object('rule_errors', s.error) END;
    ELSIF step = 'expire' THEN
        EXECUTE 'SELECT segment.expire_opportunities($1)' INTO n USING as_of;
        RETURN jsonb_build_object('expired', n);
    ELSIF step = 'evaluate_outcomes' THEN
        EXECUTE 'SELECT segment.evaluate_outcomes($1)' INTO n USING as_of;
        RETURN jsonb_build_object('evaluated', n);
    ELSIF step = 'generate' THEN
        -- columns read by name from the row as jsonb: the rule's name is the
        -- first column (rule_name), the counts are bigint columns
        EXECUTE $q$
            WITH g AS (SELECT to_jsonb(g) AS j, (to_jsonb(g) ->> (SELECT k FROM jsonb_object_keys(to_jsonb(g)) k
                                                                   WHERE k IN ('rule_name', 'rule') LIMIT 1)) AS rule
                         FROM segment.generate(NULL, $1) g)
            SELECT jsonb_build_object('rules', count(*))
                   || (SELECT jsonb_object_agg(c, coalesce(s, 0)) FROM
                         (SELECT c, sum((g.j ->> c)::bigint) AS s
                            FROM unnest(ARRAY['candidates', 'generated', 'control', 'skipped_cooldown',
                                              'skipped_cap', 'over_capacity', 'failed']) c
                            LEFT JOIN g ON g.j ? c GROUP BY c) t)
                   || jsonb_build_object('by_rule', coalesce(jsonb_object_agg(g.rule, g.j - 'rule_name' - 'rule')
                                                             FILTER (WHERE g.rule IS NOT NULL), '{}'))
              FROM g $q$
          INTO result USING as_of;
        RETURN result;
    ELSIF step = 'advance_journeys' THEN
        -- journeys (part 87) after generate, so that the contact cap counts
        -- the day's opportunities: to now, or to the end of a past day
        EXECUTE 'SELECT segment.advance_journeys($1)' INTO n
          USING CASE WHEN as_of >= current_date THEN now()
                     ELSE (as_of + 1)::timestamptz - interval '1 microsecond' END;
        RETURN jsonb_build_object('touches', n,
                                  'journeys', (SELECT count(*) FROM segment.journey j WHERE j.active));
    ELSIF step = 'size_snapshots' THEN
        -- refresh writes segment.size_snapshot (and universe_history) for its
        -- as_of; this step checks that every subject refreshed in this run
        -- has them (from its refresh or a later one of the same date)
        result := '{}';
        FOR s IN SELECT t.subject, (t.counts ->> 'refresh_run_id')::bigint AS refresh_run, x.subject_id
                   FROM segment.nightly_step t JOIN segment.subject x ON x.name = t.subject
                  WHERE t.run_id = _nightly_step.run_id AND t.step = 'refresh' AND t.status = 'succeeded'
                  ORDER BY t.step_no
        LOOP
            IF NOT EXISTS (SELECT 1 FROM segment.universe_history u
                            WHERE u.subject_id = s.subject_id AND u.as_of = _nightly_step.as_of
                              AND u.run_id >= s.refresh_run) THEN
                RAISE EXCEPTION 'subject "%" has no size snapshot for %', s.subject, as_of
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = format('Its refresh (segment.run %s) succeeded but segment.universe_history has no row for that date from it or a later refresh.', s.refresh_run),
                          HINT = 'Something removed the snapshot after the refresh; run the nightly run for this date again.';
            END IF;
            SELECT count(*) INTO n FROM segment.size_snapshot z
             WHERE z.subject_id = s.subject_id AND z.as_of = _nightly_step.as_of;
            result := result || jsonb_build_object(s.subject, n);
        END LOOP;
        RETURN jsonb_build_object('subjects', (SELECT count(*) FROM jsonb_object_keys(result)),
                                  'rows', (SELECT coalesce(sum(v::bigint), 0) FROM jsonb_each_text(result) e(k, v)),
                                  'by_subject', result);
    END IF;
    RAISE EXCEPTION 'unknown nightly step "%"', step USING ERRCODE = 'invalid_parameter_value';
END $$;
