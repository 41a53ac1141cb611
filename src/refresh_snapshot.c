/*
 * refresh_snapshot.c
 *     The part of a refresh that is particular to daily snapshot subjects:
 *     choosing the snapshot (the newest on or before as_of, snapshot.c),
 *     restricting the read to it, and keeping member sets per snapshot date
 *     (segment.tag_snapshot, segment.subject_snapshot) with the subject's
 *     retention.
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

#include "memberset.h"
#include "refresh.h"
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
	Datum		args[1];
	Oid			argtypes[1] = {INT4OID};
	bool		isnull;

	if (!snapshot_find(rel, sr->snapshot_column, as_of, &d))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("subject \"%s\" has no snapshot on or before %s", sr->name, date_text(as_of)),
				 errdetail("No row of \"%s\" has %s <= %s; nothing was refreshed.",
						   RelationGetRelationName(rel), sr->snapshot_column, date_text(as_of)),
				 errhint("Load the snapshot first (the nightly run belongs after the ETL load).")));
	if (d != as_of)
		ereport(NOTICE,
				(errmsg("subject \"%s\" has no snapshot of %s yet; reading the newest before it, %s",
						sr->name, date_text(as_of), date_text(d)),
				 errhint("The nightly run (segment.run_all) refuses a missing snapshot instead.")));
	sr->snapshot_date = d;
	sr->row_filter = snapshot_filter_sql(sr->snapshot_column, d);
	sr->rows_note = psprintf(" for %s %s", sr->snapshot_column, snapshot_date_text(d));
	sr->read_relids = snapshot_relations(rel, sr->snapshot_column, d);

	/* older than the snapshot the current state holds: a back-fill */
	args[0] = Int32GetDatum(sr->subject_id);
	if (SPI_execute_with_args("SELECT as_of FROM segment.subject_state WHERE subject_id = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.subject_state");
	sr->backfill = false;
	if (SPI_processed == 1)
	{
		DateADT		cur = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull));

		sr->backfill = !isnull && cur > d;
	}
	if (sr->backfill)
		ereport(NOTICE,
				(errmsg("subject \"%s\": snapshot %s is older than the current one; only its per-date member sets are written",
						sr->name, date_text(d)),
				 errhint("count(), members() and the rest read it with as_of => '%s' while it is retained.",
						 snapshot_date_text(d))));
	return d;
}

RoaringOwned *
refresh_snapshot_previous(int32 tag_id, DateADT d)
{
	return refresh_load_previous("SELECT members FROM segment.tag_snapshot "
								 " WHERE tag_id = $1 AND snapshot_date < $2 "
								 " ORDER BY snapshot_date DESC LIMIT 1",
								 tag_id, DateADTGetDatum(d), DATEOID);
}

void
refresh_snapshot_save_tag(SubjectRun *sr, TagRun *t, Datum members, int64 run_id, Oid mstype)
{
	Datum		args[7];
	Oid			argtypes[7] = {INT4OID, DATEOID, mstype, INT8OID, INT8OID, INT8OID, INT8OID};

	args[0] = Int32GetDatum(t->tag_id);
	args[1] = DateADTGetDatum(sr->snapshot_date);
	args[2] = members;
	args[3] = Int64GetDatum(t->members);
	args[4] = Int64GetDatum(t->entered);
	args[5] = Int64GetDatum(t->exited);
	args[6] = Int64GetDatum(run_id);
	if (SPI_execute_with_args("INSERT INTO segment.tag_snapshot AS s "
							  "(tag_id, snapshot_date, members, member_count, entered, exited, run_id, refreshed_at) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, now()) "
							  "ON CONFLICT (tag_id, snapshot_date) DO UPDATE SET members = excluded.members, "
							  "member_count = excluded.member_count, entered = excluded.entered, "
							  "exited = excluded.exited, run_id = excluded.run_id, "
							  "refreshed_at = excluded.refreshed_at",
							  7, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write segment.tag_snapshot");
}

void
refresh_snapshot_save_universe(SubjectRun *sr, Datum universe, int64 count, int64 run_id, Oid mstype)
{
	Datum		args[5];
	Oid			argtypes[5] = {INT4OID, DATEOID, mstype, INT8OID, INT8OID};

	args[0] = Int32GetDatum(sr->subject_id);
	args[1] = DateADTGetDatum(sr->snapshot_date);
	args[2] = universe;
	args[3] = Int64GetDatum(count);
	args[4] = Int64GetDatum(run_id);
	if (SPI_execute_with_args("INSERT INTO segment.subject_snapshot AS s "
							  "(subject_id, snapshot_date, universe, member_count, run_id, refreshed_at) "
							  "VALUES ($1, $2, $3, $4, $5, now()) "
							  "ON CONFLICT (subject_id, snapshot_date) DO UPDATE SET universe = excluded.universe, "
							  "member_count = excluded.member_count, run_id = excluded.run_id, "
							  "refreshed_at = excluded.refreshed_at",
							  5, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write segment.subject_snapshot");
}

/*
 * Keep the subject's `retention` newest snapshot dates, and the date of its
 * current state (a back-fill never pushes that out).
 */
void
refresh_snapshot_prune(SubjectRun *sr)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT4OID};

	args[0] = Int32GetDatum(sr->subject_id);
	args[1] = Int32GetDatum(sr->snapshot_retention);
	if (SPI_execute_with_args("WITH keep AS ("
							  "  (SELECT x.snapshot_date FROM segment.subject_snapshot x"
							  "    WHERE x.subject_id = $1 ORDER BY x.snapshot_date DESC LIMIT $2)"
							  "  UNION SELECT st.as_of FROM segment.subject_state st WHERE st.subject_id = $1), "
							  "gone AS (DELETE FROM segment.subject_snapshot x"
							  "  WHERE x.subject_id = $1 AND x.snapshot_date NOT IN (SELECT * FROM keep)"
							  "  RETURNING x.snapshot_date) "
							  "DELETE FROM segment.tag_snapshot s USING segment.tag t"
							  " WHERE s.tag_id = t.tag_id AND t.subject_id = $1"
							  "   AND s.snapshot_date NOT IN (SELECT * FROM keep)",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune segment.tag_snapshot");
}
