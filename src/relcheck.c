/*
 * relcheck.c
 *     Argument checks in front of the SQL-callable C functions that take a
 *     relation (docs/security.md): NULL arguments, OIDs of no relation, and
 *     relations the caller may not read are refused with a SQLSTATE before
 *     any code opens the relation.
 *
 * segment_internal._rule_columns(relation regclass, rule text, what text) is declared
 * over segment_rule_columns_checked (rule_parse.c), which checks with
 * relcheck_readable and then hands the same call to segment_rule_columns.
 * It cannot be STRICT: `what` is NULL when a rule is validated outside a
 * definition.
 *
 * Why the SELECT check: rule analysis reports column names and types in its
 * errors, so without it a role could learn the shape of a table it may not
 * read. Any column's SELECT is enough here; which columns a rule may read
 * is checked where rules are defined.
 */
#include "postgres.h"

#include "access/relation.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "relcheck.h"

/*
 * Lock a relation given by OID in AccessShareLock for the rest of the
 * transaction, after checking that it exists (42P01) and that the current
 * user may read it (42501). `what` names the argument in messages.
 */
void
relcheck_readable(Oid relid, const char *what)
{
	Relation	rel;
	AclResult	acl;

	/* try_relation_open: no "could not open relation" XX000 for a bad OID */
	rel = OidIsValid(relid) ? try_relation_open(relid, AccessShareLock) : NULL;
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errdetail("The %s argument names no relation.", what)));
	acl = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, GetUserId(), ACL_SELECT, ACLMASK_ANY) != ACLCHECK_OK)
	{
		char	   *name = pstrdup(RelationGetRelationName(rel));

		relation_close(rel, AccessShareLock);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", name)));
	}
	/* keep the lock: the caller opens it next and it must still be there */
	relation_close(rel, NoLock);
}
