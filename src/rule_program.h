/*
 * rule_program.h
 *     Internals shared by rule_compile.c, which turns analysed rules into
 *     programs, and rule_batch.c, which keeps the batch of rows and runs the
 *     programs over it. Nothing outside those two files includes this.
 *
 * Prefix of exported symbols of the rule files (rule_parse.c, rule_compile.c,
 * rule_batch.c, rule_numeric.c, rule_owner.c, rule_matches.c): rule_.
 */
#ifndef SEGMENT_RULE_PROGRAM_H
#define SEGMENT_RULE_PROGRAM_H

#include "rule.h"
#include "storage/buf.h"

/* btree operator families whose comparisons run natively */
#define FAM_INTEGER		1976
#define FAM_FLOAT		1970
#define FAM_NUMERIC		1988
#define FAM_TEXT		1994
#define FAM_DATETIME	434
#define FAM_BOOL		424

/* comparison strategies beyond btree's 1..5 */
#define STRAT_NE		6		/* negator of btree equality */
#define STRAT_NEVER		7		/* false for every non-null value */
#define STRAT_ALWAYS	8		/* true for every non-null value */

typedef enum RuleNodeKind
{
	RN_CONST,
	RN_AND,
	RN_OR,
	RN_NOT,
	RN_BOOLTEST,
	RN_BOOLVAR,
	RN_NULLTEST,
	RN_CMP,						/* value op constant */
	RN_CMP2,					/* value op value */
	RN_IN,						/* value op ANY / ALL (constants) */
	RN_PREFIX,					/* text LIKE 'prefix%' (or without wildcard) */
	RN_CASE,					/* CASE WHEN c THEN r ... ELSE d END, boolean */
	RN_EXPR						/* anything else: PostgreSQL's executor */
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
	FK_NONE = -1,
	FK_BOOL,
	FK_INT2,
	FK_INT4,
	FK_INT8,
	FK_FLOAT4,
	FK_FLOAT8,
	FK_DATUM
} FetchKind;

/* Integer-valued expressions computed per batch (a "derived" store). */
typedef enum DeriveKind
{
	DV_NONE,					/* a table column */
	DV_DATE_MI,					/* date - date -> int4 */
	DV_INT_ADD,
	DV_INT_SUB,
	DV_INT_MUL,
	DV_DATE_PLI,				/* date + int4 -> date */
	DV_DATE_MII,				/* date - int4 -> date */
	DV_COALESCE,				/* coalesce(value, constant) */
	DV_NUM_ADD,					/* numeric + numeric (rule_numeric.c) */
	DV_NUM_SUB,
	DV_NUM_MUL
} DeriveKind;

#define DERIVE_IS_NUMERIC(k) ((k) >= DV_NUM_ADD)

/* An operand of a derived value: another store, or a constant (col < 0). */
typedef struct Operand
{
	int			col;
	int64		k;
	Oid			type;
#ifdef HAVE_INT128
	int128		nk;				/* numeric constant * 10^8 (exact) ... */
#endif
	Datum		kd;				/* ... and the constant itself */
} Operand;

/* A constant a value is compared with, converted once. */
typedef struct CmpConst
{
	int64		i;
	double		f;
	Datum		d;
	const char *s;
	int			slen;
	bool		isnull;
#ifdef HAVE_INT128
	int128		n;				/* numeric constant * 10^8 ... */
	bool		n_ok;			/* ... when exact */
#endif
} CmpConst;

/*
 * The values of one column (or derived value) over the batch. d holds the
 * datum (by-reference values copied into the batch arena); i or f the value
 * converted once for native comparisons.
 */
typedef struct ColumnStore
{
	int			attidx;			/* table column, or -1 when derived */
	Oid			typid;
	int16		typlen;
	bool		numeric_native; /* numerics: also their scaled form in n[] */
	FetchKind	fetch;			/* conversion to i / f, or FK_DATUM */
	RuleMask	nulls;
	Datum		d[RULE_BATCH_ROWS];
	int64	   *i;
	double	   *f;
#ifdef HAVE_INT128
	int128	   *n;				/* numeric_native: value * 10^8 ... */
	RuleMask	n_slow;			/* ... except these rows: use numeric_cmp */
#endif
	RuleMask	d_ready;		/* derived numerics: rows whose d[] is computed */
	int64	   *tk;				/* text compared for equality: text_key() per row */
	/* derived values */
	DeriveKind	derive;
	Operand		a;
	Operand		b;
	Oid			funcoid;		/* PostgreSQL's function: raises its own error */
	bool		result_int4;	/* int arithmetic overflows at int4 range */
	RuleMask	errors;			/* rows where PostgreSQL would raise an error */
	bool		inactive;		/* not read since rule_scan_begin_columns */
} ColumnStore;

typedef struct RuleNode RuleNode;

struct RuleNode
{
	RuleNodeKind kind;
	RuleValue	constval;		/* RN_CONST */
	int			strategy;		/* RN_CMP / RN_IN */
	CmpClass	cmpclass;
	int			col;			/* store index */
	int			col2;			/* RN_CMP2: the right-hand value's store */
	Oid			collid;
	BoolTestType booltest;		/* RN_BOOLTEST */
	bool		isnull_test;	/* RN_NULLTEST: IS NULL (true) or IS NOT NULL */
	bool		use_or;			/* RN_IN: ANY (true) or ALL */
	CmpConst	c;				/* RN_CMP */
	int			nelems;			/* RN_IN */
	CmpConst   *elems;
	const char *prefix;			/* RN_PREFIX */
	int			prefixlen;
	bool		exact;			/* RN_PREFIX: no trailing %, whole value */
	bool		negate;			/* RN_PREFIX: NOT LIKE */
	int			nargs;			/* RN_AND / RN_OR / RN_NOT / RN_BOOLTEST / RN_CASE */
	RuleNode  **args;			/* RN_CASE: cond, result, ..., default */
	ExprState  *state;			/* RN_EXPR */
	int			nreads;			/* RN_EXPR: stores it reads */
	int		   *reads;
};

struct RuleProgram
{
	RuleScan   *scan;
	RuleNode   *root;
};

/*
 * How rule_scan_add_row reads one table column into its store: decided once
 * per scan (rule_scan_begin), so that the per-row loop touches a small array
 * instead of every store's descriptor.
 */
typedef enum StepKind
{
	SK_INT,						/* by value, also as int64 in i[] */
	SK_FLOAT4,					/* by value, also as double in f[] */
	SK_FLOAT8,
	SK_BYVAL,					/* by value, d[] only */
	SK_NUMERIC,					/* varlena copied with a 4-byte header, scaled in n[] */
	SK_VARLENA,					/* varlena copied */
	SK_TEXT_KEY,				/* text copied, and its equality key in tk[] */
	SK_BYREF					/* fixed-length or cstring by reference, copied */
} StepKind;

typedef struct FetchStep
{
	int			attidx;
	StepKind	kind;
	FetchKind	fetch;			/* SK_INT */
	int			typlen;			/* SK_BYREF: > 0, or -2 for cstring */
	ColumnStore *cs;
} FetchStep;

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
	bool		derived_ready;	/* derived stores computed for this batch */
	char	   *arena;			/* copies of by-reference values of the batch */
	Size		arena_used;
	Size		arena_size;
	char	   *arena_base;		/* the long-lived first chunk */
	/*
	 * Heap pages the batch's rows are on, pinned until the batch ends: their
	 * by-reference values are read in place instead of copied.
	 */
	Buffer		pins[RULE_BATCH_ROWS];
	int			npins;
	int			native_nodes;
	int			fallback_nodes;
	int			nsteps;			/* table columns read, from rule_scan_begin */
	int			steps_size;
	FetchStep  *steps;
	AttrNumber	fetch_maxattno; /* the last column the steps read, or the key */
	/* what the steps were built for (rule_scan_begin_columns) */
	int			steps_ncols;	/* ncols then; -1: not built */
	bool		steps_all;
	Bitmapset  *steps_attnos;
	AttrNumber	steps_also;
	int			nactive;		/* stores read since that begin, derived ones included */
	int		   *active;
	TupleDesc	vdesc;			/* vslot's: a copy of the relation's */
};

/*
 * A text value's equality key: its first 7 bytes and its length (capped at
 * 255). Equal texts have equal keys; texts of up to 7 bytes are equal iff
 * their keys are, longer ones are then compared in full.
 */
#define TEXT_KEY_EXACT_LEN 7

static inline int64
text_key(const char *s, int len)
{
	unsigned char buf[8] = {0};
	int64		k;

	memcpy(buf, s, Min(len, TEXT_KEY_EXACT_LEN));
	buf[7] = (unsigned char) Min(len, 255);
	memcpy(&k, buf, sizeof(k));
	return k;
}

/* rule_batch.c */
extern int	rule_column_store(RuleScan *scan, int attidx);
extern int	rule_column_store_native(RuleScan *scan, int attidx, CmpClass cls, FetchKind fk);
extern void rule_column_store_want_text_key(RuleScan *scan, int col);
extern int	rule_column_store_derived(RuleScan *scan, DeriveKind kind, Operand a, Operand b,
								 Oid funcoid, Oid restype, bool result_int4);
extern FetchKind rule_fetch_kind_for(Oid typid, CmpClass *cls);
extern int64 rule_fetch_int(FetchKind fk, Datum d);

/* rule_numeric.c: numeric + - * computed per batch as scaled int128 */
extern void rule_numeric_derive_batch(RuleScan *scan, ColumnStore *cs);
extern Datum rule_numeric_store_datum(RuleScan *scan, ColumnStore *cs, int r, bool *isnull);
extern void rule_numeric_store_prepare(RuleScan *scan, ColumnStore *cs, const RuleMask *rows);

#endif							/* SEGMENT_RULE_PROGRAM_H */
