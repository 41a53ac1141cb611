/*
 * live_defs.c
 *     Live maintenance's per-backend definitions cache (live_defs.h): per
 *     subject, its rules read through the catalog module, analysed, planned
 *     for the date of its last refresh and compiled once, with the columns
 *     each unit reads; the invalidations that make an entry stale, and the
 *     trigger (segment_internal._live_defs_changed) that sends them when a
 *     definition changes. Prefix: live_defs_ (the live_ family).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "extension_cache.h"
#include "live_defs.h"
#include "refresh_scan.h"
#include "rule.h"
#include "rule_owner.h"

static LiveDefs *live_cache = NULL;
static uint64 live_generation = 1;
static bool live_callbacks = false;
static Oid	live_catalog_relid = InvalidOid;	/* segment.live_subject */
static uint64 live_extension_generation = 0;	/* of live_catalog_relid (extension_cache.h) */

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
	live_callbacks = true;
}

/*
 * A schema changed (a rule may name a function through it) or the extension
 * was re-created: every entry is stale, and so is live_catalog_relid.
 */
static void
live_check_extension(void)
{
	uint64		generation = extension_cache_generation();

	if (generation == live_extension_generation)
		return;
	live_generation++;
	live_catalog_relid = InvalidOid;
	live_extension_generation = generation;
}

/*
 * A built-in date and time comparison, conversion or interval arithmetic
 * between date, timestamp and timestamptz (e.g. timestamptz >= date, which a
 * rule like "last_txn_at >= segment.as_of() - 7" calls): STABLE only
 * because it reads the TimeZone setting; it resolves no name, reads no
 * table and no other setting. In PostgreSQL 15 the built-in STABLE
 * functions of one or two such arguments returning such a type or a
 * boolean or integer are exactly the 35 functions of that kind.
 */
static bool
live_timezone_only(Oid funcid)
{
	static const Oid types[] = {DATEOID, TIMESTAMPOID, TIMESTAMPTZOID, INTERVALOID};
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Form_pg_proc proc;
	bool		ok;
	int			i,
				j;

	if (!HeapTupleIsValid(tup))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	ok = proc->provolatile == PROVOLATILE_STABLE && proc->prokind == PROKIND_FUNCTION &&
		!proc->proretset && proc->pronargs >= 1 && proc->pronargs <= 2 &&
		(proc->prorettype == BOOLOID || proc->prorettype == INT4OID ||
		 proc->prorettype == DATEOID || proc->prorettype == TIMESTAMPOID ||
		 proc->prorettype == TIMESTAMPTZOID);
	for (i = 0; ok && i < proc->pronargs; i++)
	{
		bool		found = false;

		for (j = 0; j < lengthof(types); j++)
			found |= proc->proargtypes.values[i] == types[j];
		ok = found;
	}
	ReleaseSysCache(tup);
	return ok;
}

/*
 * Whether a function may read more than its arguments (the table by key,
 * segment.as_of, names under search_path): anything but a built-in
 * immutable function or a built-in one that reads only TimeZone.
 */
static bool
live_not_builtin_immutable(Oid funcid, void *context)
{
	if (funcid >= FirstNormalObjectId)
		return true;
	if (func_volatile(funcid) == PROVOLATILE_IMMUTABLE)
		return false;
	return !live_timezone_only(funcid);
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

/*
 * Load, plan and compile every rule of the subject (SPI connected, the
 * rules' GUCs set) into sr and sc of d, in d's context.
 */
static void
compile_defs(LiveDefs *d, Relation rel, const char *name, const char *keycol, Snapshot snap)
{
	SubjectDefs *sd = palloc0(sizeof(SubjectDefs));
	ScanCore   *sc = palloc0(sizeof(ScanCore));
	int			unit = -1;
	int			i,
				j;

	sd->subject_id = d->subject_id;
	sd->name = pstrdup(name);
	sd->relid = d->relid;
	sd->keyattno = get_attnum(sd->relid, keycol);
	if (sd->keyattno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" of subject \"%s\" no longer exists", keycol, name)));
	sd->keytype = get_atttype(sd->relid, sd->keyattno);
	if (sd->keytype != INT4OID && sd->keytype != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("live maintenance supports integer-keyed subjects only; subject \"%s\" is keyed by %s",
						name, format_type_be(sd->keytype)),
				 errhint("Run segment.disable_live('%s') and refresh instead.", name)));

	/* the definitions as of the snapshot the entry is valid for, in d's context */
	PushActiveSnapshot(snap);
	catalog_load_rules(sd, d->cxt);
	PopActiveSnapshot();
	MemoryContextSwitchTo(d->cxt);

	sc->rel = rel;
	sc->keyattno = sd->keyattno;
	sc->keytype = sd->keytype;
	sc->subject = sd->name;
	sc->current_unit = &unit;
	sc->ntags = sd->ntags;
	sc->tags = refresh_scan_tags_from_defs(sd);
	sc->nschemes = sd->nschemes;
	sc->schemes = refresh_scan_schemes_from_defs(sd);
	sc->nscorecards = sd->nscorecards;
	sc->scorecards = refresh_scan_scorecards_from_defs(sd);
	for (i = 0; i < sd->ntags; i++)
		sc->tags[i].planned = plan_rule(rel, sd->tags[i].rule,
										psprintf("tag \"%s\"", sd->tags[i].name), d->as_of,
										sd->tags[i].owner);
	for (i = 0; i < sd->nschemes; i++)
	{
		ScanScheme *s = &sc->schemes[i];

		for (j = 0; j < s->nbuckets; j++)
			s->buckets[j].planned = plan_rule(rel, s->buckets[j].rule,
											  psprintf("bucket \"%s\" of scheme \"%s\"",
													   s->buckets[j].name, s->name),
											  d->as_of, s->owner);
	}
	for (i = 0; i < sd->nscorecards; i++)
	{
		ScanScorecard *c = &sc->scorecards[i];

		for (j = 0; j < c->nitems; j++)
			c->items[j].planned = plan_rule(rel, c->items[j].rule,
											psprintf("item %d of scorecard \"%s\"", j + 1, c->name),
											d->as_of, c->owner);
	}

	/* the columns of each unit, before compiling (which may scribble) */
	d->unit_cols = palloc0(sizeof(Bitmapset *) * Max(SCAN_UNITS(sc), 1));
	for (i = 0; i < sd->ntags; i++)
	{
		Bitmapset  *cols = NULL;

		if (live_rule_columns(sc->tags[i].planned, &cols))
			d->unit_cols[i] = bms_add_member(cols, sd->keyattno);
	}
	for (i = 0; i < sd->nschemes; i++)
	{
		Bitmapset  *cols = NULL;
		bool		exact = true;

		for (j = 0; j < sc->schemes[i].nbuckets && exact; j++)
			exact = live_rule_columns(sc->schemes[i].buckets[j].planned, &cols);
		if (exact)
			d->unit_cols[sd->ntags + i] = bms_add_member(cols, sd->keyattno);
	}
	for (i = 0; i < sd->nscorecards; i++)
	{
		Bitmapset  *cols = NULL;
		bool		exact = true;

		for (j = 0; j < sc->scorecards[i].nitems && exact; j++)
			exact = live_rule_columns(sc->scorecards[i].items[j].planned, &cols);
		if (exact)
			d->unit_cols[sd->ntags + sd->nschemes + i] = bms_add_member(cols, sd->keyattno);
	}
	refresh_scan_compile(sc, d->as_of);
	/* the batch ends here; each statement begins its own (refresh_scan_restart) */
	rule_scan_end(sc->rs);
	d->defs = sd;
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
	uint64		generation = live_generation;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "segment live definitions",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	LiveDefs   *d = palloc0(sizeof(LiveDefs));
	LiveSubjectRow row;
	int			nest = rule_pin_search_path_begin();	/* catalog SQL, rule analysis */

	d->cxt = cxt;
	d->subject_id = subject_id;
	d->generation = generation;
	if (!OidIsValid(live_catalog_relid))
		live_catalog_relid = get_relname_relid("live_subject", get_namespace_oid("segment", false));
	catalog_live_subject(subject_id, snap, &row);
	if (row.found)
	{
		d->relid = row.relid;
		d->ntriggers = row.ntriggers;
		d->triggers = row.triggers;
		d->as_of = row.as_of;
		d->refreshed = row.refreshed;
		d->entry_rules = row.entry_rules;
		if (d->refreshed && d->relid == RelationGetRelid(rel))
			compile_defs(d, rel, row.name, row.key_column, snap);
	}
	rule_pin_search_path_end(nest);
	MemoryContextSwitchTo(old);
	return d;
}

LiveDefs *
live_defs_get(Relation rel, int32 subject_id, Snapshot snap)
{
	LiveDefs  **link;
	LiveDefs   *d;

	live_register_callbacks();
	live_check_extension();
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


/* A copy of a set in cxt. */
static Bitmapset *
bms_copy_in(MemoryContext cxt, const Bitmapset *set)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Bitmapset  *copy = bms_copy(set);

	MemoryContextSwitchTo(old);
	return copy;
}

Oid
live_defs_key_index(LiveDefs *d, Relation rel, RegProcedure *eqproc)
{
	List	   *indexes;
	ListCell   *lc;
	AttrNumber	keyattno = d->defs->keyattno;
	Oid			keytype = d->defs->keytype;

	if (d->key_index_known)
	{
		*eqproc = d->key_eqproc;
		return d->key_index;
	}
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	irel = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ix = irel->rd_index;

		if (irel->rd_rel->relam == BTREE_AM_OID && ix->indisvalid &&
			ix->indkey.values[0] == keyattno && irel->rd_opcintype[0] == keytype &&
			heap_attisnull(irel->rd_indextuple, Anum_pg_index_indpred, NULL))
		{
			Oid			op = get_opfamily_member(irel->rd_opfamily[0], keytype, keytype,
												 BTEqualStrategyNumber);

			if (OidIsValid(op))
			{
				d->key_eqproc = get_opcode(op);
				d->key_index = RelationGetRelid(irel);
			}
		}
		index_close(irel, NoLock);
		if (OidIsValid(d->key_index))
			break;
	}
	list_free(indexes);
	d->key_index_known = true;
	*eqproc = d->key_eqproc;
	return d->key_index;
}

Oid
live_defs_function_owner(Oid fn_oid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}


void
live_defs_reset_skips(LiveDefs *d)
{
	ScanCore   *sc = d->sc;
	int			i;

	for (i = 0; i < sc->ntags; i++)
		sc->tags[i].skip = false;
	for (i = 0; i < sc->nschemes; i++)
		sc->schemes[i].skip = false;
	for (i = 0; i < sc->nscorecards; i++)
		sc->scorecards[i].skip = d->defs->scorecards[i].error != NULL;
}

/*
 * For an UPDATE: which units it may have changed (true), by the columns it
 * set (with the generated columns that depend on them) and the columns each
 * unit reads. NULL when any may have: not an UPDATE, the set columns are not
 * known, or a BEFORE ROW trigger on the table may have changed others.
 */
bool *
live_defs_affected(LiveDefs *d, TriggerData *td, int *naffected)
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
	if (d->last_affected != NULL && bms_equal(updated, d->last_updated))
	{
		*naffected = d->last_naffected;
		return d->last_affected;
	}
	affected = MemoryContextAlloc(d->cxt, sizeof(bool) * Max(SCAN_UNITS(d->sc), 1));
	*naffected = 0;
	for (u = 0; u < SCAN_UNITS(d->sc); u++)
	{
		affected[u] = d->unit_cols[u] == NULL || bms_overlap(d->unit_cols[u], updated);
		if (affected[u])
			(*naffected)++;
	}
	/* kept for the next UPDATE of the same columns (the old ones stay in d->cxt: rare) */
	d->last_updated = bms_copy_in(d->cxt, updated);
	d->last_affected = affected;
	d->last_naffected = *naffected;
	d->last_columns_known = false;
	return affected;
}

Bitmapset *
live_defs_columns(LiveDefs *d, const bool *affected)
{
	Bitmapset  *cols = NULL;
	int			u;

	if (affected == NULL)
		return NULL;
	if (affected == d->last_affected && d->last_columns_known)
		return d->last_columns;
	for (u = 0; u < SCAN_UNITS(d->sc); u++)
		if (affected[u])
		{
			if (d->unit_cols[u] == NULL)
			{
				cols = NULL;
				break;
			}
			cols = bms_union(cols, d->unit_cols[u]);
		}
	if (u == SCAN_UNITS(d->sc))
		cols = bms_add_member(cols, d->defs->keyattno);
	if (affected == d->last_affected)
	{
		d->last_columns = bms_copy_in(d->cxt, cols);
		d->last_columns_known = true;
		return d->last_columns;
	}
	return cols;
}


/*
 * segment_internal._live_defs_changed(): statement-level AFTER trigger on the tables
 * the cached definitions of live maintenance and the cached attachments of
 * event rules (catalog_event.c) come from (part 89). Sends a relcache
 * invalidation of segment.live_subject, which every backend's
 * live_relcache_callback takes as "rebuild" (and catalog_event.c's as
 * "forget"): at commit for the others, at the next command in this one (and
 * again if it rolls back).
 */
PG_FUNCTION_INFO_V1(segment_live_defs_changed);
Datum
segment_live_defs_changed(PG_FUNCTION_ARGS)
{
	static const char *const tables[] = {"subject", "tag", "scheme", "scheme_bucket", "scorecard",
		"scorecard_item", "entry_rule", "live_subject",
	"opportunity_rule", "event_rule", "contact_policy"};
	TriggerData *td = (TriggerData *) fcinfo->context;
	Oid			nsp;
	Oid			relid;
	bool		ours = false;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("segment_internal._live_defs_changed() may only be called as a trigger")));
	/* only from the triggers of part 89 (docs/security.md: trigger functions) */
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

