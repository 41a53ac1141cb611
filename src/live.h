/*
 * live.h
 *     Live maintenance, the refresh side (live_overlay.c): the overlay of per-customer rows in
 *     segment.live_member that statement-level triggers keep current, and
 *     the fold that a refresh runs once it has written new state.
 *
 * Prefix of the live files (live_trigger.c, live_defs.c, live_overlay.c):
 * live_; SQL-callable functions segment_live_*.
 */
#ifndef SEGMENT_LIVE_H
#define SEGMENT_LIVE_H

#include "postgres.h"

#include "utils/date.h"

/*
 * A refresh of the subject for as_of is about to take its snapshot (it holds
 * the subject's refresh lock, SPI is connected). When as_of differs from the
 * date of the stored state, wait for the live writers in progress and keep
 * new ones waiting until the refresh's transaction ends, so that no overlay
 * row evaluated at the old date can appear after the refresh. Returns
 * whether it did (the date moves).
 */
extern bool live_refresh_begin(int32 subject_id, DateADT as_of);

/*
 * Delete the overlay rows of a subject that the active snapshot (the
 * refresh's) sees, leaving versions written after it. Needs an open SPI
 * connection; the active snapshot must be the one the refresh scanned with.
 * date_moved: what live_refresh_begin returned; then no overlay row
 * evaluated at another date than as_of may remain (40001 otherwise: a
 * refresh with a transaction snapshot taken before live writers committed).
 */
extern void live_fold(int32 subject_id, const char *subject, DateADT as_of, bool date_moved);

#endif							/* SEGMENT_LIVE_H */
