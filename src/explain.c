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
	Datum		arg = Int32GetDatum(subject_id);
	Oid			argtype = INT4OID;
	bool		isnull;

	if (SPI_execute_with_args("SELECT as_of FROM segment.subject_state WHERE subject_id = $1",
							  1, &argtype, &arg, NULL, true, 0) == SPI_OK_SELECT &&
		SPI_processed > 0)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			return DatumGetDateADT(d);
	}
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
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};
	DateADT		as_of = last_as_of(subject_id);
	SPITupleTable *tt;
	uint64		n,
				i;
	bool		placed = false;

	args[0] = Int32GetDatum(scheme_id);
	args[1] = Int64GetDatum(member_id);
	if (SPI_execute_with_args(segment_internal_sql(psprintf("SELECT b.name, b.rule, segment_internal._live_in_bucket(s.members, b.scheme_id, b.name, $2), "
									   "       (SELECT %s FROM segment.scheme c WHERE c.scheme_id = b.scheme_id) "
									   "  FROM segment.scheme_bucket b LEFT JOIN segment.bucket_state s "
									   "    ON s.scheme_id = b.scheme_id AND s.bucket = b.name "
									   " WHERE b.scheme_id = $1 ORDER BY b.position", rule_owner_sql("scheme", "c"))),
							  2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.scheme_bucket");
	tt = SPI_tuptable;
	n = SPI_processed;
	appendStringInfoString(buf, ", \"stored_bucket\": ");
	{
		const char *stored = NULL;

		for (i = 0; i < n; i++)
		{
			bool		isnull;
			Datum		in = SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull);

			if (!isnull && DatumGetBool(in))
				stored = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);
		}
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
		char	   *bucket = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);
		bool		owner_null;

		if (i > 0)
			appendStringInfoString(buf, ", ");
		appendStringInfoString(buf, "{\"bucket\": ");
		append_json_string(buf, bucket);
		appendStringInfoString(buf, ", \"rule\": ");
		append_json_string(buf, SPI_getvalue(tt->vals[i], tt->tupdesc, 2));
		placed = explain_rule(buf, ctx, SPI_getvalue(tt->vals[i], tt->tupdesc, 2),
							  psprintf("bucket \"%s\"", bucket), as_of,
							  DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &owner_null))) == RULE_TRUE;
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
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};
	DateADT		as_of = last_as_of(subject_id);
	SPITupleTable *tt;
	uint64		n,
				i;
	StringInfoData sum;

	args[0] = Int32GetDatum(scorecard_id);
	args[1] = Int64GetDatum(member_id);
	if (SPI_execute_with_args(segment_internal_sql(psprintf("SELECT c.base::text, "
									   "       (SELECT s.score::text FROM segment_internal._live_scores(c.scorecard_id, c.subject_id) s "
									   "         WHERE s.members OPERATOR(segment.@>) $2), "
									   "       i.rule, i.points::text, %s "
									   "  FROM segment.scorecard c LEFT JOIN segment.scorecard_item i USING (scorecard_id) "
									   " WHERE c.scorecard_id = $1 ORDER BY i.position", rule_owner_sql("scorecard", "c"))),
							  2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.scorecard");
	tt = SPI_tuptable;
	n = SPI_processed;
	appendStringInfo(buf, ", \"base\": %s, \"stored_score\": %s, \"as_of\": ",
					 SPI_getvalue(tt->vals[0], tt->tupdesc, 1),
					 SPI_getvalue(tt->vals[0], tt->tupdesc, 2) ? SPI_getvalue(tt->vals[0], tt->tupdesc, 2) : "null");
	append_json_string(buf, DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(as_of))));
	if (!row_found)
	{
		appendStringInfoString(buf, ", \"score\": null, \"why\": \"no row with this key\"}");
		return;
	}
	/* the score now: base plus the points of the items that are true */
	initStringInfo(&sum);
	appendStringInfo(&sum, "SELECT %s::numeric", SPI_getvalue(tt->vals[0], tt->tupdesc, 1));
	appendStringInfoString(buf, ", \"items\": [");
	for (i = 0; i < n; i++)
	{
		char	   *rule = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);
		char	   *points = SPI_getvalue(tt->vals[i], tt->tupdesc, 4);
		bool		owner_null;

		if (rule == NULL)
			break;
		if (i > 0)
			appendStringInfoString(buf, ", ");
		appendStringInfo(buf, "{\"points\": %s, \"rule\": ", points);
		append_json_string(buf, rule);
		if (explain_rule(buf, ctx, rule, psprintf("item %d", (int) i + 1), as_of,
						 DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &owner_null))) == RULE_TRUE)
			appendStringInfo(&sum, " + %s::numeric", points);
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
	Datum		args[3];
	Oid			argtypes[3] = {INT4OID, NAMEOID, INT8OID};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	char	   *rule;
	bool		active;
	bool		refreshed;
	Datum		member;

	args[0] = Int32GetDatum(subject_id);
	args[1] = DirectFunctionCall1(namein, CStringGetDatum(tag));
	args[2] = Int64GetDatum(member_id);
	if (SPI_execute_with_args(segment_internal_sql(psprintf(
			"SELECT t.rule, t.active, s.tag_id IS NOT NULL, "
			"       segment_internal._live_has(s.members, t.subject_id, t.tag_id, $3), s.as_of, "
			"       (SELECT jsonb_build_object('set_by', m.set_by, 'set_at', m.set_at, 'expires_at', m.expires_at, "
			"                                  'expired', m.expires_at IS NOT NULL AND m.expires_at <= now()) "
			"          FROM segment.manual_tag m WHERE m.tag_id = t.tag_id AND m.member_id = $3)::text, "
			"       EXISTS (SELECT 1 FROM segment.manual_tag m WHERE m.tag_id = t.tag_id AND m.member_id = $3 "
			"                  AND (m.expires_at IS NULL OR m.expires_at > now())), %s "
			"  FROM segment.tag t LEFT JOIN segment.tag_state s USING (tag_id) "
			" WHERE t.subject_id = $1 AND t.name = $2", rule_owner_sql("tag", "t"))),
			3, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.tag");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tag \"%s\" does not exist for this subject", tag)));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	rule = SPI_getvalue(tup, desc, 1);
	active = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	refreshed = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
	member = SPI_getbinval(tup, desc, 4, &isnull);

	appendStringInfoString(buf, "{\"tag\": ");
	append_json_string(buf, tag);
	appendStringInfo(buf, ", \"active\": %s", active ? "true" : "false");
	if (rule == NULL)
	{
		char	   *manual = SPI_getvalue(tup, desc, 6);
		bool		has = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));

		appendStringInfo(buf, ", \"manual\": true, \"value\": %s, \"set\": ", has ? "true" : "false");
		appendStringInfoString(buf, manual ? manual : "null");
		appendStringInfoString(buf, "}");
		return;
	}
	if (refreshed)
	{
		as_of = DatumGetDateADT(SPI_getbinval(tup, desc, 5, &isnull));
		appendStringInfo(buf, ", \"member\": %s", isnull || !DatumGetBool(member) ? "false" : "true");
	}
	else
		appendStringInfoString(buf, ", \"member\": null");
	appendStringInfoString(buf, ", \"as_of\": ");
	append_json_string(buf, DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(as_of))));
	appendStringInfoString(buf, ", \"rule\": ");
	append_json_string(buf, rule);
	if (row_found)
		(void) explain_rule(buf, ctx, rule, psprintf("tag \"%s\"", tag), as_of,
							DatumGetObjectId(SPI_getbinval(tup, desc, 8, &isnull)));
	else
		appendStringInfoString(buf, ", \"value\": null, \"why\": \"no row with this key\"");
	appendStringInfoString(buf, "}");
}

/*
 * The tags an audience text names, segments expanded (audience.c), in order
 * of appearance; each segment met is added to segments as a JSON object.
 */
static List *
audience_names(const SubjectInfo *si, const char *what, StringInfo segments)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, audience_expand(si, what))
	{
		AudienceRef *r = (AudienceRef *) lfirst(lc);

		if (r->kind == AUDREF_TAG)
			names = lappend(names, makeString(r->name));
		else if (r->kind == AUDREF_SEGMENT)
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
	args[0] = Int32GetDatum(si->subject_id);
	args[1] = PointerGetDatum(cstring_to_text(what));
	if (SPI_execute_with_args("SELECT EXISTS (SELECT 1 FROM segment.tag t "
							  "WHERE t.subject_id = $1 AND t.name::text = $2)",
							  2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.tag");
	is_tag = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	ctx.rel = table_open(si->relid, AccessShareLock);
	ctx.slot = table_slot_create(ctx.rel, NULL);
	ctx.econtext = CreateStandaloneExprContext();
	ctx.dpcontext = deparse_context_for(RelationGetRelationName(ctx.rel), si->relid);

	/* the customer's current row: from the heap, or through SQL (views, Citus ...) */
	if (si->has_snapshot_column)
	{
		/* a snapshot subject: the row of the snapshot its current state is from */
		DateADT		d;

		args[0] = Int32GetDatum(si->subject_id);
		if (SPI_execute_with_args("SELECT as_of FROM segment.subject_state WHERE subject_id = $1",
								  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read segment.subject_state");
		if (SPI_processed == 1)
			d = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		else if (!snapshot_find(ctx.rel, NameStr(si->snapshot_column), as_of, &d))
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
		Datum		a[2];
		Oid			t[2] = {INT4OID, TEXTOID};

		a[0] = Int32GetDatum(si->subject_id);
		a[1] = PointerGetDatum(cstring_to_text(what));
		if (SPI_execute_with_args("SELECT 'scheme', scheme_id FROM segment.scheme "
								  " WHERE subject_id = $1 AND name::text = $2 "
								  "UNION ALL "
								  "SELECT 'scorecard', scorecard_id FROM segment.scorecard "
								  " WHERE subject_id = $1 AND name::text = $2",
								  2, t, a, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read segment.scheme");
		if (SPI_processed > 0)
		{
			char	   *kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

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
	AtEOXact_GUC(true, nestlevel);
	SPI_finish();
	PG_RETURN_JSONB_P(result);
}
