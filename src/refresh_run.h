/*
 * refresh_run.h
 *     The results of one subject's refresh (SubjectRun), kept apart from the
 *     definitions it evaluates (SubjectDefs, catalog.h): refresh.c fills it
 *     (the scan, tags, the universe), refresh_segmentation.c stores its
 *     schemes and scorecards, refresh_snapshot.c its per-date sets. Header
 *     only: no function of refresh.c is called from those files.
 */
#ifndef SEGMENT_REFRESH_RUN_H
#define SEGMENT_REFRESH_RUN_H

#include "postgres.h"

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/hsearch.h"

#include "catalog.h"
#include "refresh_scan.h"

/* What the refresh found for one tag (defs->tags[i]). */
typedef struct TagRun
{
	RoaringOwned *set;			/* the new members, after the scan */
	char	   *error;			/* set when the rule failed on some row */
	int64		members;
	int64		entered;
	int64		exited;
} TagRun;

typedef struct KeyEntry
{
	char	   *key;			/* hash key: pointer to a NUL-terminated copy */
	int64		member_id;
} KeyEntry;

typedef struct SubjectRun
{
	SubjectDefs *defs;			/* what is evaluated (catalog.h) */
	TagRun	   *tags;			/* per defs->tags */
	RoaringOwned *universe;		/* every key seen */
	int64		rows;
	int64		null_keys;
	int			native_nodes;	/* rule nodes evaluated natively */
	int			fallback_nodes; /* rule nodes left to PostgreSQL's executor */
	int			workers;		/* parallel workers planned */
	/* per defs->schemes / defs->scorecards: the scan's units, with their sets */
	ScanScheme *schemes;
	char	  **scheme_errors;
	ScanScorecard *scorecards;
	char	  **scorecard_errors;
	/* text keys only */
	MemoryContext keycxt;		/* lives for the whole refresh */
	HTAB	   *keymap;
	int64		next_member_id;
	List	   *new_keys;		/* KeyEntry * assigned during this run */
	/* daily snapshot subjects (refresh_snapshot.c) */
	char	   *snapshot_column;	/* NULL: not a snapshot subject */
	int32		snapshot_retention;
	DateADT		snapshot_date;	/* the snapshot this run reads */
	bool		backfill;		/* older than the current state's snapshot */
	bool		rerun;			/* the current state's snapshot again */
	char	   *row_filter;		/* " WHERE column = date" */
	char	   *rows_note;
	List	   *read_relids;	/* the relations read (leaf partitions) */
	List	   *heap_leaves;	/* read_relids, when read from their heaps directly */
} SubjectRun;

/*
 * The size of a new set and how many entered and exited it since prev (the
 * stored set, or NULL: everyone entered); frees prev.
 */
static inline void
refresh_count_changes(RoaringOwned *set, RoaringOwned *prev, int64 *members, int64 *entered,
					  int64 *exited)
{
	*members = roaring_bitmap_get_cardinality(set->bitmap);
	*entered = *members;
	*exited = 0;
	if (prev)
	{
		*entered = roaring_bitmap_andnot_cardinality(set->bitmap, prev->bitmap);
		*exited = roaring_bitmap_andnot_cardinality(prev->bitmap, set->bitmap);
		roaring_owned_free(prev);
	}
}

/*
 * A row for the catalog (catalog.h) of a set the run found: its members as
 * a segment.memberset (the caller pfrees row->members) and count; frees set.
 */
static inline void
refresh_set_row(CatalogSetRow *row, RoaringOwned *set, DateADT as_of, int64 run_id)
{
	memset(row, 0, sizeof(*row));
	row->members = PointerGetDatum(memberset_from_roaring(set->bitmap));
	row->count = roaring_bitmap_get_cardinality(set->bitmap);
	row->as_of = as_of;
	row->run_id = run_id;
	roaring_owned_free(set);
}

/* One result row of segment.refresh. */
static inline void
refresh_put_row(ReturnSetInfo *rsinfo, const char *subject, const char *name,
				int64 members, int64 entered, int64 exited, bool failed)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, failed, failed, failed};

	/* name columns want NAMEDATALEN buffers */
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(subject));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(name));
	values[2] = Int64GetDatum(members);
	values[3] = Int64GetDatum(entered);
	values[4] = Int64GetDatum(exited);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

#endif							/* SEGMENT_REFRESH_RUN_H */
