/*
 * live.c
 *     Live maintenance of tags, scheme buckets and scorecard scores.
 *
 * segment.enable_live(subject) (sql/install/86-live.sql) puts three
 * statement-level AFTER triggers (INSERT, UPDATE, DELETE) with transition
 * tables on the subject's table, all calling segment_internal._live_trigger(). Once
 * per statement the trigger compiles the subject's active rules with the
 * refresh's evaluator (refresh_scan.c), evaluates them over the rows of the
 * NEW TABLE as of the date of the subject's last refresh, and upserts one
 * row per changed customer into segment.live_member: the tags, bucket per
 * scheme and score per scorecard of that customer now, or "deleted" for a
 * key that left the table. Each writer touches only the overlay rows of its
 * own customers, so writers of different customers never wait on each
 * other. Readers merge the overlay over the sets of the last refresh
 * (segment_internal._live_* in part 86); a refresh folds it (live_fold).
 *
 * The rows reach the upsert through segment_internal._live_rows(), a set-returning
 * function that reads the statement's results from backend-local memory
 * while the trigger's INSERT ... SELECT runs.
 *
 * Dates: an overlay row is only right for the evaluation date of the state
 * it is merged over. A refresh that moves the date therefore excludes live
 * writers from its snapshot to its commit (lock class
 * SEGMENT_LIVE_LOCK_CLASS, live_refresh_begin), and a writer reads the state
 * with the latest snapshot once it holds its share of that lock, whatever
 * its transaction's own snapshot (docs/live.md#dates).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "catalog/namespace.h"
#include "access/transam.h"
#include "catalog/pg_proc.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "nodes/nodes.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "live.h"
#include "memberset.h"
#include "numeric_scaled.h"
#include "refresh.h"
#include "refresh_scan.h"
#include "rule.h"
#include "rule_owner.h"
#include "segment.h"
#include "subject.h"

/* The overlay rows of one statement, read by segment_internal._live_rows(). */
typedef struct LiveRows
{
	int32		subject_id;
	DateADT		as_of;
	int			n;
	uint32	   *ids;
	bool	   *deleted;
	Datum	   *tags;			/* int4[] */
	Datum	   *buckets;		/* jsonb */
	Datum	   *scores;			/* jsonb */
} LiveRows;

static LiveRows *live_pending = NULL;

/* Statements with fewer rows write every member without comparing. */
#define LIVE_COMPARE_MIN_ROWS 64
/* Up to this many members, their overlay rows are looked up by key. */
#define LIVE_OVERLAY_PROBE_MAX 1000

/* For error context lines: which subject and unit was being evaluated. */
typedef struct LiveErrorInfo
{
	const char *subject;
	SubjectRun *sr;
	volatile int *current_unit;
} LiveErrorInfo;

static void
live_error_callback(void *arg)
{
	LiveErrorInfo *info = (LiveErrorInfo *) arg;
	int			u = *info->current_unit;
	SubjectRun *sr = info->sr;

	if (u >= 0 && u < sr->ntags)
		errcontext("live maintenance of subject \"%s\", tag \"%s\"", info->subject, sr->tags[u].name);
	else if (u >= 0 && u < sr->ntags + sr->nschemes)
		errcontext("live maintenance of subject \"%s\", scheme \"%s\"", info->subject,
				   sr->schemes[u - sr->ntags].name);
	else if (u >= 0)
		errcontext("live maintenance of subject \"%s\", scorecard \"%s\"", info->subject,
				   sr->scorecards[u - sr->ntags - sr->nschemes].name);
	else
		errcontext("live maintenance of subject \"%s\"", info->subject);
}

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
 * Read the rows of a transition table into the evaluator: every row, or
 * only those whose member id is in `only`.
 */
static void
feed_table(ScanCore *sc, Tuplestorestate *ts, TupleDesc desc, RoaringOwned *only)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	uint32		ids[RULE_BATCH_ROWS];

	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		CHECK_FOR_INTERRUPTS();
		if (only != NULL)
		{
			bool		isnull;
			Datum		d = slot_getattr(slot, sc->keyattno, &isnull);
			int64		id;

			if (isnull)
				continue;
			id = sc->keytype == INT4OID ? DatumGetInt32(d) : DatumGetInt64(d);
			if (id < 0 || id > SEGMENT_MAX_MEMBER_ID ||
				!roaring_bitmap_contains(only->bitmap, (uint32) id))
				continue;
		}
		scan_core_add_slot(sc, slot, ids);
	}
	scan_core_flush(sc, ids);
	ExecDropSingleTupleTableSlot(slot);
}

/* The member ids of the keys of a transition table (OLD TABLE). */
static RoaringOwned *
table_keys(Tuplestorestate *ts, TupleDesc desc, AttrNumber keyattno, Oid keytype)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	RoaringOwned *set = roaring_owned_create();

	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		bool		isnull;
		Datum		d;
		int64		id;

		CHECK_FOR_INTERRUPTS();
		d = slot_getattr(slot, keyattno, &isnull);
		if (isnull)
			continue;
		id = keytype == INT4OID ? DatumGetInt32(d) : DatumGetInt64(d);
		if (id >= 0 && id <= SEGMENT_MAX_MEMBER_ID)
			roaring_bitmap_add(set->bitmap, (uint32) id);
	}
	ExecDropSingleTupleTableSlot(slot);
	return set;
}

/*
 * Turn the sets the evaluator collected (one per tag, bucket, score) into
 * one overlay row per member: new members first get their tags, bucket and
 * scores; members only in `gone` are marked deleted.
 */
static LiveRows *
build_rows(SubjectRun *sr, ScanCore *sc, RoaringOwned *gone, RoaringOwned *write,
		   DateADT as_of)
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
	lr->subject_id = sr->subject_id;
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
	tag_idx = palloc0(sizeof(uint32 *) * Max(sr->ntags, 1));
	tag_nidx = palloc0(sizeof(int) * Max(sr->ntags, 1));
	for (i = 0; i < sr->ntags; i++)
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
	for (i = 0; i < sr->ntags; i++)
		for (j = 0; j < tag_nidx[i]; j++)
		{
			int			idx = (int) tag_idx[i][j];

			flat[start[idx] + count[idx]++] = sr->tags[i].tag_id;
		}

	/* the bucket of each scheme, the score of each scorecard */
	if (sr->nschemes > 0)
	{
		bucket_of = palloc(sizeof(int16) * sr->nschemes * Max(nnew, 1));
		for (i = 0; i < sr->nschemes * nnew; i++)
			bucket_of[i] = -1;
		for (i = 0; i < sr->nschemes; i++)
			for (k = 0; k < sr->schemes[i].nbuckets; k++)
			{
				int			m;
				uint32	   *ids = set_ids(sr->schemes[i].buckets[k].set, &m);

				for (j = 0; j < m; j++)
				{
					int			idx = find_id(ids_new, nnew, ids[j]);

					if (idx >= 0)
						bucket_of[i * nnew + idx] = (int16) k;
				}
				pfree(ids);
			}
	}
	if (sr->nscorecards > 0)
	{
		score_of = palloc0(sizeof(ScoreValue) * sr->nscorecards * Max(nnew, 1));
		for (i = 0; i < sr->nscorecards; i++)
		{
			HASH_SEQ_STATUS hs;
			ScoreSet   *ss;

			hash_seq_init(&hs, sr->scorecards[i].scores);
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
		if (sr->nschemes > 0)
		{
			bool		any = false;

			resetStringInfo(&buf);
			appendStringInfoChar(&buf, '{');
			for (k = 0; k < sr->nschemes; k++)
			{
				int			b = bucket_of[k * nnew + i];

				if (b < 0)
					continue;
				appendStringInfo(&buf, "%s\"%d\": ", any ? ", " : "", sr->scheme_ids[k]);
				escape_json(&buf, sr->schemes[k].buckets[b].name);
				any = true;
			}
			appendStringInfoChar(&buf, '}');
			if (any)
				lr->buckets[i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
		}
		lr->scores[i] = empty_json;
		if (sr->nscorecards > 0)
		{
			bool		any = false;

			resetStringInfo(&buf);
			appendStringInfoChar(&buf, '{');
			for (k = 0; k < sr->nscorecards; k++)
			{
				if (sr->scorecards[k].skip)
					continue;
				appendStringInfo(&buf, "%s\"%d\": %s", any ? ", " : "", sr->scorecard_ids[k],
								 DatumGetCString(DirectFunctionCall1(numeric_out,
																	 score_to_numeric(score_of[k * nnew + i]))));
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
static RoaringOwned *
members_to_write(SubjectRun *sr, ScanCore *sc, RoaringOwned *gone, Snapshot snap,
				 const bool *affected)
{
	static SPIPlanPtr overlay_all_plan = NULL;
	static SPIPlanPtr overlay_plan = NULL;
	static SPIPlanPtr base_plan = NULL;
	RoaringOwned *all = roaring_owned_copy(sc->universe->bitmap);
	RoaringOwned *overlay;
	RoaringOwned *base_universe = NULL;
	RoaringOwned *changed;
	RoaringOwned *scratch = roaring_owned_create();
	Oid			argtypes[5] = {INT4OID, INT8ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID};
	Datum		args[5];
	Datum	   *d;
	bool		isnull;
	int			n,
				i;
	uint32	   *ids;
	uint64		k;

	roaring_bitmap_or_inplace(all->bitmap, gone->bitmap);
	if (roaring_bitmap_get_cardinality(all->bitmap) < LIVE_COMPARE_MIN_ROWS)
		return all;

	/*
	 * members that have an overlay row: looked up one by one for a few
	 * hundred, else the subject's whole overlay (planning and probing an
	 * array of 100,000 keys costs more than reading it)
	 */
	args[0] = Int32GetDatum(sr->subject_id);
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
	d = palloc(sizeof(Datum) * Max(Max(sr->ntags, sr->nschemes), Max(sr->nscorecards, 1)));
	n = 0;
	for (i = 0; i < sr->ntags; i++)
		if (affected == NULL || affected[i])
			d[n++] = Int32GetDatum(sr->tags[i].tag_id);
	args[2] = PointerGetDatum(construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT));
	n = 0;
	for (i = 0; i < sr->nschemes; i++)
		if (affected == NULL || affected[sr->ntags + i])
			d[n++] = Int32GetDatum(sr->scheme_ids[i]);
	args[3] = PointerGetDatum(construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT));
	n = 0;
	for (i = 0; i < sr->nscorecards; i++)
		if (!sr->scorecards[i].skip)
			d[n++] = Int32GetDatum(sr->scorecard_ids[i]);
	args[4] = PointerGetDatum(construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT));
	segment_saved_plan(&base_plan,
					   "SELECT 0, 0, NULL::text, NULL::numeric, universe FROM segment.subject_state"
					   " WHERE subject_id = $1"
					   " UNION ALL SELECT 1, tag_id, NULL, NULL, members FROM segment.tag_state"
					   " WHERE tag_id = ANY ($3)"
					   " UNION ALL SELECT 2, scheme_id, bucket::text, NULL, members FROM segment.bucket_state"
					   " WHERE scheme_id = ANY ($4)"
					   " UNION ALL SELECT 3, scorecard_id, NULL, score, members FROM segment.score_state"
					   " WHERE scorecard_id = ANY ($5)",
					   5, argtypes);
	if (SPI_execute_snapshot(base_plan, args, NULL, snap, InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the state of subject \"%s\"", sr->name);

	changed = roaring_owned_create();
	for (k = 0; k < SPI_processed; k++)
	{
		HeapTuple	tup = SPI_tuptable->vals[k];
		TupleDesc	td = SPI_tuptable->tupdesc;
		int			kind = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		int32		id = DatumGetInt32(SPI_getbinval(tup, td, 2, &isnull));
		RoaringOwned *base = memberset_to_roaring(DatumGetMemberSetP(SPI_getbinval(tup, td, 5, &isnull)));
		RoaringOwned *now = NULL;

		CHECK_FOR_INTERRUPTS();
		if (kind == 0)
		{
			base_universe = base;
			continue;
		}
		roaring_bitmap_and_inplace(base->bitmap, sc->universe->bitmap);
		if (kind == 1)
		{
			for (i = 0; i < sr->ntags; i++)
				if (sr->tags[i].tag_id == id)
					now = sc->tags[i].set;
		}
		else if (kind == 2)
		{
			char	   *bucket = TextDatumGetCString(SPI_getbinval(tup, td, 3, &isnull));

			for (i = 0; i < sr->nschemes; i++)
				if (sr->scheme_ids[i] == id)
				{
					ScanScheme *s = &sr->schemes[i];

					for (n = 0; n < s->nbuckets; n++)
						if (strcmp(s->buckets[n].name, bucket) == 0)
							now = s->buckets[n].set;
				}
			if (now == NULL)
				now = scratch;	/* a bucket gone from the scheme */
		}
		else
		{
			ScoreValue	score;
			Datum		num = SPI_getbinval(tup, td, 4, &isnull);

			now = scratch;
			for (i = 0; i < sr->nscorecards; i++)
				if (sr->scorecard_ids[i] == id && !sr->scorecards[i].skip)
				{
					if (numeric_scaled((struct varlena *) PG_DETOAST_DATUM_PACKED(num), &score))
					{
						ScoreSet   *ss = hash_search(sr->scorecards[i].scores, &score, HASH_FIND, NULL);

						if (ss != NULL)
							now = ss->set;
					}
				}
		}
		if (now != NULL)
		{
			roaring_bitmap_xor_inplace(base->bitmap, now->bitmap);
			roaring_bitmap_or_inplace(changed->bitmap, base->bitmap);
		}
		roaring_owned_free(base);
	}
	SPI_freetuptable(SPI_tuptable);

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

/*
 * Entry rules (part 85): the watched audiences over the statement's
 * customers before the overlay is written. entry[0] receives those
 * customers as a memberset, entry[1] the audiences (text[]), entry[2] their
 * sets (memberset[], NULL elements for audiences that do not evaluate).
 */
static void
entry_before(int32 subject_id, RoaringOwned *universe, RoaringOwned *gone, Datum *entry)
{
	static SPIPlanPtr plan = NULL;
	static Oid	plan_typid = InvalidOid;
	Oid			argtypes[2] = {INT4OID, memberset_type_oid()};
	Datum		args[2];
	RoaringOwned *changed = roaring_owned_copy(universe->bitmap);
	bool		isnull;

	if (plan != NULL && plan_typid != argtypes[1])
	{
		SPI_freeplan(plan);		/* the extension was recreated */
		plan = NULL;
	}
	plan_typid = argtypes[1];

	roaring_bitmap_or_inplace(changed->bitmap, gone->bitmap);
	entry[0] = PointerGetDatum(memberset_from_roaring(changed->bitmap));
	roaring_owned_free(changed);
	args[0] = Int32GetDatum(subject_id);
	args[1] = entry[0];
	segment_saved_plan(&plan, "SELECT array_agg(audience), array_agg(members) "
					   "  FROM segment_internal._live_entry_before($1, $2)", 2, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not evaluate the audiences of entry rules");
	entry[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		entry[1] = (Datum) 0;
	entry[2] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
}

/* After the overlay is written: fire the entry rules for those who entered. */
static void
entry_after(int32 subject_id, Datum *entry)
{
	static SPIPlanPtr plan = NULL;
	static Oid	plan_typid = InvalidOid;
	Oid			mstype = memberset_type_oid();
	Oid			argtypes[4] = {INT4OID, mstype, TEXTARRAYOID, get_array_type(mstype)};
	Datum		args[4];

	if (entry[1] == (Datum) 0)
		return;
	if (plan != NULL && plan_typid != mstype)
	{
		SPI_freeplan(plan);		/* the extension was recreated */
		plan = NULL;
	}
	plan_typid = mstype;
	args[0] = Int32GetDatum(subject_id);
	args[1] = entry[0];
	args[2] = entry[1];
	args[3] = entry[2];
	segment_saved_plan(&plan, "SELECT segment_internal._live_entry_after($1, $2, $3, $4)", 4, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not fire the entry rules");
}

/* Upsert the statement's rows into segment.live_member. */
static void
write_rows(LiveRows *lr)
{
	static SPIPlanPtr plan = NULL;
	int			ret;

	if (lr->n == 0)
		return;
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
}

/*
 * The subject's rules, analysed, planned for the as_of of its last refresh
 * and compiled into programs, kept per backend across statements and
 * transactions (a catalog query, parsing, planning and compiling 60 rules
 * per statement cost more than a one-row UPDATE itself). An entry is valid
 * while live_generation has not moved since it was built. It moves on:
 *   - a relcache invalidation of segment.live_subject, which the statement
 *     triggers of part 89 send when a row of a table the definitions come
 *     from changes (subject, subject_state, tag, scheme, scheme_bucket,
 *     scorecard, scorecard_item, entry_rule, live_subject): a definition
 *     change, enable/disable, a refresh (its date), in any backend, at its
 *     commit, and at once in the backend that made it;
 *   - a relcache invalidation of a subject table (ALTER TABLE, GRANT/REVOKE
 *     on its columns) or of every relation;
 *   - a change of a role, a role membership, a function or a schema: the
 *     owners' rights the programs were checked and compiled with.
 * A writer reads invalidations once it holds its share of the live lock, so
 * a refresh that moved the date (it holds the lock exclusively to its
 * commit) is always seen.
 */
typedef struct LiveDefs
{
	int32		subject_id;
	uint64		generation;		/* live_generation when the build began */
	MemoryContext cxt;
	Oid			relid;			/* the subject's relation */
	int			ntriggers;		/* the triggers enable_live recorded */
	char	  **triggers;
	bool		refreshed;		/* false: no state yet, nothing to overlay */
	DateADT		as_of;
	bool		entry_rules;
	SubjectRun *sr;				/* definitions; schemes, scorecards shared with sc */
	ScanCore   *sc;				/* compiled programs */
	/*
	 * Per unit (tags, then schemes, then scorecards): the columns its rules
	 * read (attnos), or NULL when it may depend on more than those (a
	 * whole-row or system column, a function that is not a built-in
	 * immutable one, a domain): an UPDATE of other columns cannot change it.
	 */
	Bitmapset **unit_cols;
	struct LiveDefs *next;
} LiveDefs;

static LiveDefs *live_cache = NULL;
static uint64 live_generation = 1;
static bool live_callbacks = false;
static Oid	live_catalog_relid = InvalidOid;	/* segment.live_subject */

static void
live_relcache_callback(Datum arg, Oid relid)
{
	LiveDefs   *d;

	if (!OidIsValid(relid) || relid == live_catalog_relid)
	{
		live_generation++;
		return;
	}
	for (d = live_cache; d != NULL; d = d->next)
		if (d->relid == relid)
		{
			live_generation++;
			return;
		}
}

static void
live_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	live_generation++;
}

static void
live_register_callbacks(void)
{
	if (live_callbacks)
		return;
	CacheRegisterRelcacheCallback(live_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, live_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, live_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, live_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, live_syscache_callback, (Datum) 0);
	live_callbacks = true;
}

static const char *defs_sql =
	"SELECT s.name::text, s.key_column::text, s.relation::oid, l.triggers::text[], st.as_of,"
	"       EXISTS (SELECT 1 FROM segment.entry_rule e WHERE e.subject_id = s.subject_id)"
	"  FROM segment.live_subject l JOIN segment.subject s USING (subject_id)"
	"  LEFT JOIN segment.subject_state st USING (subject_id)"
	" WHERE l.subject_id = $1";

static bool
live_not_builtin_immutable(Oid funcid, void *context)
{
	return funcid >= FirstNormalObjectId || func_volatile(funcid) != PROVOLATILE_IMMUTABLE;
}

/* Whether a planned rule may read more of the row than its plain columns. */
static bool
live_reads_more_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) && ((Var *) node)->varattno <= 0)
		return true;			/* the whole row, or a system column */
	if (IsA(node, CoerceToDomain))
		return true;			/* its checks may call anything */
	if (check_functions_in_node(node, live_not_builtin_immutable, NULL))
		return true;
	return expression_tree_walker(node, live_reads_more_walker, context);
}

/*
 * The columns a unit's planned rules read (positive attnos) added to *cols;
 * false when the unit may depend on more than those (*cols is then unusable).
 */
static bool
live_rule_columns(Expr *planned, Bitmapset **cols)
{
	Bitmapset  *raw = NULL;
	int			x = -1;

	if (live_reads_more_walker((Node *) planned, NULL))
		return false;
	pull_varattnos((Node *) planned, 1, &raw);
	while ((x = bms_next_member(raw, x)) >= 0)
		*cols = bms_add_member(*cols, x + FirstLowInvalidHeapAttributeNumber);
	return true;
}

/* Planning folds immutable functions: as the rule's owner, restricted. */
static Expr *
plan_rule(Relation rel, const char *rule, const char *what, DateADT as_of, Oid owner)
{
	Node	   *analysed = rule_analyze(rel, rule, what, NULL);
	RuleOwnerSave save;
	Expr	   *planned;

	rule_owner_check(owner, rel, rule_columns_read(analysed), what, false);
	rule_owner_enter(owner, &save);
	planned = rule_plan(analysed, as_of);
	rule_owner_leave(&save);
	return planned;
}

/* Deep copy of the definitions in tmp into sr, in CurrentMemoryContext. */
static void
copy_definitions(SubjectRun *sr, SubjectRun *tmp)
{
	int			i,
				j;

	sr->ntags = tmp->ntags;
	sr->tags = palloc0(sizeof(TagRun) * Max(sr->ntags, 1));
	for (i = 0; i < sr->ntags; i++)
	{
		sr->tags[i].tag_id = tmp->tags[i].tag_id;
		sr->tags[i].name = pstrdup(tmp->tags[i].name);
		sr->tags[i].rule = pstrdup(tmp->tags[i].rule);
		sr->tags[i].owner = tmp->tags[i].owner;
	}
	sr->nschemes = tmp->nschemes;
	sr->schemes = palloc0(sizeof(ScanScheme) * Max(sr->nschemes, 1));
	sr->scheme_ids = palloc0(sizeof(int32) * Max(sr->nschemes, 1));
	sr->scheme_errors = palloc0(sizeof(char *) * Max(sr->nschemes, 1));
	for (i = 0; i < sr->nschemes; i++)
	{
		ScanScheme *from = &tmp->schemes[i];
		ScanScheme *to = &sr->schemes[i];

		sr->scheme_ids[i] = tmp->scheme_ids[i];
		to->name = pstrdup(from->name);
		to->owner = from->owner;
		to->nbuckets = from->nbuckets;
		to->buckets = palloc0(sizeof(ScanTag) * Max(to->nbuckets, 1));
		for (j = 0; j < to->nbuckets; j++)
		{
			to->buckets[j].name = pstrdup(from->buckets[j].name);
			to->buckets[j].rule = pstrdup(from->buckets[j].rule);
		}
	}
	sr->nscorecards = tmp->nscorecards;
	sr->scorecards = palloc0(sizeof(ScanScorecard) * Max(sr->nscorecards, 1));
	sr->scorecard_ids = palloc0(sizeof(int32) * Max(sr->nscorecards, 1));
	sr->scorecard_errors = palloc0(sizeof(char *) * Max(sr->nscorecards, 1));
	for (i = 0; i < sr->nscorecards; i++)
	{
		ScanScorecard *from = &tmp->scorecards[i];
		ScanScorecard *to = &sr->scorecards[i];

		sr->scorecard_ids[i] = tmp->scorecard_ids[i];
		if (tmp->scorecard_errors[i])
			sr->scorecard_errors[i] = pstrdup(tmp->scorecard_errors[i]);
		to->name = pstrdup(from->name);
		to->owner = from->owner;
		to->base = from->base;
		to->nitems = from->nitems;
		to->items = palloc0(sizeof(ScanTag) * Max(to->nitems, 1));
		to->points = palloc0(sizeof(ScoreValue) * Max(to->nitems, 1));
		/* a scorecard whose base or points are out of range is not evaluated */
		to->skip = sr->scorecard_errors[i] != NULL;
		for (j = 0; j < to->nitems; j++)
		{
			to->items[j].name = pstrdup(from->items[j].name);
			to->items[j].rule = pstrdup(from->items[j].rule);
			to->points[j] = from->points[j];
		}
	}
}

/*
 * Load, plan and compile every rule of the subject (SPI connected, the
 * rules' GUCs set) into sr and sc of d, in d's context.
 */
static void
compile_defs(LiveDefs *d, Relation rel, const char *name, const char *keycol, Snapshot snap)
{
	SubjectRun *sr = palloc0(sizeof(SubjectRun));
	ScanCore   *sc = palloc0(sizeof(ScanCore));
	int			unit = -1;
	int			i,
				j;

	sr->subject_id = d->subject_id;
	sr->name = pstrdup(name);
	sr->relid = d->relid;
	sr->keyattno = get_attnum(sr->relid, keycol);
	if (sr->keyattno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" of subject \"%s\" no longer exists", keycol, name)));
	sr->keytype = get_atttype(sr->relid, sr->keyattno);
	if (sr->keytype != INT4OID && sr->keytype != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("live maintenance supports integer-keyed subjects only; subject \"%s\" is keyed by %s",
						name, format_type_be(sr->keytype)),
				 errhint("Run segment.disable_live('%s') and refresh instead.", name)));

	/* the definitions as of the snapshot the entry is valid for */
	PushActiveSnapshot(snap);
	{
		MemoryContext cxt = CurrentMemoryContext;
		SubjectRun *tmp = palloc0(sizeof(SubjectRun));

		/* SPI calls return to SPI's own context: load there, then copy */
		tmp->subject_id = d->subject_id;
		tmp->name = sr->name;
		load_tags(tmp);
		load_schemes(tmp);
		load_scorecards(tmp);
		MemoryContextSwitchTo(cxt);
		copy_definitions(sr, tmp);
	}
	PopActiveSnapshot();

	sc->rel = rel;
	sc->keyattno = sr->keyattno;
	sc->keytype = sr->keytype;
	sc->subject = sr->name;
	sc->current_unit = &unit;
	sc->ntags = sr->ntags;
	sc->tags = palloc0(sizeof(ScanTag) * Max(sr->ntags, 1));
	for (i = 0; i < sr->ntags; i++)
	{
		sc->tags[i].name = sr->tags[i].name;
		sc->tags[i].rule = sr->tags[i].rule;
		sc->tags[i].owner = sr->tags[i].owner;
		sc->tags[i].planned = plan_rule(rel, sr->tags[i].rule,
										psprintf("tag \"%s\"", sr->tags[i].name), d->as_of,
										sr->tags[i].owner);
	}
	for (i = 0; i < sr->nschemes; i++)
	{
		ScanScheme *s = &sr->schemes[i];

		for (j = 0; j < s->nbuckets; j++)
			s->buckets[j].planned = plan_rule(rel, s->buckets[j].rule,
											  psprintf("bucket \"%s\" of scheme \"%s\"",
													   s->buckets[j].name, s->name),
											  d->as_of, s->owner);
	}
	for (i = 0; i < sr->nscorecards; i++)
	{
		ScanScorecard *c = &sr->scorecards[i];

		for (j = 0; j < c->nitems; j++)
			c->items[j].planned = plan_rule(rel, c->items[j].rule,
											psprintf("item %d of scorecard \"%s\"", j + 1, c->name),
											d->as_of, c->owner);
	}
	sc->nschemes = sr->nschemes;
	sc->schemes = sr->schemes;
	sc->nscorecards = sr->nscorecards;
	sc->scorecards = sr->scorecards;

	/* the columns of each unit, before compiling (which may scribble) */
	d->unit_cols = palloc0(sizeof(Bitmapset *) * Max(SCAN_UNITS(sc), 1));
	for (i = 0; i < sr->ntags; i++)
	{
		Bitmapset  *cols = NULL;

		if (live_rule_columns(sc->tags[i].planned, &cols))
			d->unit_cols[i] = bms_add_member(cols, sr->keyattno);
	}
	for (i = 0; i < sr->nschemes; i++)
	{
		Bitmapset  *cols = NULL;
		bool		exact = true;

		for (j = 0; j < sr->schemes[i].nbuckets && exact; j++)
			exact = live_rule_columns(sr->schemes[i].buckets[j].planned, &cols);
		if (exact)
			d->unit_cols[sr->ntags + i] = bms_add_member(cols, sr->keyattno);
	}
	for (i = 0; i < sr->nscorecards; i++)
	{
		Bitmapset  *cols = NULL;
		bool		exact = true;

		for (j = 0; j < sr->scorecards[i].nitems && exact; j++)
			exact = live_rule_columns(sr->scorecards[i].items[j].planned, &cols);
		if (exact)
			d->unit_cols[sr->ntags + sr->nschemes + i] = bms_add_member(cols, sr->keyattno);
	}
	scan_core_compile(sc, d->as_of);
	/* the batch slot pins the relation's descriptor: one per statement */
	rule_scan_end(sc->rs);
	d->sr = sr;
	d->sc = sc;
}

/*
 * Build the entry of a subject, as of snap (SPI connected). Its context is
 * a child of the statement's until it is complete: an error frees it with
 * the rest.
 */
static LiveDefs *
build_defs(Relation rel, int32 subject_id, Snapshot snap)
{
	static SPIPlanPtr plan = NULL;
	uint64		generation = live_generation;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "segment live definitions",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(subject_id);
	LiveDefs   *d = palloc0(sizeof(LiveDefs));
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	char	   *name;
	char	   *keycol;

	d->cxt = cxt;
	d->subject_id = subject_id;
	d->generation = generation;
	if (!OidIsValid(live_catalog_relid))
		live_catalog_relid = get_relname_relid("live_subject", get_namespace_oid("segment", false));
	segment_saved_plan(&plan, defs_sql, 1, &argtype);
	if (SPI_execute_snapshot(plan, &arg, NULL, snap, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.live_subject");
	MemoryContextSwitchTo(cxt);
	if (SPI_processed == 1)
	{
		Datum		arr;

		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		name = SPI_getvalue(tup, desc, 1);
		keycol = SPI_getvalue(tup, desc, 2);
		d->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		arr = SPI_getbinval(tup, desc, 4, &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;
			int			i;

			deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &nulls, &d->ntriggers);
			d->triggers = palloc(sizeof(char *) * Max(d->ntriggers, 1));
			for (i = 0; i < d->ntriggers; i++)
				d->triggers[i] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
		}
		d->as_of = DatumGetDateADT(SPI_getbinval(tup, desc, 5, &isnull));
		d->refreshed = !isnull;
		d->entry_rules = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		SPI_freetuptable(SPI_tuptable);
		if (d->refreshed && d->relid == RelationGetRelid(rel))
			compile_defs(d, rel, name, keycol, snap);
	}
	else
		SPI_freetuptable(SPI_tuptable);
	MemoryContextSwitchTo(old);
	return d;
}

/* The valid entry of the subject, built when missing or stale. */
static LiveDefs *
get_defs(Relation rel, int32 subject_id, Snapshot snap)
{
	LiveDefs  **link;
	LiveDefs   *d;

	live_register_callbacks();
	for (link = &live_cache; *link != NULL; link = &(*link)->next)
		if ((*link)->subject_id == subject_id)
			break;
	d = *link;
	if (d != NULL && d->generation == live_generation)
		return d;
	if (d != NULL)
	{
		*link = d->next;
		MemoryContextDelete(d->cxt);
	}
	d = build_defs(rel, subject_id, snap);
	MemoryContextSetParent(d->cxt, CacheMemoryContext);
	d->next = live_cache;
	live_cache = d;
	return d;
}

/*
 * Refuse to run from a trigger segment did not create (issue 11, hole 2):
 * the function is SECURITY DEFINER and writes the overlay every reader
 * merges, so a trigger anyone attaches to a table of theirs (a temp table
 * with the subject's column names) would forge memberships. The trigger
 * must be on the subject's table and be one of the triggers enable_live
 * recorded in segment.live_subject (d: as read with the latest snapshot,
 * cached until any of those rows changes). Names, not OIDs: a restore keeps
 * them.
 */
static void
live_check_trigger(TriggerData *td, int32 subject_id, LiveDefs *d)
{
	int			i;

	if (d->relid == RelationGetRelid(td->tg_relation))
		for (i = 0; i < d->ntriggers; i++)
			if (strcmp(d->triggers[i], td->tg_trigger->tgname) == 0)
				return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("trigger function segment_internal._live_trigger() fired on a relation segment did not attach it to"),
			 errdetail("Trigger \"%s\" on relation \"%s\" for subject id %d.",
					   td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation),
					   subject_id),
			 errhint("Live maintenance installs its triggers with segment.enable_live(subject).")));
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
static Snapshot
live_writer_snapshot(int32 subject_id)
{
	LOCKTAG		tag;

	live_locktag(&tag, subject_id);
	(void) LockAcquire(&tag, ShareLock, false, false);
	AcceptInvalidationMessages();
	return RegisterSnapshot(GetLatestSnapshot());
}

/* Every unit evaluated again (but scorecards whose base or points are out of range). */
static void
live_reset_skips(LiveDefs *d)
{
	ScanCore   *sc = d->sc;
	int			i;

	for (i = 0; i < sc->ntags; i++)
		sc->tags[i].skip = false;
	for (i = 0; i < sc->nschemes; i++)
		sc->schemes[i].skip = false;
	for (i = 0; i < sc->nscorecards; i++)
		sc->scorecards[i].skip = d->sr->scorecard_errors[i] != NULL;
}

/*
 * For an UPDATE: which units it may have changed (true), by the columns it
 * set (with the generated columns that depend on them) and the columns each
 * unit reads. NULL when any may have: not an UPDATE, the set columns are not
 * known, or a BEFORE ROW trigger on the table may have changed others.
 */
static bool *
live_affected(LiveDefs *d, TriggerData *td, int *naffected)
{
	Relation	rel = td->tg_relation;
	Bitmapset  *updated = NULL;
	bool	   *affected;
	int			x = -1;
	int			u;

	if (!TRIGGER_FIRED_BY_UPDATE(td->tg_event) || td->tg_updatedcols == NULL ||
		(rel->trigdesc != NULL && rel->trigdesc->trig_update_before_row))
		return NULL;
	while ((x = bms_next_member(td->tg_updatedcols, x)) >= 0)
	{
		AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;

		if (attno <= 0)
			return NULL;		/* a whole-row or system column: anything */
		updated = bms_add_member(updated, attno);
	}
	affected = palloc(sizeof(bool) * Max(SCAN_UNITS(d->sc), 1));
	*naffected = 0;
	for (u = 0; u < SCAN_UNITS(d->sc); u++)
	{
		affected[u] = d->unit_cols[u] == NULL || bms_overlap(d->unit_cols[u], updated);
		if (affected[u])
			(*naffected)++;
	}
	return affected;
}

/* Evaluate one statement's transition tables and write the overlay. */
static void
live_statement(TriggerData *td, int32 subject_id)
{
	Relation	rel = td->tg_relation;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "segment live",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	SubjectRun *sr;
	LiveDefs   *defs;
	ScanCore   *sc;
	volatile int current_unit = -1;
	ErrorContextCallback errcb;
	LiveErrorInfo info;
	int			nestlevel;
	Datum		entry[3] = {0, 0, 0};	/* changed, audiences, before sets */
	RoaringOwned *gone;
	RoaringOwned *write;
	LiveRows   *lr;
	Snapshot	snap;
	bool	   *affected;
	int			naffected = 0;

	/*
	 * Wait for a refresh moving the date to commit, then read the state as
	 * it is now rather than as of the transaction's snapshot: the rows we
	 * write are evaluated at that state's date and merged over its sets.
	 */
	/*
	 * The statement's own rows become visible to the snapshot: a rule that
	 * reads the table through a function (by key) sees them as a refresh
	 * would.
	 */
	CommandCounterIncrement();
	snap = live_writer_snapshot(subject_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* rules see the date of the last refresh, also in executor fallbacks */
	nestlevel = NewGUCNestLevel();
	rule_pin_search_path();
	defs = get_defs(rel, subject_id, snap);
	live_check_trigger(td, subject_id, defs);
	if (!defs->refreshed || (td->tg_newtable == NULL && td->tg_oldtable == NULL))
	{
		/* not refreshed: nothing to overlay */
		AtEOXact_GUC(true, nestlevel);
		SPI_finish();
		UnregisterSnapshot(snap);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		return;
	}
	(void) set_config_option("segment.as_of",
							 DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(defs->as_of))),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	sr = defs->sr;
	sc = defs->sc;
	sc->current_unit = &current_unit;

	/*
	 * An UPDATE whose columns no rule reads changes nothing: done. One that
	 * touches a few units and many rows evaluates those units first, over
	 * every row, then every unit over the members that need an overlay row.
	 */
	live_reset_skips(defs);
	affected = live_affected(defs, td, &naffected);
	if (affected != NULL && naffected == 0)
	{
		AtEOXact_GUC(true, nestlevel);
		SPI_finish();
		UnregisterSnapshot(snap);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		return;
	}
	if (affected != NULL && (naffected == SCAN_UNITS(sc) ||
							 tuplestore_tuple_count(td->tg_newtable) < LIVE_COMPARE_MIN_ROWS))
		affected = NULL;		/* one pass over every unit */
	if (affected != NULL)
	{
		int			i;

		for (i = 0; i < sc->ntags; i++)
			sc->tags[i].skip = !affected[i];
		for (i = 0; i < sc->nschemes; i++)
			sc->schemes[i].skip = !affected[sc->ntags + i];
		for (i = 0; i < sc->nscorecards; i++)
			sc->scorecards[i].skip |= !affected[sc->ntags + sc->nschemes + i];
	}

	info.subject = sr->name;
	info.sr = sr;
	info.current_unit = &current_unit;
	errcb.callback = live_error_callback;
	errcb.arg = &info;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	PushActiveSnapshot(snap);
	scan_core_restart(sc, rel);
	if (td->tg_newtable != NULL)
		feed_table(sc, td->tg_newtable, RelationGetDescr(rel), NULL);
	scan_core_collect(sc);
	PopActiveSnapshot();
	gone = td->tg_oldtable != NULL ?
		table_keys(td->tg_oldtable, RelationGetDescr(rel), sr->keyattno, sr->keytype) :
		roaring_owned_create();

	if (defs->entry_rules)
		entry_before(subject_id, sc->universe, gone, entry);
	write = members_to_write(sr, sc, gone, snap, affected);
	if (affected != NULL)
	{
		/* the whole state of the members to write */
		live_reset_skips(defs);
		PushActiveSnapshot(snap);
		scan_core_restart(sc, rel);
		feed_table(sc, td->tg_newtable, RelationGetDescr(rel), write);
		scan_core_collect(sc);
		PopActiveSnapshot();
	}
	lr = build_rows(sr, sc, gone, write, defs->as_of);
	AtEOXact_GUC(true, nestlevel);
	error_context_stack = errcb.previous;

	write_rows(lr);
	if (defs->entry_rules)
		entry_after(subject_id, entry);
	SPI_finish();
	UnregisterSnapshot(snap);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * segment_internal._live_trigger(subject_id text): the statement-level AFTER
 * INSERT / UPDATE / DELETE trigger that enable_live installs.
 */
PG_FUNCTION_INFO_V1(segment_live_trigger);
Datum
segment_live_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	int32		subject_id;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("segment_internal._live_trigger() may only be called as a trigger"),
				 errhint("Use segment.enable_live(subject).")));
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("segment_internal._live_trigger() must be an AFTER ... FOR EACH STATEMENT trigger with one argument"),
				 errhint("Use segment.enable_live(subject) to install it.")));
	subject_id = pg_strtoint32(td->tg_trigger->tgargs[0]);
	live_statement(td, subject_id);
	return PointerGetDatum(NULL);
}

/*
 * segment_internal._live_defs_changed(): statement-level AFTER trigger on the tables
 * the cached definitions of live maintenance come from (part 89). Sends a
 * relcache invalidation of segment.live_subject, which every backend's
 * live_relcache_callback takes as "rebuild": at commit for the others, at
 * the next command in this one (and again if it rolls back).
 */
PG_FUNCTION_INFO_V1(segment_live_defs_changed);
Datum
segment_live_defs_changed(PG_FUNCTION_ARGS)
{
	static const char *const tables[] = {"subject", "subject_state", "tag", "scheme", "scheme_bucket",
	"scorecard", "scorecard_item", "entry_rule", "live_subject"};
	TriggerData *td = (TriggerData *) fcinfo->context;
	Oid			nsp;
	Oid			relid;
	bool		ours = false;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("segment_internal._live_defs_changed() may only be called as a trigger")));
	/* only from the triggers of part 89 (issue 11, hole 2) */
	nsp = get_namespace_oid("segment", false);
	if (strcmp(td->tg_trigger->tgname, "segment_live_defs") == 0 &&
		RelationGetNamespace(td->tg_relation) == nsp)
		for (i = 0; i < lengthof(tables); i++)
			ours |= strcmp(RelationGetRelationName(td->tg_relation), tables[i]) == 0;
	if (!ours)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("trigger function segment_internal._live_defs_changed() fired on a relation segment did not attach it to"),
				 errdetail("Trigger \"%s\" on relation \"%s\".",
						   td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation))));
	relid = get_relname_relid("live_subject", nsp);
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	return PointerGetDatum(NULL);
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
	static SPIPlanPtr plan = NULL;
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(subject_id);
	Snapshot	snap;
	LOCKTAG		tag;
	bool		isnull;
	bool		moved;
	int			ret;

	/* the state as committed now: the refresh lock keeps it so */
	segment_saved_plan(&plan, "SELECT as_of FROM segment.subject_state WHERE subject_id = $1",
					   1, &argtype);
	snap = RegisterSnapshot(GetLatestSnapshot());
	ret = SPI_execute_snapshot(plan, &arg, NULL, snap, InvalidSnapshot, true, false, 1);
	UnregisterSnapshot(snap);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.subject_state");
	/* never refreshed: live maintenance cannot be on, there is no overlay */
	if (SPI_processed == 0)
		return false;
	moved = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) != as_of;
	SPI_freetuptable(SPI_tuptable);
	if (!moved)
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
	static SPIPlanPtr plan = NULL;
	int32		subject_id = PG_GETARG_INT32(0);
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(subject_id);
	Snapshot	snap = live_writer_snapshot(subject_id);
	Datum		result = (Datum) 0;
	bool		isnull = true;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	segment_saved_plan(&plan, "SELECT as_of FROM segment.subject_state WHERE subject_id = $1",
					   1, &argtype);
	if (SPI_execute_snapshot(plan, &arg, NULL, snap, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.subject_state");
	if (SPI_processed == 1)
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_finish();
	UnregisterSnapshot(snap);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}
