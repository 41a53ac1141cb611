/*
 * memberset_cache.h
 *     A backend-local cache of deserialized member sets (docs/performance.md), so that
 *     an audience read again does not detoast and deserialize its sets again.
 *
 * An entry is keyed by the state table, the key of the row in it (tag id,
 * subject id) and the version of that row: its xmin and ctid, and the toast
 * value id of the stored set when it is toasted. A row version is immutable,
 * so an entry can never hold other members than the row it was read from;
 * the reader looks the row up under its own snapshot on every call and asks
 * the cache for that version. A refresh (another session's, or earlier in
 * the same transaction) makes a new row version and so a miss; after a
 * ROLLBACK the old version is visible again and is what is asked for. No
 * invalidation message is needed for correctness; stale entries only take
 * memory until they are evicted (least recently used first) once the cache
 * exceeds segment.audience_cache_size.
 *
 * Sets handed out are owned by the cache: read them, never modify or free
 * them, and do not keep them past the evaluation that fetched them (entries
 * used since the last memberset_cache_begin() are not evicted).
 *
 * Exported symbols are prefixed memberset_cache_, but for the two whose names
 * are fixed elsewhere: the GUC variable segment_audience_cache_kb (registered
 * by segment.c) and the SQL-callable segment_audience_cache_stats (named by
 * the install script, like every SQL-callable function of segment).
 */
#ifndef SEGMENT_MEMBERSET_CACHE_H
#define SEGMENT_MEMBERSET_CACHE_H

#include "postgres.h"

#include "access/htup.h"

#include "memberset.h"

/* GUC segment.audience_cache_size, in kB (0: no cache). */
extern int	segment_audience_cache_kb;

/* Start an evaluation: entries handed out from now on stay until the next call. */
extern void memberset_cache_begin(void);

/*
 * The set stored in column value of row tup (of state table relid, key
 * key). From the cache when this row version is there; else detoasted,
 * deserialized and, if the cache is on and the set fits, kept. When it is
 * not kept, *owned is the set's RoaringOwned in CurrentMemoryContext (the
 * caller's to modify or free); else *owned is NULL and the result is
 * read-only.
 */
extern const roaring_bitmap_t *memberset_cache_get(Oid relid, int64 key, HeapTuple tup,
												   Datum value, RoaringOwned **owned);

/* Entries and bytes held (for tests and the docs' figures). */
extern void memberset_cache_stats(int64 *entries, int64 *bytes, int64 *hits, int64 *misses);

#endif							/* SEGMENT_MEMBERSET_CACHE_H */
