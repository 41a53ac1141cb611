/*
 * subject.h
 *     Registered subjects (segment.subject) as seen from C, and the mapping
 *     between a subject's keys and the member ids stored in member sets
 *     (catalog_subject.c, part of the catalog module: catalog.h), with the
 *     SPI helpers every catalog query uses. Prefixes: subject_, segment_.
 *
 * Member ids: for int4/int8 keys the member id IS the key (it must lie in
 * 0..4294967295); for text/varchar keys segment.keymap(subject_id, key)
 * gives a dense member id.
 *
 * All functions run their catalog queries through SPI with saved plans, so
 * they may be called with or without an open SPI connection (they connect
 * and finish their own). Results are palloc'd in the caller's
 * CurrentMemoryContext.
 */
#ifndef SEGMENT_SUBJECT_H
#define SEGMENT_SUBJECT_H

#include "postgres.h"
#include "access/tupdesc.h"
#include "executor/spi.h"
#include "utils/tuplestore.h"

#include "memberset.h"

typedef struct SubjectInfo
{
	int32		subject_id;
	NameData	name;
	Oid			relid;			/* the registered table */
	NameData	key_column;
	Oid			key_type;		/* INT4OID, INT8OID, TEXTOID or VARCHAROID */
	bool		integer_keys;	/* key_type is int4/int8: member id == key */
	bool		has_org_column;
	NameData	org_column;
	bool		has_owner_column;
	NameData	owner_column;
	bool		has_snapshot_column;	/* a daily snapshot subject (snapshot.h) */
	NameData	snapshot_column;
	int32		snapshot_retention;
} SubjectInfo;

/*
 * Look a subject up by name. When it is not registered: NULL if missing_ok,
 * else ERROR 42704 'subject "x" is not registered' with a hint.
 */
extern SubjectInfo *subject_lookup(const char *name, bool missing_ok);

/*
 * Member id of a key given as bigint. Integer subjects: the key itself,
 * ERROR 22003 with a hint when outside 0..4294967295. Text subjects: the
 * keymap entry of the key's decimal text. Returns false when the key has no
 * member id (text subject, key never seen by a refresh).
 */
extern bool subject_member_id_int8(const SubjectInfo *s, int64 key, uint32 *member_id);

/*
 * Member id of a key given as text. Integer subjects: the text must be an
 * integer (ERROR 22P02 otherwise; 22003 when out of range). Text subjects:
 * keymap lookup; false when absent.
 */
extern bool subject_member_id_text(const SubjectInfo *s, const char *key, uint32 *member_id);

/*
 * Append the keys (as text, one column) of the members of set to tupstore,
 * in ascending member-id order. Integer subjects print the ids; text
 * subjects map them through segment.keymap (ids without a keymap entry are
 * skipped). Memory stays bounded: keys are fetched in batches.
 */
extern void subject_put_keys(const SubjectInfo *s, MemberSet *set,
							 Tuplestorestate *tupstore, TupleDesc tupdesc);

/*
 * Append the member ids of set to tupstore as bigint (one column), in
 * ascending order: segment.members, now and as of a snapshot.
 */
extern void subject_put_ids(const roaring_bitmap_t *set, Tuplestorestate *tupstore,
							TupleDesc tupdesc);

/*
 * SPI helper shared by the C files that query the catalog: on first use,
 * prepare sql and keep the plan (SPI_keepplan) in *cache, a static of the
 * caller. Prepared again after the extension was re-created
 * (extension_cache.h): argtypes may hold memberset_type_oid(). Must be
 * called while connected to SPI. The _cursor form takes SPI_prepare_cursor's
 * options (CURSOR_OPT_GENERIC_PLAN).
 */
extern SPIPlanPtr segment_saved_plan(SPIPlanPtr *cache, const char *sql,
									 int nargs, Oid *argtypes);
extern SPIPlanPtr segment_saved_plan_cursor(SPIPlanPtr *cache, const char *sql,
											int nargs, Oid *argtypes, int cursor_options);

/* OID of type segment.memberset (looked up by name, cached per generation; errors if missing). */
extern Oid	memberset_type_oid(void);

/*
 * SPI_connect / SPI_finish for segment's own catalog queries, run under
 * search_path = pg_catalog, pg_temp whatever the caller's is, so that a
 * look-alike function or operator in a schema the caller puts first cannot
 * capture them (docs/security.md). An error unwinds the GUC nest level with
 * the (sub)transaction.
 */
extern int	segment_spi_connect(void);

/*
 * Whether segment's catalog table has the column: false in a catalog still
 * at an older version (before ALTER EXTENSION segment UPDATE).
 */
extern bool segment_catalog_has_column(const char *table, const char *column);
extern void segment_spi_finish(int nestlevel);

#endif							/* SEGMENT_SUBJECT_H */
