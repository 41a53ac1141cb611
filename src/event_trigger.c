/*
 * event_trigger.c
 *     The trigger of every event rule (segment_internal._event_trigger,
 *     docs/events.md): at the end of an INSERT or COPY on the event table
 *     it reads the statement's new rows from the transition table, keeps
 *     those with a customer key whose condition holds (evaluated as the
 *     condition's author: rule_matcher_* of rule_matches.c), and hands
 *     their customer keys to segment_internal._event_fire (part 85), which
 *     maps them to members, records the unknown ones, takes the generation
 *     locks and generates.
 *
 * In C because PL/pgSQL can only read the transition table with SQL: a
 * dynamic statement (the key column and the row type are the table's),
 * parsed and planned in every event transaction, that collected whole rows
 * into an array for the condition (docs/performance.md, OLTP write paths).
 * Here the condition runs on the tuples themselves and the one statement
 * that follows is a saved plan. Prefix: segment_ (the SQL-callable entry).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "catalog.h"
#include "event_fast.h"
#include "rule.h"
#include "subject.h"

/*
 * segment_internal._event_trigger() RETURNS trigger: AFTER INSERT ...
 * REFERENCING NEW TABLE ... FOR EACH STATEMENT, with the rule id as its one
 * argument, as segment.attach_event_rule creates it. Refuses (42501) to run
 * from any other trigger.
 */
PG_FUNCTION_INFO_V1(segment_event_trigger);
Datum
segment_event_trigger(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger    *tg;
	Relation	rel;
	int32		rule_id = 0;
	CatalogEventRule er;
	AttrNumber	keyattno = InvalidAttrNumber;
	Oid			keytype = InvalidOid;
	bool		integer_keys;
	RuleMatcher *m;
	TupleTableSlot *slot;
	Datum	   *keys;
	int			nkeys = 0;
	int			maxkeys = 16;
	Oid			argtypes[5] = {INT4OID, REGCLASSOID, TEXTOID, INT8ARRAYOID, TEXTARRAYOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', 'n', 'n'};
	char	   *source;
	int			spi_nest;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("segment_internal._event_trigger() was not called by the trigger manager")));
	tg = td->tg_trigger;
	rel = td->tg_relation;
	/* only from the trigger attach_event_rule created on the event table */
	if (tg->tgnargs >= 1)
		rule_id = pg_strtoint32(tg->tgargs[0]);
	if (tg->tgnargs != 1 || td->tg_newtable == NULL ||
		!catalog_event_rule(rule_id, RelationGetRelid(rel), &er) ||
		strcmp(er.trigger_name, tg->tgname) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("trigger function segment_internal._event_trigger() fired on a relation segment did not attach it to"),
				 errdetail("Trigger \"%s\" on %s.", tg->tgname,
						   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													  RelationGetRelationName(rel))),
				 errhint("Event rules install their triggers with segment.attach_event_rule().")));
	if (!er.active)
		return PointerGetDatum(NULL);	/* the rule is deactivated */

	/* the key column (the DDL guard keeps it there, of a key type) */
	keyattno = get_attnum(RelationGetRelid(rel), er.key_column);
	if (keyattno > 0)
		keytype = TupleDescAttr(RelationGetDescr(rel), keyattno - 1)->atttypid;
	integer_keys = keytype == INT2OID || keytype == INT4OID || keytype == INT8OID;
	if (!integer_keys && keytype != TEXTOID && keytype != VARCHAROID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the key column \"%s\" of %s is not of a key type", er.key_column, er.what)));

	/* the keys of the rows with a key whose condition IS TRUE */
	keys = palloc(sizeof(Datum) * maxkeys);
	m = rule_matcher_begin(rel, er.condition, er.what, er.owner);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	tuplestore_rescan(td->tg_newtable);
	while (tuplestore_gettupleslot(td->tg_newtable, true, false, slot))
	{
		bool		isnull;
		Datum		d;

		CHECK_FOR_INTERRUPTS();
		d = slot_getattr(slot, keyattno, &isnull);
		if (isnull || !rule_matcher_test(m, slot))
			continue;
		if (nkeys == maxkeys)
		{
			maxkeys *= 2;
			keys = repalloc(keys, sizeof(Datum) * maxkeys);
		}
		switch (keytype)
		{
			case INT2OID:
				keys[nkeys++] = Int64GetDatum((int64) DatumGetInt16(d));
				break;
			case INT4OID:
				keys[nkeys++] = Int64GetDatum((int64) DatumGetInt32(d));
				break;
			case INT8OID:
				keys[nkeys++] = Int64GetDatum(DatumGetInt64(d));
				break;
			default:
				/* text, varchar: the tuple goes with the next row (and may point to TOAST) */
				keys[nkeys++] = PointerGetDatum(pg_detoast_datum_copy((struct varlena *) DatumGetPointer(d)));
				break;
		}
	}
	rule_matcher_end(m);
	ExecDropSingleTupleTableSlot(slot);
	if (nkeys == 0)
		return PointerGetDatum(NULL);

	source = psprintf("event:%s.%s", get_namespace_name(RelationGetNamespace(rel)),
					  RelationGetRelationName(rel));

	/* one customer (an OLTP insert): the fast path, when it can decide */
	if (integer_keys)
	{
		int			i;

		for (i = 1; i < nkeys; i++)
			if (DatumGetInt64(keys[i]) != DatumGetInt64(keys[0]))
				break;
		if (i == nkeys && event_fast_generate(rule_id, &er, DatumGetInt64(keys[0]), source))
			return PointerGetDatum(NULL);
	}

	args[0] = Int32GetDatum(rule_id);
	args[1] = ObjectIdGetDatum(RelationGetRelid(rel));
	args[2] = CStringGetTextDatum(source);
	if (integer_keys)
	{
		args[3] = PointerGetDatum(construct_array(keys, nkeys, INT8OID, 8, FLOAT8PASSBYVAL,
												  TYPALIGN_DOUBLE));
		nulls[3] = ' ';
	}
	else
	{
		args[4] = PointerGetDatum(construct_array(keys, nkeys, TEXTOID, -1, false, TYPALIGN_INT));
		nulls[4] = ' ';
	}
	spi_nest = segment_spi_connect();
	segment_saved_plan(&plan, "SELECT segment_internal._event_fire($1, $2, $3, $4, $5)", 5, argtypes);
	if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not generate for the events");
	segment_spi_finish(spi_nest);
	return PointerGetDatum(NULL);
}
