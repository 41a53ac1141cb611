/*
 * segment.h
 *     Declarations shared across segment's C files: GUCs and subject lookup.
 */
#ifndef SEGMENT_H
#define SEGMENT_H

#include "postgres.h"

/* GUCs (segment.c) */
extern int	segment_progress_seconds;

/* Member ids of integer-keyed subjects are the keys themselves. */
#define SEGMENT_MAX_MEMBER_ID ((int64) PG_UINT32_MAX)

#endif							/* SEGMENT_H */
