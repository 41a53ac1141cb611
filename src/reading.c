/*
 * reading.c
 *     The SQL-callable reading side of the API: count, members,
 *     members_text, audience (and audience within a few members), keys and
 *     overlap over audiences
 *     (audience_eval.c), and has_tag / tags for one customer. has_tag also
 *     takes the name of a segment (its audience is evaluated).
 *
 * Membership of a tag = its last refreshed member set (rule tags) plus its
 * unexpired manual members (segment.manual_tag rows whose expires_at is null
 * or in the future). A manual tag (rule is null) needs no refresh.
 *
 * Exports only SQL-callable functions (prefix segment_).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "audience.h"
#include "catalog.h"
#include "governance.h"
#include "memberset.h"
#include "reader.h"
#include "subject.h"

/* segment.count(subject name, audience text) -> bigint */
PG_FUNCTION_INFO_V1(segment_count);
Datum
segment_count(PG_FUNCTION_ARGS)
{
	SubjectInfo *s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	char	   *aud = text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_INT64((int64) audience_count(s, aud));
}

/* segment.audience(subject name, audience text) -> segment.memberset */
PG_FUNCTION_INFO_V1(segment_audience);
Datum
segment_audience(PG_FUNCTION_ARGS)
{
	SubjectInfo *s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	char	   *aud = text_to_cstring(PG_GETARG_TEXT_PP(1));
	RoaringOwned *set = audience_evaluate(s, aud);
	MemberSet  *ms = memberset_from_roaring(set->bitmap);

	roaring_owned_free(set);
	PG_RETURN_MEMBERSET_P(ms);
}

/*
 * segment_internal._audience_within(subject name, audience text, members
 * segment.memberset) -> segment.memberset: audience(subject, audience) and
 * members, evaluated within members (audience_evaluate_within): what
 * generation for a few customers (an event) asks.
 */
PG_FUNCTION_INFO_V1(segment_audience_within);
Datum
segment_audience_within(PG_FUNCTION_ARGS)
{
	SubjectInfo *s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	char	   *aud = text_to_cstring(PG_GETARG_TEXT_PP(1));
	RoaringOwned *members = memberset_to_roaring(PG_GETARG_MEMBERSET_P(2));
	RoaringOwned *set = audience_evaluate_within(s, aud, members->bitmap);
	MemberSet  *ms = memberset_from_roaring(set->bitmap);

	roaring_owned_free(set);
	roaring_owned_free(members);
	PG_RETURN_MEMBERSET_P(ms);
}

/*
 * segment.members(subject name, audience text) -> setof bigint, ascending.
 * Materialized: the ids go into the result store in one loop (no call per
 * row), read in batches from the set, which is not copied (subject_put_ids).
 * In a FROM clause the planner usually streams the set instead
 * (members_scan.c); both share reader_members.
 */
PG_FUNCTION_INFO_V1(segment_members);
Datum
segment_members(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const roaring_bitmap_t *set;
	RoaringOwned *owned;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	set = reader_members(NameStr(*PG_GETARG_NAME(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)),
						 NULL, false, &owned);
	subject_put_ids(set, rsinfo->setResult, rsinfo->setDesc);
	roaring_owned_free(owned);
	return (Datum) 0;
}

/* segment.members_text(subject name, audience text) -> setof text */
PG_FUNCTION_INFO_V1(segment_members_text);
Datum
segment_members_text(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SubjectInfo *s;
	char	   *aud;
	RoaringOwned *set;
	MemberSet  *ms;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	governance_check_export("segment.members_text");
	aud = text_to_cstring(PG_GETARG_TEXT_PP(1));
	set = audience_evaluate(s, aud);
	ms = memberset_from_roaring(set->bitmap);
	roaring_owned_free(set);
	subject_put_keys(s, ms, rsinfo->setResult, rsinfo->setDesc);
	pfree(ms);
	governance_audit_export("segment.members_text", NameStr(s->name), aud,
							tuplestore_tuple_count(rsinfo->setResult));
	return (Datum) 0;
}

/* segment.keys(subject name, set segment.memberset) -> setof text */
PG_FUNCTION_INFO_V1(segment_keys);
Datum
segment_keys(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SubjectInfo *s;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	governance_check_export("segment.keys");
	subject_put_keys(s, PG_GETARG_MEMBERSET_P(1), rsinfo->setResult, rsinfo->setDesc);
	governance_audit_export("segment.keys", NameStr(s->name), "(member set)",
							tuplestore_tuple_count(rsinfo->setResult));
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * has_tag / tags
 * ------------------------------------------------------------------------
 */

static bool
has_tag_internal(const SubjectInfo *s, bool known, uint32 member_id, const char *tag)
{
	CatalogTagMember t;

	catalog_tag_member(tag, known, member_id, &t);
	if (!t.found && catalog_segment_exists(tag))
	{
		/* a segment: is the customer in its audience? */
		RoaringOwned *set = audience_evaluate(s, audience_quote_name(tag));
		bool		result = known && roaring_bitmap_contains(set->bitmap, member_id);

		roaring_owned_free(set);
		return result;
	}
	if (!t.found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tag \"%s\" does not exist", tag),
				 errhint("The tags of subject \"%s\" are listed in segment.tag.", NameStr(s->name))));
	if (t.subject_id != s->subject_id)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tag \"%s\" belongs to subject \"%s\", not \"%s\"",
						tag, t.subject, NameStr(s->name))));
	if (!t.active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tag \"%s\" is inactive", tag),
				 errhint("Reactivate it with segment.alter_tag('%s', active => true).", tag)));
	if (!t.manual && !t.refreshed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tag \"%s\" has not been refreshed", tag),
				 errhint("Run: select * from segment.refresh('%s');", NameStr(s->name))));
	return t.member;
}

/* segment.has_tag(subject name, key bigint, tag name) -> boolean */
PG_FUNCTION_INFO_V1(segment_has_tag_int8);
Datum
segment_has_tag_int8(PG_FUNCTION_ARGS)
{
	SubjectInfo *s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	uint32		member_id = 0;
	bool		known = subject_member_id_int8(s, PG_GETARG_INT64(1), &member_id);

	governance_check_customer(s->subject_id, NameStr(s->name), psprintf(INT64_FORMAT, PG_GETARG_INT64(1)));
	PG_RETURN_BOOL(has_tag_internal(s, known, member_id, NameStr(*PG_GETARG_NAME(2))));
}

/* segment.has_tag(subject name, key text, tag name) -> boolean */
PG_FUNCTION_INFO_V1(segment_has_tag_text);
Datum
segment_has_tag_text(PG_FUNCTION_ARGS)
{
	SubjectInfo *s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	uint32		member_id = 0;
	bool		known = subject_member_id_text(s, text_to_cstring(PG_GETARG_TEXT_PP(1)), &member_id);

	governance_check_customer(s->subject_id, NameStr(s->name), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_BOOL(has_tag_internal(s, known, member_id, NameStr(*PG_GETARG_NAME(2))));
}

static Datum
tags_internal(const SubjectInfo *s, bool known, uint32 member_id)
{
	if (!known)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	return catalog_member_tags(s->subject_id, member_id);
}

/* segment.tags(subject name, key bigint) -> text[] */
PG_FUNCTION_INFO_V1(segment_tags_int8);
Datum
segment_tags_int8(PG_FUNCTION_ARGS)
{
	SubjectInfo *s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	uint32		member_id = 0;
	bool		known = subject_member_id_int8(s, PG_GETARG_INT64(1), &member_id);

	governance_check_customer(s->subject_id, NameStr(s->name), psprintf(INT64_FORMAT, PG_GETARG_INT64(1)));
	return tags_internal(s, known, member_id);
}

/* segment.tags(subject name, key text) -> text[] */
PG_FUNCTION_INFO_V1(segment_tags_text);
Datum
segment_tags_text(PG_FUNCTION_ARGS)
{
	SubjectInfo *s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	uint32		member_id = 0;
	bool		known = subject_member_id_text(s, text_to_cstring(PG_GETARG_TEXT_PP(1)), &member_id);

	governance_check_customer(s->subject_id, NameStr(s->name), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	return tags_internal(s, known, member_id);
}

/* ------------------------------------------------------------------------
 * overlap
 * ------------------------------------------------------------------------
 */

/*
 * segment.overlap(subject name, audiences text[])
 *     -> table (a text, b text, a_members bigint, b_members bigint,
 *               both_members bigint, jaccard float8)
 * Every unordered pair of the audiences (i < j, in array order), computed on
 * their member sets; each audience is evaluated once, and the sets they
 * share are loaded once. jaccard = |A and B| / |A or B|, NULL when both are
 * empty.
 */
PG_FUNCTION_INFO_V1(segment_overlap);
Datum
segment_overlap(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SubjectInfo *s;
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *elemnulls;
	int			n;
	const char **texts;
	RoaringOwned **sets;
	uint64	   *card;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elemnulls, &n);
	if (n == 0)
		return (Datum) 0;
	texts = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		if (elemnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("audience %d of %d is NULL", i + 1, n)));
		texts[i] = TextDatumGetCString(elems[i]);
	}
	sets = palloc(sizeof(RoaringOwned *) * n);
	card = palloc(sizeof(uint64) * n);
	audience_evaluate_many(s, n, texts, sets);
	for (int i = 0; i < n; i++)
		card[i] = roaring_bitmap_get_cardinality(sets[i]->bitmap);

	for (int i = 0; i < n; i++)
	{
		for (int j = i + 1; j < n; j++)
		{
			Datum		values[6];
			bool		nulls[6] = {false, false, false, false, false, false};
			uint64		both = roaring_bitmap_and_cardinality(sets[i]->bitmap, sets[j]->bitmap);
			uint64		either = card[i] + card[j] - both;

			CHECK_FOR_INTERRUPTS();
			values[0] = PointerGetDatum(cstring_to_text(texts[i]));
			values[1] = PointerGetDatum(cstring_to_text(texts[j]));
			values[2] = Int64GetDatum((int64) card[i]);
			values[3] = Int64GetDatum((int64) card[j]);
			values[4] = Int64GetDatum((int64) both);
			if (either == 0)
				nulls[5] = true;
			else
				values[5] = Float8GetDatum((double) both / (double) either);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	for (int i = 0; i < n; i++)
		roaring_owned_free(sets[i]);
	return (Datum) 0;
}
