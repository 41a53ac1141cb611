-- Upgrade part 98 (issue 15): final body of segment_internal._event_trigger (its
-- text: install part 85). For up to 1,000 customers the live overlay is read by
-- key instead of merged whole into the universe in every event transaction.

-- @function segment_internal._event_trigger
