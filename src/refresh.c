/*
 * refresh.c
 *     segment.refresh(): one sequential pass over a subject table evaluates
 *     every active rule tag and writes one member set per tag.
 *
 * Atomic: the new sets are ordinary row versions of segment.tag_state, so
 * readers see the old sets until the refresh commits. Serialized: a
 * transaction-level advisory lock per subject. Cancellable: the row loop
 * checks for interrupts. A rule that raises an error on some row (a division
 * by zero, a bad cast) does not sink the run: the scan runs in a
 * subtransaction, the failing tag keeps its previous set, is reported with
 * its error in the result, a WARNING and the run log, and the scan restarts
 * without it. Memory: the member sets plus small per-tag buffers, and for
 * text-keyed subjects the key map.
 *
 * Exports only SQL-callable functions (prefix segment_, as every
 * SQL-callable C function of the extension).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "port/pg_bitutils.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "optimizer/paths.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "live.h"
#include "memberset.h"
#include "refresh_parallel.h"
#include "refresh_pipeline.h"
#include "refresh_run.h"
#include "refresh_scan.h"
#include "refresh_segmentation.h"
#include "refresh_shards.h"
#include "refresh_snapshot.h"
#include "subject_source.h"
#include "rule.h"
#include "rule_owner.h"
#include "segment.h"
#include "subject.h"
#include "subxact.h"

#define KEYMAP_BATCH 10000

/* ---------- key map for text-keyed subjects ---------- */

static uint32
keymap_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, strlen(s));
}

static int
keymap_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(const char *const *) key1, *(const char *const *) key2);
}

/* One entry of the stored key map, copied into the key map's context. */
static void
keymap_put(void *arg, const char *key, int64 id)
{
	SubjectRun *sr = (SubjectRun *) arg;
	char	   *k = MemoryContextStrdup(sr->keycxt, key);
	KeyEntry   *e;
	bool		found;

	e = hash_search(sr->keymap, &k, HASH_ENTER, &found);
	e->key = k;
	e->member_id = id;
	if (id >= sr->next_member_id)
		sr->next_member_id = id + 1;
}

static void
keymap_load(SubjectRun *sr, MemoryContext cxt)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(KeyEntry);
	ctl.hash = keymap_hash;
	ctl.match = keymap_match;
	ctl.hcxt = cxt;
	sr->keymap = hash_create("segment key map", 1024, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	sr->next_member_id = 0;
	catalog_keymap_read(sr->defs->subject_id, keymap_put, sr);
}

static int64
keymap_member_id(SubjectRun *sr, Datum keydatum, MemoryContext cxt)
{
	char	   *key = TextDatumGetCString(keydatum);
	KeyEntry   *e;
	bool		found;

	e = hash_search(sr->keymap, &key, HASH_ENTER, &found);
	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		if (sr->next_member_id > SEGMENT_MAX_MEMBER_ID)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("subject \"%s\" has more than %lld keys", sr->defs->name,
							(long long) SEGMENT_MAX_MEMBER_ID + 1)));
		e->key = pstrdup(key);
		e->member_id = sr->next_member_id++;
		sr->new_keys = lappend(sr->new_keys, e);
		MemoryContextSwitchTo(old);
	}
	pfree(key);
	return e->member_id;
}

/* Persist keys first seen in this run, in batches. */
static void
keymap_save(SubjectRun *sr)
{
	ListCell   *lc;
	int			n = 0;
	int			total = list_length(sr->new_keys);
	Datum	   *keys;
	Datum	   *ids;

	if (total == 0)
		return;
	keys = palloc(sizeof(Datum) * Min(total, KEYMAP_BATCH));
	ids = palloc(sizeof(Datum) * Min(total, KEYMAP_BATCH));
	foreach(lc, sr->new_keys)
	{
		KeyEntry   *e = lfirst(lc);

		keys[n] = CStringGetTextDatum(e->key);
		ids[n] = Int64GetDatum(e->member_id);
		n++;
		if (n == KEYMAP_BATCH || foreach_current_index(lc) == total - 1)
		{
			catalog_keymap_add(sr->defs->subject_id, n, keys, ids);
			n = 0;
		}
	}
}

/* ---------- loading ---------- */

/*
 * Serialize refreshes of one subject. A refresh that had to wait must not
 * work from a snapshot taken before the other one committed: in READ
 * COMMITTED it takes a new one (the caller pushes it); under a
 * transaction-wide snapshot it cannot, so it fails and can be retried.
 */
static void
lock_subject(SubjectRun *sr)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, SEGMENT_LOCK_CLASS, (uint32) sr->defs->subject_id, 2);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		ereport(NOTICE,
				(errmsg("waiting for another refresh of subject \"%s\" to finish", sr->defs->name)));
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize the refresh of subject \"%s\": another refresh of it committed meanwhile",
							sr->defs->name),
					 errhint("Retry the transaction.")));
	}
}

/* The caller must be able to read every row of the table. */
static void
check_table_access(SubjectRun *sr)
{
	if (pg_class_aclcheck(sr->defs->relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to refresh subject \"%s\"", sr->defs->name),
				 errdetail("Refreshing reads every row of table %s.", get_rel_name(sr->defs->relid)),
				 errhint("Grant SELECT on the table to the refreshing role.")));
	if (check_enable_rls(sr->defs->relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot refresh subject \"%s\": row-level security applies to you on table %s",
						sr->defs->name, get_rel_name(sr->defs->relid)),
				 errdetail("Member sets are computed over every row, so a refresh must see them all."),
				 errhint("Refresh as the table owner or a role with BYPASSRLS.")));
}

static void
load_subject(SubjectRun *sr, const char *name)
{
	SubjectInfo *si = subject_lookup(name, false);

	sr->defs = palloc0(sizeof(SubjectDefs));
	sr->defs->subject_id = si->subject_id;
	sr->defs->relid = si->relid;
	sr->defs->keytype = si->key_type;
	sr->defs->name = pstrdup(name);
	sr->defs->keyattno = get_attnum(sr->defs->relid, NameStr(si->key_column));
	if (si->has_snapshot_column)
	{
		sr->snapshot_column = pstrdup(NameStr(si->snapshot_column));
		sr->snapshot_retention = si->snapshot_retention;
		if (get_attnum(sr->defs->relid, sr->snapshot_column) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("snapshot column \"%s\" of subject \"%s\" no longer exists",
							sr->snapshot_column, name)));
	}
	if (sr->defs->keyattno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" of subject \"%s\" no longer exists",
						NameStr(si->key_column), name)));
}

/*
 * The subject's rules (catalog.h) and, for the results, one TagRun per tag
 * and the scan units of its schemes and scorecards.
 */
static void
load_rules(SubjectRun *sr, MemoryContext cxt)
{
	SubjectDefs *defs = sr->defs;
	int			i;

	catalog_load_rules(defs, cxt);
	sr->tags = palloc0(sizeof(TagRun) * Max(defs->ntags, 1));
	sr->schemes = refresh_scan_schemes_from_defs(defs);
	sr->scheme_errors = palloc0(sizeof(char *) * Max(defs->nschemes, 1));
	sr->scorecards = refresh_scan_scorecards_from_defs(defs);
	sr->scorecard_errors = palloc0(sizeof(char *) * Max(defs->nscorecards, 1));
	for (i = 0; i < defs->nscorecards; i++)
		sr->scorecard_errors[i] = defs->scorecards[i].error;
}

/* ---------- the scan ---------- */

static uint32
map_text_key(void *arg, Datum key)
{
	SubjectRun *sr = (SubjectRun *) arg;

	return (uint32) keymap_member_id(sr, key, sr->keycxt);
}

/*
 * Workers for a scan of rel, as PostgreSQL would plan a parallel sequential
 * scan of it: none below min_parallel_table_scan_size, one more each time
 * the table triples, at most max_parallel_workers_per_gather.
 */
static int
parallel_workers_for(Relation rel, Oid keytype)
{
	BlockNumber pages = RelationGetNumberOfBlocks(rel);
	double		threshold = Max(min_parallel_table_scan_size, 1);
	int			workers = 0;

	if (keytype != INT4OID && keytype != INT8OID)
		return 0;				/* the text key map lives in the leader */
	if (IsInParallelMode() || max_parallel_workers_per_gather <= 0 ||
		rel->rd_tableam != GetHeapamTableAmRoutine())
		return 0;
	if (pages < threshold)
		return 0;
	workers = 1;
	while (pages >= threshold * 3 && workers < max_parallel_workers_per_gather)
	{
		workers++;
		threshold *= 3;
	}
	return Min(workers, max_parallel_workers_per_gather);
}

/* Compile and scan, serially or in parallel. */
static void
scan_subject(SubjectRun *sr, Relation rel, DateADT as_of, MemoryContext scancxt,
			 volatile int *current_unit)
{
	MemoryContext old = MemoryContextSwitchTo(scancxt);
	ScanCore	sc;
	SubjectReadMode mode = sr->heap_leaves ? SUBJECT_READ_HEAP :
		sr->row_filter ? SUBJECT_READ_SQL : subject_read_mode(rel);
	/* one snapshot in one leaf partition: its heap, in parallel if large */
	Relation	leaf = list_length(sr->heap_leaves) == 1 ?
		table_open(linitial_oid(sr->heap_leaves), AccessShareLock) : NULL;
	int			nworkers = mode != SUBJECT_READ_HEAP ? 0 :
		sr->heap_leaves == NIL ? parallel_workers_for(rel, sr->defs->keytype) :
		leaf ? parallel_workers_for(leaf, sr->defs->keytype) : 0;
	int			i;

	memset(&sc, 0, sizeof(sc));
	sc.rel = rel;
	sc.scan_rel = leaf;
	sc.keyattno = sr->defs->keyattno;
	sc.keytype = sr->defs->keytype;
	sc.subject = sr->defs->name;
	sc.row_filter = sr->row_filter;
	sc.rows_note = sr->rows_note;
	sc.map_key = map_text_key;
	sc.map_key_arg = sr;
	sc.ntags = sr->defs->ntags;
	sc.tags = refresh_scan_tags_from_defs(sr->defs);
	sc.current_unit = current_unit;
	for (i = 0; i < sr->defs->ntags; i++)
		sc.tags[i].skip = sr->tags[i].error != NULL;
	/* schemes and scorecards: their units live in sr, with their results */
	sc.nschemes = sr->defs->nschemes;
	sc.schemes = sr->schemes;
	for (i = 0; i < sr->defs->nschemes; i++)
		sr->schemes[i].skip = sr->scheme_errors[i] != NULL;
	sc.nscorecards = sr->defs->nscorecards;
	sc.scorecards = sr->scorecards;
	for (i = 0; i < sr->defs->nscorecards; i++)
		sr->scorecards[i].skip = sr->scorecard_errors[i] != NULL;

	if (nworkers > 0)
		refresh_parallel_scan(&sc, nworkers, as_of);
	else if (mode == SUBJECT_READ_SQL)
	{
		refresh_scan_compile(&sc, as_of);
		/* a Citus table: on its shards if it can be, else its rows here */
		if (!refresh_shards_scan(&sc, as_of))
			subject_sql_scan(&sc);
		refresh_scan_finish(&sc);
	}
	else
	{
		TableScanDesc scan;

		refresh_scan_compile(&sc, as_of);
		if (sr->heap_leaves == NIL)
		{
			scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
			refresh_scan_run(&sc, scan, true);
			table_endscan(scan);
		}
		else
		{
			ListCell   *lc;

			foreach(lc, sr->heap_leaves)
			{
				Relation	part = table_open(lfirst_oid(lc), AccessShareLock);

				scan = table_beginscan(part, GetActiveSnapshot(), 0, NULL);
				refresh_scan_run(&sc, scan, true);
				table_endscan(scan);
				table_close(part, AccessShareLock);
			}
		}
		refresh_scan_finish(&sc);
	}
	if (leaf)
		table_close(leaf, AccessShareLock);
	/* a rule's function may have moved search_path: what follows (SQL as the refresher) is pinned again */
	if (strcmp(namespace_search_path, RULE_PINNED_SEARCH_PATH) != 0)
		rule_pin_search_path();

	for (i = 0; i < sr->defs->ntags; i++)
		sr->tags[i].set = sc.tags[i].set;
	sr->universe = sc.universe;
	sr->rows = sc.rows;
	sr->null_keys = sc.null_keys;
	sr->native_nodes = sc.native_nodes;
	sr->fallback_nodes = sc.fallback_nodes;
	sr->workers = nworkers;
	MemoryContextSwitchTo(old);
}

/* One attempt of scan_isolating_failures, run by subxact_run. */
typedef struct ScanAttempt
{
	SubjectRun *sr;
	Relation	rel;
	DateADT		as_of;
	MemoryContext scancxt;
	int			current_unit;	/* the unit being evaluated, -1 outside rules */
} ScanAttempt;

static void
scan_attempt(void *arg)
{
	ScanAttempt *a = (ScanAttempt *) arg;

	scan_subject(a->sr, a->rel, a->as_of, a->scancxt, &a->current_unit);
}

/* Scan until every tag either succeeded or is marked failed. */
static void
scan_isolating_failures(SubjectRun *sr, Relation rel, DateADT as_of,
						MemoryContext runcxt)
{
	ScanAttempt a;

	a.sr = sr;
	a.rel = rel;
	a.as_of = as_of;
	a.scancxt = AllocSetContextCreate(runcxt, "segment refresh scan",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		ErrorData  *edata;

		a.current_unit = -1;
		/* a cancel, a shutdown or out of memory are rethrown there */
		if (subxact_run(scan_attempt, &a, &edata))
			break;

		/* not a rule's fault (a bad key, the table ...): the refresh fails */
		if (a.current_unit < 0)
			ReThrowError(edata);

		{
			int			u = a.current_unit;
			char	   *msg = MemoryContextStrdup(runcxt, edata->message);
			const char *what;

			if (u < sr->defs->ntags)
			{
				sr->tags[u].error = msg;
				what = psprintf("tag \"%s\"", sr->defs->tags[u].name);
			}
			else if (u < sr->defs->ntags + sr->defs->nschemes)
			{
				sr->scheme_errors[u - sr->defs->ntags] = msg;
				what = psprintf("scheme \"%s\"", sr->schemes[u - sr->defs->ntags].name);
			}
			else
			{
				u -= sr->defs->ntags + sr->defs->nschemes;
				sr->scorecard_errors[u] = msg;
				what = psprintf("scorecard \"%s\"", sr->scorecards[u].name);
			}
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("%s failed and keeps its previous members: %s", what, edata->message),
					 errhint("Fix its rules; everything else is refreshed.")));
		}
		FreeErrorData(edata);
		MemoryContextReset(a.scancxt);	/* frees the partial sets */
	}
}

/* ---------- writing ---------- */


static int64
start_run(SubjectRun *sr, DateADT as_of, TimestampTz started)
{
	List	   *relids = sr->read_relids ? sr->read_relids : list_make1_oid(sr->defs->relid);

	return catalog_run_start(sr->defs->subject_id, as_of, started, sr->snapshot_column != NULL,
							 sr->snapshot_date, relids);
}

static void
finish_run(SubjectRun *sr, int64 run_id)
{
	StringInfoData errors;
	int			i;
	int			evaluated = 0;

	initStringInfo(&errors);
	for (i = 0; i < sr->defs->ntags; i++)
	{
		if (sr->tags[i].error)
			appendStringInfo(&errors, "%stag \"%s\": %s", errors.len ? "; " : "",
							 sr->defs->tags[i].name, sr->tags[i].error);
		else
			evaluated++;
	}
	for (i = 0; i < sr->defs->nschemes; i++)
		if (sr->scheme_errors[i])
			appendStringInfo(&errors, "%sscheme \"%s\": %s", errors.len ? "; " : "",
							 sr->schemes[i].name, sr->scheme_errors[i]);
	for (i = 0; i < sr->defs->nscorecards; i++)
		if (sr->scorecard_errors[i])
			appendStringInfo(&errors, "%sscorecard \"%s\": %s", errors.len ? "; " : "",
							 sr->scorecards[i].name, sr->scorecard_errors[i]);
	catalog_run_finish(run_id, sr->rows, evaluated, errors.len ? errors.data : NULL);
}

static void
save_tag(SubjectRun *sr, int i, DateADT as_of, int64 run_id)
{
	TagDef	   *def = &sr->defs->tags[i];
	TagRun	   *t = &sr->tags[i];

	/*
	 * Entered and exited: against the previous state; for a snapshot read
	 * again (a nightly retry) or back-filled, against the retained snapshot
	 * before it, so that they always mean "since the previous snapshot".
	 */
	RoaringOwned *prev = (sr->backfill || sr->rerun) ?
		catalog_tag_snapshot_before(def->tag_id, sr->snapshot_date) : NULL;
	CatalogSetRow row;

	if (prev == NULL && !sr->backfill)
		prev = catalog_tag_set(def->tag_id);

	refresh_count_changes(t->set, prev, &t->members, &t->entered, &t->exited);
	refresh_set_row(&row, t->set, as_of, run_id);
	row.entered = t->entered;
	row.exited = t->exited;
	if (sr->snapshot_column)
		catalog_save_tag_snapshot(def->tag_id, sr->snapshot_date, &row);
	if (!sr->backfill)
		catalog_save_tag_state(def->tag_id, &row);
	pfree(DatumGetPointer(row.members));
}

static void
save_universe(SubjectRun *sr, DateADT as_of, int64 run_id)
{
	CatalogSetRow row;

	refresh_set_row(&row, sr->universe, as_of, run_id);
	if (sr->snapshot_column)
		catalog_save_subject_snapshot(sr->defs->subject_id, sr->snapshot_date, &row);
	if (!sr->backfill)
		catalog_save_subject_state(sr->defs->subject_id, &row);
}

/* Refresh one subject; append its result rows to the tuplestore. */
static void
refresh_subject(const char *name, DateADT as_of, ReturnSetInfo *rsinfo)
{
	MemoryContext runcxt = AllocSetContextCreate(CurrentMemoryContext, "segment refresh",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(runcxt);
	SubjectRun *sr = palloc0(sizeof(SubjectRun));
	TimestampTz started = GetCurrentTimestamp();
	TimestampTz loaded;
	TimestampTz scanned;
	Relation	rel;
	int64		run_id;
	RefreshPipeline *pipeline;
	int			i;
	bool		date_moved;

	load_subject(sr, name);
	check_table_access(sr);
	lock_subject(sr);
	if (sr->snapshot_column)
	{
		/* the newest snapshot on or before as_of; rules see its date */
		rel = table_open(sr->defs->relid, AccessShareLock);
		as_of = refresh_snapshot_choose(sr, rel, as_of);
		table_close(rel, AccessShareLock);
	}
	(void) set_config_option("segment.as_of",
							 DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(as_of))),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	/* a new date: no live writer between our snapshot and our commit */
	date_moved = live_refresh_begin(sr->defs->subject_id, as_of);
	/* everything from here on sees what committed before we held the lock */
	PushActiveSnapshot(GetTransactionSnapshot());
	load_rules(sr, runcxt);
	sr->keycxt = runcxt;
	if (sr->defs->keytype != INT4OID && sr->defs->keytype != INT8OID)
		keymap_load(sr, runcxt);
	loaded = GetCurrentTimestamp();

	rel = table_open(sr->defs->relid, AccessShareLock);
	scan_isolating_failures(sr, rel, as_of, runcxt);
	if (sr->snapshot_column)
		refresh_snapshot_check_unique(sr, rel);
	table_close(rel, AccessShareLock);
	scanned = GetCurrentTimestamp();

	if (sr->null_keys > 0)
		ereport(WARNING,
				(errmsg("subject \"%s\": %lld rows with a NULL key were skipped",
						sr->defs->name, (long long) sr->null_keys)));
	keymap_save(sr);
	run_id = start_run(sr, as_of, started);
	pipeline = refresh_pipeline_begin(sr->defs->subject_id, sr->defs->name, run_id,
									  as_of, !sr->backfill);
	for (i = 0; i < sr->defs->ntags; i++)
	{
		TagRun	   *t = &sr->tags[i];

		if (!t->error)
			save_tag(sr, i, as_of, run_id);
		refresh_put_row(rsinfo, sr->defs->name, sr->defs->tags[i].name, t->members, t->entered,
						t->exited, t->error != NULL);
	}
	if (!sr->backfill)
	{
		refresh_segmentation_save_schemes(sr, as_of, run_id, rsinfo);
		refresh_segmentation_save_scorecards(sr, as_of, run_id);
	}
	save_universe(sr, as_of, run_id);
	if (!sr->backfill)
	{
		/* live changes this refresh has seen are in the new state now */
		live_fold(sr->defs->subject_id, sr->defs->name, as_of, date_moved);
		catalog_save_history(sr->defs->subject_id, as_of, run_id);
	}
	refresh_pipeline_end(pipeline);
	if (sr->snapshot_column)
		catalog_prune_snapshots(sr->defs->subject_id, sr->snapshot_retention);
	finish_run(sr, run_id);
	PopActiveSnapshot();
	ereport(DEBUG1,
			(errmsg("refresh of subject \"%s\": %lld rows, %d tags (%d native nodes, %d executor leaves), %d parallel workers; load %.1f ms, scan %.1f ms, save %.1f ms",
					sr->defs->name, (long long) sr->rows, sr->defs->ntags, sr->native_nodes, sr->fallback_nodes, sr->workers,
					(double) (loaded - started) / 1000.0,
					(double) (scanned - loaded) / 1000.0,
					(double) (GetCurrentTimestamp() - scanned) / 1000.0)));

	MemoryContextSwitchTo(old);
	MemoryContextDelete(runcxt);
}

/*
 * segment.refresh(subject name default null, as_of date default current_date)
 *   returns table (subject name, tag name, members bigint, entered bigint, exited bigint)
 */
PG_FUNCTION_INFO_V1(segment_refresh);
Datum
segment_refresh(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DateADT		as_of;
	List	   *subjects = NIL;
	ListCell   *lc;
	int			nestlevel;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("as_of must not be NULL")));
	as_of = PG_GETARG_DATEADT(1);
	if (DATE_NOT_FINITE(as_of))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be a finite date"),
				 errhint("A refresh stores the members of one day: give that day, e.g. current_date.")));

	InitMaterializedSRF(fcinfo, 0);

	/* rules see the run's date through segment.as_of(), also in fallbacks */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("segment.as_of",
							 DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(as_of))),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	/* rules and the functions they call resolve names one way only; the
	 * level also undoes settings a rule's function might leave behind */
	rule_pin_search_path();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (PG_ARGISNULL(0))
		subjects = catalog_subject_names();
	else
		subjects = list_make1(NameStr(*PG_GETARG_NAME(0)));

	foreach(lc, subjects)
		refresh_subject(lfirst(lc), as_of, rsinfo);

	SPI_finish();
	/* rolled back, not kept: a plain SET in a rule's function must not outlive the refresh */
	AtEOXact_GUC(false, nestlevel);
	return (Datum) 0;
}
