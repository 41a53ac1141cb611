-- upgrade 0.1.0 -> 0.2.0, part 92 (bodies): the final bodies of three 0.1.0
-- functions that governance adds a check to, as in sql/install: _member_id
-- (part 50: the customer's scope; bucket_of, score, set_tag), top (part 76:
-- export control, audited) and render (part 84: scope and masking; also the
-- snapshot's row, see 93-snapshot-bodies). The checks they call are created
-- by 13-governance-checks.

-- @function segment_internal._member_id

-- @function segment.top

-- @function segment.render
