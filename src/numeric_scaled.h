/*
 * numeric_scaled.h
 *     Exact numeric values as 128-bit integers scaled by 10^8, for native
 *     comparisons of numeric columns with numeric constants.
 */
#ifndef SEGMENT_NUMERIC_SCALED_H
#define SEGMENT_NUMERIC_SCALED_H

#include "postgres.h"

#ifdef HAVE_INT128
/*
 * value * 10^8 of a numeric datum (4-byte or short varlena header, not
 * toasted), or false when it has no exact such form: NaN, +-Infinity, more
 * than 8 fractional digits, or 10^20 and beyond.
 */
extern bool numeric_scaled(const struct varlena *num, int128 *result);
#endif

#endif							/* SEGMENT_NUMERIC_SCALED_H */
