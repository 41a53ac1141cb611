/*
 * subject_source.c
 *     Reading a subject relation's rows: from the local heap, or through SQL
 *     when the rows are not in a local heap (views, foreign and partitioned
 *     tables, Citus tables, tables of another access method). See
 *     subject_source.h.
 *
 * The SQL path selects the relation's columns in attribute order, with a
 * NULL in place of each dropped column, so its result tuples have the
 * relation's own layout and the rules compiled against the relation's
 * descriptor read them unchanged.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "segment.h"
#include "subject.h"
#include "subject_source.h"

/* rows fetched from the cursor at a time */
#define SQL_FETCH_ROWS 4096

bool
subject_is_citus_table(Oid relid)
{
	int			spi_nest;
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	bool		found;

	/* Citus keeps its table metadata in pg_catalog.pg_dist_partition */
	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return false;
	spi_nest = segment_spi_connect();
	args[0] = ObjectIdGetDatum(relid);
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_partition");
	found = SPI_processed > 0;
	segment_spi_finish(spi_nest);
	return found;
}

SubjectReadMode
subject_read_mode(Relation rel)
{
	switch (rel->rd_rel->relkind)
	{
		case RELKIND_RELATION:
		case RELKIND_MATVIEW:
			if (subject_is_citus_table(RelationGetRelid(rel)))
				return SUBJECT_READ_SQL;	/* the coordinator's shell is empty */
			if (rel->rd_rel->relam != HEAP_TABLE_AM_OID)
				return SUBJECT_READ_SQL;
			if (!RelationIsPopulated(rel))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("materialized view \"%s\" has not been populated",
								RelationGetRelationName(rel)),
						 errhint("Run REFRESH MATERIALIZED VIEW before refreshing its subject.")));
			return SUBJECT_READ_HEAP;
		case RELKIND_VIEW:
		case RELKIND_FOREIGN_TABLE:
		case RELKIND_PARTITIONED_TABLE:
			return SUBJECT_READ_SQL;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot read the rows of \"%s\"", RelationGetRelationName(rel)),
					 errdetail("Its relation kind '%c' has no rows segment can read.",
							   rel->rd_rel->relkind),
					 errhint("Register a table, partitioned table, view, materialized view or foreign table.")));
	}
	return SUBJECT_READ_HEAP;	/* not reached */
}

/* SELECT <every attribute, NULL for dropped ones> FROM rel [WHERE key = $1] */
static char *
row_query(Relation rel, const char *key_column, Oid key_type)
{
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData q;
	int			i;

	initStringInfo(&q);
	appendStringInfoString(&q, "SELECT ");
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (i > 0)
			appendStringInfoString(&q, ", ");
		if (att->attisdropped)
			appendStringInfoString(&q, "NULL::pg_catalog.int4");
		else
			appendStringInfoString(&q, quote_identifier(NameStr(att->attname)));
	}
	appendStringInfo(&q, " FROM %s",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)));
	if (key_column)
		appendStringInfo(&q, " WHERE %s = $1::%s", quote_identifier(key_column),
						 format_type_be_qualified(key_type));
	return q.data;
}

static char *
key_text(Oid keytype, Datum d)
{
	Oid			out;
	bool		varlena;

	getTypeOutputInfo(keytype, &out, &varlena);
	return OidOutputFunctionCall(out, d);
}

/* A key seen twice means two rows would claim one member id. */
static void
check_unique(ScanCore *sc, RoaringOwned *seen, TupleTableSlot *slot)
{
	Datum		d;
	int64		id;

	slot_getsomeattrs(slot, sc->keyattno);
	if (slot->tts_isnull[sc->keyattno - 1])
		return;
	d = slot->tts_values[sc->keyattno - 1];
	if (sc->keytype == INT4OID)
		id = DatumGetInt32(d);
	else if (sc->keytype == INT8OID)
		id = DatumGetInt64(d);
	else
		id = sc->map_key(sc->map_key_arg, d);
	if (id < 0 || id > SEGMENT_MAX_MEMBER_ID)
		return;					/* the scan reports keys out of range */
	if (!roaring_bitmap_add_checked(seen->bitmap, (uint32) id))
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("key %s appears in more than one row of \"%s\"%s, the relation of subject \"%s\"",
						key_text(sc->keytype, d), RelationGetRelationName(sc->rel),
						sc->rows_note ? sc->rows_note : "", sc->subject),
				 errdetail("Each customer must have one row; nothing was refreshed."),
				 errhint("Fix the relation (a view's join may duplicate customers), then refresh again.")));
}

void
subject_sql_scan(ScanCore *sc)
{
	int			spi_nest;
	MemoryContext cxt = CurrentMemoryContext;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(sc->rel), &TTSOpsHeapTuple);
	RoaringOwned *seen = roaring_owned_create();
	uint32		ids[RULE_BATCH_ROWS];
	char	   *query = row_query(sc->rel, NULL, InvalidOid);
	SPIPlanPtr	plan;
	Portal		portal;

	if (sc->row_filter)
		query = psprintf("%s%s", query, sc->row_filter);

	spi_nest = segment_spi_connect();
	MemoryContextSwitchTo(cxt);	/* score sets created while scanning live in cxt */
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", query, SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		SPITupleTable *tt;
		uint64		n;
		uint64		i;

		SPI_cursor_fetch(portal, true, SQL_FETCH_ROWS);
		/* SPI calls return in SPI's own context, freed at SPI_finish */
		MemoryContextSwitchTo(cxt);
		tt = SPI_tuptable;
		n = SPI_processed;
		if (n == 0)
			break;
		for (i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			ExecStoreHeapTuple(tt->vals[i], slot, false);
			check_unique(sc, seen, slot);
			refresh_scan_add_slot(sc, slot, ids);
		}
		ExecClearTuple(slot);
		SPI_freetuptable(tt);
	}
	refresh_scan_flush(sc, ids);
	SPI_cursor_close(portal);
	segment_spi_finish(spi_nest);
	MemoryContextSwitchTo(cxt);
	ExecDropSingleTupleTableSlot(slot);
	roaring_owned_free(seen);
}

bool
subject_sql_fetch_row(Relation rel, const char *key_column, Oid key_type,
					  const char *key, TupleTableSlot *slot, const char *and_filter)
{
	int			spi_nest;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	char	   *query = row_query(rel, key_column, key_type);
	bool		found = false;

	if (and_filter)
		query = psprintf("%s%s", query, and_filter);
	spi_nest = segment_spi_connect();
	args[0] = CStringGetTextDatum(key);
	if (SPI_execute_with_args(query, 1, argtypes, args, NULL, true, 2) != SPI_OK_SELECT)
		elog(ERROR, "could not read the row of key %s", key);
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("key %s appears in more than one row of \"%s\"", key,
						RelationGetRelationName(rel)),
				 errhint("Each customer must have one row; fix the relation.")));
	if (SPI_processed == 1)
	{
		MemoryContext spicxt = MemoryContextSwitchTo(cxt);
		HeapTuple	copy = heap_copytuple(SPI_tuptable->vals[0]);

		MemoryContextSwitchTo(spicxt);
		ExecForceStoreHeapTuple(copy, slot, true);
		found = true;
	}
	segment_spi_finish(spi_nest);
	return found;
}
