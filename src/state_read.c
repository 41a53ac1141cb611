/*
 * state_read.c
 *     Direct reads of segment.tag, segment.tag_state, segment.manual_tag and
 *     segment.subject_state for audiences (see state_read.h): index lookups
 *     under the active snapshot, with the current user's SELECT privilege
 *     checked first and row-level security and live overlay rows sending
 *     the caller back to its catalog query. What the query computes with
 *     SQL (the unexpired manual members, memberset_agg) is computed here the
 *     same way.
 *
 * Part of the catalog module (catalog.h). Prefix: state_read_.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "memberset_cache.h"
#include "state_read.h"

typedef struct StateTable
{
	Relation	rel;
	Oid			index;			/* btree index whose first column is the key */
} StateTable;

struct StateRead
{
	int32		subject_id;
	Snapshot	snapshot;
	StateTable	tag;			/* by name */
	StateTable	tag_state;		/* by tag_id */
	StateTable	manual_tag;		/* by tag_id */
	StateTable	subject_state;	/* by subject_id */
	AttrNumber	t_tag_id,
				t_subject_id,
				t_name,
				t_rule,
				t_active,
				ts_tag_id,
				ts_members,
				m_tag_id,
				m_member_id,
				m_expires_at,
				ss_subject_id,
				ss_universe;
};

static AttrNumber
column_number(Relation rel, const char *name)
{
	TupleDesc	td = RelationGetDescr(rel);

	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

/* A valid plain btree index of rel whose first column is attnum, or InvalidOid. */
static Oid
key_index(Relation rel, AttrNumber attnum)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			result = InvalidOid;

	if (attnum == InvalidAttrNumber)
		return InvalidOid;
	foreach(lc, indexes)
	{
		Oid			ix = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(ix));
		bool		ok;

		if (!HeapTupleIsValid(tup))
			continue;
		{
			Form_pg_index f = (Form_pg_index) GETSTRUCT(tup);

			ok = f->indisvalid && f->indnkeyatts >= 1 && f->indkey.values[0] == attnum &&
				heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
				heap_attisnull(tup, Anum_pg_index_indpred, NULL);
		}
		ReleaseSysCache(tup);
		if (ok)
		{
			tup = SearchSysCache1(RELOID, ObjectIdGetDatum(ix));
			ok = HeapTupleIsValid(tup) && ((Form_pg_class) GETSTRUCT(tup))->relam == BTREE_AM_OID;
			if (HeapTupleIsValid(tup))
				ReleaseSysCache(tup);
		}
		if (ok)
		{
			result = ix;
			break;
		}
	}
	list_free(indexes);
	return result;
}

/* The relation segment.name if the current user may read it plainly, else InvalidOid. */
static Oid
readable_table(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		return InvalidOid;
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return InvalidOid;
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return InvalidOid;
	return relid;
}

static bool
open_table(StateTable *t, Oid relid)
{
	t->rel = table_open(relid, AccessShareLock);
	t->index = InvalidOid;
	return true;
}

static void
close_table(StateTable *t)
{
	if (t->rel != NULL)
		table_close(t->rel, NoLock);	/* the lock is kept to the end of the transaction */
	t->rel = NULL;
}

/* Is there a live overlay row for the subject? */
static bool
has_overlay(Oid live_relid, int32 subject_id, Snapshot snapshot, bool *ok)
{
	Relation	rel = table_open(live_relid, AccessShareLock);
	AttrNumber	att = column_number(rel, "subject_id");
	Oid			ix = key_index(rel, att);
	ScanKeyData key;
	SysScanDesc scan;
	bool		found;

	*ok = att != InvalidAttrNumber;
	if (!*ok)
	{
		table_close(rel, NoLock);
		return false;
	}
	ScanKeyInit(&key, att, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(subject_id));
	scan = systable_beginscan(rel, ix, OidIsValid(ix), snapshot, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, NoLock);
	return found;
}

StateRead *
state_read_begin(int32 subject_id)
{
	Oid			nsp;
	Oid			tag,
				tag_state,
				manual_tag,
				subject_state,
				live_member;
	StateRead  *sr;
	bool		ok;

	if (!ActiveSnapshotSet())
		return NULL;
	nsp = get_namespace_oid("segment", true);
	if (!OidIsValid(nsp))
		return NULL;
	tag = readable_table(nsp, "tag");
	tag_state = readable_table(nsp, "tag_state");
	manual_tag = readable_table(nsp, "manual_tag");
	subject_state = readable_table(nsp, "subject_state");
	live_member = readable_table(nsp, "live_member");
	if (!OidIsValid(tag) || !OidIsValid(tag_state) || !OidIsValid(manual_tag) ||
		!OidIsValid(subject_state) || !OidIsValid(live_member))
		return NULL;

	sr = palloc0(sizeof(StateRead));
	sr->subject_id = subject_id;
	sr->snapshot = GetActiveSnapshot();
	if (has_overlay(live_member, subject_id, sr->snapshot, &ok) || !ok)
	{
		pfree(sr);
		return NULL;
	}
	open_table(&sr->tag, tag);
	open_table(&sr->tag_state, tag_state);
	open_table(&sr->manual_tag, manual_tag);
	open_table(&sr->subject_state, subject_state);

	sr->t_tag_id = column_number(sr->tag.rel, "tag_id");
	sr->t_subject_id = column_number(sr->tag.rel, "subject_id");
	sr->t_name = column_number(sr->tag.rel, "name");
	sr->t_rule = column_number(sr->tag.rel, "rule");
	sr->t_active = column_number(sr->tag.rel, "active");
	sr->ts_tag_id = column_number(sr->tag_state.rel, "tag_id");
	sr->ts_members = column_number(sr->tag_state.rel, "members");
	sr->m_tag_id = column_number(sr->manual_tag.rel, "tag_id");
	sr->m_member_id = column_number(sr->manual_tag.rel, "member_id");
	sr->m_expires_at = column_number(sr->manual_tag.rel, "expires_at");
	sr->ss_subject_id = column_number(sr->subject_state.rel, "subject_id");
	sr->ss_universe = column_number(sr->subject_state.rel, "universe");
	sr->tag.index = key_index(sr->tag.rel, sr->t_name);
	sr->tag_state.index = key_index(sr->tag_state.rel, sr->ts_tag_id);
	sr->manual_tag.index = key_index(sr->manual_tag.rel, sr->m_tag_id);
	sr->subject_state.index = key_index(sr->subject_state.rel, sr->ss_subject_id);

	if (sr->t_tag_id == InvalidAttrNumber || sr->t_subject_id == InvalidAttrNumber ||
		sr->t_rule == InvalidAttrNumber || sr->t_active == InvalidAttrNumber ||
		sr->ts_members == InvalidAttrNumber || sr->m_member_id == InvalidAttrNumber ||
		sr->m_expires_at == InvalidAttrNumber || sr->ss_universe == InvalidAttrNumber ||
		!OidIsValid(sr->tag.index) || !OidIsValid(sr->tag_state.index) ||
		!OidIsValid(sr->manual_tag.index) || !OidIsValid(sr->subject_state.index))
	{
		state_read_end(sr);
		return NULL;
	}
	return sr;
}

void
state_read_end(StateRead *sr)
{
	if (sr == NULL)
		return;
	close_table(&sr->tag);
	close_table(&sr->tag_state);
	close_table(&sr->manual_tag);
	close_table(&sr->subject_state);
	pfree(sr);
}

/* The set in column att of the row of t whose key column keyatt is key; false: no row. */
static bool
read_set(StateRead *sr, StateTable *t, AttrNumber keyatt, AttrNumber att, int32 key,
		 const roaring_bitmap_t **set, RoaringOwned **set_owned)
{
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&skey, keyatt, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(key));
	scan = systable_beginscan(t->rel, t->index, true, sr->snapshot, 1, &skey);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, att, RelationGetDescr(t->rel), &isnull);

		found = true;
		if (set != NULL && !isnull)
			*set = memberset_cache_get(RelationGetRelid(t->rel), key, tup, d, set_owned);
	}
	systable_endscan(scan);
	return found;
}

/* memberset_agg of the unexpired manual members of a tag: NULL when there are none. */
static RoaringOwned *
read_manual(StateRead *sr, int32 tag_id)
{
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	RoaringOwned *o = NULL;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TupleDesc	td = RelationGetDescr(sr->manual_tag.rel);

	ScanKeyInit(&skey, sr->m_tag_id, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(tag_id));
	scan = systable_beginscan(sr->manual_tag.rel, sr->manual_tag.index, true, sr->snapshot, 1, &skey);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		exp = heap_getattr(tup, sr->m_expires_at, td, &isnull);
		Datum		id;

		if (!isnull && !(DatumGetTimestampTz(exp) > now))
			continue;
		id = heap_getattr(tup, sr->m_member_id, td, &isnull);
		if (isnull)
			continue;
		if (o == NULL)
			o = roaring_owned_create();
		roaring_bitmap_add(o->bitmap, memberset_check_id(DatumGetInt64(id), "member id"));
	}
	systable_endscan(scan);
	return o;
}

bool
state_read_tag(StateRead *sr, const char *name, StateTag *out)
{
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	NameData	n;
	bool		found = false;
	TupleDesc	td = RelationGetDescr(sr->tag.rel);

	memset(out, 0, sizeof(StateTag));
	namestrcpy(&n, name);
	ScanKeyInit(&skey, sr->t_name, BTEqualStrategyNumber, F_NAMEEQ, NameGetDatum(&n));
	scan = systable_beginscan(sr->tag.rel, sr->tag.index, true, sr->snapshot, 1, &skey);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;

		found = true;
		out->tag_id = DatumGetInt32(heap_getattr(tup, sr->t_tag_id, td, &isnull));
		out->subject_id = DatumGetInt32(heap_getattr(tup, sr->t_subject_id, td, &isnull));
		(void) heap_getattr(tup, sr->t_rule, td, &isnull);
		out->manual = isnull;
		out->active = DatumGetBool(heap_getattr(tup, sr->t_active, td, &isnull)) && !isnull;
	}
	systable_endscan(scan);
	return found;
}

void
state_read_tag_sets(StateRead *sr, StateTag *t)
{
	if (t->subject_id == sr->subject_id && t->active && !t->manual)
		t->refreshed = read_set(sr, &sr->tag_state, sr->ts_tag_id, sr->ts_members, t->tag_id,
								&t->set, &t->set_owned);
	else
		t->refreshed = read_set(sr, &sr->tag_state, sr->ts_tag_id, sr->ts_members, t->tag_id,
								NULL, NULL);
	if (t->subject_id == sr->subject_id && t->active)
		t->manual_set = read_manual(sr, t->tag_id);
}

bool
state_read_universe(StateRead *sr, const roaring_bitmap_t **set, RoaringOwned **set_owned)
{
	*set = NULL;
	*set_owned = NULL;
	return read_set(sr, &sr->subject_state, sr->ss_subject_id, sr->ss_universe, sr->subject_id,
					set, set_owned);
}

bool
state_read_subject_version(int32 subject_id, Snapshot snap, TransactionId *xmin,
						   ItemPointerData *ctid)
{
	Oid			nsp = get_namespace_oid("segment", false);
	Oid			relid = get_relname_relid("subject_state", nsp);
	Relation	rel;
	AttrNumber	att;
	Oid			ix;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found;

	if (!OidIsValid(relid))
		elog(ERROR, "relation segment.subject_state does not exist");
	rel = table_open(relid, AccessShareLock);
	att = column_number(rel, "subject_id");
	if (att == InvalidAttrNumber)
		elog(ERROR, "segment.subject_state has no column subject_id");
	ix = RelationGetPrimaryKeyIndex(rel);	/* (subject_id) */
	ScanKeyInit(&key, att, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(subject_id));
	scan = systable_beginscan(rel, ix, OidIsValid(ix), snap, 1, &key);
	tup = systable_getnext(scan);
	found = HeapTupleIsValid(tup);
	if (found)
	{
		*xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
		*ctid = tup->t_self;
	}
	systable_endscan(scan);
	table_close(rel, NoLock);	/* the lock is kept to the end of the transaction */
	return found;
}

static void
name_column(HeapTuple tup, TupleDesc td, AttrNumber att, NameData *dst, bool *present)
{
	bool		isnull = true;
	Datum		d = att != InvalidAttrNumber ? heap_getattr(tup, att, td, &isnull) : (Datum) 0;

	if (present)
		*present = !isnull;
	namestrcpy(dst, isnull ? "" : NameStr(*DatumGetName(d)));
}

bool
state_read_subject(const char *name, SubjectInfo *out, bool *found)
{
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	TupleDesc	td;
	AttrNumber	a_id,
				a_name,
				a_rel,
				a_key,
				a_type,
				a_org,
				a_owner,
				a_snap,
				a_ret;
	Oid			ix;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	NameData	n;

	*found = false;
	if (!ActiveSnapshotSet())
		return false;
	nsp = get_namespace_oid("segment", true);
	relid = OidIsValid(nsp) ? readable_table(nsp, "subject") : InvalidOid;
	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, AccessShareLock);
	td = RelationGetDescr(rel);
	a_id = column_number(rel, "subject_id");
	a_name = column_number(rel, "name");
	a_rel = column_number(rel, "relation");
	a_key = column_number(rel, "key_column");
	a_type = column_number(rel, "key_type");
	a_org = column_number(rel, "org_column");
	a_owner = column_number(rel, "owner_column");
	a_snap = column_number(rel, "snapshot_column");	/* 0.1.0 catalogs have neither */
	a_ret = column_number(rel, "snapshot_retention");
	ix = key_index(rel, a_name);
	if (a_id == InvalidAttrNumber || a_rel == InvalidAttrNumber || a_key == InvalidAttrNumber ||
		a_type == InvalidAttrNumber || a_org == InvalidAttrNumber || a_owner == InvalidAttrNumber ||
		!OidIsValid(ix))
	{
		table_close(rel, NoLock);
		return false;
	}
	namestrcpy(&n, name);
	ScanKeyInit(&skey, a_name, BTEqualStrategyNumber, F_NAMEEQ, NameGetDatum(&n));
	scan = systable_beginscan(rel, ix, true, GetActiveSnapshot(), 1, &skey);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;

		*found = true;
		memset(out, 0, sizeof(SubjectInfo));
		out->subject_id = DatumGetInt32(heap_getattr(tup, a_id, td, &isnull));
		name_column(tup, td, a_name, &out->name, NULL);
		out->relid = DatumGetObjectId(heap_getattr(tup, a_rel, td, &isnull));
		name_column(tup, td, a_key, &out->key_column, NULL);
		out->key_type = DatumGetObjectId(heap_getattr(tup, a_type, td, &isnull));
		out->integer_keys = (out->key_type == INT4OID || out->key_type == INT8OID);
		name_column(tup, td, a_org, &out->org_column, &out->has_org_column);
		name_column(tup, td, a_owner, &out->owner_column, &out->has_owner_column);
		name_column(tup, td, a_snap, &out->snapshot_column, &out->has_snapshot_column);
		out->snapshot_retention = a_ret != InvalidAttrNumber
			? DatumGetInt32(heap_getattr(tup, a_ret, td, &isnull)) : 2;
	}
	systable_endscan(scan);
	table_close(rel, NoLock);
	return true;
}
