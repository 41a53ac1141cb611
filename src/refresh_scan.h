/*
 * refresh_scan.h
 *     The scan at the heart of a refresh: compile every rule of the subject's
 *     tags, schemes and scorecards, read rows, evaluate the rules a batch at
 *     a time and collect member ids into CRoaring bitmaps: one per tag, one
 *     per scheme bucket (first matching bucket wins), one per distinct score
 *     of each scorecard. The leader and parallel workers (refresh_parallel.c)
 *     run the same code over their share of the table. Prefix: refresh_scan_.
 */
#ifndef SEGMENT_REFRESH_SCAN_H
#define SEGMENT_REFRESH_SCAN_H

#include "postgres.h"

#include "access/tableam.h"
#include "utils/date.h"

#include "catalog.h"
#include "id_window.h"
#include "memberset.h"
#include "numeric_scaled.h"
#include "rule.h"

#define ID_BUFFER_SIZE 2048

typedef struct ScanTag
{
	const char *name;
	const char *rule;
	Oid			owner;			/* tags: the role it runs as (rule_owner.h) */
	bool		skip;			/* failed earlier in this refresh */
	Expr	   *planned;		/* the rule analysed and planned already, or NULL */
	RuleProgram *prog;
	RoaringOwned *set;
	uint32	   *buf;			/* ids of batches spanning chunks (add_many) */
	int			nbuf;
	IdWindow	win;			/* ids of the current chunk (id_window.c) */
} ScanTag;

/* Ordered buckets; a row goes to the first whose rule is true. */
typedef struct ScanScheme
{
	const char *name;
	Oid			owner;			/* every bucket runs as the scheme's owner */
	bool		skip;
	int			nbuckets;
	ScanTag    *buckets;
} ScanScheme;

/* The members with one score. */
typedef struct ScoreSet
{
	ScoreValue	score;			/* hash key */
	RoaringOwned *set;
	uint32	   *buf;
	int			nbuf;
} ScoreSet;

/* base + the points of every item whose rule is true. */
typedef struct ScanScorecard
{
	const char *name;
	Oid			owner;			/* every item runs as the scorecard's owner */
	bool		skip;
	ScoreValue	base;
	int			nitems;
	ScanTag    *items;			/* rule and program per item */
	ScoreValue *points;
	HTAB	   *scores;			/* ScoreValue -> ScoreSet */
} ScanScorecard;

/* Maps a text key to its member id (the leader's key map). */
typedef uint32 (*ScanKeyMapper) (void *arg, Datum key);

typedef struct ScanCore
{
	Relation	rel;			/* rules are compiled against it */
	Relation	scan_rel;		/* the heap a parallel scan reads when not rel (a leaf partition), or NULL */
	AttrNumber	keyattno;
	Oid			keytype;
	const char *subject;		/* for messages */
	const char *row_filter;		/* read through SQL: " WHERE ..." (one snapshot), or NULL */
	const char *rows_note;		/* for messages about those rows, or NULL */
	ScanKeyMapper map_key;		/* text keys only */
	void	   *map_key_arg;
	int			ntags;
	ScanTag    *tags;
	int			nschemes;
	ScanScheme *schemes;
	int			nscorecards;
	ScanScorecard *scorecards;
	RuleScan   *rs;
	ExprContext *econtext;
	RoaringOwned *universe;
	uint32	   *ubuf;
	int			nubuf;
	IdWindow	uwin;
	int64		rows;
	int64		null_keys;
	int			native_nodes;
	int			fallback_nodes;
	/*
	 * The unit (tag, then scheme, then scorecard, numbered in that order)
	 * being compiled or evaluated, -1 otherwise: a rule error fails its unit.
	 */
	volatile int *current_unit;
	/* the scanning role, restored after each unit ran as its owner */
	Oid			save_userid;
	int			save_sec_context;
} ScanCore;

#define SCAN_UNITS(sc) ((sc)->ntags + (sc)->nschemes + (sc)->nscorecards)

/*
 * The scan units of the definitions (catalog.h), in CurrentMemoryContext:
 * name, rule and owner of every tag; the buckets of every scheme; base,
 * items and points of every scorecard (skipped when its definition has an
 * error). Rules and names point into defs.
 */
extern ScanTag *refresh_scan_tags_from_defs(const SubjectDefs *defs);
extern ScanScheme *refresh_scan_schemes_from_defs(const SubjectDefs *defs);
extern ScanScorecard *refresh_scan_scorecards_from_defs(const SubjectDefs *defs);

/* The set of one score of a scorecard, created on first use. */
extern ScoreSet *refresh_scan_score_set(ScanScorecard *card, ScoreValue score);

/* Compile the tags that are not skipped; create their empty sets. */
extern void refresh_scan_compile(ScanCore *sc, DateADT as_of);
/* Read every row `scan` returns (a serial or a parallel scan). */
extern void refresh_scan_run(ScanCore *sc, TableScanDesc scan, bool report_progress);
/*
 * Or feed rows one slot at a time (live maintenance reads transition
 * tables); ids is the caller's array of RULE_BATCH_ROWS member ids, and
 * refresh_scan_flush evaluates the last partial batch.
 */
extern void refresh_scan_add_slot(ScanCore *sc, TupleTableSlot *slot, uint32 *ids);
extern void refresh_scan_flush(ScanCore *sc, uint32 *ids);
/* Flush buffers into the sets; free the evaluation state. */
extern void refresh_scan_finish(ScanCore *sc);
/*
 * Live maintenance compiles once and evaluates statement after statement:
 * refresh_scan_collect flushes the buffers into the sets and keeps the
 * programs; refresh_scan_restart gives the compiled core new empty sets (in
 * CurrentMemoryContext) and an empty batch for the next rows, fetching only
 * the columns in attnos (NULL: all; rule_scan_begin_columns): then only the
 * units reading no other column may be evaluated. Units skipped at the
 * restart share one empty set: it must not be changed.
 */
extern void refresh_scan_collect(ScanCore *sc);
extern void refresh_scan_restart(ScanCore *sc, Relation rel, const Bitmapset *attnos);

#endif							/* SEGMENT_REFRESH_SCAN_H */
