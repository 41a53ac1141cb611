/*
 * live.h
 *     Live maintenance (live.c): the overlay of per-customer rows in
 *     segment.live_member that statement-level triggers keep current, and
 *     the fold that a refresh runs once it has written new state.
 */
#ifndef SEGMENT_LIVE_H
#define SEGMENT_LIVE_H

#include "postgres.h"

/*
 * Delete the overlay rows of a subject that the active snapshot (the
 * refresh's) sees, leaving versions written after it. Needs an open SPI
 * connection; the active snapshot must be the one the refresh scanned with.
 */
extern void live_fold(int32 subject_id);

#endif							/* SEGMENT_LIVE_H */
