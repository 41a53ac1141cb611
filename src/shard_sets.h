/*
 * shard_sets.h
 *     The state of segment.shard_member_sets (shard_sets.c): one member set
 *     per flag and the set of every key seen, over a share of a table's rows.
 */
#ifndef SEGMENT_SHARD_SETS_H
#define SEGMENT_SHARD_SETS_H

#include "postgres.h"
#include "utils/expandeddatum.h"

#include "memberset.h"

typedef struct ShardSets
{
	ExpandedObjectHeader hdr;	/* owns eoh_context: everything below */
	int			nflags;
	int64		rows;			/* rows aggregated, NULL keys included */
	int64		null_keys;
	RoaringOwned *universe;		/* every non-NULL key */
	RoaringOwned **sets;		/* [nflags]: the keys whose flag was true */
	uint32	  **bufs;			/* ids not yet added to sets[i] */
	int		   *nbuf;
} ShardSets;

/*
 * A state (flat bytea or expanded) as a new expanded object in a child
 * context of parent; a malformed flat form is an error (22P03).
 */
extern ShardSets *shard_sets_expand(Datum d, MemoryContext parent);

#endif							/* SEGMENT_SHARD_SETS_H */
