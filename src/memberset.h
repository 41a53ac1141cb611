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
 *
 * Typical use:
 *
 *     RoaringOwned *a = memberset_to_roaring(PG_GETARG_MEMBERSET_P(0));
 *     RoaringOwned *b = memberset_to_roaring(PG_GETARG_MEMBERSET_P(1));
 *     roaring_bitmap_and_inplace(a->bitmap, b->bitmap);
 *     roaring_owned_free(b);
 *     result = memberset_from_roaring(a->bitmap);
 *     roaring_owned_free(a);
 *
 * The serialized form is CRoaring's portable format (compatible with the
 * Java/Go implementations), which is little-endian; this code assumes a
 * little-endian host.
 */
#ifndef SEGMENT_MEMBERSET_H
#define SEGMENT_MEMBERSET_H

#include "postgres.h"
#include "fmgr.h"
#include "utils/memutils.h"

#include "roaring_lib.h"

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
#define MEMBERSET_DATALEN(ms) (VARSIZE(ms) - MEMBERSET_HDRSZ)

#define DatumGetMemberSetP(X)	((MemberSet *) PG_DETOAST_DATUM(X))
#define PG_GETARG_MEMBERSET_P(n) DatumGetMemberSetP(PG_GETARG_DATUM(n))
#define PG_RETURN_MEMBERSET_P(x) PG_RETURN_POINTER(x)

/* A CRoaring bitmap whose lifetime is tied to a memory context. */
typedef struct RoaringOwned
{
	MemoryContextCallback cb;
	roaring_bitmap_t *bitmap;	/* NULL once freed */
} RoaringOwned;

/*
 * Take ownership of r (may be NULL: reports out of memory) in
 * CurrentMemoryContext. If the bookkeeping cannot be allocated, r is freed
 * before the error is raised, so r never leaks.
 */
extern RoaringOwned *roaring_owned_adopt(roaring_bitmap_t *r);
/* A new empty bitmap owned by CurrentMemoryContext. */
extern RoaringOwned *roaring_owned_create(void);
/* A copy of r owned by CurrentMemoryContext. */
extern RoaringOwned *roaring_owned_copy(const roaring_bitmap_t *r);
/* Free now (idempotent); the callback then does nothing. */
extern void roaring_owned_free(RoaringOwned *o);

/*
 * Datum <-> bitmap. memberset_to_roaring deserializes into a bitmap owned by
 * CurrentMemoryContext (ms may be freed afterwards). memberset_from_roaring
 * returns a palloc'd datum; it runs run_optimize on r first (this changes
 * r's representation, never its content).
 */
extern RoaringOwned *memberset_to_roaring(MemberSet *ms);
extern MemberSet *memberset_from_roaring(roaring_bitmap_t *r);
extern MemberSet *memberset_empty(void);

/*
 * Read a serialized set in place, without deserializing it (no malloc, no
 * copy): membership test and cardinality. Used by the @> int8 operator,
 * has_tag, tags and cardinality().
 */
extern bool memberset_has_member(const MemberSet *ms, uint32 id);
extern uint64 memberset_count(const MemberSet *ms);

/*
 * An int8 as a member id; ERROR 22003 (with the value) when it is outside
 * 0..4294967295. what names the value in the message ("member id", "key").
 */
extern uint32 memberset_check_id(int64 value, const char *what);

#endif							/* SEGMENT_MEMBERSET_H */
