/*
 * subject_source.h
 *     How segment reads the rows of a subject relation. Ordinary tables and
 *     materialized views are read from their heap directly (fast, parallel
 *     workers possible). Everything whose rows are not in a local heap —
 *     views, foreign tables, partitioned tables, and Citus tables, whose
 *     coordinator "shell" holds no rows — is read through SQL, so the
 *     relation's own machinery (view rewriting, FDW, partition pruning,
 *     the Citus planner) produces its rows. A relation that cannot be read
 *     either way is refused with 0A000; never read as empty.
 */
#ifndef SEGMENT_SUBJECT_SOURCE_H
#define SEGMENT_SUBJECT_SOURCE_H

#include "postgres.h"

#include "executor/tuptable.h"
#include "utils/rel.h"

#include "refresh_scan.h"

typedef enum SubjectReadMode
{
	SUBJECT_READ_HEAP,			/* table_beginscan over the local heap */
	SUBJECT_READ_SQL			/* SELECT through the executor */
} SubjectReadMode;

/* How rel's rows are read; ERROR 0A000 when segment cannot read them. */
extern SubjectReadMode subject_read_mode(Relation rel);

/* Whether relid is a Citus table (listed in pg_dist_partition). */
extern bool subject_is_citus_table(Oid relid);

/*
 * Feed every row of rel, read through SQL, to sc (compiled already). Keys
 * must be unique: a second row with a key raises 23505 naming it (a view
 * has no unique index to rely on).
 */
extern void subject_sql_scan(ScanCore *sc);

/*
 * The row of rel whose key_column equals key (as text), read through SQL,
 * stored in slot (of rel's descriptor). False when there is none.
 * and_filter (or NULL): " AND ..." narrowing the rows (one snapshot).
 */
extern bool subject_sql_fetch_row(Relation rel, const char *key_column, Oid key_type,
								  const char *key, TupleTableSlot *slot, const char *and_filter);

#endif							/* SEGMENT_SUBJECT_SOURCE_H */
