/*
 * extension_cache.c
 *     The generation of the extension's objects as this backend knows them,
 *     moved by invalidation callbacks, and the registry of saved SPI plans
 *     that a new generation empties (extension_cache.h).
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "extension_cache.h"

static uint64 generation = 1;
static bool initialized = false;
static uint32 watched_type_hash = 0;	/* 0: no type watched yet */
static bool watching_type = false;

/* the slots of saved plans, and the generation their plans were prepared in */
static SPIPlanPtr **plan_slots = NULL;
static int	nplan_slots = 0;
static int	maxplan_slots = 0;
static uint64 plans_generation = 0;

/* forgotten plans, freed at the end of the transaction */
static List *stale_plans = NIL;

static void
namespace_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	generation++;
}

static void
type_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	/* hashvalue 0: the whole cache was reset */
	if (hashvalue == 0 || (watching_type && hashvalue == watched_type_hash))
		generation++;
}

/* No plan can be running once the transaction is over (our SPI connections are atomic). */
static void
free_stale_plans(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (stale_plans == NIL ||
		(event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		 event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT))
		return;
	foreach(lc, stale_plans)
		SPI_freeplan((SPIPlanPtr) lfirst(lc));
	list_free(stale_plans);
	stale_plans = NIL;
}

void
extension_cache_init(void)
{
	if (initialized)
		return;
	CacheRegisterSyscacheCallback(NAMESPACEOID, namespace_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, type_changed, (Datum) 0);
	RegisterXactCallback(free_stale_plans, NULL);
	initialized = true;
}

uint64
extension_cache_generation(void)
{
	return generation;
}

void
extension_cache_watch_type(Oid typid)
{
	watched_type_hash = GetSysCacheHashValue1(TYPEOID, ObjectIdGetDatum(typid));
	watching_type = true;
}

void
extension_cache_check_plans(void)
{
	MemoryContext old;
	int			i;

	if (plans_generation == generation)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (i = 0; i < nplan_slots; i++)
	{
		if (*plan_slots[i] != NULL)
			stale_plans = lappend(stale_plans, *plan_slots[i]);
		*plan_slots[i] = NULL;
	}
	MemoryContextSwitchTo(old);
	plans_generation = generation;
}

void
extension_cache_plan_saved(SPIPlanPtr *slot)
{
	int			i;

	for (i = 0; i < nplan_slots; i++)
		if (plan_slots[i] == slot)
			return;
	if (nplan_slots == maxplan_slots)
	{
		maxplan_slots = Max(32, maxplan_slots * 2);
		plan_slots = plan_slots == NULL ?
			MemoryContextAlloc(TopMemoryContext, sizeof(SPIPlanPtr *) * maxplan_slots) :
			repalloc(plan_slots, sizeof(SPIPlanPtr *) * maxplan_slots);
	}
	plan_slots[nplan_slots++] = slot;
}
