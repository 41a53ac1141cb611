/*
 * explain.c
 *     segment.explain(subject, key, what): why one customer is in or out of a
 *     tag or an audience, as jsonb.
 *
 * For a rule tag, the rule is evaluated by PostgreSQL on the customer's
 * current row as of the date of the last refresh, exactly as a refresh
 * evaluates it (the planned rule: an error raises here where it fails the
 * tag there); every AND / OR / NOT branch is reported with its value, and
 * every leaf with the column values it read. Branches PostgreSQL skips
 * (short circuits, constant folding) are shown but not evaluated. "member"
 * says whether the stored set (last refresh) holds the customer, so a row
 * changed since then shows up as member <> value.
 * For an audience, each tag it names is explained and "value" is the
 * audience's answer for this customer. Segments (also a bare segment name)
 * are expanded into the tags they use and listed under "segments". For a
 * scheme, the buckets are tried in order until one takes the row; for a
 * scorecard, every item's points.
 *
 * Exports only SQL-callable functions (prefix segment_).
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"

#include "audience.h"
#include "catalog.h"
#include "governance.h"
#include "internal_schema.h"
#include "rule.h"
#include "rule_owner.h"
#include "subject.h"
#include "snapshot.h"
#include "subject_source.h"

typedef struct ExplainCtx
{
	Relation	rel;
	TupleTableSlot *slot;
	ExprContext *econtext;
	List	   *dpcontext;
	List	   *masked;			/* names of columns shown masked (governance.c) */
} ExplainCtx;

static void
append_json_string(StringInfo buf, const char *s)
{
	escape_json(buf, s);
}

static void
append_value(StringInfo buf, RuleValue v)
{
	appendStringInfoString(buf, v == RULE_TRUE ? "true" : v == RULE_FALSE ? "false" : "null");
}

/* A column value as JSON: numbers and booleans natively, the rest as text. */
static void
append_datum(StringInfo buf, Datum d, bool isnull, Oid typid)
{
	Oid			outfn;
	bool		varlena;
	char	   *s;

	if (isnull)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	getTypeOutputInfo(typid, &outfn, &varlena);
	s = OidOutputFunctionCall(outfn, d);
	switch (typid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			appendStringInfoString(buf, s);
			break;
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			/* NaN and Infinity are not JSON numbers */
			if (strspn(s, "0123456789.-eE+") == strlen(s))
				appendStringInfoString(buf, s);
			else
				append_json_string(buf, s);
			break;
		case BOOLOID:
			appendStringInfoString(buf, DatumGetBool(d) ? "true" : "false");
			break;
		default:
			append_json_string(buf, s);
	}
}

static RuleValue
eval_expr(ExplainCtx *ctx, Expr *expr)
{
	ExprState  *state = ExecInitExpr(expr, NULL);
	bool		isnull;
	Datum		d;

	ctx->econtext->ecxt_scantuple = ctx->slot;
	d = ExecEvalExprSwitchContext(state, ctx->econtext, &isnull);
	if (isnull)
		return RULE_NULL;
	return DatumGetBool(d) ? RULE_TRUE : RULE_FALSE;
}

static void
append_columns(StringInfo buf, ExplainCtx *ctx, Node *node)
{
	Bitmapset  *attnos = NULL;
	int			a = -1;
	bool		first = true;
	TupleDesc	desc = RelationGetDescr(ctx->rel);

	pull_varattnos(node, 1, &attnos);
	appendStringInfoString(buf, "{");
	while ((a = bms_next_member(attnos, a)) >= 0)
	{
		AttrNumber	attno = a + FirstLowInvalidHeapAttributeNumber;
		Form_pg_attribute att;
		bool		isnull;
		Datum		d;

		if (attno <= 0)
			continue;
		att = TupleDescAttr(desc, attno - 1);
		d = slot_getattr(ctx->slot, attno, &isnull);
		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		append_json_string(buf, NameStr(att->attname));
		appendStringInfoString(buf, ": ");
		if (!isnull && governance_column_listed(ctx->masked, NameStr(att->attname)))
		{
			Oid			outfn;
			bool		varlena;

			/* a personal column, for a role without segment_exporter */
			getTypeOutputInfo(att->atttypid, &outfn, &varlena);
			append_json_string(buf, governance_mask_value(OidOutputFunctionCall(outfn, d)));
		}
		else
			append_datum(buf, d, isnull, att->atttypid);
	}
	appendStringInfoString(buf, "}");
}

/*
 * One node of the "why" tree, and below it every AND / OR / NOT argument.
 * A node is evaluated only where PostgreSQL evaluates it when it runs the
 * whole rule (evaluate): an AND stops at its first FALSE argument and an OR
 * at its first TRUE one, and a node that planning folds to a constant
 * (x AND false) runs none of its arguments. The others are shown with
 * "evaluated": false and a null value: evaluating them could raise an error
 * the rule does not raise (i = 0 OR 10 / i > 1). Each node is evaluated as
 * planned, constants folded as a refresh and a SQL query fold them, and
 * shown as written. Returns the node's value (RULE_NULL when not evaluated).
 */
static RuleValue
explain_node(StringInfo buf, ExplainCtx *ctx, Node *node, bool evaluate)
{
	char	   *text;
	RuleValue	v = RULE_NULL;
	bool		folded = false;

	check_stack_depth();
	text = deparse_expression(node, ctx->dpcontext, false, false);
	appendStringInfoString(buf, "{\"expr\": ");
	append_json_string(buf, text);
	appendStringInfoString(buf, ", \"value\": ");
	if (evaluate)
	{
		Expr	   *planned = expression_planner((Expr *) copyObject(node));

		folded = IsA(planned, Const);
		v = eval_expr(ctx, planned);
		append_value(buf, v);
	}
	else
		appendStringInfoString(buf, "null, \"evaluated\": false");

	if (IsA(node, BoolExpr))
	{
		BoolExpr   *b = (BoolExpr *) node;
		ListCell   *lc;
		bool		go_on = evaluate && !folded;

		appendStringInfo(buf, ", \"op\": \"%s\", \"args\": [",
						 b->boolop == AND_EXPR ? "and" : b->boolop == OR_EXPR ? "or" : "not");
		foreach(lc, b->args)
		{
			RuleValue	a;

			if (foreach_current_index(lc) > 0)
				appendStringInfoString(buf, ", ");
			a = explain_node(buf, ctx, lfirst(lc), go_on);
			/* the short circuit of ExecInterpExpr: later arguments are not run */
			if ((b->boolop == AND_EXPR && a == RULE_FALSE) ||
				(b->boolop == OR_EXPR && a == RULE_TRUE))
				go_on = false;
		}
		appendStringInfoString(buf, "]");
	}
	else
	{
		appendStringInfoString(buf, ", \"columns\": ");
		append_columns(buf, ctx, node);
	}
	appendStringInfoString(buf, "}");
	return v;
}

typedef struct FoldAsOf
{
	Oid			funcoid;
	Const	   *date;
} FoldAsOf;

static Node *
fold_as_of(Node *node, FoldAsOf *f)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == f->funcoid)
		return (Node *) copyObject(f->date);
	return expression_tree_mutator(node, fold_as_of, (void *) f);
}

/*
 * Append "value" and "why" (the rule's tree with every branch's value and
 * the columns it read) for the row in ctx->slot; return the value.
 */
static RuleValue
explain_rule(StringInfo buf, ExplainCtx *ctx, const char *rule, const char *what, DateADT as_of,
			 Oid owner)
{
	Node	   *analysed = rule_analyze(ctx->rel, rule, what, NULL);
	FoldAsOf	f;
	RuleValue	v;
	RuleOwnerSave save;

	/* as its owner, like a refresh; an error aborts and restores the user */
	rule_owner_check(owner, ctx->rel, rule_columns_read(analysed), what, false);
	rule_owner_enter(owner, &save);

	f.funcoid = segment_as_of_funcoid();
	f.date = makeConst(DATEOID, -1, InvalidOid, sizeof(DateADT),
					   DateADTGetDatum(as_of), false, true);
	/* the value exactly as a refresh computes it, errors included */
	v = eval_expr(ctx, rule_plan(analysed, as_of));
	analysed = fold_as_of(analysed, &f);
	fix_opfuncids(analysed);
	appendStringInfoString(buf, ", \"value\": ");
	append_value(buf, v);
	appendStringInfoString(buf, ", \"why\": ");
	(void) explain_node(buf, ctx, analysed, true);
	rule_owner_leave(&save);
	return v;
}

/* The date of the last refresh of a subject, or the current evaluation date. */
static DateADT
last_as_of(int32 subject_id)
{
	DateADT		as_of;

	if (catalog_state_as_of(subject_id, GetActiveSnapshot(), &as_of))
		return as_of;
	return segment_current_as_of();
}

/*
 * A scheme: which bucket the row lands in now (first true rule), why the
 * earlier buckets did not take it, and the bucket the last refresh stored.
 */
static void
explain_scheme(StringInfo buf, ExplainCtx *ctx, int32 subject_id, int32 scheme_id,
			   int64 member_id, bool row_found)
{
	DateADT		as_of = last_as_of(subject_id);
	CatalogRuleItem *items;
	int			n = catalog_scheme_explain(scheme_id, member_id, &items);
	int			i;
	bool		placed = false;

	appendStringInfoString(buf, ", \"stored_bucket\": ");
	{
		const char *stored = NULL;

		for (i = 0; i < n; i++)
			if (items[i].stored)
				stored = items[i].name;
		if (stored)
			append_json_string(buf, stored);
		else
			appendStringInfoString(buf, "null");
	}
	appendStringInfoString(buf, ", \"as_of\": ");
	append_json_string(buf, DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(as_of))));
	if (!row_found)
	{
		appendStringInfoString(buf, ", \"bucket\": null, \"why\": \"no row with this key\"}");
		return;
	}
	appendStringInfoString(buf, ", \"buckets\": [");
	for (i = 0; i < n && !placed; i++)
	{
		char	   *bucket = items[i].name;

		if (i > 0)
			appendStringInfoString(buf, ", ");
		appendStringInfoString(buf, "{\"bucket\": ");
		append_json_string(buf, bucket);
		appendStringInfoString(buf, ", \"rule\": ");
		append_json_string(buf, items[i].rule);
		placed = explain_rule(buf, ctx, items[i].rule, psprintf("bucket \"%s\"", bucket), as_of,
							  items[i].owner) == RULE_TRUE;
		appendStringInfoString(buf, "}");
		if (placed)
		{
			appendStringInfoString(buf, "], \"bucket\": ");
			append_json_string(buf, bucket);
		}
	}
	if (!placed)
		appendStringInfoString(buf, "], \"bucket\": null");
	appendStringInfoString(buf, "}");
}

/* A scorecard: the points of every item, the score now and as stored. */
static void
explain_scorecard(StringInfo buf, ExplainCtx *ctx, int32 subject_id, int32 scorecard_id,
				  int64 member_id, bool row_found)
{
	DateADT		as_of = last_as_of(subject_id);
	char	   *base;
	char	   *stored;
	CatalogRuleItem *items;
	int			n = catalog_scorecard_explain(scorecard_id, member_id, &base, &stored, &items);
	int			i;
	StringInfoData sum;

	appendStringInfo(buf, ", \"base\": %s, \"stored_score\": %s, \"as_of\": ",
					 base, stored ? stored : "null");
	append_json_string(buf, DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(as_of))));
	if (!row_found)
	{
		appendStringInfoString(buf, ", \"score\": null, \"why\": \"no row with this key\"}");
		return;
	}
	/* the score now: base plus the points of the items that are true */
	initStringInfo(&sum);
	appendStringInfo(&sum, "SELECT %s::numeric", base);
	appendStringInfoString(buf, ", \"items\": [");
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		appendStringInfo(buf, "{\"points\": %s, \"rule\": ", items[i].points);
		append_json_string(buf, items[i].rule);
		if (explain_rule(buf, ctx, items[i].rule, psprintf("item %d", i + 1), as_of,
						 items[i].owner) == RULE_TRUE)
			appendStringInfo(&sum, " + %s::numeric", items[i].points);
		appendStringInfoString(buf, "}");
	}
	appendStringInfoString(buf, "]");
	if (SPI_execute(sum.data, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not add the points");
	appendStringInfo(buf, ", \"score\": %s}",
					 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
}

/* Explain one tag for the customer whose row is in ctx->slot (or absent). */
static void
explain_tag(StringInfo buf, ExplainCtx *ctx, int32 subject_id, const char *tag,
			int64 member_id, bool row_found, DateADT as_of)
{
	CatalogTagExplain t;

	if (!catalog_tag_explain(subject_id, tag, member_id, &t))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tag \"%s\" does not exist for this subject", tag)));

	appendStringInfoString(buf, "{\"tag\": ");
	append_json_string(buf, tag);
	appendStringInfo(buf, ", \"active\": %s", t.active ? "true" : "false");
	if (t.rule == NULL)
	{
		appendStringInfo(buf, ", \"manual\": true, \"value\": %s, \"set\": ",
						 t.manual_member ? "true" : "false");
		appendStringInfoString(buf, t.manual_row ? t.manual_row : "null");
		appendStringInfoString(buf, "}");
		return;
	}
	if (t.refreshed)
	{
		as_of = t.has_as_of ? t.as_of : DatumGetDateADT((Datum) 0);
		appendStringInfo(buf, ", \"member\": %s", t.has_as_of && t.member ? "true" : "false");
	}
	else
		appendStringInfoString(buf, ", \"member\": null");
	appendStringInfoString(buf, ", \"as_of\": ");
	append_json_string(buf, DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(as_of))));
	appendStringInfoString(buf, ", \"rule\": ");
	append_json_string(buf, t.rule);
	if (row_found)
		(void) explain_rule(buf, ctx, t.rule, psprintf("tag \"%s\"", tag), as_of, t.owner);
	else
		appendStringInfoString(buf, ", \"value\": null, \"why\": \"no row with this key\"");
	appendStringInfoString(buf, "}");
}

/*
 * The tags an audience text names, segments expanded (audience_names.c), in
 * order of appearance; each segment met is added to segments as a JSON
 * object.
 */
static List *
audience_names(const SubjectInfo *si, const char *what, StringInfo segments)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, audience_expand(si, what))
	{
		AudienceRef *r = (AudienceRef *) lfirst(lc);

		if (r->kind == AUD_NAME_TAG)
			names = lappend(names, makeString(r->name));
		else if (r->kind == AUD_NAME_SEGMENT)
		{
			appendStringInfoString(segments, segments->len > 0 ? ", {\"segment\": " : "{\"segment\": ");
			append_json_string(segments, r->name);
			appendStringInfoString(segments, ", \"audience\": ");
			append_json_string(segments, r->audience);
			appendStringInfoString(segments, "}");
		}
	}
	return names;
}

/*
 * segment.explain(subject name, key text, what text) -> jsonb
 */
PG_FUNCTION_INFO_V1(segment_explain);
Datum
segment_explain(PG_FUNCTION_ARGS)
{
	char	   *subject = NameStr(*PG_GETARG_NAME(0));
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *what = text_to_cstring(PG_GETARG_TEXT_PP(2));
	MemoryContext callcxt = CurrentMemoryContext;
	StringInfoData buf;
	ExplainCtx	ctx;
	SubjectInfo *si = subject_lookup(subject, false);
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	bool		isnull;
	uint32		id;
	int64		member_id;
	bool		row_found = false;
	bool		is_tag;
	DateADT		as_of = segment_current_as_of();
	Jsonb	   *result;
	char	   *q;
	int			nestlevel;

	/* governance: the customer must be in the caller's scope */
	governance_check_customer(si->subject_id, NameStr(si->name), key);
	ctx.masked = governance_masked_columns(si->subject_id);

	/* the customer's member id (-1 when a text key was never seen) */
	member_id = subject_member_id_text(si, key, &id) ? (int64) id : -1;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* rules resolve and run under the pinned search_path, as in a refresh */
	nestlevel = NewGUCNestLevel();
	rule_pin_search_path();
	is_tag = catalog_tag_exists(si->subject_id, what);

	ctx.rel = table_open(si->relid, AccessShareLock);
	ctx.slot = table_slot_create(ctx.rel, NULL);
	ctx.econtext = CreateStandaloneExprContext();
	ctx.dpcontext = deparse_context_for(RelationGetRelationName(ctx.rel), si->relid);

	/* the customer's current row: from the heap, or through SQL (views, Citus ...) */
	if (si->has_snapshot_column)
	{
		/* a snapshot subject: the row of the snapshot its current state is from */
		DateADT		d;

		if (!catalog_state_as_of(si->subject_id, GetActiveSnapshot(), &d) &&
			!snapshot_find(ctx.rel, NameStr(si->snapshot_column), as_of, &d))
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("subject \"%s\" has no snapshot on or before %s", subject,
							snapshot_date_text(as_of))));
		as_of = d;
		row_found = subject_sql_fetch_row(ctx.rel, NameStr(si->key_column), si->key_type, key, ctx.slot,
										  psprintf(" AND %s = '%s'::pg_catalog.date",
												   quote_identifier(NameStr(si->snapshot_column)),
												   snapshot_date_text(d)));
	}
	else if (subject_read_mode(ctx.rel) == SUBJECT_READ_SQL)
		row_found = subject_sql_fetch_row(ctx.rel, NameStr(si->key_column), si->key_type,
										  key, ctx.slot, NULL);
	else
	{
		args[1] = PointerGetDatum(cstring_to_text(key));
		q = psprintf("SELECT ctid FROM ONLY %s WHERE %s = $2::%s",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(ctx.rel)),
												RelationGetRelationName(ctx.rel)),
					 quote_identifier(NameStr(si->key_column)),
					 format_type_be(si->key_type));
		if (SPI_execute_with_args(q, 2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the subject row");
		if (SPI_processed > 0)
		{
			ItemPointerData tid = *(ItemPointer) DatumGetPointer(
				SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

			row_found = table_tuple_fetch_row_version(ctx.rel, &tid, GetActiveSnapshot(), ctx.slot);
		}
	}

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"subject\": ");
	append_json_string(&buf, subject);
	appendStringInfoString(&buf, ", \"key\": ");
	append_json_string(&buf, key);
	appendStringInfo(&buf, ", \"row_found\": %s", row_found ? "true" : "false");
	if (!is_tag)
	{
		/* a scheme or a scorecard of this subject? */
		const char *kind;
		int32		id;

		if (catalog_find_group(si->subject_id, what, &kind, &id))
		{
			appendStringInfo(&buf, ", \"%s\": ", kind);
			append_json_string(&buf, what);
			if (strcmp(kind, "scheme") == 0)
				explain_scheme(&buf, &ctx, si->subject_id, id, member_id, row_found);
			else
				explain_scorecard(&buf, &ctx, si->subject_id, id, member_id, row_found);
			goto done;
		}
	}
	if (is_tag)
	{
		appendStringInfoString(&buf, ", \"what\": ");
		append_json_string(&buf, what);
		appendStringInfoString(&buf, ", ");
		/* splice the tag object's members into this object */
		{
			StringInfoData tb;

			initStringInfo(&tb);
			explain_tag(&tb, &ctx, si->subject_id, what, member_id, row_found, as_of);
			appendStringInfoString(&buf, tb.data + 1);
		}
	}
	else
	{
		ListCell   *lc;
		Datum		a[3];
		Oid			t[3] = {NAMEOID, TEXTOID, INT8OID};
		Datum		inaud;
		StringInfoData segments;

		a[0] = PG_GETARG_DATUM(0);
		a[1] = PointerGetDatum(cstring_to_text(what));
		a[2] = Int64GetDatum(member_id);
		if (SPI_execute_with_args("SELECT segment.audience($1, $2) OPERATOR(segment.@>) $3", 3, t, a, NULL,
								  false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not evaluate the audience");
		inaud = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		appendStringInfoString(&buf, ", \"audience\": ");
		append_json_string(&buf, what);
		appendStringInfo(&buf, ", \"value\": %s, \"tags\": [",
						 (member_id >= 0 && !isnull && DatumGetBool(inaud)) ? "true" : "false");
		initStringInfo(&segments);
		foreach(lc, audience_names(si, what, &segments))
		{
			if (foreach_current_index(lc) > 0)
				appendStringInfoString(&buf, ", ");
			explain_tag(&buf, &ctx, si->subject_id, strVal(lfirst(lc)), member_id, row_found, as_of);
		}
		appendStringInfoString(&buf, "]");
		if (segments.len > 0)
			appendStringInfo(&buf, ", \"segments\": [%s]", segments.data);
		appendStringInfoString(&buf, "}");
	}

done:
	ExecDropSingleTupleTableSlot(ctx.slot);
	FreeExprContext(ctx.econtext, true);
	table_close(ctx.rel, AccessShareLock);

	{
		MemoryContext spicxt = MemoryContextSwitchTo(callcxt);

		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
		MemoryContextSwitchTo(spicxt);
	}
	AtEOXact_GUC(false, nestlevel);	/* also undoes a plain SET in a rule's function */
	SPI_finish();
	PG_RETURN_JSONB_P(result);
}
