/*
 * subxact.h
 *     One step run in an internal subtransaction, its error caught and
 *     handed back (subxact.c). Prefix: subxact_.
 *
 * For work whose failure must not fail the caller: a rule of a refresh, an
 * after-refresh step, the evaluation of rules on Citus shards, a trial
 * analysis. The step's writes are kept when it returns and rolled back when
 * it throws. A query cancel, a shutdown or running out of memory are never
 * a step's fault: they are rethrown, and the caller fails as it would
 * without the subtransaction.
 */
#ifndef SEGMENT_SUBXACT_H
#define SEGMENT_SUBXACT_H

#include "postgres.h"

typedef void (*SubxactStep) (void *arg);

/*
 * Runs step(arg) in an internal subtransaction and returns true when it
 * returned (its subtransaction committed). When it threw: rolls the
 * subtransaction back, restores the caller's memory context and resource
 * owner, rethrows a cancel, shutdown or out-of-memory error, and otherwise
 * returns false with *error (if error is not NULL) a copy of the error in
 * the caller's memory context (FreeErrorData it); step's allocations in the
 * caller's context stay.
 */
extern bool subxact_run(SubxactStep step, void *arg, ErrorData **error);

#endif							/* SEGMENT_SUBXACT_H */
