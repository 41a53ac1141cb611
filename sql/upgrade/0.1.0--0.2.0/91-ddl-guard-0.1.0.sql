-- upgrade 0.1.0 -> 0.2.0, part 91 (before the install part 91 it links to):
-- one DDL guard for every feature (issue 16). 0.1.0 guarded event tables with
-- event triggers of their own; their checks are now called by
-- segment_ddl_guard and segment_drop_guard (install part 91).
DROP EVENT TRIGGER segment_event_ddl_guard;
DROP EVENT TRIGGER segment_event_drop_guard;
DROP FUNCTION segment_internal._event_ddl_guard();
DROP FUNCTION segment_internal._event_drop_guard();
