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

#define RULE_ARENA_SIZE (64 * 1024)

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

typedef struct RuleNode RuleNode;

struct RuleNode
{
	RuleNodeKind kind;
	RuleValue	constval;		/* RN_CONST */
	int			strategy;		/* RN_CMP / RN_IN: btree strategy or STRAT_NE */
	CmpClass	cmpclass;
	FetchKind	fetch;
	int			col;			/* index into the scan's column stores */
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
	int			nreads;			/* RN_EXPR: columns it reads (store indexes) */
	int		   *reads;
};

struct RuleProgram
{
	RuleScan   *scan;
	RuleNode   *root;
};

/*
 * The values of one column over the batch. d holds the datum as read (or a
 * detoasted / 4-byte-header copy); i or f the value converted once for
 * native fixed-width comparisons.
 */
typedef struct ColumnStore
{
	int			attidx;
	Oid			typid;
	int16		typlen;
	bool		numeric_native;	/* give numerics a 4-byte header */
	bool		varlena_native; /* detoast compressed / external values */
	FetchKind	fetch;			/* conversion to i / f, or FK_DATUM for none */
	RuleMask	nulls;
	Datum		d[RULE_BATCH_ROWS];
	int64	   *i;
	double	   *f;
} ColumnStore;

struct RuleScan
{
	Relation	rel;
	ExprContext *econtext;		/* per-batch memory, fallback evaluation */
	TupleTableSlot *vslot;		/* virtual slot for fallback leaves */
	AttrNumber	maxattno;
	int			ncols;
	int			maxcols;
	ColumnStore **cols;
	int		   *colmap;			/* attidx -> store index, -1 if none */
	int			nrows;
	char	   *arena;			/* copies of by-reference values of the batch */
	Size		arena_used;
	Size		arena_size;
	char	   *arena_base;		/* the long-lived first chunk */
	int			native_nodes;
	int			fallback_nodes;
};

RuleScan *
rule_scan_create(Relation rel, ExprContext *econtext)
{
	RuleScan   *scan = palloc0(sizeof(RuleScan));
	int			natts = RelationGetDescr(rel)->natts;
	int			i;

	scan->rel = rel;
	scan->econtext = econtext;
	scan->colmap = palloc(sizeof(int) * natts);
	for (i = 0; i < natts; i++)
		scan->colmap[i] = -1;
	scan->maxcols = 8;
	scan->cols = palloc(sizeof(ColumnStore *) * scan->maxcols);
	return scan;
}

/* The store of column attidx, created on first use. */
static int
column_store(RuleScan *scan, int attidx)
{
	ColumnStore *cs;
	Form_pg_attribute att;

	if (scan->colmap[attidx] >= 0)
		return scan->colmap[attidx];
	if (scan->ncols == scan->maxcols)
	{
		scan->maxcols *= 2;
		scan->cols = repalloc(scan->cols, sizeof(ColumnStore *) * scan->maxcols);
	}
	att = TupleDescAttr(RelationGetDescr(scan->rel), attidx);
	cs = palloc0(sizeof(ColumnStore));
	cs->attidx = attidx;
	cs->typid = att->atttypid;
	cs->typlen = att->attlen;
	cs->fetch = FK_DATUM;
	scan->cols[scan->ncols] = cs;
	scan->colmap[attidx] = scan->ncols;
	if (attidx + 1 > scan->maxattno)
		scan->maxattno = attidx + 1;
	return scan->ncols++;
}

/* A store that also converts to i / f for native comparisons. */
static int
column_store_native(RuleScan *scan, int attidx, CmpClass cls, FetchKind fk)
{
	int			c = column_store(scan, attidx);
	ColumnStore *cs = scan->cols[c];

	switch (cls)
	{
		case CC_INT:
			if (cs->i == NULL)
				cs->i = palloc(sizeof(int64) * RULE_BATCH_ROWS);
			cs->fetch = fk;
			break;
		case CC_FLOAT:
			if (cs->f == NULL)
				cs->f = palloc(sizeof(double) * RULE_BATCH_ROWS);
			cs->fetch = fk;
			break;
		case CC_NUMERIC:
			cs->numeric_native = true;
			break;
		case CC_TEXT_EQ:
		case CC_TEXT_ORD:
			cs->varlena_native = true;
			break;
	}
	return c;
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
	Bitmapset  *attnos = NULL;
	int			a = -1;

	n->state = ExecInitExpr(expr, NULL);
	prog->scan->fallback_nodes++;
	/* the leaf reads these columns from the batch through a virtual slot */
	pull_varattnos((Node *) expr, 1, &attnos);
	n->reads = palloc(sizeof(int) * Max(bms_num_members(attnos), 1));
	while ((a = bms_next_member(attnos, a)) >= 0)
	{
		int			attidx = a + FirstLowInvalidHeapAttributeNumber - 1;

		if (attidx >= 0)
			n->reads[n->nreads++] = column_store(prog->scan, attidx);
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
	n->col = column_store_native(prog->scan, var->varattno - 1, cls, fk);
	n->collid = op->inputcollid;
	make_const(&n->c, k, cls);
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
	n->col = column_store_native(prog->scan, var->varattno - 1, cls, fk);
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
					n->col = column_store_native(prog->scan, v->varattno - 1, CC_INT, FK_BOOL);
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
					n->col = column_store(prog->scan, ((Var *) arg)->varattno - 1);
					n->isnull_test = nt->nulltesttype == IS_NULL;
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
	prog->root = compile_node(prog, planned);
	return prog;
}


void
rule_scan_stats(RuleScan *scan, int *native_nodes, int *fallback_nodes)
{
	*native_nodes = scan->native_nodes;
	*fallback_nodes = scan->fallback_nodes;
}

void
rule_scan_begin(RuleScan *scan, AttrNumber also_attno)
{
	if (also_attno > scan->maxattno)
		scan->maxattno = also_attno;
	scan->vslot = MakeSingleTupleTableSlot(RelationGetDescr(scan->rel), &TTSOpsVirtual);
	scan->nrows = 0;
	scan->arena_size = RULE_ARENA_SIZE;
	scan->arena_base = scan->arena = palloc(scan->arena_size);
	scan->arena_used = 0;
}

void
rule_scan_end(RuleScan *scan)
{
	ExecDropSingleTupleTableSlot(scan->vslot);
	scan->vslot = NULL;
}

int
rule_scan_nrows(RuleScan *scan)
{
	return scan->nrows;
}

void
rule_scan_reset_batch(RuleScan *scan)
{
	int			c;

	scan->nrows = 0;
	/* overflow chunks live in batch memory, which is reset just below */
	scan->arena = scan->arena_base;
	scan->arena_size = RULE_ARENA_SIZE;
	scan->arena_used = 0;
	for (c = 0; c < scan->ncols; c++)
		memset(&scan->cols[c]->nulls, 0, sizeof(RuleMask));
	ResetExprContext(scan->econtext);
}

/*
 * Room for a by-reference value of the batch. Values are copied so that a
 * batch can span heap pages (the scan only pins the current one). Arena
 * chunks that fill up are kept until the batch ends.
 */
static char *
arena_alloc(RuleScan *scan, Size len)
{
	char	   *p;

	len = MAXALIGN(len);
	if (scan->arena_used + len > scan->arena_size)
	{
		/* the filled arena stays alive in batch memory until the batch ends */
		Size		newsize = Max(scan->arena_size, len);
		MemoryContext old = MemoryContextSwitchTo(scan->econtext->ecxt_per_tuple_memory);

		scan->arena = palloc(newsize);
		MemoryContextSwitchTo(old);
		scan->arena_size = newsize;
		scan->arena_used = 0;
	}
	p = scan->arena + scan->arena_used;
	scan->arena_used += len;
	return p;
}

/*
 * Copy the row's values into the column stores. Numerics that native
 * comparisons read get a 4-byte header here, once (PostgreSQL's operators
 * would convert them on every comparison); compressed or external values are
 * detoasted once.
 */
void
rule_scan_add_row(RuleScan *scan, TupleTableSlot *slot)
{
	int			r = scan->nrows;
	uint64		bit = UINT64CONST(1) << (r & 63);
	int			c;

	Assert(r < RULE_BATCH_ROWS);
	slot_getsomeattrs(slot, scan->maxattno);
	for (c = 0; c < scan->ncols; c++)
	{
		ColumnStore *cs = scan->cols[c];
		Datum		d;

		if (slot->tts_isnull[cs->attidx])
		{
			cs->nulls.w[r >> 6] |= bit;
			continue;
		}
		d = slot->tts_values[cs->attidx];
		if (cs->typlen == -1)
		{
			struct varlena *v = (struct varlena *) DatumGetPointer(d);

			if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
			{
				MemoryContext old = MemoryContextSwitchTo(scan->econtext->ecxt_per_tuple_memory);

				/* a fresh copy in batch memory: nothing more to do */
				d = PointerGetDatum(pg_detoast_datum(v));
				MemoryContextSwitchTo(old);
			}
			else if (VARATT_IS_SHORT(v) && cs->numeric_native)
			{
				Size		len = VARSIZE_SHORT(v) - VARHDRSZ_SHORT;
				char	   *copy = arena_alloc(scan, len + VARHDRSZ);

				SET_VARSIZE(copy, len + VARHDRSZ);
				memcpy(copy + VARHDRSZ, VARDATA_SHORT(v), len);
				d = PointerGetDatum(copy);
			}
			else
			{
				Size		len = VARSIZE_ANY(v);
				char	   *copy = arena_alloc(scan, len);

				memcpy(copy, v, len);
				d = PointerGetDatum(copy);
			}
		}
		else if (cs->typlen > (int) sizeof(Datum) || cs->typlen == -2)
		{
			Size		len = cs->typlen > 0 ? cs->typlen : strlen(DatumGetCString(d)) + 1;
			char	   *copy = arena_alloc(scan, len);

			memcpy(copy, DatumGetPointer(d), len);
			d = PointerGetDatum(copy);
		}
		cs->d[r] = d;
		switch (cs->fetch)
		{
			case FK_DATUM:
				break;
			case FK_FLOAT4:
				cs->f[r] = DatumGetFloat4(d);
				break;
			case FK_FLOAT8:
				cs->f[r] = DatumGetFloat8(d);
				break;
			default:
				cs->i[r] = fetch_int(cs->fetch, d);
				break;
		}
	}
	scan->nrows++;
}

/* ---------- batch evaluation: TRUE and FALSE masks, NULL is neither ---------- */

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

/* Three-way comparison of a non-null stored value with a non-null constant. */
static inline int
compare_value(RuleNode *n, ColumnStore *cs, int r, const CmpConst *c)
{
	switch (n->cmpclass)
	{
		case CC_INT:
			return (cs->i[r] > c->i) - (cs->i[r] < c->i);
		case CC_FLOAT:
			return float_order(cs->f[r], c->f);
		case CC_NUMERIC:
			{
				/* add_row gave the value a 4-byte header: numeric_cmp copies nothing */
				return DatumGetInt32(DirectFunctionCall2(numeric_cmp, cs->d[r], c->d));
			}
		case CC_TEXT_EQ:
			{
				struct varlena *t = (struct varlena *) DatumGetPointer(cs->d[r]);
				int			len = VARSIZE_ANY_EXHDR(t);

				/* only equal / not equal are asked of this class */
				return (len == c->slen && memcmp(VARDATA_ANY(t), c->s, len) == 0) ? 0 : 1;
			}
		case CC_TEXT_ORD:
			{
				struct varlena *t = (struct varlena *) DatumGetPointer(cs->d[r]);

				return varstr_cmp(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
								  c->s, c->slen, n->collid);
			}
	}
	pg_unreachable();
}

#define FOREACH_ROW_BIT(mask, nwords, r) \
	for (int _w = 0; _w < (nwords); _w++) \
		for (uint64 _m = (mask)->w[_w]; _m != 0; _m &= _m - 1) \
			if (((r) = _w * 64 + pg_rightmost_one_pos64(_m)), true)

/*
 * Fixed-width comparison of a whole batch with one constant: a branch-free
 * loop per strategy that the compiler turns into straight-line code.
 */
#define CMP_LOOP(VALS, OP, CONST) \
	for (w = 0; w < nwords; w++) \
	{ \
		uint64		bits = 0; \
		int			base = w * 64; \
		int			lim = Min(64, nrows - base); \
		for (j = 0; j < lim; j++) \
			bits |= (uint64) ((VALS)[base + j] OP (CONST)) << j; \
		holds.w[w] = bits; \
	}

static void
cmp_fixed_batch(RuleNode *n, ColumnStore *cs, const CmpConst *c, int strategy,
				int nrows, RuleMask *out)
{
	int			nwords = (nrows + 63) / 64;
	int			w,
				j;
	RuleMask	holds;

	memset(&holds, 0, sizeof(holds));
	if (n->cmpclass == CC_INT)
	{
		int64		k = c->i;
		int64	   *v = cs->i;

		switch (strategy)
		{
			case BTLessStrategyNumber:
				CMP_LOOP(v, <, k);
				break;
			case BTLessEqualStrategyNumber:
				CMP_LOOP(v, <=, k);
				break;
			case BTEqualStrategyNumber:
				CMP_LOOP(v, ==, k);
				break;
			case BTGreaterEqualStrategyNumber:
				CMP_LOOP(v, >=, k);
				break;
			case BTGreaterStrategyNumber:
				CMP_LOOP(v, >, k);
				break;
			default:
				CMP_LOOP(v, !=, k);
				break;
		}
	}
	else
	{
		/* floats: NaN sorts above everything, so decide NaN rows separately */
		double		k = c->f;
		double	   *v = cs->f;

		if (isnan(k))
		{
			for (j = 0; j < nrows; j++)
				if (strategy_holds(strategy, float_order(v[j], k)))
					holds.w[j >> 6] |= UINT64CONST(1) << (j & 63);
		}
		else
		{
			switch (strategy)
			{
				case BTLessStrategyNumber:
					CMP_LOOP(v, <, k);
					break;
				case BTLessEqualStrategyNumber:
					CMP_LOOP(v, <=, k);
					break;
				case BTEqualStrategyNumber:
					CMP_LOOP(v, ==, k);
					break;
				case BTGreaterEqualStrategyNumber:
					CMP_LOOP(v, >=, k);
					break;
				case BTGreaterStrategyNumber:
					CMP_LOOP(v, >, k);
					break;
				default:
					CMP_LOOP(v, !=, k);
					break;
			}
			/* IEEE comparisons with NaN are false; PostgreSQL says NaN > k */
			for (j = 0; j < nrows; j++)
				if (unlikely(isnan(v[j])))
				{
					uint64		b = UINT64CONST(1) << (j & 63);

					if (strategy_holds(strategy, 1))
						holds.w[j >> 6] |= b;
					else
						holds.w[j >> 6] &= ~b;
				}
		}
	}
	*out = holds;
}

static void
mask_fill(RuleMask *m, int nrows)
{
	int			w;

	for (w = 0; w < RULE_BATCH_WORDS; w++)
	{
		int			base = w * 64;

		if (nrows >= base + 64)
			m->w[w] = ~UINT64CONST(0);
		else if (nrows > base)
			m->w[w] = (UINT64CONST(1) << (nrows - base)) - 1;
		else
			m->w[w] = 0;
	}
}

static void eval_batch(RuleScan *scan, RuleNode *n, const RuleMask *active,
					   RuleMask *T, RuleMask *F);

/* column op const, or column op ANY/ALL(consts), over the active rows */
static void
eval_cmp_batch(RuleScan *scan, RuleNode *n, const RuleMask *active, RuleMask *T, RuleMask *F)
{
	ColumnStore *cs = scan->cols[n->col];
	int			nrows = scan->nrows;
	int			nwords = (nrows + 63) / 64;
	RuleMask	live;			/* active and not null */
	int			w;

	for (w = 0; w < RULE_BATCH_WORDS; w++)
	{
		live.w[w] = active->w[w] & ~cs->nulls.w[w];
		T->w[w] = F->w[w] = 0;
	}

	if (n->kind == RN_CMP && (n->cmpclass == CC_INT || n->cmpclass == CC_FLOAT))
	{
		RuleMask	holds;

		cmp_fixed_batch(n, cs, &n->c, n->strategy, nrows, &holds);
		for (w = 0; w < RULE_BATCH_WORDS; w++)
		{
			T->w[w] = holds.w[w] & live.w[w];
			F->w[w] = ~holds.w[w] & live.w[w];
		}
		return;
	}
	if (n->kind == RN_CMP)
	{
		int			r;

		FOREACH_ROW_BIT(&live, nwords, r)
		{
			uint64		b = UINT64CONST(1) << (r & 63);

			if (strategy_holds(n->strategy, compare_value(n, cs, r, &n->c)))
				T->w[r >> 6] |= b;
			else
				F->w[r >> 6] |= b;
		}
		return;
	}

	/* RN_IN: ANY is an OR over elements, ALL an AND; a NULL element is unknown */
	if (n->nelems == 0)
	{
		/* PostgreSQL answers an empty list without looking at the value */
		if (n->use_or)
			*F = *active;
		else
			*T = *active;
		return;
	}
	{
		bool		saw_null_elem = false;
		int			e;
		RuleMask	acc;		/* ANY: some element holds; ALL: some element fails */

		memset(&acc, 0, sizeof(acc));
		for (e = 0; e < n->nelems; e++)
		{
			if (n->elems[e].isnull)
			{
				saw_null_elem = true;
				continue;
			}
			if (n->cmpclass == CC_INT || n->cmpclass == CC_FLOAT)
			{
				RuleMask	holds;

				cmp_fixed_batch(n, cs, &n->elems[e], n->strategy, nrows, &holds);
				for (w = 0; w < RULE_BATCH_WORDS; w++)
					acc.w[w] |= (n->use_or ? holds.w[w] : ~holds.w[w]) & live.w[w];
			}
			else
			{
				RuleMask	todo;
				int			r;

				for (w = 0; w < RULE_BATCH_WORDS; w++)
					todo.w[w] = live.w[w] & ~acc.w[w];
				FOREACH_ROW_BIT(&todo, nwords, r)
				{
					bool		h = strategy_holds(n->strategy,
												   compare_value(n, cs, r, &n->elems[e]));

					if (h == n->use_or)
						acc.w[r >> 6] |= UINT64CONST(1) << (r & 63);
				}
			}
		}
		for (w = 0; w < RULE_BATCH_WORDS; w++)
		{
			uint64		decided = acc.w[w];
			uint64		rest = live.w[w] & ~decided;

			if (n->use_or)
			{
				T->w[w] = decided;
				F->w[w] = saw_null_elem ? 0 : rest;
			}
			else
			{
				F->w[w] = decided;
				T->w[w] = saw_null_elem ? 0 : rest;
			}
		}
	}
}

/* A leaf PostgreSQL evaluates: one row at a time through a virtual slot. */
static void
eval_expr_batch(RuleScan *scan, RuleNode *n, const RuleMask *active, RuleMask *T, RuleMask *F)
{
	ExprContext *econtext = scan->econtext;
	TupleTableSlot *vslot = scan->vslot;
	int			nwords = (scan->nrows + 63) / 64;
	int			r;

	memset(T, 0, sizeof(RuleMask));
	memset(F, 0, sizeof(RuleMask));
	econtext->ecxt_scantuple = vslot;
	FOREACH_ROW_BIT(active, nwords, r)
	{
		uint64		b = UINT64CONST(1) << (r & 63);
		bool		isnull;
		Datum		d;
		int			k;

		ExecClearTuple(vslot);
		for (k = 0; k < n->nreads; k++)
		{
			ColumnStore *cs = scan->cols[n->reads[k]];

			vslot->tts_isnull[cs->attidx] = (cs->nulls.w[r >> 6] & b) != 0;
			vslot->tts_values[cs->attidx] = cs->d[r];
		}
		ExecStoreVirtualTuple(vslot);
		d = ExecEvalExprSwitchContext(n->state, econtext, &isnull);
		if (!isnull)
		{
			if (DatumGetBool(d))
				T->w[r >> 6] |= b;
			else
				F->w[r >> 6] |= b;
		}
	}
}

static void
eval_batch(RuleScan *scan, RuleNode *n, const RuleMask *active, RuleMask *T, RuleMask *F)
{
	int			w;

	switch (n->kind)
	{
		case RN_CMP:
		case RN_IN:
			eval_cmp_batch(scan, n, active, T, F);
			return;
		case RN_EXPR:
			eval_expr_batch(scan, n, active, T, F);
			return;
		case RN_CONST:
			memset(T, 0, sizeof(RuleMask));
			memset(F, 0, sizeof(RuleMask));
			if (n->constval == RULE_TRUE)
				*T = *active;
			else if (n->constval == RULE_FALSE)
				*F = *active;
			return;
		case RN_BOOLVAR:
			{
				ColumnStore *cs = scan->cols[n->col];
				RuleMask	holds;
				CmpConst	one;

				one.i = 1;
				cmp_fixed_batch(n, cs, &one, BTEqualStrategyNumber, scan->nrows, &holds);
				for (w = 0; w < RULE_BATCH_WORDS; w++)
				{
					uint64		live = active->w[w] & ~cs->nulls.w[w];

					T->w[w] = holds.w[w] & live;
					F->w[w] = ~holds.w[w] & live;
				}
			}
			return;
		case RN_NULLTEST:
			{
				ColumnStore *cs = scan->cols[n->col];

				for (w = 0; w < RULE_BATCH_WORDS; w++)
				{
					uint64		isnull = cs->nulls.w[w];

					T->w[w] = (n->isnull_test ? isnull : ~isnull) & active->w[w];
					F->w[w] = (n->isnull_test ? ~isnull : isnull) & active->w[w];
				}
			}
			return;
		case RN_AND:
			{
				RuleMask	accT = *active;
				RuleMask	accF;
				int			i;

				/* later arguments only for rows not already false */
				memset(&accF, 0, sizeof(accF));
				for (i = 0; i < n->nargs; i++)
				{
					RuleMask	act,
								cT,
								cF;
					bool		any = false;

					for (w = 0; w < RULE_BATCH_WORDS; w++)
					{
						act.w[w] = active->w[w] & ~accF.w[w];
						any |= act.w[w] != 0;
					}
					if (!any)
						break;
					eval_batch(scan, n->args[i], &act, &cT, &cF);
					for (w = 0; w < RULE_BATCH_WORDS; w++)
					{
						accF.w[w] |= cF.w[w] & act.w[w];
						accT.w[w] &= cT.w[w] | ~act.w[w];
					}
				}
				for (w = 0; w < RULE_BATCH_WORDS; w++)
				{
					T->w[w] = accT.w[w] & ~accF.w[w] & active->w[w];
					F->w[w] = accF.w[w];
				}
			}
			return;
		case RN_OR:
			{
				RuleMask	accF = *active;
				RuleMask	accT;
				int			i;

				memset(&accT, 0, sizeof(accT));
				for (i = 0; i < n->nargs; i++)
				{
					RuleMask	act,
								cT,
								cF;
					bool		any = false;

					for (w = 0; w < RULE_BATCH_WORDS; w++)
					{
						act.w[w] = active->w[w] & ~accT.w[w];
						any |= act.w[w] != 0;
					}
					if (!any)
						break;
					eval_batch(scan, n->args[i], &act, &cT, &cF);
					for (w = 0; w < RULE_BATCH_WORDS; w++)
					{
						accT.w[w] |= cT.w[w] & act.w[w];
						accF.w[w] &= cF.w[w] | ~act.w[w];
					}
				}
				for (w = 0; w < RULE_BATCH_WORDS; w++)
				{
					F->w[w] = accF.w[w] & ~accT.w[w] & active->w[w];
					T->w[w] = accT.w[w];
				}
			}
			return;
		case RN_NOT:
			eval_batch(scan, n->args[0], active, F, T);
			return;
		case RN_BOOLTEST:
			{
				RuleMask	cT,
							cF;

				eval_batch(scan, n->args[0], active, &cT, &cF);
				for (w = 0; w < RULE_BATCH_WORDS; w++)
				{
					uint64		a = active->w[w];
					uint64		unk = a & ~cT.w[w] & ~cF.w[w];
					uint64		yes;

					switch (n->booltest)
					{
						case IS_TRUE:
							yes = cT.w[w];
							break;
						case IS_NOT_TRUE:
							yes = a & ~cT.w[w];
							break;
						case IS_FALSE:
							yes = cF.w[w];
							break;
						case IS_NOT_FALSE:
							yes = a & ~cF.w[w];
							break;
						case IS_UNKNOWN:
							yes = unk;
							break;
						default:
							yes = a & ~unk;
							break;
					}
					T->w[w] = yes & a;
					F->w[w] = ~yes & a;
				}
			}
			return;
	}
	pg_unreachable();
}

void
rule_eval_batch(RuleProgram *prog, RuleMask *result)
{
	RuleMask	all,
				F;

	mask_fill(&all, prog->scan->nrows);
	eval_batch(prog->scan, prog->root, &all, result, &F);
}
