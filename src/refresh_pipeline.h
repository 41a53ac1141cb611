/*
 * refresh_pipeline.h
 *     What a refresh does around writing a subject's state, in order, from
 *     one place: named steps, each logged in segment.run_step with its
 *     duration (docs/dba-guide.md#the-refresh-pipeline).
 *
 * The refresh calls refresh_pipeline_begin after it has registered its run
 * (segment.run) and before it writes the first state row, and
 * refresh_pipeline_end after the last state row (universe history) and
 * before it finishes the run. Every refresh entry point goes through
 * refresh.c's refresh_subject: segment.refresh(), snapshot subjects, the
 * Citus and parallel scans (scan phase only) and the nightly run.
 */
#ifndef SEGMENT_REFRESH_PIPELINE_H
#define SEGMENT_REFRESH_PIPELINE_H

#include "postgres.h"

#include "utils/date.h"

typedef struct RefreshPipeline RefreshPipeline;

/*
 * Runs the steps that need the state as it was before the run (capturing
 * the audiences of entry rules). writes_state: false when the run writes no
 * current state (a snapshot back-fill): then no step runs, at begin or end.
 * Allocated in CurrentMemoryContext, which must live until
 * refresh_pipeline_end.
 */
extern RefreshPipeline *refresh_pipeline_begin(int32 subject_id, const char *subject,
											   int64 run_id, DateADT as_of, bool writes_state);

/* Runs the steps that follow the state written (invalidations, entry rules). */
extern void refresh_pipeline_end(RefreshPipeline *pipeline);

#endif							/* SEGMENT_REFRESH_PIPELINE_H */
