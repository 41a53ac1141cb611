/*
 * rule_numeric.c
 *     numeric + - * over a batch of rows, for rules such as
 *     current_balance + term_balance < 0.5 * balance_3m_ago.
 *
 * A derived numeric value is held like a numeric column: the exact scaled
 * int128 form of numeric_scaled.c (value * 10^8) per row. A row whose result
 * has no exact such form is "slow": an operand that is NaN, infinite, has
 * more than 8 decimals or is 10^20 and beyond, an int128 overflow, a product
 * with more than 8 decimals. A slow row's value is computed by PostgreSQL's
 * own numeric_add / numeric_sub / numeric_mul, and only when a comparison
 * evaluates that row (rule_numeric_store_prepare, rule_numeric_store_datum), so
 * PostgreSQL's errors (a value that overflows the numeric format) are raised
 * where PostgreSQL raises them and nowhere else. As PostgreSQL's strict
 * operators do, both operands are evaluated, left first, before a NULL
 * operand makes the result NULL: a row is slow when an operand is slow, even
 * where the other operand is NULL.
 *
 * Rows that are not slow cannot raise: + - * of finite numerics below 10^28
 * stay far inside the numeric format.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/fmgrprotos.h"

#include "numeric_scaled.h"
#include "rule_program.h"

#ifdef HAVE_INT128

#define SCALE ((int128) 100000000)	/* 10^8, numeric_scaled's scale */

#define ROW_BIT(m, r) ((((m)->w[(r) >> 6]) >> ((r) & 63)) & 1)

/* Compute the store's scaled values for the batch; mark the slow rows. */
void
rule_numeric_derive_batch(RuleScan *scan, ColumnStore *cs)
{
	ColumnStore *a = cs->a.col >= 0 ? scan->cols[cs->a.col] : NULL;
	ColumnStore *b = cs->b.col >= 0 ? scan->cols[cs->b.col] : NULL;
	int			nrows = scan->nrows;
	int			w,
				r;

	for (w = 0; w < RULE_BATCH_WORDS; w++)
	{
		cs->nulls.w[w] = (a ? a->nulls.w[w] : 0) | (b ? b->nulls.w[w] : 0);
		cs->n_slow.w[w] = (a ? a->n_slow.w[w] : 0) | (b ? b->n_slow.w[w] : 0);
		cs->d_ready.w[w] = 0;
	}
	for (r = 0; r < nrows; r++)
	{
		int128		x,
					y,
					v = 0;
		bool		overflow = false;

		if (ROW_BIT(&cs->nulls, r) | ROW_BIT(&cs->n_slow, r))
		{
			cs->n[r] = 0;
			continue;
		}
		x = a ? a->n[r] : cs->a.nk;
		y = b ? b->n[r] : cs->b.nk;
		switch (cs->derive)
		{
			case DV_NUM_ADD:
				overflow = __builtin_add_overflow(x, y, &v);
				break;
			case DV_NUM_SUB:
				overflow = __builtin_sub_overflow(x, y, &v);
				break;
			default:			/* DV_NUM_MUL: (x / 10^8) * (y / 10^8) * 10^8 */
				overflow = __builtin_mul_overflow(x, y, &v) || v % SCALE != 0;
				v /= SCALE;
				break;
		}
		if (overflow)
		{
			cs->n_slow.w[r >> 6] |= UINT64CONST(1) << (r & 63);
			v = 0;
		}
		cs->n[r] = v;
	}
}

/*
 * The numeric datum of row r of a store (a numeric column, or a derived
 * value computed here by PostgreSQL's function, once per batch): operands
 * first, left to right, then NULL if one is NULL. May raise PostgreSQL's
 * error for the row.
 */
Datum
rule_numeric_store_datum(RuleScan *scan, ColumnStore *cs, int r, bool *isnull)
{
	Datum		da,
				db,
				result = (Datum) 0;
	bool		anull = false,
				bnull = false;

	if (cs->derive == DV_NONE || ROW_BIT(&cs->d_ready, r))
	{
		*isnull = ROW_BIT(&cs->nulls, r);
		return cs->d[r];
	}
	check_stack_depth();
	da = cs->a.col >= 0 ? rule_numeric_store_datum(scan, scan->cols[cs->a.col], r, &anull) : cs->a.kd;
	db = cs->b.col >= 0 ? rule_numeric_store_datum(scan, scan->cols[cs->b.col], r, &bnull) : cs->b.kd;
	if (!anull && !bnull)
	{
		MemoryContext old = MemoryContextSwitchTo(scan->econtext->ecxt_per_tuple_memory);

		switch (cs->derive)
		{
			case DV_NUM_ADD:
				result = DirectFunctionCall2(numeric_add, da, db);
				break;
			case DV_NUM_SUB:
				result = DirectFunctionCall2(numeric_sub, da, db);
				break;
			default:
				result = DirectFunctionCall2(numeric_mul, da, db);
				break;
		}
		MemoryContextSwitchTo(old);
	}
	cs->d[r] = result;
	cs->d_ready.w[r >> 6] |= UINT64CONST(1) << (r & 63);
	*isnull = anull || bnull;
	return result;
}

/*
 * Evaluate, in row order, the slow rows among `rows` (the rows a comparison
 * is evaluated for, NULL ones included): their values, and PostgreSQL's
 * errors, as PostgreSQL would meet them.
 */
void
rule_numeric_store_prepare(RuleScan *scan, ColumnStore *cs, const RuleMask *rows)
{
	int			w;

	if (cs->derive == DV_NONE)
		return;
	for (w = 0; w < RULE_BATCH_WORDS; w++)
	{
		uint64		todo = rows->w[w] & cs->n_slow.w[w] & ~cs->d_ready.w[w];

		for (; todo != 0; todo &= todo - 1)
		{
			bool		isnull;

			(void) rule_numeric_store_datum(scan, cs, w * 64 + pg_rightmost_one_pos64(todo), &isnull);
		}
	}
}

#endif							/* HAVE_INT128 */
