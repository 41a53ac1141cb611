/*
 * id_window.h
 *     Collecting member ids into a CRoaring bitmap a batch at a time, for a
 *     scan that meets ids mostly in ascending order (id_window.c).
 */
#ifndef SEGMENT_ID_WINDOW_H
#define SEGMENT_ID_WINDOW_H

#include "postgres.h"

#include "roaring_lib.h"

#define ID_WINDOW_WORDS (65536 / 64)
#define ID_WINDOW_NONE	UINT32_MAX

/*
 * Batches of fewer rows are not worth a window: flushing one reads and
 * clears its 8 kB bitset however few ids it holds.
 */
#define ID_WINDOW_MIN_ROWS 64

/*
 * The ids of one 65536-id chunk (one CRoaring container: id >> 16 is its
 * key) as a plain bitset, until the scan moves to another chunk.
 */
typedef struct IdWindow
{
	uint32		hi;				/* id >> 16 of the chunk, ID_WINDOW_NONE if empty */
	uint64	   *words;			/* ID_WINDOW_WORDS, allocated on first use ... */
	MemoryContext cxt;			/* ... in the context that was current at init */
} IdWindow;

/* Where the ids of one batch fall, computed once per batch. */
typedef struct IdBatch
{
	const uint32 *ids;
	int			nrows;
	bool		one_chunk;		/* every id in the chunk hi */
	bool		contiguous;		/* ids[r] = ids[0] + r */
	uint32		hi;
} IdBatch;

/*
 * An empty window whose bitset, when needed, lives in CurrentMemoryContext
 * (the set's context: a scan may add from inside SPI calls).
 */
extern void id_window_init(IdWindow *w);

extern void id_batch_describe(IdBatch *b, const uint32 *ids, int nrows);

/*
 * Add the ids of the batch's rows whose bit is set in mask (nwords words)
 * to the window, after flushing it into `into` if it holds another chunk.
 * Only when b->one_chunk.
 */
extern void id_window_add(IdWindow *w, roaring_bitmap_t *into, const IdBatch *b,
						  const uint64 *mask, int nwords);

/* Move the window's ids into `into`; the window is empty after. */
extern void id_window_flush(IdWindow *w, roaring_bitmap_t *into);

#endif							/* SEGMENT_ID_WINDOW_H */
