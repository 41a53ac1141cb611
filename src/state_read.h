/*
 * state_read.h
 *     Direct reads of the state tables for audiences (docs/performance.md): a tag by
 *     name, its stored member set, its unexpired manual members, and the
 *     subject's universe, by index lookups under the active snapshot instead
 *     of a catalog query through SPI. The sets come through the backend-local
 *     cache (memberset_cache.h).
 *
 * They answer exactly what catalog_names.c's lookup query answers, and only
 * when that is simple: state_read_begin() says no (and the caller uses the
 * query) when the current user lacks SELECT on one of the tables, when one
 * has row-level security on, when a table is missing (a catalog not yet
 * updated), when there is no active snapshot, or when the subject has live
 * overlay rows (segment.live_member: the query merges them).
 */
#ifndef SEGMENT_STATE_READ_H
#define SEGMENT_STATE_READ_H

#include "postgres.h"

#include "storage/itemptr.h"
#include "utils/snapshot.h"

#include "memberset.h"
#include "subject.h"

typedef struct StateRead StateRead;

typedef struct StateTag
{
	int32		tag_id;
	int32		subject_id;
	bool		manual;			/* rule is null */
	bool		active;
	bool		refreshed;		/* has a tag_state row (state_read_tag_sets) */
	/* state_read_tag_sets, for an active tag of the subject: */
	const roaring_bitmap_t *set;	/* the stored set (rule tags), or NULL */
	RoaringOwned *set_owned;	/* non-NULL when set is not the cache's */
	RoaringOwned *manual_set;	/* unexpired manual members, or NULL (none) */
} StateTag;

/* NULL when the direct read cannot answer for this subject (see above). */
extern StateRead *state_read_begin(int32 subject_id);
extern void state_read_end(StateRead *sr);

/* The tag named name (its catalog row only): false when there is none (it may be a segment). */
extern bool state_read_tag(StateRead *sr, const char *name, StateTag *out);

/*
 * Whether the tag has been refreshed and, for an active tag of the subject,
 * its sets (as the catalog query loads them).
 */
extern void state_read_tag_sets(StateRead *sr, StateTag *t);

/* The subject's universe: false when the subject has never been refreshed. */
extern bool state_read_universe(StateRead *sr, const roaring_bitmap_t **set,
								RoaringOwned **set_owned);

/*
 * The subject named name as subject_lookup's query reads it from
 * segment.subject. Returns false when the direct read cannot answer (the
 * same conditions as above, live overlay aside): the query must. Else
 * *found says whether the subject exists, and out is filled when it does.
 */
extern bool state_read_subject(const char *name, SubjectInfo *out, bool *found);

/*
 * The version of the subject's row in segment.subject_state as snap sees it
 * (its xmin and ctid): false when the subject has never been refreshed. A
 * refresh writes that row and every stored set of the subject in one
 * transaction, so the version names the stored sets (live maintenance keeps
 * them per backend by it). A direct index read, without privilege checks
 * (the caller is segment's own trigger); no SPI needed.
 */
extern bool state_read_subject_version(int32 subject_id, Snapshot snap, TransactionId *xmin,
									   ItemPointerData *ctid);

#endif							/* SEGMENT_STATE_READ_H */
