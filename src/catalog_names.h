/*
 * catalog_names.h
 *     The catalog module's reads for audience names: what the names of an
 *     audience denote in segment's definition tables (a tag, a segment, a
 *     bucket of a scheme, a band of a scorecard), with their member sets,
 *     the subject's other segments and its universe, in one SPI query; and
 *     the two lookups its error hints need. Part of the catalog module
 *     (src/catalog*.c): no other code of the audience language runs SQL.
 *
 * The query's rows are decoded by column name into CatalogName structs, and
 * its "kind" column holds a word ('tag', 'segment', ...) decoded into the
 * named enum AudienceNameKind: no positional columns, no kind numbers.
 *
 * Exported symbols are prefixed catalog_names_ (AudienceNameKind and its
 * AUD_NAME_* values are named for the audiences that use them).
 */
#ifndef SEGMENT_CATALOG_NAMES_H
#define SEGMENT_CATALOG_NAMES_H

#include "postgres.h"

#include "utils/date.h"

#include "memberset.h"

/* What a name of an audience denotes. */
typedef enum AudienceNameKind
{
	AUD_NAME_UNRESOLVED = 0,	/* not looked up yet, or not found */
	AUD_NAME_TAG,				/* tag (segment.tag) */
	AUD_NAME_SEGMENT,			/* named segment (segment.segment) */
	AUD_NAME_BUCKET,			/* scheme.bucket (segment.scheme_bucket) */
	AUD_NAME_BAND				/* scorecard.band (segment.scorecard_band) */
} AudienceNameKind;

/* What catalog_names_lookup() is asked. */
typedef struct CatalogNamesRequest
{
	int32		subject_id;		/* the subject the audience is read for */
	int			nnames;			/* plain names: tags and segments */
	const char **names;
	int			nqualified;		/* dotted names: scheme.bucket, scorecard.band */
	const char **qualifiers;
	const char **qnames;
	bool		load;			/* with the sets of the subject's active names */
	bool		want_universe;	/* with the subject's universe (for "not") */
	bool		want_segments;	/* with the subject's other segments when a
								 * name is one of its segments */
	bool		snapshot;		/* sets retained for snapshot_date instead of
								 * the current state */
	DateADT		snapshot_date;
} CatalogNamesRequest;

/* One row: a name and what it denotes (any subject's). */
typedef struct CatalogName
{
	AudienceNameKind kind;		/* never AUD_NAME_UNRESOLVED */
	char	   *qualifier;		/* BUCKET/BAND: the scheme/scorecard; else NULL */
	char	   *name;
	int32		id;				/* tag_id, segment_id, scheme_id, scorecard_id */
	int32		subject_id;
	char	   *subject_name;
	bool		manual;			/* TAG: a manual tag (no rule) */
	bool		missing;		/* BUCKET/BAND: no such bucket/band */
	bool		active;
	bool		refreshed;		/* has state (a refresh computed it) */
	RoaringOwned *set;			/* with load, for an active name of the
								 * subject: its stored set (live overlay
								 * merged), else NULL */
	RoaringOwned *manual_set;	/* TAG, with load: unexpired manual members */
	char	   *audience;		/* SEGMENT: its audience text */
} CatalogName;

/* A segment of the subject: its name, audience text and id. */
typedef struct CatalogSegment
{
	char	   *name;
	char	   *audience;
	int32		segment_id;
} CatalogSegment;

typedef struct CatalogNamesResult
{
	/*
	 * The names found, tags before segments and schemes before scorecards
	 * for one name (a name has the first meaning found).
	 */
	int			nnames;
	CatalogName *names;
	/* with want_segments: the subject's segments not among the names */
	int			nsegments;
	CatalogSegment *segments;
	/* with want_universe: the subject's universe, NULL if never refreshed */
	RoaringOwned *universe;
} CatalogNamesResult;

/*
 * Look the names of req up (one SPI query, a generic plan kept per
 * backend). Everything in *out is allocated in CurrentMemoryContext.
 */
extern void catalog_names_lookup(const CatalogNamesRequest *req, CatalogNamesResult *out);

/*
 * A tag or segment of the subject whose name equals name but for case,
 * or NULL (for a "did you mean" hint).
 */
extern char *catalog_names_suggest(int32 subject_id, const char *name);

/*
 * The bucket names of scheme id (kind BUCKET) or band names of scorecard
 * id (kind BAND) as a comma-separated list, or NULL when there are none.
 */
extern char *catalog_names_members(AudienceNameKind kind, int32 id);

#endif							/* SEGMENT_CATALOG_NAMES_H */
