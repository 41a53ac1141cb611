-- 0.2.0: the nightly run advances the contact journeys (part 87) as its
-- last step: a new step name, and _nightly_step's final body (part 93's
-- snapshot check of the refresh step and the advance_journeys step; this
-- part comes after 93 so that its body is the one that stays). run_all's
-- final body (with the step in its list) is in 85-search-path.sql.
ALTER TABLE segment.nightly_step DROP CONSTRAINT nightly_step_step_check;
ALTER TABLE segment.nightly_step ADD CONSTRAINT nightly_step_step_check
    CHECK (step IN ('refresh', 'expire', 'evaluate_outcomes', 'generate', 'size_snapshots',
                    'advance_journeys'));

-- @function segment_internal._nightly_step
