/*
 * refresh_snapshot.h
 *     The part of a refresh particular to daily snapshot subjects
 *     (refresh_snapshot.c).
 */
#ifndef SEGMENT_REFRESH_SNAPSHOT_H
#define SEGMENT_REFRESH_SNAPSHOT_H

#include "utils/rel.h"

#include "refresh_run.h"

/* The snapshot the run reads (the newest on or before as_of); sets sr's snapshot fields. */
extern DateADT refresh_snapshot_choose(SubjectRun *sr, Relation rel, DateADT as_of);
extern void refresh_snapshot_check_unique(SubjectRun *sr, Relation rel);

#endif							/* SEGMENT_REFRESH_SNAPSHOT_H */
