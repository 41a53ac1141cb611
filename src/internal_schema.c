/*
 * internal_schema.c
 *     The SQL C code runs, with its helpers in the schema this database has
 *     them in (internal_schema.h): segment_internal from 0.2.0, segment in
 *     a database not yet updated from 0.1.0.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "lib/stringinfo.h"

#include "internal_schema.h"

#define INTERNAL_PREFIX "segment_internal."

const char *
segment_internal_sql(const char *sql)
{
	StringInfoData buf;
	const char *at;

	if (OidIsValid(get_namespace_oid("segment_internal", true)) ||
		strstr(sql, INTERNAL_PREFIX) == NULL)
		return sql;
	initStringInfo(&buf);
	while ((at = strstr(sql, INTERNAL_PREFIX)) != NULL)
	{
		appendBinaryStringInfo(&buf, sql, at - sql);
		appendStringInfoString(&buf, "segment.");
		sql = at + strlen(INTERNAL_PREFIX);
	}
	appendStringInfoString(&buf, sql);
	return buf.data;
}
