/*
 * asof.c
 *     The evaluation date that rules see through segment.as_of().
 *
 * A refresh evaluates every rule "as of" one date so a run can be reproduced
 * or back-filled. The date lives in the GUC segment.as_of: refresh sets it for
 * its own duration, and an analyst can SET it to evaluate a rule in plain SQL
 * exactly as a refresh would. Empty means current_date.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"

#include "rule.h"
#include "segment.h"

char	   *segment_as_of_guc = NULL;

/* GUC check hook: empty, or a finite date. */
bool
segment_as_of_check(char **newval, void **extra, GucSource source)
{
	DateADT		d;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	d = DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(*newval)));
	if (DATE_NOT_FINITE(d))
	{
		GUC_check_errdetail("segment.as_of must be a finite date.");
		return false;
	}
	return true;
}

DateADT
segment_current_as_of(void)
{
	if (segment_as_of_guc == NULL || segment_as_of_guc[0] == '\0')
		return GetSQLCurrentDate();
	return DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(segment_as_of_guc)));
}

/* OID of segment.as_of(); rules are rewritten to use a constant instead. */
Oid
segment_as_of_funcoid(void)
{
	List	   *name = list_make2(makeString("segment"), makeString("as_of"));

	return LookupFuncName(name, 0, NULL, false);
}

PG_FUNCTION_INFO_V1(segment_as_of);
Datum
segment_as_of(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATEADT(segment_current_as_of());
}
