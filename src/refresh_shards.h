/*
 * refresh_shards.h
 *     Refresh of a Citus distributed subject by evaluating its rules on the
 *     shards and combining member sets (refresh_shards.c).
 */
#ifndef SEGMENT_REFRESH_SHARDS_H
#define SEGMENT_REFRESH_SHARDS_H

#include "postgres.h"

#include "utils/date.h"

#include "refresh_scan.h"

/* GUC segment.citus_pushdown: evaluate on the shards when possible (on). */
extern bool segment_citus_pushdown;

/*
 * If sc's relation is a Citus table with an integer key and every rule can
 * be sent, evaluate on the shards and store the results in sc (compiled
 * already, not yet run); true when it did. False: nothing was stored, read
 * the rows instead. Cancels and out-of-memory are raised.
 */
extern bool refresh_shards_scan(ScanCore *sc, DateADT as_of);

#endif							/* SEGMENT_REFRESH_SHARDS_H */
