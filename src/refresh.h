/*
 * refresh.h
 *     State of one subject's refresh, shared by refresh.c (tags, the run)
 *     and refresh_segmentation.c (schemes, scorecards, history).
 */
#ifndef SEGMENT_REFRESH_H
#define SEGMENT_REFRESH_H

#include "postgres.h"

#include "funcapi.h"
#include "utils/date.h"
#include "utils/hsearch.h"
#include "utils/rel.h"

#include "refresh_scan.h"

typedef struct TagRun
{
	int32		tag_id;
	char	   *name;
	char	   *rule;
	Oid			owner;			/* the role the rule runs as */
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
	int32		subject_id;
	char	   *name;
	Oid			relid;
	AttrNumber	keyattno;
	Oid			keytype;
	int			ntags;
	TagRun	   *tags;
	RoaringOwned *universe;		/* every key seen */
	int64		rows;
	int64		null_keys;
	int			native_nodes;	/* rule nodes evaluated natively */
	int			fallback_nodes; /* rule nodes left to PostgreSQL's executor */
	int			workers;		/* parallel workers planned */
	/* schemes and scorecards: definitions, then results of the scan */
	int			nschemes;
	ScanScheme *schemes;
	int32	   *scheme_ids;
	char	  **scheme_errors;
	int			nscorecards;
	ScanScorecard *scorecards;
	int32	   *scorecard_ids;
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
	char	   *row_filter;		/* " WHERE column = date" */
	char	   *rows_note;
	List	   *read_relids;	/* the relations read (leaf partitions) */
} SubjectRun;

/* refresh.c */
extern RoaringOwned *refresh_load_previous(const char *query, int32 id, Datum arg2, Oid arg2type);
extern void refresh_put_row(ReturnSetInfo *rsinfo, const char *subject, const char *name,
							int64 members, int64 entered, int64 exited, bool failed);

/* refresh_snapshot.c */
extern DateADT refresh_snapshot_choose(SubjectRun *sr, Relation rel, DateADT as_of);
extern RoaringOwned *refresh_snapshot_previous(int32 tag_id, DateADT d);
extern void refresh_snapshot_save_tag(SubjectRun *sr, TagRun *t, Datum members, int64 run_id,
									  Oid mstype);
extern void refresh_snapshot_save_universe(SubjectRun *sr, Datum universe, int64 count,
										   int64 run_id, Oid mstype);
extern void refresh_snapshot_prune(SubjectRun *sr);

/* refresh_segmentation.c */
extern void load_tags(SubjectRun *sr);
extern void load_schemes(SubjectRun *sr);
extern void load_scorecards(SubjectRun *sr);
extern void save_schemes(SubjectRun *sr, DateADT as_of, int64 run_id, Oid mstype,
						 ReturnSetInfo *rsinfo);
extern void save_scorecards(SubjectRun *sr, DateADT as_of, int64 run_id, Oid mstype);
extern Datum score_to_numeric(ScoreValue v);
extern void save_history(SubjectRun *sr, DateADT as_of, int64 run_id, Oid mstype);

#endif							/* SEGMENT_REFRESH_H */
