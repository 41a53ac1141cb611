/*
 * rule_parse.c
 *     Parse and validate a tag rule with PostgreSQL's own parser.
 *
 * A rule is analysed the way a CHECK constraint is: against the subject table
 * alone, so analysts get PostgreSQL's types, operators, NULL semantics and
 * error positions. What a rule may not be (not boolean, subquery, aggregate,
 * window function, set-returning or volatile function, system or whole-row
 * column, another table) is refused here with a SQLSTATE and a position in
 * the rule text. The text stays the source of truth; this runs again at
 * every refresh, so a rule always means what PostgreSQL says it means now.
 *
 * Stored rules are analysed only under search_path = pg_catalog, pg_temp
 * (rule_owner.h), so that objects other roles create in schemas on some
 * caller's path cannot change what a rule means. At definition time a rule
 * is analysed under its author's search_path; when that means something
 * else than under the pinned path, the text stored is the analysed rule
 * deparsed under the pinned path, every other object schema-qualified
 * (segment_internal._rule_canonical). Definition also checks that the author may
 * read every column the rule reads (segment_internal._rule_columns).
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/ruleutils.h"

#include "relcheck.h"
#include "rule.h"
#include "rule_owner.h"
#include "subxact.h"

typedef struct RuleErrorContext
{
	const char *rule;
	const char *what;
	bool		pinned;
} RuleErrorContext;

/* Report parser positions against the rule text, not the calling statement. */
static void
rule_error_callback(void *arg)
{
	RuleErrorContext *ctx = (RuleErrorContext *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(ctx->rule);
	}
	/* a 0.1.0 rule may name an object found only on its author's path */
	if (ctx->pinned &&
		(geterrcode() == ERRCODE_UNDEFINED_FUNCTION || geterrcode() == ERRCODE_UNDEFINED_OBJECT))
		errhint("Stored rules are resolved under search_path = " RULE_PINNED_SEARCH_PATH
				": schema-qualify functions, operators and types outside pg_catalog"
				" and save the rule again (e.g. with segment.alter_tag).");
	if (ctx->what)
		errcontext("rule of %s", ctx->what);
}

static int
rule_errposition(const char *rule, int location)
{
	if (location < 0)
		return 0;
	return errposition(pg_mbstrlen_with_len(rule, location) + 1);
}

/* Raw-tree checks that must come before analysis (analysis of a subquery
 * would already open other tables). */
static bool
reject_raw_walker(Node *node, const char *rule)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubLink))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("subqueries are not allowed in rules"),
				 errhint("A rule reads one row of the subject table; precompute the value into a column."),
				 rule_errposition(rule, ((SubLink *) node)->location)));
	if (IsA(node, FuncCall) && ((FuncCall *) node)->over != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WINDOWING_ERROR),
				 errmsg("window functions are not allowed in rules"),
				 errhint("A rule reads one row of the subject table."),
				 rule_errposition(rule, ((FuncCall *) node)->location)));
	return raw_expression_tree_walker(node, reject_raw_walker, (void *) rule);
}

static bool
is_volatile_checker(Oid func_id, void *context)
{
	return func_volatile(func_id) == PROVOLATILE_VOLATILE;
}

static bool
is_setof_checker(Oid func_id, void *context)
{
	return get_func_retset(func_id);
}

typedef struct AnalysedWalk
{
	const char *rule;
	Bitmapset  *attnos;
	Relation	rel;
} AnalysedWalk;

/* Checks on the analysed tree; collects the columns read. */
static bool
reject_analysed_walker(Node *node, AnalysedWalk *w)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varattno == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("whole-row references are not allowed in rules"),
					 errhint("Name the columns the rule reads."),
					 rule_errposition(w->rule, var->location)));
		if (var->varattno < 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("system columns are not allowed in rules"),
					 rule_errposition(w->rule, var->location)));
		w->attnos = bms_add_member(w->attnos, var->varattno);
		return false;
	}
	if (IsA(node, Aggref))
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("aggregate functions are not allowed in rules"),
				 errhint("A rule reads one row of the subject table; precompute aggregates into a column."),
				 rule_errposition(w->rule, ((Aggref *) node)->location)));
	if (IsA(node, WindowFunc))
		ereport(ERROR,
				(errcode(ERRCODE_WINDOWING_ERROR),
				 errmsg("window functions are not allowed in rules"),
				 rule_errposition(w->rule, ((WindowFunc *) node)->location)));
	if (IsA(node, GroupingFunc))
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("grouping operations are not allowed in rules"),
				 rule_errposition(w->rule, exprLocation(node))));
	if (IsA(node, Param) || IsA(node, SubLink) || IsA(node, SubPlan))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("subqueries and parameters are not allowed in rules"),
				 rule_errposition(w->rule, exprLocation(node))));
	if (check_functions_in_node(node, is_setof_checker, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-returning functions are not allowed in rules"),
				 rule_errposition(w->rule, exprLocation(node))));
	if (check_functions_in_node(node, is_volatile_checker, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("volatile functions are not allowed in rules"),
				 errdetail("A rule must give the same answer for the same row and evaluation date."),
				 errhint("Use segment.as_of() for the evaluation date; stable and immutable functions are allowed."),
				 rule_errposition(w->rule, exprLocation(node))));
	if (IsA(node, NextValueExpr))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("volatile functions are not allowed in rules"),
				 rule_errposition(w->rule, exprLocation(node))));
	return expression_tree_walker(node, reject_analysed_walker, (void *) w);
}

/* The single expression of the rule, or an error. */
static Node *
rule_raw_expression(const char *rule)
{
	List	   *raw;
	SelectStmt *stmt;
	ResTarget  *target;

	raw = raw_parser(rule, RAW_PARSE_PLPGSQL_EXPR);
	stmt = (SelectStmt *) ((RawStmt *) linitial(raw))->stmt;

	if (list_length(stmt->targetList) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg(stmt->targetList == NIL ? "rule is empty" : "rule must be a single expression"),
				 errhint("Write one boolean expression, e.g. aum >= 500000 and not has_fund.")));
	if (stmt->fromClause || stmt->whereClause || stmt->groupClause ||
		stmt->havingClause || stmt->windowClause || stmt->distinctClause ||
		stmt->sortClause || stmt->limitCount || stmt->limitOffset ||
		stmt->lockingClause || stmt->intoClause)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("rule must be a single expression, not a query"),
				 errhint("Write only the condition, as in a WHERE clause.")));
	target = (ResTarget *) linitial(stmt->targetList);
	if (target->name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("rule must not name its result"),
				 rule_errposition(rule, target->location)));
	if (IsA(target->val, ColumnRef) &&
		IsA(llast(((ColumnRef *) target->val)->fields), A_Star))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("whole-row references are not allowed in rules"),
				 rule_errposition(rule, target->location)));
	return target->val;
}

static Node *
rule_analyze_internal(Relation rel, const char *rule, const char *what, Bitmapset **attnos,
					  bool pinned)
{
	ErrorContextCallback errcb;
	RuleErrorContext ctx;
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	Node	   *rawexpr;
	Node	   *expr;
	AnalysedWalk w;

	ctx.rule = rule;
	ctx.what = what;
	ctx.pinned = pinned;
	errcb.callback = rule_error_callback;
	errcb.arg = &ctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	rawexpr = rule_raw_expression(rule);
	reject_raw_walker(rawexpr, rule);

	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = rule;
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock,
										   NULL, false, true);
	addNSItemToQuery(pstate, nsitem, true, true, true);

	/* SELECT-target rules let us reject what a rule may not contain ourselves,
	 * with messages about rules rather than about WHERE clauses. */
	expr = transformExpr(pstate, rawexpr, EXPR_KIND_SELECT_TARGET);

	w.rule = rule;
	w.attnos = NULL;
	w.rel = rel;
	reject_analysed_walker(expr, &w);

	expr = coerce_to_boolean(pstate, expr, "rule");
	assign_expr_collations(pstate, expr);

	free_parsestate(pstate);
	error_context_stack = errcb.previous;

	if (attnos)
		*attnos = w.attnos;
	return expr;
}

Node *
rule_analyze(Relation rel, const char *rule, const char *what, Bitmapset **attnos)
{
	int			nest = NewGUCNestLevel();
	Node	   *expr;

	/* on error, (sub)transaction abort pops the level */
	rule_pin_search_path();
	expr = rule_analyze_internal(rel, rule, what, attnos, true);
	AtEOXact_GUC(true, nest);
	return expr;
}

Node *
rule_analyze_as_written(Relation rel, const char *rule, const char *what, Bitmapset **attnos)
{
	return rule_analyze_internal(rel, rule, what, attnos, false);
}

/* Replace segment.as_of() by the run's date. */
typedef struct FoldAsOf
{
	Oid			funcoid;
	Const	   *date;
} FoldAsOf;

static Node *
fold_as_of_mutator(Node *node, FoldAsOf *ctx)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == ctx->funcoid)
		return (Node *) copyObject(ctx->date);
	return expression_tree_mutator(node, fold_as_of_mutator, (void *) ctx);
}

Node *
rule_fold_as_of(Node *analysed, DateADT as_of)
{
	FoldAsOf	ctx;

	ctx.funcoid = segment_as_of_funcoid();
	ctx.date = makeConst(DATEOID, -1, InvalidOid, sizeof(DateADT),
						 DateADTGetDatum(as_of), false, true);
	return fold_as_of_mutator(copyObject(analysed), &ctx);
}

Expr *
rule_plan(Node *analysed, DateADT as_of)
{
	return expression_planner((Expr *) rule_fold_as_of(analysed, as_of));
}

/* Column names of a bitmapset of attnums, as name[] for the catalog. */
static Datum
attnos_to_name_array(Relation rel, Bitmapset *attnos)
{
	int			n = bms_num_members(attnos);
	Datum	   *names = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;
	int			attno = -1;

	while ((attno = bms_next_member(attnos, attno)) >= 0)
	{
		Name		nm = palloc0(NAMEDATALEN);

		namestrcpy(nm, NameStr(TupleDescAttr(RelationGetDescr(rel), attno - 1)->attname));
		names[i++] = NameGetDatum(nm);
	}
	return PointerGetDatum(construct_array(names, n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
}

/* The first clock reading in a rule (current_date, now() ...), or NULL. */
static bool
find_clock_walker(Node *node, const char **found)
{
	if (node == NULL)
		return false;
	if (IsA(node, SQLValueFunction))
	{
		switch (((SQLValueFunction *) node)->op)
		{
			case SVFOP_CURRENT_DATE:
				*found = "current_date";
				return true;
			case SVFOP_CURRENT_TIME:
			case SVFOP_CURRENT_TIME_N:
			case SVFOP_CURRENT_TIMESTAMP:
			case SVFOP_CURRENT_TIMESTAMP_N:
			case SVFOP_LOCALTIME:
			case SVFOP_LOCALTIME_N:
			case SVFOP_LOCALTIMESTAMP:
			case SVFOP_LOCALTIMESTAMP_N:
				*found = "the current time";
				return true;
			default:
				break;
		}
	}
	if (IsA(node, FuncExpr))
	{
		Oid			f = ((FuncExpr *) node)->funcid;

		if (f == F_NOW || f == F_TRANSACTION_TIMESTAMP || f == F_STATEMENT_TIMESTAMP)
		{
			*found = "now()";
			return true;
		}
	}
	return expression_tree_walker(node, find_clock_walker, (void *) found);
}

/*
 * segment_internal._rule_columns(relation regclass, rule text, what text) -> name[]
 * Validates a rule against a table and returns the columns it reads. With
 * `what` (definition time) the rule is analysed under the caller's
 * search_path and the caller must have SELECT on every column it reads
 * (42501); without (re-checks of stored rules) under the pinned path.
 */
PG_FUNCTION_INFO_V1(segment_rule_columns);
Datum
segment_rule_columns(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *rule = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *what = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	Relation	rel;
	Bitmapset  *attnos = NULL;
	Datum		result;
	Node	   *expr;
	const char *clock = NULL;

	rel = table_open(relid, AccessShareLock);
	if (what != NULL)
	{
		/* definition: as its author wrote it, and only over what they may read */
		expr = rule_analyze_as_written(rel, rule, what, &attnos);
		rule_owner_check(GetUserId(), rel, attnos, what, true);
	}
	else
		expr = rule_analyze(rel, rule, what, &attnos);	/* a stored rule */
	result = attnos_to_name_array(rel, attnos);

	/* at definition time (what given): a rule on the clock cannot be replayed */
	if (what != NULL && find_clock_walker(expr, &clock))
		ereport(WARNING,
				(errmsg("rule of %s reads %s", what, clock),
				 errdetail("A refresh evaluates it at the moment it runs, not as of its as_of date, so the run cannot be reproduced or back-filled."),
				 errhint("Use segment.as_of() for the evaluation date.")));
	table_close(rel, AccessShareLock);
	PG_RETURN_DATUM(result);
}

/* A trial analysis under the pinned search_path, run by subxact_run. */
typedef struct PinnedAnalysis
{
	Relation	rel;
	const char *rule;
	Node	   *expr;
} PinnedAnalysis;

static void
analyse_pinned(void *arg)
{
	PinnedAnalysis *a = (PinnedAnalysis *) arg;

	a->expr = rule_analyze(a->rel, a->rule, NULL, NULL);
}

/*
 * Analyse rule under the pinned search_path in a subtransaction: NULL if it
 * does not analyse there (a function found only on the author's path; the
 * error itself is not needed). A cancel still cancels.
 */
static Node *
analyse_pinned_or_null(Relation rel, const char *rule)
{
	PinnedAnalysis a = {rel, rule, NULL};

	if (!subxact_run(analyse_pinned, &a, NULL))
		return NULL;
	return a.expr;
}

/*
 * segment_internal._rule_canonical(relation regclass, rule text) -> text
 * The text to store for a rule its author wrote under their search_path:
 * the rule itself if it means the same under the pinned search_path, else
 * the analysed rule deparsed under the pinned path, where everything outside
 * pg_catalog comes out schema-qualified (mallory.f(aum),
 * OPERATOR(mallory.>=)), so the stored text means exactly what it meant to
 * its author on every path.
 */
PG_FUNCTION_INFO_V1(segment_rule_canonical);
Datum
segment_rule_canonical(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *rule = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Relation	rel;
	Node	   *written;
	Node	   *pinned;
	char	   *canonical = rule;

	relcheck_readable(relid, "relation");
	rel = table_open(relid, AccessShareLock);
	written = rule_analyze_as_written(rel, rule, NULL, NULL);
	pinned = analyse_pinned_or_null(rel, rule);
	if (pinned == NULL || !equal(written, pinned))
	{
		int			nest = NewGUCNestLevel();
		List	   *dpcontext;

		rule_pin_search_path();
		dpcontext = deparse_context_for(RelationGetRelationName(rel), relid);
		canonical = deparse_expression(written, dpcontext, false, false);
		/* the deparsed text must analyse, pinned, to the author's rule */
		pinned = rule_analyze(rel, canonical, NULL, NULL);
		AtEOXact_GUC(true, nest);
		if (!equal(written, pinned))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("rule cannot be stored in a form independent of search_path"),
					 errdetail("Rule: %s; deparsed: %s", rule, canonical),
					 errhint("Schema-qualify the functions, operators and types it uses.")));
	}
	table_close(rel, AccessShareLock);
	PG_RETURN_TEXT_P(cstring_to_text(canonical));
}

/*
 * segment_internal._rule_columns(relation regclass, rule text, what text) -> name[]
 * relcheck.c's checks, then segment_rule_columns.
 */
PG_FUNCTION_INFO_V1(segment_rule_columns_checked);
Datum
segment_rule_columns_checked(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("relation must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rule must not be NULL")));
	relcheck_readable(PG_GETARG_OID(0), "relation");
	return segment_rule_columns(fcinfo);
}
