/*
 * rule.h
 *     Tag rules: SQL boolean expressions over one table's row.
 *
 * rule_parse.c turns rule text into an analysed expression (PostgreSQL's own
 * parser, against the subject table) and rejects what a rule may not be.
 * rule_program.c turns an analysed expression into a program that one table
 * scan evaluates for many rules at once, natively for the common shapes.
 */
#ifndef SEGMENT_RULE_H
#define SEGMENT_RULE_H

#include "postgres.h"

#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "nodes/primnodes.h"
#include "utils/date.h"
#include "utils/rel.h"

/* Three-valued result of a rule on one row. */
typedef enum RuleValue
{
	RULE_FALSE = 0,
	RULE_TRUE = 1,
	RULE_NULL = 2
} RuleValue;

/*
 * Parse and analyse `rule` against `rel` (Vars have varno 1). `what` names
 * the rule in error contexts (e.g. "tag \"high_value\""); may be NULL.
 * Errors carry the position inside the rule text. If attnos is not NULL it
 * receives the user columns read (bitmapset of attnums).
 */
extern Node *rule_analyze(Relation rel, const char *rule, const char *what,
						  Bitmapset **attnos);

/* Rewrite an analysed rule for evaluation as of `as_of`: fold segment.as_of()
 * to that date and constant-fold what is immutable. */
extern Expr *rule_plan(Node *analysed, DateADT as_of);

/* The evaluation date: GUC segment.as_of if set, else current_date. */
extern DateADT segment_current_as_of(void);
extern Oid	segment_as_of_funcoid(void);

/* A compiled rule. */
typedef struct RuleProgram RuleProgram;
typedef struct RuleNode RuleNode;

/* Shared per-scan state: one per scan of one relation. */
typedef struct RuleScan
{
	ExprContext *econtext;		/* per-row memory for fallback evaluation */
	AttrNumber	maxattno;		/* deform up to here */
	int			nprep;			/* columns to un-short/detoast once per row */
	AttrNumber *prep_attnos;
	char	  **prep_bufs;		/* per prepared numeric column: reusable buffer */
	int		   *prep_buflens;
	bool	   *prep_is_text;
	int			native_nodes;	/* statistics, for tests and tuning */
	int			fallback_nodes;
} RuleScan;

extern RuleScan *rule_scan_create(ExprContext *econtext);
extern RuleProgram *rule_compile(RuleScan *scan, Expr *planned);
/* Deform and prepare the slot once per row before evaluating programs. */
extern void rule_scan_prepare_row(RuleScan *scan, TupleTableSlot *slot);
extern RuleValue rule_eval(RuleProgram *prog, TupleTableSlot *slot);
extern bool rule_program_is_native(RuleProgram *prog);

#endif							/* SEGMENT_RULE_H */
