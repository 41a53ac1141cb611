/*
 * segment.c
 *     Module entry point: PG_MODULE_MAGIC, _PG_init and the extension's GUCs.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include <limits.h>

#include "event_fast.h"
#include "extension_cache.h"
#include "members_scan.h"
#include "memberset_cache.h"
#include "refresh_shards.h"
#include "roaring_lib.h"
#include "segment.h"

PG_MODULE_MAGIC;

int			segment_progress_seconds = 5;

void		_PG_init(void);

void
_PG_init(void)
{
	/* CRoaring, bound to segment's own library (roaring_lib.h) */
	roaring_lib_load();
	DefineCustomIntVariable("segment.progress_seconds",
							"Seconds between progress NOTICEs of a long refresh (0 turns them off).",
							NULL,
							&segment_progress_seconds,
							5, 0, 86400,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomStringVariable("segment.as_of",
							   "Evaluation date seen by segment.as_of() in rules (empty: current_date).",
							   "segment.refresh sets it for its own duration; SET it to evaluate a rule in plain SQL as a refresh would.",
							   &segment_as_of_guc,
							   "",
							   PGC_USERSET, 0,
							   segment_as_of_check, NULL, NULL);
	DefineCustomBoolVariable("segment.citus_pushdown",
							 "Refresh a Citus distributed subject by evaluating its rules on the shards.",
							 "Off: its rows are read through the coordinator and evaluated there (slower, same result).",
							 &segment_citus_pushdown,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("segment.audience_cache_size",
							"Memory for the backend-local cache of member sets read by audiences (0 turns it off).",
							"Each backend keeps the sets its audiences read, deserialized, until a refresh replaces them or they are evicted (least recently used first).",
							&segment_audience_cache_kb,
							65536, 0, MAX_KILOBYTES,
							PGC_USERSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("segment.stream_members",
							 "Stream segment.members in a FROM clause (Segment Member Scan) instead of a function scan.",
							 "Off: the function scan stores every member in a tuplestore first (same rows, same order). Takes effect for statements planned afterwards.",
							 &segment_stream_members,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("segment.event_fast_path",
							 "Generate an event statement of one customer through the one-customer path.",
							 "Off: every event statement goes through segment_internal._event_fire (the same opportunities, slower).",
							 &event_fast_path,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("segment");
	/* plans and OIDs of the extension's objects go stale when it is re-created */
	extension_cache_init();
	/* the planner hook that streams segment.members */
	members_scan_init();
}
