-- segment install script, part 40: reading audiences and tags.
-- An audience is a small language over tag names: and, or, not,
-- parentheses (docs/audiences.md). These functions read the member sets
-- left by the last refresh plus unexpired manual tags; they never scan the
-- subject's table. They query the catalog through SPI, hence PARALLEL
-- RESTRICTED.

CREATE FUNCTION segment.count(subject name, audience text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'segment_count' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.count(name, text) IS 'number of members of an audience';

CREATE FUNCTION segment.members(subject name, audience text) RETURNS SETOF bigint
    AS 'MODULE_PATHNAME', 'segment_members' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 10000
    SUPPORT segment_internal._members_support;
COMMENT ON FUNCTION segment.members(name, text) IS
    'keys of the members of an audience, ascending (integer-keyed subjects)';

CREATE FUNCTION segment.members_text(subject name, audience text) RETURNS SETOF text
    AS 'MODULE_PATHNAME', 'segment_members_text' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 10000;
COMMENT ON FUNCTION segment.members_text(name, text) IS
    'keys of the members of an audience as text, in member-id order (any subject)';

CREATE FUNCTION segment.audience(subject name, audience text) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'segment_audience' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.audience(name, text) IS
    'the member set of an audience, e.g. to keep a snapshot in a table';

CREATE FUNCTION segment.keys(subject name, set segment.memberset) RETURNS SETOF text
    AS 'MODULE_PATHNAME', 'segment_keys' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    ROWS 10000;
COMMENT ON FUNCTION segment.keys(name, segment.memberset) IS
    'the keys (as text) of the members of a member set, in member-id order';

CREATE FUNCTION segment.has_tag(subject name, key bigint, tag name) RETURNS boolean
    AS 'MODULE_PATHNAME', 'segment_has_tag_int8' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION segment.has_tag(subject name, key text, tag name) RETURNS boolean
    AS 'MODULE_PATHNAME', 'segment_has_tag_text' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.has_tag(name, bigint, name) IS 'whether the customer has the tag now';
COMMENT ON FUNCTION segment.has_tag(name, text, name) IS 'whether the customer has the tag now';

CREATE FUNCTION segment.tags(subject name, key bigint) RETURNS text[]
    AS 'MODULE_PATHNAME', 'segment_tags_int8' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION segment.tags(subject name, key text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'segment_tags_text' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.tags(name, bigint) IS 'sorted names of the active tags the customer has now';
COMMENT ON FUNCTION segment.tags(name, text) IS 'sorted names of the active tags the customer has now';
