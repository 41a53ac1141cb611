-- Upgrade part (refresh pipeline): 0.1.0 ran what a refresh does afterwards
-- in triggers on segment's own state tables; 0.2.0 runs it from the refresh
-- (src/refresh_pipeline.c), in named steps logged in segment.run_step
-- (part 85-refresh-pipeline, before this one). The triggers and their
-- functions go; live maintenance's entry functions call the shared ones.

DROP TRIGGER segment_entry_before ON segment.tag_state;
DROP TRIGGER segment_entry_before ON segment.bucket_state;
DROP TRIGGER segment_entry_before ON segment.score_state;
DROP TRIGGER segment_entry_before ON segment.subject_state;
DROP TRIGGER segment_entry_after ON segment.universe_history;
DROP FUNCTION segment_internal._entry_before();
DROP FUNCTION segment_internal._entry_after();

-- the final bodies of part 86 (live.sql)
-- @function segment_internal._live_entry_before

-- @function segment_internal._live_entry_after
