-- Upgrade part 98 (issue 15): segment_internal._event_trigger becomes the C
-- trigger of src/event_trigger.c (the same function, so the triggers of
-- existing attachments keep it), and segment_internal._event_fire takes the
-- rest of an event statement. Both definitions: install part 85.

-- @function segment_internal._event_trigger
-- @function segment_internal._event_fire
