/*
 * segments.c
 *     The C side of named segments (sql/install/72-segments.sql):
 *     definition-time validation of a segment's audience (syntax, names,
 *     cycles) and the list of names an audience text uses, from which the
 *     PL/pgSQL functions find the segments that depend on a tag or segment.
 *
 * Segments themselves are expanded by audience_names.c and evaluated by
 * audience_eval.c wherever an audience is read.
 *
 * Exports only SQL-callable functions (prefix segment_).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "audience.h"
#include "subject.h"

/*
 * segment_internal._audience_check(subject name, audience text, segment name default null)
 *     -> void
 * Raises the audience's error (42601, 42622, 42704, 42P17) if it is not a
 * valid audience for the subject, with `segment` standing for the new text.
 */
PG_FUNCTION_INFO_V1(segment_audience_check);
Datum
segment_audience_check(PG_FUNCTION_ARGS)
{
	SubjectInfo *s;
	char	   *aud;
	char	   *defining = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("subject must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("audience must not be NULL")));
	s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	aud = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(2))
		defining = NameStr(*PG_GETARG_NAME(2));
	audience_validate(s, aud, defining);
	PG_RETURN_VOID();
}

/*
 * segment_internal._audience_names(audience text) -> table (qualifier name, name name)
 * The distinct names an audience uses, in order of first appearance
 * (qualifier is the scheme or scorecard of a dotted name). Syntax only: no
 * catalog access.
 */
PG_FUNCTION_INFO_V1(segment_audience_names);
Datum
segment_audience_names(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Audience   *a;

	InitMaterializedSRF(fcinfo, 0);
	a = audience_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	for (int i = 0; i < a->nrefs; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (a->refs[i].qualifier != NULL)
			values[0] = DirectFunctionCall1(namein, CStringGetDatum(a->refs[i].qualifier));
		else
			nulls[0] = true;
		values[1] = DirectFunctionCall1(namein, CStringGetDatum(a->refs[i].name));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
