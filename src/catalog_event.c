/*
 * catalog_event.c
 *     An event rule's attachment as its trigger reads it (catalog.h,
 *     catalog_event_rule): segment.event_rule with the opportunity rule,
 *     its subject and the subject's contact policy, read once per backend
 *     and kept until one of those rows changes. Prefix: catalog_.
 *
 * The read is a four-table join: a fifth of a one-row event transaction
 * when it ran in every event statement (docs/performance.md, OLTP write
 * paths). Kept per backend, it follows the invalidations of live
 * maintenance's definitions cache (part 89): a statement on
 * segment.subject, opportunity_rule, event_rule or contact_policy sends a
 * relcache invalidation of segment.live_subject, which every backend
 * receives at the commit (the backend that made it: at its next command,
 * and again at its ROLLBACK). A relcache invalidation of the event table or
 * of the subject's table (RENAME, ALTER) and a new extension generation
 * (a re-created extension, a renamed schema) empty the cache too.
 *
 * A miss reads under a fresh snapshot taken after the pending
 * invalidations are processed, as PostgreSQL reads its own catalog, and is
 * kept only when no invalidation arrived while it read: so what is kept is
 * never older than the last change this backend has heard of. Callers get
 * a copy in their memory context (an invalidation may empty the cache while
 * they use it).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "extension_cache.h"
#include "subject.h"

typedef struct CachedEventRule
{
	int32		rule_id;
	Oid			relid;			/* the event table */
	CatalogEventRule er;		/* in event_rule_cxt */
	struct CachedEventRule *next;
} CachedEventRule;

static MemoryContext event_rule_cxt = NULL;
static CachedEventRule *event_rules = NULL;
static uint64 event_rule_flushes = 0;	/* moved by every flush */
static uint64 event_rule_stamp = 0;		/* the last stamp given */
static uint64 event_rule_ext_generation = 0;	/* of the entries and the sentinel */
static Oid	event_rule_sentinel = InvalidOid;	/* segment.live_subject */
static Oid	event_rule_filling = InvalidOid;	/* the event table being read */
static bool event_rule_callback_on = false;

static void
event_rule_flush(void)
{
	event_rules = NULL;
	event_rule_flushes++;
	if (event_rule_cxt != NULL)
		MemoryContextReset(event_rule_cxt);
}

static void
event_rule_relcache_callback(Datum arg, Oid relid)
{
	CachedEventRule *c;

	if (!OidIsValid(relid) || relid == event_rule_sentinel || relid == event_rule_filling)
	{
		event_rule_flush();
		return;
	}
	for (c = event_rules; c != NULL; c = c->next)
		if (c->relid == relid || c->er.relation == relid)
		{
			event_rule_flush();
			return;
		}
}

static char *
copy_string(const char *s)
{
	return s != NULL ? pstrdup(s) : NULL;
}

/* A copy of src in the current memory context. */
static void
event_rule_copy(CatalogEventRule *dst, const CatalogEventRule *src)
{
	*dst = *src;
	dst->condition = copy_string(src->condition);
	dst->what = copy_string(src->what);
	dst->key_column = copy_string(src->key_column);
	dst->trigger_name = copy_string(src->trigger_name);
	dst->subject_name = copy_string(src->subject_name);
	dst->subject_key = copy_string(src->subject_key);
	dst->org_column = copy_string(src->org_column);
	dst->audience = copy_string(src->audience);
	dst->assignment = copy_string(src->assignment);
	dst->template_sql = copy_string(src->template_sql);
	/* the by-reference values (NOT NULL columns and an ARRAY()) */
	dst->priority = datumCopy(src->priority, false, -1);
	dst->holdout_pct = datumCopy(src->holdout_pct, false, -1);
	dst->subject_rules = datumCopy(src->subject_rules, false, -1);
}

/* The attachment under snapshot, into er (the current memory context). */
static bool
event_rule_read(int32 rule_id, Oid relid, Snapshot snapshot, CatalogEventRule *er)
{
	MemoryContext cxt = CurrentMemoryContext;
	static SPIPlanPtr plan = NULL;
	Datum		args[2] = {Int32GetDatum(rule_id), ObjectIdGetDatum(relid)};
	Oid			argtypes[2] = {INT4OID, OIDOID};
	bool		found = false;
	int			spi_nest;

	spi_nest = segment_spi_connect();
	/* generic: the same few index lookups whatever the rule */
	segment_saved_plan_cursor(&plan,
							  "SELECT e.condition, 'event rule \"' || r.name || '\" on ' || e.event_table::text,"
							  "       e.owner::oid, e.key_column::text, e.trigger_name::text, r.active,"
							  "       s.subject_id, s.name::text, s.relation::oid, s.key_column::text,"
							  "       s.key_type::oid, s.org_column::text, s.snapshot_column IS NOT NULL,"
							  "       r.audience, r.assignment, r.priority, r.priority_scorecard IS NOT NULL,"
							  "       r.template_sql, r.holdout_pct, r.cooldown_days, r.valid_days, r.version,"
							  "       cp.max_contacts, cp.period_days,"
							  "       ARRAY(SELECT x.rule_id FROM segment.opportunity_rule x"
							  "              WHERE x.subject_id = s.subject_id)"
							  "  FROM segment.event_rule e JOIN segment.opportunity_rule r USING (rule_id)"
							  "  JOIN segment.subject s ON s.subject_id = r.subject_id"
							  "  LEFT JOIN segment.contact_policy cp ON cp.subject_id = s.subject_id"
							  " WHERE e.rule_id = $1 AND e.event_table = $2",
							  2, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (SPI_execute_snapshot(plan, args, NULL, snapshot, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the event rule");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *v;
		MemoryContext old;

		er->condition = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
		er->what = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2));
		er->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		er->key_column = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 4));
		er->trigger_name = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 5));
		er->active = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		er->subject_id = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
		er->subject_name = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 8));
		er->relation = DatumGetObjectId(SPI_getbinval(tup, desc, 9, &isnull));
		er->subject_key = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 10));
		er->subject_key_type = DatumGetObjectId(SPI_getbinval(tup, desc, 11, &isnull));
		v = SPI_getvalue(tup, desc, 12);
		er->org_column = v ? MemoryContextStrdup(cxt, v) : NULL;
		er->snapshot = DatumGetBool(SPI_getbinval(tup, desc, 13, &isnull));
		er->audience = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 14));
		er->assignment = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 15));
		er->scored = DatumGetBool(SPI_getbinval(tup, desc, 17, &isnull));
		v = SPI_getvalue(tup, desc, 18);
		er->template_sql = v ? MemoryContextStrdup(cxt, v) : NULL;
		er->cooldown_days = DatumGetInt32(SPI_getbinval(tup, desc, 20, &isnull));
		er->valid_days = DatumGetInt32(SPI_getbinval(tup, desc, 21, &isnull));
		er->version = DatumGetInt32(SPI_getbinval(tup, desc, 22, &isnull));
		er->max_contacts = DatumGetInt32(SPI_getbinval(tup, desc, 23, &er->capped));
		er->capped = !er->capped;
		er->period_days = DatumGetInt32(SPI_getbinval(tup, desc, 24, &isnull));
		old = MemoryContextSwitchTo(cxt);
		er->priority = datumCopy(SPI_getbinval(tup, desc, 16, &isnull), false, -1);
		er->holdout_pct = datumCopy(SPI_getbinval(tup, desc, 19, &isnull), false, -1);
		er->subject_rules = datumCopy(SPI_getbinval(tup, desc, 25, &isnull), false, -1);
		MemoryContextSwitchTo(old);
		found = true;
	}
	segment_spi_finish(spi_nest);
	return found;
}

bool
catalog_event_rule(int32 rule_id, Oid relid, CatalogEventRule *er)
{
	CachedEventRule *c;
	uint64		flushes;
	uint64		generation;
	bool		found;

	if (!event_rule_callback_on)
	{
		event_rule_cxt = AllocSetContextCreate(CacheMemoryContext, "segment event rules",
											   ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(event_rule_relcache_callback, (Datum) 0);
		event_rule_callback_on = true;
	}
	/* changes committed by others since this transaction's last look */
	AcceptInvalidationMessages();
	generation = extension_cache_generation();
	if (generation != event_rule_ext_generation)
	{
		Oid			nsp = get_namespace_oid("segment", true);

		event_rule_flush();
		event_rule_sentinel = OidIsValid(nsp) ? get_relname_relid("live_subject", nsp) : InvalidOid;
		event_rule_ext_generation = generation;
	}

	for (c = event_rules; c != NULL; c = c->next)
		if (c->rule_id == rule_id && c->relid == relid)
		{
			event_rule_copy(er, &c->er);
			return true;
		}

	/* a miss: read what is committed now; keep it unless it is already stale */
	flushes = event_rule_flushes;
	event_rule_filling = relid;
	PG_TRY();
	{
		found = event_rule_read(rule_id, relid, GetLatestSnapshot(), er);
	}
	PG_FINALLY();
	{
		event_rule_filling = InvalidOid;
	}
	PG_END_TRY();
	if (!found)
		return false;
	er->stamp = ++event_rule_stamp;
	if (flushes == event_rule_flushes && generation == extension_cache_generation() &&
		OidIsValid(event_rule_sentinel))
	{
		MemoryContext old = MemoryContextSwitchTo(event_rule_cxt);

		c = palloc(sizeof(CachedEventRule));
		c->rule_id = rule_id;
		c->relid = relid;
		event_rule_copy(&c->er, er);
		c->next = event_rules;
		event_rules = c;
		MemoryContextSwitchTo(old);
	}
	return true;
}
