/*
 * live_trigger.c
 *     Live maintenance of tags, scheme buckets and scorecard scores: the
 *     trigger entry (segment_internal._live_trigger), which evaluates one
 *     statement's transition tables and writes its overlay rows, firing
 *     the subject's entry rules around that. Owns the statement's flow;
 *     the definitions come from live_defs.c (per-backend cache), the diff,
 *     the rows and the fold from live_overlay.c. Prefix: live_ (family).
 *     Files of live maintenance: live_trigger.c, live_defs.c, live_overlay.c.
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
 * (segment_internal._live_* in part 71); a refresh folds it (live_fold).
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

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "catalog.h"
#include "live_defs.h"
#include "live_overlay.h"
#include "memberset.h"
#include "refresh_scan.h"
#include "rule.h"
#include "rule_owner.h"
#include "segment.h"
#include "subject.h"

/*
 * After evaluating the units an UPDATE touched over its rows, the members
 * to write are evaluated in full: read from the table by key when they are
 * fewer than one in this many of the statement's rows (an index lookup per
 * member against reading the whole transition table again).
 */
#define LIVE_BY_KEY_FACTOR 16

/* For error context lines: which subject and unit was being evaluated. */
typedef struct LiveErrorInfo
{
	const char *subject;
	const SubjectDefs *sd;
	volatile int *current_unit;
} LiveErrorInfo;

static void
live_error_callback(void *arg)
{
	LiveErrorInfo *info = (LiveErrorInfo *) arg;
	int			u = *info->current_unit;
	const SubjectDefs *sd = info->sd;

	if (u >= 0 && u < sd->ntags)
		errcontext("live maintenance of subject \"%s\", tag \"%s\"", info->subject, sd->tags[u].name);
	else if (u >= 0 && u < sd->ntags + sd->nschemes)
		errcontext("live maintenance of subject \"%s\", scheme \"%s\"", info->subject,
				   sd->schemes[u - sd->ntags].name);
	else if (u >= 0)
		errcontext("live maintenance of subject \"%s\", scorecard \"%s\"", info->subject,
				   sd->scorecards[u - sd->ntags - sd->nschemes].name);
	else
		errcontext("live maintenance of subject \"%s\"", info->subject);
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
		refresh_scan_add_slot(sc, slot, ids);
	}
	refresh_scan_flush(sc, ids);
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
 * Read the rows of the members in `only` from the table, by key through an
 * index (live_defs_key_index), as snap sees them, into the evaluator: every
 * row with that key, as a refresh would. false when the table has no such
 * index (nothing read).
 */
static bool
feed_members(LiveDefs *defs, Relation rel, RoaringOwned *only, Snapshot snap)
{
	ScanCore   *sc = defs->sc;
	RegProcedure eqproc = InvalidOid;
	Oid			indexoid = live_defs_key_index(defs, rel, &eqproc);
	Relation	irel;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData key;
	uint32		ids[RULE_BATCH_ROWS];
	uint32	   *members;
	uint64		n,
				i;

	if (!OidIsValid(indexoid))
		return false;
	n = roaring_bitmap_get_cardinality(only->bitmap);
	members = palloc(sizeof(uint32) * Max(n, 1));
	roaring_bitmap_to_uint32_array(only->bitmap, members);
	irel = index_open(indexoid, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, irel, snap, 1, 0);
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		ScanKeyInit(&key, 1, BTEqualStrategyNumber, eqproc,
					sc->keytype == INT4OID ? Int32GetDatum((int32) members[i]) :
					Int64GetDatum((int64) members[i]));
		index_rescan(scan, &key, 1, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
			refresh_scan_add_slot(sc, slot, ids);
	}
	refresh_scan_flush(sc, ids);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(irel, NoLock);
	pfree(members);
	return true;
}

/* Whether a unit evaluated (affected, or all when NULL) may read more than its columns. */
static bool
evaluates_opaque(LiveDefs *defs, const bool *affected)
{
	int			u;

	for (u = 0; u < SCAN_UNITS(defs->sc); u++)
		if ((affected == NULL || affected[u]) && defs->unit_cols[u] == NULL)
			return true;
	return false;
}

/*
 * The rules' settings: segment.as_of is the date of the last refresh and
 * search_path the pinned one, in a GUC nest level of the statement's,
 * opened on first use (*nestlevel -1: none yet). Only rules that call
 * functions other than built-in immutable ones can read them (a built-in
 * immutable function resolves no name); the nest level also undoes any
 * setting such a function changes.
 */
static void
rule_gucs(LiveDefs *defs, int *nestlevel, bool *as_of_set)
{
	if (*as_of_set)
		return;
	if (*nestlevel < 0)
		*nestlevel = NewGUCNestLevel();
	if (strcmp(namespace_search_path, RULE_PINNED_SEARCH_PATH) != 0)
		rule_pin_search_path();
	(void) set_config_option("segment.as_of",
							 DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(defs->as_of))),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	*as_of_set = true;
}

/*
 * The end of rule_gucs' nest level: every setting changed in it is rolled
 * back, ours and any a rule's function changed (a plain SET or set_config
 * inside a function would otherwise outlive the statement and, for
 * search_path, redirect the writer's next statements: the rule's owner is
 * not the writer), as PostgreSQL does after index expressions.
 */
static void
end_gucs(int nestlevel)
{
	if (nestlevel >= 0)
		AtEOXact_GUC(false, nestlevel);
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
	Oid			argtypes[2] = {INT4OID, memberset_type_oid()};
	Datum		args[2];
	RoaringOwned *changed = roaring_owned_copy(universe->bitmap);
	bool		isnull;
	int			nest;

	roaring_bitmap_or_inplace(changed->bitmap, gone->bitmap);
	entry[0] = PointerGetDatum(memberset_from_roaring(changed->bitmap));
	roaring_owned_free(changed);
	args[0] = Int32GetDatum(subject_id);
	args[1] = entry[0];
	nest = rule_pin_search_path_begin();
	segment_saved_plan(&plan, "SELECT array_agg(audience), array_agg(members) "
					   "  FROM segment_internal._live_entry_before($1, $2)", 2, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not evaluate the audiences of entry rules");
	rule_pin_search_path_end(nest);
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
	Oid			mstype = memberset_type_oid();
	Oid			argtypes[4] = {INT4OID, mstype, TEXTARRAYOID, get_array_type(mstype)};
	Datum		args[4];
	int			nest;

	if (entry[1] == (Datum) 0)
		return;
	args[0] = Int32GetDatum(subject_id);
	args[1] = entry[0];
	args[2] = entry[1];
	args[3] = entry[2];
	nest = rule_pin_search_path_begin();
	segment_saved_plan(&plan, "SELECT segment_internal._live_entry_after($1, $2, $3, $4)", 4, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not fire the entry rules");
	rule_pin_search_path_end(nest);
}


/*
 * Refuse to run from a trigger segment did not create (docs/security.md):
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


/* The end of a statement's work: SPI, its snapshot, its memory. */
static void
end_statement(Snapshot snap, MemoryContext old, MemoryContext cxt)
{
	SPI_finish();
	UnregisterSnapshot(snap);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/* Evaluate one statement's transition tables and write the overlay. */
static void
live_statement(TriggerData *td, int32 subject_id)
{
	Relation	rel = td->tg_relation;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "segment live",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	const SubjectDefs *sd;
	LiveDefs   *defs;
	ScanCore   *sc;
	volatile int current_unit = -1;
	ErrorContextCallback errcb;
	LiveErrorInfo info;
	int			nestlevel = -1;
	bool		as_of_set = false;
	Datum		entry[3] = {0, 0, 0};	/* changed, audiences, before sets */
	RoaringOwned *gone;
	RoaringOwned *write;
	LiveRows   *lr;
	Snapshot	snap;
	bool	   *affected;
	int			naffected = 0;
	int64		nrows;

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

	/*
	 * search_path is the writer's: what resolves names under it pins it
	 * first (building the definitions, rules that call functions other than
	 * built-in immutable ones, every SPI query; segment_live_trigger).
	 */
	defs = live_defs_get(rel, subject_id, snap);
	live_check_trigger(td, subject_id, defs);
	if (!defs->refreshed || (td->tg_newtable == NULL && td->tg_oldtable == NULL))
	{
		/* not refreshed: nothing to overlay */
		end_gucs(nestlevel);
		end_statement(snap, old, cxt);
		return;
	}
	sd = defs->defs;
	sc = defs->sc;
	sc->current_unit = &current_unit;

	/*
	 * An UPDATE whose columns no rule reads changes nothing: done. One that
	 * touches a few units evaluates those units first, over every row and
	 * reading only their columns, then (only when some member's tags,
	 * buckets or scores change for readers) every unit over the members that
	 * need an overlay row.
	 */
	live_defs_reset_skips(defs);
	affected = live_defs_affected(defs, td, &naffected);
	if (affected != NULL && naffected == 0)
	{
		end_gucs(nestlevel);
		end_statement(snap, old, cxt);
		return;
	}
	if (affected != NULL && naffected == SCAN_UNITS(sc))
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

	/* rules see the date of the last refresh, also in executor fallbacks */
	if (defs->entry_rules || evaluates_opaque(defs, affected))
		rule_gucs(defs, &nestlevel, &as_of_set);

	info.subject = sd->name;
	info.sd = sd;
	info.current_unit = &current_unit;
	errcb.callback = live_error_callback;
	errcb.arg = &info;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	PushActiveSnapshot(snap);
	refresh_scan_restart(sc, rel, live_defs_columns(defs, affected));
	if (td->tg_newtable != NULL)
		feed_table(sc, td->tg_newtable, RelationGetDescr(rel), NULL);
	refresh_scan_collect(sc);
	PopActiveSnapshot();
	nrows = sc->rows;
	gone = td->tg_oldtable != NULL ?
		table_keys(td->tg_oldtable, RelationGetDescr(rel), sd->keyattno, sd->keytype) :
		roaring_owned_create();

	if (defs->entry_rules)
		entry_before(subject_id, sc->universe, gone, entry);
	write = live_overlay_members_to_write(sd, defs->generation, sc, gone, snap, affected,
										  defs->as_of);
	if (roaring_bitmap_is_empty(write->bitmap) && !defs->entry_rules)
	{
		/* nothing readers see changes: no overlay row to write */
		end_gucs(nestlevel);
		error_context_stack = errcb.previous;
		end_statement(snap, old, cxt);
		return;
	}
	if (affected != NULL)
	{
		/*
		 * The whole state of the members to write. A few of many rows are
		 * read from the table by key (an UPDATE's rows, visible to snap since
		 * the statement's end); when that is not possible, or a member's row
		 * is not there any more (a later trigger of the statement deleted
		 * it), from the transition table again.
		 */
		bool		done = false;

		live_defs_reset_skips(defs);
		if (evaluates_opaque(defs, NULL))
			rule_gucs(defs, &nestlevel, &as_of_set);
		PushActiveSnapshot(snap);
		if (roaring_bitmap_get_cardinality(write->bitmap) * LIVE_BY_KEY_FACTOR < (uint64) nrows)
		{
			refresh_scan_restart(sc, rel, NULL);
			done = feed_members(defs, rel, write, snap);
			refresh_scan_collect(sc);
			done = done && roaring_bitmap_is_subset(write->bitmap, sc->universe->bitmap);
		}
		if (!done)
		{
			refresh_scan_restart(sc, rel, NULL);
			feed_table(sc, td->tg_newtable, RelationGetDescr(rel), write);
			refresh_scan_collect(sc);
		}
		PopActiveSnapshot();
	}
	lr = live_overlay_build_rows(sd, sc, gone, write, defs->as_of);
	end_gucs(nestlevel);
	error_context_stack = errcb.previous;

	live_overlay_write(lr);
	if (defs->entry_rules)
		entry_after(subject_id, entry);
	end_statement(snap, old, cxt);
}

/*
 * segment_internal._live_trigger(subject_id text): the statement-level AFTER
 * INSERT / UPDATE / DELETE trigger that enable_live installs.
 *
 * It runs as the owner of the function (the extension's owner), so that
 * writers need no rights on segment's tables, as a SECURITY DEFINER
 * function would: the user id is switched here, with
 * SECURITY_LOCAL_USERID_CHANGE (no SET ROLE inside), and restored on
 * return; on error the (sub)transaction abort restores it, as PostgreSQL's
 * own SECURITY DEFINER call relies on. The function is not SECURITY
 * DEFINER and has no SET clause because that call saves and restores every
 * setting per statement, and the search_path it would pin matters only
 * where names are resolved: each of those places pins it itself (building
 * the definitions, the rules that call functions other than built-in
 * immutable ones, every SPI query: rule_pin_search_path_begin). A one-row
 * UPDATE that changes no customer's tags resolves no name at all. Rules run
 * as their owners, restricted (refresh_scan.c), as before.
 */
PG_FUNCTION_INFO_V1(segment_live_trigger);
Datum
segment_live_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	int32		subject_id;
	Oid			save_userid;
	int			save_sec_context;

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
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(live_defs_function_owner(fcinfo->flinfo->fn_oid),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	live_statement(td, subject_id);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return PointerGetDatum(NULL);
}

