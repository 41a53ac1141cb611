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
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "rule.h"
#include "rule_owner.h"

/* A stored rule compiled for evaluation as its owner (rule.h). */
struct RuleMatcher
{
	int			nest;			/* GUC nest level: the pinned search_path */
	RuleOwnerSave save;			/* the user to restore */
	ExprState  *state;
	ExprContext *econtext;
};

RuleMatcher *
rule_matcher_begin(Relation rel, const char *rule, const char *what, Oid owner)
{
	RuleMatcher *m = palloc0(sizeof(RuleMatcher));
	Node	   *analysed;

	/* the GUC level also undoes whatever the rule's functions set */
	m->nest = NewGUCNestLevel();
	rule_pin_search_path();
	analysed = rule_analyze(rel, rule, what, NULL);
	rule_owner_check(owner, rel, rule_columns_read(analysed), what, false);
	m->econtext = CreateStandaloneExprContext();
	/* an error aborts the (sub)transaction, which restores the user id */
	rule_owner_enter(owner, &m->save);
	m->state = ExecInitExpr(rule_plan(analysed, segment_current_as_of()), NULL);
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
	AtEOXact_GUC(true, m->nest);
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
