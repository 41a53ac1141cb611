/*
 * catalog.h
 *     The catalog module: the only C code that reads segment's definition
 *     tables (tags, schemes, scorecards, subjects) and reads or writes its
 *     state tables (tag_state, bucket_state, score_state, subject_state,
 *     the per-date history and snapshot sets, keymap, run), the way
 *     pg_cron's job_metadata.c owns its tables.
 *
 * Files of the module and their prefixes:
 *     catalog.c          definitions of a subject (SubjectDefs)     catalog_
 *     catalog_state.c    the state a refresh reads and writes       catalog_
 *     catalog_read.c     reads for one customer, explain, snapshots catalog_
 *     catalog_subject.c  subjects, keys <-> member ids, the SPI
 *                        helpers every catalog query uses (subject.h)
 *                                                                   subject_, segment_
 *     catalog_names.c    name lookups of audiences (catalog_names.h)
 *     state_read.c       direct index reads of state (state_read.h) state_read_
 *
 * Every function here expects an open SPI connection (the callers connect:
 * segment_spi_connect) unless it says otherwise. SQL strings are single
 * literals, one per query.
 */
#ifndef SEGMENT_CATALOG_H
#define SEGMENT_CATALOG_H

#include "postgres.h"

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/date.h"
#include "utils/snapshot.h"

#include "memberset.h"
#include "numeric_scaled.h"

/* ---------- definitions (catalog.c) ---------- */

/* An active rule tag. */
typedef struct TagDef
{
	int32		tag_id;
	char	   *name;
	char	   *rule;
	Oid			owner;			/* the role the rule runs as (rule_owner.h) */
} TagDef;

/*
 * A scheme (ordered buckets: a row goes to the first whose rule is true) or
 * a scorecard (base + the points of every item whose rule is true). Both
 * are groups of rules run as the group's owner; one loader reads both.
 */
typedef struct RuleGroupDef
{
	int32		id;				/* scheme_id or scorecard_id */
	char	   *name;
	Oid			owner;
	ScoreValue	base;			/* scorecards */
	int			nitems;
	char	  **item_names;		/* bucket names; "item" for scorecard items */
	char	  **rules;
	ScoreValue *points;			/* scorecards */
	char	   *error;			/* scorecards: base or points out of range (not evaluated) */
} RuleGroupDef;

/* What a subject's refresh or live maintenance evaluates, built once. */
typedef struct SubjectDefs
{
	int32		subject_id;
	char	   *name;
	Oid			relid;
	AttrNumber	keyattno;
	Oid			keytype;
	int			ntags;
	TagDef	   *tags;			/* by name */
	int			nschemes;
	RuleGroupDef *schemes;		/* by name */
	int			nscorecards;
	RuleGroupDef *scorecards;	/* by name */
} SubjectDefs;

/*
 * Load the active tags, schemes and scorecards of defs->subject_id into
 * defs, allocated in cxt (under the active snapshot). A scorecard whose base
 * or points have no exact form gets its error set and a WARNING.
 */
extern void catalog_load_rules(SubjectDefs *defs, MemoryContext cxt);

/* The rows of segment.live_subject, as the live trigger needs them. */
typedef struct LiveSubjectRow
{
	bool		found;			/* live maintenance is on for the subject */
	char	   *name;
	char	   *key_column;
	Oid			relid;
	int			ntriggers;		/* the triggers enable_live recorded */
	char	  **triggers;
	bool		refreshed;		/* has state: as_of is set */
	DateADT		as_of;
	bool		entry_rules;	/* the subject has entry rules */
} LiveSubjectRow;

/* Read with snap; allocated in CurrentMemoryContext. */
extern void catalog_live_subject(int32 subject_id, Snapshot snap, LiveSubjectRow *out);

/* ---------- state (catalog_state.c) ---------- */

/* Date of the subject's state as snap sees it; false when never refreshed. */
extern bool catalog_state_as_of(int32 subject_id, Snapshot snap, DateADT *as_of);

/* The key map of a text-keyed subject: fn(arg, key, member_id) per entry. */
typedef void (*CatalogKeyFn) (void *arg, const char *key, int64 member_id);
extern void catalog_keymap_read(int32 subject_id, CatalogKeyFn fn, void *arg);
/* Add n keys (text datums) with their member ids (int8 datums). */
extern void catalog_keymap_add(int32 subject_id, int n, Datum *keys, Datum *ids);

/* segment.run: a row when the writing starts, completed at the end. */
extern int64 catalog_run_start(int32 subject_id, DateADT as_of, TimestampTz started,
							   bool has_snapshot_date, DateADT snapshot_date, List *read_relids);
extern void catalog_run_finish(int64 run_id, int64 rows, int32 tags, const char *errors);

/* segment.run_step: one after-refresh step of a run (refresh_pipeline.c);
 * rows and what are logged when counted, error when not NULL. */
extern void catalog_run_step(int64 run_id, int32 step_no, const char *step,
							 TimestampTz started, TimestampTz finished, bool counted,
							 int64 rows, const char *what, const char *error);

/* The stored sets a refresh compares with; NULL when there is none. */
extern RoaringOwned *catalog_tag_set(int32 tag_id);
extern RoaringOwned *catalog_tag_snapshot_before(int32 tag_id, DateADT snapshot_date);
extern RoaringOwned *catalog_bucket_set(int32 scheme_id, Datum bucket);

/* One set written, with its counts (members: a segment.memberset datum). */
typedef struct CatalogSetRow
{
	Datum		members;
	int64		count;
	int64		entered;		/* tags */
	int64		exited;			/* tags */
	DateADT		as_of;
	int64		run_id;
} CatalogSetRow;

extern void catalog_save_tag_state(int32 tag_id, const CatalogSetRow *row);
extern void catalog_save_tag_snapshot(int32 tag_id, DateADT snapshot_date, const CatalogSetRow *row);
extern void catalog_save_subject_state(int32 subject_id, const CatalogSetRow *row);
extern void catalog_save_subject_snapshot(int32 subject_id, DateADT snapshot_date,
										  const CatalogSetRow *row);
/* bucket_state and bucket_history */
extern void catalog_save_bucket(int32 scheme_id, Datum bucket, const CatalogSetRow *row);
/* buckets the run did not write (removed by alter_scheme) leave the current state */
extern void catalog_prune_buckets(int32 scheme_id, int64 run_id);
extern void catalog_clear_scores(int32 scorecard_id);
extern void catalog_save_score(int32 scorecard_id, Datum score, const CatalogSetRow *row);
/* the universe of the date and the day's sizes (universe_history, size_snapshot) */
extern void catalog_save_history(int32 subject_id, DateADT as_of, int64 run_id);
/* keep `retention` snapshot dates and the current state's */
extern void catalog_prune_snapshots(int32 subject_id, int32 retention);

/*
 * The stored sets of a subject as snap sees them, for live maintenance:
 * the universe, and the sets of the given tags, schemes and scorecards
 * (int4[] datums of their ids).
 */
typedef enum CatalogSetKind
{
	CATALOG_SET_UNIVERSE,
	CATALOG_SET_TAG,
	CATALOG_SET_BUCKET,
	CATALOG_SET_SCORE
} CatalogSetKind;

typedef struct CatalogStoredSet
{
	CatalogSetKind kind;
	int32		id;				/* tag, scheme or scorecard id */
	char	   *bucket;			/* CATALOG_SET_BUCKET */
	Datum		score;			/* CATALOG_SET_SCORE: numeric */
	RoaringOwned *set;
} CatalogStoredSet;

/* fn(arg, set) per stored set; fn owns set->set. */
typedef void (*CatalogSetFn) (void *arg, CatalogStoredSet *set);
extern void catalog_read_state_sets(int32 subject_id, Datum tag_ids, Datum scheme_ids,
									Datum scorecard_ids, Snapshot snap, CatalogSetFn fn, void *arg);

/* ---------- reads for the API (catalog_read.c) ---------- */

/* The names of every registered subject, by name (char *). */
extern List *catalog_subject_names(void);

/* Whether a segment of this name exists (of any subject). Connects to SPI itself. */
extern bool catalog_segment_exists(const char *name);

/* A tag by name and whether one customer has it (has_tag). */
typedef struct CatalogTagMember
{
	bool		found;
	int32		subject_id;
	char	   *subject;		/* its subject's name */
	bool		manual;			/* rule is null */
	bool		active;
	bool		refreshed;		/* has a tag_state row */
	bool		member;			/* stored set (with the live overlay) or unexpired manual row */
} CatalogTagMember;

/*
 * has_tag's lookup: known false means the key has no member id (only the
 * tag's row is read then). Connects to SPI itself; out in the caller's context.
 */
extern void catalog_tag_member(const char *tag, bool known, uint32 member_id,
							   CatalogTagMember *out);

/* The names of the active tags one customer has, as text[]. Connects to SPI itself. */
extern Datum catalog_member_tags(int32 subject_id, uint32 member_id);

/*
 * The retained snapshot dates of a snapshot subject: whether d is one, and
 * otherwise the retained ones as text (NULL when none). Connects itself.
 */
extern bool catalog_snapshot_retained(int32 subject_id, DateADT d, char **dates);

/* For explain (SPI connected): */
extern bool catalog_tag_exists(int32 subject_id, const char *name);
/* A scheme or a scorecard of the subject by name: *kind "scheme" or "scorecard". */
extern bool catalog_find_group(int32 subject_id, const char *name, const char **kind, int32 *id);

typedef struct CatalogTagExplain
{
	char	   *rule;			/* NULL: a manual tag */
	bool		active;
	bool		refreshed;		/* has a tag_state row */
	bool		member;			/* in the stored set (with the live overlay) */
	bool		has_as_of;
	DateADT		as_of;			/* of the stored set */
	char	   *manual_row;		/* the customer's manual_tag row as JSON text, or NULL */
	bool		manual_member;	/* has an unexpired manual row */
	Oid			owner;
} CatalogTagExplain;

/* false when the subject has no tag of this name */
extern bool catalog_tag_explain(int32 subject_id, const char *tag, int64 member_id,
								CatalogTagExplain *out);

typedef struct CatalogRuleItem
{
	char	   *name;			/* buckets */
	char	   *rule;
	char	   *points;			/* scorecard items: numeric text */
	bool		stored;			/* buckets: the customer is in its stored set */
	Oid			owner;
} CatalogRuleItem;

/* The buckets of a scheme in order, with the customer's stored bucket flagged. */
extern int	catalog_scheme_explain(int32 scheme_id, int64 member_id, CatalogRuleItem **items);

/*
 * A scorecard's base, the customer's stored score (NULL when none) and its
 * items in order.
 */
extern int	catalog_scorecard_explain(int32 scorecard_id, int64 member_id, char **base,
									  char **stored_score, CatalogRuleItem **items);

/* The stored rule, its owner and the relation it is written against. */
typedef struct CatalogStoredRule
{
	char	   *rule;
	char	   *what;
	Oid			owner;
	Oid			relid;
} CatalogStoredRule;

/*
 * The stored goal (kind 'goal', the one kind; event conditions: catalog_event_rule)
 * of an opportunity rule over relid; false when there is none. Connects to SPI itself.
 */
extern bool catalog_stored_rule(const char *kind, int32 rule_id, Oid relid, CatalogStoredRule *sr);

/* An event rule's attachment to a table, as its trigger reads it. */
typedef struct CatalogEventRule
{
	char	   *condition;
	char	   *what;			/* 'event rule "x" on schema.table' */
	Oid			owner;
	char	   *key_column;
	char	   *trigger_name;
	bool		active;			/* the opportunity rule is active */
	/* what the one-customer fast path (event_fast.c) decides with: */
	int32		subject_id;
	char	   *subject_name;
	Oid			relation;		/* the subject's table */
	char	   *subject_key;	/* its key column */
	Oid			subject_key_type;
	char	   *org_column;		/* NULL: none */
	bool		snapshot;		/* a daily snapshot subject */
	char	   *audience;
	char	   *assignment;		/* owner, org, pool */
	Datum		priority;		/* numeric */
	bool		scored;			/* priority_scorecard is set */
	char	   *template_sql;	/* NULL: no message */
	Datum		holdout_pct;	/* numeric */
	int32		cooldown_days;
	int32		valid_days;
	int32		version;
	bool		capped;			/* the subject has a contact policy: */
	int32		max_contacts;
	int32		period_days;
	Datum		subject_rules;	/* int4[]: every rule of the subject */
	/*
	 * The same for two reads of one cached read (catalog_event.c): nothing of
	 * the above changed in between, nor was the event table or the subject's
	 * table renamed or altered.
	 */
	uint64		stamp;
} CatalogEventRule;

/*
 * The attachment of opportunity rule rule_id to relid (segment.event_rule
 * and the rule's active flag), with the rule, its subject and the subject's
 * contact policy, into the current memory context; false when there is
 * none. Called by every event statement: kept per backend until one of
 * those rows, the event table or the subject's table changes
 * (catalog_event.c); the latest committed attachment, as PostgreSQL reads
 * its own catalog, not the one of the statement's snapshot.
 */
extern bool catalog_event_rule(int32 rule_id, Oid relid, CatalogEventRule *er);

#endif							/* SEGMENT_CATALOG_H */
