/*
 * catalog_subject.c
 *     Subjects from C (subject.h; part of the catalog module, catalog.h):
 *     lookup of a registered subject by name, and the
 *     mapping between keys and member ids (integer keys are their own member
 *     ids; text keys go through segment.keymap). See subject.h.
 */
#include "postgres.h"

#include <errno.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "extension_cache.h"
#include "segment.h"
#include "state_read.h"
#include "internal_schema.h"
#include "subject.h"
#include "rule_owner.h"

#define KEY_FETCH_BATCH 10000

SPIPlanPtr
segment_saved_plan_cursor(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
						  int cursor_options)
{
	/* a plan prepared before the extension was re-created names dropped objects */
	extension_cache_check_plans();
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(segment_internal_sql(sql), nargs, argtypes,
											  cursor_options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*cache = plan;
		extension_cache_plan_saved(cache);
	}
	return *cache;
}

SPIPlanPtr
segment_saved_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	return segment_saved_plan_cursor(cache, sql, nargs, argtypes, 0);
}

bool
segment_catalog_has_column(const char *table, const char *column)
{
	Oid			nsp = get_namespace_oid("segment", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(table, nsp) : InvalidOid;

	return OidIsValid(relid) && get_attnum(relid, column) != InvalidAttrNumber;
}

int
segment_spi_connect(void)
{
	int			nestlevel;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nestlevel = NewGUCNestLevel();
	rule_pin_search_path();
	return nestlevel;
}

void
segment_spi_finish(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
	SPI_finish();
}

Oid
memberset_type_oid(void)
{
	/* cached until the extension's objects change (extension_cache.h) */
	static Oid	cached = InvalidOid;
	static uint64 cached_generation = 0;
	uint64		generation = extension_cache_generation();
	Oid			nsp;
	Oid			typid;

	if (OidIsValid(cached) && cached_generation == generation)
		return cached;
	nsp = get_namespace_oid("segment", false);
	typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
							CStringGetDatum("memberset"),
							ObjectIdGetDatum(nsp));
	if (!OidIsValid(typid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type segment.memberset does not exist")));
	extension_cache_watch_type(typid);
	cached = typid;
	cached_generation = generation;
	return typid;
}

static void
copy_name(NameData *dst, HeapTuple tup, TupleDesc td, int col, bool *present)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);

	if (present)
		*present = !isnull;
	if (isnull)
		namestrcpy(dst, "");
	else
		namestrcpy(dst, NameStr(*DatumGetName(d)));
}

SubjectInfo *
subject_lookup(const char *name, bool missing_ok)
{
	int			spi_nest;
	static SPIPlanPtr plan_current = NULL;
	static SPIPlanPtr plan_010 = NULL;
	SPIPlanPtr	plan = NULL;
	MemoryContext callercxt = CurrentMemoryContext;
	SubjectInfo *s = NULL;
	Oid			argtypes[1] = {NAMEOID};
	Datum		args[1];
	NameData	n;
	int			ret;

	/* without a query when the catalog can be read directly (state_read.h) */
	{
		SubjectInfo direct;
		bool		found;

		if (state_read_subject(name, &direct, &found))
		{
			if (found)
			{
				s = MemoryContextAlloc(callercxt, sizeof(SubjectInfo));
				*s = direct;
			}
			goto done;
		}
	}

	namestrcpy(&n, name);
	args[0] = NameGetDatum(&n);

	spi_nest = segment_spi_connect();
	/* a 0.1.0 catalog (before ALTER EXTENSION UPDATE) has no snapshot columns */
	if (segment_catalog_has_column("subject", "snapshot_column"))
		plan = segment_saved_plan(&plan_current,
						   "SELECT subject_id, name, relation::oid, key_column, key_type::oid,"
						   "       org_column, owner_column, snapshot_column, snapshot_retention"
						   "  FROM segment.subject WHERE name = $1",
						   1, argtypes);
	else
	{
		(void) segment_saved_plan(&plan_010,
						   "SELECT subject_id, name, relation::oid, key_column, key_type::oid,"
						   "       org_column, owner_column, NULL::name, 2"
						   "  FROM segment.subject WHERE name = $1",
						   1, argtypes);
		plan = plan_010;
	}
	ret = SPI_execute_plan(plan, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "subject lookup failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;

		s = MemoryContextAllocZero(callercxt, sizeof(SubjectInfo));
		s->subject_id = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		copy_name(&s->name, tup, td, 2, NULL);
		s->relid = DatumGetObjectId(SPI_getbinval(tup, td, 3, &isnull));
		copy_name(&s->key_column, tup, td, 4, NULL);
		s->key_type = DatumGetObjectId(SPI_getbinval(tup, td, 5, &isnull));
		s->integer_keys = (s->key_type == INT4OID || s->key_type == INT8OID);
		copy_name(&s->org_column, tup, td, 6, &s->has_org_column);
		copy_name(&s->owner_column, tup, td, 7, &s->has_owner_column);
		copy_name(&s->snapshot_column, tup, td, 8, &s->has_snapshot_column);
		s->snapshot_retention = DatumGetInt32(SPI_getbinval(tup, td, 9, &isnull));
	}
	segment_spi_finish(spi_nest);

done:
	if (s == NULL && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("subject \"%s\" is not registered", name),
				 errhint("Register it with segment.register_subject(); registered subjects are listed in segment.subject.")));
	return s;
}

/* keymap lookup for text-keyed subjects */
static bool
keymap_lookup(const SubjectInfo *s, const char *key, uint32 *member_id)
{
	int			spi_nest;
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	Datum		args[2];
	int			ret;
	bool		found = false;

	args[0] = Int32GetDatum(s->subject_id);
	args[1] = CStringGetTextDatum(key);

	spi_nest = segment_spi_connect();
	segment_saved_plan(&plan,
					   "SELECT member_id FROM segment.keymap WHERE subject_id = $1 AND key = $2",
					   2, argtypes);
	ret = SPI_execute_plan(plan, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "keymap lookup failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			*member_id = memberset_check_id(DatumGetInt64(d), "member id");
			found = true;
		}
	}
	segment_spi_finish(spi_nest);
	return found;
}

static uint32
integer_key_member_id(const SubjectInfo *s, int64 key)
{
	if (key < 0 || key > SEGMENT_MAX_MEMBER_ID)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("key " INT64_FORMAT " of subject \"%s\" is out of range for a member id",
						key, NameStr(s->name)),
				 errdetail("An integer key is its own member id, so keys must lie between 0 and 4294967295."),
				 errhint("Check the key value; rows with keys outside that range cannot carry tags.")));
	return (uint32) key;
}

bool
subject_member_id_int8(const SubjectInfo *s, int64 key, uint32 *member_id)
{
	char		buf[MAXINT8LEN + 1];

	if (s->integer_keys)
	{
		*member_id = integer_key_member_id(s, key);
		return true;
	}
	pg_lltoa(key, buf);
	return keymap_lookup(s, buf, member_id);
}

bool
subject_member_id_text(const SubjectInfo *s, const char *key, uint32 *member_id)
{
	if (s->integer_keys)
	{
		char	   *end;
		long long	v;

		errno = 0;
		v = strtoll(key, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
			end++;
		if (end == key || *end != '\0' || *key == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid key \"%s\" for subject \"%s\"", key, NameStr(s->name)),
					 errdetail("Subject \"%s\" has %s keys.", NameStr(s->name),
							   format_type_be(s->key_type))));
		if (errno == ERANGE)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("key \"%s\" of subject \"%s\" is out of range for a member id",
							key, NameStr(s->name)),
					 errdetail("An integer key is its own member id, so keys must lie between 0 and 4294967295.")));
		*member_id = integer_key_member_id(s, (int64) v);
		return true;
	}
	return keymap_lookup(s, key, member_id);
}

void
subject_put_ids(const roaring_bitmap_t *set, Tuplestorestate *tupstore, TupleDesc tupdesc)
{
	roaring_uint32_iterator_t it;
	uint32		buf[1024];
	Datum		values[1];
	bool		nulls[1] = {false};

	roaring_init_iterator(set, &it);
	for (;;)
	{
		uint32		n = roaring_read_uint32_iterator(&it, buf, lengthof(buf));

		if (n == 0)
			break;
		CHECK_FOR_INTERRUPTS();
		for (uint32 i = 0; i < n; i++)
		{
			values[0] = Int64GetDatum((int64) buf[i]);
			tuplestore_putvalues(tupstore, tupdesc, values, nulls);
		}
	}
}

void
subject_put_keys(const SubjectInfo *s, MemberSet *set,
				 Tuplestorestate *tupstore, TupleDesc tupdesc)
{
	int			spi_nest;
	if (s->integer_keys)
	{
		RoaringOwned *o = memberset_to_roaring(set);
		roaring_uint32_iterator_t it;
		char		digits[12];
		uint64		n = 0;

		roaring_init_iterator(o->bitmap, &it);
		while (it.has_value)
		{
			Datum		value;
			bool		isnull = false;

			value = PointerGetDatum(cstring_to_text_with_len(digits,
															 pg_ultoa_n(it.current_value, digits)));
			tuplestore_putvalues(tupstore, tupdesc, &value, &isnull);
			pfree(DatumGetPointer(value));
			if ((++n & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
			roaring_advance_uint32_iterator(&it);
		}
		roaring_owned_free(o);
	}
	else
	{
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[2] = {INT4OID, InvalidOid};
		Datum		args[2];
		Portal		portal;

		argtypes[1] = memberset_type_oid();
		args[0] = Int32GetDatum(s->subject_id);
		args[1] = PointerGetDatum(set);

		spi_nest = segment_spi_connect();
		segment_saved_plan(&plan,
						   "SELECT k.key FROM segment.member_ids($2) AS m(id)"
						   "  JOIN segment.keymap k ON k.subject_id = $1 AND k.member_id = m.id"
						   " ORDER BY m.id",
						   2, argtypes);
		portal = SPI_cursor_open(NULL, plan, args, NULL, true);
		for (;;)
		{
			SPI_cursor_fetch(portal, true, KEY_FETCH_BATCH);
			if (SPI_processed == 0)
				break;
			for (uint64 i = 0; i < SPI_processed; i++)
			{
				bool		isnull;
				Datum		value = SPI_getbinval(SPI_tuptable->vals[i],
												  SPI_tuptable->tupdesc, 1, &isnull);

				tuplestore_putvalues(tupstore, tupdesc, &value, &isnull);
			}
			SPI_freetuptable(SPI_tuptable);
			CHECK_FOR_INTERRUPTS();
		}
		SPI_cursor_close(portal);
		segment_spi_finish(spi_nest);
	}
}
