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

#include "live.h"
#include "memberset.h"
#include "refresh.h"
#include "refresh_parallel.h"
#include "refresh_pipeline.h"
#include "refresh_scan.h"
#include "refresh_shards.h"
#include "subject_source.h"
#include "rule.h"
#include "rule_owner.h"
#include "segment.h"
#include "subject.h"

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

static void
keymap_load(SubjectRun *sr, MemoryContext cxt)
{
	HASHCTL		ctl;
	Datum		arg = Int32GetDatum(sr->subject_id);
	Oid			argtype = INT4OID;
	uint64		i;

	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(KeyEntry);
	ctl.hash = keymap_hash;
	ctl.match = keymap_match;
	ctl.hcxt = cxt;
	sr->keymap = hash_create("segment key map", 1024, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	sr->next_member_id = 0;

	if (SPI_execute_with_args("SELECT key, member_id FROM segment.keymap WHERE subject_id = $1",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.keymap");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *key = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 2, &isnull));
		KeyEntry   *e;
		bool		found;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		key = pstrdup(key);
		MemoryContextSwitchTo(old);
		e = hash_search(sr->keymap, &key, HASH_ENTER, &found);
		e->key = key;
		e->member_id = id;
		if (id >= sr->next_member_id)
			sr->next_member_id = id + 1;
	}
	SPI_freetuptable(SPI_tuptable);
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
					 errmsg("subject \"%s\" has more than %lld keys", sr->name,
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
	Oid			argtypes[3] = {INT4OID, TEXTARRAYOID, INT8ARRAYOID};

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
			Datum		args[3];

			args[0] = Int32GetDatum(sr->subject_id);
			args[1] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
			args[2] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			if (SPI_execute_with_args("INSERT INTO segment.keymap (subject_id, key, member_id) "
									  "SELECT $1, k, i FROM unnest($2, $3) AS u(k, i)",
									  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not extend segment.keymap");
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

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, SEGMENT_LOCK_CLASS, (uint32) sr->subject_id, 2);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		ereport(NOTICE,
				(errmsg("waiting for another refresh of subject \"%s\" to finish", sr->name)));
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize the refresh of subject \"%s\": another refresh of it committed meanwhile",
							sr->name),
					 errhint("Retry the transaction.")));
	}
}

/* The caller must be able to read every row of the table. */
static void
check_table_access(SubjectRun *sr)
{
	if (pg_class_aclcheck(sr->relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to refresh subject \"%s\"", sr->name),
				 errdetail("Refreshing reads every row of table %s.", get_rel_name(sr->relid)),
				 errhint("Grant SELECT on the table to the refreshing role.")));
	if (check_enable_rls(sr->relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot refresh subject \"%s\": row-level security applies to you on table %s",
						sr->name, get_rel_name(sr->relid)),
				 errdetail("Member sets are computed over every row, so a refresh must see them all."),
				 errhint("Refresh as the table owner or a role with BYPASSRLS.")));
}

static void
load_subject(SubjectRun *sr, const char *name)
{
	SubjectInfo *si = subject_lookup(name, false);

	sr->subject_id = si->subject_id;
	sr->relid = si->relid;
	sr->keytype = si->key_type;
	sr->name = pstrdup(name);
	sr->keyattno = get_attnum(sr->relid, NameStr(si->key_column));
	if (si->has_snapshot_column)
	{
		sr->snapshot_column = pstrdup(NameStr(si->snapshot_column));
		sr->snapshot_retention = si->snapshot_retention;
		if (get_attnum(sr->relid, sr->snapshot_column) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("snapshot column \"%s\" of subject \"%s\" no longer exists",
							sr->snapshot_column, name)));
	}
	if (sr->keyattno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" of subject \"%s\" no longer exists",
						NameStr(si->key_column), name)));
}

/* The subject's active rule tags, by name (refresh and live maintenance). */
void
load_tags(SubjectRun *sr)
{
	Datum		arg = Int32GetDatum(sr->subject_id);
	Oid			argtype = INT4OID;
	uint64		i;

	if (SPI_execute_with_args(psprintf("SELECT tag_id, name, rule, %s FROM segment.tag t "
									   "WHERE subject_id = $1 AND active AND rule IS NOT NULL ORDER BY name",
									   rule_owner_sql("tag", "t")),
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.tag");
	sr->ntags = SPI_processed;
	sr->tags = palloc0(sizeof(TagRun) * Max(sr->ntags, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		sr->tags[i].tag_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		sr->tags[i].name = SPI_getvalue(tup, desc, 2);
		sr->tags[i].rule = SPI_getvalue(tup, desc, 3);
		sr->tags[i].owner = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
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
		sr->heap_leaves == NIL ? parallel_workers_for(rel, sr->keytype) :
		leaf ? parallel_workers_for(leaf, sr->keytype) : 0;
	int			i;

	memset(&sc, 0, sizeof(sc));
	sc.rel = rel;
	sc.scan_rel = leaf;
	sc.keyattno = sr->keyattno;
	sc.keytype = sr->keytype;
	sc.subject = sr->name;
	sc.row_filter = sr->row_filter;
	sc.rows_note = sr->rows_note;
	sc.map_key = map_text_key;
	sc.map_key_arg = sr;
	sc.ntags = sr->ntags;
	sc.tags = palloc0(sizeof(ScanTag) * Max(sr->ntags, 1));
	sc.current_unit = current_unit;
	for (i = 0; i < sr->ntags; i++)
	{
		sc.tags[i].name = sr->tags[i].name;
		sc.tags[i].rule = sr->tags[i].rule;
		sc.tags[i].owner = sr->tags[i].owner;
		sc.tags[i].skip = sr->tags[i].error != NULL;
	}
	/* schemes and scorecards: their definitions live in sr, results too */
	sc.nschemes = sr->nschemes;
	sc.schemes = sr->schemes;
	for (i = 0; i < sr->nschemes; i++)
		sr->schemes[i].skip = sr->scheme_errors[i] != NULL;
	sc.nscorecards = sr->nscorecards;
	sc.scorecards = sr->scorecards;
	for (i = 0; i < sr->nscorecards; i++)
		sr->scorecards[i].skip = sr->scorecard_errors[i] != NULL;

	if (nworkers > 0)
		refresh_parallel_scan(&sc, nworkers, as_of);
	else if (mode == SUBJECT_READ_SQL)
	{
		scan_core_compile(&sc, as_of);
		/* a Citus table: on its shards if it can be, else its rows here */
		if (!refresh_shards_scan(&sc, as_of))
			subject_sql_scan(&sc);
		scan_core_finish(&sc);
	}
	else
	{
		TableScanDesc scan;

		scan_core_compile(&sc, as_of);
		if (sr->heap_leaves == NIL)
		{
			scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
			scan_core_run(&sc, scan, true);
			table_endscan(scan);
		}
		else
		{
			ListCell   *lc;

			foreach(lc, sr->heap_leaves)
			{
				Relation	part = table_open(lfirst_oid(lc), AccessShareLock);

				scan = table_beginscan(part, GetActiveSnapshot(), 0, NULL);
				scan_core_run(&sc, scan, true);
				table_endscan(scan);
				table_close(part, AccessShareLock);
			}
		}
		scan_core_finish(&sc);
	}
	if (leaf)
		table_close(leaf, AccessShareLock);

	for (i = 0; i < sr->ntags; i++)
		sr->tags[i].set = sc.tags[i].set;
	sr->universe = sc.universe;
	sr->rows = sc.rows;
	sr->null_keys = sc.null_keys;
	sr->native_nodes = sc.native_nodes;
	sr->fallback_nodes = sc.fallback_nodes;
	sr->workers = nworkers;
	MemoryContextSwitchTo(old);
}

/* Scan until every tag either succeeded or is marked failed. */
static void
scan_isolating_failures(SubjectRun *sr, Relation rel, DateADT as_of,
						MemoryContext runcxt)
{
	MemoryContext scancxt = AllocSetContextCreate(runcxt, "segment refresh scan",
												  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		MemoryContext oldcontext = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;
		volatile int current_unit = -1;
		bool		done = false;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcontext);
		PG_TRY();
		{
			scan_subject(sr, rel, as_of, scancxt, &current_unit);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			CurrentResourceOwner = oldowner;
			done = true;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcontext);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			CurrentResourceOwner = oldowner;

			/* not a rule's fault (cancel, timeout, a bad key ...): the refresh fails */
			if (current_unit < 0 || edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
				edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
				edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY)
				ReThrowError(edata);

			{
				int			u = current_unit;
				char	   *msg = MemoryContextStrdup(runcxt, edata->message);
				const char *what;

				if (u < sr->ntags)
				{
					sr->tags[u].error = msg;
					what = psprintf("tag \"%s\"", sr->tags[u].name);
				}
				else if (u < sr->ntags + sr->nschemes)
				{
					sr->scheme_errors[u - sr->ntags] = msg;
					what = psprintf("scheme \"%s\"", sr->schemes[u - sr->ntags].name);
				}
				else
				{
					u -= sr->ntags + sr->nschemes;
					sr->scorecard_errors[u] = msg;
					what = psprintf("scorecard \"%s\"", sr->scorecards[u].name);
				}
				ereport(WARNING,
						(errcode(edata->sqlerrcode),
						 errmsg("%s failed and keeps its previous members: %s", what, edata->message),
						 errhint("Fix its rules; everything else is refreshed.")));
			}
			FreeErrorData(edata);
			MemoryContextReset(scancxt);	/* frees the partial sets */
		}
		PG_END_TRY();
		if (done)
			break;
	}
}

/* ---------- writing ---------- */


static int64
start_run(SubjectRun *sr, DateADT as_of, TimestampTz started)
{
	Datum		args[5];
	Oid			argtypes[5] = {INT4OID, DATEOID, TIMESTAMPTZOID, DATEOID, OIDARRAYOID};
	char		nulls[5] = {' ', ' ', ' ', 'n', ' '};
	bool		isnull;
	List	   *relids = sr->read_relids ? sr->read_relids : list_make1_oid(sr->relid);
	Datum	   *oids = palloc(sizeof(Datum) * list_length(relids));
	ListCell   *lc;

	foreach(lc, relids)
		oids[foreach_current_index(lc)] = ObjectIdGetDatum(lfirst_oid(lc));
	args[0] = Int32GetDatum(sr->subject_id);
	args[1] = DateADTGetDatum(as_of);
	args[2] = TimestampTzGetDatum(started);
	if (sr->snapshot_column)
	{
		args[3] = DateADTGetDatum(sr->snapshot_date);
		nulls[3] = ' ';
	}
	args[4] = PointerGetDatum(construct_array(oids, list_length(relids), OIDOID,
											  sizeof(Oid), true, TYPALIGN_INT));
	if (!segment_catalog_has_column("run", "read_relations"))
	{
		/* a 0.1.0 catalog (before ALTER EXTENSION UPDATE) */
		if (SPI_execute_with_args("INSERT INTO segment.run (subject_id, as_of, started_at) "
								  "VALUES ($1, $2, $3) RETURNING run_id",
								  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "could not write segment.run");
	}
	else if (SPI_execute_with_args("INSERT INTO segment.run (subject_id, as_of, started_at, snapshot_date, read_relations) "
							  "VALUES ($1, $2, $3, $4, $5::pg_catalog.regclass[]::pg_catalog.text[]) RETURNING run_id",
							  5, argtypes, args, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not write segment.run");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
finish_run(SubjectRun *sr, int64 run_id)
{
	Datum		args[4];
	Oid			argtypes[4] = {INT8OID, INT8OID, INT4OID, TEXTOID};
	char		nulls[4] = {' ', ' ', ' ', 'n'};
	StringInfoData errors;
	int			i;
	int			evaluated = 0;

	initStringInfo(&errors);
	for (i = 0; i < sr->ntags; i++)
	{
		if (sr->tags[i].error)
			appendStringInfo(&errors, "%stag \"%s\": %s", errors.len ? "; " : "",
							 sr->tags[i].name, sr->tags[i].error);
		else
			evaluated++;
	}
	for (i = 0; i < sr->nschemes; i++)
		if (sr->scheme_errors[i])
			appendStringInfo(&errors, "%sscheme \"%s\": %s", errors.len ? "; " : "",
							 sr->schemes[i].name, sr->scheme_errors[i]);
	for (i = 0; i < sr->nscorecards; i++)
		if (sr->scorecard_errors[i])
			appendStringInfo(&errors, "%sscorecard \"%s\": %s", errors.len ? "; " : "",
							 sr->scorecards[i].name, sr->scorecard_errors[i]);
	args[0] = Int64GetDatum(run_id);
	args[1] = Int64GetDatum(sr->rows);
	args[2] = Int32GetDatum(evaluated);
	if (errors.len)
	{
		args[3] = CStringGetTextDatum(errors.data);
		nulls[3] = ' ';
	}
	if (SPI_execute_with_args("UPDATE segment.run SET finished_at = clock_timestamp(), "
							  "rows_scanned = $2, tags = $3, error = $4 WHERE run_id = $1",
							  4, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not write segment.run");
}

/*
 * The set in the first column of query (parameters: an int4 id and an
 * optional second argument), or NULL. Owned by CurrentMemoryContext.
 */
RoaringOwned *
refresh_load_previous(const char *query, int32 id, Datum arg2, Oid arg2type)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, arg2type};
	bool		isnull;
	Datum		d;
	RoaringOwned *prev = NULL;

	args[0] = Int32GetDatum(id);
	args[1] = arg2;
	if (SPI_execute_with_args(query, OidIsValid(arg2type) ? 2 : 1, argtypes, args, NULL,
							  true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read previous member set");
	if (SPI_processed == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		return NULL;
	}
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		MemberSet  *ms = DatumGetMemberSetP(d);

		prev = memberset_to_roaring(ms);
		/* the detoasted copy: one per tag would add up to every stored set */
		if ((Pointer) ms != DatumGetPointer(d))
			pfree(ms);
	}
	SPI_freetuptable(SPI_tuptable);
	return prev;
}

/* One result row of segment.refresh. */
void
refresh_put_row(ReturnSetInfo *rsinfo, const char *subject, const char *name,
				int64 members, int64 entered, int64 exited, bool failed)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, failed, failed};

	/* name columns want NAMEDATALEN buffers */
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(subject));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(name));
	values[2] = Int64GetDatum(members);
	values[3] = Int64GetDatum(entered);
	values[4] = Int64GetDatum(exited);
	nulls[2] = failed;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

static void
save_tag(SubjectRun *sr, TagRun *t, DateADT as_of, int64 run_id, Oid mstype)
{
	/*
	 * Entered and exited: against the previous state; for a snapshot read
	 * again (a nightly retry) or back-filled, against the retained snapshot
	 * before it, so that they always mean "since the previous snapshot".
	 */
	RoaringOwned *prev = (sr->backfill || sr->rerun) ?
		refresh_snapshot_previous(t->tag_id, sr->snapshot_date) : NULL;
	Datum		args[7];
	Oid			argtypes[7] = {INT4OID, mstype, INT8OID, INT8OID, INT8OID, DATEOID, INT8OID};

	if (prev == NULL && !sr->backfill)
		prev = refresh_load_previous("SELECT members FROM segment.tag_state WHERE tag_id = $1",
									 t->tag_id, (Datum) 0, InvalidOid);

	t->members = roaring_bitmap_get_cardinality(t->set->bitmap);
	if (prev)
	{
		t->entered = roaring_bitmap_andnot_cardinality(t->set->bitmap, prev->bitmap);
		t->exited = roaring_bitmap_andnot_cardinality(prev->bitmap, t->set->bitmap);
		roaring_owned_free(prev);
	}
	else
	{
		t->entered = t->members;
		t->exited = 0;
	}
	args[0] = Int32GetDatum(t->tag_id);
	args[1] = PointerGetDatum(memberset_from_roaring(t->set->bitmap));
	args[2] = Int64GetDatum(t->members);
	args[3] = Int64GetDatum(t->entered);
	args[4] = Int64GetDatum(t->exited);
	args[5] = DateADTGetDatum(as_of);
	args[6] = Int64GetDatum(run_id);
	roaring_owned_free(t->set);
	if (sr->snapshot_column)
		refresh_snapshot_save_tag(sr, t, args[1], run_id, mstype);
	if (!sr->backfill &&
		SPI_execute_with_args("INSERT INTO segment.tag_state AS s "
							  "(tag_id, members, member_count, entered, exited, as_of, refreshed_at, run_id) "
							  "VALUES ($1, $2, $3, $4, $5, $6, now(), $7) "
							  "ON CONFLICT (tag_id) DO UPDATE SET members = excluded.members, "
							  "member_count = excluded.member_count, entered = excluded.entered, "
							  "exited = excluded.exited, as_of = excluded.as_of, "
							  "refreshed_at = excluded.refreshed_at, run_id = excluded.run_id",
							  7, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write segment.tag_state");
	pfree(DatumGetPointer(args[1]));
}

static void
save_universe(SubjectRun *sr, DateADT as_of, int64 run_id, Oid mstype)
{
	Datum		args[5];
	Oid			argtypes[5] = {INT4OID, mstype, INT8OID, DATEOID, INT8OID};

	args[0] = Int32GetDatum(sr->subject_id);
	args[1] = PointerGetDatum(memberset_from_roaring(sr->universe->bitmap));
	args[2] = Int64GetDatum(roaring_bitmap_get_cardinality(sr->universe->bitmap));
	args[3] = DateADTGetDatum(as_of);
	args[4] = Int64GetDatum(run_id);
	roaring_owned_free(sr->universe);
	if (sr->snapshot_column)
		refresh_snapshot_save_universe(sr, args[1], DatumGetInt64(args[2]), run_id, mstype);
	if (!sr->backfill &&
		SPI_execute_with_args("INSERT INTO segment.subject_state "
							  "(subject_id, universe, member_count, as_of, refreshed_at, run_id) "
							  "VALUES ($1, $2, $3, $4, now(), $5) "
							  "ON CONFLICT (subject_id) DO UPDATE SET universe = excluded.universe, "
							  "member_count = excluded.member_count, as_of = excluded.as_of, "
							  "refreshed_at = excluded.refreshed_at, run_id = excluded.run_id",
							  5, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write segment.subject_state");
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
	Oid			mstype = memberset_type_oid();
	int			i;
	bool		date_moved;

	load_subject(sr, name);
	check_table_access(sr);
	lock_subject(sr);
	if (sr->snapshot_column)
	{
		/* the newest snapshot on or before as_of; rules see its date */
		rel = table_open(sr->relid, AccessShareLock);
		as_of = refresh_snapshot_choose(sr, rel, as_of);
		table_close(rel, AccessShareLock);
	}
	(void) set_config_option("segment.as_of",
							 DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(as_of))),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	/* a new date: no live writer between our snapshot and our commit */
	date_moved = live_refresh_begin(sr->subject_id, as_of);
	/* everything from here on sees what committed before we held the lock */
	PushActiveSnapshot(GetTransactionSnapshot());
	load_tags(sr);
	load_schemes(sr);
	load_scorecards(sr);
	sr->keycxt = runcxt;
	if (sr->keytype != INT4OID && sr->keytype != INT8OID)
		keymap_load(sr, runcxt);
	loaded = GetCurrentTimestamp();

	rel = table_open(sr->relid, AccessShareLock);
	scan_isolating_failures(sr, rel, as_of, runcxt);
	if (sr->snapshot_column)
		refresh_snapshot_check_unique(sr, rel);
	table_close(rel, AccessShareLock);
	scanned = GetCurrentTimestamp();

	if (sr->null_keys > 0)
		ereport(WARNING,
				(errmsg("subject \"%s\": %lld rows with a NULL key were skipped",
						sr->name, (long long) sr->null_keys)));
	keymap_save(sr);
	run_id = start_run(sr, as_of, started);
	pipeline = refresh_pipeline_begin(sr->subject_id, sr->name, run_id, as_of, !sr->backfill);
	for (i = 0; i < sr->ntags; i++)
	{
		TagRun	   *t = &sr->tags[i];

		if (!t->error)
			save_tag(sr, t, as_of, run_id, mstype);
		refresh_put_row(rsinfo, sr->name, t->name, t->members, t->entered, t->exited,
						t->error != NULL);
	}
	if (!sr->backfill)
	{
		save_schemes(sr, as_of, run_id, mstype, rsinfo);
		save_scorecards(sr, as_of, run_id, mstype);
	}
	save_universe(sr, as_of, run_id, mstype);
	if (!sr->backfill)
	{
		/* live changes this refresh has seen are in the new state now */
		live_fold(sr->subject_id, sr->name, as_of, date_moved);
		save_history(sr, as_of, run_id, mstype);
	}
	refresh_pipeline_end(pipeline);
	if (sr->snapshot_column)
		refresh_snapshot_prune(sr);
	finish_run(sr, run_id);
	PopActiveSnapshot();
	ereport(DEBUG1,
			(errmsg("refresh of subject \"%s\": %lld rows, %d tags (%d native nodes, %d executor leaves), %d parallel workers; load %.1f ms, scan %.1f ms, save %.1f ms",
					sr->name, (long long) sr->rows, sr->ntags, sr->native_nodes, sr->fallback_nodes, sr->workers,
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
				 errmsg("as_of must be a finite date")));

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
	{
		uint64		i;

		if (SPI_execute("SELECT name FROM segment.subject ORDER BY name", true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read segment.subject");
		for (i = 0; i < SPI_processed; i++)
			subjects = lappend(subjects,
							   SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	}
	else
		subjects = list_make1(NameStr(*PG_GETARG_NAME(0)));

	foreach(lc, subjects)
		refresh_subject(lfirst(lc), as_of, rsinfo);

	SPI_finish();
	AtEOXact_GUC(true, nestlevel);
	return (Datum) 0;
}
