/*
 * memberset_cache.c
 *     The backend-local cache of deserialized member sets (see
 *     memberset_cache.h): a hash table in its own memory context, keyed by
 *     (state table, row key), holding the CRoaring bitmap of one row version
 *     with its version stamp (xmin, ctid, toast value id). Bitmaps are
 *     malloc'd by CRoaring and owned by the entry; an entry is filled only
 *     after its set was deserialized without error, and freed when replaced
 *     or evicted. Eviction is least recently used first, sparing the entries
 *     handed out since memberset_cache_begin().
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/itemptr.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "access/detoast.h"

#include "extension_cache.h"
#include "memberset_cache.h"

int			segment_audience_cache_kb = 65536;

typedef struct CacheKey
{
	Oid			relid;
	int64		key;
} CacheKey;

typedef struct CacheEntry
{
	CacheKey	k;				/* hash key: first */
	TransactionId xmin;			/* version stamp of the row the set came from */
	ItemPointerData ctid;
	Oid			toast_valueid;	/* InvalidOid when the set was stored inline */
	roaring_bitmap_t *bitmap;	/* NULL: empty slot (load failed or evicted) */
	Size		bytes;
	uint64		last_used;
	uint64		generation;
} CacheEntry;

static HTAB *cache = NULL;
static Size cache_bytes = 0;
static uint64 cache_tick = 0;
static uint64 cache_generation = 0;
static int64 cache_hits = 0;
static int64 cache_misses = 0;

static void
cache_init(void)
{
	HASHCTL		ctl;

	if (cache != NULL)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(CacheKey);
	ctl.entrysize = sizeof(CacheEntry);
	ctl.hcxt = AllocSetContextCreate(TopMemoryContext, "segment member set cache",
									 ALLOCSET_SMALL_SIZES);
	cache = hash_create("segment member set cache", 64, &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static void entry_clear(CacheEntry *e);

/* Every set, e.g. of a dropped extension's tables: they are never read again. */
static void
cache_clear_all(void)
{
	HASH_SEQ_STATUS seq;
	CacheEntry *e;

	hash_seq_init(&seq, cache);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		entry_clear(e);
		(void) hash_search(cache, &e->k, HASH_REMOVE, NULL);
	}
}

void
memberset_cache_begin(void)
{
	static uint64 extension_generation = 0;

	cache_generation++;
	if (extension_generation != extension_cache_generation())
	{
		if (cache != NULL)
			cache_clear_all();
		extension_generation = extension_cache_generation();
	}
}

static void
entry_clear(CacheEntry *e)
{
	if (e->bitmap != NULL)
	{
		roaring_bitmap_free(e->bitmap);
		e->bitmap = NULL;
		cache_bytes -= e->bytes;
	}
	e->bytes = 0;
}

/* Free least recently used sets until the cache fits, sparing the current evaluation's. */
static void
cache_shrink(Size limit)
{
	while (cache_bytes > limit)
	{
		HASH_SEQ_STATUS seq;
		CacheEntry *e;
		CacheEntry *victim = NULL;

		hash_seq_init(&seq, cache);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			if (e->bitmap == NULL || e->generation == cache_generation)
				continue;
			if (victim == NULL || e->last_used < victim->last_used)
				victim = e;
		}
		if (victim == NULL)
			return;
		entry_clear(victim);
		(void) hash_search(cache, &victim->k, HASH_REMOVE, NULL);
	}
}

const roaring_bitmap_t *
memberset_cache_get(Oid relid, int64 key, HeapTuple tup, Datum value, RoaringOwned **owned)
{
	CacheKey	k;
	CacheEntry *e;
	TransactionId xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
	Oid			valueid = InvalidOid;
	struct varlena *v = (struct varlena *) DatumGetPointer(value);
	MemberSet  *ms;
	RoaringOwned *o;
	Size		bytes;
	bool		found;

	*owned = NULL;
	if (segment_audience_cache_kb <= 0 && cache_bytes > 0)
		cache_shrink(0);		/* turned off: give the memory back */
	if (VARATT_IS_EXTERNAL_ONDISK(v))
	{
		struct varatt_external ext;

		VARATT_EXTERNAL_GET_POINTER(ext, v);
		valueid = ext.va_valueid;
	}

	if (segment_audience_cache_kb > 0)
	{
		cache_init();
		memset(&k, 0, sizeof(k));
		k.relid = relid;
		k.key = key;
		e = hash_search(cache, &k, HASH_FIND, NULL);
		if (e != NULL && e->bitmap != NULL && e->xmin == xmin && e->toast_valueid == valueid &&
			ItemPointerEquals(&e->ctid, &tup->t_self))
		{
			e->last_used = ++cache_tick;
			e->generation = cache_generation;
			cache_hits++;
			return e->bitmap;
		}
	}
	cache_misses++;

	/* load: detoast and deserialize into CurrentMemoryContext (freed on error) */
	ms = (MemberSet *) PG_DETOAST_DATUM(value);
	o = memberset_to_roaring(ms);
	bytes = MEMBERSET_DATALEN(ms) + sizeof(roaring_bitmap_t);
	if ((Pointer) ms != DatumGetPointer(value))
		pfree(ms);

	if (segment_audience_cache_kb <= 0 || bytes > (Size) segment_audience_cache_kb * 1024 / 2)
	{
		*owned = o;
		return o->bitmap;
	}

	/* keep it: enter the slot first (may fail: o is still owned, nothing leaks) */
	e = hash_search(cache, &k, HASH_ENTER, &found);
	if (!found)
	{
		e->bitmap = NULL;
		e->bytes = 0;
	}
	entry_clear(e);
	e->xmin = xmin;
	e->ctid = tup->t_self;
	e->toast_valueid = valueid;
	e->bitmap = o->bitmap;		/* from here on the entry owns it */
	o->bitmap = NULL;
	e->bytes = bytes;
	e->last_used = ++cache_tick;
	e->generation = cache_generation;
	cache_bytes += bytes;
	cache_shrink((Size) segment_audience_cache_kb * 1024);
	return e->bitmap;
}

void
memberset_cache_stats(int64 *entries, int64 *bytes, int64 *hits, int64 *misses)
{
	*entries = 0;
	if (cache != NULL)
	{
		HASH_SEQ_STATUS seq;
		CacheEntry *e;

		hash_seq_init(&seq, cache);
		while ((e = hash_seq_search(&seq)) != NULL)
			if (e->bitmap != NULL)
				(*entries)++;
	}
	*bytes = (int64) cache_bytes;
	*hits = cache_hits;
	*misses = cache_misses;
}

/*
 * segment_internal._audience_cache_stats() -> (entries bigint, bytes bigint,
 * hits bigint, misses bigint): this backend's cache, for tests.
 */
PG_FUNCTION_INFO_V1(segment_audience_cache_stats);
Datum
segment_audience_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	td;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	int64		entries,
				bytes,
				hits,
				misses;

	if (get_call_result_type(fcinfo, NULL, &td) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memberset_cache_stats(&entries, &bytes, &hits, &misses);
	values[0] = Int64GetDatum(entries);
	values[1] = Int64GetDatum(bytes);
	values[2] = Int64GetDatum(hits);
	values[3] = Int64GetDatum(misses);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(td), values, nulls)));
}
