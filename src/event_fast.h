/*
 * event_fast.h
 *     The one-customer generation of an event rule (event_fast.c).
 *     Prefix: event_fast_.
 */
#ifndef SEGMENT_EVENT_FAST_H
#define SEGMENT_EVENT_FAST_H

#include "postgres.h"

#include "catalog.h"

/* GUC segment.event_fast_path (on): off sends every event statement the existing way. */
extern bool event_fast_path;

/*
 * Generate rule_id's opportunity for the one customer key of an event
 * statement (integer keys), as segment_internal._event_fire would: true when
 * it did (the opportunity and the generation row are written), false when
 * the existing path must decide (nothing written; see event_fast.c).
 * source: 'event:<schema>.<table>'.
 */
extern bool event_fast_generate(int32 rule_id, const CatalogEventRule *er, int64 key,
								const char *source);

#endif							/* SEGMENT_EVENT_FAST_H */
