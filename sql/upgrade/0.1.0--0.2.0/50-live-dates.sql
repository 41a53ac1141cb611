-- Live overlay rows and a refresh for a new date (docs/live.md#dates): a
-- live writer takes its share of the subject's live lock (class 24178) and
-- evaluates at the date of the state as committed now; a refresh that moves
-- the date excludes live writers from its snapshot to its commit (C).

-- @function segment_internal._live_writer_as_of
