/*
 * segment.c
 *     Module entry point: PG_MODULE_MAGIC, _PG_init and the extension's GUCs.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "refresh_shards.h"
#include "segment.h"

PG_MODULE_MAGIC;

int			segment_progress_seconds = 5;

void		_PG_init(void);

void
_PG_init(void)
{
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
	MarkGUCPrefixReserved("segment");
}
