/*
 * segment.h
 *     Declarations shared across segment's C files: GUCs, the subject lock
 *     class and the member id range.
 */
#ifndef SEGMENT_H
#define SEGMENT_H

#include "postgres.h"

/* GUCs (segment.c) */
extern int	segment_progress_seconds;
extern char *segment_as_of_guc;

/* asof.c */
#include "utils/guc.h"
extern bool segment_as_of_check(char **newval, void **extra, GucSource source);

/*
 * Advisory lock class for per-subject serialization (refresh, key map
 * changes). SQL takes the same lock with pg_advisory_xact_lock(24173, subject_id).
 */
#define SEGMENT_LOCK_CLASS 24173

/*
 * Advisory lock class ordering live writers with a refresh that moves a
 * subject's evaluation date (live_overlay.c): writers hold it shared from their first
 * live trigger to the end of their transaction, such a refresh exclusively
 * from before its snapshot to its end. Key: the subject id.
 */
#define SEGMENT_LIVE_LOCK_CLASS 24178

/* Member ids of integer-keyed subjects are the keys themselves. */
#define SEGMENT_MAX_MEMBER_ID ((int64) PG_UINT32_MAX)

#endif							/* SEGMENT_H */
