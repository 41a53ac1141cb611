-- Live overlay rows and a refresh for a new date (docs/live.md#dates): a
-- live writer takes its share of the subject's live lock (class 24178) and
-- evaluates at the date of the state as committed now; a refresh that moves
-- the date excludes live writers from its snapshot to its commit (C).

CREATE FUNCTION segment_internal._live_writer_as_of(sid int) RETURNS date
    AS 'MODULE_PATHNAME', 'segment_live_writer_as_of' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION segment_internal._live_writer_as_of(int) IS
    'internal: take a live writer''s share of the subject''s live lock; the date of its state as committed now';
REVOKE EXECUTE ON FUNCTION segment_internal._live_writer_as_of(int) FROM PUBLIC;

