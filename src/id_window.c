/*
 * id_window.c
 *     Member ids into CRoaring bitmaps, a batch of rows at a time.
 *
 * roaring_bitmap_add_many inserts ids one at a time (a container look-up
 * and an insert each), for every member of every tag. A refresh meets ids
 * mostly in ascending order (a heap loaded in key order), so the ids of one
 * batch usually fall into one chunk of 65536 ids, the unit of a CRoaring
 * container (id >> 16 is its key). For such batches each set keeps a plain
 * bitset of the chunk and sets the batch's members in it: a shifted OR of
 * the batch's result mask when the batch's ids are consecutive, one bit per
 * member otherwise. When the scan leaves the chunk, the bitset becomes one
 * container: written in CRoaring's portable serialization (a published
 * format, the one segment.memberset stores), deserialized and ORed into the
 * set, through the public API only. Batches whose ids span chunks are left
 * to the caller (roaring_bitmap_add_many), so any order gives the same sets;
 * an ordered scan gets them at a fraction of the cost.
 *
 * Memory: one 8 kB bitset per set being built, whatever the number of rows.
 */
#include "postgres.h"

#include "port/pg_bitutils.h"

#include "id_window.h"

/* CRoaring's portable format without run containers (RoaringFormatSpec) */
#define SERIAL_COOKIE_NO_RUNCONTAINER 12346
#define ARRAY_MAX_CARDINALITY 4096
#define ONE_CONTAINER_HEADER (4 + 4 + 4 + 4)	/* cookie, count, key+card, offset */

void
id_window_init(IdWindow *w)
{
	w->hi = ID_WINDOW_NONE;
	w->words = NULL;
	w->cxt = CurrentMemoryContext;
}

void
id_batch_describe(IdBatch *b, const uint32 *ids, int nrows)
{
	bool		same = true,
				consecutive = true;
	int			r;

	b->ids = ids;
	b->nrows = nrows;
	b->hi = nrows > 0 ? ids[0] >> 16 : 0;
	for (r = 1; r < nrows; r++)
	{
		same &= (ids[r] >> 16) == b->hi;
		consecutive &= ids[r] == ids[0] + (uint32) r;
	}
	b->one_chunk = nrows > 0 && same;
	b->contiguous = b->one_chunk && consecutive;
}

void
id_window_flush(IdWindow *w, roaring_bitmap_t *into)
{
	uint64		card;
	Size		size;
	char	   *buf;
	char	   *p;
	uint32		u32;
	uint16		u16;
	roaring_bitmap_t *chunk;

	if (w->hi == ID_WINDOW_NONE)
		return;
	card = pg_popcount((const char *) w->words, ID_WINDOW_WORDS * sizeof(uint64));
	if (card == 0)
	{
		w->hi = ID_WINDOW_NONE;
		return;
	}
	size = ONE_CONTAINER_HEADER +
		(card <= ARRAY_MAX_CARDINALITY ? card * sizeof(uint16) : ID_WINDOW_WORDS * sizeof(uint64));
	buf = palloc(size);
	p = buf;
	u32 = SERIAL_COOKIE_NO_RUNCONTAINER;
	memcpy(p, &u32, 4), p += 4;
	u32 = 1;					/* one container */
	memcpy(p, &u32, 4), p += 4;
	u16 = (uint16) w->hi;
	memcpy(p, &u16, 2), p += 2;
	u16 = (uint16) (card - 1);
	memcpy(p, &u16, 2), p += 2;
	u32 = ONE_CONTAINER_HEADER; /* offset of the container's data */
	memcpy(p, &u32, 4), p += 4;
	if (card <= ARRAY_MAX_CARDINALITY)
	{
		/* an array container: the low 16 bits of each id, ascending */
		int			i;

		for (i = 0; i < ID_WINDOW_WORDS; i++)
		{
			uint64		bits;

			for (bits = w->words[i]; bits != 0; bits &= bits - 1)
			{
				u16 = (uint16) (i * 64 + pg_rightmost_one_pos64(bits));
				memcpy(p, &u16, 2), p += 2;
			}
		}
	}
	else
		memcpy(p, w->words, ID_WINDOW_WORDS * sizeof(uint64));	/* a bitset container */
	chunk = roaring_bitmap_portable_deserialize_safe(buf, size);
	pfree(buf);
	if (chunk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not build a member set's container.")));
	roaring_bitmap_or_inplace(into, chunk);
	roaring_bitmap_free(chunk);
	memset(w->words, 0, ID_WINDOW_WORDS * sizeof(uint64));
	w->hi = ID_WINDOW_NONE;
}

void
id_window_add(IdWindow *w, roaring_bitmap_t *into, const IdBatch *b,
			  const uint64 *mask, int nwords)
{
	int			i;

	Assert(b->one_chunk);
	if (w->hi != b->hi)
	{
		id_window_flush(w, into);
		if (w->words == NULL)
			w->words = MemoryContextAllocZero(w->cxt, ID_WINDOW_WORDS * sizeof(uint64));
		w->hi = b->hi;
	}
	if (b->contiguous)
	{
		/* row r is id ids[0] + r: the mask's words, shifted into place */
		uint32		lo0 = b->ids[0] & 0xFFFF;

		for (i = 0; i < nwords; i++)
		{
			uint64		m = mask[i];
			uint32		off = lo0 + 64 * i;
			int			sh = off & 63;

			if (m == 0)
				continue;
			/* a set bit is a row, and every row's id is inside the chunk */
			w->words[off >> 6] |= m << sh;
			if (sh != 0 && (m >> (64 - sh)) != 0)
				w->words[(off >> 6) + 1] |= m >> (64 - sh);
		}
		return;
	}
	for (i = 0; i < nwords; i++)
	{
		uint64		bits;

		for (bits = mask[i]; bits != 0; bits &= bits - 1)
		{
			uint32		lo = b->ids[i * 64 + pg_rightmost_one_pos64(bits)] & 0xFFFF;

			w->words[lo >> 6] |= UINT64CONST(1) << (lo & 63);
		}
	}
}
