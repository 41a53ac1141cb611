/*
 * internal_schema.h
 *     The schema of segment's internal helpers, as C code's SQL names it.
 *
 * From 0.2.0 the helpers (functions named _NAME) live in schema
 * segment_internal (sql/install/01-internal-schema.sql); C code writes them
 * segment_internal._NAME in its SQL. A database still on 0.1.0 (the new
 * library is loaded before ALTER EXTENSION segment UPDATE) has them in
 * schema segment: segment_internal_sql gives the SQL to run there.
 */
#ifndef SEGMENT_INTERNAL_SCHEMA_H
#define SEGMENT_INTERNAL_SCHEMA_H

/*
 * sql itself when schema segment_internal exists, else a palloc'd copy with
 * every "segment_internal." read as "segment.".
 */
extern const char *segment_internal_sql(const char *sql);

#endif							/* SEGMENT_INTERNAL_SCHEMA_H */
