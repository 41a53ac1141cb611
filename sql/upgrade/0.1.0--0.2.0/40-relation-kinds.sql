-- 0.2.0: subjects over partitioned tables, views, materialized views, foreign
-- tables and Citus tables (read through SQL). The new bodies of register_subject,
-- enable_live and attach_event_rule are in 90-merged-bodies.sql.

-- @function segment_internal._relation_kind
