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
CREATE OR REPLACE FUNCTION segment_internal._live_entry_before(sid int, changed segment.memberset)
RETURNS TABLE (audience text, members segment.memberset)
LANGUAGE sql AS $$
    SELECT * FROM segment_internal._entry_audiences(sid, changed)
$$;

CREATE OR REPLACE FUNCTION segment_internal._live_entry_after(sid int, changed segment.memberset, audiences text[],
                                          befores segment.memberset[])
RETURNS bigint LANGUAGE sql AS $$
    -- period: segment.as_of() now, as for event rules (not the refresh's date)
    SELECT f.made FROM segment_internal._fire_entered(sid, changed, audiences, befores, NULL, 'write') f
$$;
