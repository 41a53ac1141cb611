/*
 * live_overlay.h
 *     The overlay rows of live maintenance (live_overlay.c), as the trigger
 *     (live_trigger.c) builds and writes them for one statement.
 */
#ifndef SEGMENT_LIVE_OVERLAY_H
#define SEGMENT_LIVE_OVERLAY_H

#include "postgres.h"

#include "utils/date.h"
#include "utils/snapshot.h"

#include "catalog.h"
#include "refresh_scan.h"

/*
 * Statements with fewer rows compare member by member (its overlay row, or
 * the stored sets kept per backend); larger ones set by set.
 */
#define LIVE_COMPARE_MIN_ROWS 64

/* The overlay rows of one statement, read by segment_internal._live_rows(). */
typedef struct LiveRows
{
	int32		subject_id;
	DateADT		as_of;
	int			n;
	uint32	   *ids;
	bool	   *deleted;
	Datum	   *tags;			/* int4[] */
	Datum	   *buckets;		/* jsonb */
	Datum	   *scores;			/* jsonb */
} LiveRows;

/*
 * A writer's share of the subject's live lock, the invalidations committed
 * so far and the latest snapshot, registered (the caller unregisters it).
 */
extern Snapshot live_writer_snapshot(int32 subject_id);

/*
 * Which of the statement's members need an overlay row: sc holds what the
 * evaluator found for the statement's rows (evaluated at as_of), gone the
 * keys of its old rows; affected (or NULL: all) the units it may have
 * changed, the only ones sc evaluated. generation names the build of the
 * definitions (live_defs.h). SPI connected.
 */
extern RoaringOwned *live_overlay_members_to_write(const SubjectDefs *defs, uint64 generation,
												   ScanCore *sc, RoaringOwned *gone,
												   Snapshot snap, const bool *affected,
												   DateADT as_of);

/* One overlay row per member of write (sc: their state now; gone: deleted keys). */
extern LiveRows *live_overlay_build_rows(const SubjectDefs *defs, ScanCore *sc, RoaringOwned *gone,
										 RoaringOwned *write, DateADT as_of);

/* Upsert the rows into segment.live_member. */
extern void live_overlay_write(LiveRows *lr);

#endif							/* SEGMENT_LIVE_OVERLAY_H */
