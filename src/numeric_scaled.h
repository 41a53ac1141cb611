/*
 * numeric_scaled.h
 *     Exact numeric values as 128-bit integers scaled by 10^8, for native
 *     comparisons of numeric columns with numeric constants.
 */
#ifndef SEGMENT_NUMERIC_SCALED_H
#define SEGMENT_NUMERIC_SCALED_H

#include "postgres.h"

#ifdef HAVE_INT128
typedef int128 ScoreValue;		/* a score * 10^8, exact (scorecards) */
#else
#error "segment needs a 128-bit integer type"
#endif

/*
 * value * 10^8 of a numeric datum (4-byte or short varlena header, not
 * toasted), or false when it has no exact such form: NaN, +-Infinity, more
 * than 8 fractional digits, or 10^20 and beyond.
 */
extern bool numeric_scaled(const struct varlena *num, int128 *result);

/* The numeric datum of value * 10^-8 (the inverse of numeric_scaled). */
extern Datum numeric_scaled_to_numeric(int128 value);

#endif							/* SEGMENT_NUMERIC_SCALED_H */
