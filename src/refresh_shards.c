/*
 * refresh_shards.c
 *     Refresh of a Citus distributed subject on its shards: every rule is
 *     evaluated where the rows are, and member sets come back instead of rows.
 *
 * The rules of one owner become one query,
 *
 *     SELECT segment.shard_member_sets(key::int8, ARRAY[(r1) IS TRUE, ...])
 *       FROM the_distributed_table
 *
 * run as that owner with SECURITY_RESTRICTED_OPERATION. Citus plans the
 * aggregate as a partial aggregate per shard (segment.shard_member_sets has
 * a combine function and a non-pseudo state type), runs the shards' parts
 * in parallel on the workers, and combines their member sets on the
 * coordinator (shard_sets.c). Here the sets become the refresh's tag sets,
 * scheme buckets (first true bucket wins) and scorecard scores, exactly as
 * refresh_scan.c would have computed them from the rows.
 *
 * The rules are PostgreSQL's own expressions, analysed here and deparsed
 * with segment.as_of() folded to the run's date, so the workers evaluate
 * `(rule) IS TRUE` with PostgreSQL's evaluator. Only rules built from
 * PostgreSQL's built-in functions are sent: a user function might not exist
 * on the workers, or read something that differs there. Anything else (a
 * user function or a domain in a rule, a text key, which needs the
 * coordinator's key map, a failure on a worker) falls back to reading the
 * rows through the coordinator (subject_source.c), which is exact too.
 *
 * Prefix: refresh_shards_ (segment_citus_pushdown: the GUC's variable).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/ruleutils.h"

#include "refresh_shards.h"
#include "rule.h"
#include "shard_sets.h"
#include "subject.h"
#include "subject_source.h"
#include "subxact.h"

bool		segment_citus_pushdown = true;

typedef enum ShardUnitKind
{
	UNIT_TAG,
	UNIT_BUCKET,
	UNIT_ITEM
} ShardUnitKind;

/* One rule sent to the shards. */
typedef struct ShardUnit
{
	ShardUnitKind kind;
	int			i;				/* tag, scheme or scorecard */
	int			j;				/* bucket or item */
	Oid			owner;
	char	   *sql;			/* the rule, deparsed */
	int			group;			/* its owner's query */
	int			flag;			/* its place in that query's flags */
} ShardUnit;

static bool
is_user_function(Oid func_id, void *context)
{
	return func_id >= FirstNormalObjectId;
}

/* Whether an analysed rule may be evaluated on the workers as it is. */
static bool
not_pushable_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, is_user_function, NULL))
		return true;
	if (IsA(node, CoerceToDomain))
		return true;			/* its constraints may call anything */
	return expression_tree_walker(node, not_pushable_walker, context);
}

/* Deparse one rule, or return NULL if it must not be sent. */
static char *
unit_sql(ScanCore *sc, const char *rule, DateADT as_of, List *dpcontext)
{
	Node	   *analysed = rule_analyze(sc->rel, rule, "rule", NULL);
	Node	   *folded = rule_fold_as_of(analysed, as_of);

	if (not_pushable_walker(folded, NULL))
		return NULL;
	return deparse_expression(folded, dpcontext, false, false);
}

static void
add_unit(ShardUnit **units, int *n, int *cap, ShardUnitKind kind, int i, int j,
		 Oid owner, char *sql)
{
	if (*n == *cap)
	{
		*cap *= 2;
		*units = repalloc(*units, sizeof(ShardUnit) * *cap);
	}
	(*units)[*n].kind = kind;
	(*units)[*n].i = i;
	(*units)[*n].j = j;
	(*units)[*n].owner = OidIsValid(owner) ? owner : GetUserId();
	(*units)[*n].sql = sql;
	(*units)[*n].group = -1;
	(*units)[*n].flag = -1;
	(*n)++;
}

/*
 * Every rule of every unit not skipped, deparsed; false if one of them
 * cannot be sent (then nothing is). Runs under the pinned search_path, the
 * one the queries run under, so the deparsed names resolve the same.
 */
static bool
collect_units(ScanCore *sc, DateADT as_of, ShardUnit **units, int *nunits)
{
	List	   *dpcontext = deparse_context_for(RelationGetRelationName(sc->rel),
												RelationGetRelid(sc->rel));
	int			cap = 16;
	int			n = 0;
	int			i,
				j;

	*units = palloc(sizeof(ShardUnit) * cap);
	for (i = 0; i < sc->ntags; i++)
	{
		char	   *sql;

		if (sc->tags[i].skip)
			continue;
		if ((sql = unit_sql(sc, sc->tags[i].rule, as_of, dpcontext)) == NULL)
			return false;
		add_unit(units, &n, &cap, UNIT_TAG, i, 0, sc->tags[i].owner, sql);
	}
	for (i = 0; i < sc->nschemes; i++)
	{
		if (sc->schemes[i].skip)
			continue;
		for (j = 0; j < sc->schemes[i].nbuckets; j++)
		{
			char	   *sql = unit_sql(sc, sc->schemes[i].buckets[j].rule, as_of, dpcontext);

			if (sql == NULL)
				return false;
			add_unit(units, &n, &cap, UNIT_BUCKET, i, j, sc->schemes[i].owner, sql);
		}
	}
	for (i = 0; i < sc->nscorecards; i++)
	{
		if (sc->scorecards[i].skip)
			continue;
		for (j = 0; j < sc->scorecards[i].nitems; j++)
		{
			char	   *sql = unit_sql(sc, sc->scorecards[i].items[j].rule, as_of, dpcontext);

			if (sql == NULL)
				return false;
			add_unit(units, &n, &cap, UNIT_ITEM, i, j, sc->scorecards[i].owner, sql);
		}
	}
	*nunits = n;
	return true;
}

/*
 * Number the owners' queries and each unit's flag in its query; returns how
 * many queries (at least one: with no rules, the keys are still read).
 */
static int
group_units(ShardUnit *units, int nunits, Oid **owners)
{
	int			ngroups = 0;
	int			u,
				v;

	*owners = palloc(sizeof(Oid) * Max(nunits, 1));
	for (u = 0; u < nunits; u++)
	{
		int			flags = 0;

		if (units[u].group >= 0)
			continue;
		for (v = u; v < nunits; v++)
			if (units[v].group < 0 && units[v].owner == units[u].owner)
			{
				units[v].group = ngroups;
				units[v].flag = flags++;
			}
		(*owners)[ngroups++] = units[u].owner;
	}
	if (ngroups == 0)
		(*owners)[ngroups++] = GetUserId();
	return ngroups;
}

/* Run each owner's query; their states, expanded in cxt. */
static ShardSets **
run_groups(ScanCore *sc, ShardUnit *units, int nunits, int ngroups, Oid *owners,
		   MemoryContext cxt)
{
	ShardSets **results = MemoryContextAllocZero(cxt, sizeof(ShardSets *) * ngroups);
	Form_pg_attribute keyatt = TupleDescAttr(RelationGetDescr(sc->rel), sc->keyattno - 1);
	const char *relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(sc->rel)),
													 RelationGetRelationName(sc->rel));
	int			g,
				u;

	for (g = 0; g < ngroups; g++)
	{
		StringInfoData q;
		int			nflags = 0;
		bool		isnull;
		Datum		d;

		CHECK_FOR_INTERRUPTS();
		initStringInfo(&q);
		appendStringInfo(&q, "SELECT segment.shard_member_sets(%s::pg_catalog.int8, ARRAY[",
						 quote_identifier(NameStr(keyatt->attname)));
		for (u = 0; u < nunits; u++)
			if (units[u].group == g)
				appendStringInfo(&q, "%s(%s) IS TRUE", nflags++ > 0 ? ", " : "", units[u].sql);
		appendStringInfo(&q, "]::pg_catalog.bool[]) FROM %s", relname);

		SetUserIdAndSecContext(owners[g], sc->save_sec_context | SECURITY_RESTRICTED_OPERATION);
		if (SPI_execute(q.data, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not run \"%s\"", q.data);
		SetUserIdAndSecContext(sc->save_userid, sc->save_sec_context);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
		{
			/* no rows at all: every set empty */
			MemoryContext old = MemoryContextSwitchTo(cxt);
			ShardSets  *empty;
			int			i;

			empty = palloc0(sizeof(ShardSets));
			empty->nflags = nflags;
			empty->universe = roaring_owned_create();
			empty->sets = palloc(sizeof(RoaringOwned *) * Max(nflags, 1));
			for (i = 0; i < nflags; i++)
				empty->sets[i] = roaring_owned_create();
			MemoryContextSwitchTo(old);
			results[g] = empty;
		}
		else
			results[g] = shard_sets_expand(d, cxt);
		if (results[g]->nflags != nflags)
			elog(ERROR, "shard member sets of %d flags for a query of %d", results[g]->nflags, nflags);
		SPI_freetuptable(SPI_tuptable);
		pfree(q.data);
	}
	return results;
}

static roaring_bitmap_t *
unit_set(ShardSets **results, ShardUnit *units, int nunits, ShardUnitKind kind, int i, int j)
{
	int			u;

	for (u = 0; u < nunits; u++)
		if (units[u].kind == kind && units[u].i == i && units[u].j == j)
			return results[units[u].group]->sets[units[u].flag]->bitmap;
	elog(ERROR, "no shard member set for unit %d/%d/%d", (int) kind, i, j);
	return NULL;				/* not reached */
}

/* The sets of the shards become the scan's results. */
static void
fill_scan(ScanCore *sc, ShardUnit *units, int nunits, ShardSets **results, int ngroups)
{
	int			g,
				u,
				i,
				j;

	/* every query read the same rows; the keys of all of them, to be sure */
	for (g = 0; g < ngroups; g++)
		roaring_bitmap_or_inplace(sc->universe->bitmap, results[g]->universe->bitmap);
	sc->rows = results[0]->rows;
	sc->null_keys = results[0]->null_keys;

	for (u = 0; u < nunits; u++)
		if (units[u].kind == UNIT_TAG)
			roaring_bitmap_or_inplace(sc->tags[units[u].i].set->bitmap,
									  results[units[u].group]->sets[units[u].flag]->bitmap);

	/* a row goes to the first bucket whose rule is true */
	for (i = 0; i < sc->nschemes; i++)
	{
		RoaringOwned *taken;

		if (sc->schemes[i].skip)
			continue;
		taken = roaring_owned_create();
		for (j = 0; j < sc->schemes[i].nbuckets; j++)
		{
			roaring_bitmap_t *flag = unit_set(results, units, nunits, UNIT_BUCKET, i, j);
			roaring_bitmap_t *mine = roaring_bitmap_andnot(flag, taken->bitmap);

			if (mine == NULL)
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
			roaring_bitmap_or_inplace(sc->schemes[i].buckets[j].set->bitmap, mine);
			roaring_bitmap_free(mine);
			roaring_bitmap_or_inplace(taken->bitmap, flag);
		}
		roaring_owned_free(taken);
	}

	/* base + the points of every item whose rule is true, per member */
	for (i = 0; i < sc->nscorecards; i++)
	{
		ScanScorecard *c = &sc->scorecards[i];
		roaring_bitmap_t **items;
		roaring_uint32_iterator_t it;
		int64		n = 0;

		if (c->skip)
			continue;
		items = palloc(sizeof(roaring_bitmap_t *) * Max(c->nitems, 1));
		for (j = 0; j < c->nitems; j++)
			items[j] = unit_set(results, units, nunits, UNIT_ITEM, i, j);
		roaring_init_iterator(sc->universe->bitmap, &it);
		while (it.has_value)
		{
			ScoreValue	score = c->base;
			ScoreSet   *ss;

			for (j = 0; j < c->nitems; j++)
				if (roaring_bitmap_contains(items[j], it.current_value))
					score += c->points[j];
			ss = refresh_scan_score_set(c, score);
			ss->buf[ss->nbuf++] = it.current_value;
			if (ss->nbuf == ID_BUFFER_SIZE)
			{
				roaring_bitmap_add_many(ss->set->bitmap, ss->nbuf, ss->buf);
				ss->nbuf = 0;
			}
			if ((++n & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
			roaring_advance_uint32_iterator(&it);
		}
		pfree(items);
	}
}

/* What one attempt found and read. */
typedef struct ShardRun
{
	ShardUnit  *units;
	int			nunits;
	Oid		   *owners;
	int			ngroups;
	ShardSets **results;
	bool		pushable;
} ShardRun;

/* One attempt on the shards, run by subxact_run. */
typedef struct ShardAttempt
{
	ScanCore   *sc;
	DateADT		as_of;
	MemoryContext cxt;			/* where the results live */
	ShardRun   *run;
} ShardAttempt;

static void
run_on_shards(void *arg)
{
	ShardAttempt *a = (ShardAttempt *) arg;
	ShardRun   *run = a->run;
	int			spi_nest = segment_spi_connect();

	MemoryContextSwitchTo(a->cxt);
	run->pushable = collect_units(a->sc, a->as_of, &run->units, &run->nunits);
	if (run->pushable)
	{
		run->ngroups = group_units(run->units, run->nunits, &run->owners);
		run->results = run_groups(a->sc, run->units, run->nunits, run->ngroups, run->owners, a->cxt);
	}
	segment_spi_finish(spi_nest);
	MemoryContextSwitchTo(a->cxt);
}

bool
refresh_shards_scan(ScanCore *sc, DateADT as_of)
{
	ShardAttempt a;
	ShardRun   *run;
	ErrorData  *edata;

	if (!segment_citus_pushdown || sc->row_filter != NULL ||
		(sc->keytype != INT4OID && sc->keytype != INT8OID) ||
		!subject_is_citus_table(RelationGetRelid(sc->rel)))
		return false;

	run = palloc0(sizeof(ShardRun));
	a.sc = sc;
	a.as_of = as_of;
	a.cxt = CurrentMemoryContext;
	a.run = run;
	/* a cancel, a shutdown or out of memory are rethrown there */
	if (!subxact_run(run_on_shards, &a, &edata))
	{
		/* the row path reports a rule's or a key's error with its unit */
		ereport(NOTICE,
				(errmsg("refresh of subject \"%s\" reads its rows through the coordinator",
						sc->subject),
				 errdetail("Evaluating the rules on the shards failed: %s", edata->message)));
		FreeErrorData(edata);
		return false;
	}

	if (!run->pushable)
	{
		ereport(DEBUG1,
				(errmsg("refresh of subject \"%s\" reads its rows through the coordinator",
						sc->subject),
				 errdetail("A rule calls a function or a domain that is not built into PostgreSQL.")));
		return false;
	}
	fill_scan(sc, run->units, run->nunits, run->results, run->ngroups);
	return true;
}
