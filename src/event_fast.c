/*
 * event_fast.c
 *     The one-customer event (an OLTP insert): the generation of a pool
 *     rule for one member, decided and written by two saved plans instead
 *     of segment_internal._event_fire and _generate (part 85, part 84),
 *     which cost about twenty PL/pgSQL statements and two subtransactions
 *     an event (docs/performance.md, Event rules).
 *
 * The same decisions as _generate for one member, in its order: the member
 * is known (in the universe of the last refresh, live maintenance's overlay
 * row for it applied), the generation locks (_lock_members), the audience
 * within the member (audience_evaluate_within, as _audience_within), the
 * cool-down (the rule's opportunities in the window), the contact cap (the
 * subject's opportunities of the member in the policy's window: one per
 * (rule, period), so their number is the member's level), the control
 * group (_in_control), the subject's row (key, org unit, the message
 * rendered by the rule's template), then one INSERT of the opportunity
 * ('control' or 'pool', as a pool rule places it) and of the generation
 * row with the same counters (the generation row alone when it makes none). The SQL runs as the current user under the
 * pinned search_path, as _generate's does.
 *
 * Whatever it does not decide goes back to the existing path, which then
 * decides everything, as if the fast path had not run:
 *   - rules that assign to owners or org units, priority scorecards,
 *     snapshot subjects, text keys;
 *   - a key segment does not know (recorded in event_skip by _event_fire),
 *     a subject never refreshed, a subject with live overlay rows or state
 *     the direct read cannot answer for (state_read_begin);
 *   - several rows of the subject's table with the member's key;
 *   - any error in the decision or the write (an audience naming something
 *     not refreshed, a message that does not render, a privilege): the
 *     fast path runs in one subtransaction, rolled back, and the existing
 *     path records the failure its own way.
 * test/pgtap/events_differential.sql compares both with batch generate().
 * Prefix: event_fast_.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "audience.h"
#include "catalog.h"
#include "event_fast.h"
#include "memberset.h"
#include "rule.h"
#include "state_read.h"
#include "subject.h"
#include "subxact.h"

/*
 * The decision statement of a rule, prepared once per backend and rule and
 * kept while its text (the subject's table, columns and the rule's
 * template) stays the same. The text is built again only when the
 * attachment was read again (a new stamp: the rule, its subject or the
 * subject's table changed, catalog_event.c), and the plan kept when the text
 * is the same: the plan cache re-analyses the saved text after a RENAME of
 * the table, so a plan whose text names the old name must go. Plans follow
 * extension re-creation through segment_saved_plan_cursor (the slots are
 * registered).
 */
#define FAST_PLANS 8
typedef struct FastPlan
{
	int32		rule_id;
	uint64		stamp;			/* of the attachment its text was built from */
	char	   *sql;			/* TopMemoryContext */
	SPIPlanPtr	plan;
} FastPlan;
static FastPlan fast_plans[FAST_PLANS];

bool		event_fast_path = true;
static int	fast_next_victim = 0;

/* the subject of the last attachment read (its stamp: catalog.h) */
static SubjectInfo fast_subject;
static uint64 fast_subject_stamp = 0;

typedef struct FastEvent
{
	int32		rule_id;
	const CatalogEventRule *er;
	int64		member;
	bool		in_universe;
	const char *source;
	DateADT		as_of;
	bool		done;			/* out: generated (else: the existing path decides) */
} FastEvent;

static const char *
fast_decision_sql(const CatalogEventRule *er)
{
	StringInfoData sql;
	const char *rel = DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(er->relation)));

	/*
	 * $1 member, $2 as_of, $3 rule, $4 cool-down days (at least 1), $5
	 * subject, $6 cap window days (NULL: no policy), $7 the subject's rules,
	 * $8 holdout_pct, $9 in the audience, $10 max_contacts. The message is
	 * rendered for a candidate only (as _generate renders candidates only).
	 * The cool-down (the rule's opportunities of the member in the window
	 * around $2) and the contacts (the subject's rules' opportunities of the
	 * member in the cap window up to $2) in one aggregate over one index
	 * range: the member's opportunities of the subject's rules (with the
	 * rule itself) from the earlier of the two windows' starts (GREATEST
	 * ignores a NULL $6) to the cool-down's end, which is after $2 ($4 >= 1).
	 */
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT (SELECT l.deleted FROM segment.live_member l"
					 "         WHERE l.subject_id = $5 AND l.member_id = $1),"
					 "       c.segment_cooled, c.segment_contacts,"
					 "       segment_internal._in_control($3, $1, $2, $8),"
					 "       t.%s::text, %s%s%s,"
					 "       CASE WHEN $9 AND NOT c.segment_cooled AND ($10 IS NULL OR c.segment_contacts < $10)"
					 "            THEN %s END,"
					 "       t.%s IS NOT NULL"
					 "  FROM (SELECT coalesce(bool_or(o.rule_id = $3 AND o.period > $2 - $4 AND o.period < $2 + $4),"
					 "                        false) AS segment_cooled,"
					 "               CASE WHEN $6 IS NULL THEN 0::int8"
					 "                    ELSE count(*) FILTER (WHERE o.subject_id = $5 AND o.period > $2 - $6"
					 "                                            AND o.period <= $2 AND o.rule_id = ANY ($7))"
					 "               END AS segment_contacts"
					 "          FROM segment.opportunity o"
					 "         WHERE o.rule_id = ANY ($7 || $3) AND o.member_id = $1"
					 "           AND o.period > $2 - GREATEST($4, $6) AND o.period < $2 + $4) c"
					 "  LEFT JOIN %s t ON t.%s = $1",
					 quote_identifier(er->subject_key),
					 er->org_column ? "t." : "",
					 er->org_column ? quote_identifier(er->org_column) : "NULL",
					 er->org_column ? "::text" : "::text",
					 er->template_sql ? er->template_sql : "NULL::text",
					 quote_identifier(er->subject_key),
					 rel, quote_identifier(er->subject_key));
	return sql.data;
}

static SPIPlanPtr
fast_decision_plan(const CatalogEventRule *er, int32 rule_id)
{
	Oid			argtypes[10] = {INT8OID, DATEOID, INT4OID, INT4OID, INT4OID, INT4OID,
	INT4ARRAYOID, NUMERICOID, BOOLOID, INT4OID};
	const char *sql;
	FastPlan   *p = NULL;
	int			i;

	for (i = 0; i < FAST_PLANS; i++)
		if (fast_plans[i].rule_id == rule_id && fast_plans[i].sql != NULL)
			p = &fast_plans[i];
	/* the attachment as it was when the text was built: the same text */
	if (p != NULL && p->stamp == er->stamp)
		return segment_saved_plan_cursor(&p->plan, p->sql, 10, argtypes, CURSOR_OPT_GENERIC_PLAN);
	sql = fast_decision_sql(er);
	if (p == NULL)
	{
		p = &fast_plans[fast_next_victim];
		fast_next_victim = (fast_next_victim + 1) % FAST_PLANS;
	}
	p->stamp = 0;
	if (p->sql == NULL || p->rule_id != rule_id || strcmp(p->sql, sql) != 0)
	{
		if (p->plan != NULL)
			SPI_freeplan(p->plan);
		p->plan = NULL;
		if (p->sql != NULL)
			pfree(p->sql);
		p->sql = NULL;
		p->rule_id = rule_id;
	}
	/* generic: a custom plan per event would be planned in every event */
	segment_saved_plan_cursor(&p->plan, sql, 10, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (p->sql == NULL)
		p->sql = MemoryContextStrdup(TopMemoryContext, sql);
	p->stamp = er->stamp;
	return p->plan;
}

/* The decision and the writes, in the subtransaction of event_fast_generate. */
static void
fast_step(void *arg)
{
	static SPIPlanPtr write_plan = NULL;
	static SPIPlanPtr log_plan = NULL;
	FastEvent  *ev = (FastEvent *) arg;
	const CatalogEventRule *er = ev->er;
	TimestampTz started = GetCurrentTimestamp();	/* clock_timestamp(), as _generate */
	SubjectInfo subject;
	SubjectInfo *s;
	roaring_bitmap_t *within;
	RoaringOwned *aud;
	bool		in_aud;
	int			spi_nest;
	Datum		args[19];
	char		nulls[19];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	bool		live_deleted;
	bool		has_live;
	bool		cooled;
	int64		contacts;
	bool		is_control;
	bool		has_row;
	bool		after_cool;
	bool		capped;
	bool		make;
	Datum		key = (Datum) 0;
	bool		key_null = true;
	Datum		org = (Datum) 0;
	bool		org_null = true;
	Datum		message = (Datum) 0;
	bool		message_null = true;
	Oid			write_types[19] = {INT4OID, INT4OID, INT4OID, INT8OID, TEXTOID, DATEOID, INT4OID,
		BOOLOID, NUMERICOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, TIMESTAMPTZOID,
	INT8OID, INT8OID, INT8OID, INT8OID, INT8OID};

	/*
	 * the audience within the member (as _audience_within); the subject as
	 * the attachment's read found it (a change of segment.subject makes a
	 * new read: catalog_event.c)
	 */
	if (er->stamp != fast_subject_stamp)
	{
		fast_subject = *subject_lookup(er->subject_name, false);
		fast_subject_stamp = er->stamp;
	}
	subject = fast_subject;
	s = &subject;
	within = roaring_bitmap_create();
	roaring_bitmap_add(within, (uint32) ev->member);
	aud = audience_evaluate_within(s, er->audience, within);
	in_aud = roaring_bitmap_contains(aud->bitmap, (uint32) ev->member);
	roaring_owned_free(aud);
	roaring_bitmap_free(within);

	spi_nest = segment_spi_connect();
	memset(nulls, ' ', sizeof(nulls));
	args[0] = Int64GetDatum(ev->member);
	args[1] = DateADTGetDatum(ev->as_of);
	args[2] = Int32GetDatum(ev->rule_id);
	args[3] = Int32GetDatum(Max(er->cooldown_days, 1));
	args[4] = Int32GetDatum(er->subject_id);
	args[5] = Int32GetDatum(er->period_days);
	nulls[5] = er->capped ? ' ' : 'n';
	args[6] = er->subject_rules;
	args[7] = er->holdout_pct;
	args[8] = BoolGetDatum(in_aud);
	args[9] = Int32GetDatum(er->max_contacts);
	nulls[9] = er->capped ? ' ' : 'n';
	/*
	 * Not read-only: a fresh snapshot, which sees what the rules fired before
	 * this one in the statement made (the contact cap counts it), as each
	 * statement of _generate does.
	 */
	if (SPI_execute_plan(fast_decision_plan(er, ev->rule_id), args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not decide the event's generation");
	if (SPI_processed != 1)
	{
		/* several rows with the key: the existing path decides */
		segment_spi_finish(spi_nest);
		return;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	live_deleted = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
	has_live = !isnull;
	/* known: in the universe, or inserted since (overlay), and not deleted since */
	if (has_live ? live_deleted : !ev->in_universe)
	{
		segment_spi_finish(spi_nest);
		return;
	}
	cooled = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	contacts = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	is_control = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	key = SPI_getbinval(tup, desc, 5, &key_null);
	org = SPI_getbinval(tup, desc, 6, &org_null);
	message = SPI_getbinval(tup, desc, 7, &message_null);
	has_row = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull)) && !isnull;

	after_cool = in_aud && !cooled;
	capped = after_cool && er->capped && contacts >= er->max_contacts;
	make = after_cool && !capped && has_row;

	/* the opportunity (a pool rule: control or pool) and the generation row */
	args[0] = Int32GetDatum(ev->rule_id);
	args[1] = Int32GetDatum(er->version);
	args[2] = Int32GetDatum(er->subject_id);
	args[3] = Int64GetDatum(ev->member);
	args[4] = key;
	args[5] = DateADTGetDatum(ev->as_of);
	args[6] = Int32GetDatum(er->valid_days - 1);
	args[7] = BoolGetDatum(is_control);
	args[8] = er->priority;
	args[9] = message;
	args[10] = org;
	args[11] = CStringGetTextDatum(ev->source);
	args[12] = BoolGetDatum(make);
	args[13] = TimestampTzGetDatum(started);
	args[14] = Int64GetDatum(in_aud ? 1 : 0);	/* candidates */
	args[15] = Int64GetDatum(make && !is_control ? 1 : 0);	/* generated */
	args[16] = Int64GetDatum(make && is_control ? 1 : 0);	/* control */
	args[17] = Int64GetDatum(in_aud && cooled ? 1 : 0);	/* skipped_cooldown */
	args[18] = Int64GetDatum(capped ? 1 : 0);	/* skipped_cap */
	memset(nulls, ' ', sizeof(nulls));
	nulls[4] = key_null ? 'n' : ' ';
	nulls[9] = message_null ? 'n' : ' ';
	nulls[10] = org_null ? 'n' : ' ';
	/*
	 * No opportunity (not a candidate, cool-down, cap, no row): the
	 * generation row alone, without starting an INSERT into
	 * segment.opportunity and its six indexes
	 */
	if (!make)
	{
		if (SPI_execute_plan(segment_saved_plan_cursor(&log_plan,
													   "INSERT INTO segment.generation (rule_id, period, started_at, candidates,"
													   "                                generated, control, skipped_cooldown, skipped_cap,"
													   "                                over_capacity, failed, error)"
													   "VALUES ($1, $6, $14, $15, $16, $17, $18, $19, 0, 0, NULL)",
													   19, write_types, CURSOR_OPT_GENERIC_PLAN),
							 args, nulls, false, 0) != SPI_OK_INSERT || SPI_processed != 1)
			elog(ERROR, "could not write the event's generation");
		segment_spi_finish(spi_nest);
		ev->done = true;
		return;
	}
	segment_saved_plan_cursor(&write_plan,
							  "WITH made AS ("
							  "  INSERT INTO segment.opportunity AS o"
							  "         (rule_id, rule_version, subject_id, member_id, key, period, valid_until,"
							  "          is_control, priority, message, org_unit, manager, assignment, pool_reason, source)"
							  "  SELECT $1, $2, $3, $4, $5, $6, $6 + $7, $8, $9, $10, $11, NULL,"
							  "         CASE WHEN $8 THEN 'control' ELSE 'pool' END,"
							  "         CASE WHEN $8 THEN NULL ELSE 'rule assigns to the pool' END, $12"
							  "   WHERE $13"
							  "  RETURNING 1)"
							  "INSERT INTO segment.generation (rule_id, period, started_at, candidates, generated, control,"
							  "                                skipped_cooldown, skipped_cap, over_capacity, failed, error)"
							  "VALUES ($1, $6, $14, $15, $16, $17, $18, $19, 0, 0, NULL)",
							  19, write_types, CURSOR_OPT_GENERIC_PLAN);
	if (SPI_execute_plan(write_plan, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write the event's generation");
	segment_spi_finish(spi_nest);
	ev->done = true;
}

bool
event_fast_generate(int32 rule_id, const CatalogEventRule *er, int64 key, const char *source)
{
	StateRead  *sr;
	const roaring_bitmap_t *universe;
	RoaringOwned *universe_owned;
	FastEvent	ev;
	ErrorData  *edata = NULL;
	int32		lock_key;
	bool		known;

	/* what the fast path decides (see the header comment) */
	if (!event_fast_path || strcmp(er->assignment, "pool") != 0 || er->scored || er->snapshot ||
		(er->subject_key_type != INT4OID && er->subject_key_type != INT8OID) ||
		key < 0 || key > (int64) PG_UINT32_MAX)
		return false;

	/*
	 * Known to the last refresh (no overlay rows: state_read_begin), under a
	 * fresh snapshot as _event_fire's statements read it
	 */
	memset(&ev, 0, sizeof(ev));
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	sr = state_read_begin(er->subject_id);
	known = sr != NULL && state_read_universe(sr, &universe, &universe_owned);
	if (known)
	{
		ev.in_universe = roaring_bitmap_contains(universe, (uint32) key);
		if (universe_owned != NULL)
			roaring_owned_free(universe_owned);
	}
	state_read_end(sr);
	if (!known)
	{
		PopActiveSnapshot();
		return false;			/* never refreshed (event_skip), or overlay rows */
	}

	/*
	 * The generation locks of _lock_members for one customer: the subject's
	 * in shared mode (a batch generate() holds it exclusively), then the
	 * member's. Taken before the decision, kept to commit (also when the
	 * existing path decides after all: it takes the same ones).
	 */
	DirectFunctionCall2(pg_advisory_xact_lock_shared_int4, Int32GetDatum(24175),
						Int32GetDatum(er->subject_id));
	lock_key = (int32) (DatumGetInt64(DirectFunctionCall2(hashint8extended, Int64GetDatum(key),
														  Int64GetDatum((int64) er->subject_id)))
						& INT64CONST(2147483647));
	DirectFunctionCall2(pg_advisory_xact_lock_int4, Int32GetDatum(24176), Int32GetDatum(lock_key));

	ev.rule_id = rule_id;
	ev.er = er;
	ev.member = key;
	ev.source = source;
	ev.as_of = segment_current_as_of();
	/* (the audience is read under the same snapshot as the universe) */
	if (!subxact_run(fast_step, &ev, &edata))
	{
		PopActiveSnapshot();
		FreeErrorData(edata);
		return false;
	}
	PopActiveSnapshot();
	return ev.done;
}
