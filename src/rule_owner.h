/*
 * rule_owner.h
 *     Who a rule runs as, and under which search_path.
 *
 * Every rule (tag, scheme bucket, scorecard item, opportunity goal, event
 * condition) records the role that wrote it. It is evaluated as that role,
 * with SECURITY_RESTRICTED_OPERATION (as PostgreSQL evaluates index
 * expressions since CVE-2022-1552), never with the rights of whoever
 * happens to run the refresh, fire the trigger or call explain; and it is
 * analysed and run under search_path = pg_catalog, pg_temp, so that what
 * other roles create in writable schemas cannot change what it means.
 */
#ifndef SEGMENT_RULE_OWNER_H
#define SEGMENT_RULE_OWNER_H

#include "postgres.h"

#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "utils/rel.h"

/* The search_path rules are analysed and evaluated under. */
#define RULE_PINNED_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * Set search_path to the pinned one in the caller's GUC nest level (the
 * caller has called NewGUCNestLevel and will call AtEOXact_GUC).
 */
extern void rule_pin_search_path(void);

/*
 * The same in a GUC nest level of its own, opened only when search_path is
 * not the pinned one already (-1 then): for C code that is not a function
 * with a SET clause and reaches name lookups (SPI, parsing) on some paths
 * only. rule_pin_search_path_end(level) closes it; an error closes it too
 * (the (sub)transaction abort).
 */
extern int	rule_pin_search_path_begin(void);
extern void rule_pin_search_path_end(int nestlevel);

/* The user id to restore after a rule ran as its owner. */
typedef struct RuleOwnerSave
{
	Oid			userid;
	int			sec_context;
} RuleOwnerSave;

/*
 * Become the rule's owner, restricted: the rule's functions cannot SET ROLE,
 * change session state or create objects behind our back. Restored by
 * rule_owner_leave, or by (sub)transaction abort on error.
 */
static inline void
rule_owner_enter(Oid owner, RuleOwnerSave *save)
{
	GetUserIdAndSecContext(&save->userid, &save->sec_context);
	SetUserIdAndSecContext(OidIsValid(owner) ? owner : save->userid,
						   save->sec_context | SECURITY_RESTRICTED_OPERATION);
}

static inline void
rule_owner_leave(const RuleOwnerSave *save)
{
	SetUserIdAndSecContext(save->userid, save->sec_context);
}

/*
 * Refuse (42704) if the role no longer exists, or (42501) if it may not read
 * every column in attnos (attribute numbers of rel, plain, >= 1). `what`
 * names the rule's object; `definer` selects the messages for the author at
 * definition time rather than for a stored owner.
 */
extern void rule_owner_check(Oid owner, Relation rel, Bitmapset *attnos,
							 const char *what, bool definer);

/*
 * "<alias>.owner::oid", or "0::oid" while the catalog is still 0.1.0's (the
 * new library is installed, ALTER EXTENSION UPDATE has not run yet): such
 * rules run as the caller, restricted, until the update records owners.
 */
extern const char *rule_owner_sql(const char *table, const char *alias);

/* The user columns an analysed or planned rule reads (varno 1). */
extern Bitmapset *rule_columns_read(Node *expr);

#endif							/* SEGMENT_RULE_OWNER_H */
