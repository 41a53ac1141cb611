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
#include "reader.h"
#include "subject.h"

/* segment.count(subject name, audience text, as_of date) -> bigint */
PG_FUNCTION_INFO_V1(segment_count_as_of);
Datum
segment_count_as_of(PG_FUNCTION_ARGS)
{
	DateADT		d = PG_GETARG_DATEADT(2);
	SubjectInfo *s;
	RoaringOwned *set;
	int64		n;

	reader_check_as_of(d);
	s = reader_retained_subject(NameStr(*PG_GETARG_NAME(0)), d);
	set = reader_evaluate_as_of(s, text_to_cstring(PG_GETARG_TEXT_PP(1)), d);
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

	reader_check_as_of(d);
	s = reader_retained_subject(NameStr(*PG_GETARG_NAME(0)), d);
	set = reader_evaluate_as_of(s, text_to_cstring(PG_GETARG_TEXT_PP(1)), d);
	ms = memberset_from_roaring(set->bitmap);
	roaring_owned_free(set);
	PG_RETURN_MEMBERSET_P(ms);
}

/*
 * segment.members(subject name, audience text, as_of date) -> setof bigint,
 * ascending; streamed in a FROM clause as segment.members now is
 * (members_scan.c, reader_members).
 */
PG_FUNCTION_INFO_V1(segment_members_as_of);
Datum
segment_members_as_of(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DateADT		d = PG_GETARG_DATEADT(2);
	const roaring_bitmap_t *set;
	RoaringOwned *owned;

	reader_check_as_of(d);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	set = reader_members(NameStr(*PG_GETARG_NAME(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)),
						 &d, true, &owned);
	subject_put_ids(set, rsinfo->setResult, rsinfo->setDesc);
	roaring_owned_free(owned);
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

	reader_check_as_of(d);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	governance_check_export("segment.members_text");
	s = reader_retained_subject(NameStr(*PG_GETARG_NAME(0)), d);
	aud = text_to_cstring(PG_GETARG_TEXT_PP(1));
	set = reader_evaluate_as_of(s, aud, d);
	ms = memberset_from_roaring(set->bitmap);
	roaring_owned_free(set);
	subject_put_keys(s, ms, rsinfo->setResult, rsinfo->setDesc);
	pfree(ms);
	governance_audit_export("segment.members_text", NameStr(s->name),
							psprintf("%s (as of %s)", aud, DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(d)))),
							tuplestore_tuple_count(rsinfo->setResult));
	return (Datum) 0;
}
