/*
 * rule_batch.c
 *     The batch of rows a scan feeds to rule programs, and the programs'
 *     evaluation over it.
 *
 * A scan copies the columns the rules read into column stores, up to
 * RULE_BATCH_ROWS rows at a time. By-reference values of a table scan's rows
 * are read in place, their heap pages pinned until the batch ends; rows from
 * elsewhere (transition tables, SQL) are copied into an arena. Then every program
 * runs over the whole batch: comparisons of fixed-width values are branch-free
 * loops, and three-valued logic is two bitmasks per node, TRUE and FALSE (a
 * row in neither is NULL). AND, OR and CASE narrow the rows their later
 * arguments are evaluated for, as PostgreSQL's short-circuit evaluation does,
 * so a leaf that would raise an error for a row is only evaluated where
 * PostgreSQL would evaluate it too. Conversely, an error is raised wherever
 * PostgreSQL would raise it: derived values (integer and date arithmetic)
 * mark their failing rows, and a comparison raises the error on every row
 * it is evaluated for, also where the value is NULL because another operand
 * is (strict operators evaluate all their arguments first).
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "port/pg_bitutils.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include <math.h>

#include "numeric_scaled.h"
#include "rule_program.h"

#define RULE_ARENA_SIZE (64 * 1024)

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
int
rule_column_store(RuleScan *scan, int attidx)
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
int
rule_column_store_native(RuleScan *scan, int attidx, CmpClass cls, FetchKind fk)
{
	int			c = rule_column_store(scan, attidx);
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
#ifdef HAVE_INT128
			if (cs->n == NULL)
				cs->n = palloc(sizeof(int128) * RULE_BATCH_ROWS);
#endif
			break;
		case CC_TEXT_EQ:
		case CC_TEXT_ORD:
			break;				/* read in place from the arena copy */
	}
	return c;
}

/* Text equality on this store compares keys first (text_key). */
void
rule_column_store_want_text_key(RuleScan *scan, int col)
{
	ColumnStore *cs = scan->cols[col];

	if (cs->tk == NULL && cs->derive == DV_NONE &&
		(cs->typid == TEXTOID || cs->typid == VARCHAROID))
		cs->tk = palloc(sizeof(int64) * RULE_BATCH_ROWS);
}

/*
 * A store for an integer/date value computed from other stores and
 * constants; one store per distinct definition.
 */
int
rule_column_store_derived(RuleScan *scan, DeriveKind kind, Operand a, Operand b,
					 Oid funcoid, Oid restype, bool result_int4)
{
	ColumnStore *cs;
	int			c;

	for (c = 0; c < scan->ncols; c++)
	{
		cs = scan->cols[c];
		if (cs->derive == kind && cs->funcoid == funcoid &&
			cs->a.col == a.col && cs->a.k == a.k && cs->b.col == b.col && cs->b.k == b.k
#ifdef HAVE_INT128
			&& cs->a.nk == a.nk && cs->b.nk == b.nk
#endif
			)
			return c;
	}
	if (scan->ncols == scan->maxcols)
	{
		scan->maxcols *= 2;
		scan->cols = repalloc(scan->cols, sizeof(ColumnStore *) * scan->maxcols);
	}
	cs = palloc0(sizeof(ColumnStore));
	cs->attidx = -1;
	cs->typid = restype;
	if (DERIVE_IS_NUMERIC(kind))
	{
		/* scaled values, and PostgreSQL's datums for slow rows (rule_numeric.c) */
		cs->typlen = -1;
		cs->fetch = FK_DATUM;
		cs->numeric_native = true;
#ifdef HAVE_INT128
		cs->n = palloc(sizeof(int128) * RULE_BATCH_ROWS);
#endif
	}
	else
	{
		cs->typlen = sizeof(int64);
		cs->fetch = FK_INT8;
		cs->i = palloc(sizeof(int64) * RULE_BATCH_ROWS);
	}
	cs->derive = kind;
	cs->a = a;
	cs->b = b;
	cs->funcoid = funcoid;
	cs->result_int4 = result_int4;
	scan->cols[scan->ncols] = cs;
	return scan->ncols++;
}

FetchKind
rule_fetch_kind_for(Oid typid, CmpClass *cls)
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
			return FK_NONE;
	}
}

int64
rule_fetch_int(FetchKind fk, Datum d)
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


void
rule_scan_stats(RuleScan *scan, int *native_nodes, int *fallback_nodes)
{
	*native_nodes = scan->native_nodes;
	*fallback_nodes = scan->fallback_nodes;
}

void
rule_scan_begin(RuleScan *scan, AttrNumber also_attno)
{
	rule_scan_begin_columns(scan, also_attno, NULL);
}

/*
 * As rule_scan_begin, fetching only the table columns in attnos (attribute
 * numbers; NULL: every column a program reads). Live maintenance evaluates
 * some of the programs over a statement's rows: those of the units that read
 * a column the statement set, which read only those columns. A derived
 * store over a column not fetched is not computed either; the programs of
 * the other units must not run until the next begin.
 */
void
rule_scan_begin_columns(RuleScan *scan, AttrNumber also_attno, const Bitmapset *attnos)
{
	MemoryContext cxt = GetMemoryChunkContext(scan);
	int			c;

	if (also_attno > scan->maxattno)
		scan->maxattno = also_attno;
	/*
	 * The virtual slot of fallback leaves, over a copy of the relation's
	 * descriptor (no pin to release): kept with the scan. A scan evaluates
	 * one relation, as opened by each statement, of one shape.
	 */
	if (scan->vslot == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		scan->vdesc = CreateTupleDescCopy(RelationGetDescr(scan->rel));
		scan->vslot = MakeSingleTupleTableSlot(scan->vdesc, &TTSOpsVirtual);
		MemoryContextSwitchTo(old);
	}
	scan->nrows = 0;
	if (scan->arena_base == NULL)
		scan->arena_base = MemoryContextAlloc(cxt, RULE_ARENA_SIZE);
	scan->arena_size = RULE_ARENA_SIZE;
	scan->arena = scan->arena_base;
	scan->arena_used = 0;

	/* the steps of the same columns as last time are still right */
	if (scan->steps != NULL && scan->steps_ncols == scan->ncols &&
		scan->steps_also == also_attno &&
		(attnos == NULL ? scan->steps_all : !scan->steps_all && bms_equal(attnos, scan->steps_attnos)))
		return;
	if (scan->steps == NULL || scan->steps_size < scan->ncols)
	{
		if (scan->steps != NULL)
		{
			pfree(scan->steps);
			pfree(scan->active);
		}
		scan->steps_size = Max(scan->ncols, 1);
		scan->steps = MemoryContextAlloc(cxt, sizeof(FetchStep) * scan->steps_size);
		scan->active = MemoryContextAlloc(cxt, sizeof(int) * scan->steps_size);
	}
	scan->steps_ncols = -1;		/* incomplete until the end */
	if (scan->steps_attnos != NULL)
		bms_free(scan->steps_attnos);
	scan->steps_attnos = NULL;
	scan->fetch_maxattno = also_attno;
	scan->nsteps = 0;
	scan->nactive = 0;
	for (c = 0; c < scan->ncols; c++)
	{
		ColumnStore *cs = scan->cols[c];
		FetchStep  *st;
		Form_pg_attribute att;

		if (cs->derive != DV_NONE)
		{
			/* computed per batch, before evaluation, when its operands are read */
			cs->inactive = (cs->a.col >= 0 && scan->cols[cs->a.col]->inactive) ||
				(cs->b.col >= 0 && scan->cols[cs->b.col]->inactive);
			if (!cs->inactive)
				scan->active[scan->nactive++] = c;
			continue;
		}
		cs->inactive = attnos != NULL && !bms_is_member(cs->attidx + 1, attnos);
		if (cs->inactive)
			continue;
		scan->active[scan->nactive++] = c;
		if (cs->attidx + 1 > scan->fetch_maxattno)
			scan->fetch_maxattno = cs->attidx + 1;
		att = TupleDescAttr(RelationGetDescr(scan->rel), cs->attidx);
		st = &scan->steps[scan->nsteps++];
		st->attidx = cs->attidx;
		st->cs = cs;
		st->fetch = cs->fetch;
		st->typlen = att->attlen;
		if (att->attlen == -1)
			st->kind = cs->numeric_native ? SK_NUMERIC : cs->tk ? SK_TEXT_KEY : SK_VARLENA;
		else if (!att->attbyval)
			st->kind = SK_BYREF;
		else if (cs->fetch == FK_FLOAT4)
			st->kind = SK_FLOAT4;
		else if (cs->fetch == FK_FLOAT8)
			st->kind = SK_FLOAT8;
		else if (cs->fetch == FK_DATUM || cs->fetch == FK_NONE)
			st->kind = SK_BYVAL;
		else
			st->kind = SK_INT;
	}
	if (attnos == NULL)
		scan->fetch_maxattno = scan->maxattno;
	else
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		scan->steps_attnos = bms_copy(attnos);
		MemoryContextSwitchTo(old);
	}
	scan->steps_all = attnos == NULL;
	scan->steps_also = also_attno;
	scan->steps_ncols = scan->ncols;
}

static void
release_pins(RuleScan *scan)
{
	int			i;

	for (i = 0; i < scan->npins; i++)
		ReleaseBuffer(scan->pins[i]);
	scan->npins = 0;
}

void
rule_scan_end(RuleScan *scan)
{
	release_pins(scan);
	ExecClearTuple(scan->vslot);
}

void
rule_scan_set_rel(RuleScan *scan, Relation rel)
{
	scan->rel = rel;
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
	scan->derived_ready = false;
	release_pins(scan);
	/* overflow chunks live in batch memory, which is reset just below */
	scan->arena = scan->arena_base;
	scan->arena_size = RULE_ARENA_SIZE;
	scan->arena_used = 0;
	/* stores that are not read until the next begin keep what they had */
	for (c = 0; c < scan->nactive; c++)
	{
		memset(&scan->cols[scan->active[c]]->nulls, 0, sizeof(RuleMask));
#ifdef HAVE_INT128
		memset(&scan->cols[scan->active[c]]->n_slow, 0, sizeof(RuleMask));
#endif
	}
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

/* A copy in the batch arena of a varlena value; detoasted when toasted. */
static inline Datum
copy_varlena(RuleScan *scan, Datum d, bool four_byte_header, bool pinned)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	char	   *copy;
	Size		len;

	if (pinned && !VARATT_IS_EXTERNAL(v) && !VARATT_IS_COMPRESSED(v))
		return d;				/* inline, on a page pinned until the batch ends */
	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
	{
		MemoryContext old = MemoryContextSwitchTo(scan->econtext->ecxt_per_tuple_memory);

		/* a fresh copy in batch memory: nothing more to do */
		d = PointerGetDatum(pg_detoast_datum(v));
		MemoryContextSwitchTo(old);
		return d;
	}
	if (VARATT_IS_SHORT(v) && four_byte_header)
	{
		len = VARSIZE_SHORT(v) - VARHDRSZ_SHORT;
		copy = arena_alloc(scan, len + VARHDRSZ);
		SET_VARSIZE(copy, len + VARHDRSZ);
		memcpy(copy + VARHDRSZ, VARDATA_SHORT(v), len);
		return PointerGetDatum(copy);
	}
	len = VARSIZE_ANY(v);
	copy = arena_alloc(scan, len);
	memcpy(copy, v, len);
	return PointerGetDatum(copy);
}

/*
 * Copy the row's values into the column stores, one step per column the
 * rules read (rule_scan_begin). Numerics that native comparisons read get a
 * 4-byte header here, once (PostgreSQL's operators would convert them on
 * every comparison), and their scaled form; compressed or external values
 * are detoasted once; by-reference values are copied into the batch arena.
 */
void
rule_scan_add_row(RuleScan *scan, TupleTableSlot *slot)
{
	int			r = scan->nrows;
	int			word = r >> 6;
	uint64		bit = UINT64CONST(1) << (r & 63);
	const FetchStep *st = scan->steps;
	const FetchStep *end = st + scan->nsteps;
	Datum	   *values;
	bool	   *isnull;
	bool		pinned = false;

	Assert(r < RULE_BATCH_ROWS);
	slot_getsomeattrs(slot, scan->fetch_maxattno);
	/*
	 * A row of a heap page (a table scan): keep the page pinned until the
	 * batch ends, so that its by-reference values can be read in place. Rows
	 * from elsewhere (tuplestores, SPI) are copied.
	 */
	if (TTS_IS_BUFFERTUPLE(slot))
	{
		Buffer		buf = ((BufferHeapTupleTableSlot *) slot)->buffer;

		if (BufferIsValid(buf))
		{
			if (scan->npins == 0 || scan->pins[scan->npins - 1] != buf)
			{
				IncrBufferRefCount(buf);
				scan->pins[scan->npins++] = buf;
			}
			pinned = true;
		}
	}
	values = slot->tts_values;
	isnull = slot->tts_isnull;
	for (; st < end; st++)
	{
		ColumnStore *cs = st->cs;
		Datum		d;

		if (isnull[st->attidx])
		{
			cs->nulls.w[word] |= bit;
			continue;
		}
		d = values[st->attidx];
		switch (st->kind)
		{
			case SK_INT:
				cs->d[r] = d;
				cs->i[r] = rule_fetch_int(st->fetch, d);
				break;
			case SK_FLOAT4:
				cs->d[r] = d;
				cs->f[r] = DatumGetFloat4(d);
				break;
			case SK_FLOAT8:
				cs->d[r] = d;
				cs->f[r] = DatumGetFloat8(d);
				break;
			case SK_BYVAL:
				cs->d[r] = d;
				break;
			case SK_NUMERIC:
				/* slow rows give numeric_cmp a 4-byte header; in place it detoasts */
				d = copy_varlena(scan, d, !pinned, pinned);
				cs->d[r] = d;
#ifdef HAVE_INT128
				if (!numeric_scaled((struct varlena *) DatumGetPointer(d), &cs->n[r]))
					cs->n_slow.w[word] |= bit;
#endif
				break;
			case SK_VARLENA:
				cs->d[r] = copy_varlena(scan, d, false, pinned);
				break;
			case SK_TEXT_KEY:
				{
					struct varlena *t;

					d = copy_varlena(scan, d, false, pinned);
					cs->d[r] = d;
					t = (struct varlena *) DatumGetPointer(d);
					cs->tk[r] = text_key(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				}
				break;
			case SK_BYREF:
				if (pinned)
					cs->d[r] = d;
				else
				{
					Size		len = st->typlen > 0 ? st->typlen : strlen(DatumGetCString(d)) + 1;
					char	   *copy = arena_alloc(scan, len);

					memcpy(copy, DatumGetPointer(d), len);
					cs->d[r] = PointerGetDatum(copy);
				}
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
		case STRAT_NE:
			return cmp != 0;
		case STRAT_NEVER:
			return false;
		default:
			return true;		/* STRAT_ALWAYS */
	}
}

/* Three-way comparison of a non-null stored value with a non-null constant. */
static inline int
compare_value(RuleScan *scan, RuleNode *n, ColumnStore *cs, int r, const CmpConst *c)
{
	switch (n->cmpclass)
	{
		case CC_INT:
			return (cs->i[r] > c->i) - (cs->i[r] < c->i);
		case CC_FLOAT:
			return float_order(cs->f[r], c->f);
		case CC_NUMERIC:
			{
#ifdef HAVE_INT128
				if (c->n_ok && !((cs->n_slow.w[r >> 6] >> (r & 63)) & 1))
					return (cs->n[r] > c->n) - (cs->n[r] < c->n);
#endif
				/* values read in place (short header) are detoasted in batch memory */
				if (cs->derive != DV_NONE)
				{
					bool		isnull;

					return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
															 rule_numeric_store_datum(scan, cs, r, &isnull),
															 c->d));
				}
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

#define CMP_BY_STRATEGY(VALS, CONST) \
	switch (strategy) \
	{ \
		case BTLessStrategyNumber: CMP_LOOP(VALS, <, CONST); break; \
		case BTLessEqualStrategyNumber: CMP_LOOP(VALS, <=, CONST); break; \
		case BTEqualStrategyNumber: CMP_LOOP(VALS, ==, CONST); break; \
		case BTGreaterEqualStrategyNumber: CMP_LOOP(VALS, >=, CONST); break; \
		case BTGreaterStrategyNumber: CMP_LOOP(VALS, >, CONST); break; \
		default: CMP_LOOP(VALS, !=, CONST); break; \
	}

/*
 * Rows of `live` whose text equals the constant: keys compared for the
 * whole batch, texts longer than the key's exact length then in full.
 */
static void
text_eq_batch(ColumnStore *cs, const CmpConst *c, int nrows, const RuleMask *live,
			  RuleMask *eq)
{
	int			nwords = (nrows + 63) / 64;
	int			w,
				j,
				r;
	int64		k = c->i;
	int64	   *v = cs->tk;
	RuleMask	holds;

	memset(&holds, 0, sizeof(holds));
	CMP_LOOP(v, ==, k);
	for (w = 0; w < RULE_BATCH_WORDS; w++)
		eq->w[w] = holds.w[w] & live->w[w];
	if (c->slen > TEXT_KEY_EXACT_LEN)
	{
		FOREACH_ROW_BIT(live, nwords, r)
		{
			uint64		b = UINT64CONST(1) << (r & 63);

			if (eq->w[r >> 6] & b)
			{
				struct varlena *t = (struct varlena *) DatumGetPointer(cs->d[r]);

				if (VARSIZE_ANY_EXHDR(t) != c->slen || memcmp(VARDATA_ANY(t), c->s, c->slen) != 0)
					eq->w[r >> 6] &= ~b;
			}
		}
	}
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
	if (strategy == STRAT_NEVER || strategy == STRAT_ALWAYS)
	{
		if (strategy == STRAT_ALWAYS)
			mask_fill(&holds, nrows);
		*out = holds;
		return;
	}
#ifdef HAVE_INT128
	if (n->cmpclass == CC_NUMERIC)
	{
		int128		k = c->n;
		int128	   *v = cs->n;

		CMP_BY_STRATEGY(v, k);
		*out = holds;
		return;
	}
#endif
	if (n->cmpclass == CC_INT)
	{
		int64		k = c->i;
		int64	   *v = cs->i;

		CMP_BY_STRATEGY(v, k);
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
			CMP_BY_STRATEGY(v, k);
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


/* ---------- derived values ---------- */

static inline int64
operand_value(RuleScan *scan, const Operand *op, int r)
{
	return op->col < 0 ? op->k : scan->cols[op->col]->i[r];
}

static inline uint64
operand_word(RuleScan *scan, const Operand *op, int w, bool errors)
{
	if (op->col < 0)
		return 0;
	return errors ? scan->cols[op->col]->errors.w[w] : scan->cols[op->col]->nulls.w[w];
}

static Datum
operand_datum(int64 v, Oid type)
{
	if (type == INT8OID)
		return Int64GetDatum(v);
	return Int32GetDatum((int32) v);
}

/*
 * Compute a derived store for the batch. Rows where PostgreSQL's function
 * would raise an error (infinite dates, overflow) are marked, not raised:
 * only a comparison that PostgreSQL would evaluate on that row raises it.
 */
static void
compute_derived(RuleScan *scan, ColumnStore *cs)
{
	int			nrows = scan->nrows;
	int			w,
				r;

#ifdef HAVE_INT128
	if (DERIVE_IS_NUMERIC(cs->derive))
	{
		rule_numeric_derive_batch(scan, cs);
		return;
	}
#endif
	for (w = 0; w < RULE_BATCH_WORDS; w++)
	{
		cs->errors.w[w] = operand_word(scan, &cs->a, w, true) | operand_word(scan, &cs->b, w, true);
		cs->nulls.w[w] = operand_word(scan, &cs->a, w, false) | operand_word(scan, &cs->b, w, false);
	}
	if (cs->derive == DV_COALESCE)
	{
		/* coalesce(a, constant): never NULL; a's errors stay */
		for (r = 0; r < nrows; r++)
		{
			bool		anull = (scan->cols[cs->a.col]->nulls.w[r >> 6] >> (r & 63)) & 1;

			cs->i[r] = anull ? cs->b.k : scan->cols[cs->a.col]->i[r];
		}
		memset(&cs->nulls, 0, sizeof(RuleMask));
		return;
	}
	for (r = 0; r < nrows; r++)
	{
		int64		a = operand_value(scan, &cs->a, r);
		int64		b = operand_value(scan, &cs->b, r);
		int64		v = 0;
		bool		bad = false;

		switch (cs->derive)
		{
			case DV_DATE_MI:
				bad = DATE_NOT_FINITE((DateADT) a) || DATE_NOT_FINITE((DateADT) b);
				v = (int32) ((uint32) a - (uint32) b);
				break;
			case DV_DATE_PLI:
			case DV_DATE_MII:
				if (DATE_NOT_FINITE((DateADT) a))
					v = a;		/* infinity plus days is infinity */
				else
				{
					v = cs->derive == DV_DATE_PLI ? a + b : a - b;
					bad = !IS_VALID_DATE(v);
				}
				break;
			case DV_INT_ADD:
				bad = pg_add_s64_overflow(a, b, &v);
				break;
			case DV_INT_SUB:
				bad = pg_sub_s64_overflow(a, b, &v);
				break;
			case DV_INT_MUL:
				bad = pg_mul_s64_overflow(a, b, &v);
				break;
			default:
				break;
		}
		if ((cs->derive == DV_INT_ADD || cs->derive == DV_INT_SUB || cs->derive == DV_INT_MUL) &&
			cs->result_int4 && !bad && (v < PG_INT32_MIN || v > PG_INT32_MAX))
			bad = true;
		cs->i[r] = v;
		if (bad)
			cs->errors.w[r >> 6] |= UINT64CONST(1) << (r & 63);
	}
	/*
	 * A NULL operand makes the row NULL and this operation is not called
	 * (strict), so it raises nothing of its own there; an operand's own
	 * error stays, since PostgreSQL evaluates the operands first.
	 */
	for (w = 0; w < RULE_BATCH_WORDS; w++)
		cs->errors.w[w] &= ~cs->nulls.w[w] |
			operand_word(scan, &cs->a, w, true) | operand_word(scan, &cs->b, w, true);
}

/* Raise PostgreSQL's own error for row r of a derived store. */
static void
raise_derived_error(RuleScan *scan, ColumnStore *cs, int r)
{
	/* an operand's error comes first, as PostgreSQL evaluates arguments first */
	for (;;)
	{
		ColumnStore *a = cs->a.col >= 0 ? scan->cols[cs->a.col] : NULL;
		ColumnStore *b = cs->b.col >= 0 ? scan->cols[cs->b.col] : NULL;

		if (a && ((a->errors.w[r >> 6] >> (r & 63)) & 1))
			cs = a;
		else if (b && ((b->errors.w[r >> 6] >> (r & 63)) & 1))
			cs = b;
		else
			break;
	}
	(void) OidFunctionCall2(cs->funcoid,
							operand_datum(operand_value(scan, &cs->a, r), cs->a.type),
							operand_datum(operand_value(scan, &cs->b, r), cs->b.type));
	elog(ERROR, "segment: native evaluation expected function %u to fail", cs->funcoid);
}

/*
 * Raise the first error of the derived store among the rows PostgreSQL
 * evaluates it for. Those are all the active rows, NULL ones included: a
 * strict operator or comparison evaluates every argument before it looks
 * for NULLs, so in (a * 1000000000) + b the overflow of a * 1000000000
 * raises even where b is NULL. compute_derived has already left out the
 * rows where only this store's own operation would fail but an operand is
 * NULL (PostgreSQL does not call a strict function then), so the mask is
 * exactly the rows that fail.
 */
static void
check_derived_errors(RuleScan *scan, ColumnStore *cs, const RuleMask *active)
{
	int			w;

	for (w = 0; w < RULE_BATCH_WORDS; w++)
	{
		uint64		bad = active->w[w] & cs->errors.w[w];

		if (bad)
			raise_derived_error(scan, cs, w * 64 + pg_rightmost_one_pos64(bad));
	}
}

static void
prepare_batch(RuleScan *scan)
{
	int			c;

	for (c = 0; c < scan->nactive; c++)
		if (scan->cols[scan->active[c]]->derive != DV_NONE)
			compute_derived(scan, scan->cols[scan->active[c]]);
	scan->derived_ready = true;
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
	/* errors before NULLs: on every active row, not only the non-NULL ones */
	if (DERIVE_IS_NUMERIC(cs->derive))
		rule_numeric_store_prepare(scan, cs, active);
	else if (cs->derive != DV_NONE)
		check_derived_errors(scan, cs, active);

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
#ifdef HAVE_INT128
	if (n->kind == RN_CMP && n->cmpclass == CC_NUMERIC && n->c.n_ok)
	{
		/* integer comparison for exact values, numeric_cmp for the rest */
		RuleMask	holds,
					slow;
		int			r;

		cmp_fixed_batch(n, cs, &n->c, n->strategy, nrows, &holds);
		for (w = 0; w < RULE_BATCH_WORDS; w++)
		{
			slow.w[w] = live.w[w] & cs->n_slow.w[w];
			T->w[w] = holds.w[w] & live.w[w] & ~slow.w[w];
			F->w[w] = ~holds.w[w] & live.w[w] & ~slow.w[w];
		}
		FOREACH_ROW_BIT(&slow, nwords, r)
		{
			uint64		b = UINT64CONST(1) << (r & 63);

			if (strategy_holds(n->strategy, compare_value(scan, n, cs, r, &n->c)))
				T->w[r >> 6] |= b;
			else
				F->w[r >> 6] |= b;
		}
		return;
	}
#endif
	if (n->kind == RN_CMP && n->cmpclass == CC_TEXT_EQ && cs->tk)
	{
		RuleMask	eq;

		/* = or <>: the only strategies of this class */
		text_eq_batch(cs, &n->c, nrows, &live, &eq);
		for (w = 0; w < RULE_BATCH_WORDS; w++)
		{
			uint64		h = n->strategy == BTEqualStrategyNumber ? eq.w[w] : ~eq.w[w];

			T->w[w] = h & live.w[w];
			F->w[w] = ~h & live.w[w];
		}
		return;
	}
	if (n->kind == RN_CMP)
	{
		int			r;

		FOREACH_ROW_BIT(&live, nwords, r)
		{
			uint64		b = UINT64CONST(1) << (r & 63);

			if (strategy_holds(n->strategy, compare_value(scan, n, cs, r, &n->c)))
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
			else if (n->cmpclass == CC_TEXT_EQ && cs->tk)
			{
				RuleMask	eq;

				text_eq_batch(cs, &n->elems[e], nrows, &live, &eq);
				for (w = 0; w < RULE_BATCH_WORDS; w++)
				{
					uint64		h = n->strategy == BTEqualStrategyNumber ? eq.w[w] : ~eq.w[w];

					acc.w[w] |= (n->use_or ? h : ~h) & live.w[w];
				}
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
												   compare_value(scan, n, cs, r, &n->elems[e]));

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

/*
 * Rows where the value of store cs is still to be evaluated the way
 * PostgreSQL does it: a derived integer's failing rows, a derived numeric's
 * slow rows.
 */
static inline uint64
store_pending_word(ColumnStore *cs, int w)
{
	if (cs->derive == DV_NONE)
		return 0;
	if (DERIVE_IS_NUMERIC(cs->derive))
		return cs->n_slow.w[w] & ~cs->d_ready.w[w];
	return cs->errors.w[w];
}

static inline void
store_evaluate_row(RuleScan *scan, ColumnStore *cs, int r)
{
	uint64		b = UINT64CONST(1) << (r & 63);

	if (cs->derive == DV_NONE)
		return;
	if (DERIVE_IS_NUMERIC(cs->derive))
	{
		bool		isnull;

		if (cs->n_slow.w[r >> 6] & b)
			(void) rule_numeric_store_datum(scan, cs, r, &isnull);
	}
	else if (cs->errors.w[r >> 6] & b)
		raise_derived_error(scan, cs, r);
}

/*
 * value op value. PostgreSQL evaluates both arguments, the left one first,
 * on every row it reaches, before it looks at NULLs: the rows still to be
 * evaluated that way (errors, slow numerics) are, in row order. Then the
 * comparison of the rows where neither side is NULL.
 */
static void
eval_cmp2_batch(RuleScan *scan, RuleNode *n, const RuleMask *active, RuleMask *T, RuleMask *F)
{
	ColumnStore *a = scan->cols[n->col];
	ColumnStore *b = scan->cols[n->col2];
	int			nrows = scan->nrows;
	int			nwords = (nrows + 63) / 64;
	int			strategy = n->strategy;
	RuleMask	live,
				holds;
	int			w,
				j,
				r;

	for (w = 0; w < RULE_BATCH_WORDS; w++)
	{
		uint64		todo = active->w[w] & (store_pending_word(a, w) | store_pending_word(b, w));

		for (; todo != 0; todo &= todo - 1)
		{
			r = w * 64 + pg_rightmost_one_pos64(todo);
			store_evaluate_row(scan, a, r);
			store_evaluate_row(scan, b, r);
		}
		live.w[w] = active->w[w] & ~a->nulls.w[w] & ~b->nulls.w[w];
	}
	memset(&holds, 0, sizeof(holds));
	switch (n->cmpclass)
	{
		case CC_INT:
			{
				int64	   *av = a->i;
				int64	   *bv = b->i;

				/* CMP_LOOP compares av[base + j] with its third argument */
				CMP_BY_STRATEGY(av, bv[base + j]);
			}
			break;
#ifdef HAVE_INT128
		case CC_NUMERIC:
			{
				int128	   *av = a->n;
				int128	   *bv = b->n;
				RuleMask	slow;

				CMP_BY_STRATEGY(av, bv[base + j]);
				for (w = 0; w < RULE_BATCH_WORDS; w++)
				{
					slow.w[w] = live.w[w] & (a->n_slow.w[w] | b->n_slow.w[w]);
					holds.w[w] &= ~slow.w[w];
				}
				FOREACH_ROW_BIT(&slow, nwords, r)
				{
					bool		anull,
								bnull;
					Datum		ad = rule_numeric_store_datum(scan, a, r, &anull);
					Datum		bd = rule_numeric_store_datum(scan, b, r, &bnull);

					if (strategy_holds(strategy, DatumGetInt32(DirectFunctionCall2(numeric_cmp, ad, bd))))
						holds.w[r >> 6] |= UINT64CONST(1) << (r & 63);
				}
			}
			break;
#endif
		default:				/* CC_FLOAT: PostgreSQL's NaN order */
			FOREACH_ROW_BIT(&live, nwords, r)
			{
				if (strategy_holds(strategy, float_order(a->f[r], b->f[r])))
					holds.w[r >> 6] |= UINT64CONST(1) << (r & 63);
			}
			break;
	}
	for (w = 0; w < RULE_BATCH_WORDS; w++)
	{
		T->w[w] = holds.w[w] & live.w[w];
		F->w[w] = ~holds.w[w] & live.w[w];
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

/*
 * AND and OR are mirror images: a FALSE argument decides an AND, a TRUE one
 * an OR. Later arguments are evaluated only for rows not yet decided, as in
 * PostgreSQL; a row no argument decides is the other outcome if every
 * argument agreed, else NULL.
 */
static void
eval_junction(RuleScan *scan, RuleNode *n, const RuleMask *active, RuleMask *T, RuleMask *F)
{
	bool		is_and = n->kind == RN_AND;
	RuleMask	decided;
	RuleMask	agreed = *active;
	int			i,
				w;

	memset(&decided, 0, sizeof(decided));
	for (i = 0; i < n->nargs; i++)
	{
		RuleMask	act,
					cT,
					cF;
		bool		any = false;

		for (w = 0; w < RULE_BATCH_WORDS; w++)
		{
			act.w[w] = active->w[w] & ~decided.w[w];
			any |= act.w[w] != 0;
		}
		if (!any)
			break;
		eval_batch(scan, n->args[i], &act, &cT, &cF);
		for (w = 0; w < RULE_BATCH_WORDS; w++)
		{
			uint64		dec = is_and ? cF.w[w] : cT.w[w];
			uint64		agr = is_and ? cT.w[w] : cF.w[w];

			decided.w[w] |= dec & act.w[w];
			agreed.w[w] &= agr | ~act.w[w];
		}
	}
	for (w = 0; w < RULE_BATCH_WORDS; w++)
	{
		uint64		other = agreed.w[w] & ~decided.w[w] & active->w[w];

		T->w[w] = is_and ? other : decided.w[w];
		F->w[w] = is_and ? decided.w[w] : other;
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
		case RN_CMP2:
			eval_cmp2_batch(scan, n, active, T, F);
			return;
		case RN_EXPR:
			eval_expr_batch(scan, n, active, T, F);
			return;
		case RN_PREFIX:
			{
				ColumnStore *cs = scan->cols[n->col];
				int			nwords = (scan->nrows + 63) / 64;
				RuleMask	live;
				int			r;

				for (w = 0; w < RULE_BATCH_WORDS; w++)
				{
					live.w[w] = active->w[w] & ~cs->nulls.w[w];
					T->w[w] = F->w[w] = 0;
				}
				FOREACH_ROW_BIT(&live, nwords, r)
				{
					struct varlena *t = (struct varlena *) DatumGetPointer(cs->d[r]);
					int			len = VARSIZE_ANY_EXHDR(t);
					bool		match = (n->exact ? len == n->prefixlen : len >= n->prefixlen) &&
						memcmp(VARDATA_ANY(t), n->prefix, n->prefixlen) == 0;

					if (match != n->negate)
						T->w[r >> 6] |= UINT64CONST(1) << (r & 63);
					else
						F->w[r >> 6] |= UINT64CONST(1) << (r & 63);
				}
			}
			return;
		case RN_CASE:
			{
				RuleMask	remaining = *active;
				int			i;

				memset(T, 0, sizeof(RuleMask));
				memset(F, 0, sizeof(RuleMask));
				/* each WHEN only for rows no earlier WHEN took; THEN only where it is TRUE */
				for (i = 0; i + 1 < n->nargs; i += 2)
				{
					RuleMask	cT,
								cF,
								rT,
								rF;
					bool		any = false;

					for (w = 0; w < RULE_BATCH_WORDS; w++)
						any |= remaining.w[w] != 0;
					if (!any)
						break;
					eval_batch(scan, n->args[i], &remaining, &cT, &cF);
					for (w = 0; w < RULE_BATCH_WORDS; w++)
					{
						cT.w[w] &= remaining.w[w];
						remaining.w[w] &= ~cT.w[w];
					}
					eval_batch(scan, n->args[i + 1], &cT, &rT, &rF);
					for (w = 0; w < RULE_BATCH_WORDS; w++)
					{
						T->w[w] |= rT.w[w] & cT.w[w];
						F->w[w] |= rF.w[w] & cT.w[w];
					}
				}
				{
					RuleMask	dT,
								dF;

					eval_batch(scan, n->args[n->nargs - 1], &remaining, &dT, &dF);
					for (w = 0; w < RULE_BATCH_WORDS; w++)
					{
						T->w[w] |= dT.w[w] & remaining.w[w];
						F->w[w] |= dF.w[w] & remaining.w[w];
					}
				}
			}
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
		case RN_OR:
			eval_junction(scan, n, active, T, F);
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
	RuleMask	all;

	mask_fill(&all, prog->scan->nrows);
	rule_eval_batch_rows(prog, &all, result);
}

void
rule_eval_batch_rows(RuleProgram *prog, const RuleMask *rows, RuleMask *result)
{
	RuleMask	F;
	int			w;
	MemoryContext old;

	if (!prog->scan->derived_ready)
		prepare_batch(prog->scan);
	/* what evaluation allocates (numerics read in place and detoasted) is the batch's */
	old = MemoryContextSwitchTo(prog->scan->econtext->ecxt_per_tuple_memory);
	eval_batch(prog->scan, prog->root, rows, result, &F);
	MemoryContextSwitchTo(old);
	for (w = 0; w < RULE_BATCH_WORDS; w++)
		result->w[w] &= rows->w[w];
}

void
rule_mask_all(RuleScan *scan, RuleMask *m)
{
	mask_fill(m, scan->nrows);
}
