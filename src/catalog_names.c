/*
 * catalog_names.c
 *     The catalog SQL behind audience names (see catalog_names.h): the
 *     lookup of what names denote, with their member sets, and the hints'
 *     lookups. Part of the catalog module; the audience language
 *     (audience_names.c) calls it and never runs SQL of its own.
 *
 * The lookup is one query whose branches each answer one kind of row; every
 * branch gives the same named columns (lookup_columns) and names its kind
 * with a word (name_kinds). Rows are decoded by those names: adding a kind
 * is a branch, a word and an AudienceNameKind value, without renumbering.
 * Snapshot mode reads the per-date tables of one retained snapshot: the same
 * query with those sources swapped in (snapshot_lookup_sql).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "catalog_names.h"
#include "subject.h"
#include "internal_schema.h"

/*
 * $1 plain names, $2/$3 qualifiers and names of dotted names, $4 subject
 * id, $5 want the universe, $6 load sets, $7 want the subject's other
 * segments ($8 the snapshot date in snapshot mode).
 *
 * kind: 'tag', 'segment', 'subject_segment' (another segment of the subject,
 * sent along when a name is one of its segments, so that the segments it
 * leads to need no further query), 'bucket', 'band', 'universe'.
 */
static const char *lookup_sql =
	"SELECT 'tag'::text AS kind, t.name AS name, NULL::name AS qualifier, t.tag_id AS id,"
	"       t.subject_id AS subject_id, s.name AS subject_name,"
	"       t.rule IS NULL AS manual, false AS missing, t.active AS active,"
	"       st.tag_id IS NOT NULL AS refreshed,"
	"       CASE WHEN $6 AND t.subject_id = $4 AND t.active AND t.rule IS NOT NULL"
	"            THEN segment_internal._live_tag(st.members, t.subject_id, t.tag_id) END AS members,"
	"       CASE WHEN $6 AND t.subject_id = $4 AND t.active THEN"
	"            (SELECT segment.memberset_agg(m.member_id) FROM segment.manual_tag m"
	"              WHERE m.tag_id = t.tag_id"
	"                AND (m.expires_at IS NULL OR m.expires_at > now())) END AS manual_members,"
	"       NULL::text AS audience"
	"  FROM segment.tag t"
	"  JOIN segment.subject s ON s.subject_id = t.subject_id"
	"  LEFT JOIN segment.tag_state st ON st.tag_id = t.tag_id"
	" WHERE t.name = ANY ($1)"
	" UNION ALL "
	"SELECT 'segment', g.name, NULL, g.segment_id, g.subject_id, s.name, false, false, true, true,"
	"       NULL, NULL, g.audience"
	"  FROM segment.segment g"
	"  JOIN segment.subject s ON s.subject_id = g.subject_id"
	" WHERE g.name = ANY ($1)"
	" UNION ALL "
	"SELECT 'subject_segment', g.name, NULL, g.segment_id, g.subject_id, NULL, false, false, true, true,"
	"       NULL, NULL, g.audience"
	"  FROM segment.segment g"
	" WHERE $7 AND g.subject_id = $4 AND NOT g.name = ANY ($1)"
	"   AND EXISTS (SELECT 1 FROM segment.segment x"
	"                WHERE x.name = ANY ($1) AND x.subject_id = $4)"
	" UNION ALL "
	"SELECT 'bucket', r.n, r.q, c.scheme_id, c.subject_id, s.name, false, b.name IS NULL, c.active,"
	"       bs.scheme_id IS NOT NULL,"
	"       CASE WHEN $6 AND c.subject_id = $4 AND c.active"
	"            THEN segment_internal._live_bucket(bs.members, c.subject_id, c.scheme_id, r.n) END,"
	"       NULL, NULL"
	"  FROM unnest($2, $3) AS r(q, n)"
	"  JOIN segment.scheme c ON c.name = r.q"
	"  JOIN segment.subject s ON s.subject_id = c.subject_id"
	"  LEFT JOIN segment.scheme_bucket b ON b.scheme_id = c.scheme_id AND b.name = r.n"
	"  LEFT JOIN segment.bucket_state bs ON bs.scheme_id = c.scheme_id AND bs.bucket = r.n"
	" UNION ALL "
	"SELECT 'band', r.n, r.q, c.scorecard_id, c.subject_id, s.name, false, d.name IS NULL, c.active,"
	"       EXISTS (SELECT 1 FROM segment.score_state x WHERE x.scorecard_id = c.scorecard_id),"
	"       CASE WHEN $6 AND c.subject_id = $4 AND c.active AND d.name IS NOT NULL THEN"
	"            (SELECT segment.union_agg(x.members)"
	"               FROM segment_internal._live_scores(c.scorecard_id, c.subject_id) x"
	"              WHERE (d.min_score IS NULL OR x.score >= d.min_score)"
	"                AND (d.max_score IS NULL OR x.score < d.max_score)) END,"
	"       NULL, NULL"
	"  FROM unnest($2, $3) AS r(q, n)"
	"  JOIN segment.scorecard c ON c.name = r.q"
	"  JOIN segment.subject s ON s.subject_id = c.subject_id"
	"  LEFT JOIN segment.scorecard_band d ON d.scorecard_id = c.scorecard_id AND d.name = r.n"
	" UNION ALL "
	"SELECT 'universe', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
	"       segment_internal._live_universe(u.universe, u.subject_id), NULL, NULL"
	"  FROM segment.subject_state u"
	" WHERE u.subject_id = $4 AND $5";

/* The words of the kind column that are names, and what they denote. */
static const struct
{
	const char *word;
	AudienceNameKind kind;
}			name_kinds[] =
{
	{"tag", AUD_NAME_TAG},
	{"segment", AUD_NAME_SEGMENT},
	{"bucket", AUD_NAME_BUCKET},
	{"band", AUD_NAME_BAND},
};

/* The columns of lookup_sql, by name. */
typedef struct LookupColumns
{
	int			kind,
				name,
				qualifier,
				id,
				subject_id,
				subject_name,
				manual,
				missing,
				active,
				refreshed,
				members,
				manual_members,
				audience;
} LookupColumns;

static int
column(TupleDesc td, const char *name)
{
	int			k = SPI_fnumber(td, name);

	if (k <= 0)
		elog(ERROR, "audience name lookup: no column \"%s\"", name);
	return k;
}

static void
lookup_columns(TupleDesc td, LookupColumns *c)
{
	c->kind = column(td, "kind");
	c->name = column(td, "name");
	c->qualifier = column(td, "qualifier");
	c->id = column(td, "id");
	c->subject_id = column(td, "subject_id");
	c->subject_name = column(td, "subject_name");
	c->manual = column(td, "manual");
	c->missing = column(td, "missing");
	c->active = column(td, "active");
	c->refreshed = column(td, "refreshed");
	c->members = column(td, "members");
	c->manual_members = column(td, "manual_members");
	c->audience = column(td, "audience");
}

static char *
replace_once(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	StringInfoData buf;

	if (at == NULL)
		elog(ERROR, "audience lookup: \"%s\" not found in the query", from);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, text, at - text);
	appendStringInfoString(&buf, to);
	appendStringInfoString(&buf, at + strlen(from));
	return buf.data;
}

/* lookup_sql reading segment.tag_snapshot and segment.subject_snapshot at $8. */
static const char *
snapshot_lookup_sql(void)
{
	static char *sql = NULL;

	if (sql == NULL)
	{
		char	   *q = (char *) lookup_sql;

		q = replace_once(q, "LEFT JOIN segment.tag_state st ON st.tag_id = t.tag_id",
						 "LEFT JOIN segment.tag_snapshot st ON st.tag_id = t.tag_id AND st.snapshot_date = $8");
		q = replace_once(q, "segment_internal._live_tag(st.members, t.subject_id, t.tag_id)", "st.members");
		q = replace_once(q, "segment_internal._live_universe(u.universe, u.subject_id)", "u.universe");
		q = replace_once(q, "FROM segment.subject_state u", "FROM segment.subject_snapshot u");
		q = replace_once(q, "WHERE u.subject_id = $4 AND $5", "WHERE u.subject_id = $4 AND $5 AND u.snapshot_date = $8");
		sql = MemoryContextStrdup(TopMemoryContext, q);
	}
	return sql;
}

/* Deserialize a memberset datum from an SPI tuple into cxt. */
static RoaringOwned *
load_set(Datum d, MemoryContext cxt)
{
	MemberSet  *ms = (MemberSet *) PG_DETOAST_DATUM(d);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	RoaringOwned *o = memberset_to_roaring(ms);

	MemoryContextSwitchTo(old);
	if ((Pointer) ms != DatumGetPointer(d))
		pfree(ms);
	return o;
}

static Datum
name_array(int n, const char **names)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		NameData   *nm = palloc(sizeof(NameData));

		namestrcpy(nm, names[i]);
		d[i] = NameGetDatum(nm);
	}
	return PointerGetDatum(construct_array(d, n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
}

/*
 * The plan of the current-state or the snapshot query, prepared once per
 * backend (again when the extension was re-created: segment_saved_plan).
 *
 * A generic plan: the default (a custom plan per call while the generic one
 * looks dearer) re-plans this six-branch query at every call, which costs
 * several times the execution.
 */
static SPIPlanPtr
lookup_plan(bool snapshot, Oid *argtypes)
{
	static SPIPlanPtr current_plan = NULL;
	static SPIPlanPtr snapshot_plan = NULL;

	if (snapshot)
		return segment_saved_plan_cursor(&snapshot_plan, snapshot_lookup_sql(), 8, argtypes,
										 CURSOR_OPT_GENERIC_PLAN);
	return segment_saved_plan_cursor(&current_plan, lookup_sql, 7, argtypes,
									 CURSOR_OPT_GENERIC_PLAN);
}

static AudienceNameKind
name_kind(const char *word)
{
	for (int k = 0; k < lengthof(name_kinds); k++)
		if (strcmp(name_kinds[k].word, word) == 0)
			return name_kinds[k].kind;
	elog(ERROR, "audience name lookup: unknown kind \"%s\"", word);
	return AUD_NAME_UNRESOLVED;	/* not reached */
}

static char *
get_name(HeapTuple tup, TupleDesc td, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);

	return isnull ? NULL : MemoryContextStrdup(cxt, NameStr(*DatumGetName(d)));
}

static RoaringOwned *
get_set(HeapTuple tup, TupleDesc td, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);

	return isnull ? NULL : load_set(d, cxt);
}

static char *
get_text(HeapTuple tup, TupleDesc td, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);
	char	   *s;
	MemoryContext old;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(cxt);
	s = TextDatumGetCString(d);
	MemoryContextSwitchTo(old);
	return s;
}

static int32
get_int32(HeapTuple tup, TupleDesc td, int col)
{
	bool		isnull;

	return DatumGetInt32(SPI_getbinval(tup, td, col, &isnull));
}

static bool
get_bool(HeapTuple tup, TupleDesc td, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);

	return !isnull && DatumGetBool(d);
}

void
catalog_names_lookup(const CatalogNamesRequest *req, CatalogNamesResult *out)
{
	MemoryContext callercxt = CurrentMemoryContext;
	Oid			argtypes[8] = {NAMEARRAYOID, NAMEARRAYOID, NAMEARRAYOID, INT4OID, BOOLOID, BOOLOID, BOOLOID, DATEOID};
	Datum		args[8];
	SPIPlanPtr	plan;
	LookupColumns c;
	TupleDesc	td;
	int			spi_nest;
	int			ret;

	args[0] = name_array(req->nnames, req->names);
	args[1] = name_array(req->nqualified, req->qualifiers);
	args[2] = name_array(req->nqualified, req->qnames);
	args[3] = Int32GetDatum(req->subject_id);
	args[4] = BoolGetDatum(req->want_universe);
	args[5] = BoolGetDatum(req->load);
	args[6] = BoolGetDatum(req->want_segments);
	args[7] = DateADTGetDatum(req->snapshot ? req->snapshot_date : 0);
	memset(out, 0, sizeof(*out));

	spi_nest = segment_spi_connect();
	plan = lookup_plan(req->snapshot, argtypes);
	ret = SPI_execute_plan(plan, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "loading audience sets failed: %s", SPI_result_code_string(ret));
	td = SPI_tuptable->tupdesc;
	lookup_columns(td, &c);
	out->names = MemoryContextAlloc(callercxt, sizeof(CatalogName) * Max(SPI_processed, 1));
	out->segments = MemoryContextAlloc(callercxt, sizeof(CatalogSegment) * Max(SPI_processed, 1));

	for (uint64 k = 0; k < SPI_processed; k++)
	{
		HeapTuple	tup = SPI_tuptable->vals[k];
		char	   *word = get_text(tup, td, c.kind, CurrentMemoryContext);
		CatalogName *n;

		if (strcmp(word, "universe") == 0)
		{
			out->universe = get_set(tup, td, c.members, callercxt);
			continue;
		}
		if (strcmp(word, "subject_segment") == 0)
		{
			CatalogSegment *g = &out->segments[out->nsegments++];

			g->name = get_name(tup, td, c.name, callercxt);
			g->audience = get_text(tup, td, c.audience, callercxt);
			g->segment_id = get_int32(tup, td, c.id);
			continue;
		}
		n = &out->names[out->nnames++];
		n->kind = name_kind(word);
		n->name = get_name(tup, td, c.name, callercxt);
		n->qualifier = get_name(tup, td, c.qualifier, callercxt);
		n->id = get_int32(tup, td, c.id);
		n->subject_id = get_int32(tup, td, c.subject_id);
		n->subject_name = get_name(tup, td, c.subject_name, callercxt);
		n->manual = get_bool(tup, td, c.manual);
		n->missing = get_bool(tup, td, c.missing);
		n->active = get_bool(tup, td, c.active);
		n->refreshed = get_bool(tup, td, c.refreshed);
		n->set = get_set(tup, td, c.members, callercxt);
		n->manual_set = get_set(tup, td, c.manual_members, callercxt);
		n->audience = get_text(tup, td, c.audience, callercxt);
	}
	segment_spi_finish(spi_nest);
}

char *
catalog_names_suggest(int32 subject_id, const char *name)
{
	int			spi_nest;
	Datum		args[2];
	Oid			types[2] = {INT4OID, TEXTOID};
	char	   *result = NULL;
	MemoryContext callercxt = CurrentMemoryContext;

	args[0] = Int32GetDatum(subject_id);
	args[1] = CStringGetTextDatum(name);
	spi_nest = segment_spi_connect();
	if (SPI_execute_with_args("SELECT n::text FROM ("
							  " SELECT name AS n FROM segment.tag WHERE subject_id = $1"
							  " UNION ALL SELECT name FROM segment.segment WHERE subject_id = $1) x"
							  " WHERE lower(n::text) = lower($2)"
							  " ORDER BY n LIMIT 1",
							  2, types, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		result = MemoryContextStrdup(callercxt, s);
	}
	segment_spi_finish(spi_nest);
	return result;
}

char *
catalog_names_members(AudienceNameKind kind, int32 id)
{
	int			spi_nest;
	Datum		args[1];
	Oid			types[1] = {INT4OID};
	char	   *result = NULL;
	MemoryContext callercxt = CurrentMemoryContext;
	const char *sql;

	if (kind == AUD_NAME_BUCKET)
		sql = "SELECT string_agg(name::text, ', ' ORDER BY position) FROM segment.scheme_bucket WHERE scheme_id = $1";
	else if (kind == AUD_NAME_BAND)
		sql = "SELECT string_agg(name::text, ', ' ORDER BY min_score NULLS FIRST, name) FROM segment.scorecard_band WHERE scorecard_id = $1";
	else
		elog(ERROR, "catalog_names_members: kind %d has no members", (int) kind);

	args[0] = Int32GetDatum(id);
	spi_nest = segment_spi_connect();
	if (SPI_execute_with_args(sql, 1, types, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (s != NULL)
			result = MemoryContextStrdup(callercxt, s);
	}
	segment_spi_finish(spi_nest);
	return result;
}
