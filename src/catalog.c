/*
 * catalog.c
 *     Definitions from the catalog (catalog.h): the active rules of a
 *     subject (tags, then schemes and scorecards through one loader of
 *     "rule groups") as a SubjectDefs that a refresh and live maintenance
 *     build once, and the live_subject row the live trigger starts from.
 *     Prefix of exported symbols: catalog_.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "rule_owner.h"
#include "subject.h"

/* numeric text -> score value, or false (too many decimals, too large) */
static bool
score_from_text(const char *s, ScoreValue *v)
{
	Datum		n = DirectFunctionCall3(numeric_in, CStringGetDatum(s),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	return numeric_scaled((struct varlena *) DatumGetPointer(n), v);
}

static char *
getvalue_in(MemoryContext cxt, HeapTuple tup, TupleDesc desc, int col)
{
	char	   *v = SPI_getvalue(tup, desc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

static void
load_tags(SubjectDefs *defs, MemoryContext cxt)
{
	Datum		arg = Int32GetDatum(defs->subject_id);
	Oid			argtype = INT4OID;
	uint64		i;

	if (SPI_execute_with_args(psprintf("SELECT tag_id, name, rule, %s FROM segment.tag t "
									   "WHERE subject_id = $1 AND active AND rule IS NOT NULL ORDER BY name",
									   rule_owner_sql("tag", "t")),
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.tag");
	defs->ntags = SPI_processed;
	defs->tags = MemoryContextAllocZero(cxt, sizeof(TagDef) * Max(defs->ntags, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		defs->tags[i].tag_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		defs->tags[i].name = getvalue_in(cxt, tup, desc, 2);
		defs->tags[i].rule = getvalue_in(cxt, tup, desc, 3);
		defs->tags[i].owner = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * The rule groups of the subject: one row per item (bucket, scorecard item),
 * ordered by group name then position, columns (id, name, base, item name,
 * item rule, points, items of the group, owner). A scorecard without items
 * has one row with a NULL rule.
 */
static void
load_groups(SubjectDefs *defs, bool scorecards, MemoryContext cxt)
{
	Datum		arg = Int32GetDatum(defs->subject_id);
	Oid			argtype = INT4OID;
	const char *what = scorecards ? "scorecard" : "scheme";
	char	   *sql;
	RuleGroupDef *groups;
	int			ngroups = 0;
	int32		last = -1;
	uint64		i;
	int			n;

	if (scorecards)
		sql = psprintf("SELECT c.scorecard_id, c.name, c.base::text, 'item', i.rule, i.points::text, "
					   "       count(i.rule) OVER (PARTITION BY c.scorecard_id), %s "
					   "  FROM segment.scorecard c LEFT JOIN segment.scorecard_item i USING (scorecard_id) "
					   " WHERE c.subject_id = $1 AND c.active "
					   " ORDER BY c.name, i.position", rule_owner_sql("scorecard", "c"));
	else
		sql = psprintf("SELECT s.scheme_id, s.name, NULL::text, b.name, b.rule, NULL::text, "
					   "       count(*) OVER (PARTITION BY s.scheme_id), %s "
					   "  FROM segment.scheme s JOIN segment.scheme_bucket b USING (scheme_id) "
					   " WHERE s.subject_id = $1 AND s.active "
					   " ORDER BY s.name, b.position", rule_owner_sql("scheme", "s"));
	if (SPI_execute_with_args(sql, 1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.%s", what);

	/* rows are sorted by group: count the groups */
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		if (i == 0 || id != last)
			ngroups++;
		last = id;
	}
	groups = MemoryContextAllocZero(cxt, sizeof(RuleGroupDef) * Max(ngroups, 1));
	n = -1;
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		RuleGroupDef *g;
		char	   *rule;

		if (n < 0 || id != groups[n].id)
		{
			int64		nitems = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));

			g = &groups[++n];
			g->id = id;
			g->name = getvalue_in(cxt, tup, desc, 2);
			g->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 8, &isnull));
			g->item_names = MemoryContextAllocZero(cxt, sizeof(char *) * Max(nitems, 1));
			g->rules = MemoryContextAllocZero(cxt, sizeof(char *) * Max(nitems, 1));
			g->points = MemoryContextAllocZero(cxt, sizeof(ScoreValue) * Max(nitems, 1));
			if (scorecards && !score_from_text(SPI_getvalue(tup, desc, 3), &g->base))
				g->error = "the base must have at most 8 decimals and be below 10^20";
		}
		g = &groups[n];
		rule = getvalue_in(cxt, tup, desc, 5);
		if (rule == NULL)
			continue;			/* a scorecard without items */
		g->item_names[g->nitems] = getvalue_in(cxt, tup, desc, 4);
		g->rules[g->nitems] = rule;
		if (scorecards && !score_from_text(SPI_getvalue(tup, desc, 6), &g->points[g->nitems]))
			g->error = "points must have at most 8 decimals and be below 10^20";
		g->nitems++;
	}
	SPI_freetuptable(SPI_tuptable);

	if (scorecards)
	{
		for (n = 0; n < ngroups; n++)
			if (groups[n].error)
				ereport(WARNING,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("scorecard \"%s\" is not refreshed: %s",
								groups[n].name, groups[n].error)));
		defs->nscorecards = ngroups;
		defs->scorecards = groups;
	}
	else
	{
		defs->nschemes = ngroups;
		defs->schemes = groups;
	}
}

void
catalog_load_rules(SubjectDefs *defs, MemoryContext cxt)
{
	load_tags(defs, cxt);
	load_groups(defs, false, cxt);
	load_groups(defs, true, cxt);
}

void
catalog_live_subject(int32 subject_id, Snapshot snap, LiveSubjectRow *out)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(subject_id);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		arr;

	memset(out, 0, sizeof(*out));
	segment_saved_plan(&plan,
					   "SELECT s.name::text, s.key_column::text, s.relation::oid, l.triggers::text[], st.as_of,"
					   "       EXISTS (SELECT 1 FROM segment.entry_rule e WHERE e.subject_id = s.subject_id)"
					   "  FROM segment.live_subject l JOIN segment.subject s USING (subject_id)"
					   "  LEFT JOIN segment.subject_state st USING (subject_id)"
					   " WHERE l.subject_id = $1",
					   1, &argtype);
	if (SPI_execute_snapshot(plan, &arg, NULL, snap, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.live_subject");
	MemoryContextSwitchTo(cxt);
	if (SPI_processed != 1)
	{
		SPI_freetuptable(SPI_tuptable);
		return;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	out->found = true;
	out->name = SPI_getvalue(tup, desc, 1);
	out->key_column = SPI_getvalue(tup, desc, 2);
	out->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
	arr = SPI_getbinval(tup, desc, 4, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			i;

		deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &out->ntriggers);
		out->triggers = palloc(sizeof(char *) * Max(out->ntriggers, 1));
		for (i = 0; i < out->ntriggers; i++)
			out->triggers[i] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
	}
	out->as_of = DatumGetDateADT(SPI_getbinval(tup, desc, 5, &isnull));
	out->refreshed = !isnull;
	out->entry_rules = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	SPI_freetuptable(SPI_tuptable);
}
