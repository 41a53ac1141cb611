/*
 * catalog_state.c
 *     The state tables (catalog.h): what a refresh reads before writing
 *     (the previous sets, the key map, the state's date) and everything it
 *     writes (tag_state, subject_state, bucket_state and bucket_history,
 *     score_state, universe_history and size_snapshot, the per-date sets of
 *     snapshot subjects, keymap, run), and the stored sets live maintenance
 *     compares a statement's results with. Prefix: catalog_.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "subject.h"

static void
exec_or_fail(const char *sql, int nargs, Oid *argtypes, Datum *args, const char *nulls,
			 int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, argtypes, args, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "segment: catalog statement failed (%d): %s", rc, sql);
}

bool
catalog_state_as_of(int32 subject_id, Snapshot snap, DateADT *as_of)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(subject_id);
	bool		isnull = true;
	Datum		d = (Datum) 0;

	segment_saved_plan(&plan, "SELECT as_of FROM segment.subject_state WHERE subject_id = $1",
					   1, &argtype);
	if (SPI_execute_snapshot(plan, &arg, NULL, snap, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.subject_state");
	if (SPI_processed == 1)
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_freetuptable(SPI_tuptable);
	if (isnull)
		return false;
	*as_of = DatumGetDateADT(d);
	return true;
}

void
catalog_keymap_read(int32 subject_id, CatalogKeyFn fn, void *arg)
{
	Datum		a = Int32GetDatum(subject_id);
	Oid			argtype = INT4OID;
	uint64		i;

	if (SPI_execute_with_args("SELECT key, member_id FROM segment.keymap WHERE subject_id = $1",
							  1, &argtype, &a, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.keymap");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *key = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 2, &isnull));

		fn(arg, key, id);
	}
	SPI_freetuptable(SPI_tuptable);
}

void
catalog_keymap_add(int32 subject_id, int n, Datum *keys, Datum *ids)
{
	Datum		args[3];
	Oid			argtypes[3] = {INT4OID, TEXTARRAYOID, INT8ARRAYOID};

	args[0] = Int32GetDatum(subject_id);
	args[1] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_with_args("INSERT INTO segment.keymap (subject_id, key, member_id) "
							  "SELECT $1, k, i FROM unnest($2, $3) AS u(k, i)",
							  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not extend segment.keymap");
}

int64
catalog_run_start(int32 subject_id, DateADT as_of, TimestampTz started,
				  bool has_snapshot_date, DateADT snapshot_date, List *read_relids)
{
	Datum		args[5];
	Oid			argtypes[5] = {INT4OID, DATEOID, TIMESTAMPTZOID, DATEOID, OIDARRAYOID};
	char		nulls[5] = {' ', ' ', ' ', 'n', ' '};
	bool		isnull;
	Datum	   *oids = palloc(sizeof(Datum) * Max(list_length(read_relids), 1));
	ListCell   *lc;

	foreach(lc, read_relids)
		oids[foreach_current_index(lc)] = ObjectIdGetDatum(lfirst_oid(lc));
	args[0] = Int32GetDatum(subject_id);
	args[1] = DateADTGetDatum(as_of);
	args[2] = TimestampTzGetDatum(started);
	if (has_snapshot_date)
	{
		args[3] = DateADTGetDatum(snapshot_date);
		nulls[3] = ' ';
	}
	args[4] = PointerGetDatum(construct_array(oids, list_length(read_relids), OIDOID,
											  sizeof(Oid), true, TYPALIGN_INT));
	if (!segment_catalog_has_column("run", "read_relations"))
	{
		/* a 0.1.0 catalog (before ALTER EXTENSION UPDATE) */
		if (SPI_execute_with_args("INSERT INTO segment.run (subject_id, as_of, started_at) "
								  "VALUES ($1, $2, $3) RETURNING run_id",
								  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "could not write segment.run");
	}
	else if (SPI_execute_with_args("INSERT INTO segment.run (subject_id, as_of, started_at, snapshot_date, read_relations) "
								   "VALUES ($1, $2, $3, $4, $5::pg_catalog.regclass[]::pg_catalog.text[]) RETURNING run_id",
								   5, argtypes, args, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not write segment.run");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

void
catalog_run_finish(int64 run_id, int64 rows, int32 tags, const char *errors)
{
	Datum		args[4];
	Oid			argtypes[4] = {INT8OID, INT8OID, INT4OID, TEXTOID};
	char		nulls[4] = {' ', ' ', ' ', 'n'};

	args[0] = Int64GetDatum(run_id);
	args[1] = Int64GetDatum(rows);
	args[2] = Int32GetDatum(tags);
	if (errors)
	{
		args[3] = CStringGetTextDatum(errors);
		nulls[3] = ' ';
	}
	if (SPI_execute_with_args("UPDATE segment.run SET finished_at = clock_timestamp(), "
							  "rows_scanned = $2, tags = $3, error = $4 WHERE run_id = $1",
							  4, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not write segment.run");
}

void
catalog_run_step(int64 run_id, int32 step_no, const char *step, TimestampTz started,
				 TimestampTz finished, bool counted, int64 rows, const char *what,
				 const char *error)
{
	Oid			argtypes[8] = {INT8OID, INT4OID, TEXTOID, TIMESTAMPTZOID, INTERVALOID,
	INT8OID, TEXTOID, TEXTOID};
	Datum		args[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', 'n', 'n', 'n'};
	Interval   *duration = palloc0(sizeof(Interval));

	duration->time = finished - started;
	args[0] = Int64GetDatum(run_id);
	args[1] = Int32GetDatum(step_no);
	args[2] = CStringGetTextDatum(step);
	args[3] = TimestampTzGetDatum(started);
	args[4] = IntervalPGetDatum(duration);
	if (counted)
	{
		args[5] = Int64GetDatum(rows);
		nulls[5] = ' ';
		if (what)
		{
			args[6] = CStringGetTextDatum(what);
			nulls[6] = ' ';
		}
	}
	if (error)
	{
		args[7] = CStringGetTextDatum(error);
		nulls[7] = ' ';
	}
	if (SPI_execute_with_args("INSERT INTO segment.run_step "
							  "(run_id, step_no, step, started_at, duration, rows, what, error) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
							  8, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write segment.run_step");
}

/*
 * The set in the first column of query (parameters: an int4 id and an
 * optional second argument), or NULL. Owned by CurrentMemoryContext.
 */
static RoaringOwned *
load_set(const char *query, int32 id, Datum arg2, Oid arg2type)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, arg2type};
	bool		isnull;
	Datum		d;
	RoaringOwned *prev = NULL;

	args[0] = Int32GetDatum(id);
	args[1] = arg2;
	if (SPI_execute_with_args(query, OidIsValid(arg2type) ? 2 : 1, argtypes, args, NULL,
							  true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read previous member set");
	if (SPI_processed == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		return NULL;
	}
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		MemberSet  *ms = DatumGetMemberSetP(d);

		prev = memberset_to_roaring(ms);
		/* the detoasted copy: one per tag would add up to every stored set */
		if ((Pointer) ms != DatumGetPointer(d))
			pfree(ms);
	}
	SPI_freetuptable(SPI_tuptable);
	return prev;
}

RoaringOwned *
catalog_tag_set(int32 tag_id)
{
	return load_set("SELECT members FROM segment.tag_state WHERE tag_id = $1",
					tag_id, (Datum) 0, InvalidOid);
}

RoaringOwned *
catalog_tag_snapshot_before(int32 tag_id, DateADT snapshot_date)
{
	return load_set("SELECT members FROM segment.tag_snapshot "
					" WHERE tag_id = $1 AND snapshot_date < $2 "
					" ORDER BY snapshot_date DESC LIMIT 1",
					tag_id, DateADTGetDatum(snapshot_date), DATEOID);
}

RoaringOwned *
catalog_bucket_set(int32 scheme_id, Datum bucket)
{
	return load_set("SELECT members FROM segment.bucket_state WHERE scheme_id = $1 AND bucket = $2",
					scheme_id, bucket, NAMEOID);
}

/*
 * Write one set with its counts. The statement's parameters are always
 * $1 the owner's id (int4), $2 a second key of type keytype (a snapshot
 * date, a bucket name, a score; NULL when the table has none), $3 the
 * members, $4 their count, $5 entered, $6 exited, $7 as_of, $8 run_id:
 * each statement uses those its table has.
 */
static void
write_set(const char *sql, int32 id, Oid keytype, Datum key, const CatalogSetRow *row,
		  int expected, const char *table)
{
	Datum		args[8];
	Oid			argtypes[8] = {INT4OID, keytype, memberset_type_oid(), INT8OID, INT8OID, INT8OID,
	DATEOID, INT8OID};
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	args[0] = Int32GetDatum(id);
	args[1] = key;
	if (!OidIsValid(keytype))
	{
		argtypes[1] = INT4OID;
		nulls[1] = 'n';
	}
	args[2] = row->members;
	args[3] = Int64GetDatum(row->count);
	args[4] = Int64GetDatum(row->entered);
	args[5] = Int64GetDatum(row->exited);
	args[6] = DateADTGetDatum(row->as_of);
	args[7] = Int64GetDatum(row->run_id);
	if (SPI_execute_with_args(sql, 8, argtypes, args, nulls, false, 0) != expected)
		elog(ERROR, "could not write segment.%s", table);
}

void
catalog_save_tag_state(int32 tag_id, const CatalogSetRow *row)
{
	write_set("INSERT INTO segment.tag_state AS s "
			  "(tag_id, members, member_count, entered, exited, as_of, refreshed_at, run_id) "
			  "VALUES ($1, $3, $4, $5, $6, $7, now(), $8) "
			  "ON CONFLICT (tag_id) DO UPDATE SET members = excluded.members, "
			  "member_count = excluded.member_count, entered = excluded.entered, "
			  "exited = excluded.exited, as_of = excluded.as_of, "
			  "refreshed_at = excluded.refreshed_at, run_id = excluded.run_id",
			  tag_id, InvalidOid, (Datum) 0, row, SPI_OK_INSERT, "tag_state");
}

void
catalog_save_tag_snapshot(int32 tag_id, DateADT snapshot_date, const CatalogSetRow *row)
{
	write_set("INSERT INTO segment.tag_snapshot AS s "
			  "(tag_id, snapshot_date, members, member_count, entered, exited, run_id, refreshed_at) "
			  "VALUES ($1, $2, $3, $4, $5, $6, $8, now()) "
			  "ON CONFLICT (tag_id, snapshot_date) DO UPDATE SET members = excluded.members, "
			  "member_count = excluded.member_count, entered = excluded.entered, "
			  "exited = excluded.exited, run_id = excluded.run_id, "
			  "refreshed_at = excluded.refreshed_at",
			  tag_id, DATEOID, DateADTGetDatum(snapshot_date), row, SPI_OK_INSERT, "tag_snapshot");
}

void
catalog_save_subject_state(int32 subject_id, const CatalogSetRow *row)
{
	write_set("INSERT INTO segment.subject_state "
			  "(subject_id, universe, member_count, as_of, refreshed_at, run_id) "
			  "VALUES ($1, $3, $4, $7, now(), $8) "
			  "ON CONFLICT (subject_id) DO UPDATE SET universe = excluded.universe, "
			  "member_count = excluded.member_count, as_of = excluded.as_of, "
			  "refreshed_at = excluded.refreshed_at, run_id = excluded.run_id",
			  subject_id, InvalidOid, (Datum) 0, row, SPI_OK_INSERT, "subject_state");
}

void
catalog_save_subject_snapshot(int32 subject_id, DateADT snapshot_date, const CatalogSetRow *row)
{
	write_set("INSERT INTO segment.subject_snapshot AS s "
			  "(subject_id, snapshot_date, universe, member_count, run_id, refreshed_at) "
			  "VALUES ($1, $2, $3, $4, $8, now()) "
			  "ON CONFLICT (subject_id, snapshot_date) DO UPDATE SET universe = excluded.universe, "
			  "member_count = excluded.member_count, run_id = excluded.run_id, "
			  "refreshed_at = excluded.refreshed_at",
			  subject_id, DATEOID, DateADTGetDatum(snapshot_date), row, SPI_OK_INSERT,
			  "subject_snapshot");
}

void
catalog_save_bucket(int32 scheme_id, Datum bucket, const CatalogSetRow *row)
{
	write_set("INSERT INTO segment.bucket_state AS t "
			  "(scheme_id, bucket, members, member_count, as_of, run_id) "
			  "VALUES ($1, $2, $3, $4, $7, $8) "
			  "ON CONFLICT (scheme_id, bucket) DO UPDATE SET members = excluded.members, "
			  "member_count = excluded.member_count, as_of = excluded.as_of, run_id = excluded.run_id",
			  scheme_id, NAMEOID, bucket, row, SPI_OK_INSERT, "bucket_state");
	write_set("INSERT INTO segment.bucket_history AS t "
			  "(scheme_id, bucket, members, member_count, as_of, run_id) "
			  "VALUES ($1, $2, $3, $4, $7, $8) "
			  "ON CONFLICT (scheme_id, as_of, bucket) DO UPDATE SET members = excluded.members, "
			  "member_count = excluded.member_count, run_id = excluded.run_id",
			  scheme_id, NAMEOID, bucket, row, SPI_OK_INSERT, "bucket_history");
}

void
catalog_prune_buckets(int32 scheme_id, int64 run_id)
{
	Datum		a[2];
	Oid			t[2] = {INT4OID, INT8OID};

	a[0] = Int32GetDatum(scheme_id);
	a[1] = Int64GetDatum(run_id);
	exec_or_fail("DELETE FROM segment.bucket_state WHERE scheme_id = $1 AND run_id <> $2",
				 2, t, a, NULL, SPI_OK_DELETE);
}

void
catalog_clear_scores(int32 scorecard_id)
{
	Datum		a[1];
	Oid			t[1] = {INT4OID};

	a[0] = Int32GetDatum(scorecard_id);
	exec_or_fail("DELETE FROM segment.score_state WHERE scorecard_id = $1", 1, t, a, NULL,
				 SPI_OK_DELETE);
}

void
catalog_save_score(int32 scorecard_id, Datum score, const CatalogSetRow *row)
{
	write_set("INSERT INTO segment.score_state "
			  "(scorecard_id, score, members, member_count, as_of, run_id) "
			  "VALUES ($1, $2, $3, $4, $7, $8)",
			  scorecard_id, NUMERICOID, score, row, SPI_OK_INSERT, "score_state");
}

void
catalog_save_history(int32 subject_id, DateADT as_of, int64 run_id)
{
	Datum		args[3];
	Oid			argtypes[3] = {INT4OID, DATEOID, INT8OID};

	args[0] = Int32GetDatum(subject_id);
	args[1] = DateADTGetDatum(as_of);
	args[2] = Int64GetDatum(run_id);
	exec_or_fail("INSERT INTO segment.universe_history (subject_id, as_of, universe, member_count, run_id) "
				 "SELECT subject_id, $2, universe, member_count, $3 FROM segment.subject_state "
				 " WHERE subject_id = $1 "
				 "ON CONFLICT (subject_id, as_of) DO UPDATE SET universe = excluded.universe, "
				 "member_count = excluded.member_count, run_id = excluded.run_id",
				 3, argtypes, args, NULL, SPI_OK_INSERT);
	exec_or_fail("DELETE FROM segment.size_snapshot WHERE subject_id = $1 AND as_of = $2",
				 2, argtypes, args, NULL, SPI_OK_DELETE);
	exec_or_fail("INSERT INTO segment.size_snapshot (subject_id, as_of, kind, name, members, run_id) "
				 "SELECT $1, $2, 'tag', t.name, s.member_count, $3 "
				 "  FROM segment.tag t JOIN segment.tag_state s USING (tag_id) "
				 " WHERE t.subject_id = $1 AND t.active AND s.run_id = $3 "
				 "UNION ALL "
				 "SELECT $1, $2, 'bucket', m.name || '.' || b.bucket, b.member_count, $3 "
				 "  FROM segment.scheme m JOIN segment.bucket_state b USING (scheme_id) "
				 " WHERE m.subject_id = $1 AND b.run_id = $3 "
				 "UNION ALL "
				 "SELECT $1, $2, 'band', c.name || '.' || d.name, coalesce(sum(s.member_count), 0), $3 "
				 "  FROM segment.scorecard c JOIN segment.scorecard_band d USING (scorecard_id) "
				 "  LEFT JOIN segment.score_state s ON s.scorecard_id = c.scorecard_id "
				 "       AND (d.min_score IS NULL OR s.score >= d.min_score) "
				 "       AND (d.max_score IS NULL OR s.score < d.max_score) "
				 " WHERE c.subject_id = $1 AND c.active "
				 " GROUP BY c.name, d.name",
				 3, argtypes, args, NULL, SPI_OK_INSERT);
	/* segments are audiences: their sizes come from the sets just stored */
	exec_or_fail("INSERT INTO segment.size_snapshot (subject_id, as_of, kind, name, members, run_id) "
				 "SELECT $1, $2, 'segment', g.name, "
				 "       segment.count((SELECT name FROM segment.subject WHERE subject_id = $1), g.name), $3 "
				 "  FROM segment.segment g WHERE g.subject_id = $1",
				 3, argtypes, args, NULL, SPI_OK_INSERT);
}

void
catalog_prune_snapshots(int32 subject_id, int32 retention)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT4OID};

	args[0] = Int32GetDatum(subject_id);
	args[1] = Int32GetDatum(retention);
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

void
catalog_read_state_sets(int32 subject_id, Datum tag_ids, Datum scheme_ids, Datum scorecard_ids,
						Snapshot snap, CatalogSetFn fn, void *arg)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[5] = {INT4OID, INT8ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID};
	Datum		args[5];
	char		nulls[5] = {' ', 'n', ' ', ' ', ' '};
	uint64		k;

	args[0] = Int32GetDatum(subject_id);
	args[1] = (Datum) 0;
	args[2] = tag_ids;
	args[3] = scheme_ids;
	args[4] = scorecard_ids;
	segment_saved_plan(&plan,
					   "SELECT 0, 0, NULL::text, NULL::numeric, universe FROM segment.subject_state"
					   " WHERE subject_id = $1"
					   " UNION ALL SELECT 1, tag_id, NULL, NULL, members FROM segment.tag_state"
					   " WHERE tag_id = ANY ($3)"
					   " UNION ALL SELECT 2, scheme_id, bucket::text, NULL, members FROM segment.bucket_state"
					   " WHERE scheme_id = ANY ($4)"
					   " UNION ALL SELECT 3, scorecard_id, NULL, score, members FROM segment.score_state"
					   " WHERE scorecard_id = ANY ($5)",
					   5, argtypes);
	if (SPI_execute_snapshot(plan, args, nulls, snap, InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the state of subject id %d", subject_id);
	for (k = 0; k < SPI_processed; k++)
	{
		HeapTuple	tup = SPI_tuptable->vals[k];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		CatalogStoredSet s;

		CHECK_FOR_INTERRUPTS();
		s.kind = (CatalogSetKind) DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		s.id = DatumGetInt32(SPI_getbinval(tup, td, 2, &isnull));
		s.bucket = s.kind == CATALOG_SET_BUCKET ?
			TextDatumGetCString(SPI_getbinval(tup, td, 3, &isnull)) : NULL;
		s.score = SPI_getbinval(tup, td, 4, &isnull);
		s.set = memberset_to_roaring(DatumGetMemberSetP(SPI_getbinval(tup, td, 5, &isnull)));
		fn(arg, &s);
	}
	SPI_freetuptable(SPI_tuptable);
}
