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
/* The set of the tag in the retained snapshot before sr's, or NULL. */
extern RoaringOwned *refresh_snapshot_previous(int32 tag_id, DateADT d);
extern void refresh_snapshot_save_tag(SubjectRun *sr, int32 tag_id, const CatalogSetRow *row);
extern void refresh_snapshot_save_universe(SubjectRun *sr, const CatalogSetRow *row);
extern void refresh_snapshot_prune(SubjectRun *sr);
extern void refresh_snapshot_check_unique(SubjectRun *sr, Relation rel);

#endif							/* SEGMENT_REFRESH_SNAPSHOT_H */
