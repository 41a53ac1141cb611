/*
 * snapshot.c
 *     Daily snapshot subjects (see snapshot.h): which snapshot a refresh
 *     reads, and which partitions hold it.
 *
 * Finding the newest snapshot on or before as_of never scans the table.
 * A partitioned table is walked through its partition descriptors, down
 * every level: a level partitioned (by range or list) on the snapshot
 * column narrows each child to the dates its bounds allow; any other level
 * (hash on the key, list on a branch, a default partition) passes its
 * parent's dates down. The leaves are then probed from the one whose dates
 * end latest (capped at as_of), each probe a query through the parent
 * restricted to that leaf's dates, so that partition pruning reads that
 * leaf only: a LIMIT 1 when the leaf holds one date, else max() (an index
 * probe when the snapshot column is indexed). The first probe that finds a
 * row ends the search as soon as no other leaf can hold a newer date. A
 * plain table (or materialized view) needs an index on the snapshot column
 * (register_subject checks it), so max() there is an index probe too.
 *
 * Prefix: snapshot_ (SQL-callable: segment_).
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/acl.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "segment.h"
#include "snapshot.h"
#include "subject.h"

/* A leaf partition and the dates (inclusive) its bounds allow. */
typedef struct SnapLeaf
{
	Oid			relid;
	DateADT		lo;
	DateADT		hi;
} SnapLeaf;

char *
snapshot_date_text(DateADT d)
{
	int			y,
				m,
				day;

	if (DATE_IS_NOBEGIN(d))
		return pstrdup("-infinity");
	if (DATE_IS_NOEND(d))
		return pstrdup("infinity");
	j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &day);
	if (y <= 0)
		return psprintf("%04d-%02d-%02d BC", 1 - y, m, day);
	return psprintf("%04d-%02d-%02d", y, m, day);
}

char *
snapshot_filter_sql(const char *column, DateADT d)
{
	return psprintf(" WHERE %s = '%s'::pg_catalog.date", quote_identifier(column),
					snapshot_date_text(d));
}

static char *
rel_sql_name(Relation rel)
{
	return quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									  RelationGetRelationName(rel));
}

/* A range bound datum as a date; MINVALUE/MAXVALUE as -infinity/infinity. */
static DateADT
range_bound(PartitionBoundInfo bi, int i)
{
	if (bi->kind[i][0] == PARTITION_RANGE_DATUM_MINVALUE)
		return DATEVAL_NOBEGIN;
	if (bi->kind[i][0] == PARTITION_RANGE_DATUM_MAXVALUE)
		return DATEVAL_NOEND;
	return DatumGetDateADT(bi->datums[i][0]);
}

/*
 * For each child of a partitioned rel: the dates it may hold, within
 * [lo, hi]. lo > hi: none. *isdefault marks the default partition, which
 * gets [lo, hi] (it may hold whatever the others do not).
 */
static void
child_ranges(Relation rel, const char *column, DateADT lo, DateADT hi,
			 DateADT *clo, DateADT *chi, bool *isdefault)
{
	PartitionKey key = RelationGetPartitionKey(rel);
	PartitionDesc pd = RelationGetPartitionDesc(rel, true);
	AttrNumber	attno = get_attnum(RelationGetRelid(rel), column);
	PartitionBoundInfo bi = pd->boundinfo;
	bool		keyed;
	int			c;

	keyed = key->partnatts == 1 && attno != InvalidAttrNumber && key->partattrs[0] == attno &&
		key->parttypid[0] == DATEOID &&
		(key->strategy == PARTITION_STRATEGY_RANGE || key->strategy == PARTITION_STRATEGY_LIST);
	for (c = 0; c < pd->nparts; c++)
	{
		isdefault[c] = bi != NULL && bi->default_index == c;
		if (!keyed || isdefault[c])
		{
			clo[c] = lo;
			chi[c] = hi;
		}
		else
		{
			/* filled in below; empty unless a bound says otherwise */
			clo[c] = DATEVAL_NOEND;
			chi[c] = DATEVAL_NOBEGIN;
		}
	}
	if (!keyed || bi == NULL)
		return;
	if (key->strategy == PARTITION_STRATEGY_RANGE)
	{
		/* indexes[i]: the partition whose upper bound is datums[i] */
		for (int i = 1; i < bi->ndatums; i++)
		{
			int			p = bi->indexes[i];
			DateADT		up;

			if (p < 0)
				continue;
			clo[p] = range_bound(bi, i - 1);
			up = range_bound(bi, i);
			chi[p] = DATE_IS_NOEND(up) ? up : up - 1;	/* upper bounds are exclusive */
		}
	}
	else
	{
		for (int i = 0; i < bi->ndatums; i++)
		{
			int			p = bi->indexes[i];
			DateADT		v = DatumGetDateADT(bi->datums[i][0]);

			if (p < 0)
				continue;
			if (v < clo[p])
				clo[p] = v;
			if (v > chi[p])
				chi[p] = v;
		}
	}
	for (c = 0; c < pd->nparts; c++)
	{
		if (isdefault[c])
			continue;
		clo[c] = Max(clo[c], lo);
		chi[c] = Min(chi[c], hi);
	}
}

/* Every leaf under rel with the dates it may hold (within [lo, hi]). */
static void
collect_leaves(Relation rel, const char *column, DateADT lo, DateADT hi, List **out)
{
	PartitionDesc pd = RelationGetPartitionDesc(rel, true);
	DateADT    *clo = palloc(sizeof(DateADT) * Max(pd->nparts, 1));
	DateADT    *chi = palloc(sizeof(DateADT) * Max(pd->nparts, 1));
	bool	   *isdefault = palloc(sizeof(bool) * Max(pd->nparts, 1));
	Oid		   *oids = palloc(sizeof(Oid) * Max(pd->nparts, 1));
	bool	   *leaf = palloc(sizeof(bool) * Max(pd->nparts, 1));
	int			n = pd->nparts;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	/* copy: the descriptor may be rebuilt while children are opened */
	memcpy(oids, pd->oids, sizeof(Oid) * n);
	memcpy(leaf, pd->is_leaf, sizeof(bool) * n);
	child_ranges(rel, column, lo, hi, clo, chi, isdefault);
	for (int c = 0; c < n; c++)
	{
		if (clo[c] > chi[c])
			continue;			/* no date of the column fits its bounds */
		if (leaf[c])
		{
			SnapLeaf   *l = palloc(sizeof(SnapLeaf));

			l->relid = oids[c];
			l->lo = clo[c];
			l->hi = chi[c];
			*out = lappend(*out, l);
		}
		else
		{
			Relation	child = table_open(oids[c], AccessShareLock);

			collect_leaves(child, column, clo[c], chi[c], out);
			table_close(child, AccessShareLock);
		}
	}
}

/* Latest date first (capped dates are compared by the caller). */
static DateADT sort_as_of;

static int
leaf_cmp(const ListCell *a, const ListCell *b)
{
	const SnapLeaf *x = lfirst(a);
	const SnapLeaf *y = lfirst(b);
	DateADT		cx = Min(x->hi, sort_as_of);
	DateADT		cy = Min(y->hi, sort_as_of);

	if (cx != cy)
		return cx > cy ? -1 : 1;
	return x->lo > y->lo ? -1 : x->lo < y->lo ? 1 : 0;
}

/*
 * What a probe of one leaf reads: the leaf itself when the caller may read
 * it directly (partitions have privileges and row security of their own),
 * else the parent, where pruning on the leaf's dates keeps the read to the
 * partitions that can hold them.
 */
static const char *
probe_target(SnapLeaf *l, const char *parent)
{
	char	   *nsp;
	char	   *name;

	if (pg_class_aclcheck(l->relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
		check_enable_rls(l->relid, InvalidOid, true) == RLS_ENABLED)
		return parent;
	nsp = get_namespace_name(get_rel_namespace(l->relid));
	name = get_rel_name(l->relid);
	if (nsp == NULL || name == NULL)
		return parent;
	return quote_qualified_identifier(nsp, name);
}

/* Run a probe; the first column of its one row as a date, if not NULL. */
static bool
probe(const char *sql, DateADT *out)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not probe for a snapshot: %s", sql);
	if (SPI_processed == 0)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	*out = DatumGetDateADT(d);
	return true;
}

bool
snapshot_find(Relation rel, const char *column, DateADT as_of, DateADT *found)
{
	const char *relname = rel_sql_name(rel);
	const char *col = quote_identifier(column);
	List	   *leaves = NIL;
	ListCell   *lc;
	bool		have = false;
	DateADT		best = DATEVAL_NOBEGIN;
	DateADT		last_lo = DATEVAL_NOEND;
	DateADT		last_hi = DATEVAL_NOBEGIN;

	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return probe(psprintf("SELECT max(%s) FROM %s WHERE %s <= '%s'::pg_catalog.date",
							  col, relname, col, snapshot_date_text(as_of)), found);

	collect_leaves(rel, column, DATEVAL_NOBEGIN, DATEVAL_NOEND, &leaves);
	sort_as_of = as_of;
	list_sort(leaves, leaf_cmp);
	foreach(lc, leaves)
	{
		SnapLeaf   *l = lfirst(lc);
		DateADT		cap = Min(l->hi, as_of);
		DateADT		from = l->lo;
		DateADT		d;
		bool		hit;
		const char *target;

		CHECK_FOR_INTERRUPTS();
		if (l->lo > as_of)
			continue;
		if (have && cap <= best)
			break;				/* sorted: nothing later can be newer */
		if (have && best >= from)
			from = best + 1;
		target = probe_target(l, relname);
		if (target == relname && from == last_lo && cap == last_hi)
			continue;			/* the parent was probed for these dates already */
		if (target == relname)
		{
			last_lo = from;
			last_hi = cap;
		}
		if (from == cap)
		{
			/* one possible date: any row of it will do */
			hit = probe(psprintf("SELECT %s FROM %s WHERE %s = '%s'::pg_catalog.date LIMIT 1",
								 col, target, col, snapshot_date_text(cap)), &d);
		}
		else if (DATE_IS_NOBEGIN(from))
			hit = probe(psprintf("SELECT max(%s) FROM %s WHERE %s <= '%s'::pg_catalog.date",
								 col, target, col, snapshot_date_text(cap)), &d);
		else
			hit = probe(psprintf("SELECT max(%s) FROM %s WHERE %s >= '%s'::pg_catalog.date AND %s <= '%s'::pg_catalog.date",
								 col, target, col, snapshot_date_text(from),
								 col, snapshot_date_text(cap)), &d);
		if (hit && (!have || d > best))
		{
			best = d;
			have = true;
		}
	}
	list_free_deep(leaves);
	if (have)
		*found = best;
	return have;
}

/* The leaves under rel that can hold date d. */
static void
leaves_for(Relation rel, const char *column, DateADT d, List **out)
{
	PartitionDesc pd = RelationGetPartitionDesc(rel, true);
	int			n = pd->nparts;
	DateADT    *clo = palloc(sizeof(DateADT) * Max(n, 1));
	DateADT    *chi = palloc(sizeof(DateADT) * Max(n, 1));
	bool	   *isdefault = palloc(sizeof(bool) * Max(n, 1));
	Oid		   *oids = palloc(sizeof(Oid) * Max(n, 1));
	bool	   *leaf = palloc(sizeof(bool) * Max(n, 1));
	bool		covered = false;

	check_stack_depth();
	memcpy(oids, pd->oids, sizeof(Oid) * n);
	memcpy(leaf, pd->is_leaf, sizeof(bool) * n);
	child_ranges(rel, column, d, d, clo, chi, isdefault);
	/* the default partition holds d only when no other partition's bounds do */
	for (int c = 0; c < n; c++)
		if (!isdefault[c] && clo[c] <= chi[c])
		{
			PartitionKey key = RelationGetPartitionKey(rel);
			AttrNumber	attno = get_attnum(RelationGetRelid(rel), column);

			if (key->partnatts == 1 && key->partattrs[0] == attno &&
				key->strategy != PARTITION_STRATEGY_HASH)
				covered = true;
		}
	for (int c = 0; c < n; c++)
	{
		if (clo[c] > chi[c] || (isdefault[c] && covered))
			continue;
		if (leaf[c])
			*out = lappend_oid(*out, oids[c]);
		else
		{
			Relation	child = table_open(oids[c], AccessShareLock);

			leaves_for(child, column, d, out);
			table_close(child, AccessShareLock);
		}
	}
}

List *
snapshot_relations(Relation rel, const char *column, DateADT d)
{
	List	   *out = NIL;

	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return list_make1_oid(RelationGetRelid(rel));
	leaves_for(rel, column, d, &out);
	return out;
}

/* Same attributes in the same places: rules compiled for one read the other. */
static bool
same_layout(TupleDesc a, TupleDesc b)
{
	if (a->natts != b->natts)
		return false;
	for (int i = 0; i < a->natts; i++)
	{
		Form_pg_attribute x = TupleDescAttr(a, i);
		Form_pg_attribute y = TupleDescAttr(b, i);

		if (x->attisdropped != y->attisdropped)
			return false;
		if (x->attisdropped)
			continue;
		if (x->atttypid != y->atttypid || x->atttypmod != y->atttypmod ||
			x->attcollation != y->attcollation || strcmp(NameStr(x->attname), NameStr(y->attname)) != 0)
			return false;
	}
	return true;
}

List *
snapshot_heap_leaves(Relation rel, const char *column, DateADT d, List *leaves)
{
	List	   *all = NIL;
	ListCell   *lc;

	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return NIL;
	collect_leaves(rel, column, DATEVAL_NOBEGIN, DATEVAL_NOEND, &all);
	foreach(lc, leaves)
	{
		Oid			relid = lfirst_oid(lc);
		bool		one_date = false;
		ListCell   *lc2;
		Relation	leaf;
		bool		ok;

		foreach(lc2, all)
		{
			SnapLeaf   *l = lfirst(lc2);

			if (l->relid == relid && l->lo == d && l->hi == d)
				one_date = true;
		}
		if (!one_date ||
			pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
			check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
			return NIL;
		leaf = table_open(relid, AccessShareLock);
		ok = leaf->rd_rel->relkind == RELKIND_RELATION &&
			leaf->rd_rel->relam == HEAP_TABLE_AM_OID &&
			same_layout(RelationGetDescr(rel), RelationGetDescr(leaf));
		table_close(leaf, AccessShareLock);
		if (!ok)
			return NIL;
	}
	return list_copy(leaves);
}

/*
 * segment.latest_snapshot(subject name, as_of date default current_date) -> date
 *   the snapshot a refresh of the subject for as_of would read; NULL if none
 */
PG_FUNCTION_INFO_V1(segment_latest_snapshot);
Datum
segment_latest_snapshot(PG_FUNCTION_ARGS)
{
	SubjectInfo *s = subject_lookup(NameStr(*PG_GETARG_NAME(0)), false);
	DateADT		as_of = PG_GETARG_DATEADT(1);
	Relation	rel;
	DateADT		d;
	bool		have;
	int			nest;

	if (!s->has_snapshot_column)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("subject \"%s\" is not a snapshot subject", NameStr(s->name)),
				 errhint("Register it with snapshot_column => ... to read daily snapshots.")));
	rel = table_open(s->relid, AccessShareLock);
	nest = segment_spi_connect();
	have = snapshot_find(rel, NameStr(s->snapshot_column), as_of, &d);
	segment_spi_finish(nest);
	table_close(rel, AccessShareLock);
	if (!have)
		PG_RETURN_NULL();
	PG_RETURN_DATEADT(d);
}
