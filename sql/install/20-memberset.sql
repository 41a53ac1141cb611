-- segment install script, part 20: the member set type.
-- segment.memberset is a set of member ids (integers 0..4294967295) stored
-- as a CRoaring portable serialization. Text form: {1,2,5}. See
-- docs/reference-memberset.md.

CREATE TYPE segment.memberset;

CREATE FUNCTION segment.memberset_in(cstring) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_out(segment.memberset) RETURNS cstring
    AS 'MODULE_PATHNAME', 'memberset_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_recv(internal) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_send(segment.memberset) RETURNS bytea
    AS 'MODULE_PATHNAME', 'memberset_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Stored out of line without compression: the portable format is already
-- compact, and skipping pglz keeps reads fast.
CREATE TYPE segment.memberset (
    INPUT = segment.memberset_in,
    OUTPUT = segment.memberset_out,
    RECEIVE = segment.memberset_recv,
    SEND = segment.memberset_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = int4,
    STORAGE = external
);
COMMENT ON TYPE segment.memberset IS
    'set of member ids 0..4294967295 (CRoaring bitmap); text form {1,2,5}';

-- Set algebra -----------------------------------------------------------

CREATE FUNCTION segment.memberset_and(segment.memberset, segment.memberset) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_and' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_or(segment.memberset, segment.memberset) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_or' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_andnot(segment.memberset, segment.memberset) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_andnot' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_eq(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_ne(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_contains(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_contains' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_contained(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_contained' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_contains_member(segment.memberset, int8) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_contains_member' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_member_contained(int8, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_member_contained' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_overlaps(segment.memberset, segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_overlaps' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR segment.& (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_and, COMMUTATOR = OPERATOR(segment.&));
CREATE OPERATOR segment.| (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_or, COMMUTATOR = OPERATOR(segment.|));
CREATE OPERATOR segment.- (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_andnot);
CREATE OPERATOR segment.= (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_eq,
    COMMUTATOR = OPERATOR(segment.=), NEGATOR = OPERATOR(segment.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR segment.<> (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_ne,
    COMMUTATOR = OPERATOR(segment.<>), NEGATOR = OPERATOR(segment.=),
    RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR segment.@> (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_contains, COMMUTATOR = OPERATOR(segment.<@),
    RESTRICT = contsel, JOIN = contjoinsel);
CREATE OPERATOR segment.<@ (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_contained, COMMUTATOR = OPERATOR(segment.@>),
    RESTRICT = contsel, JOIN = contjoinsel);
CREATE OPERATOR segment.@> (
    LEFTARG = segment.memberset, RIGHTARG = int8,
    FUNCTION = segment.memberset_contains_member, COMMUTATOR = OPERATOR(segment.<@),
    RESTRICT = contsel, JOIN = contjoinsel);
CREATE OPERATOR segment.<@ (
    LEFTARG = int8, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_member_contained, COMMUTATOR = OPERATOR(segment.@>),
    RESTRICT = contsel, JOIN = contjoinsel);
CREATE OPERATOR segment.&& (
    LEFTARG = segment.memberset, RIGHTARG = segment.memberset,
    FUNCTION = segment.memberset_overlaps, COMMUTATOR = OPERATOR(segment.&&),
    RESTRICT = areasel, JOIN = areajoinsel);

-- Functions -------------------------------------------------------------

CREATE FUNCTION segment.cardinality(segment.memberset) RETURNS int8
    AS 'MODULE_PATHNAME', 'memberset_cardinality' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment.cardinality(segment.memberset) IS 'number of members';
CREATE OPERATOR segment.# (RIGHTARG = segment.memberset, FUNCTION = segment.cardinality);

CREATE FUNCTION segment.is_empty(segment.memberset) RETURNS boolean
    AS 'MODULE_PATHNAME', 'memberset_is_empty' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION segment.member_ids(segment.memberset) RETURNS SETOF int8
    AS 'MODULE_PATHNAME', 'memberset_member_ids' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    ROWS 1000;
COMMENT ON FUNCTION segment.member_ids(segment.memberset) IS 'the member ids, ascending';

CREATE FUNCTION segment.memberset(int8[]) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_from_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.to_array(segment.memberset) RETURNS int8[]
    AS 'MODULE_PATHNAME', 'memberset_to_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE CAST (int8[] AS segment.memberset) WITH FUNCTION segment.memberset(int8[]);
CREATE CAST (segment.memberset AS int8[]) WITH FUNCTION segment.to_array(segment.memberset);

CREATE FUNCTION segment.memberset_stats(segment.memberset,
    OUT cardinality int8, OUT containers int4, OUT array_containers int4,
    OUT bitset_containers int4, OUT run_containers int4, OUT bytes int8)
    AS 'MODULE_PATHNAME', 'memberset_stats' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment.memberset_stats(segment.memberset) IS
    'cardinality, container make-up and stored size of a member set';

-- Aggregates --------------------------------------------------------------

CREATE FUNCTION segment.memberset_agg_trans(internal, int8) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_union_trans(internal, segment.memberset) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_union_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_intersect_trans(internal, segment.memberset) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_intersect_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_union_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_union_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_intersect_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_intersect_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION segment.memberset_agg_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'memberset_agg_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_agg_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'memberset_agg_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION segment.memberset_agg_final(internal) RETURNS segment.memberset
    AS 'MODULE_PATHNAME', 'memberset_agg_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE segment.memberset_agg(int8) (
    SFUNC = segment.memberset_agg_trans, STYPE = internal,
    FINALFUNC = segment.memberset_agg_final,
    COMBINEFUNC = segment.memberset_union_combine,
    SERIALFUNC = segment.memberset_agg_serialize,
    DESERIALFUNC = segment.memberset_agg_deserialize,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment.memberset_agg(int8) IS 'the set of the (non-null) input ids';

CREATE AGGREGATE segment.union_agg(segment.memberset) (
    SFUNC = segment.memberset_union_trans, STYPE = internal,
    FINALFUNC = segment.memberset_agg_final,
    COMBINEFUNC = segment.memberset_union_combine,
    SERIALFUNC = segment.memberset_agg_serialize,
    DESERIALFUNC = segment.memberset_agg_deserialize,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment.union_agg(segment.memberset) IS 'union of the (non-null) input sets';

CREATE AGGREGATE segment.intersect_agg(segment.memberset) (
    SFUNC = segment.memberset_intersect_trans, STYPE = internal,
    FINALFUNC = segment.memberset_agg_final,
    COMBINEFUNC = segment.memberset_intersect_combine,
    SERIALFUNC = segment.memberset_agg_serialize,
    DESERIALFUNC = segment.memberset_agg_deserialize,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment.intersect_agg(segment.memberset) IS 'intersection of the (non-null) input sets';
