/*
 * live_overlay.c
 *     The overlay of live maintenance (live_overlay.h, live.h): per changed
 *     customer, one row in segment.live_member with its tags, bucket per
 *     scheme and score per scorecard now (or "deleted"). Owns that table:
 *     which members of a statement need a row (the diff against the stored
 *     sets, read through the catalog module), building and upserting the
 *     rows (through segment_internal._live_rows()), the fold a refresh runs once it
 *     has written new state, and the live lock that orders writers with a
 *     refresh that moves the evaluation date (docs/live.md#dates).
 *     Prefix: live_overlay_, and live_ for the refresh side (live.h).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "extension_cache.h"
#include "live.h"
#include "live_overlay.h"
#include "memberset_cache.h"
#include "numeric_scaled.h"
#include "rule_owner.h"
#include "segment.h"
#include "state_read.h"
#include "subject.h"

static LiveRows *live_pending = NULL;

/* Up to this many members, their overlay rows are looked up by key. */
#define LIVE_OVERLAY_PROBE_MAX 1000

/* Index of id in the ascending array ids[0..n), or -1. */
static int
find_id(const uint32 *ids, int n, uint32 id)
{
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (ids[mid] == id)
			return mid;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* The member ids of a set as an ascending palloc'd array. */
static uint32 *
set_ids(RoaringOwned *set, int *n)
{
	uint64		card = roaring_bitmap_get_cardinality(set->bitmap);
	uint32	   *ids = palloc(sizeof(uint32) * Max(card, 1));

	roaring_bitmap_to_uint32_array(set->bitmap, ids);
	*n = (int) card;
	return ids;
}


/*
 * Turn the sets the evaluator collected (one per tag, bucket, score) into
 * one overlay row per member: new members first get their tags, bucket and
 * scores; members only in `gone` are marked deleted.
 */
LiveRows *
live_overlay_build_rows(const SubjectDefs *defs, ScanCore *sc, RoaringOwned *gone,
						RoaringOwned *write, DateADT as_of)
{
	LiveRows   *lr = palloc0(sizeof(LiveRows));
	int			nnew,
				ngone,
				n,
				i,
				j,
				k;
	uint32	   *ids_new;
	uint32	   *ids_gone;
	int		   *count;
	int		   *start;
	uint32	  **tag_idx;		/* per tag: indexes into ids_new of its written members */
	int		   *tag_nidx;
	int32	   *flat;
	int			total = 0;
	int16	   *bucket_of = NULL;
	ScoreValue *score_of = NULL;
	Datum		empty_tags = PointerGetDatum(construct_empty_array(INT4OID));
	Datum		empty_json = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	StringInfoData buf;

	roaring_bitmap_andnot_inplace(gone->bitmap, sc->universe->bitmap);
	roaring_bitmap_and_inplace(gone->bitmap, write->bitmap);
	roaring_bitmap_and_inplace(sc->universe->bitmap, write->bitmap);
	ids_new = set_ids(sc->universe, &nnew);
	ids_gone = set_ids(gone, &ngone);
	n = nnew + ngone;
	lr->subject_id = defs->subject_id;
	lr->as_of = as_of;
	lr->n = n;
	lr->ids = palloc(sizeof(uint32) * Max(n, 1));
	lr->deleted = palloc(sizeof(bool) * Max(n, 1));
	lr->tags = palloc(sizeof(Datum) * Max(n, 1));
	lr->buckets = palloc(sizeof(Datum) * Max(n, 1));
	lr->scores = palloc(sizeof(Datum) * Max(n, 1));

	/* tags: count per member, then fill a flat array of tag ids */
	count = palloc0(sizeof(int) * Max(nnew, 1));
	start = palloc0(sizeof(int) * (nnew + 1));
	tag_idx = palloc0(sizeof(uint32 *) * Max(defs->ntags, 1));
	tag_nidx = palloc0(sizeof(int) * Max(defs->ntags, 1));
	for (i = 0; i < defs->ntags; i++)
	{
		int			m,
					kept = 0;
		uint32	   *ids = set_ids(sc->tags[i].set, &m);

		for (j = 0; j < m; j++)
		{
			int			idx = find_id(ids_new, nnew, ids[j]);

			if (idx < 0)
				continue;		/* not written: unchanged */
			ids[kept++] = (uint32) idx; /* keep the index for the second pass */
			count[idx]++;
		}
		tag_idx[i] = ids;
		tag_nidx[i] = kept;
		total += kept;
	}
	for (i = 0; i < nnew; i++)
		start[i + 1] = start[i] + count[i];
	flat = palloc(sizeof(int32) * Max(total, 1));
	memset(count, 0, sizeof(int) * Max(nnew, 1));
	for (i = 0; i < defs->ntags; i++)
		for (j = 0; j < tag_nidx[i]; j++)
		{
			int			idx = (int) tag_idx[i][j];

			flat[start[idx] + count[idx]++] = defs->tags[i].tag_id;
		}

	/* the bucket of each scheme, the score of each scorecard */
	if (defs->nschemes > 0)
	{
		bucket_of = palloc(sizeof(int16) * defs->nschemes * Max(nnew, 1));
		for (i = 0; i < defs->nschemes * nnew; i++)
			bucket_of[i] = -1;
		for (i = 0; i < defs->nschemes; i++)
			for (k = 0; k < sc->schemes[i].nbuckets; k++)
			{
				int			m;
				uint32	   *ids = set_ids(sc->schemes[i].buckets[k].set, &m);

				for (j = 0; j < m; j++)
				{
					int			idx = find_id(ids_new, nnew, ids[j]);

					if (idx >= 0)
						bucket_of[i * nnew + idx] = (int16) k;
				}
				pfree(ids);
			}
	}
	if (defs->nscorecards > 0)
	{
		score_of = palloc0(sizeof(ScoreValue) * defs->nscorecards * Max(nnew, 1));
		for (i = 0; i < defs->nscorecards; i++)
		{
			HASH_SEQ_STATUS hs;
			ScoreSet   *ss;

			hash_seq_init(&hs, sc->scorecards[i].scores);
			while ((ss = hash_seq_search(&hs)) != NULL)
			{
				int			m;
				uint32	   *ids = set_ids(ss->set, &m);

				for (j = 0; j < m; j++)
				{
					int			idx = find_id(ids_new, nnew, ids[j]);

					if (idx >= 0)
						score_of[i * nnew + idx] = ss->score;
				}
				pfree(ids);
			}
		}
	}

	initStringInfo(&buf);
	for (i = 0; i < nnew; i++)
	{
		Datum	   *elems = palloc(sizeof(Datum) * Max(count[i], 1));

		CHECK_FOR_INTERRUPTS();
		lr->ids[i] = ids_new[i];
		lr->deleted[i] = false;
		for (j = 0; j < count[i]; j++)
			elems[j] = Int32GetDatum(flat[start[i] + j]);
		lr->tags[i] = count[i] == 0 ? empty_tags :
			PointerGetDatum(construct_array(elems, count[i], INT4OID, 4, true, TYPALIGN_INT));
		pfree(elems);

		lr->buckets[i] = empty_json;
		if (defs->nschemes > 0)
		{
			bool		any = false;

			resetStringInfo(&buf);
			appendStringInfoChar(&buf, '{');
			for (k = 0; k < defs->nschemes; k++)
			{
				int			b = bucket_of[k * nnew + i];

				if (b < 0)
					continue;
				appendStringInfo(&buf, "%s\"%d\": ", any ? ", " : "", defs->schemes[k].id);
				escape_json(&buf, sc->schemes[k].buckets[b].name);
				any = true;
			}
			appendStringInfoChar(&buf, '}');
			if (any)
				lr->buckets[i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
		}
		lr->scores[i] = empty_json;
		if (defs->nscorecards > 0)
		{
			bool		any = false;

			resetStringInfo(&buf);
			appendStringInfoChar(&buf, '{');
			for (k = 0; k < defs->nscorecards; k++)
			{
				if (sc->scorecards[k].skip)
					continue;
				appendStringInfo(&buf, "%s\"%d\": %s", any ? ", " : "", defs->scorecards[k].id,
								 DatumGetCString(DirectFunctionCall1(numeric_out,
																	 numeric_scaled_to_numeric(score_of[k * nnew + i]))));
				any = true;
			}
			appendStringInfoChar(&buf, '}');
			if (any)
				lr->scores[i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
		}
	}
	for (i = 0; i < ngone; i++)
	{
		lr->ids[nnew + i] = ids_gone[i];
		lr->deleted[nnew + i] = true;
		lr->tags[nnew + i] = empty_tags;
		lr->buckets[nnew + i] = empty_json;
		lr->scores[nnew + i] = empty_json;
	}
	return lr;
}


/* What the stored sets are compared with (live_overlay_members_to_write). */
typedef struct StoredSetCompare
{
	const SubjectDefs *defs;
	ScanCore   *sc;
	RoaringOwned *changed;		/* members whose stored sets differ */
	RoaringOwned *scratch;		/* an empty set */
	RoaringOwned *base_universe;	/* the stored universe, or NULL */
} StoredSetCompare;

/*
 * One stored set (catalog_read_state_sets): the members of the statement
 * whose membership in it differs from what the evaluator found go into
 * changed.
 */
static void
compare_stored_set(void *arg, CatalogStoredSet *st)
{
	StoredSetCompare *cmp = (StoredSetCompare *) arg;
	const SubjectDefs *defs = cmp->defs;
	ScanCore   *sc = cmp->sc;
	RoaringOwned *base = st->set;
	RoaringOwned *now = NULL;
	int			i,
				n;

	if (st->kind == CATALOG_SET_UNIVERSE)
	{
		cmp->base_universe = base;
		return;
	}
	roaring_bitmap_and_inplace(base->bitmap, sc->universe->bitmap);
	if (st->kind == CATALOG_SET_TAG)
	{
		for (i = 0; i < defs->ntags; i++)
			if (defs->tags[i].tag_id == st->id)
				now = sc->tags[i].set;
	}
	else if (st->kind == CATALOG_SET_BUCKET)
	{
		for (i = 0; i < defs->nschemes; i++)
			if (defs->schemes[i].id == st->id)
			{
				ScanScheme *s = &sc->schemes[i];

				for (n = 0; n < s->nbuckets; n++)
					if (strcmp(s->buckets[n].name, st->bucket) == 0)
						now = s->buckets[n].set;
			}
		if (now == NULL)
			now = cmp->scratch; /* a bucket gone from the scheme */
	}
	else
	{
		ScoreValue	score;

		now = cmp->scratch;
		for (i = 0; i < defs->nscorecards; i++)
			if (defs->scorecards[i].id == st->id && !sc->scorecards[i].skip)
			{
				if (numeric_scaled((struct varlena *) PG_DETOAST_DATUM_PACKED(st->score), &score))
				{
					ScoreSet   *ss = hash_search(sc->scorecards[i].scores, &score, HASH_FIND, NULL);

					if (ss != NULL)
						now = ss->set;
				}
			}
	}
	if (now != NULL)
	{
		roaring_bitmap_xor_inplace(base->bitmap, now->bitmap);
		roaring_bitmap_or_inplace(cmp->changed->bitmap, base->bitmap);
	}
	roaring_owned_free(base);
}

/* ---------- small statements: one member at a time ---------- */

/* A stored bucket of a scheme or a stored score of a scorecard, with its members. */
typedef struct StoredPart
{
	char	   *bucket;			/* schemes */
	ScoreValue	score;			/* scorecards */
	bool		exact;			/* scorecards: the stored score has an exact form */
	RoaringOwned *set;
} StoredPart;

/*
 * The stored sets of a subject (its last refresh's), deserialized and kept
 * per backend so that a statement of a few rows can tell, member by member,
 * whether what readers see changes, without reading them again. Valid for
 * one build of the definitions (their generation: which units, by id) and
 * one version of the subject's segment.subject_state row, which a refresh
 * writes in the same transaction as every stored set: the version is read
 * with the statement's snapshot each time, so a refresh committed since is
 * never compared against, whether or not its invalidation has arrived yet.
 * Kept only while the sets fit in segment.audience_cache_size; a subject
 * whose sets do not keep "usable" false for that version, and its small
 * statements write every member (as statements did before).
 */
typedef struct LiveStored
{
	int32		subject_id;
	uint64		generation;
	TransactionId xmin;
	ItemPointerData ctid;
	bool		usable;
	MemoryContext cxt;			/* the entry's */
	MemoryContext sets;			/* the sets' (a child of cxt) */
	Size		bytes;
	RoaringOwned *universe;
	RoaringOwned **tags;		/* per tag of the definitions; NULL: no stored set */
	List	  **schemes;		/* per scheme: StoredPart */
	List	  **scorecards;		/* per scorecard: StoredPart */
	struct LiveStored *next;
} LiveStored;

static LiveStored *live_stored = NULL;

typedef struct StoredLoad
{
	const SubjectDefs *defs;
	LiveStored *ls;
	Size		budget;
} StoredLoad;

/* One stored set (catalog_read_state_sets) into the backend's copy. */
static void
keep_stored_set(void *arg, CatalogStoredSet *st)
{
	StoredLoad *load = (StoredLoad *) arg;
	const SubjectDefs *defs = load->defs;
	LiveStored *ls = load->ls;
	MemoryContext old;
	RoaringOwned *set;
	StoredPart *part;
	int			i;

	if (!ls->usable)
	{
		roaring_owned_free(st->set);
		return;
	}
	ls->bytes += roaring_bitmap_portable_size_in_bytes(st->set->bitmap) + sizeof(roaring_bitmap_t);
	if (ls->bytes > load->budget)
	{
		/* too big to keep: free what was kept, read on without keeping */
		ls->usable = false;
		roaring_owned_free(st->set);
		MemoryContextReset(ls->sets);
		return;
	}
	old = MemoryContextSwitchTo(ls->sets);
	set = roaring_owned_adopt(st->set->bitmap);
	st->set->bitmap = NULL;
	switch (st->kind)
	{
		case CATALOG_SET_UNIVERSE:
			ls->universe = set;
			break;
		case CATALOG_SET_TAG:
			for (i = 0; i < defs->ntags; i++)
				if (defs->tags[i].tag_id == st->id)
					ls->tags[i] = set;
			break;
		case CATALOG_SET_BUCKET:
			for (i = 0; i < defs->nschemes; i++)
				if (defs->schemes[i].id == st->id)
				{
					part = palloc0(sizeof(StoredPart));
					part->bucket = pstrdup(st->bucket);
					part->set = set;
					ls->schemes[i] = lappend(ls->schemes[i], part);
				}
			break;
		case CATALOG_SET_SCORE:
			for (i = 0; i < defs->nscorecards; i++)
				if (defs->scorecards[i].id == st->id)
				{
					part = palloc0(sizeof(StoredPart));
					part->exact = numeric_scaled((struct varlena *) PG_DETOAST_DATUM_PACKED(st->score),
												 &part->score);
					part->set = set;
					ls->scorecards[i] = lappend(ls->scorecards[i], part);
				}
			break;
	}
	MemoryContextSwitchTo(old);
}

/*
 * The subject's stored sets as snap sees them, for definitions of this
 * generation; NULL when they are not kept (over the budget, the cache off,
 * no state). SPI connected.
 */
static LiveStored *
stored_sets(const SubjectDefs *defs, uint64 generation, Snapshot snap)
{
	LiveStored **link;
	LiveStored *ls;
	TransactionId xmin;
	ItemPointerData ctid;
	StoredLoad load;
	Datum	   *d;
	Datum		ids[3];
	int			i;
	int			nest;

	if (segment_audience_cache_kb <= 0)
	{
		/* turned off: give the memory back */
		while (live_stored != NULL)
		{
			ls = live_stored;
			live_stored = ls->next;
			MemoryContextDelete(ls->cxt);
		}
		return NULL;
	}
	if (!state_read_subject_version(defs->subject_id, snap, &xmin, &ctid))
		return NULL;
	for (link = &live_stored; *link != NULL; link = &(*link)->next)
		if ((*link)->subject_id == defs->subject_id)
			break;
	ls = *link;
	if (ls != NULL && ls->generation == generation && ls->xmin == xmin &&
		ItemPointerEquals(&ls->ctid, &ctid) &&
		ls->bytes <= (Size) segment_audience_cache_kb * 1024)
		return ls->usable ? ls : NULL;
	if (ls != NULL)
	{
		*link = ls->next;
		MemoryContextDelete(ls->cxt);
	}

	/*
	 * Read them into a context of the statement's until complete (an error
	 * frees it with the statement's memory), then keep it.
	 */
	{
		MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "segment live stored sets",
												  ALLOCSET_SMALL_SIZES);

		ls = MemoryContextAllocZero(cxt, sizeof(LiveStored));
		ls->cxt = cxt;
	}
	ls->sets = AllocSetContextCreate(ls->cxt, "segment live stored sets", ALLOCSET_DEFAULT_SIZES);
	ls->subject_id = defs->subject_id;
	ls->generation = generation;
	ls->xmin = xmin;
	ls->ctid = ctid;
	ls->usable = true;
	ls->tags = MemoryContextAllocZero(ls->sets, sizeof(RoaringOwned *) * Max(defs->ntags, 1));
	ls->schemes = MemoryContextAllocZero(ls->sets, sizeof(List *) * Max(defs->nschemes, 1));
	ls->scorecards = MemoryContextAllocZero(ls->sets, sizeof(List *) * Max(defs->nscorecards, 1));
	d = palloc(sizeof(Datum) * Max(Max(defs->ntags, defs->nschemes), Max(defs->nscorecards, 1)));
	for (i = 0; i < defs->ntags; i++)
		d[i] = Int32GetDatum(defs->tags[i].tag_id);
	ids[0] = PointerGetDatum(construct_array(d, defs->ntags, INT4OID, 4, true, TYPALIGN_INT));
	for (i = 0; i < defs->nschemes; i++)
		d[i] = Int32GetDatum(defs->schemes[i].id);
	ids[1] = PointerGetDatum(construct_array(d, defs->nschemes, INT4OID, 4, true, TYPALIGN_INT));
	for (i = 0; i < defs->nscorecards; i++)
		d[i] = Int32GetDatum(defs->scorecards[i].id);
	ids[2] = PointerGetDatum(construct_array(d, defs->nscorecards, INT4OID, 4, true, TYPALIGN_INT));
	load.defs = defs;
	load.ls = ls;
	load.budget = (Size) segment_audience_cache_kb * 1024;
	nest = rule_pin_search_path_begin();
	catalog_read_state_sets(defs->subject_id, ids[0], ids[1], ids[2], snap, keep_stored_set, &load);
	rule_pin_search_path_end(nest);
	if (ls->universe == NULL)
		ls->usable = false;
	if (!ls->usable)
	{
		MemoryContextReset(ls->sets);
		ls->bytes = 0;
	}
	MemoryContextSetParent(ls->cxt, CacheMemoryContext);
	ls->next = live_stored;
	live_stored = ls;
	return ls->usable ? ls : NULL;
}

/* A member's overlay row, as read by the statement. */
typedef struct OverlayRow
{
	bool		found;
	bool		deleted;
	int			ntags;
	int32	   *tags;
	Jsonb	   *buckets;
	Jsonb	   *scores;
	DateADT		as_of;
} OverlayRow;

/*
 * segment.live_member and its columns, looked up once per extension
 * generation (extension_cache.h: a re-created extension has new OIDs).
 */
typedef struct OverlayRel
{
	uint64		generation;
	Oid			relid;
	AttrNumber	subject,
				member,
				deleted,
				tags,
				buckets,
				scores,
				as_of;
} OverlayRel;

static OverlayRel overlay_rel;

static const OverlayRel *
overlay_relation(void)
{
	uint64		generation = extension_cache_generation();
	Oid			relid;

	if (OidIsValid(overlay_rel.relid) && overlay_rel.generation == generation)
		return &overlay_rel;
	relid = get_relname_relid("live_member", get_namespace_oid("segment", false));
	if (!OidIsValid(relid))
		elog(ERROR, "relation segment.live_member does not exist");
	overlay_rel.subject = get_attnum(relid, "subject_id");
	overlay_rel.member = get_attnum(relid, "member_id");
	overlay_rel.deleted = get_attnum(relid, "deleted");
	overlay_rel.tags = get_attnum(relid, "tags");
	overlay_rel.buckets = get_attnum(relid, "buckets");
	overlay_rel.scores = get_attnum(relid, "scores");
	overlay_rel.as_of = get_attnum(relid, "as_of");
	overlay_rel.relid = relid;
	overlay_rel.generation = generation;
	return &overlay_rel;
}

/* The overlay row of one member as snap sees it (a primary key lookup). */
static void
overlay_row(int32 subject_id, uint32 member_id, Snapshot snap, OverlayRow *out)
{
	const OverlayRel *ol = overlay_relation();
	Relation	rel;
	TupleDesc	td;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;

	memset(out, 0, sizeof(OverlayRow));
	rel = table_open(ol->relid, AccessShareLock);
	td = RelationGetDescr(rel);
	ScanKeyInit(&keys[0], ol->subject, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(subject_id));
	ScanKeyInit(&keys[1], ol->member, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum((int64) member_id));
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true, snap, 2, keys);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		ArrayType  *tags;

		out->found = true;
		out->deleted = DatumGetBool(heap_getattr(tup, ol->deleted, td, &isnull));
		tags = DatumGetArrayTypePCopy(heap_getattr(tup, ol->tags, td, &isnull));
		out->ntags = ArrayGetNItems(ARR_NDIM(tags), ARR_DIMS(tags));
		if (ARR_HASNULL(tags) || ARR_ELEMTYPE(tags) != INT4OID)
			elog(ERROR, "unexpected tags in segment.live_member");
		out->tags = (int32 *) ARR_DATA_PTR(tags);
		out->buckets = DatumGetJsonbPCopy(heap_getattr(tup, ol->buckets, td, &isnull));
		out->scores = DatumGetJsonbPCopy(heap_getattr(tup, ol->scores, td, &isnull));
		out->as_of = DatumGetDateADT(heap_getattr(tup, ol->as_of, td, &isnull));
	}
	systable_endscan(scan);
	table_close(rel, NoLock);
}

/* The value of key id (a scheme or scorecard id) in an overlay row's object, or NULL. */
static JsonbValue *
overlay_value(Jsonb *obj, int32 id, JsonbValue *buf)
{
	char		key[16];

	snprintf(key, sizeof(key), "%d", id);
	return getKeyJsonValueFromContainer(&obj->root, key, strlen(key), buf);
}

/* The computed score of member m in scorecard i; false: none (not present). */
static bool
computed_score(ScanCore *sc, int i, uint32 m, ScoreValue *score)
{
	HASH_SEQ_STATUS hs;
	ScoreSet   *ss;

	hash_seq_init(&hs, sc->scorecards[i].scores);
	while ((ss = hash_seq_search(&hs)) != NULL)
		if (roaring_bitmap_contains(ss->set->bitmap, m))
		{
			*score = ss->score;
			hash_seq_term(&hs);
			return true;
		}
	return false;
}

/*
 * Whether what readers see of member m (its overlay row ov when there is
 * one, else the stored sets ls) differs from what the statement found: the
 * units it evaluated (affected, or all when NULL) and presence in the table.
 */
static bool
member_differs(const SubjectDefs *defs, ScanCore *sc, LiveStored *ls, const OverlayRow *ov,
			   uint32 m, const bool *affected, DateADT as_of)
{
	bool		present = roaring_bitmap_contains(sc->universe->bitmap, m);
	int			i,
				k;

	if (!present)				/* gone: readers must not count it */
		return ov->found ? !ov->deleted || ov->as_of != as_of :
			roaring_bitmap_contains(ls->universe->bitmap, m);
	if (ov->found ? ov->deleted || ov->as_of != as_of :
		!roaring_bitmap_contains(ls->universe->bitmap, m))
		return true;			/* back, or new to readers */

	for (i = 0; i < defs->ntags; i++)
	{
		bool		now,
					seen = false;

		if (affected != NULL && !affected[i])
			continue;
		now = roaring_bitmap_contains(sc->tags[i].set->bitmap, m);
		if (ov->found)
		{
			for (k = 0; k < ov->ntags && !seen; k++)
				seen = ov->tags[k] == defs->tags[i].tag_id;
		}
		else
			seen = ls->tags[i] != NULL && roaring_bitmap_contains(ls->tags[i]->bitmap, m);
		if (now != seen)
			return true;
	}
	for (i = 0; i < defs->nschemes; i++)
	{
		ScanScheme *s = &sc->schemes[i];
		const char *now = NULL;
		const char *seen = NULL;
		int			seen_len = 0;

		if (affected != NULL && !affected[defs->ntags + i])
			continue;
		for (k = 0; k < s->nbuckets && now == NULL; k++)
			if (roaring_bitmap_contains(s->buckets[k].set->bitmap, m))
				now = s->buckets[k].name;
		if (ov->found)
		{
			JsonbValue	buf;
			JsonbValue *v = overlay_value(ov->buckets, defs->schemes[i].id, &buf);

			if (v != NULL && v->type == jbvString)
			{
				seen = v->val.string.val;
				seen_len = v->val.string.len;
			}
			else if (v != NULL)
				return true;
		}
		else
		{
			ListCell   *lc;

			foreach(lc, ls->schemes[i])
			{
				StoredPart *p = (StoredPart *) lfirst(lc);

				if (roaring_bitmap_contains(p->set->bitmap, m))
				{
					seen = p->bucket;
					seen_len = strlen(p->bucket);
					break;
				}
			}
		}
		if ((now == NULL) != (seen == NULL))
			return true;
		if (now != NULL && (strlen(now) != seen_len || memcmp(now, seen, seen_len) != 0))
			return true;
	}
	for (i = 0; i < defs->nscorecards; i++)
	{
		ScoreValue	now,
					seen = 0;
		bool		has_now,
					has_seen = false;

		if (sc->scorecards[i].skip || (affected != NULL && !affected[defs->ntags + defs->nschemes + i]))
			continue;
		has_now = computed_score(sc, i, m, &now);
		if (ov->found)
		{
			JsonbValue	buf;
			JsonbValue *v = overlay_value(ov->scores, defs->scorecards[i].id, &buf);

			if (v != NULL)
			{
				if (v->type != jbvNumeric ||
					!numeric_scaled((struct varlena *) v->val.numeric, &seen))
					return true;
				has_seen = true;
			}
		}
		else
		{
			ListCell   *lc;

			foreach(lc, ls->scorecards[i])
			{
				StoredPart *p = (StoredPart *) lfirst(lc);

				if (roaring_bitmap_contains(p->set->bitmap, m))
				{
					if (!p->exact)
						return true;	/* compares with nothing, as for many rows */
					seen = p->score;
					has_seen = true;
					break;
				}
			}
		}
		if (has_now != has_seen || (has_now && now != seen))
			return true;
	}
	return false;
}

/*
 * Which of the statement's members need an overlay row. Small statements
 * write every member. Larger ones compare with what readers see now: a
 * member with an overlay row is always rewritten; one without is written
 * only when its tags, buckets or scores differ from the last refresh's sets
 * (or it is new); a deleted key only when readers still count it. The
 * queries read with snap, the latest snapshot the statement took once it
 * held its share of the live lock: a writer of the same customer that
 * committed while this statement waited for its row lock is seen, and so are
 * the sets of a refresh that committed since the transaction's snapshot
 * (whose date the rules were evaluated at).
 */
RoaringOwned *
live_overlay_members_to_write(const SubjectDefs *defs, uint64 generation, ScanCore *sc,
							  RoaringOwned *gone, Snapshot snap, const bool *affected,
							  DateADT as_of)
{
	static SPIPlanPtr overlay_all_plan = NULL;
	static SPIPlanPtr overlay_plan = NULL;
	RoaringOwned *all = roaring_owned_copy(sc->universe->bitmap);
	RoaringOwned *overlay;
	RoaringOwned *base_universe = NULL;
	RoaringOwned *changed;
	Oid			argtypes[2] = {INT4OID, INT8ARRAYOID};
	Datum		args[2];
	Datum	   *d;
	Datum		tag_ids,
				scheme_ids,
				scorecard_ids;
	StoredSetCompare cmp;
	bool		isnull;
	int			n,
				i;
	int			nest;
	uint32	   *ids;

	roaring_bitmap_or_inplace(all->bitmap, gone->bitmap);
	if (roaring_bitmap_get_cardinality(all->bitmap) < LIVE_COMPARE_MIN_ROWS)
	{
		/* a few members: each against its overlay row, or the stored sets kept */
		LiveStored *ls = stored_sets(defs, generation, snap);

		if (ls == NULL)
			return all;
		changed = roaring_owned_create();
		ids = set_ids(all, &n);
		for (i = 0; i < n; i++)
		{
			OverlayRow	ov;

			overlay_row(defs->subject_id, ids[i], snap, &ov);
			if (member_differs(defs, sc, ls, &ov, ids[i], affected, as_of))
				roaring_bitmap_add(changed->bitmap, ids[i]);
		}
		return changed;
	}

	/*
	 * members that have an overlay row: looked up one by one for a few
	 * hundred, else the subject's whole overlay (planning and probing an
	 * array of 100,000 keys costs more than reading it)
	 */
	args[0] = Int32GetDatum(defs->subject_id);
	nest = rule_pin_search_path_begin();
	if (roaring_bitmap_get_cardinality(all->bitmap) <= LIVE_OVERLAY_PROBE_MAX)
	{
		ids = set_ids(all, &n);
		d = palloc(sizeof(Datum) * Max(n, 1));
		for (i = 0; i < n; i++)
			d[i] = Int64GetDatum((int64) ids[i]);
		args[1] = PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		segment_saved_plan(&overlay_plan,
						   "SELECT segment.memberset_agg(member_id) FROM segment.live_member "
						   " WHERE subject_id = $1 AND member_id = ANY ($2)",
						   2, argtypes);
		i = SPI_execute_snapshot(overlay_plan, args, NULL, snap, InvalidSnapshot, true, false, 1);
	}
	else
	{
		segment_saved_plan(&overlay_all_plan,
						   "SELECT segment.memberset_agg(member_id) FROM segment.live_member "
						   " WHERE subject_id = $1",
						   1, argtypes);
		i = SPI_execute_snapshot(overlay_all_plan, args, NULL, snap, InvalidSnapshot, true, false, 1);
	}
	if (i != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read segment.live_member");
	{
		Datum		m = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		overlay = isnull ? roaring_owned_create() : memberset_to_roaring(DatumGetMemberSetP(m));
	}
	SPI_freetuptable(SPI_tuptable);

	/* the sets of the last refresh (of the units the statement may have changed) */
	d = palloc(sizeof(Datum) * Max(Max(defs->ntags, defs->nschemes), Max(defs->nscorecards, 1)));
	n = 0;
	for (i = 0; i < defs->ntags; i++)
		if (affected == NULL || affected[i])
			d[n++] = Int32GetDatum(defs->tags[i].tag_id);
	tag_ids = PointerGetDatum(construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT));
	n = 0;
	for (i = 0; i < defs->nschemes; i++)
		if (affected == NULL || affected[defs->ntags + i])
			d[n++] = Int32GetDatum(defs->schemes[i].id);
	scheme_ids = PointerGetDatum(construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT));
	n = 0;
	for (i = 0; i < defs->nscorecards; i++)
		if (!sc->scorecards[i].skip)
			d[n++] = Int32GetDatum(defs->scorecards[i].id);
	scorecard_ids = PointerGetDatum(construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT));

	cmp.defs = defs;
	cmp.sc = sc;
	cmp.changed = roaring_owned_create();
	cmp.scratch = roaring_owned_create();
	cmp.base_universe = NULL;
	catalog_read_state_sets(defs->subject_id, tag_ids, scheme_ids, scorecard_ids, snap,
							compare_stored_set, &cmp);
	rule_pin_search_path_end(nest);
	changed = cmp.changed;
	base_universe = cmp.base_universe;

	/*
	 * changed: members whose tags, bucket or score differ from the stored
	 * sets (a stored score without an exact form compares with an empty
	 * set, so its members count as changed). Add the keys the refresh did
	 * not see, the members with overlay rows, and the deleted keys readers
	 * still count.
	 */
	if (base_universe == NULL)
		return all;
	{
		RoaringOwned *fresh = roaring_owned_copy(sc->universe->bitmap);
		RoaringOwned *dead = roaring_owned_copy(gone->bitmap);

		roaring_bitmap_andnot_inplace(fresh->bitmap, base_universe->bitmap);
		roaring_bitmap_or_inplace(changed->bitmap, fresh->bitmap);
		roaring_bitmap_and_inplace(overlay->bitmap, all->bitmap);
		roaring_bitmap_or_inplace(changed->bitmap, overlay->bitmap);
		roaring_bitmap_or_inplace(base_universe->bitmap, overlay->bitmap);
		roaring_bitmap_andnot_inplace(dead->bitmap, sc->universe->bitmap);
		roaring_bitmap_and_inplace(dead->bitmap, base_universe->bitmap);
		roaring_bitmap_or_inplace(changed->bitmap, dead->bitmap);
	}
	return changed;
}


void
live_overlay_write(LiveRows *lr)
{
	static SPIPlanPtr plan = NULL;
	int			ret;
	int			nest;

	if (lr->n == 0)
		return;
	/* the live trigger runs under the writer's search_path (live_trigger.c) */
	nest = rule_pin_search_path_begin();
	if (lr->n == 1)
	{
		/* one customer (OLTP): its values as parameters, no function scan */
		static SPIPlanPtr one_plan = NULL;
		Oid			types[7] = {INT4OID, INT8OID, BOOLOID, INT4ARRAYOID, JSONBOID, JSONBOID, DATEOID};
		Datum		values[7];

		segment_saved_plan(&one_plan,
						   "INSERT INTO segment.live_member AS l "
						   "(subject_id, member_id, deleted, tags, buckets, scores, as_of, changed_at) "
						   "VALUES ($1, $2, $3, $4, $5, $6, $7, now()) "
						   "ON CONFLICT (subject_id, member_id) DO UPDATE SET deleted = excluded.deleted, "
						   "tags = excluded.tags, buckets = excluded.buckets, scores = excluded.scores, "
						   "as_of = excluded.as_of, changed_at = excluded.changed_at",
						   7, types);
		values[0] = Int32GetDatum(lr->subject_id);
		values[1] = Int64GetDatum((int64) lr->ids[0]);
		values[2] = BoolGetDatum(lr->deleted[0]);
		values[3] = lr->tags[0];
		values[4] = lr->buckets[0];
		values[5] = lr->scores[0];
		values[6] = DateADTGetDatum(lr->as_of);
		ret = SPI_execute_plan(one_plan, values, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not write segment.live_member: %s", SPI_result_code_string(ret));
		rule_pin_search_path_end(nest);
		return;
	}
	segment_saved_plan(&plan,
					   "INSERT INTO segment.live_member AS l "
					   "(subject_id, member_id, deleted, tags, buckets, scores, as_of, changed_at) "
					   "SELECT r.subject_id, r.member_id, r.deleted, r.tags, r.buckets, r.scores, r.as_of, now() "
					   "  FROM segment_internal._live_rows() r "
					   "ON CONFLICT (subject_id, member_id) DO UPDATE SET deleted = excluded.deleted, "
					   "tags = excluded.tags, buckets = excluded.buckets, scores = excluded.scores, "
					   "as_of = excluded.as_of, changed_at = excluded.changed_at",
					   0, NULL);
	live_pending = lr;
	PG_TRY();
	{
		ret = SPI_execute_plan(plan, NULL, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not write segment.live_member: %s", SPI_result_code_string(ret));
	}
	PG_FINALLY();
	{
		live_pending = NULL;
	}
	PG_END_TRY();
	rule_pin_search_path_end(nest);
}


/*
 * segment_internal._live_rows() -> table (subject_id int, member_id int8, deleted
 * bool, tags int4[], buckets jsonb, scores jsonb, as_of date): the overlay
 * rows of the statement the live trigger is processing; no rows elsewhere.
 */
PG_FUNCTION_INFO_V1(segment_live_rows);
Datum
segment_live_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LiveRows   *lr = live_pending;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (lr == NULL)
		return (Datum) 0;
	for (i = 0; i < lr->n; i++)
	{
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		CHECK_FOR_INTERRUPTS();
		values[0] = Int32GetDatum(lr->subject_id);
		values[1] = Int64GetDatum((int64) lr->ids[i]);
		values[2] = BoolGetDatum(lr->deleted[i]);
		values[3] = lr->tags[i];
		values[4] = lr->buckets[i];
		values[5] = lr->scores[i];
		values[6] = DateADTGetDatum(lr->as_of);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}


/* ---------- dates: live writers and a refresh that moves the date ---------- */

static void
live_locktag(LOCKTAG *tag, int32 subject_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, SEGMENT_LIVE_LOCK_CLASS, (uint32) subject_id, 2);
}

/*
 * A writer's share of the subject's live lock (kept to the end of its
 * transaction: a refresh moving the date waits for it before taking its
 * snapshot, so that what the writer did is either seen by that refresh or
 * evaluated after its commit), then the invalidations committed so far
 * (the cached definitions of a refresh that moved the date are stale from
 * here) and the latest snapshot, registered: it sees a refresh that
 * committed while we waited, or before we started under a transaction
 * snapshot that does not. Held locally after the first statement of the
 * transaction: no shared lock table access then.
 */
Snapshot
live_writer_snapshot(int32 subject_id)
{
	LOCKTAG		tag;

	live_locktag(&tag, subject_id);
	(void) LockAcquire(&tag, ShareLock, false, false);
	AcceptInvalidationMessages();
	return RegisterSnapshot(GetLatestSnapshot());
}


/*
 * The refresh side of the live lock. Waits first for the writers in progress
 * without queueing (WaitForLockers, as CREATE INDEX CONCURRENTLY does), so
 * that writers arriving meanwhile are not held behind the refresh while it
 * waits for a long transaction; then takes the lock, waiting only for those.
 * A refresh for the date the state already has takes nothing: overlay rows
 * written concurrently are evaluated at that same date, and the fold keeps
 * exactly those it did not see (docs/live.md#dates).
 */
bool
live_refresh_begin(int32 subject_id, DateADT as_of)
{
	Snapshot	snap;
	LOCKTAG		tag;
	DateADT		state_as_of;
	bool		refreshed;

	/* the state as committed now: the refresh lock keeps it so */
	snap = RegisterSnapshot(GetLatestSnapshot());
	refreshed = catalog_state_as_of(subject_id, snap, &state_as_of);
	UnregisterSnapshot(snap);
	/* never refreshed: live maintenance cannot be on, there is no overlay */
	if (!refreshed || state_as_of == as_of)
		return false;

	live_locktag(&tag, subject_id);
	WaitForLockers(tag, ExclusiveLock, false);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	return true;
}

void
live_fold(int32 subject_id, const char *subject, DateADT as_of, bool date_moved)
{
	static SPIPlanPtr select_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	static SPIPlanPtr stale_plan = NULL;
	Oid			argtypes[3] = {INT4OID, INT8ARRAYOID, XIDARRAYOID};
	Datum		args[3];
	bool		isnull;

	args[0] = Int32GetDatum(subject_id);
	/* read-only: runs under the active snapshot, the one the refresh scanned with */
	segment_saved_plan(&select_plan,
					   "SELECT array_agg(member_id), array_agg(xmin) FROM segment.live_member "
					   " WHERE subject_id = $1",
					   1, argtypes);
	if (SPI_execute_plan(select_plan, args, NULL, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read segment.live_member");
	args[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		args[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		/*
		 * Delete exactly the versions the refresh saw: a row a writer changed
		 * since has another xmin (a concurrent writer's new version is
		 * rechecked against this condition after its commit, and kept).
		 */
		segment_saved_plan(&delete_plan,
						   "DELETE FROM segment.live_member l "
						   " USING unnest($2::int8[], $3::xid[]) AS u(member_id, x) "
						   " WHERE l.subject_id = $1 AND l.member_id = u.member_id AND l.xmin = u.x",
						   3, argtypes);
		if (SPI_execute_plan(delete_plan, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not fold segment.live_member");
	}

	/*
	 * With the date moved, every writer either committed before our snapshot
	 * (its rows were just deleted) or waits for our commit. What is left,
	 * read as committed now, can only come from a transaction snapshot taken
	 * before such writers committed (REPEATABLE READ): those rows were
	 * evaluated at the old date over changes this refresh did not see.
	 */
	if (date_moved)
	{
		Oid			types[2] = {INT4OID, DATEOID};
		Datum		vals[2] = {Int32GetDatum(subject_id), DateADTGetDatum(as_of)};
		Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
		int			ret;
		int64		stale;

		segment_saved_plan(&stale_plan,
						   "SELECT count(*) FROM segment.live_member WHERE subject_id = $1 AND as_of <> $2",
						   2, types);
		ret = SPI_execute_snapshot(stale_plan, vals, NULL, snap, InvalidSnapshot, true, false, 1);
		UnregisterSnapshot(snap);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read segment.live_member");
		stale = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (stale > 0)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize the refresh of subject \"%s\": %lld live changes committed after its snapshot were evaluated at another date",
							subject, (long long) stale),
					 errdetail("The transaction's snapshot was taken before live writers committed; the refresh would leave their changes evaluated at the old date."),
					 errhint("Retry the transaction, or refresh in READ COMMITTED.")));
	}
}


/*
 * segment_internal._live_writer_as_of(subject_id int) -> date: for the key-change
 * trigger (SQL), what live_writer_snapshot does for the statement trigger:
 * takes the writer's share of the live lock and returns the date of the
 * subject's state as committed now; NULL when it was never refreshed.
 */
PG_FUNCTION_INFO_V1(segment_live_writer_as_of);
Datum
segment_live_writer_as_of(PG_FUNCTION_ARGS)
{
	int32		subject_id = PG_GETARG_INT32(0);
	Snapshot	snap = live_writer_snapshot(subject_id);
	DateADT		as_of;
	bool		refreshed;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	refreshed = catalog_state_as_of(subject_id, snap, &as_of);
	SPI_finish();
	UnregisterSnapshot(snap);
	if (!refreshed)
		PG_RETURN_NULL();
	PG_RETURN_DATEADT(as_of);
}
