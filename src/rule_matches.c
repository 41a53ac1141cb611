/*
 * rule_matches.c
 *     segment_internal._rule_matches: the evaluation of a stored goal as its
 *     owner over rows the caller collected.
 *
 * Opportunity goals (evaluate_outcomes) are evaluated by SQL code over a
 * few rows; event conditions by the event rule trigger itself. The function takes
 * the rule's identity, never rule text or a role: whoever calls it can only
 * make a stored rule run as the role that wrote it, which is what a refresh
 * does anyway. The evaluation itself (rule_matcher_*, rule.h) is shared
 * with the event rule trigger (event_trigger.c), which feeds it the rows of
 * its transition table. Kept apart from rule_owner.c, which rule_parse.c uses, so
 * that parsing and owner checks do not depend on each other both ways.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "extension_cache.h"
#include "rule.h"
#include "rule_owner.h"

/*
 * The planned rules of a backend (an event table's condition is analysed
 * and planned once, not in every event statement): keyed by relation,
 * rule text, owner and as_of date, stamped with the extension generation.
 * A relcache invalidation of the relation (ALTER TABLE, DROP) or any change
 * of a function, operator or type drops them (a replaced SQL function
 * inlined into the plan included); an entry in use by a matcher is freed
 * when that matcher ends, or at the abort of its transaction. What is
 * checked at every use is not cached: the owner's privileges on the
 * columns read (rule_owner_check) and the EXECUTE privileges ExecInitExpr
 * checks, as the owner.
 */
#define MATCHER_CACHE_SIZE 8
typedef struct MatcherEntry
{
	Oid			relid;			/* InvalidOid: free slot */
	Oid			owner;
	DateADT		as_of;
	uint64		generation;
	char	   *rule;
	bool		valid;
	int			pins;			/* matchers using planned */
	MemoryContext cxt;			/* holds rule, planned, columns */
	Expr	   *planned;
	Bitmapset  *columns;
} MatcherEntry;

static MatcherEntry matcher_cache[MATCHER_CACHE_SIZE];
static int	matcher_victim = 0;
static bool matcher_callbacks = false;

/* A stored rule compiled for evaluation as its owner (rule.h). */
struct RuleMatcher
{
	int			nest;			/* GUC nest level: the pinned search_path */
	RuleOwnerSave save;			/* the user to restore */
	ExprState  *state;
	ExprContext *econtext;
	MatcherEntry *entry;		/* pinned cache entry, or NULL */
};

static void
matcher_entry_release(MatcherEntry *e)
{
	if (e->relid == InvalidOid || e->valid || e->pins > 0)
		return;
	MemoryContextDelete(e->cxt);
	memset(e, 0, sizeof(MatcherEntry));
}

static void
matcher_relcache_callback(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < MATCHER_CACHE_SIZE; i++)
		if (matcher_cache[i].relid != InvalidOid &&
			(!OidIsValid(relid) || matcher_cache[i].relid == relid))
		{
			matcher_cache[i].valid = false;
			matcher_entry_release(&matcher_cache[i]);
		}
}

static void
matcher_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	matcher_relcache_callback(arg, InvalidOid);
}

/* No matcher outlives its transaction: an error skipped rule_matcher_end. */
static void
matcher_xact_callback(XactEvent event, void *arg)
{
	int			i;

	if (event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	for (i = 0; i < MATCHER_CACHE_SIZE; i++)
	{
		matcher_cache[i].pins = 0;
		matcher_entry_release(&matcher_cache[i]);
	}
}

/* The cached entry for the rule, or NULL. */
static MatcherEntry *
matcher_lookup(Oid relid, const char *rule, Oid owner, DateADT as_of)
{
	uint64		generation = extension_cache_generation();
	int			i;

	for (i = 0; i < MATCHER_CACHE_SIZE; i++)
	{
		MatcherEntry *e = &matcher_cache[i];

		if (e->relid == relid && e->valid && e->owner == owner && e->as_of == as_of &&
			e->generation == generation && strcmp(e->rule, rule) == 0)
			return e;
	}
	return NULL;
}

/* Keep a copy of a planned rule; NULL when every slot is in use. */
static MatcherEntry *
matcher_store(Oid relid, const char *rule, Oid owner, DateADT as_of, Expr *planned,
			  Bitmapset *columns)
{
	MatcherEntry *e = NULL;
	MemoryContext old;
	int			i;

	if (!matcher_callbacks)
	{
		CacheRegisterRelcacheCallback(matcher_relcache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, matcher_syscache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(OPEROID, matcher_syscache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, matcher_syscache_callback, (Datum) 0);
		RegisterXactCallback(matcher_xact_callback, NULL);
		matcher_callbacks = true;
	}
	for (i = 0; i < MATCHER_CACHE_SIZE && e == NULL; i++)
	{
		MatcherEntry *c = &matcher_cache[(matcher_victim + i) % MATCHER_CACHE_SIZE];

		if (c->pins == 0)
		{
			e = c;
			matcher_victim = (matcher_victim + i + 1) % MATCHER_CACHE_SIZE;
		}
	}
	if (e == NULL)
		return NULL;
	if (e->relid != InvalidOid)
	{
		e->valid = false;
		matcher_entry_release(e);
	}
	e->cxt = AllocSetContextCreate(CacheMemoryContext, "segment rule matcher",
								   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(e->cxt);
	e->rule = pstrdup(rule);
	e->planned = copyObject(planned);
	e->columns = bms_copy(columns);
	MemoryContextSwitchTo(old);
	e->relid = relid;
	e->owner = owner;
	e->as_of = as_of;
	e->generation = extension_cache_generation();
	e->valid = true;
	e->pins = 0;
	return e;
}

RuleMatcher *
rule_matcher_begin(Relation rel, const char *rule, const char *what, Oid owner)
{
	RuleMatcher *m = palloc0(sizeof(RuleMatcher));
	DateADT		as_of = segment_current_as_of();
	MatcherEntry *e;
	Expr	   *planned;

	/* the GUC level also undoes whatever the rule's functions set */
	m->nest = NewGUCNestLevel();
	rule_pin_search_path();
	e = matcher_lookup(RelationGetRelid(rel), rule, owner, as_of);
	if (e != NULL)
	{
		rule_owner_check(owner, rel, e->columns, what, false);
		m->econtext = CreateStandaloneExprContext();
		/* an error aborts the (sub)transaction, which restores the user id */
		rule_owner_enter(owner, &m->save);
		planned = e->planned;
	}
	else
	{
		Node	   *analysed = rule_analyze(rel, rule, what, NULL);
		Bitmapset  *columns = rule_columns_read(analysed);

		rule_owner_check(owner, rel, columns, what, false);
		m->econtext = CreateStandaloneExprContext();
		rule_owner_enter(owner, &m->save);
		planned = rule_plan(analysed, as_of);
		e = matcher_store(RelationGetRelid(rel), rule, owner, as_of, planned, columns);
	}
	/* pinned before ExecInitExpr, whose lookups may process invalidations */
	if (e != NULL)
	{
		e->pins++;
		m->entry = e;
	}
	m->state = ExecInitExpr(planned, NULL);
	return m;
}

bool
rule_matcher_test(RuleMatcher *m, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		v;

	m->econtext->ecxt_scantuple = slot;
	v = ExecEvalExprSwitchContext(m->state, m->econtext, &isnull);
	ResetExprContext(m->econtext);
	return !isnull && DatumGetBool(v);
}

void
rule_matcher_end(RuleMatcher *m)
{
	rule_owner_leave(&m->save);
	FreeExprContext(m->econtext, true);
	AtEOXact_GUC(false, m->nest);	/* also undoes a plain SET in a rule's function */
	if (m->entry != NULL)
	{
		m->entry->pins--;
		matcher_entry_release(m->entry);
	}
	pfree(m);
}

/*
 * segment_internal._rule_matches(kind text, rule_id int, relation regclass, rows anyarray)
 *   RETURNS boolean[]
 * For each row (of relation's row type), whether the stored goal (kind
 * 'goal', the one kind) of the rule IS TRUE, evaluated as the rule's
 * owner with SECURITY_RESTRICTED_OPERATION under the pinned search_path.
 */
PG_FUNCTION_INFO_V1(segment_rule_matches);
Datum
segment_rule_matches(PG_FUNCTION_ARGS)
{
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		rule_id = PG_GETARG_INT32(1);
	Oid			relid = PG_GETARG_OID(2);
	ArrayType  *rows = PG_GETARG_ARRAYTYPE_P(3);
	CatalogStoredRule sr;
	Relation	rel;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Datum	   *out;
	RuleMatcher *m;
	TupleTableSlot *slot;
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
	int			i;

	if (!catalog_stored_rule(kind, rule_id, relid, &sr))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no %s of rule %d over relation %u", kind, rule_id, relid)));
	rel = table_open(sr.relid, AccessShareLock);
	if (ARR_ELEMTYPE(rows) != rel->rd_rel->reltype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("rows must be an array of %s, not %s",
						format_type_be(rel->rd_rel->reltype), format_type_be(ARR_ELEMTYPE(rows)))));
	get_typlenbyvalalign(ARR_ELEMTYPE(rows), &elmlen, &elmbyval, &elmalign);
	deconstruct_array(rows, ARR_ELEMTYPE(rows), elmlen, elmbyval, elmalign, &elems, &nulls, &n);
	out = palloc(sizeof(Datum) * Max(n, 1));

	m = rule_matcher_begin(rel, sr.rule, sr.what, sr.owner);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	for (i = 0; i < n; i++)
	{
		HeapTupleData tup;
		HeapTupleHeader th;

		CHECK_FOR_INTERRUPTS();
		if (nulls[i])
		{
			out[i] = BoolGetDatum(false);
			continue;
		}
		th = DatumGetHeapTupleHeader(elems[i]);
		tup.t_len = HeapTupleHeaderGetDatumLength(th);
		ItemPointerSetInvalid(&tup.t_self);
		tup.t_tableOid = sr.relid;
		tup.t_data = th;
		ExecStoreHeapTuple(&tup, slot, false);
		out[i] = BoolGetDatum(rule_matcher_test(m, slot));
		ExecClearTuple(slot);
	}
	rule_matcher_end(m);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, n, BOOLOID, 1, true, TYPALIGN_CHAR));
}
