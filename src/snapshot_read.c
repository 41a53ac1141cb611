/*
 * snapshot_read.c
 *     count, members, members_text and audience as of a retained snapshot
 *     date of a snapshot subject (segment.tag_snapshot and
 *     segment.subject_snapshot). The date must be one of the retained ones
 *     (segment.snapshots(subject)); anything else is an error naming them,
 *     never an answer from another date.
 *
 * Exports only SQL-callable functions (prefix segment_).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"

#include "audience.h"
#include "catalog.h"
#include "governance.h"
#include "memberset.h"
#include "snapshot.h"
#include "subject.h"

/*
 * An infinite date is no day a refresh can store: refused up front (22023),
 * as segment.refresh refuses it, rather than reported as a snapshot that is
 * not retained.
 */
static void
check_as_of(DateADT d)
{
	if (DATE_NOT_FINITE(d))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be a finite date, not %s", snapshot_date_text(d)),
				 errhint("Give one of the retained snapshot dates: segment.snapshots(subject) lists them.")));
}

/* The subject, checked to be a snapshot subject with date d retained. */
static SubjectInfo *
retained_subject(Name subject, DateADT d)
{
	SubjectInfo *s = subject_lookup(NameStr(*subject), false);
	bool		found;
	char	   *dates = NULL;

	if (!s->has_snapshot_column)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("subject \"%s\" is not a snapshot subject: it keeps no earlier member sets",
						NameStr(s->name)),
				 errhint("Call it without as_of, or register the table with snapshot_column => ...")));
	found = catalog_snapshot_retained(s->subject_id, d, &dates);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("subject \"%s\" has no retained snapshot of %s", NameStr(s->name),
						snapshot_date_text(d)),
				 dates ? errdetail("Retained snapshots: %s.", dates)
				 : errdetail("No snapshot of it has been refreshed yet."),
				 errhint("Refresh that date with segment.refresh('%s', '%s') (it is kept while among the %d newest; segment.set_snapshot_retention changes that).",
						 NameStr(s->name), snapshot_date_text(d), s->snapshot_retention)));
	return s;
}

/* The audience's set in snapshot d; snapshot mode is off again on any exit. */
static RoaringOwned *
evaluate_as_of(SubjectInfo *s, const char *aud, DateADT d)
{
	RoaringOwned *volatile set = NULL;

	audience_set_snapshot(true, d);
	PG_TRY();
	{
		set = audience_evaluate(s, aud);
	}
	PG_FINALLY();
	{
		audience_set_snapshot(false, 0);
	}
	PG_END_TRY();
	return set;
}

/* segment.count(subject name, audience text, as_of date) -> bigint */
PG_FUNCTION_INFO_V1(segment_count_as_of);
Datum
segment_count_as_of(PG_FUNCTION_ARGS)
{
	DateADT		d = PG_GETARG_DATEADT(2);
	SubjectInfo *s;
	RoaringOwned *set;
	int64		n;

	check_as_of(d);
	s = retained_subject(PG_GETARG_NAME(0), d);
	set = evaluate_as_of(s, text_to_cstring(PG_GETARG_TEXT_PP(1)), d);
	n = (int64) roaring_bitmap_get_cardinality(set->bitmap);
	roaring_owned_free(set);
	PG_RETURN_INT64(n);
}

/* segment.audience(subject name, audience text, as_of date) -> segment.memberset */
PG_FUNCTION_INFO_V1(segment_audience_as_of);
Datum
segment_audience_as_of(PG_FUNCTION_ARGS)
{
	DateADT		d = PG_GETARG_DATEADT(2);
	SubjectInfo *s;
	RoaringOwned *set;
	MemberSet  *ms;

	check_as_of(d);
	s = retained_subject(PG_GETARG_NAME(0), d);
	set = evaluate_as_of(s, text_to_cstring(PG_GETARG_TEXT_PP(1)), d);
	ms = memberset_from_roaring(set->bitmap);
	roaring_owned_free(set);
	PG_RETURN_MEMBERSET_P(ms);
}

/* segment.members(subject name, audience text, as_of date) -> setof bigint, ascending */
PG_FUNCTION_INFO_V1(segment_members_as_of);
Datum
segment_members_as_of(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DateADT		d = PG_GETARG_DATEADT(2);
	SubjectInfo *s;
	RoaringOwned *set;
	char	   *aud;
	int64		n;

	check_as_of(d);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	governance_check_export("segment.members");
	s = retained_subject(PG_GETARG_NAME(0), d);
	if (!s->integer_keys)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("subject \"%s\" has %s keys, which segment.members cannot return as bigint",
						NameStr(s->name), format_type_be(s->key_type)),
				 errhint("Use segment.members_text('%s', ..., as_of) instead.", NameStr(s->name))));
	aud = text_to_cstring(PG_GETARG_TEXT_PP(1));
	set = evaluate_as_of(s, aud, d);
	n = (int64) roaring_bitmap_get_cardinality(set->bitmap);
	subject_put_ids(set->bitmap, rsinfo->setResult, rsinfo->setDesc);
	roaring_owned_free(set);
	governance_audit_export("segment.members", NameStr(s->name),
							psprintf("%s (as of %s)", aud, DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(d)))), n);
	return (Datum) 0;
}

/* segment.members_text(subject name, audience text, as_of date) -> setof text */
PG_FUNCTION_INFO_V1(segment_members_text_as_of);
Datum
segment_members_text_as_of(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DateADT		d = PG_GETARG_DATEADT(2);
	SubjectInfo *s;
	RoaringOwned *set;
	MemberSet  *ms;
	char	   *aud;

	check_as_of(d);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	governance_check_export("segment.members_text");
	s = retained_subject(PG_GETARG_NAME(0), d);
	aud = text_to_cstring(PG_GETARG_TEXT_PP(1));
	set = evaluate_as_of(s, aud, d);
	ms = memberset_from_roaring(set->bitmap);
	roaring_owned_free(set);
	subject_put_keys(s, ms, rsinfo->setResult, rsinfo->setDesc);
	pfree(ms);
	governance_audit_export("segment.members_text", NameStr(s->name),
							psprintf("%s (as of %s)", aud, DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(d)))),
							tuplestore_tuple_count(rsinfo->setResult));
	return (Datum) 0;
}
