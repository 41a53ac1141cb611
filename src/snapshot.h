/*
 * snapshot.h
 *     Daily snapshot subjects: a relation holding one row per customer per
 *     data date (snapshot_column, type date), usually partitioned by that
 *     date. Finds the newest snapshot on or before a date without scanning
 *     the table (partition bounds, then an index probe or a LIMIT 1 inside
 *     the partitions that can hold it) and names the partitions that hold
 *     one snapshot.
 */
#ifndef SEGMENT_SNAPSHOT_H
#define SEGMENT_SNAPSHOT_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/date.h"
#include "utils/rel.h"

/*
 * The newest snapshot date <= as_of in rel (partitioned: bounds first, then
 * a probe through rel restricted to one partition's dates; otherwise an
 * index probe of max(column)). False when there is none. SPI must be
 * connected.
 */
extern bool snapshot_find(Relation rel, const char *column, DateADT as_of, DateADT *found);

/*
 * The relations whose rows are read for snapshot date d: the leaf
 * partitions that can hold d (as partition pruning selects them), or rel
 * itself when it is not partitioned. A list of Oids.
 */
extern List *snapshot_relations(Relation rel, const char *column, DateADT d);

/* " WHERE column = 'd'::pg_catalog.date" */
extern char *snapshot_filter_sql(const char *column, DateADT d);

/* The date as text (YYYY-MM-DD). */
extern char *snapshot_date_text(DateADT d);

#endif							/* SEGMENT_SNAPSHOT_H */
