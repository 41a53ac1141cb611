/*
 * audience.h
 *     The audience language, public API: names (tags, named segments, scheme
 *     buckets and scorecard bands) combined with and / or / not and
 *     parentheses, evaluated on member sets. See docs/audiences.md for the
 *     grammar.
 *
 *     audience := or_expr
 *     or_expr  := and_expr ( OR and_expr )*
 *     and_expr := not_expr ( AND not_expr )*
 *     not_expr := NOT not_expr | '(' or_expr ')' | name
 *     name     := part [ '.' part ]        -- scheme.bucket, scorecard.band
 *     part     := identifier | "quoted name"
 *
 * A plain name is a tag or a segment of the subject; a segment stands for
 * its own audience, expanded recursively (cycles are errors, 42P17). A
 * dotted name is a bucket of a scheme (segment.bucket_state) or a band of a
 * scorecard (the union of segment.score_state sets whose score lies in the
 * band).
 *
 * Errors carry the position in the audience text (shown by psql as a caret
 * under a QUERY line): 42601 syntax errors, 42704 unknown names, 42P17
 * cycles of segments, 55000 for sets that are not available (not
 * refreshed, inactive). A name reached through a segment is reported at the
 * position of that segment's name, with a CONTEXT line naming the segments.
 *
 * Three files implement it, one concern each (the way contrib/intarray
 * keeps its query language in _int_bool.c apart from _int_op.c), sharing
 * the private header audience_int.h:
 *     audience_parse.c  text -> tree and its distinct names (pure: no SPI,
 *                       no catalog)
 *     audience_names.c  what the names denote (catalog_names.h for the
 *                       catalog SQL, state_read.h for direct reads),
 *                       checks, cycles of segments
 *     audience_eval.c   a resolved tree -> a member set or a count
 * Every exported symbol of the three is prefixed audience_.
 */
#ifndef SEGMENT_AUDIENCE_H
#define SEGMENT_AUDIENCE_H

#include "postgres.h"

#include "utils/date.h"

#include "nodes/pg_list.h"

#include "catalog_names.h"
#include "memberset.h"
#include "subject.h"

/* A node of a parsed audience (audience_int.h). */
typedef struct AudienceNode AudienceNode;

/*
 * A distinct name of an audience (and of the segments it reaches), and what
 * it denotes. Each group of fields is written by one file.
 */
typedef struct AudienceRef
{
	/* audience_parse.c: the name as written, and where to report it */
	char	   *qualifier;		/* as written (NULL if none) */
	char	   *name;
	/* the top-level text and byte offset of the first name through which it
	 * is reached (itself, or a segment using it) */
	int			top;
	int			location;
	char	   *via;			/* NULL, or the segments it is reached through */

	/* audience_names.c: what it denotes (catalog_names.h, state_read.h) */
	AudienceNameKind kind;
	bool		looked_up;
	bool		pending;		/* in the lookup round under way */
	int32		id;				/* tag_id, segment_id, scheme_id, scorecard_id */
	int32		subject_id;
	char	   *subject_name;
	bool		missing;		/* BUCKET/BAND: the scheme/scorecard has no such member */
	bool		manual;			/* TAG: manual tag */
	bool		active;
	bool		refreshed;
	/* segments: the audience, parsed */
	char	   *audience;
	AudienceNode *root;
	int			visit;			/* cycle search: 0 new, 1 on the path, 2 done */
	bool		listed;			/* audience_expand has listed it */

	/*
	 * audience_eval.c (the sets loaded by audience_names.c): the member set
	 * (bm) and how many evaluation steps read it. bm is read-only: it is the
	 * cache's (memberset_cache.h), or set's bitmap when set is non-NULL
	 * (owned by the evaluation's memory context).
	 */
	const roaring_bitmap_t *bm;
	RoaringOwned *set;
	RoaringOwned *manual_set;	/* TAG: unexpired manual members while loading */
	int			uses;
	bool		counted;		/* count_uses has walked root */
	bool		computed;		/* evaluate has computed set from root */
} AudienceRef;

/* One evaluation: the parsed texts, their names, and the universe. */
typedef struct Audience
{
	const char *text;			/* the (first) top-level text */
	AudienceNode *root;			/* its tree */
	int			ntops;			/* top-level audiences (several for overlap) */
	const char **tops;
	AudienceNode **roots;
	int			nrefs;
	AudienceRef *refs;			/* distinct names, in order of first use */
	/* parsing context: where names being parsed are reported */
	int			cur_top;
	int			cur_location;	/* -1: the name's own location */
	char	   *cur_via;
	/* error context: the text errpositions refer to */
	const char *err_text;
	const char *err_segment;	/* the text is this segment's audience */
	const char *err_via;
	int			err_top;
	/* the subject's segments not named yet, fetched with the first round
	 * that meets a segment */
	bool		segments_fetched;
	int			nknown;
	CatalogSegment *known;
	/* the universe, for "not" */
	bool		needs_universe;
	bool		universe_fetched;
	int			not_top;
	int			not_location;	/* first "not" needing the universe, or -1 */
	int			universe_uses;
	const roaring_bitmap_t *universe_bm;	/* read-only, as AudienceRef.bm */
	RoaringOwned *universe;
} Audience;

/* ---- audience_parse.c ---- */

/* Parse (syntax only). ERROR 42601 with position on a syntax error. */
extern Audience *audience_parse(const char *text);

/* The name quoted for an audience when it needs quotes (palloc'd). */
extern char *audience_quote_name(const char *name);

/*
 * Byte offset -> the 1-based character position used by errposition(); use
 * with ereport(..., errposition(...)) inside the audience error context.
 */
extern int	audience_char_position(const char *text, int byte_offset);

/* ---- audience_eval.c ---- */

/*
 * Parse, resolve the names against the subject (expanding segments), load
 * every referenced set, and combine. Catalog queries: none for an audience
 * of tags read directly (state_read.h), else one for an audience without
 * segments, two with (the first also fetches the subject's segment
 * definitions, the second the sets only segments name). The result is
 * owned by CurrentMemoryContext; the caller may modify it.
 */
extern RoaringOwned *audience_evaluate(const SubjectInfo *subject, const char *text);

/*
 * The number of members of the audience: as audience_evaluate, but the
 * last step only counts (CRoaring's *_cardinality), and sets are read in
 * place from the backend-local cache.
 */
extern uint64 audience_count(const SubjectInfo *subject, const char *text);

/*
 * The set of an audience without a copy: read-only, valid until the next
 * audience is evaluated in this backend (it may be a set of the cache).
 * *owned is non-NULL when the set is a new one the caller may free early.
 */
extern const roaring_bitmap_t *audience_evaluate_view(const SubjectInfo *subject,
													  const char *text,
													  RoaringOwned **owned);

/*
 * The same for n audiences at once (sets shared by several are loaded
 * once): results[i] is the set of texts[i].
 */
extern void audience_evaluate_many(const SubjectInfo *subject, int n,
								   const char **texts, RoaringOwned **results);

/*
 * The members of `members` that are in the audience: the same names are
 * looked up and the same errors raised as by audience_evaluate, but every
 * step is restricted to `members`, so a few customers (an event) cost a few
 * container reads per set instead of set algebra over every customer. The
 * result is new, owned by CurrentMemoryContext.
 */
extern RoaringOwned *audience_evaluate_within(const SubjectInfo *subject, const char *text,
											  const roaring_bitmap_t *members);

/* ---- audience_names.c ---- */

/*
 * Definition-time check of a segment's audience: syntax, names (tags and
 * segments of this subject, scheme buckets, scorecard bands), and cycles,
 * with segment `defining` standing for `text` (NULL when no segment is
 * being defined). Sets are not loaded: names that are inactive or not
 * refreshed yet are accepted.
 */
extern void audience_validate(const SubjectInfo *subject, const char *text,
							  const char *defining);

/*
 * Resolve an audience (no sets loaded) and return its distinct names as
 * AudienceRef pointers in order of appearance, each segment followed by the
 * names of its audience (expanded in place). For explain.
 */
extern List *audience_expand(const SubjectInfo *subject, const char *text);

/*
 * Snapshot mode: while on, audiences read the member sets retained for
 * snapshot date d (segment.tag_snapshot, segment.subject_snapshot) instead
 * of the current state. The caller turns it off again (also on error).
 */
extern void audience_set_snapshot(bool on, DateADT d);

#endif							/* SEGMENT_AUDIENCE_H */
