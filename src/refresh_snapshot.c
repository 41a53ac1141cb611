/*
 * refresh_snapshot.c
 *     The part of a refresh that is particular to daily snapshot subjects:
 *     choosing the snapshot (the newest on or before as_of, snapshot.c),
 *     restricting the read to it, and checking that it has one row per key
 *     when read from the heaps. The per-date sets (segment.tag_snapshot,
 *     segment.subject_snapshot) and their retention are written by
 *     refresh.c through the catalog module. Prefix: refresh_snapshot_.
 *
 * A refresh of a snapshot older than the one the subject's current state
 * holds is a back-fill: it writes that date's per-date sets only, so the
 * current state (what count() and everything else read by default) stays
 * on the newest snapshot.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "memberset.h"
#include "refresh_snapshot.h"
#include "snapshot.h"

static char *
date_text(DateADT d)
{
	return DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(d)));
}

DateADT
refresh_snapshot_choose(SubjectRun *sr, Relation rel, DateADT as_of)
{
	DateADT		d;
	DateADT		cur;

	if (!snapshot_find(rel, sr->snapshot_column, as_of, &d))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("subject \"%s\" has no snapshot on or before %s", sr->defs->name, date_text(as_of)),
				 errdetail("No row of \"%s\" has %s <= %s; nothing was refreshed.",
						   RelationGetRelationName(rel), sr->snapshot_column, date_text(as_of)),
				 errhint("Load the snapshot first (the nightly run belongs after the ETL load).")));
	if (d != as_of)
		ereport(NOTICE,
				(errmsg("subject \"%s\" has no snapshot of %s yet; reading the newest before it, %s",
						sr->defs->name, date_text(as_of), date_text(d)),
				 errhint("The nightly run (segment.run_all) refuses a missing snapshot instead.")));
	sr->snapshot_date = d;
	sr->row_filter = snapshot_filter_sql(sr->snapshot_column, d);
	sr->rows_note = psprintf(" for %s %s", sr->snapshot_column, snapshot_date_text(d));
	sr->read_relids = snapshot_relations(rel, sr->snapshot_column, d);
	sr->heap_leaves = snapshot_heap_leaves(rel, sr->snapshot_column, d, sr->read_relids);

	/* older than the snapshot the current state holds: a back-fill */
	sr->backfill = false;
	sr->rerun = false;
	if (catalog_state_as_of(sr->defs->subject_id, GetActiveSnapshot(), &cur))
	{
		sr->backfill = cur > d;
		sr->rerun = cur == d;
	}
	if (sr->backfill)
		ereport(NOTICE,
				(errmsg("subject \"%s\": snapshot %s is older than the current one; only its per-date member sets are written",
						sr->defs->name, date_text(d)),
				 errhint("count(), members() and the rest read it with as_of => '%s' while it is retained.",
						 snapshot_date_text(d))));
	return d;
}

/*
 * Read from the heaps directly, keys were not checked row by row: the
 * snapshot has a duplicate key when fewer members than rows came out of it.
 * Name one, as the SQL path does (23505), before anything is written.
 */
void
refresh_snapshot_check_unique(SubjectRun *sr, Relation rel)
{
	char	   *key = NULL;
	const char *keycol = get_attname(sr->defs->relid, sr->defs->keyattno, false);

	if (sr->heap_leaves == NIL || sr->universe == NULL ||
		(uint64) (sr->rows - sr->null_keys) == roaring_bitmap_get_cardinality(sr->universe->bitmap))
		return;
	if (SPI_execute(psprintf("SELECT %s::pg_catalog.text FROM %s%s GROUP BY 1 HAVING pg_catalog.count(*) > 1 LIMIT 1",
							 quote_identifier(keycol),
							 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
														RelationGetRelationName(rel)),
							 sr->row_filter), true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look for a duplicate key");
	if (SPI_processed == 1)
		key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("key %s appears in more than one row of \"%s\"%s, the relation of subject \"%s\"",
					key ? key : "(unknown)", RelationGetRelationName(rel), sr->rows_note, sr->defs->name),
			 errdetail("Each customer must have one row; nothing was refreshed."),
			 errhint("Fix the relation (a view's join may duplicate customers), then refresh again.")));
}
