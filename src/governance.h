/*
 * governance.h
 *     Who may see what (docs/security.md): whether governance is
 *     installed in this database, the current user's scope (manager id, org
 *     subtree, everything), export control and masking for the C readers.
 */
#ifndef SEGMENT_GOVERNANCE_H
#define SEGMENT_GOVERNANCE_H

#include "postgres.h"

#include "nodes/pg_list.h"

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
 * Whether the current user may read one customer of a subject (tags,
 * has_tag, explain, bucket_of, score, set_tag, render): yes when not
 * governed or the user sees all; else per the scope (segment_manager: the
 * customer's owner column is the user's manager id; segment_branch_head:
 * its org column is in the user's subtree). Raises 42501 when not.
 */
extern void governance_check_customer(int32 subject_id, const char *subject, const char *key);

/* Names (char *) of the subject's pii columns to mask for the current user; NIL: none. */
extern List *governance_masked_columns(int32 subject_id);
extern bool governance_column_listed(List *columns, const char *column);
/* segment.mask() of a value's text */
extern char *governance_mask_value(const char *value);

#endif
