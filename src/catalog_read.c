/*
 * catalog_read.c
 *     Reads of definitions and state for the SQL API (catalog.h): has_tag
 *     and tags for one customer, segment names, the retained snapshots of a
 *     subject, the subject list of a refresh of everything, and what
 *     explain shows of a tag, scheme or scorecard, the stored goals of
 *     opportunity rules (an event rule's attachment: catalog_event.c).
 *     Prefix: catalog_.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "rule_owner.h"
#include "subject.h"
#include "internal_schema.h"

List *
catalog_subject_names(void)
{
	List	   *names = NIL;
	uint64		i;

	if (SPI_execute("SELECT name FROM segment.subject ORDER BY name", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.subject");
	for (i = 0; i < SPI_processed; i++)
		names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return names;
}

bool
catalog_segment_exists(const char *name)
{
	int			spi_nest;
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {NAMEOID};
	Datum		args[1];
	NameData	n;
	bool		found;

	namestrcpy(&n, name);
	args[0] = NameGetDatum(&n);
	spi_nest = segment_spi_connect();
	segment_saved_plan(&plan, "SELECT 1 FROM segment.segment WHERE name = $1", 1, argtypes);
	if (SPI_execute_plan(plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "segment lookup failed");
	found = SPI_processed > 0;
	segment_spi_finish(spi_nest);
	return found;
}

void
catalog_tag_member(const char *tag, bool known, uint32 member_id, CatalogTagMember *out)
{
	int			spi_nest;
	static SPIPlanPtr plan = NULL;
	MemoryContext callercxt = CurrentMemoryContext;
	Oid			argtypes[2] = {NAMEOID, INT8OID};
	Datum		args[2];
	char		nulls[2] = {' ', known ? ' ' : 'n'};
	NameData	tagname;
	int			ret;

	memset(out, 0, sizeof(*out));
	namestrcpy(&tagname, tag);
	args[0] = NameGetDatum(&tagname);
	args[1] = Int64GetDatum((int64) member_id);

	spi_nest = segment_spi_connect();
	segment_saved_plan(&plan,
					   "SELECT t.subject_id, s.name::text, t.rule IS NULL, t.active,"
					   "       st.tag_id IS NOT NULL,"
					   "       COALESCE(t.rule IS NOT NULL"
					   "                AND segment_internal._live_has(st.members, t.subject_id, t.tag_id, $2), false)"
					   "       OR EXISTS (SELECT 1 FROM segment.manual_tag m"
					   "                   WHERE m.tag_id = t.tag_id AND m.member_id = $2"
					   "                     AND (m.expires_at IS NULL OR m.expires_at > now()))"
					   "  FROM segment.tag t"
					   "  JOIN segment.subject s ON s.subject_id = t.subject_id"
					   "  LEFT JOIN segment.tag_state st ON st.tag_id = t.tag_id"
					   " WHERE t.name = $1",
					   2, argtypes);
	ret = SPI_execute_plan(plan, args, nulls, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "has_tag failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *subject;

		out->found = true;
		out->subject_id = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		subject = SPI_getvalue(tup, td, 2);
		out->manual = DatumGetBool(SPI_getbinval(tup, td, 3, &isnull));
		out->active = DatumGetBool(SPI_getbinval(tup, td, 4, &isnull));
		out->refreshed = DatumGetBool(SPI_getbinval(tup, td, 5, &isnull));
		out->member = DatumGetBool(SPI_getbinval(tup, td, 6, &isnull)) && !isnull;
		out->subject = MemoryContextStrdup(callercxt, subject ? subject : "");
	}
	segment_spi_finish(spi_nest);
}

Datum
catalog_member_tags(int32 subject_id, uint32 member_id)
{
	int			spi_nest;
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {INT4OID, INT8OID};
	Datum		args[2];
	Datum		result;
	bool		isnull;
	int			ret;

	args[0] = Int32GetDatum(subject_id);
	args[1] = Int64GetDatum((int64) member_id);
	spi_nest = segment_spi_connect();
	segment_saved_plan(&plan,
					   "SELECT COALESCE(array_agg(t.name::text ORDER BY t.name), '{}')"
					   "  FROM segment.tag t"
					   "  LEFT JOIN segment.tag_state st ON st.tag_id = t.tag_id"
					   " WHERE t.subject_id = $1 AND t.active"
					   "   AND ((t.rule IS NOT NULL AND st.tag_id IS NOT NULL"
					   "         AND segment_internal._live_has(st.members, t.subject_id, t.tag_id, $2))"
					   "        OR EXISTS (SELECT 1 FROM segment.manual_tag m"
					   "                    WHERE m.tag_id = t.tag_id AND m.member_id = $2"
					   "                      AND (m.expires_at IS NULL OR m.expires_at > now())))",
					   2, argtypes);
	ret = SPI_execute_plan(plan, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "tags failed: %s", SPI_result_code_string(ret));
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	result = SPI_datumTransfer(result, false, -1);
	segment_spi_finish(spi_nest);
	return result;
}

bool
catalog_snapshot_retained(int32 subject_id, DateADT d, char **dates)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, DATEOID};
	bool		found;
	bool		isnull;
	int			nest;

	*dates = NULL;
	args[0] = Int32GetDatum(subject_id);
	args[1] = DateADTGetDatum(d);
	nest = segment_spi_connect();
	if (SPI_execute_with_args("SELECT EXISTS (SELECT 1 FROM segment.subject_snapshot "
							  "              WHERE subject_id = $1 AND snapshot_date = $2),"
							  "       (SELECT string_agg(to_char(snapshot_date, 'YYYY-MM-DD'), ', ' "
							  "                          ORDER BY snapshot_date DESC) "
							  "          FROM segment.subject_snapshot WHERE subject_id = $1)",
							  2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.subject_snapshot");
	found = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!found)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		*dates = v ? pstrdup(v) : NULL;
	}
	segment_spi_finish(nest);
	return found;
}

bool
catalog_tag_exists(int32 subject_id, const char *name)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	bool		isnull;

	args[0] = Int32GetDatum(subject_id);
	args[1] = PointerGetDatum(cstring_to_text(name));
	if (SPI_execute_with_args("SELECT EXISTS (SELECT 1 FROM segment.tag t "
							  "WHERE t.subject_id = $1 AND t.name::text = $2)",
							  2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.tag");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

bool
catalog_find_group(int32 subject_id, const char *name, const char **kind, int32 *id)
{
	Datum		a[2];
	Oid			t[2] = {INT4OID, TEXTOID};
	bool		isnull;

	a[0] = Int32GetDatum(subject_id);
	a[1] = PointerGetDatum(cstring_to_text(name));
	if (SPI_execute_with_args("SELECT 'scheme', scheme_id FROM segment.scheme "
							  " WHERE subject_id = $1 AND name::text = $2 "
							  "UNION ALL "
							  "SELECT 'scorecard', scorecard_id FROM segment.scorecard "
							  " WHERE subject_id = $1 AND name::text = $2",
							  2, t, a, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.scheme");
	if (SPI_processed == 0)
		return false;
	*kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return true;
}

bool
catalog_tag_explain(int32 subject_id, const char *tag, int64 member_id, CatalogTagExplain *out)
{
	Datum		args[3];
	Oid			argtypes[3] = {INT4OID, NAMEOID, INT8OID};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	memset(out, 0, sizeof(*out));
	args[0] = Int32GetDatum(subject_id);
	args[1] = DirectFunctionCall1(namein, CStringGetDatum(tag));
	args[2] = Int64GetDatum(member_id);
	if (SPI_execute_with_args(segment_internal_sql(psprintf(
			"SELECT t.rule, t.active, s.tag_id IS NOT NULL, "
			"       segment_internal._live_has(s.members, t.subject_id, t.tag_id, $3), s.as_of, "
			"       (SELECT jsonb_build_object('set_by', m.set_by, 'set_at', m.set_at, 'expires_at', m.expires_at, "
			"                                  'expired', m.expires_at IS NOT NULL AND m.expires_at <= now()) "
			"          FROM segment.manual_tag m WHERE m.tag_id = t.tag_id AND m.member_id = $3)::text, "
			"       EXISTS (SELECT 1 FROM segment.manual_tag m WHERE m.tag_id = t.tag_id AND m.member_id = $3 "
			"                  AND (m.expires_at IS NULL OR m.expires_at > now())), %s "
			"  FROM segment.tag t LEFT JOIN segment.tag_state s USING (tag_id) "
			" WHERE t.subject_id = $1 AND t.name = $2", rule_owner_sql("tag", "t"))),
			3, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.tag");
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	out->rule = SPI_getvalue(tup, desc, 1);
	out->active = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	out->refreshed = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	out->member = !isnull && DatumGetBool(d);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	out->has_as_of = !isnull;
	if (!isnull)
		out->as_of = DatumGetDateADT(d);
	out->manual_row = SPI_getvalue(tup, desc, 6);
	out->manual_member = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
	out->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 8, &isnull));
	return true;
}

/*
 * The rules of a scheme (its buckets, the customer's stored bucket flagged)
 * or of a scorecard (its items with their points; its base and the
 * customer's stored score), in order. Both queries have the columns (item
 * name, rule, in the stored bucket, points, owner, base, stored score).
 */
static int
group_explain(bool scorecard, int32 id, int64 member_id, char **base, char **stored_score,
			  CatalogRuleItem **items)
{
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};
	char	   *sql;
	uint64		i;
	int			n = 0;

	args[0] = Int32GetDatum(id);
	args[1] = Int64GetDatum(member_id);
	if (scorecard)
		sql = psprintf("SELECT NULL::text, i.rule, NULL::bool, i.points::text, %s, c.base::text, "
					   "       (SELECT s.score::text FROM segment_internal._live_scores(c.scorecard_id, c.subject_id) s "
					   "         WHERE s.members OPERATOR(segment.@>) $2) "
					   "  FROM segment.scorecard c LEFT JOIN segment.scorecard_item i USING (scorecard_id) "
					   " WHERE c.scorecard_id = $1 ORDER BY i.position", rule_owner_sql("scorecard", "c"));
	else
		sql = psprintf("SELECT b.name, b.rule, segment_internal._live_in_bucket(s.members, b.scheme_id, b.name, $2), "
					   "       NULL::text, (SELECT %s FROM segment.scheme c WHERE c.scheme_id = b.scheme_id), "
					   "       NULL::text, NULL::text "
					   "  FROM segment.scheme_bucket b LEFT JOIN segment.bucket_state s "
					   "    ON s.scheme_id = b.scheme_id AND s.bucket = b.name "
					   " WHERE b.scheme_id = $1 ORDER BY b.position", rule_owner_sql("scheme", "c"));
	if (SPI_execute_with_args(segment_internal_sql(sql), 2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.%s", scorecard ? "scorecard" : "scheme_bucket");
	if (scorecard)
	{
		*base = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6);
		*stored_score = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7);
	}
	*items = palloc0(sizeof(CatalogRuleItem) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		in;
		CatalogRuleItem *item = &(*items)[n];

		item->rule = SPI_getvalue(tup, desc, 2);
		if (item->rule == NULL)
			break;				/* a scorecard without items */
		item->name = SPI_getvalue(tup, desc, 1);
		in = SPI_getbinval(tup, desc, 3, &isnull);
		item->stored = !isnull && DatumGetBool(in);
		item->points = SPI_getvalue(tup, desc, 4);
		item->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		n++;
	}
	return n;
}

int
catalog_scheme_explain(int32 scheme_id, int64 member_id, CatalogRuleItem **items)
{
	return group_explain(false, scheme_id, member_id, NULL, NULL, items);
}

int
catalog_scorecard_explain(int32 scorecard_id, int64 member_id, char **base, char **stored_score,
						  CatalogRuleItem **items)
{
	return group_explain(true, scorecard_id, member_id, base, stored_score, items);
}

bool
catalog_stored_rule(const char *kind, int32 rule_id, Oid relid, CatalogStoredRule *sr)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum		args[2] = {Int32GetDatum(rule_id), ObjectIdGetDatum(relid)};
	Oid			argtypes[2] = {INT4OID, OIDOID};
	const char *sql;
	bool		found = false;

	if (strcmp(kind, "goal") == 0)
		sql = "SELECT r.goal, 'goal of opportunity rule \"' || r.name || '\"', r.owner::oid, s.relation::oid"
			"  FROM segment.opportunity_rule r JOIN segment.subject s USING (subject_id)"
			" WHERE r.rule_id = $1 AND s.relation = $2 AND r.goal IS NOT NULL";
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown kind of stored rule \"%s\"", kind),
				 errhint("The one kind is goal; event conditions are read by the event trigger (catalog_event_rule).")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the stored rule");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		sr->rule = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
		sr->what = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2));
		sr->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		sr->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
		found = true;
	}
	SPI_finish();
	return found;
}
