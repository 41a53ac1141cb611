/*
 * governance.c
 *     Who may see what (docs/security.md; sql/install/13-governance-checks.sql
 *     declares its checks, sql/install/92-governance.sql the rest).
 *
 * The current user's scope: the manager id and org unit that
 * segment.user_map binds the login to, and the unit's subtree in
 * segment.org_unit. Row-level security on segment.opportunity calls
 * segment_internal._my_manager() and segment_internal._in_scope(org_unit) for every row a
 * manager or branch head reads, so the scope is cached per backend: keyed
 * by the user's OID and segment.scope_version, which register_org_tree,
 * refresh_org_tree and map_user bump in their transaction. The version is
 * read once per query (the first call through an FmgrInfo), so a changed
 * tree or mapping is seen by the next query after its commit; each row then
 * costs one hash lookup.
 *
 * Also here: export control (members, members_text, keys need
 * segment_exporter) and its audit rows, the per-customer check of tags,
 * has_tag and explain, and which columns explain masks.
 *
 * Governance is enforced only in a database where segment.install_roles()
 * has run (a row in segment.governance); elsewhere every check passes.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "parser/parse_relation.h"

#include "extension_cache.h"
#include "governance.h"
#include "subject.h"

/* src/mask.c */
extern Datum segment_mask(PG_FUNCTION_ARGS);

typedef struct ScopeCache
{
	bool		valid;
	Oid			userid;
	int64		version;
	uint64		generation;		/* extension_cache_generation(): a re-created
								 * extension restarts version at 1 */
	MemoryContext cxt;			/* owns manager and units */
	char	   *manager;		/* NULL: not mapped to a manager id */
	bool		has_unit;
	HTAB	   *units;			/* the mapped unit's subtree; NULL when no unit */
	int			keysize;		/* of units' keys: longest unit + 1 */
} ScopeCache;

static ScopeCache scope = {false, InvalidOid, 0, 0, NULL, NULL, false, NULL, 0};

/*
 * Has segment.governance a row? Read directly under the statement's
 * snapshot, as the query reads it; *direct is false when the current user
 * could not read it plainly (no SELECT, row-level security): the query then
 * answers, or raises what it raises.
 */
static bool
governance_row_exists(Oid relid, bool *direct)
{
	Relation	rel;
	TableScanDesc scan;
	bool		found;

	*direct = false;
	if (!ActiveSnapshotSet() ||
		pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
		check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return false;
	rel = table_open(relid, AccessShareLock);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	found = heap_getnext(scan, ForwardScanDirection) != NULL;
	table_endscan(scan);
	table_close(rel, NoLock);	/* the lock is kept to the end of the transaction, as the query's */
	*direct = true;
	return found;
}

bool
governance_installed(void)
{
	static SPIPlanPtr plan = NULL;
	int			spi_nest;
	bool		isnull;
	bool		result;
	bool		direct;
	Oid			nsp;
	Oid			relid;
	static LocalTransactionId cached_lxid = InvalidLocalTransactionId;
	static CommandId cached_cid = InvalidCommandId;
	static bool cached = false;

	/* once per command: has_tag and tags are called once per row of a query */
	if (MyProc->lxid == cached_lxid && GetCurrentCommandId(false) == cached_cid)
		return cached;
	/* a database still on a version of segment without governance (0.1.0) */
	nsp = get_namespace_oid("segment", true);
	relid = OidIsValid(nsp) ? get_relname_relid("governance", nsp) : InvalidOid;
	if (!OidIsValid(relid))
		return false;
	/* without a query when the table can be read plainly: no plan to make in a new backend */
	result = governance_row_exists(relid, &direct);
	if (direct)
	{
		cached_lxid = MyProc->lxid;
		cached_cid = GetCurrentCommandId(false);
		cached = result;
		return result;
	}
	spi_nest = segment_spi_connect();
	segment_saved_plan(&plan, "SELECT EXISTS (SELECT 1 FROM segment.governance)", 0, NULL);
	if (SPI_execute_plan(plan, NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read segment.governance");
	result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	segment_spi_finish(spi_nest);
	cached_lxid = MyProc->lxid;
	cached_cid = GetCurrentCommandId(false);
	cached = result;
	return result;
}

/* Whether the current user has the privileges of built-in role `name` (false if it does not exist). */
static bool
has_builtin_role(const char *name)
{
	Oid			role = get_role_oid(name, true);

	return OidIsValid(role) && has_privs_of_role(GetUserId(), role);
}

/*
 * segment.scope_version's one value (0 when the table is empty), read from
 * the heap: this runs once per query of every manager and branch head
 * (row-level security), and an SPI query with its search_path pin cost
 * about a third of a manager's indexed listing (docs/performance.md). The
 * table is readable by PUBLIC; the read uses the query's snapshot.
 */
static pg_noinline int64
scope_version_now(void)
{
	Oid			nsp = get_namespace_oid("segment", false);
	Oid			relid = get_relname_relid("scope_version", nsp);
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	AttrNumber	att;
	int64		version = 0;

	if (!OidIsValid(relid))
		return 0;
	rel = table_open(relid, AccessShareLock);
	att = attnameAttNum(rel, "version", false);
	if (att == InvalidAttrNumber)
		elog(ERROR, "segment.scope_version has no column \"version\"");
	scan = table_beginscan(rel, ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot(), 0, NULL);
	tup = heap_getnext(scan, ForwardScanDirection);
	if (tup != NULL)
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, att, RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = DatumGetInt64(d);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/* Reads the scope of the current user when the cache is not of this user and version. */
static void
scope_load(void)
{
	static SPIPlanPtr map_plan = NULL;
	static SPIPlanPtr tree_plan = NULL;
	Oid			userid = GetUserId();
	uint64		generation = extension_cache_generation();
	int			spi_nest;
	int64		version;
	Datum		arg;
	Oid			argtype;
	MemoryContext cxt;
	MemoryContext old;
	char	   *manager = NULL;
	char	   *unit = NULL;
	HTAB	   *units = NULL;
	int			keysize = 0;
	uint64		i;

	version = scope_version_now();
	if (scope.valid && scope.userid == userid && scope.version == version &&
		scope.generation == generation)
		return;
	spi_nest = segment_spi_connect();

	cxt = AllocSetContextCreate(TopMemoryContext, "segment governance scope", ALLOCSET_SMALL_SIZES);
	PG_TRY();
	{
		argtype = NAMEOID;
		arg = CStringGetDatum(GetUserNameFromId(userid, false));
		arg = DirectFunctionCall1(namein, arg);
		segment_saved_plan(&map_plan,
						   "SELECT manager, org_unit FROM segment.user_map WHERE login = $1",
						   1, &argtype);
		if (SPI_execute_plan(map_plan, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read segment.user_map");
		old = MemoryContextSwitchTo(cxt);
		if (SPI_processed == 1)
		{
			manager = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			unit = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		}
		MemoryContextSwitchTo(old);
		if (unit != NULL)
		{
			HASHCTL		ctl;

			argtype = TEXTOID;
			arg = CStringGetTextDatum(unit);
			segment_saved_plan(&tree_plan,
							   "WITH RECURSIVE t(u) AS ("
							   "  SELECT o.unit FROM segment.org_unit o WHERE o.unit = $1"
							   "  UNION"
							   "  SELECT o.unit FROM segment.org_unit o JOIN t ON o.parent = t.u)"
							   " SELECT u FROM t",
							   1, &argtype);
			if (SPI_execute_plan(tree_plan, &arg, NULL, true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read segment.org_unit");
			for (i = 0; i < SPI_processed; i++)
			{
				char	   *u = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
				int			l = (int) strlen(u) + 1;

				if (l > keysize)
					keysize = l;
			}
			memset(&ctl, 0, sizeof(ctl));
			ctl.keysize = Max(keysize, 8);
			ctl.entrysize = ctl.keysize;
			ctl.hcxt = cxt;
			units = hash_create("segment org subtree", Max(SPI_processed, 16), &ctl,
								HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
			for (i = 0; i < SPI_processed; i++)
			{
				char	   *u = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
				char	   *key = palloc0(ctl.keysize);

				CHECK_FOR_INTERRUPTS();
				strlcpy(key, u, ctl.keysize);
				(void) hash_search(units, key, HASH_ENTER, NULL);
			}
			keysize = ctl.keysize;
		}
	}
	PG_CATCH();
	{
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	segment_spi_finish(spi_nest);

	if (scope.cxt != NULL)
		MemoryContextDelete(scope.cxt);
	scope.cxt = cxt;
	scope.userid = userid;
	scope.version = version;
	scope.generation = generation;
	scope.manager = manager;
	scope.has_unit = unit != NULL;
	scope.units = units;
	scope.keysize = keysize;
	scope.valid = true;
}

/*
 * Once per query and function call site (fn_extra is reset with the
 * executor state), or when the user changed since.
 */
static void
scope_check(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo->fn_extra == NULL || !scope.valid || scope.userid != GetUserId())
	{
		scope_load();
		if (fcinfo->flinfo->fn_extra == NULL)
			fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, 1);
	}
}

static bool
scope_has_unit(const char *unit)
{
	if (scope.units == NULL || unit == NULL || (int) strlen(unit) >= scope.keysize)
		return false;
	return hash_search(scope.units, unit, HASH_FIND, NULL) != NULL;
}

/* segment_internal._my_manager() -> text: the current user's manager id, or NULL */
PG_FUNCTION_INFO_V1(segment_my_manager);
Datum
segment_my_manager(PG_FUNCTION_ARGS)
{
	scope_check(fcinfo);
	if (scope.manager == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(scope.manager));
}

/* segment_internal._in_scope(org_unit text) -> boolean: the unit is in the user's subtree */
PG_FUNCTION_INFO_V1(segment_in_scope);
Datum
segment_in_scope(PG_FUNCTION_ARGS)
{
	char		buf[256];
	text	   *t;
	int			len;

	scope_check(fcinfo);
	if (PG_ARGISNULL(0) || scope.units == NULL)
		PG_RETURN_BOOL(false);
	t = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(t);
	if (len >= scope.keysize)
		PG_RETURN_BOOL(false);
	if (len < (int) sizeof(buf))
	{
		memcpy(buf, VARDATA_ANY(t), len);
		buf[len] = '\0';
		PG_RETURN_BOOL(scope_has_unit(buf));
	}
	PG_RETURN_BOOL(scope_has_unit(text_to_cstring(t)));
}

/*
 * Whether the current user sees every row: governance not installed,
 * superuser, or a member of segment_admin, segment_analyst or
 * segment_auditor.
 */
static bool
sees_all(void)
{
	if (superuser())
		return true;
	if (has_builtin_role("segment_admin") || has_builtin_role("segment_analyst") ||
		has_builtin_role("segment_auditor"))
		return true;
	return !governance_installed();
}

/* segment_internal._sees_all() -> boolean */
PG_FUNCTION_INFO_V1(segment_sees_all);
Datum
segment_sees_all(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(sees_all());
}

void
governance_check_export(const char *what)
{
	if (superuser() || has_builtin_role("segment_exporter") || !governance_installed())
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to list customers with %s", what),
			 errdetail("Customer-level lists are exports; role \"%s\" is not a member of segment_exporter.",
					   GetUserNameFromId(GetUserId(), false)),
			 errhint("Counts stay open: segment.count(subject, audience). Ask an administrator to GRANT segment_exporter TO you; every export is audited.")));
}

void
governance_audit_export(const char *what, const char *subject, const char *audience,
						int64 row_count)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[4] = {TEXTOID, NAMEOID, TEXTOID, INT8OID};
	Datum		args[4];
	int			spi_nest;

	if (!governance_installed())
		return;
	args[0] = CStringGetTextDatum(what);
	args[1] = DirectFunctionCall1(namein, CStringGetDatum(subject));
	args[2] = CStringGetTextDatum(audience);
	args[3] = Int64GetDatum(row_count);
	spi_nest = segment_spi_connect();
	segment_saved_plan(&plan, "SELECT segment_internal._audit_export($1, $2, $3, $4)", 4, argtypes);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not audit the export");
	segment_spi_finish(spi_nest);
}

void
governance_check_customer(int32 subject_id, const char *subject, const char *key)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	Datum		args[2];
	int			spi_nest;
	char	   *owner = NULL;
	char	   *org = NULL;
	bool		found = false;
	bool		ok = false;

	if (sees_all())
		return;
	scope_load();
	args[0] = Int32GetDatum(subject_id);
	args[1] = CStringGetTextDatum(key);
	spi_nest = segment_spi_connect();
	segment_saved_plan(&plan, "SELECT owner, org FROM segment_internal._customer_scope($1, $2)", 2, argtypes);
	if (SPI_execute_plan(plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the customer's owner and org unit");
	if (SPI_processed >= 1)
	{
		found = true;
		owner = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		org = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		if (owner != NULL && scope.manager != NULL && has_builtin_role("segment_manager") &&
			strcmp(owner, scope.manager) == 0)
			ok = true;
		if (org != NULL && has_builtin_role("segment_branch_head") && scope_has_unit(org))
			ok = true;
	}
	segment_spi_finish(spi_nest);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("customer \"%s\" of subject \"%s\" is outside your scope", key, subject),
				 found ? errdetail("Role \"%s\" sees the customers of its manager id (segment_manager) or of its org subtree (segment_branch_head).",
								   GetUserNameFromId(GetUserId(), false))
				 : errdetail("No row of the subject's table has that key."),
				 errhint("segment.map_user(login, manager, org_unit) binds a login to a manager id or an org unit.")));
}

/* segment_internal._check_customer(subject_id int, key text) -> void; 42501 when out of scope */
PG_FUNCTION_INFO_V1(segment_check_customer);
Datum
segment_check_customer(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || sees_all())
		PG_RETURN_VOID();
	governance_check_customer(PG_GETARG_INT32(0), psprintf("%d", PG_GETARG_INT32(0)),
							  text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

/* segment_internal._check_export(what text) -> void; 42501 without segment_exporter */
PG_FUNCTION_INFO_V1(segment_check_export);
Datum
segment_check_export(PG_FUNCTION_ARGS)
{
	governance_check_export(PG_ARGISNULL(0) ? "a customer-level list" : text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

List *
governance_masked_columns(int32 subject_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	int			spi_nest;
	List	   *result = NIL;
	MemoryContext callercxt = CurrentMemoryContext;
	uint64		i;

	if (superuser() || has_builtin_role("segment_exporter") || !governance_installed())
		return NIL;
	args[0] = Int32GetDatum(subject_id);
	spi_nest = segment_spi_connect();
	segment_saved_plan(&plan,
					   "SELECT column_name::text FROM segment.column_sensitivity"
					   " WHERE subject_id = $1 AND sensitivity = 'pii'",
					   1, argtypes);
	if (SPI_execute_plan(plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment.column_sensitivity");
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *c = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext old = MemoryContextSwitchTo(callercxt);

		result = lappend(result, pstrdup(c));
		MemoryContextSwitchTo(old);
	}
	segment_spi_finish(spi_nest);
	return result;
}

bool
governance_column_listed(List *columns, const char *column)
{
	ListCell   *lc;

	foreach(lc, columns)
	{
		if (strcmp((const char *) lfirst(lc), column) == 0)
			return true;
	}
	return false;
}

char *
governance_mask_value(const char *value)
{
	return TextDatumGetCString(DirectFunctionCall1(segment_mask, CStringGetTextDatum(value)));
}

/*
 * segment_internal._mask_pii(subject_id int, column_name name, value text) -> text:
 * the value, masked (segment.mask) when the column is personal and the
 * current user lacks segment_exporter; for templates rendered by render().
 */
PG_FUNCTION_INFO_V1(segment_mask_pii);
Datum
segment_mask_pii(PG_FUNCTION_ARGS)
{
	List	   *masked;

	if (PG_ARGISNULL(2))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_DATUM(PG_GETARG_DATUM(2));
	masked = governance_masked_columns(PG_GETARG_INT32(0));
	if (governance_column_listed(masked, NameStr(*PG_GETARG_NAME(1))))
		PG_RETURN_TEXT_P(cstring_to_text(governance_mask_value(TextDatumGetCString(PG_GETARG_DATUM(2)))));
	PG_RETURN_DATUM(PG_GETARG_DATUM(2));
}
