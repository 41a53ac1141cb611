/*
 * numeric_scaled.c
 *     Read a numeric datum as an exact 128-bit integer scaled by 10^8.
 *
 * Balances are numeric and most tag rules compare them with constants.
 * numeric_cmp on every (row, rule) costs a function call and a digit-array
 * comparison each time; reading each value once per row into an integer at a
 * fixed scale makes every comparison an integer comparison, with the same
 * answer: both sides are exact. Values that do not fit (NaN, infinities,
 * more than 8 decimals, 10^20 or more) are left to numeric_cmp.
 *
 * This reads numeric's on-disk layout (numeric.c: a 16-bit header, then for
 * the long form a 16-bit weight, then base-10000 digits, most significant
 * first). The layout is part of what pg_upgrade preserves, so it does not
 * change between releases; the constants below restate it.
 *
 * numeric_scaled_to_numeric goes back: a scaled value as a numeric datum
 * (scorecard scores stored in segment.score_state and the live overlay).
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "numeric_scaled.h"

#ifdef HAVE_INT128

#define NUM_SIGN_MASK			0xC000
#define NUM_NEG					0x4000
#define NUM_SHORT				0x8000
#define NUM_SPECIAL				0xC000
#define NUM_SHORT_SIGN_MASK		0x2000
#define NUM_SHORT_WEIGHT_SIGN	0x0040
#define NUM_SHORT_WEIGHT_MASK	0x003F

#define NBASE_GROUPS_OF_SCALE	2	/* 10^8 = 10000^2 */
#define MAX_EXPONENT			7	/* values below 10^20: * 10^8 < 10^28, inside int128 */

#define P4(n) ((int128) INT64CONST(n))
static const int128 pow10000[MAX_EXPONENT + 1] = {
	P4(1), P4(10000), P4(100000000), P4(1000000000000), P4(10000000000000000),
	P4(10000000000000000) * 10000, P4(10000000000000000) * 100000000,
	P4(10000000000000000) * 1000000000000
};

static const int64 pow10000_64[4] = {
	INT64CONST(1), INT64CONST(10000), INT64CONST(100000000), INT64CONST(1000000000000)
};

bool
numeric_scaled(const struct varlena *num, int128 *result)
{
	const char *p = VARDATA_ANY(num);
	int			len = VARSIZE_ANY_EXHDR(num);
	uint16		header;
	int			weight;
	bool		negative;
	const char *digits;
	int			ndigits;
	int128		acc = 0;
	int			i;

	if (len < (int) sizeof(uint16))
		return false;
	memcpy(&header, p, sizeof(uint16));
	if ((header & NUM_SIGN_MASK) == NUM_SPECIAL)
		return false;			/* NaN, +-Infinity */
	if ((header & NUM_SIGN_MASK) == NUM_SHORT)
	{
		negative = (header & NUM_SHORT_SIGN_MASK) != 0;
		/* 7-bit weight with its own sign bit */
		weight = (header & NUM_SHORT_WEIGHT_MASK);
		if (header & NUM_SHORT_WEIGHT_SIGN)
			weight -= NUM_SHORT_WEIGHT_MASK + 1;
		digits = p + sizeof(uint16);
		ndigits = (len - sizeof(uint16)) / sizeof(int16);
	}
	else
	{
		int16		w;

		if (len < (int) (2 * sizeof(uint16)))
			return false;
		negative = (header & NUM_SIGN_MASK) == NUM_NEG;
		memcpy(&w, p + sizeof(uint16), sizeof(int16));
		weight = w;
		digits = p + 2 * sizeof(uint16);
		ndigits = (len - 2 * sizeof(uint16)) / sizeof(int16);
	}
	if (weight + NBASE_GROUPS_OF_SCALE > MAX_EXPONENT)
		return false;			/* 10^20 or more */

	if (weight <= 1)
	{
		/* below 10^8 (balances): value * 10^8 < 10^16 fits in 64 bits */
		int64		acc64 = 0;

		for (i = 0; i < ndigits; i++)
		{
			int16		d;
			int			e = weight - i + NBASE_GROUPS_OF_SCALE;

			memcpy(&d, digits + i * sizeof(int16), sizeof(int16));
			if (e < 0)
			{
				if (d != 0)
					return false;	/* more than 8 fractional digits */
				continue;
			}
			acc64 += (int64) d * pow10000_64[e];
		}
		*result = negative ? -(int128) acc64 : (int128) acc64;
		return true;
	}

	for (i = 0; i < ndigits; i++)
	{
		int16		d;
		int			e = weight - i + NBASE_GROUPS_OF_SCALE;

		memcpy(&d, digits + i * sizeof(int16), sizeof(int16));
		if (e < 0)
		{
			if (d != 0)
				return false;	/* more than 8 fractional digits */
			continue;
		}
		acc += (int128) d * pow10000[e];
	}
	*result = negative ? -acc : acc;
	return true;
}

#define SCALED_ONE INT64CONST(100000000)

Datum
numeric_scaled_to_numeric(int128 value)
{
	bool		neg = value < 0;
	int128		a = neg ? -value : value;
	int64		ipart = (int64) (a / SCALED_ONE);
	int64		fpart = (int64) (a % SCALED_ONE);
	char		buf[64];
	int			len;

	len = snprintf(buf, sizeof(buf), "%s" INT64_FORMAT ".%08lld", neg ? "-" : "",
				   ipart, (long long) fpart);
	while (len > 0 && buf[len - 1] == '0')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '.')
		buf[--len] = '\0';
	return DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

#endif							/* HAVE_INT128 */
