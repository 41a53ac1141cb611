/*
 * refresh_segmentation.c
 *     The schemes and scorecards of a refresh: load their definitions for
 *     the scan (refresh_scan.c evaluates them in the same pass as the tags),
 *     then store what it found: the members of every bucket and of every
 *     distinct score, the bucket sets and the universe per evaluation date
 *     (for transitions), and the day's sizes of tags, buckets, bands and
 *     segments (for trends).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "memberset.h"
#include "numeric_scaled.h"
#include "refresh.h"
#include "rule_owner.h"

#define SCORE_SCALE INT64CONST(100000000)

/* numeric text -> score value, or false (too many decimals, too large) */
static bool
score_from_text(const char *s, ScoreValue *v)
{
	Datum		n = DirectFunctionCall3(numeric_in, CStringGetDatum(s),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	return numeric_scaled((struct varlena *) DatumGetPointer(n), v);
}

Datum
score_to_numeric(ScoreValue v)
{
	bool		neg = v < 0;
	ScoreValue	a = neg ? -v : v;
	int64		ipart = (int64) (a / SCORE_SCALE);
	int64		fpart = (int64) (a % SCORE_SCALE);
	char		buf[64];
	int			len;

	len = snprintf(buf, sizeof(buf), "%s" INT64_FORMAT ".%08lld", neg ? "-" : "",
				   ipart, (long long) fpart);
	while (len > 0 && buf[len - 1] == '0')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '.')
		buf[--len] = '\0';
	return DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/* Distinct values of the int4 first column of SPI_tuptable (rows sorted by it). */
static int
count_groups(void)
{
	int32		last = -1;
	int			n = 0;
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		if (i == 0 || id != last)
			n++;
		last = id;
	}
	return n;
}

void
load_schemes(SubjectRun *sr)
{
	Datum		arg = Int32GetDatum(sr->subject_id);
	Oid			argtype = INT4OID;
	uint64		i;
	int			n = -1;
	int32		last = -1;

	if (SPI_execute_with_args(psprintf("SELECT s.scheme_id, s.name, b.name, b.rule, "
									   "       count(*) OVER (PARTITION BY s.scheme_id), %s "
									   "  FROM segment.scheme s JOIN segment.scheme_bucket b USING (scheme_id) "
									   " WHERE s.subject_id = $1 AND s.active "
									   " ORDER BY s.name, b.position", rule_owner_sql("scheme", "s")),
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.scheme");
	sr->nschemes = count_groups();
	sr->schemes = palloc0(sizeof(ScanScheme) * Max(sr->nschemes, 1));
	sr->scheme_ids = palloc0(sizeof(int32) * Max(sr->nschemes, 1));
	sr->scheme_errors = palloc0(sizeof(char *) * Max(sr->nschemes, 1));
	last = -1;
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		ScanScheme *s;

		if (id != last)
		{
			n++;
			s = &sr->schemes[n];
			sr->scheme_ids[n] = id;
			s->name = SPI_getvalue(tup, desc, 2);
			s->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
			s->nbuckets = 0;
			s->buckets = palloc0(sizeof(ScanTag) *
								 DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull)));
			last = id;
		}
		s = &sr->schemes[n];
		s->buckets[s->nbuckets].name = SPI_getvalue(tup, desc, 3);
		s->buckets[s->nbuckets].rule = SPI_getvalue(tup, desc, 4);
		s->nbuckets++;
	}
	SPI_freetuptable(SPI_tuptable);
}

void
load_scorecards(SubjectRun *sr)
{
	Datum		arg = Int32GetDatum(sr->subject_id);
	Oid			argtype = INT4OID;
	uint64		i;
	int			n = -1;
	int32		last = -1;

	if (SPI_execute_with_args(psprintf("SELECT c.scorecard_id, c.name, c.base::text, i.rule, i.points::text, "
									   "       count(i.rule) OVER (PARTITION BY c.scorecard_id), %s "
									   "  FROM segment.scorecard c LEFT JOIN segment.scorecard_item i USING (scorecard_id) "
									   " WHERE c.subject_id = $1 AND c.active "
									   " ORDER BY c.name, i.position", rule_owner_sql("scorecard", "c")),
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.scorecard");
	sr->nscorecards = count_groups();
	sr->scorecards = palloc0(sizeof(ScanScorecard) * Max(sr->nscorecards, 1));
	sr->scorecard_ids = palloc0(sizeof(int32) * Max(sr->nscorecards, 1));
	sr->scorecard_errors = palloc0(sizeof(char *) * Max(sr->nscorecards, 1));
	last = -1;
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		ScanScorecard *c;
		char	   *rule;

		if (id != last)
		{
			int64		nitems = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));

			n++;
			c = &sr->scorecards[n];
			sr->scorecard_ids[n] = id;
			c->name = SPI_getvalue(tup, desc, 2);
			c->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 7, &isnull));
			c->items = palloc0(sizeof(ScanTag) * Max(nitems, 1));
			c->points = palloc0(sizeof(ScoreValue) * Max(nitems, 1));
			c->nitems = 0;
			if (!score_from_text(SPI_getvalue(tup, desc, 3), &c->base))
				sr->scorecard_errors[n] = "the base must have at most 8 decimals and be below 10^20";
			last = id;
		}
		c = &sr->scorecards[n];
		rule = SPI_getvalue(tup, desc, 4);
		if (rule == NULL)
			continue;			/* a scorecard without items */
		c->items[c->nitems].name = "item";
		c->items[c->nitems].rule = rule;
		if (!score_from_text(SPI_getvalue(tup, desc, 5), &c->points[c->nitems]))
			sr->scorecard_errors[n] = "points must have at most 8 decimals and be below 10^20";
		c->nitems++;
	}
	SPI_freetuptable(SPI_tuptable);
	for (n = 0; n < sr->nscorecards; n++)
		if (sr->scorecard_errors[n])
			ereport(WARNING,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("scorecard \"%s\" is not refreshed: %s",
							sr->scorecards[n].name, sr->scorecard_errors[n])));
}

static void
exec_or_fail(const char *sql, int nargs, Oid *argtypes, Datum *args, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, argtypes, args, NULL, false, 0);

	if (rc != expected)
		elog(ERROR, "segment: catalog statement failed (%d): %s", rc, sql);
}

void
save_schemes(SubjectRun *sr, DateADT as_of, int64 run_id, Oid mstype, ReturnSetInfo *rsinfo)
{
	int			i,
				b;

	for (i = 0; i < sr->nschemes; i++)
	{
		ScanScheme *s = &sr->schemes[i];
		Datum		args[6];
		Oid			argtypes[6] = {INT4OID, NAMEOID, mstype, INT8OID, DATEOID, INT8OID};

		if (sr->scheme_errors[i])
		{
			for (b = 0; b < s->nbuckets; b++)
				refresh_put_row(rsinfo, sr->name, psprintf("%s.%s", s->name, s->buckets[b].name),
								0, 0, 0, true);
			continue;
		}
		for (b = 0; b < s->nbuckets; b++)
		{
			ScanTag    *bk = &s->buckets[b];
			Datum		bname = DirectFunctionCall1(namein, CStringGetDatum(bk->name));
			RoaringOwned *prev = refresh_load_previous(
				"SELECT members FROM segment.bucket_state WHERE scheme_id = $1 AND bucket = $2",
				sr->scheme_ids[i], bname, NAMEOID);
			int64		members = roaring_bitmap_get_cardinality(bk->set->bitmap);
			int64		entered = members,
						exited = 0;

			if (prev)
			{
				entered = roaring_bitmap_andnot_cardinality(bk->set->bitmap, prev->bitmap);
				exited = roaring_bitmap_andnot_cardinality(prev->bitmap, bk->set->bitmap);
				roaring_owned_free(prev);
			}
			refresh_put_row(rsinfo, sr->name, psprintf("%s.%s", s->name, bk->name),
							members, entered, exited, false);

			args[0] = Int32GetDatum(sr->scheme_ids[i]);
			args[1] = bname;
			args[2] = PointerGetDatum(memberset_from_roaring(bk->set->bitmap));
			args[3] = Int64GetDatum(members);
			args[4] = DateADTGetDatum(as_of);
			args[5] = Int64GetDatum(run_id);
			roaring_owned_free(bk->set);
			exec_or_fail("INSERT INTO segment.bucket_state AS t "
						 "(scheme_id, bucket, members, member_count, as_of, run_id) "
						 "VALUES ($1, $2, $3, $4, $5, $6) "
						 "ON CONFLICT (scheme_id, bucket) DO UPDATE SET members = excluded.members, "
						 "member_count = excluded.member_count, as_of = excluded.as_of, run_id = excluded.run_id",
						 6, argtypes, args, SPI_OK_INSERT);
			exec_or_fail("INSERT INTO segment.bucket_history AS t "
						 "(scheme_id, bucket, members, member_count, as_of, run_id) "
						 "VALUES ($1, $2, $3, $4, $5, $6) "
						 "ON CONFLICT (scheme_id, as_of, bucket) DO UPDATE SET members = excluded.members, "
						 "member_count = excluded.member_count, run_id = excluded.run_id",
						 6, argtypes, args, SPI_OK_INSERT);
			pfree(DatumGetPointer(args[2]));
		}
		/* buckets removed by alter_scheme leave the current state */
		{
			Datum		a[2];
			Oid			t[2] = {INT4OID, INT8OID};

			a[0] = Int32GetDatum(sr->scheme_ids[i]);
			a[1] = Int64GetDatum(run_id);
			exec_or_fail("DELETE FROM segment.bucket_state WHERE scheme_id = $1 AND run_id <> $2",
						 2, t, a, SPI_OK_DELETE);
		}
	}
}

void
save_scorecards(SubjectRun *sr, DateADT as_of, int64 run_id, Oid mstype)
{
	int			i;

	for (i = 0; i < sr->nscorecards; i++)
	{
		ScanScorecard *c = &sr->scorecards[i];
		HASH_SEQ_STATUS hs;
		ScoreSet   *ss;
		Datum		a[1];
		Oid			t[1] = {INT4OID};

		if (sr->scorecard_errors[i])
			continue;
		a[0] = Int32GetDatum(sr->scorecard_ids[i]);
		exec_or_fail("DELETE FROM segment.score_state WHERE scorecard_id = $1", 1, t, a, SPI_OK_DELETE);
		hash_seq_init(&hs, c->scores);
		while ((ss = hash_seq_search(&hs)) != NULL)
		{
			Datum		args[6];
			Oid			argtypes[6] = {INT4OID, NUMERICOID, mstype, INT8OID, DATEOID, INT8OID};

			args[0] = Int32GetDatum(sr->scorecard_ids[i]);
			args[1] = score_to_numeric(ss->score);
			args[2] = PointerGetDatum(memberset_from_roaring(ss->set->bitmap));
			args[3] = Int64GetDatum(roaring_bitmap_get_cardinality(ss->set->bitmap));
			args[4] = DateADTGetDatum(as_of);
			args[5] = Int64GetDatum(run_id);
			roaring_owned_free(ss->set);
			exec_or_fail("INSERT INTO segment.score_state "
						 "(scorecard_id, score, members, member_count, as_of, run_id) "
						 "VALUES ($1, $2, $3, $4, $5, $6)",
						 6, argtypes, args, SPI_OK_INSERT);
			pfree(DatumGetPointer(args[2]));
		}
	}
}

/* The universe of the date, and the day's sizes of everything with a name. */
void
save_history(SubjectRun *sr, DateADT as_of, int64 run_id, Oid mstype)
{
	Datum		args[3];
	Oid			argtypes[3] = {INT4OID, DATEOID, INT8OID};

	args[0] = Int32GetDatum(sr->subject_id);
	args[1] = DateADTGetDatum(as_of);
	args[2] = Int64GetDatum(run_id);
	exec_or_fail("INSERT INTO segment.universe_history (subject_id, as_of, universe, member_count, run_id) "
				 "SELECT subject_id, $2, universe, member_count, $3 FROM segment.subject_state "
				 " WHERE subject_id = $1 "
				 "ON CONFLICT (subject_id, as_of) DO UPDATE SET universe = excluded.universe, "
				 "member_count = excluded.member_count, run_id = excluded.run_id",
				 3, argtypes, args, SPI_OK_INSERT);
	exec_or_fail("DELETE FROM segment.size_snapshot WHERE subject_id = $1 AND as_of = $2",
				 2, argtypes, args, SPI_OK_DELETE);
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
				 3, argtypes, args, SPI_OK_INSERT);
	/* segments are audiences: their sizes come from the sets just stored */
	exec_or_fail("INSERT INTO segment.size_snapshot (subject_id, as_of, kind, name, members, run_id) "
				 "SELECT $1, $2, 'segment', g.name, "
				 "       segment.count((SELECT name FROM segment.subject WHERE subject_id = $1), g.name), $3 "
				 "  FROM segment.segment g WHERE g.subject_id = $1",
				 3, argtypes, args, SPI_OK_INSERT);
}
