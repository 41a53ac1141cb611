/*
 * rule_owner.c
 *     Who a rule runs as and under which search_path: the pinned path, the
 *     owner's column rights, entering and leaving the owner's identity.
 *
 * Refresh, live maintenance and explain evaluate rules through the one-pass
 * scan (refresh_scan.c), which switches to each unit's owner itself; a
 * stored goal or event condition is evaluated as its owner by
 * rule_matches.c.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "access/sysattr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "rule.h"
#include "rule_owner.h"

void
rule_pin_search_path(void)
{
	(void) set_config_option("search_path", RULE_PINNED_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

int
rule_pin_search_path_begin(void)
{
	int			nestlevel;

	if (strcmp(namespace_search_path, RULE_PINNED_SEARCH_PATH) == 0)
		return -1;
	nestlevel = NewGUCNestLevel();
	rule_pin_search_path();
	return nestlevel;
}

void
rule_pin_search_path_end(int nestlevel)
{
	if (nestlevel >= 0)
		AtEOXact_GUC(true, nestlevel);
}

const char *
rule_owner_sql(const char *table, const char *alias)
{
	Oid			nsp = get_namespace_oid("segment", false);
	Oid			relid = get_relname_relid(table, nsp);

	if (OidIsValid(relid) && get_attnum(relid, "owner") != InvalidAttrNumber)
		return psprintf("%s.owner::oid", alias);
	return "0::oid";
}

Bitmapset *
rule_columns_read(Node *expr)
{
	Bitmapset  *raw = NULL;
	Bitmapset  *cols = NULL;
	int			x = -1;

	pull_varattnos(expr, 1, &raw);
	while ((x = bms_next_member(raw, x)) >= 0)
	{
		AttrNumber	attno = x + FirstLowInvalidHeapAttributeNumber;

		if (attno > 0)
			cols = bms_add_member(cols, attno);
	}
	return cols;
}

void
rule_owner_check(Oid owner, Relation rel, Bitmapset *attnos, const char *what, bool definer)
{
	Oid			relid = RelationGetRelid(rel);
	int			attno = -1;

	if (!OidIsValid(owner))
		return;					/* a 0.1.0 catalog: see rule_owner_sql */
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the owner of %s (role with OID %u) no longer exists", what, owner),
				 errdetail("A rule is evaluated with the rights of the role that wrote it."),
				 errhint("Save the rule again (alter or re-create it) as a role that may read its columns.")));
	/* table-level SELECT covers every column */
	if (pg_class_aclcheck(relid, owner, ACL_SELECT) == ACLCHECK_OK)
		return;
	while ((attno = bms_next_member(attnos, attno)) >= 0)
	{
		const char *col;

		if (pg_attribute_aclcheck(relid, attno, owner, ACL_SELECT) == ACLCHECK_OK)
			continue;
		col = NameStr(TupleDescAttr(RelationGetDescr(rel), attno - 1)->attname);
		if (definer)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for column \"%s\" of table %s, read by the rule of %s",
							col, RelationGetRelationName(rel), what),
					 errdetail("A rule may read only columns its author may read: its members reveal their values."),
					 errhint("Grant SELECT on the column (or the table) to role \"%s\".",
							 GetUserNameFromId(owner, false))));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\", owner of %s, may no longer read column \"%s\" of table %s",
						GetUserNameFromId(owner, false), what, col, RelationGetRelationName(rel)),
				 errdetail("A rule is evaluated with the rights of the role that wrote it."),
				 errhint("Grant SELECT on the column back, or save the rule again as a role that may read it.")));
	}
}
