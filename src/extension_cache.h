/*
 * extension_cache.h
 *     When a backend's caches of the extension's own objects go stale
 *     (extension_cache.c). Prefix: extension_cache_.
 *
 * A backend keeps, for its whole life, SPI plans over the extension's
 * tables, functions and its memberset type, and OIDs of its objects. After
 * DROP EXTENSION segment; CREATE EXTENSION segment (in any session) those
 * name dropped objects: a plan prepared with the old memberset type as a
 * parameter fails with XX000 "cache lookup failed for type".
 *
 * The rule: a backend-lifetime cache holding an OID of one of the
 * extension's objects, or data read from its tables, remembers
 * extension_cache_generation() when it is filled and is rebuilt when the
 * generation differs. Plans saved with segment_saved_plan (subject.h) follow
 * it already. The generation moves when a schema is created, dropped or
 * changed in the database (DROP EXTENSION drops segment_internal, CREATE
 * EXTENSION and an update from 0.1.0 create it), when the memberset type
 * changes, and on a cache reset: rarely, so the check on a hot path is one
 * comparison.
 */
#ifndef SEGMENT_EXTENSION_CACHE_H
#define SEGMENT_EXTENSION_CACHE_H

#include "postgres.h"

#include "executor/spi.h"

/* From _PG_init: registers the invalidation callbacks (once per backend). */
extern void extension_cache_init(void);

/* The current generation (starts at 1: a cache stamped 0 is empty). */
extern uint64 extension_cache_generation(void);

/* A change of this type (segment.memberset) moves the generation. */
extern void extension_cache_watch_type(Oid typid);

/*
 * Saved plans: *slot is a static SPIPlanPtr of the caller. check_plans
 * empties every registered slot whose plan is of an older generation (the
 * plans are freed at the end of the transaction: an outer query may still
 * be running one); plan_saved registers a slot just filled.
 */
extern void extension_cache_check_plans(void);
extern void extension_cache_plan_saved(SPIPlanPtr *slot);

#endif							/* SEGMENT_EXTENSION_CACHE_H */
