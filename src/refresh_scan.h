/*
 * refresh_scan.h
 *     The scan at the heart of a refresh: compile every tag's rule, read
 *     rows, evaluate the rules a batch at a time and collect member ids into
 *     one CRoaring bitmap per tag. The leader and parallel workers
 *     (refresh_parallel.c) run the same code over their share of the table.
 */
#ifndef SEGMENT_REFRESH_SCAN_H
#define SEGMENT_REFRESH_SCAN_H

#include "postgres.h"

#include "access/tableam.h"
#include "utils/date.h"

#include "memberset.h"
#include "rule.h"

#define ID_BUFFER_SIZE 2048

typedef struct ScanTag
{
	const char *name;
	const char *rule;
	bool		skip;			/* failed earlier in this refresh */
	RuleProgram *prog;
	RoaringOwned *set;
	uint32	   *buf;
	int			nbuf;
} ScanTag;

/* Maps a text key to its member id (the leader's key map). */
typedef uint32 (*ScanKeyMapper) (void *arg, Datum key);

typedef struct ScanCore
{
	Relation	rel;
	AttrNumber	keyattno;
	Oid			keytype;
	const char *subject;		/* for messages */
	ScanKeyMapper map_key;		/* text keys only */
	void	   *map_key_arg;
	int			ntags;
	ScanTag    *tags;
	RuleScan   *rs;
	ExprContext *econtext;
	RoaringOwned *universe;
	uint32	   *ubuf;
	int			nubuf;
	int64		rows;
	int64		null_keys;
	int			native_nodes;
	int			fallback_nodes;
	/* index of the tag being compiled or evaluated, -1 otherwise */
	volatile int *current_tag;
} ScanCore;

/* Compile the tags that are not skipped; create their empty sets. */
extern void scan_core_compile(ScanCore *sc, DateADT as_of);
/* Read every row `scan` returns (a serial or a parallel scan). */
extern void scan_core_run(ScanCore *sc, TableScanDesc scan, bool report_progress);
/* Flush buffers into the sets; free the evaluation state. */
extern void scan_core_finish(ScanCore *sc);

#endif							/* SEGMENT_REFRESH_SCAN_H */
