/*
 * governance.h
 *     Who may see what (issue 12, docs/security.md): whether governance is
 *     installed in this database, the current user's scope (manager id, org
 *     subtree, everything), export control and masking for the C readers.
 */
#ifndef SEGMENT_GOVERNANCE_H
#define SEGMENT_GOVERNANCE_H

#include "postgres.h"

#include "subject.h"

/* segment.install_roles() has run in this database (segment.governance). */
extern bool governance_installed(void);

/*
 * Whether the current user may list customers (members, members_text,
 * keys): always when governance is not installed; else superusers and
 * members of segment_exporter. Raises 42501 with a hint otherwise, naming
 * what (e.g. "segment.members").
 */
extern void governance_check_export(const char *what);

/* Audits an export of row_count customers (no-op when not governed). */
extern void governance_audit_export(const char *what, const char *subject,
									const char *audience, int64 row_count);

/*
 * Whether the current user may read one customer of subject s (tags,
 * has_tag, explain): true when not governed; else per the scope. Raises
 * 42501 when not.
 */
extern void governance_check_customer(const SubjectInfo *s, const char *key);

/* Whether values of column `column` of subject s are to be masked for the current user. */
extern bool governance_mask_column(const SubjectInfo *s, const char *column);

#endif
