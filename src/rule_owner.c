/*
 * rule_owner.c
 *     Who a rule runs as and under which search_path; the evaluation of a
 *     stored goal or event condition as its owner.
 *
 * Refresh, live maintenance and explain evaluate rules through the one-pass
 * scan (refresh_scan.c), which switches to each unit's owner itself.
 * Opportunity goals (evaluate_outcomes) and event conditions (the event
 * trigger) are evaluated by SQL code over a few rows: segment_internal._rule_matches
 * evaluates such a stored rule as its owner over rows the caller collected.
 * It takes the rule's identity, never rule text or a role: whoever calls it
 * can only make a stored rule run as the role that wrote it, which is what
 * a refresh does anyway.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "access/sysattr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "rule.h"
#include "rule_owner.h"

void
rule_pin_search_path(void)
{
	(void) set_config_option("search_path", RULE_PINNED_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

const char *
rule_owner_sql(const char *table, const char *alias)
{
	Oid			nsp = get_namespace_oid("segment", false);
	Oid			relid = get_relname_relid(table, nsp);

	if (OidIsValid(relid) && get_attnum(relid, "owner") != InvalidAttrNumber)
		return psprintf("%s.owner::oid", alias);
	return "0::oid";
}

Bitmapset *
rule_columns_read(Node *expr)
{
	Bitmapset  *raw = NULL;
	Bitmapset  *cols = NULL;
	int			x = -1;

	pull_varattnos(expr, 1, &raw);
	while ((x = bms_next_member(raw, x)) >= 0)
	{
		AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;

		if (attno > 0)
			cols = bms_add_member(cols, attno);
	}
	return cols;
}

void
rule_owner_check(Oid owner, Relation rel, Bitmapset *attnos, const char *what, bool definer)
{
	Oid			relid = RelationGetRelid(rel);
	int			attno = -1;

	if (!OidIsValid(owner))
		return;					/* a 0.1.0 catalog: see rule_owner_sql */
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the owner of %s (role with OID %u) no longer exists", what, owner),
				 errdetail("A rule is evaluated with the rights of the role that wrote it."),
				 errhint("Save the rule again (alter or re-create it) as a role that may read its columns.")));
	/* table-level SELECT covers every column */
	if (pg_class_aclcheck(relid, owner, ACL_SELECT) == ACLCHECK_OK)
		return;
	while ((attno = bms_next_member(attnos, attno)) >= 0)
	{
		const char *col;

		if (pg_attribute_aclcheck(relid, attno, owner, ACL_SELECT) == ACLCHECK_OK)
			continue;
		col = NameStr(TupleDescAttr(RelationGetDescr(rel), attno - 1)->attname);
		if (definer)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for column \"%s\" of table %s, read by the rule of %s",
							col, RelationGetRelationName(rel), what),
					 errdetail("A rule may read only columns its author may read: its members reveal their values."),
					 errhint("Grant SELECT on the column (or the table) to role \"%s\".",
							 GetUserNameFromId(owner, false))));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\", owner of %s, may no longer read column \"%s\" of table %s",
						GetUserNameFromId(owner, false), what, col, RelationGetRelationName(rel)),
				 errdetail("A rule is evaluated with the rights of the role that wrote it."),
				 errhint("Grant SELECT on the column back, or save the rule again as a role that may read it.")));
	}
}

/* The stored rule, its owner and the relation it is written against. */
typedef struct StoredRule
{
	char	   *rule;
	char	   *what;
	Oid			owner;
	Oid			relid;
} StoredRule;

static bool
load_stored_rule(const char *kind, int32 rule_id, Oid relid, StoredRule *sr)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum		args[2] = {Int32GetDatum(rule_id), ObjectIdGetDatum(relid)};
	Oid			argtypes[2] = {INT4OID, OIDOID};
	const char *sql;
	bool		found = false;

	if (strcmp(kind, "goal") == 0)
		sql = "SELECT r.goal, 'goal of opportunity rule \"' || r.name || '\"', r.owner::oid, s.relation::oid"
			"  FROM segment.opportunity_rule r JOIN segment.subject s USING (subject_id)"
			" WHERE r.rule_id = $1 AND s.relation = $2 AND r.goal IS NOT NULL";
	else if (strcmp(kind, "event") == 0)
		sql = "SELECT e.condition, 'event rule \"' || r.name || '\" on ' || e.event_table::text,"
			"       e.owner::oid, e.event_table::oid"
			"  FROM segment.event_rule e JOIN segment.opportunity_rule r USING (rule_id)"
			" WHERE e.rule_id = $1 AND e.event_table = $2";
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown kind of stored rule \"%s\"", kind),
				 errhint("Kinds are goal and event.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the stored rule");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		sr->rule = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
		sr->what = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2));
		sr->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		sr->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
		found = true;
	}
	SPI_finish();
	return found;
}

/*
 * segment_internal._rule_matches(kind text, rule_id int, relation regclass, rows anyarray)
 *   RETURNS boolean[]
 * For each row (of relation's row type), whether the stored goal ('goal') or
 * event condition ('event') of the rule IS TRUE, evaluated as the rule's
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
	StoredRule	sr;
	Relation	rel;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Datum	   *out;
	int			nest;
	RuleOwnerSave save;
	Node	   *analysed;
	ExprState  *state;
	ExprContext *econtext;
	TupleTableSlot *slot;
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
	int			i;

	if (!load_stored_rule(kind, rule_id, relid, &sr))
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

	/* the GUC level also undoes whatever the rule's functions set */
	nest = NewGUCNestLevel();
	rule_pin_search_path();
	analysed = rule_analyze(rel, sr.rule, sr.what, NULL);
	rule_owner_check(sr.owner, rel, rule_columns_read(analysed), sr.what, false);

	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	econtext = CreateStandaloneExprContext();
	econtext->ecxt_scantuple = slot;
	/* an error aborts the (sub)transaction, which restores the user id */
	rule_owner_enter(sr.owner, &save);
	state = ExecInitExpr(rule_plan(analysed, segment_current_as_of()), NULL);
	for (i = 0; i < n; i++)
	{
		HeapTupleData tup;
		HeapTupleHeader th;
		bool		isnull;
		Datum		v;

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
		v = ExecEvalExprSwitchContext(state, econtext, &isnull);
		out[i] = BoolGetDatum(!isnull && DatumGetBool(v));
		ExecClearTuple(slot);
		ResetExprContext(econtext);
	}
	rule_owner_leave(&save);
	FreeExprContext(econtext, true);
	ExecDropSingleTupleTableSlot(slot);
	AtEOXact_GUC(true, nest);
	table_close(rel, AccessShareLock);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, n, BOOLOID, 1, true, TYPALIGN_CHAR));
}
