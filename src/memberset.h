/*
 * memberset.h
 *     The segment.memberset SQL type (a set of uint32 member ids stored as a
 *     CRoaring portable serialization) and the rules for holding CRoaring
 *     bitmaps safely inside PostgreSQL.
 *
 * CRoaring allocates with malloc. Every bitmap a backend creates is owned by
 * a memory context through a reset callback (RoaringOwned), so an error or a
 * cancel anywhere frees it when that context goes away. Code frees bitmaps it
 * is done with early through roaring_owned_free() to keep peak memory low.
 */
#ifndef SEGMENT_MEMBERSET_H
#define SEGMENT_MEMBERSET_H

#include "postgres.h"
#include "fmgr.h"
#include "utils/memutils.h"

#include <roaring/roaring.h>

/* On-disk / in-datum form: varlena header, format byte, padding, portable bytes. */
typedef struct MemberSet
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	uint8		format;			/* MEMBERSET_FORMAT_PORTABLE */
	uint8		pad[3];
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* roaring portable serialization */
} MemberSet;

#define MEMBERSET_FORMAT_PORTABLE 1
#define MEMBERSET_HDRSZ offsetof(MemberSet, data)

#define DatumGetMemberSetP(X)	((MemberSet *) PG_DETOAST_DATUM(X))
#define PG_GETARG_MEMBERSET_P(n) DatumGetMemberSetP(PG_GETARG_DATUM(n))
#define PG_RETURN_MEMBERSET_P(x) PG_RETURN_POINTER(x)

/* A CRoaring bitmap whose lifetime is tied to a memory context. */
typedef struct RoaringOwned
{
	MemoryContextCallback cb;
	roaring_bitmap_t *bitmap;	/* NULL once freed */
} RoaringOwned;

/* Take ownership of r (may be NULL: reports out of memory) in CurrentMemoryContext. */
extern RoaringOwned *roaring_owned_adopt(roaring_bitmap_t *r);
/* A new empty bitmap owned by CurrentMemoryContext. */
extern RoaringOwned *roaring_owned_create(void);
/* Free now (idempotent); the callback then does nothing. */
extern void roaring_owned_free(RoaringOwned *o);

/* Datum <-> bitmap. The bitmap is owned by CurrentMemoryContext. */
extern RoaringOwned *memberset_to_roaring(MemberSet *ms);
extern MemberSet *memberset_from_roaring(roaring_bitmap_t *r);	/* palloc'd; runs run_optimize first */
extern MemberSet *memberset_empty(void);

#endif							/* SEGMENT_MEMBERSET_H */
