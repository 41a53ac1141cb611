/*
 * members_scan.c
 *     The streaming member scan: segment.members in a FROM clause without
 *     the function scan's tuplestore.
 *
 * A function scan calls a set-returning function once, stores every row it
 * returns in a tuplestore, then reads them back: for a member list that is
 * two copies of every row, and it costs what generate_series of as many
 * rows costs. The planner hook here (set_rel_pathlist_hook, chained) adds,
 * next to the function scan path of a FROM item that is exactly one call of
 * segment.members(name, text) or segment.members(name, text, date) (no
 * WITH ORDINALITY), a custom path "Segment Member Scan". Its plan keeps the
 * call's arguments in custom_exprs (so setrefs and the nestloop parameters
 * of a LATERAL call are handled as for any scan expression); at its first
 * row after a start or a rescan with changed arguments it evaluates them,
 * then does what the function does before its rows (reader_members: the
 * same checks, errors, evaluation and audit) and returns the members of the
 * set one at a time, ascending, read in batches from CRoaring's iterator.
 *
 * What it keeps of the function scan's behaviour:
 *   - a NULL argument: no rows, nothing evaluated (the function is STRICT);
 *   - a rescan with unchanged arguments re-reads the same set without a new
 *     evaluation or audit (as the function scan rewinds its tuplestore);
 *   - EXECUTE on the function is checked when the plan starts;
 *   - backward fetches and mark/restore (scrollable cursors, merge joins);
 *   - the plan depends on the function (dropped or altered: replanned).
 * It is ordered by member id, so the path has that pathkey (no sort for
 * ORDER BY the id). It is not used when the row must be locked or copied
 * for a recheck (FOR UPDATE, UPDATE ... FROM: a whole-row reference), when
 * the function is SECURITY DEFINER, has SET options or is not STRICT (an
 * administrator's ALTER FUNCTION), or when segment.stream_members is off:
 * the function scan answers then.
 *
 * The scan's set is owned (RoaringOwned) by a memory context of the scan,
 * a child of the query's: freed at the end, at the next evaluation, or with
 * the query on an error. The planner hook, like any planner hook, applies
 * once the library is loaded in the backend.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_language.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/prep.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "extension_cache.h"
#include "members_scan.h"
#include "reader.h"

bool		segment_stream_members = true;

#define SCAN_NAME "Segment Member Scan"

/* members read from the set at a time */
#define BATCH 1024

static set_rel_pathlist_hook_type prev_set_rel_pathlist_hook = NULL;

static Plan *plan_scan(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
					   List *tlist, List *clauses, List *custom_plans);
static Node *create_scan_state(CustomScan *cscan);
static void begin_scan(CustomScanState *node, EState *estate, int eflags);
static TupleTableSlot *exec_scan(CustomScanState *node);
static void end_scan(CustomScanState *node);
static void rescan(CustomScanState *node);
static void mark_pos(CustomScanState *node);
static void restore_pos(CustomScanState *node);
static void explain_scan(CustomScanState *node, List *ancestors, ExplainState *es);

static const CustomPathMethods path_methods = {
	.CustomName = SCAN_NAME,
	.PlanCustomPath = plan_scan,
};

static const CustomScanMethods scan_methods = {
	.CustomName = SCAN_NAME,
	.CreateCustomScanState = create_scan_state,
};

static const CustomExecMethods exec_methods = {
	.CustomName = SCAN_NAME,
	.BeginCustomScan = begin_scan,
	.ExecCustomScan = exec_scan,
	.EndCustomScan = end_scan,
	.ReScanCustomScan = rescan,
	.MarkPosCustomScan = mark_pos,
	.RestrPosCustomScan = restore_pos,
	.ExplainCustomScan = explain_scan,
};

/* ------------------------------------------------------------------------
 * Which calls: segment.members(name, text) and (name, text, date)
 * ------------------------------------------------------------------------
 */

/* their OIDs by name, looked up again when the extension's objects change */
static Oid	members_oid[2];
static uint64 members_oid_generation = 0;

static void
lookup_members_oids(void)
{
	static const Oid argtypes[3] = {NAMEOID, TEXTOID, DATEOID};
	uint64		generation = extension_cache_generation();
	Oid			nsp;

	if (members_oid_generation == generation)
		return;
	members_oid[0] = members_oid[1] = InvalidOid;
	nsp = get_namespace_oid("segment", true);
	if (OidIsValid(nsp))
	{
		for (int i = 0; i < 2; i++)
			members_oid[i] = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
											 CStringGetDatum("members"),
											 PointerGetDatum(buildoidvector(argtypes, i + 2)),
											 ObjectIdGetDatum(nsp));
	}
	members_oid_generation = generation;
}

/*
 * The number of arguments (2 or 3) when funcid is one of the two and runs
 * this library's C function as it was created (STRICT, not SECURITY
 * DEFINER, no SET options); 0 otherwise. The catalog row is read every time
 * (the syscache): an ALTER FUNCTION is seen at once.
 */
static int
streamable_nargs(Oid funcid)
{
	const char *symbol;
	int			nargs;
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		ok;
	bool		isnull;
	Datum		d;

	lookup_members_oids();
	if (!OidIsValid(funcid))
		return 0;
	if (funcid == members_oid[0])
		nargs = 2, symbol = "segment_members";
	else if (funcid == members_oid[1])
		nargs = 3, symbol = "segment_members_as_of";
	else
		return 0;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return 0;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	ok = proc->prolang == ClanguageId && proc->proretset && proc->prorettype == INT8OID &&
		proc->pronargs == nargs && proc->proisstrict && !proc->prosecdef &&
		heap_attisnull(tup, Anum_pg_proc_proconfig, NULL);
	if (ok)
	{
		d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
		ok = !isnull && strcmp(TextDatumGetCString(d), symbol) == 0;
	}
	if (ok)
	{
		d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);
		ok = !isnull && strcmp(TextDatumGetCString(d), "$libdir/segment") == 0;
	}
	ReleaseSysCache(tup);
	return ok ? nargs : 0;
}

/* ------------------------------------------------------------------------
 * Planner
 * ------------------------------------------------------------------------
 */

/* Whether clauses/expressions reference no column of relid but its first. */
static bool
only_first_column(Node *node, Index relid)
{
	Bitmapset  *attrs = NULL;
	int			first = 1 - FirstLowInvalidHeapAttributeNumber;
	int			k = -1;

	pull_varattnos(node, relid, &attrs);
	while ((k = bms_next_member(attrs, k)) >= 0)
		if (k != first)
			return false;
	return true;
}

static void
add_member_scan_path(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	RangeTblFunction *rtfunc;
	FuncExpr   *fexpr;
	Path	   *fpath = NULL;
	CustomPath *cpath;
	Var		   *var = NULL;
	ListCell   *lc;

	if (rte->rtekind != RTE_FUNCTION || rte->funcordinality ||
		list_length(rte->functions) != 1 || IS_DUMMY_REL(rel))
		return;
	rtfunc = linitial_node(RangeTblFunction, rte->functions);
	if (!IsA(rtfunc->funcexpr, FuncExpr))
		return;
	fexpr = (FuncExpr *) rtfunc->funcexpr;
	if (!fexpr->funcretset || list_length(fexpr->args) == 0)
		return;
	foreach(lc, fexpr->args)
		if (IsA(lfirst(lc), NamedArgExpr))
			return;
	if (streamable_nargs(fexpr->funcid) != list_length(fexpr->args))
		return;

	foreach(lc, rel->pathlist)
	{
		Path	   *p = (Path *) lfirst(lc);

		if (p->pathtype == T_FunctionScan)
		{
			fpath = p;
			break;
		}
	}
	if (fpath == NULL)
		return;

	/* the scan makes the member column only: no whole-row reference */
	if (!only_first_column((Node *) rel->reltarget->exprs, rti) ||
		!only_first_column((Node *) get_actual_clauses(rel->baserestrictinfo), rti) ||
		(fpath->param_info != NULL &&
		 !only_first_column((Node *) get_actual_clauses(fpath->param_info->ppi_clauses), rti)))
		return;
	/* a row to lock or to copy for a recheck (EvalPlanQual): the function scan */
	if (get_plan_rowmark(root->rowMarks, rti) != NULL)
		return;

	cpath = makeNode(CustomPath);
	cpath->path.pathtype = T_CustomScan;
	cpath->path.parent = rel;
	cpath->path.pathtarget = rel->reltarget;
	cpath->path.param_info = fpath->param_info;
	cpath->path.parallel_aware = false;
	cpath->path.parallel_safe = fpath->parallel_safe;
	cpath->path.parallel_workers = 0;
	cpath->path.rows = fpath->rows;

	/*
	 * The function scan's costs, less the tuplestore it writes every row
	 * into and reads it back from, counted as half a cpu_tuple_cost a row:
	 * the evaluation (all start-up cost) is the same.
	 */
	cpath->path.startup_cost = fpath->startup_cost;
	cpath->path.total_cost = Max(fpath->startup_cost,
								 fpath->total_cost - 0.5 * cpu_tuple_cost * fpath->rows);

	/* ascending member ids: useful for ORDER BY and merge joins */
	foreach(lc, rel->reltarget->exprs)
	{
		Var		   *v = (Var *) lfirst(lc);

		if (IsA(v, Var) && v->varno == rti && v->varattno == 1 && v->varlevelsup == 0)
		{
			var = v;
			break;
		}
	}
	if (var != NULL)
		cpath->path.pathkeys = build_expression_pathkey(root, (Expr *) var, NULL,
														Int8LessOperator,
														rel->relids, false);
	cpath->flags = CUSTOMPATH_SUPPORT_BACKWARD_SCAN | CUSTOMPATH_SUPPORT_MARK_RESTORE |
		CUSTOMPATH_SUPPORT_PROJECTION;
	cpath->custom_paths = NIL;
	cpath->custom_private = NIL;
	cpath->methods = &path_methods;
	add_path(rel, &cpath->path);
}

static void
members_set_rel_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	if (prev_set_rel_pathlist_hook)
		prev_set_rel_pathlist_hook(root, rel, rti, rte);
	if (segment_stream_members)
		add_member_scan_path(root, rel, rti, rte);
}

/*
 * The plan: not a scan of a relation (scanrelid 0); the scan tuple is the
 * member id (custom_scan_tlist), or nothing at all when no column is read
 * (count(*)); the arguments in custom_exprs; the function's OID in
 * custom_private (EXPLAIN, the EXECUTE check).
 */
static Plan *
plan_scan(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
		  List *tlist, List *clauses, List *custom_plans)
{
	RangeTblEntry *rte = planner_rt_fetch(rel->relid, root);
	FuncExpr   *fexpr = (FuncExpr *) linitial_node(RangeTblFunction, rte->functions)->funcexpr;
	CustomScan *cscan = makeNode(CustomScan);
	List	   *quals = extract_actual_clauses(clauses, false);
	Bitmapset  *attrs = NULL;

	cscan->scan.plan.targetlist = tlist;
	cscan->scan.plan.qual = quals;
	cscan->scan.scanrelid = 0;
	cscan->flags = best_path->flags;
	cscan->custom_plans = NIL;
	cscan->custom_exprs = copyObject(fexpr->args);
	cscan->custom_private = list_make1_oid(fexpr->funcid);
	pull_varattnos((Node *) tlist, rel->relid, &attrs);
	pull_varattnos((Node *) quals, rel->relid, &attrs);
	if (!bms_is_empty(attrs))
		cscan->custom_scan_tlist =
			list_make1(makeTargetEntry((Expr *) makeVar(rel->relid, 1, INT8OID, -1, InvalidOid, 0),
									   1, NULL, false));
	cscan->methods = &scan_methods;
	/* the call is not in the plan: replan when the function changes */
	record_plan_function_dependency(root, fexpr->funcid);
	return &cscan->scan.plan;
}

/* ------------------------------------------------------------------------
 * Executor
 * ------------------------------------------------------------------------
 */

typedef struct MemberScanState
{
	CustomScanState css;
	Oid			funcid;
	List	   *args;			/* ExprState of each argument */
	Bitmapset  *arg_params;		/* PARAM_EXEC ids the arguments depend on */
	bool		emit_id;		/* the scan tuple has the member id */
	MemoryContext cxt;			/* the evaluation's; reset at the next one */
	bool		evaluated;
	const roaring_bitmap_t *set;	/* NULL: no rows (a NULL argument) */
	uint64		n;				/* members in set */

	/*
	 * Position: the rank (0-based, in ascending order) of the row last
	 * returned; -1 before the first, n after the last. buf holds the members
	 * of ranks buf_start .. buf_start + buf_len - 1; the iterator stands at
	 * rank it_rank (the next one it reads).
	 */
	int64		pos;
	int64		mark;
	roaring_uint32_iterator_t it;
	int64		it_rank;
	int64		buf_start;
	uint32		buf_len;
	uint32		buf[BATCH];
} MemberScanState;

static Node *
create_scan_state(CustomScan *cscan)
{
	MemberScanState *ms = palloc0(sizeof(MemberScanState));

	NodeSetTag(ms, T_CustomScanState);
	ms->css.flags = cscan->flags;
	ms->css.methods = &exec_methods;
	return (Node *) &ms->css;
}

/* the PARAM_EXEC ids an argument reads, directly or through a subplan */
static bool
collect_params(Node *node, void *context)
{
	MemberScanState *ms = (MemberScanState *) context;

	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXEC)
		ms->arg_params = bms_add_member(ms->arg_params, ((Param *) node)->paramid);
	else if (IsA(node, SubPlan))
	{
		EState	   *estate = ms->css.ss.ps.state;
		Plan	   *plan = list_nth(estate->es_plannedstmt->subplans,
									((SubPlan *) node)->plan_id - 1);

		ms->arg_params = bms_add_members(ms->arg_params, plan->extParam);
	}
	return expression_tree_walker(node, collect_params, context);
}

static void
begin_scan(CustomScanState *node, EState *estate, int eflags)
{
	MemberScanState *ms = (MemberScanState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	AclResult	aclresult;

	ms->funcid = linitial_oid(cscan->custom_private);
	/* what a function scan checks when it starts */
	aclresult = pg_proc_aclcheck(ms->funcid, GetUserId(), ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(ms->funcid));
	InvokeFunctionExecuteHook(ms->funcid);

	ms->args = ExecInitExprList(cscan->custom_exprs, &node->ss.ps);
	collect_params((Node *) cscan->custom_exprs, ms);
	ms->emit_id = cscan->custom_scan_tlist != NIL;
	ms->cxt = AllocSetContextCreate(estate->es_query_cxt, "segment member scan",
									ALLOCSET_SMALL_SIZES);
	ms->evaluated = false;
	ms->pos = -1;
	ms->mark = -1;
}

/* The arguments, then reader_members: the set to return. */
static void
evaluate(MemberScanState *ms)
{
	ExprContext *econtext = ms->css.ss.ps.ps_ExprContext;
	Datum		values[3];
	bool		isnull[3];
	int			nargs = 0;
	bool		anynull = false;
	ListCell   *lc;
	MemoryContext old;
	RoaringOwned *owned = NULL;
	DateADT		as_of;

	MemoryContextReset(ms->cxt);	/* the previous set */
	ms->set = NULL;
	ms->n = 0;
	ms->pos = -1;
	ms->mark = -1;
	ms->it_rank = -1;
	ms->buf_start = 0;
	ms->buf_len = 0;

	ResetExprContext(econtext);
	foreach(lc, ms->args)
	{
		values[nargs] = ExecEvalExpr((ExprState *) lfirst(lc), econtext, &isnull[nargs]);
		anynull |= isnull[nargs];
		nargs++;
	}
	ms->evaluated = true;
	/* STRICT: a NULL argument is no rows, and no call */
	if (anynull)
		return;

	old = MemoryContextSwitchTo(ms->cxt);
	if (nargs == 3)
		as_of = DatumGetDateADT(values[2]);
	ms->set = reader_members(NameStr(*DatumGetName(values[0])),
							 TextDatumGetCString(values[1]),
							 nargs == 3 ? &as_of : NULL, true, &owned);
	MemoryContextSwitchTo(old);
	ms->n = roaring_bitmap_get_cardinality(ms->set);
	roaring_init_iterator(ms->set, &ms->it);
	ms->it_rank = 0;
}

/* Fill buf with the members from rank start on (start < n). */
static void
load_batch(MemberScanState *ms, int64 start)
{
	if (ms->it_rank != start)
	{
		uint32		value;

		if (!roaring_bitmap_select(ms->set, (uint32) start, &value) ||
			!roaring_move_uint32_iterator_equalorlarger(&ms->it, value))
			elog(ERROR, "member of rank " INT64_FORMAT " of " UINT64_FORMAT " not found",
				 start, ms->n);
	}
	ms->buf_len = roaring_read_uint32_iterator(&ms->it, ms->buf, BATCH);
	ms->buf_start = start;
	ms->it_rank = start + ms->buf_len;
	if (ms->buf_len == 0)
		elog(ERROR, "member of rank " INT64_FORMAT " of " UINT64_FORMAT " not read",
			 start, ms->n);
}

/* The next member in direction dir: false past either end. */
static bool
next_member(MemberScanState *ms, ScanDirection dir, uint32 *member)
{
	int64		r;

	if (ScanDirectionIsBackward(dir))
	{
		r = Min(ms->pos, (int64) ms->n) - 1;
		if (r < 0)
		{
			ms->pos = -1;
			return false;
		}
		if (r < ms->buf_start || r >= ms->buf_start + ms->buf_len)
			load_batch(ms, Max(0, r - (BATCH - 1)));
	}
	else
	{
		r = Max(ms->pos, -1) + 1;
		if (r >= (int64) ms->n)
		{
			ms->pos = ms->n;
			return false;
		}
		if (r < ms->buf_start || r >= ms->buf_start + ms->buf_len)
			load_batch(ms, r);
	}
	ms->pos = r;
	*member = ms->buf[r - ms->buf_start];
	return true;
}

static TupleTableSlot *
exec_scan(CustomScanState *node)
{
	MemberScanState *ms = (MemberScanState *) node;
	ScanDirection dir = node->ss.ps.state->es_direction;
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	ExprState  *qual = node->ss.ps.qual;
	ProjectionInfo *proj = node->ss.ps.ps_ProjInfo;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	uint32		member;

	if (!ms->evaluated)
		evaluate(ms);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (!next_member(ms, dir, &member))
			return NULL;
		ExecClearTuple(slot);
		if (ms->emit_id)
		{
			slot->tts_values[0] = Int64GetDatum((int64) member);
			slot->tts_isnull[0] = false;
		}
		ExecStoreVirtualTuple(slot);
		if (qual == NULL && proj == NULL)
			return slot;
		ResetExprContext(econtext);
		econtext->ecxt_scantuple = slot;
		if (qual == NULL || ExecQual(qual, econtext))
			return proj != NULL ? ExecProject(proj) : slot;
		InstrCountFiltered1(node, 1);
	}
}

static void
end_scan(CustomScanState *node)
{
	MemberScanState *ms = (MemberScanState *) node;

	/* frees the set (its RoaringOwned callback) */
	MemoryContextDelete(ms->cxt);
	ms->set = NULL;
}

/*
 * From the start again: with the same set unless an argument may have
 * changed (as a function scan keeps its tuplestore then).
 */
static void
rescan(CustomScanState *node)
{
	MemberScanState *ms = (MemberScanState *) node;

	if (node->ss.ps.chgParam != NULL && bms_overlap(node->ss.ps.chgParam, ms->arg_params))
		ms->evaluated = false;
	ms->pos = -1;
}

static void
mark_pos(CustomScanState *node)
{
	MemberScanState *ms = (MemberScanState *) node;

	ms->mark = ms->pos;
}

static void
restore_pos(CustomScanState *node)
{
	MemberScanState *ms = (MemberScanState *) node;

	ms->pos = ms->mark;
}

/* EXPLAIN VERBOSE: the call, as a function scan shows it. */
static void
explain_scan(CustomScanState *node, List *ancestors, ExplainState *es)
{
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	FuncExpr   *call;
	List	   *context;

	if (!es->verbose)
		return;
	call = makeFuncExpr(linitial_oid(cscan->custom_private), INT8OID, cscan->custom_exprs,
						InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	call->funcretset = true;
	context = set_deparse_context_plan(es->deparse_cxt, node->ss.ps.plan, ancestors);
	ExplainPropertyText("Function Call", deparse_expression((Node *) call, context, true, false), es);
}

void
members_scan_init(void)
{
	static bool done = false;

	if (done)
		return;
	RegisterCustomScanMethods(&scan_methods);
	prev_set_rel_pathlist_hook = set_rel_pathlist_hook;
	set_rel_pathlist_hook = members_set_rel_pathlist;
	done = true;
}

/*
 * segment_internal._members_support(internal) -> internal: the planner
 * support function of segment.members (install part 32). It answers no
 * request; that the planner calls it while estimating the call is what
 * matters: it loads this library, and so installs the hook above, before
 * the call's paths are made, in a backend's first statement too.
 */
PG_FUNCTION_INFO_V1(segment_members_support);
Datum
segment_members_support(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(NULL);
}
