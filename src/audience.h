/*
 * audience.h
 *     The audience language: names (tags now; segments and scheme buckets
 *     later) combined with and / or / not and parentheses, evaluated on
 *     member sets. See docs/audiences.md for the grammar.
 *
 *     audience := or_expr
 *     or_expr  := and_expr ( OR and_expr )*
 *     and_expr := not_expr ( AND not_expr )*
 *     not_expr := NOT not_expr | '(' or_expr ')' | name
 *     name     := part [ '.' part ]        -- scheme.bucket
 *     part     := identifier | "quoted name"
 *
 * Errors carry the position in the audience text (shown by psql as a caret
 * under a QUERY line): 42601 syntax errors, 42704 unknown names, 55000 for
 * sets that are not available (tag not refreshed, tag inactive).
 */
#ifndef SEGMENT_AUDIENCE_H
#define SEGMENT_AUDIENCE_H

#include "postgres.h"

#include "memberset.h"
#include "subject.h"

typedef enum AudienceNodeKind
{
	AUD_NAME,
	AUD_AND,
	AUD_OR,
	AUD_NOT
} AudienceNodeKind;

typedef struct AudienceNode
{
	AudienceNodeKind kind;
	int			location;		/* byte offset of the node's first token */
	struct AudienceNode *left;	/* AND/OR: left operand; NOT: operand */
	struct AudienceNode *right; /* AND/OR: right operand */
	char	   *qualifier;		/* NAME: "scheme" of scheme.bucket, else NULL */
	char	   *name;			/* NAME: the name, quotes removed */
	int			ref;			/* NAME: index into Audience.refs */
} AudienceNode;

/* What a distinct name denotes once resolved. */
typedef enum AudienceRefKind
{
	AUDREF_UNRESOLVED,
	AUDREF_TAG
	/* later: AUDREF_SEGMENT, AUDREF_BUCKET */
} AudienceRefKind;

typedef struct AudienceRef
{
	AudienceRefKind kind;
	char	   *qualifier;		/* as written (NULL if none) */
	char	   *name;
	int			location;		/* first occurrence, byte offset */
	int32		id;				/* AUDREF_TAG: tag_id */
	RoaringOwned *set;			/* loaded member set */
	int			uses;			/* evaluation steps still to read set */
} AudienceRef;

typedef struct Audience
{
	const char *text;
	AudienceNode *root;
	int			nrefs;
	AudienceRef *refs;			/* distinct names, in order of first use */
	int			not_location;	/* first "not" needing the universe, or -1 */
	int			universe_uses;
	RoaringOwned *universe;
} Audience;

/* Parse (syntax only). ERROR 42601 with position on a syntax error. */
extern Audience *audience_parse(const char *text);

/*
 * Parse, resolve the names against the subject, load every referenced set
 * with one catalog query, and combine. The result is owned by
 * CurrentMemoryContext; the caller may modify it.
 */
extern RoaringOwned *audience_evaluate(const SubjectInfo *subject, const char *text);

/*
 * Byte offset -> the 1-based character position used by errposition(); use
 * with ereport(..., errposition(...)) inside the audience error context.
 */
extern int	audience_char_position(const char *text, int byte_offset);

#endif							/* SEGMENT_AUDIENCE_H */
