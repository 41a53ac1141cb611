-- segment install script, part 41: the backend-local cache of member sets
-- that audiences read (src/memberset_cache.c, docs/performance.md). Its size is the
-- setting segment.audience_cache_size; this function shows what the
-- current backend holds (for tests and tuning).

CREATE FUNCTION segment_internal._audience_cache_stats(OUT entries bigint, OUT bytes bigint,
                                              OUT hits bigint, OUT misses bigint)
    AS 'MODULE_PATHNAME', 'segment_audience_cache_stats' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment_internal._audience_cache_stats() IS
    'this backend''s cache of member sets read by audiences: sets held, their bytes, hits and misses since it started';

-- An audience within a few members: the same as
-- segment.audience(subject, audience) & members, with the same lookups and
-- errors, but each set is only read where the members are (generation for
-- the customers of an event, part 84).
CREATE FUNCTION segment_internal._audience_within(subject name, audience text, members segment.memberset)
RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'segment_audience_within' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment_internal._audience_within(name, text, segment.memberset) IS
    'the members of a set that are in an audience, evaluated within the set (generation for a few customers)';
