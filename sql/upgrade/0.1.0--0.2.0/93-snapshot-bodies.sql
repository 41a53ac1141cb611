-- 0.2.0: daily snapshot subjects (install part 33). register_subject gains
-- snapshot_column and snapshot_retention (a new signature: the old one is
-- dropped); enable_live refuses snapshot subjects (its final body is in
-- 90-merged-bodies.sql); the nightly refresh step refuses a missing snapshot.

DROP FUNCTION segment.register_subject(name, regclass, name, name, name);

-- @function segment.register_subject

-- _nightly_step's final body (the snapshot check of the refresh step, and
-- the journeys step) is in part 94

-- generate and its staff loading read the rows of a snapshot subject's
-- current snapshot only: their final bodies are in part 96

-- segment.render's final body (the snapshot's row, masked) is in part 92
-- (92-governance-bodies)

-- the DDL guard also protects a snapshot subject's date column: the final
-- body of _check_rules_of is in part 91 (= install part 91)
