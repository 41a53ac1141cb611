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
/*
 * rule_analyze resolves names under the pinned search_path (stored rules);
 * this one under the caller's (a rule being defined, as its author wrote it).
 */
extern Node *rule_analyze_as_written(Relation rel, const char *rule, const char *what,
									 Bitmapset **attnos);

/* A copy of an analysed rule with segment.as_of() replaced by as_of. */
extern Node *rule_fold_as_of(Node *analysed, DateADT as_of);
/* Rewrite an analysed rule for evaluation as of `as_of`: fold segment.as_of()
 * to that date and constant-fold what is immutable. */
extern Expr *rule_plan(Node *analysed, DateADT as_of);

/* The evaluation date: GUC segment.as_of if set, else current_date. */
extern DateADT segment_current_as_of(void);
extern Oid	segment_as_of_funcoid(void);

/*
 * A stored goal or event condition evaluated as its owner (rule_matches.c):
 * rule_matcher_begin pins the search_path, analyses the rule against rel,
 * checks that the owner may read what it reads, and becomes the owner with
 * SECURITY_RESTRICTED_OPERATION (rule_owner.h); rule_matcher_test says
 * whether the rule IS TRUE on a row of rel; rule_matcher_end restores the
 * user and the settings. An error in between unwinds both with the
 * (sub)transaction.
 */
typedef struct RuleMatcher RuleMatcher;

extern RuleMatcher *rule_matcher_begin(Relation rel, const char *rule, const char *what,
									   Oid owner);
extern bool rule_matcher_test(RuleMatcher *m, TupleTableSlot *slot);
extern void rule_matcher_end(RuleMatcher *m);

/*
 * Batch evaluation. A scan feeds rows into a RuleScan (rule_scan_add_row),
 * which copies the columns the rules read; when the batch is full the caller
 * evaluates every program over it (rule_eval_batch) and starts a new batch
 * (rule_scan_reset_batch).
 */
#define RULE_BATCH_ROWS 256
#define RULE_BATCH_WORDS (RULE_BATCH_ROWS / 64)

typedef struct RuleMask
{
	uint64		w[RULE_BATCH_WORDS];
} RuleMask;

typedef struct RuleProgram RuleProgram;
typedef struct RuleScan RuleScan;

extern RuleScan *rule_scan_create(Relation rel, ExprContext *econtext);
extern RuleProgram *rule_compile(RuleScan *scan, Expr *planned);
/* After all programs are compiled, before the first row. */
extern void rule_scan_begin(RuleScan *scan, AttrNumber also_attno);
/* Only the columns in attnos (NULL: all); the programs reading others must not run. */
extern void rule_scan_begin_columns(RuleScan *scan, AttrNumber also_attno, const Bitmapset *attnos);
extern void rule_scan_end(RuleScan *scan);
/* The relation as opened by the statement that evaluates next (live maintenance). */
extern void rule_scan_set_rel(RuleScan *scan, Relation rel);
extern void rule_scan_add_row(RuleScan *scan, TupleTableSlot *slot);
extern int	rule_scan_nrows(RuleScan *scan);
/* Rows of the batch for which the program is TRUE. */
extern void rule_eval_batch(RuleProgram *prog, RuleMask *result);
/* Same, evaluating only the given rows (as a CASE evaluates later WHENs). */
extern void rule_eval_batch_rows(RuleProgram *prog, const RuleMask *rows, RuleMask *result);
extern void rule_mask_all(RuleScan *scan, RuleMask *m);
extern void rule_scan_reset_batch(RuleScan *scan);
extern void rule_scan_stats(RuleScan *scan, int *native_nodes, int *fallback_nodes);

#endif							/* SEGMENT_RULE_H */
