-- segment install script, part 35: the aggregate a refresh of a Citus
-- distributed subject runs on the shards (src/shard_sets.c,
-- src/refresh_shards.c; docs/dba-guide.md "Citus distributed subjects").
-- Citus distributes an aggregate that has a combine function and a state
-- type that is not a pseudo-type: each shard's member sets travel to the
-- coordinator as that state, and are combined there.

CREATE FUNCTION segment.shard_member_sets_step(state bytea, key int8, flags bool[]) RETURNS bytea
    AS 'MODULE_PATHNAME', 'segment_shard_member_sets_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.shard_member_sets_combine(a bytea, b bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'segment_shard_member_sets_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE segment.shard_member_sets(key int8, flags bool[]) (
    SFUNC = segment.shard_member_sets_step,
    STYPE = bytea,
    COMBINEFUNC = segment.shard_member_sets_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE segment.shard_member_sets(int8, bool[]) IS
    'per flag, the keys of the rows whose flag is true, and every key: member sets of a share of rows, combinable';

CREATE FUNCTION segment.shard_member_sets_get(state bytea, flag int) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'segment_shard_member_sets_get' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment.shard_member_sets_get(bytea, int) IS
    'one set of a segment.shard_member_sets state: 0 every key, n the rows whose flag n was true';
