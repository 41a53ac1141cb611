-- segment install part 32: the planner support function of segment.members
-- (parts 33 and 40). It answers no request (the planner keeps its own
-- estimates); the planner calling it loads segment's library before it plans
-- the call, so that the streaming member scan (src/members_scan.c, a planner
-- hook) is there from a backend's first statement on, a prepared one too.

CREATE FUNCTION segment_internal._members_support(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'segment_members_support' LANGUAGE C STRICT;
COMMENT ON FUNCTION segment_internal._members_support(internal) IS
    'planner support of segment.members: loads the library that streams it (answers no request)';
