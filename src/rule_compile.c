/*
 * rule_compile.c
 *     Turn a planned rule into a program of nodes that rule_batch.c runs
 *     natively over a batch of rows, for the shapes tag libraries are made of.
 *
 * Native: AND / OR / NOT with three-valued logic; IS [NOT] TRUE / FALSE /
 * UNKNOWN; boolean CASE; a boolean column; column IS [NOT] NULL; a value
 * compared with a constant or with an IN / NOT IN list, where the operator is
 * the btree comparison of the integer, date/time, float, numeric, boolean or
 * text family; two integer, date/time (same type), float or numeric values
 * compared with each other; text LIKE 'prefix%'. A "value" is a column or
 * integer/date arithmetic over columns and constants (date - date, date +/-
 * days, + - * on int4/int8, coalesce(value, constant)), computed per batch
 * with PostgreSQL's overflow and infinity errors, or numeric + - * over
 * numeric columns and exact constants (rule_numeric.c).
 *
 * Comparisons are decided by the operator's btree strategy, so they mean what
 * PostgreSQL's operator means: NaN ordering of floats, numeric_cmp, the
 * collation for text ordering, bytewise text equality only under a
 * deterministic collation, cross-type date/timestamp comparisons converted
 * exactly. Anything else is a leaf that PostgreSQL's executor evaluates, so
 * the native part only ever saves time; it never changes an answer.
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "numeric_scaled.h"
#include "rule_program.h"

/* How a constant is converted to meet the value it is compared with. */
typedef enum ConstConv
{
	CONV_NONE,
	CONV_TS_TO_DATE,			/* date value vs timestamp constant */
	CONV_DATE_TO_TS,			/* timestamp value vs date constant */
	CONV_DATE_TO_TSTZ			/* timestamptz value vs date constant */
} ConstConv;

static RuleNode *compile_node(RuleProgram *prog, Expr *expr);

static RuleNode *
new_node(RuleNodeKind kind)
{
	RuleNode   *n = palloc0(sizeof(RuleNode));

	n->kind = kind;
	return n;
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

/* ---------- constants ---------- */

/* date d as a timestamp, or false when PostgreSQL would report an overflow */
static bool
date_as_timestamp(DateADT d, int64 *ts)
{
	if (DATE_IS_NOBEGIN(d))
		*ts = DT_NOBEGIN;
	else if (DATE_IS_NOEND(d))
		*ts = DT_NOEND;
	else if (d >= (TIMESTAMP_END_JULIAN - POSTGRES_EPOCH_JDATE))
		return false;
	else
		*ts = (int64) d * USECS_PER_DAY;
	return true;
}

/*
 * Convert constant k for comparing with a value of class cls. May adjust
 * *strategy (a date compared with a timestamp between two midnights).
 * Returns false when the comparison is better left to PostgreSQL.
 */
static bool
make_const(CmpConst *c, Const *k, CmpClass cls, ConstConv conv, int *strategy)
{
	CmpClass	kcls;
	FetchKind	kf = rule_fetch_kind_for(k->consttype, &kcls);

	memset(c, 0, sizeof(CmpConst));
	c->isnull = k->constisnull;
	if (c->isnull)
		return true;
	switch (conv)
	{
		case CONV_NONE:
			break;
		case CONV_DATE_TO_TS:
			return date_as_timestamp(DatumGetDateADT(k->constvalue), &c->i);
		case CONV_DATE_TO_TSTZ:
			{
				DateADT		d = DatumGetDateADT(k->constvalue);

				/* local midnight in the session's time zone, as PostgreSQL does */
				if (DATE_NOT_FINITE(d))
					return date_as_timestamp(d, &c->i);
				if (d < date2j(1, 1, 1) - POSTGRES_EPOCH_JDATE ||
					d >= date2j(10000, 1, 1) - POSTGRES_EPOCH_JDATE)
					return false;
				c->i = DatumGetTimestampTz(DirectFunctionCall1(date_timestamptz, k->constvalue));
				return true;
			}
		case CONV_TS_TO_DATE:
			{
				/*
				 * d op T with d a date means d * day op T. With q = floor(T /
				 * day) and r the remainder: d > T iff d > q; d >= T iff d >=
				 * q (r = 0) or d > q; d < T iff d < q (r = 0) or d <= q; d =
				 * T only when r = 0. Infinite dates fall on the right side of
				 * any q since |q| is within the timestamp range.
				 */
				int64		t = DatumGetTimestamp(k->constvalue);
				int64		q,
							r;

				if (TIMESTAMP_NOT_FINITE(t))
					return false;
				q = t / USECS_PER_DAY;
				r = t % USECS_PER_DAY;
				if (r < 0)
				{
					q--;
					r += USECS_PER_DAY;
				}
				c->i = q;
				if (r != 0)
				{
					switch (*strategy)
					{
						case BTGreaterEqualStrategyNumber:
							*strategy = BTGreaterStrategyNumber;
							break;
						case BTLessStrategyNumber:
							*strategy = BTLessEqualStrategyNumber;
							break;
						case BTEqualStrategyNumber:
							*strategy = STRAT_NEVER;
							break;
						case STRAT_NE:
							*strategy = STRAT_ALWAYS;
							break;
						default:
							break;	/* > and <= keep their meaning */
					}
				}
				return true;
			}
	}

	switch (cls)
	{
		case CC_INT:
			c->i = rule_fetch_int(kf, k->constvalue);
			break;
		case CC_FLOAT:
			c->f = kf == FK_FLOAT4 ? (double) DatumGetFloat4(k->constvalue)
				: DatumGetFloat8(k->constvalue);
			break;
		case CC_NUMERIC:
			c->d = PointerGetDatum(PG_DETOAST_DATUM(k->constvalue));
#ifdef HAVE_INT128
			c->n_ok = numeric_scaled((struct varlena *) DatumGetPointer(c->d), &c->n);
#endif
			break;
		case CC_TEXT_EQ:
		case CC_TEXT_ORD:
			{
				text	   *t = DatumGetTextPP(k->constvalue);

				c->s = VARDATA_ANY(t);
				c->slen = VARSIZE_ANY_EXHDR(t);
				c->i = text_key(c->s, c->slen);
			}
			break;
	}
	return true;
}

/*
 * Is operator opno applied to (value of valtype, constant of consttype) one
 * we compare natively? Sets the class, the btree strategy and how the
 * constant must be converted.
 */
static bool
native_comparison(Oid opno, Oid valtype, Oid consttype, Oid collid,
				  CmpClass *cls, int *strategy, ConstConv *conv)
{
	List	   *interps = get_op_btree_interpretation(opno);
	ListCell   *lc;
	CmpClass	valcls,
				constcls;

	if (rule_fetch_kind_for(valtype, &valcls) == FK_NONE ||
		rule_fetch_kind_for(consttype, &constcls) == FK_NONE ||
		valcls != constcls)
		return false;

	foreach(lc, interps)
	{
		OpBtreeInterpretation *oi = lfirst(lc);
		bool		ok = false;
		CmpClass	c = valcls;

		*conv = CONV_NONE;
		switch (oi->opfamily_id)
		{
			case FAM_INTEGER:
				ok = (valtype == INT2OID || valtype == INT4OID || valtype == INT8OID) &&
					(consttype == INT2OID || consttype == INT4OID || consttype == INT8OID);
				break;
			case FAM_DATETIME:
				if (valtype == consttype)
					ok = valtype == DATEOID || valtype == TIMESTAMPOID || valtype == TIMESTAMPTZOID;
				else if (valtype == DATEOID && consttype == TIMESTAMPOID)
					ok = true, *conv = CONV_TS_TO_DATE;
				else if (valtype == TIMESTAMPOID && consttype == DATEOID)
					ok = true, *conv = CONV_DATE_TO_TS;
				else if (valtype == TIMESTAMPTZOID && consttype == DATEOID)
					ok = true, *conv = CONV_DATE_TO_TSTZ;
				break;
			case FAM_BOOL:
				ok = valtype == BOOLOID && consttype == BOOLOID;
				break;
			case FAM_FLOAT:
			case FAM_NUMERIC:
				ok = true;		/* same class, checked above */
				break;
			case FAM_TEXT:
				ok = valtype == TEXTOID && consttype == TEXTOID && OidIsValid(collid);
				if (ok && (oi->strategy == BTEqualStrategyNumber || oi->strategy == STRAT_NE))
				{
					/* bytewise equality is right only under a deterministic collation */
					if (get_collation_isdeterministic(collid))
						c = CC_TEXT_EQ;
					else
						ok = false;
				}
				break;
			default:
				break;
		}
		if (ok)
		{
			*cls = c;
			*strategy = oi->strategy;
			return true;
		}
	}
	return false;
}

/* ---------- values: columns and integer/date arithmetic ---------- */

static int	compile_value(RuleProgram *prog, Node *expr, CmpClass *cls, Oid *typid);

static bool
compile_operand(RuleProgram *prog, Node *arg, Operand *op)
{
	Node	   *a = strip_relabel(arg);
	CmpClass	cls;
	Oid			typid;

	memset(op, 0, sizeof(Operand));
	op->type = exprType(arg);
	if (IsA(a, Const))
	{
		Const	   *k = (Const *) a;

		if (k->constisnull)
			return false;
		op->col = -1;
		op->k = k->consttype == INT8OID ? DatumGetInt64(k->constvalue)
			: DatumGetInt32(k->constvalue);
		return op->type == INT4OID || op->type == INT8OID || op->type == DATEOID;
	}
	if (op->type != INT4OID && op->type != INT8OID && op->type != DATEOID)
		return false;
	op->col = compile_value(prog, a, &cls, &typid);
	return op->col >= 0 && cls == CC_INT;
}

/* An operand of numeric + - *: a numeric value, or an exact numeric constant. */
static bool
compile_numeric_operand(RuleProgram *prog, Node *arg, Operand *op)
{
	Node	   *a = strip_relabel(arg);
	CmpClass	cls;
	Oid			typid;

	memset(op, 0, sizeof(Operand));
	op->type = exprType(arg);
	if (op->type != NUMERICOID)
		return false;
	if (IsA(a, Const))
	{
		Const	   *k = (Const *) a;

		if (k->constisnull)
			return false;
		op->col = -1;
		op->kd = PointerGetDatum(PG_DETOAST_DATUM(k->constvalue));
#ifdef HAVE_INT128
		/* a constant without the exact scaled form: left to PostgreSQL */
		return numeric_scaled((struct varlena *) DatumGetPointer(op->kd), &op->nk);
#else
		return false;
#endif
	}
	op->col = compile_value(prog, a, &cls, &typid);
	return op->col >= 0 && cls == CC_NUMERIC;
}

/*
 * A store holding expr's value for every row of the batch, or -1 when expr is
 * not something rule_batch.c computes.
 */
static int
compile_value(RuleProgram *prog, Node *expr, CmpClass *cls, Oid *typid)
{
	check_stack_depth();

	if (IsA(expr, RelabelType))
	{
		RelabelType *rt = (RelabelType *) expr;
		Node	   *inner = strip_relabel(expr);

		/* varchar read as text */
		if (rt->resulttype == TEXTOID && IsA(inner, Var) &&
			((Var *) inner)->vartype == VARCHAROID && ((Var *) inner)->varattno > 0)
		{
			*cls = CC_TEXT_ORD;
			*typid = TEXTOID;
			return rule_column_store_native(prog->scan, ((Var *) inner)->varattno - 1,
									   CC_TEXT_ORD, FK_DATUM);
		}
		return -1;
	}
	if (IsA(expr, Var))
	{
		Var		   *v = (Var *) expr;
		FetchKind	fk;

		if (v->varattno <= 0)
			return -1;
		fk = rule_fetch_kind_for(v->vartype, cls);
		if (fk == FK_NONE)
			return -1;
		*typid = v->vartype;
		return rule_column_store_native(prog->scan, v->varattno - 1, *cls, fk);
	}
	if (IsA(expr, OpExpr) && list_length(((OpExpr *) expr)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) expr;
		DeriveKind	kind;
		bool		int4_result = false;
		Operand		a,
					b;

		switch (op->opfuncid)
		{
			case F_NUMERIC_ADD:
			case F_NUMERIC_SUB:
			case F_NUMERIC_MUL:
				if (!compile_numeric_operand(prog, linitial(op->args), &a) ||
					!compile_numeric_operand(prog, lsecond(op->args), &b) ||
					(a.col < 0 && b.col < 0))
					return -1;
				*cls = CC_NUMERIC;
				*typid = NUMERICOID;
				return rule_column_store_derived(prog->scan,
											op->opfuncid == F_NUMERIC_ADD ? DV_NUM_ADD :
											op->opfuncid == F_NUMERIC_SUB ? DV_NUM_SUB : DV_NUM_MUL,
											a, b, op->opfuncid, NUMERICOID, false);
			case F_DATE_MI:
				kind = DV_DATE_MI;
				break;
			case F_DATE_PLI:
				kind = DV_DATE_PLI;
				break;
			case F_DATE_MII:
				kind = DV_DATE_MII;
				break;
			case F_INT4PL:
				kind = DV_INT_ADD, int4_result = true;
				break;
			case F_INT4MI:
				kind = DV_INT_SUB, int4_result = true;
				break;
			case F_INT4MUL:
				kind = DV_INT_MUL, int4_result = true;
				break;
			case F_INT8PL:
			case F_INT48PL:
			case F_INT84PL:
				kind = DV_INT_ADD;
				break;
			case F_INT8MI:
			case F_INT48MI:
			case F_INT84MI:
				kind = DV_INT_SUB;
				break;
			case F_INT8MUL:
			case F_INT48MUL:
			case F_INT84MUL:
				kind = DV_INT_MUL;
				break;
			default:
				return -1;
		}
		if (!compile_operand(prog, linitial(op->args), &a) ||
			!compile_operand(prog, lsecond(op->args), &b) ||
			(a.col < 0 && b.col < 0))
			return -1;
		*cls = CC_INT;
		*typid = op->opresulttype;
		return rule_column_store_derived(prog->scan, kind, a, b, op->opfuncid,
									op->opresulttype, int4_result);
	}
	if (IsA(expr, CoalesceExpr) && list_length(((CoalesceExpr *) expr)->args) == 2)
	{
		CoalesceExpr *ce = (CoalesceExpr *) expr;
		Operand		a,
					b;

		if (!compile_operand(prog, linitial(ce->args), &a) || a.col < 0 ||
			!compile_operand(prog, lsecond(ce->args), &b) || b.col >= 0)
			return -1;
		*cls = CC_INT;
		*typid = ce->coalescetype;
		return rule_column_store_derived(prog->scan, DV_COALESCE, a, b, InvalidOid,
									ce->coalescetype, false);
	}
	return -1;
}

/* ---------- leaves ---------- */

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
			n->reads[n->nreads++] = rule_column_store(prog->scan, attidx);
	}
	return n;
}

/* text LIKE constant pattern that is a plain prefix (or a plain string) */
static RuleNode *
compile_like(RuleProgram *prog, OpExpr *op)
{
	Node	   *val = linitial(op->args);
	Node	   *pat = strip_relabel(lsecond(op->args));
	text	   *t;
	const char *p;
	int			len,
				i;
	RuleNode   *n;
	CmpClass	cls;
	Oid			typid;

	if (!IsA(pat, Const) || ((Const *) pat)->constisnull ||
		exprType(val) != TEXTOID || !OidIsValid(op->inputcollid) ||
		!get_collation_isdeterministic(op->inputcollid))
		return NULL;
	t = DatumGetTextPP(((Const *) pat)->constvalue);
	p = VARDATA_ANY(t);
	len = VARSIZE_ANY_EXHDR(t);
	for (i = 0; i < len; i++)
		if (p[i] == '_' || p[i] == '\\' || (p[i] == '%' && i != len - 1))
			return NULL;
	n = new_node(RN_PREFIX);
	n->exact = !(len > 0 && p[len - 1] == '%');
	n->prefix = p;
	n->prefixlen = n->exact ? len : len - 1;
	n->negate = op->opfuncid == F_TEXTNLIKE;
	n->col = compile_value(prog, val, &cls, &typid);
	if (n->col < 0 || cls != CC_TEXT_ORD)
		return NULL;
	return n;
}

/*
 * value op value, both integer (or date, timestamp: the same type on both
 * sides), float or numeric values compared by their btree operator.
 */
static RuleNode *
compile_cmp2(RuleProgram *prog, OpExpr *op)
{
	Node	   *l = linitial(op->args);
	Node	   *r = lsecond(op->args);
	CmpClass	cls,
				lcls,
				rcls;
	Oid			ltype,
				rtype;
	int			strategy;
	ConstConv	conv;
	RuleNode   *n;

	if (!native_comparison(op->opno, exprType(l), exprType(r), op->inputcollid,
						   &cls, &strategy, &conv) ||
		conv != CONV_NONE || (cls != CC_INT && cls != CC_FLOAT && cls != CC_NUMERIC))
		return NULL;
	n = new_node(RN_CMP2);
	n->col = compile_value(prog, l, &lcls, &ltype);
	if (n->col < 0 || lcls != cls)
		return NULL;
	n->col2 = compile_value(prog, r, &rcls, &rtype);
	if (n->col2 < 0 || rcls != cls)
		return NULL;
	n->cmpclass = cls;
	n->strategy = strategy;
	n->collid = op->inputcollid;
	return n;
}

/* value op constant, constant op value, value op value */
static RuleNode *
compile_opexpr(RuleProgram *prog, OpExpr *op)
{
	Node	   *l,
			   *r,
			   *val;
	Const	   *k;
	RuleNode   *n;
	CmpClass	cls,
				vcls;
	Oid			vtype;
	int			strategy;
	ConstConv	conv;

	if (list_length(op->args) != 2)
		return NULL;
	if (op->opfuncid == F_TEXTLIKE || op->opfuncid == F_TEXTNLIKE)
		return compile_like(prog, op);
	l = linitial(op->args);
	r = lsecond(op->args);
	if (IsA(strip_relabel(r), Const))
	{
		val = l;
		k = (Const *) strip_relabel(r);
	}
	else if (IsA(strip_relabel(l), Const))
	{
		val = r;
		k = (Const *) strip_relabel(l);
	}
	else
		return compile_cmp2(prog, op);
	if (!native_comparison(op->opno, exprType(val), k->consttype, op->inputcollid,
						   &cls, &strategy, &conv))
		return NULL;
	if (val == r)
		strategy = commute_strategy(strategy);
	n = new_node(RN_CMP);
	if (!make_const(&n->c, k, cls, conv, &strategy))
		return NULL;
	n->col = compile_value(prog, val, &vcls, &vtype);
	if (n->col < 0)
		return NULL;
	if (cls == CC_TEXT_EQ)
		rule_column_store_want_text_key(prog->scan, n->col);
	n->cmpclass = cls;
	n->strategy = strategy;
	n->collid = op->inputcollid;
	return n;
}

/* value op ANY/ALL (constant array) */
static RuleNode *
compile_saop(RuleProgram *prog, ScalarArrayOpExpr *saop)
{
	Node	   *val,
			   *r;
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
	CmpClass	cls,
				vcls;
	Oid			vtype;
	int			strategy;
	ConstConv	conv;
	int			i;

	if (list_length(saop->args) != 2)
		return NULL;
	val = linitial(saop->args);
	r = strip_relabel(lsecond(saop->args));
	if (!IsA(r, Const) || ((Const *) r)->constisnull)
		return NULL;			/* a NULL array: rare, leave to PostgreSQL */
	k = (Const *) r;
	arr = DatumGetArrayTypeP(k->constvalue);
	elemtype = ARR_ELEMTYPE(arr);
	if (!native_comparison(saop->opno, exprType(val), elemtype, saop->inputcollid,
						   &cls, &strategy, &conv) || conv != CONV_NONE)
		return NULL;
	get_typlenbyvalalign(elemtype, &elmlen, &elmbyval, &elmalign);
	deconstruct_array(arr, elemtype, elmlen, elmbyval, elmalign,
					  &values, &nulls, &nvalues);

	n = new_node(RN_IN);
	n->cmpclass = cls;
	n->strategy = strategy;
	n->collid = saop->inputcollid;
	n->use_or = saop->useOr;
	n->nelems = nvalues;
	n->elems = palloc0(sizeof(CmpConst) * Max(nvalues, 1));
	for (i = 0; i < nvalues; i++)
	{
		Const	   *ek = makeConst(elemtype, -1, saop->inputcollid, elmlen,
								   values[i], nulls[i], elmbyval);
		int			s = strategy;

		make_const(&n->elems[i], ek, cls, CONV_NONE, &s);
	}
	n->col = compile_value(prog, val, &vcls, &vtype);
	if (n->col < 0)
		return NULL;
	if (cls == CC_TEXT_EQ)
		rule_column_store_want_text_key(prog->scan, n->col);
	return n;
}

static RuleNode *
compile_case(RuleProgram *prog, CaseExpr *ce)
{
	RuleNode   *n;
	ListCell   *lc;
	int			i = 0;

	if (ce->casetype != BOOLOID || ce->arg != NULL)
		return NULL;
	n = new_node(RN_CASE);
	n->nargs = 2 * list_length(ce->args) + 1;
	n->args = palloc(sizeof(RuleNode *) * n->nargs);
	foreach(lc, ce->args)
	{
		CaseWhen   *w = lfirst(lc);

		n->args[i++] = compile_node(prog, w->expr);
		n->args[i++] = compile_node(prog, w->result);
	}
	if (ce->defresult)
		n->args[i] = compile_node(prog, ce->defresult);
	else
	{
		n->args[i] = new_node(RN_CONST);
		n->args[i]->constval = RULE_NULL;
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
					n->col = rule_column_store_native(prog->scan, v->varattno - 1, CC_INT, FK_BOOL);
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
					n->col = rule_column_store(prog->scan, ((Var *) arg)->varattno - 1);
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
		case T_CaseExpr:
			n = compile_case(prog, (CaseExpr *) expr);
			break;
		default:
			break;
	}
	if (n == NULL)
		return compile_fallback(prog, expr);
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
