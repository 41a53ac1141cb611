/*
 * live_defs.h
 *     The per-backend cache of live maintenance's definitions (live_defs.c):
 *     a subject's rules as read from the catalog, planned and compiled, and
 *     the columns each unit reads.
 */
#ifndef SEGMENT_LIVE_DEFS_H
#define SEGMENT_LIVE_DEFS_H

#include "postgres.h"

#include "commands/trigger.h"
#include "nodes/bitmapset.h"
#include "utils/date.h"
#include "utils/rel.h"
#include "utils/snapshot.h"

#include "catalog.h"
#include "refresh_scan.h"

/*
 * The subject's rules, analysed, planned for the as_of of its last refresh
 * and compiled into programs, kept per backend across statements and
 * transactions (a catalog query, parsing, planning and compiling 60 rules
 * per statement cost more than a one-row UPDATE itself). An entry is valid
 * while live_generation has not moved since it was built. It moves on:
 *   - a relcache invalidation of segment.live_subject, which the statement
 *     triggers of part 89 send when a row of a table the definitions come
 *     from changes (subject, subject_state, tag, scheme, scheme_bucket,
 *     scorecard, scorecard_item, entry_rule, live_subject): a definition
 *     change, enable/disable, a refresh (its date), in any backend, at its
 *     commit, and at once in the backend that made it;
 *   - a relcache invalidation of a subject table (ALTER TABLE, GRANT/REVOKE
 *     on its columns) or of every relation;
 *   - a change of a role, a role membership, a function or a schema: the
 *     owners' rights the programs were checked and compiled with.
 * A writer reads invalidations once it holds its share of the live lock, so
 * a refresh that moved the date (it holds the lock exclusively to its
 * commit) is always seen.
 */
typedef struct LiveDefs
{
	int32		subject_id;
	uint64		generation;		/* live_generation when the build began */
	MemoryContext cxt;
	Oid			relid;			/* the subject's relation */
	int			ntriggers;		/* the triggers enable_live recorded */
	char	  **triggers;
	bool		refreshed;		/* false: no state yet, nothing to overlay */
	DateADT		as_of;
	bool		entry_rules;
	SubjectDefs *defs;			/* the rules (catalog.h) */
	ScanCore   *sc;				/* compiled programs */
	/*
	 * Per unit (tags, then schemes, then scorecards): the columns its rules
	 * read (attnos), or NULL when it may depend on more than those (a
	 * whole-row or system column, a function that is not a built-in
	 * immutable one, a domain): an UPDATE of other columns cannot change it.
	 */
	Bitmapset **unit_cols;
	/*
	 * The index live_defs_key_index finds (its first column the key), looked
	 * up on first use: an index created, dropped or made valid on the table
	 * sends the table's relcache invalidation, which makes the entry stale.
	 */
	/*
	 * The last UPDATE's set columns and what live_defs_affected and
	 * live_defs_columns made of them: an OLTP writer sets the same columns
	 * every time.
	 */
	Bitmapset  *last_updated;
	bool	   *last_affected;
	int			last_naffected;
	bool		last_columns_known;
	Bitmapset  *last_columns;
	bool		key_index_known;
	Oid			key_index;		/* InvalidOid: none */
	RegProcedure key_eqproc;	/* the key's equality function for it */
	struct LiveDefs *next;
} LiveDefs;

/*
 * The valid entry of the subject, built when missing or stale (SPI
 * connected; read as of snap, with search_path pinned for the build).
 */
extern LiveDefs *live_defs_get(Relation rel, int32 subject_id, Snapshot snap);

/* Every unit evaluated again (but scorecards whose base or points are out of range). */
extern void live_defs_reset_skips(LiveDefs *d);

/*
 * For an UPDATE: which units it may have changed (true), by the columns it
 * set; NULL when any may have. *naffected: how many may have.
 */
extern bool *live_defs_affected(LiveDefs *d, TriggerData *td, int *naffected);

/*
 * The columns the units in affected read (NULL: every unit), with the key;
 * NULL when one of them may read more than its columns (unit_cols).
 */
extern Bitmapset *live_defs_columns(LiveDefs *d, const bool *affected);

/*
 * An index of rel whose first column is the key (a valid btree, not
 * partial, of the key's type), cached in d: its OID and the key's equality
 * function, or InvalidOid.
 */
extern Oid	live_defs_key_index(LiveDefs *d, Relation rel, RegProcedure *eqproc);

/*
 * The owner of the trigger function fn_oid: the role live maintenance reads
 * and writes segment's tables as (docs/security.md).
 */
extern Oid	live_defs_function_owner(Oid fn_oid);

#endif							/* SEGMENT_LIVE_DEFS_H */
