/*
 * shard_sets.c
 *     segment.shard_member_sets(key int8, flags bool[]): an aggregate whose
 *     state is one member set per flag plus the set of every key seen. A
 *     refresh of a Citus distributed subject runs it over the table; Citus
 *     evaluates it on each shard (its partial-aggregation protocol ships the
 *     state as text), and the coordinator combines the shards' states, so
 *     compressed member sets travel instead of rows.
 *
 * The state's SQL type is bytea, because Citus only distributes aggregates
 * whose state type is not a pseudo-type. While aggregating it is an expanded
 * object (CRoaring bitmaps in memory, changed in place), flattened only when
 * it leaves the aggregate: to text for Citus, or as the result.
 *
 * Flat form: ShardSetsFlat, then 1 + nflags times { uint32 length, CRoaring
 * portable bytes }: the keys seen first, then one set per flag. Anything
 * read from a flat form is validated; a state can come from any caller.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/expandeddatum.h"
#include "utils/memutils.h"

#include "segment.h"
#include "shard_sets.h"

#define SHARD_SETS_MAGIC 0x53534731	/* "SSG1" */

typedef struct ShardSetsFlat
{
	int32		vl_len_;
	uint32		magic;
	int32		nflags;
	int64		rows;
	int64		null_keys;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} ShardSetsFlat;

#define SHARD_SETS_HDRSZ offsetof(ShardSetsFlat, data)
#define SHARD_BUF_IDS 1024

static Size shard_sets_flat_size(ExpandedObjectHeader *eohptr);
static void shard_sets_flatten(ExpandedObjectHeader *eohptr, void *result, Size allocated_size);

static const ExpandedObjectMethods shard_sets_methods = {
	shard_sets_flat_size,
	shard_sets_flatten
};

static ShardSets *
shard_sets_new(int nflags, MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "segment shard sets",
											  ALLOCSET_SMALL_SIZES);
	ShardSets  *ss = MemoryContextAllocZero(cxt, sizeof(ShardSets));
	MemoryContext old;
	int			i;

	EOH_init_header(&ss->hdr, &shard_sets_methods, cxt);
	old = MemoryContextSwitchTo(cxt);
	ss->nflags = nflags;
	ss->universe = roaring_owned_create();
	ss->sets = palloc0(sizeof(RoaringOwned *) * Max(nflags, 1));
	ss->bufs = palloc0(sizeof(uint32 *) * Max(nflags, 1));
	ss->nbuf = palloc0(sizeof(int) * Max(nflags, 1));
	for (i = 0; i < nflags; i++)
	{
		ss->sets[i] = roaring_owned_create();
		ss->bufs[i] = palloc(sizeof(uint32) * SHARD_BUF_IDS);
	}
	MemoryContextSwitchTo(old);
	return ss;
}

static void
shard_sets_flush(ShardSets *ss)
{
	int			i;

	for (i = 0; i < ss->nflags; i++)
		if (ss->nbuf[i] > 0)
		{
			roaring_bitmap_add_many(ss->sets[i]->bitmap, ss->nbuf[i], ss->bufs[i]);
			ss->nbuf[i] = 0;
		}
}

static Size
shard_sets_flat_size(ExpandedObjectHeader *eohptr)
{
	ShardSets  *ss = (ShardSets *) eohptr;
	Size		size = SHARD_SETS_HDRSZ;
	int			i;

	shard_sets_flush(ss);
	roaring_bitmap_run_optimize(ss->universe->bitmap);
	size += sizeof(uint32) + roaring_bitmap_portable_size_in_bytes(ss->universe->bitmap);
	for (i = 0; i < ss->nflags; i++)
	{
		roaring_bitmap_run_optimize(ss->sets[i]->bitmap);
		size += sizeof(uint32) + roaring_bitmap_portable_size_in_bytes(ss->sets[i]->bitmap);
	}
	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the member sets of one shard take %zu bytes, more than a value can hold", size),
				 errhint("Split the table into more shards (citus.shard_count).")));
	return size;
}

static char *
put_set(char *p, roaring_bitmap_t *r)
{
	uint32		len = (uint32) roaring_bitmap_portable_size_in_bytes(r);

	memcpy(p, &len, sizeof(uint32));
	p += sizeof(uint32);
	roaring_bitmap_portable_serialize(r, p);
	return p + len;
}

static void
shard_sets_flatten(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	ShardSets  *ss = (ShardSets *) eohptr;
	ShardSetsFlat *flat = (ShardSetsFlat *) result;
	char	   *p;
	int			i;

	memset(flat, 0, SHARD_SETS_HDRSZ);
	SET_VARSIZE(flat, allocated_size);
	flat->magic = SHARD_SETS_MAGIC;
	flat->nflags = ss->nflags;
	flat->rows = ss->rows;
	flat->null_keys = ss->null_keys;
	p = put_set(flat->data, ss->universe->bitmap);
	for (i = 0; i < ss->nflags; i++)
		p = put_set(p, ss->sets[i]->bitmap);
	Assert(p == (char *) result + allocated_size);
}

static void
corrupt(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid shard member sets: %s", why),
			 errhint("Pass a state made by segment.shard_member_sets.")));
}

static RoaringOwned *
get_set(const char **p, const char *end)
{
	uint32		len;
	roaring_bitmap_t *r;

	if (end - *p < (ptrdiff_t) sizeof(uint32))
		corrupt("truncated");
	memcpy(&len, *p, sizeof(uint32));
	*p += sizeof(uint32);
	if ((Size) (end - *p) < len)
		corrupt("truncated");
	r = roaring_bitmap_portable_deserialize_safe(*p, len);
	if (r == NULL || roaring_bitmap_portable_size_in_bytes(r) != len)
	{
		if (r)
			roaring_bitmap_free(r);
		corrupt("a set does not deserialize");
	}
	*p += len;
	return roaring_owned_adopt(r);
}

/* A new expanded state in a child of `parent` holding what d holds. */
ShardSets *
shard_sets_expand(Datum d, MemoryContext parent)
{
	bytea	   *b = DatumGetByteaPP(d);
	const char *p = VARDATA_ANY(b);
	const char *end = p + VARSIZE_ANY_EXHDR(b);
	ShardSetsFlat hdr;
	ShardSets  *ss;
	MemoryContext old;
	int			i;
	Size		need = SHARD_SETS_HDRSZ - VARHDRSZ;

	if ((Size) (end - p) < need)
		corrupt("too short");
	memcpy((char *) &hdr + VARHDRSZ, p, need);
	p += need;
	if (hdr.magic != SHARD_SETS_MAGIC)
		corrupt("not a segment.shard_member_sets state");
	if (hdr.nflags < 0 || hdr.nflags > MaxAllocSize / sizeof(RoaringOwned *) ||
		hdr.rows < 0 || hdr.null_keys < 0 || hdr.null_keys > hdr.rows)
		corrupt("bad header");
	ss = shard_sets_new(0, parent);
	old = MemoryContextSwitchTo(ss->hdr.eoh_context);
	ss->nflags = hdr.nflags;
	ss->rows = hdr.rows;
	ss->null_keys = hdr.null_keys;
	roaring_owned_free(ss->universe);
	ss->universe = get_set(&p, end);
	ss->sets = palloc0(sizeof(RoaringOwned *) * Max(hdr.nflags, 1));
	ss->bufs = palloc0(sizeof(uint32 *) * Max(hdr.nflags, 1));
	ss->nbuf = palloc0(sizeof(int) * Max(hdr.nflags, 1));
	for (i = 0; i < hdr.nflags; i++)
	{
		ss->sets[i] = get_set(&p, end);
		ss->bufs[i] = palloc(sizeof(uint32) * SHARD_BUF_IDS);
	}
	if (p != end)
		corrupt("trailing bytes");
	MemoryContextSwitchTo(old);
	return ss;
}

/* The state argument as our read-write expanded object in cxt. */
static ShardSets *
state_arg(FunctionCallInfo fcinfo, int argno, MemoryContext cxt)
{
	Datum		d = PG_GETARG_DATUM(argno);

	if (VARATT_IS_EXTERNAL_EXPANDED_RW(DatumGetPointer(d)))
	{
		ExpandedObjectHeader *eoh = DatumGetEOHP(d);

		if (eoh->eoh_methods == &shard_sets_methods)
			return (ShardSets *) eoh;
	}
	return shard_sets_expand(d, cxt);
}

static MemoryContext
agg_context(FunctionCallInfo fcinfo, const char *fn)
{
	MemoryContext cxt;

	if (!AggCheckCallContext(fcinfo, &cxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s can only be called as part of an aggregate", fn),
				 errhint("Use the aggregate segment.shard_member_sets(key, flags).")));
	return cxt;
}

/* shard_member_sets_step(state bytea, key int8, flags bool[]) -> bytea */
PG_FUNCTION_INFO_V1(segment_shard_member_sets_step);
Datum
segment_shard_member_sets_step(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = agg_context(fcinfo, "segment.shard_member_sets_step");
	ShardSets  *ss = PG_ARGISNULL(0) ? NULL : state_arg(fcinfo, 0, cxt);
	ArrayType  *flags;
	int			nflags;
	int64		key;
	uint32		id;
	bool	   *vals;
	int			i;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the flags of segment.shard_member_sets must not be NULL")));
	flags = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_ELEMTYPE(flags) != BOOLOID || ARR_NDIM(flags) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the flags of segment.shard_member_sets must be a one-dimensional boolean array")));
	if (ARR_HASNULL(flags))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the flags of segment.shard_member_sets must not contain NULL"),
				 errhint("Pass (rule) IS TRUE for each rule.")));
	nflags = ARR_NDIM(flags) == 0 ? 0 : ARR_DIMS(flags)[0];
	if (ss == NULL)
		ss = shard_sets_new(nflags, cxt);
	else if (nflags != ss->nflags)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("segment.shard_member_sets got %d flags in one row and %d in another",
						nflags, ss->nflags)));
	ss->rows++;
	if (PG_ARGISNULL(1))
	{
		ss->null_keys++;
		PG_RETURN_DATUM(EOHPGetRWDatum(&ss->hdr));
	}
	key = PG_GETARG_INT64(1);
	if (key < 0 || key > SEGMENT_MAX_MEMBER_ID)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("key %lld is outside the range of member ids", (long long) key),
				 errdetail("Integer keys are used as member ids and must be between 0 and %lld.",
						   (long long) SEGMENT_MAX_MEMBER_ID)));
	id = (uint32) key;
	if (!roaring_bitmap_add_checked(ss->universe->bitmap, id))
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("key %lld appears in more than one row", (long long) key)));
	vals = (bool *) ARR_DATA_PTR(flags);
	for (i = 0; i < nflags; i++)
	{
		if (vals[i])
		{
			ss->bufs[i][ss->nbuf[i]++] = id;
			if (ss->nbuf[i] == SHARD_BUF_IDS)
			{
				roaring_bitmap_add_many(ss->sets[i]->bitmap, SHARD_BUF_IDS, ss->bufs[i]);
				ss->nbuf[i] = 0;
			}
		}
	}
	PG_RETURN_DATUM(EOHPGetRWDatum(&ss->hdr));
}

/*
 * shard_member_sets_combine(a bytea, b bytea) -> bytea: the union of two
 * states of disjoint rows. A key in both means a key in two rows: 23505.
 */
PG_FUNCTION_INFO_V1(segment_shard_member_sets_combine);
Datum
segment_shard_member_sets_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = agg_context(fcinfo, "segment.shard_member_sets_combine");
	ShardSets  *a;
	ShardSets  *b;
	MemoryContext scratch;
	int			i;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(EOHPGetRWDatum(&state_arg(fcinfo, 0, cxt)->hdr));
	}
	if (PG_ARGISNULL(0))
		PG_RETURN_DATUM(EOHPGetRWDatum(&shard_sets_expand(PG_GETARG_DATUM(1), cxt)->hdr));
	a = state_arg(fcinfo, 0, cxt);
	scratch = AllocSetContextCreate(CurrentMemoryContext, "segment shard sets combine",
									ALLOCSET_SMALL_SIZES);
	b = state_arg(fcinfo, 1, scratch);
	if (a->nflags != b->nflags)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("cannot combine shard member sets of %d and %d flags", a->nflags, b->nflags)));
	if (roaring_bitmap_intersect(a->universe->bitmap, b->universe->bitmap))
	{
		roaring_bitmap_t *both = roaring_bitmap_and(a->universe->bitmap, b->universe->bitmap);
		uint32		key = both ? roaring_bitmap_minimum(both) : 0;

		if (both)
			roaring_bitmap_free(both);
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("key %u appears in more than one row", key),
				 errdetail("Two shards hold a row with that key.")));
	}
	shard_sets_flush(a);
	shard_sets_flush(b);
	a->rows += b->rows;
	a->null_keys += b->null_keys;
	roaring_bitmap_or_inplace(a->universe->bitmap, b->universe->bitmap);
	for (i = 0; i < a->nflags; i++)
		roaring_bitmap_or_inplace(a->sets[i]->bitmap, b->sets[i]->bitmap);
	/* b is ours unless it was a's own object; a flat b was expanded in scratch */
	MemoryContextDelete(scratch);
	PG_RETURN_DATUM(EOHPGetRWDatum(&a->hdr));
}

/*
 * shard_member_sets_get(state bytea, flag int) -> memberset: the set of
 * flag number `flag` (1-based) of a state, or with 0 the set of every key.
 */
PG_FUNCTION_INFO_V1(segment_shard_member_sets_get);
Datum
segment_shard_member_sets_get(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "segment shard sets get",
											  ALLOCSET_SMALL_SIZES);
	ShardSets  *ss = shard_sets_expand(PG_GETARG_DATUM(0), cxt);
	int32		flag = PG_GETARG_INT32(1);
	MemberSet  *result;

	if (flag < 0 || flag > ss->nflags)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("flag %d is out of range: the state has %d flags", flag, ss->nflags),
				 errhint("0 is the set of every key, 1 to %d the flags.", ss->nflags)));
	result = memberset_from_roaring(flag == 0 ? ss->universe->bitmap : ss->sets[flag - 1]->bitmap);
	MemoryContextDelete(cxt);
	PG_RETURN_MEMBERSET_P(result);
}
