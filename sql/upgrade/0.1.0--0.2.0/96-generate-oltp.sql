-- Upgrade part 96 (issue 15): final bodies of segment_internal._load_staff and
-- segment_internal._generate (their text: 84-generate.sql). The contact cap is
-- counted with one member set per (rule, period) instead of grouping the
-- window's opportunities by customer; the work tables are emptied with a
-- DELETE for a few customers (an event) instead of a TRUNCATE, and are no
-- longer ON COMMIT DELETE ROWS (tables created before the update keep it
-- until the session ends); for a few customers the generation statement is
-- prepared once per session and the cool-down and cap queries are static
-- (their plans cached).

-- @function segment_internal._load_staff

-- @function segment_internal._generate
