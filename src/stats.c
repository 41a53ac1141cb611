/*
 * stats.c
 *     Statistics helpers for the opportunity review (segment.rule_review):
 *     the standard normal distribution function, from which the p-value of
 *     the two-proportion z-test is taken.
 *
 * PostgreSQL has no erf/erfc at the SQL level (before 16); the C library's
 * erfc is exact to the last bits across the whole range, including the far
 * tails where 1 - erf(x) would cancel to zero.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"

/*
 * segment_internal._normal_cdf(x float8) -> float8: P(Z <= x) for Z ~ N(0, 1),
 * computed as erfc(-x / sqrt(2)) / 2 so that both tails keep full relative
 * precision. +/-Infinity give 1 and 0; NaN gives NaN.
 */
PG_FUNCTION_INFO_V1(segment_normal_cdf);
Datum
segment_normal_cdf(PG_FUNCTION_ARGS)
{
	float8		x = PG_GETARG_FLOAT8(0);

	PG_RETURN_FLOAT8(0.5 * erfc(-x / M_SQRT2));
}
