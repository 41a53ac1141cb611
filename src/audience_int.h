/*
 * audience_int.h
 *     Private to the audience language (audience_parse.c, audience_names.c,
 *     audience_eval.c; see audience.h for who owns what): the parse tree and
 *     the steps one file hands the next. Nothing else includes it.
 *
 * Every function here is exported for the other two files only and is
 * prefixed audience_ like the public ones.
 */
#ifndef SEGMENT_AUDIENCE_INT_H
#define SEGMENT_AUDIENCE_INT_H

#include "audience.h"

typedef enum AudienceNodeKind
{
	AUD_NODE_NAME,
	AUD_NODE_AND,
	AUD_NODE_OR,
	AUD_NODE_NOT
} AudienceNodeKind;

struct AudienceNode
{
	AudienceNodeKind kind;
	int			location;		/* byte offset of the node's first token */
	struct AudienceNode *left;	/* AND/OR: left operand; NOT: operand */
	struct AudienceNode *right; /* AND/OR: right operand */
	char	   *qualifier;		/* NAME: "scheme" of scheme.bucket, else NULL */
	char	   *name;			/* NAME: the name, quotes removed */
	int			ref;			/* NAME: index into Audience.refs */
};

/* errposition() at byte offset off of text (the error context's a->err_text). */
#define AUDPOS(text, off) errposition(audience_char_position((text), (off)))

/* ---- audience_parse.c ---- */

/* A new evaluation of the n top-level texts (nothing parsed yet). */
extern Audience *audience_new(int ntops, const char **texts);

/*
 * Push the error context that shows errors at their place in a->err_text
 * (internalerrposition/internalerrquery) with the segments in between; the
 * caller pops it (error_context_stack = errcb->previous).
 */
extern void audience_push_error_context(Audience *a, ErrorContextCallback *errcb);

/* Parse every top-level text into a->roots. */
extern void audience_parse_tops(Audience *a);

/*
 * Parse text into a tree, adding its names to a->refs (reported where
 * a->cur_* says); a->err_text must be text. Sets a->needs_universe when the
 * tree has a "not" that is not the right side of an "and" (mirrored by
 * audience_eval.c's evaluation).
 */
extern AudienceNode *audience_parse_text(Audience *a, const char *text);

/* Index of the distinct name (qualifier, name) in a->refs, or -1. */
extern int	audience_find_ref(Audience *a, const char *qualifier, const char *name);

/* The same, adding the name (reported at a->cur_* or location) if new. */
extern int	audience_add_ref(Audience *a, const char *qualifier, const char *name,
							 int location);

/* ---- audience_names.c ---- */

/*
 * Look every name up until the audiences of all the segments reached are
 * parsed. With load, sets come with the names (and the universe once some
 * tree needs it).
 */
extern void audience_resolve(Audience *a, const SubjectInfo *subject, bool load);

/*
 * Check every name, reporting the first wrong one in text order: unknown,
 * of another subject, a missing bucket/band; with load also inactive and
 * never refreshed ones.
 */
extern void audience_check_refs(Audience *a, const SubjectInfo *subject, bool load);

/*
 * Report a cycle of segments (42P17). defining: index of the segment whose
 * (new) audience is top 0, or -1.
 */
extern void audience_check_cycles(Audience *a, int defining);

#endif							/* SEGMENT_AUDIENCE_INT_H */
