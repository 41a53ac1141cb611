/*
 * rule_program.c
 *     Compile an analysed rule into a small tree that a table scan evaluates
 *     on each row, natively for the shapes that dominate tag libraries.
 *
 * Native shapes: AND / OR / NOT with three-valued logic, IS [NOT] TRUE /
 * FALSE / UNKNOWN, a boolean column, column IS [NOT] NULL, and a column
 * compared with a constant (or an IN / NOT IN list of constants) where the
 * operator is the btree comparison of the integer, date/time, float, numeric,
 * boolean or text family. Those are decided by the operator's btree strategy,
 * so they mean exactly what PostgreSQL's operator means (NaN ordering of
 * floats, numeric comparison, the column's collation for text ordering;
 * equality of text only natively under a deterministic collation).
 * Anything else becomes a leaf evaluated by PostgreSQL's own executor, so the
 * native part only ever saves time, never changes an answer.
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include <math.h>

#include "rule.h"

/* btree families whose comparison we evaluate natively */
#define FAM_INTEGER		1976
#define FAM_FLOAT		1970
#define FAM_NUMERIC		1988
#define FAM_TEXT		1994
#define FAM_DATETIME	434
#define FAM_BOOL		424

#define STRAT_NE		6		/* ROWCOMPARE_NE: negator of btree equality */

typedef enum RuleNodeKind
{
	RN_CONST,
	RN_AND,
	RN_OR,
	RN_NOT,
	RN_BOOLTEST,
	RN_BOOLVAR,
	RN_NULLTEST,
	RN_CMP,
	RN_IN,
	RN_EXPR
} RuleNodeKind;

typedef enum CmpClass
{
	CC_INT,						/* int2/4/8, date, timestamp(tz), bool: as int64 */
	CC_FLOAT,					/* float4/8: as double with PostgreSQL's NaN order */
	CC_NUMERIC,					/* numeric_cmp */
	CC_TEXT_EQ,					/* bytewise equality, deterministic collation */
	CC_TEXT_ORD					/* varstr_cmp under the collation */
} CmpClass;

typedef enum FetchKind
{
	FK_BOOL,
	FK_INT2,
	FK_INT4,
	FK_INT8,
	FK_FLOAT4,
	FK_FLOAT8,
	FK_DATUM
} FetchKind;

/* A constant operand, converted once. */
typedef struct CmpConst
{
	int64		i;
	double		f;
	Datum		d;
	const char *s;
	int			slen;
	bool		isnull;
} CmpConst;

struct RuleNode
{
	RuleNodeKind kind;
	RuleValue	constval;		/* RN_CONST */
	int			strategy;		/* RN_CMP / RN_IN: btree strategy or STRAT_NE */
	CmpClass	cmpclass;
	FetchKind	fetch;
	int			attidx;			/* column index (attno - 1) */
	Oid			collid;
	BoolTestType booltest;		/* RN_BOOLTEST */
	bool		isnull_test;	/* RN_NULLTEST: IS NULL (true) or IS NOT NULL */
	bool		use_or;			/* RN_IN: ANY (true) or ALL */
	CmpConst	c;				/* RN_CMP */
	int			nelems;			/* RN_IN */
	CmpConst   *elems;
	int			nargs;			/* RN_AND / RN_OR / RN_NOT / RN_BOOLTEST */
	RuleNode  **args;
	ExprState  *state;			/* RN_EXPR */
};

struct RuleProgram
{
	RuleScan   *scan;
	RuleNode   *root;
	bool		native;			/* no RN_EXPR leaf anywhere */
};

RuleScan *
rule_scan_create(ExprContext *econtext)
{
	RuleScan   *scan = palloc0(sizeof(RuleScan));

	scan->econtext = econtext;
	return scan;
}

/* Remember that a column needs preparing once per row (un-short/detoast). */
static void
scan_prepare_column(RuleScan *scan, int attidx, bool is_text)
{
	int			i;

	for (i = 0; i < scan->nprep; i++)
		if (scan->prep_attnos[i] == attidx)
			return;
	if (scan->nprep == 0)
	{
		scan->prep_attnos = palloc(sizeof(AttrNumber) * 8);
		scan->prep_bufs = palloc(sizeof(char *) * 8);
		scan->prep_buflens = palloc(sizeof(int) * 8);
		scan->prep_is_text = palloc(sizeof(bool) * 8);
	}
	else if ((scan->nprep & 7) == 0)
	{
		int			n = scan->nprep + 8;

		scan->prep_attnos = repalloc(scan->prep_attnos, sizeof(AttrNumber) * n);
		scan->prep_bufs = repalloc(scan->prep_bufs, sizeof(char *) * n);
		scan->prep_buflens = repalloc(scan->prep_buflens, sizeof(int) * n);
		scan->prep_is_text = repalloc(scan->prep_is_text, sizeof(bool) * n);
	}
	scan->prep_attnos[scan->nprep] = attidx;
	scan->prep_buflens[scan->nprep] = is_text ? 0 : 64;
	scan->prep_bufs[scan->nprep] = is_text ? NULL : palloc(64);
	scan->prep_is_text[scan->nprep] = is_text;
	scan->nprep++;
}

static void
note_column(RuleScan *scan, int attidx)
{
	if (attidx + 1 > scan->maxattno)
		scan->maxattno = attidx + 1;
}

static FetchKind
fetch_kind_for(Oid typid, CmpClass *cls)
{
	switch (typid)
	{
		case BOOLOID:
			*cls = CC_INT;
			return FK_BOOL;
		case INT2OID:
			*cls = CC_INT;
			return FK_INT2;
		case INT4OID:
		case DATEOID:
			*cls = CC_INT;
			return FK_INT4;
		case INT8OID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			*cls = CC_INT;
			return FK_INT8;
		case FLOAT4OID:
			*cls = CC_FLOAT;
			return FK_FLOAT4;
		case FLOAT8OID:
			*cls = CC_FLOAT;
			return FK_FLOAT8;
		case NUMERICOID:
			*cls = CC_NUMERIC;
			return FK_DATUM;
		case TEXTOID:
			*cls = CC_TEXT_ORD;
			return FK_DATUM;
		default:
			return -1;
	}
}

static int64
fetch_int(FetchKind fk, Datum d)
{
	switch (fk)
	{
		case FK_BOOL:
			return DatumGetBool(d) ? 1 : 0;
		case FK_INT2:
			return DatumGetInt16(d);
		case FK_INT4:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

static void
make_const(CmpConst *c, Const *k, CmpClass cls)
{
	CmpClass	kcls;
	FetchKind	kf = fetch_kind_for(k->consttype, &kcls);

	c->isnull = k->constisnull;
	if (c->isnull)
		return;
	switch (cls)
	{
		case CC_INT:
			c->i = fetch_int(kf, k->constvalue);
			break;
		case CC_FLOAT:
			c->f = kf == FK_FLOAT4 ? (double) DatumGetFloat4(k->constvalue)
				: DatumGetFloat8(k->constvalue);
			break;
		case CC_NUMERIC:
			c->d = PointerGetDatum(PG_DETOAST_DATUM(k->constvalue));
			break;
		case CC_TEXT_EQ:
		case CC_TEXT_ORD:
			{
				text	   *t = DatumGetTextPP(k->constvalue);

				c->s = VARDATA_ANY(t);
				c->slen = VARSIZE_ANY_EXHDR(t);
			}
			break;
	}
}

static Node *
strip_relabel(Node *n)
{
	while (n && IsA(n, RelabelType))
		n = (Node *) ((RelabelType *) n)->arg;
	return n;
}

static int
commute_strategy(int s)
{
	switch (s)
	{
		case BTLessStrategyNumber:
			return BTGreaterStrategyNumber;
		case BTLessEqualStrategyNumber:
			return BTGreaterEqualStrategyNumber;
		case BTGreaterEqualStrategyNumber:
			return BTLessEqualStrategyNumber;
		case BTGreaterStrategyNumber:
			return BTLessStrategyNumber;
		default:
			return s;
	}
}

/*
 * Is `opno` applied to (column of type coltype, constant of type consttype)
 * one we evaluate natively? Sets class, fetch kind and strategy.
 */
static bool
native_comparison(Oid opno, Oid coltype, Oid consttype, Oid collid,
				  CmpClass *cls, FetchKind *fk, int *strategy)
{
	List	   *interps = get_op_btree_interpretation(opno);
	ListCell   *lc;
	CmpClass	colcls,
				constcls;
	FetchKind	colfk = fetch_kind_for(coltype, &colcls);

	if ((int) colfk < 0 || (int) fetch_kind_for(consttype, &constcls) < 0 ||
		colcls != constcls)
		return false;

	foreach(lc, interps)
	{
		OpBtreeInterpretation *oi = lfirst(lc);
		bool		ok;

		switch (oi->opfamily_id)
		{
			case FAM_INTEGER:
				ok = (coltype == INT2OID || coltype == INT4OID || coltype == INT8OID) &&
					(consttype == INT2OID || consttype == INT4OID || consttype == INT8OID);
				break;
			case FAM_DATETIME:
				/* cross-type date/timestamp comparisons convert; leave them */
				ok = coltype == consttype &&
					(coltype == DATEOID || coltype == TIMESTAMPOID || coltype == TIMESTAMPTZOID);
				break;
			case FAM_BOOL:
				ok = coltype == BOOLOID && consttype == BOOLOID;
				break;
			case FAM_FLOAT:
			case FAM_NUMERIC:
				ok = true;		/* class match checked above */
				break;
			case FAM_TEXT:
				ok = coltype == TEXTOID && consttype == TEXTOID && OidIsValid(collid);
				if (ok && (oi->strategy == BTEqualStrategyNumber || oi->strategy == STRAT_NE) &&
					get_collation_isdeterministic(collid))
					colcls = CC_TEXT_EQ;
				else if (ok && (oi->strategy == BTEqualStrategyNumber || oi->strategy == STRAT_NE))
					ok = false;	/* nondeterministic equality: leave to PostgreSQL */
				break;
			default:
				ok = false;
		}
		if (ok)
		{
			*cls = colcls;
			*fk = colfk;
			*strategy = oi->strategy;
			return true;
		}
	}
	return false;
}

static RuleNode *
new_node(RuleNodeKind kind)
{
	RuleNode   *n = palloc0(sizeof(RuleNode));

	n->kind = kind;
	return n;
}

static RuleNode *compile_node(RuleProgram *prog, Expr *expr);

static RuleNode *
compile_fallback(RuleProgram *prog, Expr *expr)
{
	RuleNode   *n = new_node(RN_EXPR);

	n->state = ExecInitExpr(expr, NULL);
	prog->native = false;
	prog->scan->fallback_nodes++;
	/* the executor deforms what it needs; make sure we deform at least that */
	{
		Bitmapset  *attnos = NULL;
		int			a = -1;

		pull_varattnos((Node *) expr, 1, &attnos);
		while ((a = bms_next_member(attnos, a)) >= 0)
			note_column(prog->scan, a + FirstLowInvalidHeapAttributeNumber - 1);
	}
	return n;
}

/* column op const, const op column */
static RuleNode *
compile_opexpr(RuleProgram *prog, OpExpr *op)
{
	Node	   *l,
			   *r;
	Var		   *var;
	Const	   *k;
	bool		var_left;
	RuleNode   *n;
	CmpClass	cls;
	FetchKind	fk;
	int			strategy;

	if (list_length(op->args) != 2)
		return NULL;
	l = strip_relabel(linitial(op->args));
	r = strip_relabel(lsecond(op->args));
	if (IsA(l, Var) && IsA(r, Const))
	{
		var = (Var *) l;
		k = (Const *) r;
		var_left = true;
	}
	else if (IsA(l, Const) && IsA(r, Var))
	{
		var = (Var *) r;
		k = (Const *) l;
		var_left = false;
	}
	else
		return NULL;
	if (var->varattno <= 0)
		return NULL;
	if (!native_comparison(op->opno, var_left ? var->vartype : var->vartype,
						   k->consttype, op->inputcollid, &cls, &fk, &strategy))
		return NULL;
	n = new_node(RN_CMP);
	n->cmpclass = cls;
	n->fetch = fk;
	n->strategy = var_left ? strategy : commute_strategy(strategy);
	n->attidx = var->varattno - 1;
	n->collid = op->inputcollid;
	make_const(&n->c, k, cls);
	note_column(prog->scan, n->attidx);
	if (cls == CC_NUMERIC || cls == CC_TEXT_EQ || cls == CC_TEXT_ORD)
		scan_prepare_column(prog->scan, n->attidx, cls != CC_NUMERIC);
	return n;
}

/* column op ANY/ALL (constant array) */
static RuleNode *
compile_saop(RuleProgram *prog, ScalarArrayOpExpr *saop)
{
	Node	   *l,
			   *r;
	Var		   *var;
	Const	   *k;
	ArrayType  *arr;
	Oid			elemtype;
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
	Datum	   *values;
	bool	   *nulls;
	int			nvalues;
	RuleNode   *n;
	CmpClass	cls;
	FetchKind	fk;
	int			strategy;
	int			i;

	if (list_length(saop->args) != 2)
		return NULL;
	l = strip_relabel(linitial(saop->args));
	r = lsecond(saop->args);
	if (!IsA(l, Var) || !IsA(r, Const) || ((Var *) l)->varattno <= 0)
		return NULL;
	var = (Var *) l;
	k = (Const *) r;
	if (k->constisnull)
		return NULL;			/* NULL array: rare, leave to PostgreSQL */
	arr = DatumGetArrayTypeP(k->constvalue);
	elemtype = ARR_ELEMTYPE(arr);
	if (!native_comparison(saop->opno, var->vartype, elemtype, saop->inputcollid,
						   &cls, &fk, &strategy))
		return NULL;
	get_typlenbyvalalign(elemtype, &elmlen, &elmbyval, &elmalign);
	deconstruct_array(arr, elemtype, elmlen, elmbyval, elmalign,
					  &values, &nulls, &nvalues);

	n = new_node(RN_IN);
	n->cmpclass = cls;
	n->fetch = fk;
	n->strategy = strategy;
	n->attidx = var->varattno - 1;
	n->collid = saop->inputcollid;
	n->use_or = saop->useOr;
	n->nelems = nvalues;
	n->elems = palloc0(sizeof(CmpConst) * Max(nvalues, 1));
	for (i = 0; i < nvalues; i++)
	{
		Const	   *ek = makeConst(elemtype, -1, saop->inputcollid, elmlen,
								   values[i], nulls[i], elmbyval);

		make_const(&n->elems[i], ek, cls);
	}
	note_column(prog->scan, n->attidx);
	if (cls == CC_NUMERIC || cls == CC_TEXT_EQ || cls == CC_TEXT_ORD)
		scan_prepare_column(prog->scan, n->attidx, cls != CC_NUMERIC);
	return n;
}

static RuleNode *
compile_node(RuleProgram *prog, Expr *expr)
{
	RuleNode   *n = NULL;

	check_stack_depth();

	switch (nodeTag(expr))
	{
		case T_Const:
			{
				Const	   *k = (Const *) expr;

				n = new_node(RN_CONST);
				n->constval = k->constisnull ? RULE_NULL :
					(DatumGetBool(k->constvalue) ? RULE_TRUE : RULE_FALSE);
			}
			break;
		case T_BoolExpr:
			{
				BoolExpr   *b = (BoolExpr *) expr;
				ListCell   *lc;
				int			i = 0;

				n = new_node(b->boolop == AND_EXPR ? RN_AND :
							 b->boolop == OR_EXPR ? RN_OR : RN_NOT);
				n->nargs = list_length(b->args);
				n->args = palloc(sizeof(RuleNode *) * n->nargs);
				foreach(lc, b->args)
					n->args[i++] = compile_node(prog, lfirst(lc));
			}
			break;
		case T_BooleanTest:
			{
				BooleanTest *bt = (BooleanTest *) expr;

				n = new_node(RN_BOOLTEST);
				n->booltest = bt->booltesttype;
				n->nargs = 1;
				n->args = palloc(sizeof(RuleNode *));
				n->args[0] = compile_node(prog, bt->arg);
			}
			break;
		case T_Var:
			{
				Var		   *v = (Var *) expr;

				if (v->vartype == BOOLOID && v->varattno > 0)
				{
					n = new_node(RN_BOOLVAR);
					n->attidx = v->varattno - 1;
					note_column(prog->scan, n->attidx);
				}
			}
			break;
		case T_NullTest:
			{
				NullTest   *nt = (NullTest *) expr;
				Node	   *arg = strip_relabel((Node *) nt->arg);

				if (!nt->argisrow && IsA(arg, Var) && ((Var *) arg)->varattno > 0)
				{
					n = new_node(RN_NULLTEST);
					n->attidx = ((Var *) arg)->varattno - 1;
					n->isnull_test = nt->nulltesttype == IS_NULL;
					note_column(prog->scan, n->attidx);
				}
			}
			break;
		case T_OpExpr:
			n = compile_opexpr(prog, (OpExpr *) expr);
			break;
		case T_ScalarArrayOpExpr:
			n = compile_saop(prog, (ScalarArrayOpExpr *) expr);
			break;
		default:
			break;
	}
	if (n == NULL)
		return compile_fallback(prog, expr);
	if (n->kind != RN_EXPR)
		prog->scan->native_nodes++;
	return n;
}

RuleProgram *
rule_compile(RuleScan *scan, Expr *planned)
{
	RuleProgram *prog = palloc0(sizeof(RuleProgram));

	prog->scan = scan;
	prog->native = true;
	prog->root = compile_node(prog, planned);
	return prog;
}

bool
rule_program_is_native(RuleProgram *prog)
{
	return prog->native;
}

/*
 * Once per row: deform the columns the rules read, and give numeric and text
 * columns that native comparisons use a form they can read without a copy
 * per comparison (PostgreSQL's own operators detoast per call).
 */
void
rule_scan_prepare_row(RuleScan *scan, TupleTableSlot *slot)
{
	int			i;

	ResetExprContext(scan->econtext);
	slot_getsomeattrs(slot, scan->maxattno);
	for (i = 0; i < scan->nprep; i++)
	{
		int			a = scan->prep_attnos[i];
		struct varlena *v;

		if (slot->tts_isnull[a])
			continue;
		v = (struct varlena *) DatumGetPointer(slot->tts_values[a]);
		if (scan->prep_is_text[i])
		{
			/* short headers are readable as is; only compressed/external need work */
			if (VARATT_IS_EXTENDED(v) && !VARATT_IS_SHORT(v))
			{
				MemoryContext old = MemoryContextSwitchTo(scan->econtext->ecxt_per_tuple_memory);

				slot->tts_values[a] = PointerGetDatum(pg_detoast_datum_packed(v));
				MemoryContextSwitchTo(old);
			}
		}
		else if (VARATT_IS_SHORT(v))
		{
			/* numeric_cmp wants a 4-byte header: copy into our buffer, not palloc */
			Size		len = VARSIZE_SHORT(v) - VARHDRSZ_SHORT;

			if (len + VARHDRSZ > (Size) scan->prep_buflens[i])
			{
				scan->prep_bufs[i] = repalloc(scan->prep_bufs[i], len + VARHDRSZ);
				scan->prep_buflens[i] = len + VARHDRSZ;
			}
			SET_VARSIZE(scan->prep_bufs[i], len + VARHDRSZ);
			memcpy(VARDATA(scan->prep_bufs[i]), VARDATA_SHORT(v), len);
			slot->tts_values[a] = PointerGetDatum(scan->prep_bufs[i]);
		}
		else if (VARATT_IS_EXTENDED(v))
		{
			MemoryContext old = MemoryContextSwitchTo(scan->econtext->ecxt_per_tuple_memory);

			slot->tts_values[a] = PointerGetDatum(pg_detoast_datum(v));
			MemoryContextSwitchTo(old);
		}
	}
}

static inline int
float_order(double a, double b)
{
	/* PostgreSQL orders NaN above everything and equal to itself */
	if (unlikely(isnan(a)))
		return isnan(b) ? 0 : 1;
	if (unlikely(isnan(b)))
		return -1;
	return (a > b) - (a < b);
}

static inline bool
strategy_holds(int strategy, int cmp)
{
	switch (strategy)
	{
		case BTLessStrategyNumber:
			return cmp < 0;
		case BTLessEqualStrategyNumber:
			return cmp <= 0;
		case BTEqualStrategyNumber:
			return cmp == 0;
		case BTGreaterEqualStrategyNumber:
			return cmp >= 0;
		case BTGreaterStrategyNumber:
			return cmp > 0;
		default:
			return cmp != 0;
	}
}

/* Three-way comparison of a non-null column value with a non-null constant. */
static inline int
compare_value(RuleNode *n, Datum d, const CmpConst *c)
{
	switch (n->cmpclass)
	{
		case CC_INT:
			{
				int64		v = fetch_int(n->fetch, d);

				return (v > c->i) - (v < c->i);
			}
		case CC_FLOAT:
			return float_order(n->fetch == FK_FLOAT4 ? (double) DatumGetFloat4(d)
							   : DatumGetFloat8(d), c->f);
		case CC_NUMERIC:
			return DatumGetInt32(DirectFunctionCall2(numeric_cmp, d, c->d));
		case CC_TEXT_EQ:
			{
				struct varlena *t = (struct varlena *) DatumGetPointer(d);
				int			len = VARSIZE_ANY_EXHDR(t);

				/* only equal / not equal are asked of this class */
				return (len == c->slen && memcmp(VARDATA_ANY(t), c->s, len) == 0) ? 0 : 1;
			}
		case CC_TEXT_ORD:
			{
				struct varlena *t = (struct varlena *) DatumGetPointer(d);

				return varstr_cmp(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
								  c->s, c->slen, n->collid);
			}
	}
	pg_unreachable();
}

static RuleValue eval_node(RuleNode *n, TupleTableSlot *slot, ExprContext *econtext);

static RuleValue
eval_in(RuleNode *n, TupleTableSlot *slot)
{
	Datum		d;
	bool		saw_null = false;
	int			i;

	if (n->nelems == 0)
		return n->use_or ? RULE_FALSE : RULE_TRUE;
	if (slot->tts_isnull[n->attidx])
		return RULE_NULL;
	d = slot->tts_values[n->attidx];
	for (i = 0; i < n->nelems; i++)
	{
		bool		holds;

		if (n->elems[i].isnull)
		{
			saw_null = true;
			continue;
		}
		holds = strategy_holds(n->strategy, compare_value(n, d, &n->elems[i]));
		if (n->use_or && holds)
			return RULE_TRUE;
		if (!n->use_or && !holds)
			return RULE_FALSE;
	}
	if (saw_null)
		return RULE_NULL;
	return n->use_or ? RULE_FALSE : RULE_TRUE;
}

static RuleValue
eval_node(RuleNode *n, TupleTableSlot *slot, ExprContext *econtext)
{
	switch (n->kind)
	{
		case RN_CMP:
			if (slot->tts_isnull[n->attidx] || n->c.isnull)
				return RULE_NULL;
			return strategy_holds(n->strategy,
								  compare_value(n, slot->tts_values[n->attidx], &n->c))
				? RULE_TRUE : RULE_FALSE;
		case RN_BOOLVAR:
			if (slot->tts_isnull[n->attidx])
				return RULE_NULL;
			return DatumGetBool(slot->tts_values[n->attidx]) ? RULE_TRUE : RULE_FALSE;
		case RN_NULLTEST:
			return (slot->tts_isnull[n->attidx] == n->isnull_test) ? RULE_TRUE : RULE_FALSE;
		case RN_AND:
			{
				bool		saw_null = false;
				int			i;

				for (i = 0; i < n->nargs; i++)
				{
					RuleValue	v = eval_node(n->args[i], slot, econtext);

					if (v == RULE_FALSE)
						return RULE_FALSE;
					if (v == RULE_NULL)
						saw_null = true;
				}
				return saw_null ? RULE_NULL : RULE_TRUE;
			}
		case RN_OR:
			{
				bool		saw_null = false;
				int			i;

				for (i = 0; i < n->nargs; i++)
				{
					RuleValue	v = eval_node(n->args[i], slot, econtext);

					if (v == RULE_TRUE)
						return RULE_TRUE;
					if (v == RULE_NULL)
						saw_null = true;
				}
				return saw_null ? RULE_NULL : RULE_FALSE;
			}
		case RN_NOT:
			{
				RuleValue	v = eval_node(n->args[0], slot, econtext);

				return v == RULE_NULL ? RULE_NULL : (v == RULE_TRUE ? RULE_FALSE : RULE_TRUE);
			}
		case RN_BOOLTEST:
			{
				RuleValue	v = eval_node(n->args[0], slot, econtext);
				bool		r;

				switch (n->booltest)
				{
					case IS_TRUE:
						r = v == RULE_TRUE;
						break;
					case IS_NOT_TRUE:
						r = v != RULE_TRUE;
						break;
					case IS_FALSE:
						r = v == RULE_FALSE;
						break;
					case IS_NOT_FALSE:
						r = v != RULE_FALSE;
						break;
					case IS_UNKNOWN:
						r = v == RULE_NULL;
						break;
					default:
						r = v != RULE_NULL;
						break;
				}
				return r ? RULE_TRUE : RULE_FALSE;
			}
		case RN_IN:
			return eval_in(n, slot);
		case RN_CONST:
			return n->constval;
		case RN_EXPR:
			{
				bool		isnull;
				Datum		d;

				econtext->ecxt_scantuple = slot;
				d = ExecEvalExprSwitchContext(n->state, econtext, &isnull);
				if (isnull)
					return RULE_NULL;
				return DatumGetBool(d) ? RULE_TRUE : RULE_FALSE;
			}
	}
	pg_unreachable();
}

RuleValue
rule_eval(RuleProgram *prog, TupleTableSlot *slot)
{
	return eval_node(prog->root, slot, prog->scan->econtext);
}
