/*
 * refresh_segmentation.h
 *     The schemes and scorecards of a refresh (refresh_segmentation.c).
 */
#ifndef SEGMENT_REFRESH_SEGMENTATION_H
#define SEGMENT_REFRESH_SEGMENTATION_H

#include "refresh_run.h"

/* Store the buckets of every scheme; one result row per bucket. */
extern void refresh_segmentation_save_schemes(SubjectRun *sr, DateADT as_of, int64 run_id,
											  ReturnSetInfo *rsinfo);
/* Store the members of every distinct score of every scorecard. */
extern void refresh_segmentation_save_scorecards(SubjectRun *sr, DateADT as_of, int64 run_id);

#endif							/* SEGMENT_REFRESH_SEGMENTATION_H */
