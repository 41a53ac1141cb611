-- 0.2.0: the final bodies of the functions that several 0.2.0 changes replace
-- (relation kinds, rule owners, live dates, hardening), as in sql/install; the
-- earlier parts leave them to this one.

-- @function segment_internal._live_key_change

-- @function segment.enable_live

-- @function segment.attach_event_rule

-- events and entries (part 85) and journeys' escalations (part 87) each
-- added rules batch generation leaves alone
-- @function segment_internal._is_triggered
