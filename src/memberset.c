/*
 * memberset.c
 *     The segment.memberset SQL type: a set of uint32 member ids held as a
 *     CRoaring portable serialization. Text and binary I/O, the set
 *     operators (& | - = <> @> <@ &&), conversions (arrays, member_ids),
 *     statistics, and the aggregates memberset_agg, union_agg and
 *     intersect_agg with combine/serial/deserial functions for parallel
 *     aggregation.
 *
 * Memory: every CRoaring bitmap is held through a RoaringOwned, whose reset
 * callback frees it when its memory context is reset or deleted, so errors
 * and cancels never leak malloc'd memory. Functions free bitmaps early with
 * roaring_owned_free() when done.
 *
 * Untrusted bytes (binary receive) are checked by portable_validate() before
 * CRoaring sees them: CRoaring 0.2's "safe" deserializer only checks bounds,
 * not that keys are sorted or that container contents agree with their
 * headers, and iterating such a bitmap can read out of bounds.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "memberset.h"
#include "segment.h"

#ifdef WORDS_BIGENDIAN
#error "segment.memberset assumes a little-endian host (CRoaring portable format)"
#endif

/* CRoaring portable format constants (see the RoaringFormatSpec). */
#define PORTABLE_COOKIE_NO_RUN	12346
#define PORTABLE_COOKIE_RUN		12347
#define PORTABLE_NO_OFFSET_THRESHOLD 4
#define PORTABLE_ARRAY_MAX		4096
#define PORTABLE_BITSET_BYTES	8192

#define ID_BATCH 1024			/* ids buffered before roaring_bitmap_add_many */

/* ------------------------------------------------------------------------
 * RoaringOwned
 * ------------------------------------------------------------------------
 */

static void
roaring_owned_callback(void *arg)
{
	RoaringOwned *o = (RoaringOwned *) arg;

	if (o->bitmap != NULL)
	{
		roaring_bitmap_free(o->bitmap);
		o->bitmap = NULL;
	}
}

RoaringOwned *
roaring_owned_adopt(roaring_bitmap_t *r)
{
	RoaringOwned *o;

	if (r == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("A member set could not be allocated.")));

	o = MemoryContextAllocExtended(CurrentMemoryContext, sizeof(RoaringOwned),
								   MCXT_ALLOC_NO_OOM);
	if (o == NULL)
	{
		roaring_bitmap_free(r);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("A member set could not be allocated.")));
	}
	o->bitmap = r;
	o->cb.func = roaring_owned_callback;
	o->cb.arg = o;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &o->cb);
	return o;
}

RoaringOwned *
roaring_owned_create(void)
{
	return roaring_owned_adopt(roaring_bitmap_create());
}

RoaringOwned *
roaring_owned_copy(const roaring_bitmap_t *r)
{
	return roaring_owned_adopt(roaring_bitmap_copy(r));
}

void
roaring_owned_free(RoaringOwned *o)
{
	if (o != NULL && o->bitmap != NULL)
	{
		roaring_bitmap_free(o->bitmap);
		o->bitmap = NULL;
	}
}

/* ------------------------------------------------------------------------
 * Reading the portable format in place
 * ------------------------------------------------------------------------
 */

typedef struct PortableView
{
	const uint8 *buf;
	size_t		len;
	int32		n;				/* number of containers */
	const uint8 *runflags;		/* bitset of run containers, or NULL */
	const uint8 *desc;			/* n x (uint16 key, uint16 cardinality-1) */
	const uint8 *offsets;		/* n x uint32 container offsets, or NULL */
	size_t		payload;		/* offset of the first container */
} PortableView;

static inline uint16
rd16(const uint8 *p)
{
	uint16		v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32
rd32(const uint8 *p)
{
	uint32		v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint16
pv_key(const PortableView *pv, int32 i)
{
	return rd16(pv->desc + 4 * i);
}

static inline uint32
pv_card(const PortableView *pv, int32 i)
{
	return (uint32) rd16(pv->desc + 4 * i + 2) + 1;
}

static inline bool
pv_isrun(const PortableView *pv, int32 i)
{
	return pv->runflags != NULL && (pv->runflags[i / 8] >> (i % 8)) & 1;
}

/* Parse the headers; false if they do not fit in the buffer. */
static bool
pv_open(const char *buf, size_t len, PortableView *pv)
{
	const uint8 *b = (const uint8 *) buf;
	size_t		pos;
	uint32		cookie;

	pv->buf = b;
	pv->len = len;
	if (len < 4)
		return false;
	cookie = rd32(b);
	if (cookie == PORTABLE_COOKIE_NO_RUN)
	{
		if (len < 8)
			return false;
		pv->n = (int32) rd32(b + 4);
		if (rd32(b + 4) > 65536)
			return false;
		pv->runflags = NULL;
		pos = 8;
	}
	else if ((cookie & 0xFFFF) == PORTABLE_COOKIE_RUN)
	{
		pv->n = (int32) (cookie >> 16) + 1;
		pv->runflags = b + 4;
		pos = 4 + (pv->n + 7) / 8;
	}
	else
		return false;

	pv->desc = b + pos;
	pos += 4 * (size_t) pv->n;
	if (pv->runflags == NULL || pv->n >= PORTABLE_NO_OFFSET_THRESHOLD)
	{
		pv->offsets = b + pos;
		pos += 4 * (size_t) pv->n;
	}
	else
		pv->offsets = NULL;
	if (pos > len)
		return false;
	pv->payload = pos;
	return true;
}

/* Bytes taken by container i starting at off; 0 if it does not fit. */
static size_t
pv_container_size(const PortableView *pv, int32 i, size_t off)
{
	size_t		size;

	if (pv_isrun(pv, i))
	{
		if (off + 2 > pv->len)
			return 0;
		size = 2 + 4 * (size_t) rd16(pv->buf + off);
	}
	else if (pv_card(pv, i) <= PORTABLE_ARRAY_MAX)
		size = 2 * (size_t) pv_card(pv, i);
	else
		size = PORTABLE_BITSET_BYTES;
	if (off + size > pv->len)
		return 0;
	return size;
}

/* Offset of container i; 0 if the data is inconsistent. */
static size_t
pv_container_offset(const PortableView *pv, int32 i)
{
	size_t		off;

	if (pv->offsets != NULL)
		off = rd32(pv->offsets + 4 * i);
	else
	{
		/* fewer than PORTABLE_NO_OFFSET_THRESHOLD containers: walk */
		off = pv->payload;
		for (int32 k = 0; k < i; k++)
		{
			size_t		size = pv_container_size(pv, k, off);

			if (size == 0)
				return 0;
			off += size;
		}
	}
	if (off < pv->payload || pv_container_size(pv, i, off) == 0)
		return 0;
	return off;
}

static void memberset_corrupt(void) pg_attribute_noreturn();

static void
memberset_corrupt(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("corrupted segment.memberset value")));
}

static void
memberset_check_format(const MemberSet *ms)
{
	if (ms->format != MEMBERSET_FORMAT_PORTABLE)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("unsupported segment.memberset format %d", ms->format)));
}

static void
memberset_view(const MemberSet *ms, PortableView *pv)
{
	memberset_check_format(ms);
	if (!pv_open(ms->data, MEMBERSET_DATALEN(ms), pv))
		memberset_corrupt();
}

bool
memberset_has_member(const MemberSet *ms, uint32 id)
{
	PortableView pv;
	uint16		key = id >> 16;
	uint16		low = id & 0xFFFF;
	int32		lo,
				hi,
				i = -1;
	size_t		off;
	const uint8 *c;

	memberset_view(ms, &pv);

	/* binary search the container keys */
	lo = 0;
	hi = pv.n - 1;
	while (lo <= hi)
	{
		int32		mid = lo + (hi - lo) / 2;
		uint16		k = pv_key(&pv, mid);

		if (k == key)
		{
			i = mid;
			break;
		}
		if (k < key)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	if (i < 0)
		return false;

	off = pv_container_offset(&pv, i);
	if (off == 0)
		memberset_corrupt();
	c = pv.buf + off;

	if (pv_isrun(&pv, i))
	{
		int32		nruns = rd16(c);
		int32		found = -1;

		/* last run whose start <= low */
		lo = 0;
		hi = nruns - 1;
		while (lo <= hi)
		{
			int32		mid = lo + (hi - lo) / 2;

			if (rd16(c + 2 + 4 * mid) <= low)
			{
				found = mid;
				lo = mid + 1;
			}
			else
				hi = mid - 1;
		}
		if (found < 0)
			return false;
		return (uint32) low <= (uint32) rd16(c + 2 + 4 * found) +
			rd16(c + 2 + 4 * found + 2);
	}
	else if (pv_card(&pv, i) <= PORTABLE_ARRAY_MAX)
	{
		lo = 0;
		hi = (int32) pv_card(&pv, i) - 1;
		while (lo <= hi)
		{
			int32		mid = lo + (hi - lo) / 2;
			uint16		v = rd16(c + 2 * mid);

			if (v == low)
				return true;
			if (v < low)
				lo = mid + 1;
			else
				hi = mid - 1;
		}
		return false;
	}
	else
		return (c[low / 8] >> (low % 8)) & 1;
}

uint64
memberset_count(const MemberSet *ms)
{
	PortableView pv;
	uint64		total = 0;

	memberset_view(ms, &pv);
	for (int32 i = 0; i < pv.n; i++)
		total += pv_card(&pv, i);
	return total;
}

/*
 * Full structural check of untrusted portable bytes: sorted distinct keys,
 * offsets that match the layout, sorted array containers, non-overlapping
 * in-range runs, and every container's cardinality header equal to its
 * content. Returns NULL if valid, else a description of the first problem.
 */
static const char *
portable_validate(const char *buf, size_t len)
{
	PortableView pv;
	size_t		off;

	if (!pv_open(buf, len, &pv))
		return "the header is truncated or has an unknown cookie";
	off = pv.payload;
	for (int32 i = 0; i < pv.n; i++)
	{
		uint32		card = pv_card(&pv, i);
		size_t		size = pv_container_size(&pv, i, off);
		const uint8 *c = pv.buf + off;

		if (i > 0 && pv_key(&pv, i) <= pv_key(&pv, i - 1))
			return "container keys are not strictly ascending";
		if (pv.offsets != NULL && rd32(pv.offsets + 4 * i) != off)
			return "a container offset does not match the layout";
		if (size == 0)
			return "a container is truncated";

		if (pv_isrun(&pv, i))
		{
			int32		nruns = rd16(c);
			uint32		sum = 0;
			int32		prev_end = -1;

			if (nruns == 0)
				return "a run container is empty";
			for (int32 r = 0; r < nruns; r++)
			{
				int32		start = rd16(c + 2 + 4 * r);
				int32		end = start + rd16(c + 2 + 4 * r + 2);

				if (end > 0xFFFF)
					return "a run extends past its container";
				if (start <= prev_end)
					return "runs overlap or are out of order";
				sum += end - start + 1;
				prev_end = end;
			}
			if (sum != card)
				return "a run container's cardinality does not match its runs";
		}
		else if (card <= PORTABLE_ARRAY_MAX)
		{
			for (uint32 k = 1; k < card; k++)
				if (rd16(c + 2 * k) <= rd16(c + 2 * (k - 1)))
					return "an array container is not strictly ascending";
		}
		else
		{
			if (pg_popcount((const char *) c, PORTABLE_BITSET_BYTES) != card)
				return "a bitset container's cardinality does not match its bits";
		}
		off += size;
	}
	if (off != len)
		return "there are trailing bytes after the last container";
	return NULL;
}

/* ------------------------------------------------------------------------
 * Datum <-> bitmap
 * ------------------------------------------------------------------------
 */

RoaringOwned *
memberset_to_roaring(MemberSet *ms)
{
	roaring_bitmap_t *r;

	memberset_check_format(ms);
	r = roaring_bitmap_portable_deserialize_safe(ms->data, MEMBERSET_DATALEN(ms));
	if (r == NULL)
		memberset_corrupt();
	return roaring_owned_adopt(r);
}

MemberSet *
memberset_from_roaring(roaring_bitmap_t *r)
{
	size_t		size;
	MemberSet  *ms;

	roaring_bitmap_run_optimize(r);
	size = roaring_bitmap_portable_size_in_bytes(r);
	if (size > MaxAllocSize - MEMBERSET_HDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("member set is too large to store (%zu bytes)", size)));
	ms = palloc0(MEMBERSET_HDRSZ + size);
	ms->format = MEMBERSET_FORMAT_PORTABLE;
	if (roaring_bitmap_portable_serialize(r, ms->data) != size)
		elog(ERROR, "roaring portable serialization has an unexpected size");
	SET_VARSIZE(ms, MEMBERSET_HDRSZ + size);
	return ms;
}

MemberSet *
memberset_empty(void)
{
	RoaringOwned *o = roaring_owned_create();
	MemberSet  *ms = memberset_from_roaring(o->bitmap);

	roaring_owned_free(o);
	return ms;
}

uint32
memberset_check_id(int64 value, const char *what)
{
	if (value < 0 || value > SEGMENT_MAX_MEMBER_ID)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s " INT64_FORMAT " is out of range", what, value),
				 errdetail("Member ids are integers from 0 to 4294967295.")));
	return (uint32) value;
}

/* Detoast argument n and deserialize it (owned by CurrentMemoryContext). */
static RoaringOwned *
arg_roaring(FunctionCallInfo fcinfo, int n)
{
	MemberSet  *ms = PG_GETARG_MEMBERSET_P(n);
	RoaringOwned *o = memberset_to_roaring(ms);

	if ((Pointer) ms != DatumGetPointer(PG_GETARG_DATUM(n)))
		pfree(ms);
	return o;
}

/* Serialize o, free it, return the datum. */
static Datum
return_roaring(RoaringOwned *o)
{
	MemberSet  *ms = memberset_from_roaring(o->bitmap);

	roaring_owned_free(o);
	PG_RETURN_MEMBERSET_P(ms);
}

/* ------------------------------------------------------------------------
 * Text and binary I/O
 * ------------------------------------------------------------------------
 */

static inline bool
ms_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void ms_syntax_error(const char *input, const char *detail) pg_attribute_noreturn();

static void
ms_syntax_error(const char *input, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type memberset: \"%s\"", input),
			 errdetail_internal("%s", detail),
			 errhint("A member set is written as member ids in braces, e.g. {1,2,5} or {} for the empty set.")));
}

PG_FUNCTION_INFO_V1(memberset_in);
Datum
memberset_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	const char *p = input;
	RoaringOwned *o;
	uint32		batch[ID_BATCH];
	int			nbatch = 0;

	while (ms_isspace(*p))
		p++;
	if (*p != '{')
		ms_syntax_error(input, psprintf("Expected \"{\" at position %d.", (int) (p - input) + 1));
	p++;

	o = roaring_owned_create();
	while (ms_isspace(*p))
		p++;
	if (*p == '}')
		p++;
	else
	{
		for (;;)
		{
			const char *tok;
			int			toklen;
			char	   *token;
			uint64		v = 0;
			bool		negative = false;
			const char *d;

			while (ms_isspace(*p))
				p++;
			tok = p;
			while (*p != '\0' && *p != ',' && *p != '}' && *p != '{' && !ms_isspace(*p))
				p++;
			toklen = p - tok;
			if (toklen == 0)
			{
				if (*p == '\0')
					ms_syntax_error(input, psprintf("Missing \"}\" at position %d.", (int) (p - input) + 1));
				ms_syntax_error(input, psprintf("Expected a member id at position %d.", (int) (p - input) + 1));
			}
			token = pnstrdup(tok, toklen);

			d = token;
			if (*d == '-' || *d == '+')
			{
				negative = (*d == '-');
				d++;
			}
			if (*d == '\0')
				ms_syntax_error(input, psprintf("\"%s\" at position %d is not a member id.", token, (int) (tok - input) + 1));
			for (; *d; d++)
			{
				if (*d < '0' || *d > '9')
					ms_syntax_error(input, psprintf("\"%s\" at position %d is not a member id.", token, (int) (tok - input) + 1));
				if (v <= PG_UINT32_MAX)
					v = v * 10 + (*d - '0');
			}
			if ((negative && v != 0) || v > PG_UINT32_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("member id \"%s\" is out of range for type memberset", token),
						 errdetail("Member ids are integers from 0 to 4294967295.")));
			pfree(token);

			batch[nbatch++] = (uint32) v;
			if (nbatch == ID_BATCH)
			{
				roaring_bitmap_add_many(o->bitmap, nbatch, batch);
				nbatch = 0;
				CHECK_FOR_INTERRUPTS();
			}

			while (ms_isspace(*p))
				p++;
			if (*p == ',')
			{
				p++;
				continue;
			}
			if (*p == '}')
			{
				p++;
				break;
			}
			if (*p == '\0')
				ms_syntax_error(input, psprintf("Missing \"}\" at position %d.", (int) (p - input) + 1));
			ms_syntax_error(input, psprintf("Expected \",\" or \"}\" at position %d.", (int) (p - input) + 1));
		}
	}
	while (ms_isspace(*p))
		p++;
	if (*p != '\0')
		ms_syntax_error(input, psprintf("Unexpected text after \"}\" at position %d.", (int) (p - input) + 1));

	if (nbatch > 0)
		roaring_bitmap_add_many(o->bitmap, nbatch, batch);
	return return_roaring(o);
}

PG_FUNCTION_INFO_V1(memberset_out);
Datum
memberset_out(PG_FUNCTION_ARGS)
{
	RoaringOwned *o = arg_roaring(fcinfo, 0);
	roaring_uint32_iterator_t it;
	StringInfoData s;
	char		digits[12];
	uint64		n = 0;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	roaring_init_iterator(o->bitmap, &it);
	while (it.has_value)
	{
		if (n > 0)
			appendStringInfoChar(&s, ',');
		appendBinaryStringInfo(&s, digits, pg_ultoa_n(it.current_value, digits));
		if ((++n & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		roaring_advance_uint32_iterator(&it);
	}
	appendStringInfoChar(&s, '}');
	roaring_owned_free(o);
	PG_RETURN_CSTRING(s.data);
}

/* Binary form: one format byte (1), then the portable serialization. */
PG_FUNCTION_INFO_V1(memberset_recv);
Datum
memberset_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			format = pq_getmsgbyte(buf);
	int			len;
	const char *data;
	const char *problem;
	MemberSet  *ms;

	if (format != MEMBERSET_FORMAT_PORTABLE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("unsupported binary format %d for type memberset", format),
				 errdetail("The only format is 1 (CRoaring portable serialization).")));
	len = buf->len - buf->cursor;
	data = pq_getmsgbytes(buf, len);
	problem = portable_validate(data, len);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary data for type memberset"),
				 errdetail("Not a valid CRoaring portable serialization: %s.", problem)));

	ms = palloc(MEMBERSET_HDRSZ + len);
	SET_VARSIZE(ms, MEMBERSET_HDRSZ + len);
	ms->format = MEMBERSET_FORMAT_PORTABLE;
	memset(ms->pad, 0, sizeof(ms->pad));
	memcpy(ms->data, data, len);
	PG_RETURN_MEMBERSET_P(ms);
}

PG_FUNCTION_INFO_V1(memberset_send);
Datum
memberset_send(PG_FUNCTION_ARGS)
{
	MemberSet  *ms = PG_GETARG_MEMBERSET_P(0);
	StringInfoData buf;

	memberset_check_format(ms);
	pq_begintypsend(&buf);
	pq_sendbyte(&buf, MEMBERSET_FORMAT_PORTABLE);
	pq_sendbytes(&buf, ms->data, MEMBERSET_DATALEN(ms));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ------------------------------------------------------------------------
 * Operators
 * ------------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(memberset_and);
Datum
memberset_and(PG_FUNCTION_ARGS)
{
	RoaringOwned *a = arg_roaring(fcinfo, 0);
	RoaringOwned *b = arg_roaring(fcinfo, 1);

	roaring_bitmap_and_inplace(a->bitmap, b->bitmap);
	roaring_owned_free(b);
	return return_roaring(a);
}

PG_FUNCTION_INFO_V1(memberset_or);
Datum
memberset_or(PG_FUNCTION_ARGS)
{
	RoaringOwned *a = arg_roaring(fcinfo, 0);
	RoaringOwned *b = arg_roaring(fcinfo, 1);

	roaring_bitmap_or_inplace(a->bitmap, b->bitmap);
	roaring_owned_free(b);
	return return_roaring(a);
}

PG_FUNCTION_INFO_V1(memberset_andnot);
Datum
memberset_andnot(PG_FUNCTION_ARGS)
{
	RoaringOwned *a = arg_roaring(fcinfo, 0);
	RoaringOwned *b = arg_roaring(fcinfo, 1);

	roaring_bitmap_andnot_inplace(a->bitmap, b->bitmap);
	roaring_owned_free(b);
	return return_roaring(a);
}

static bool
memberset_equal(FunctionCallInfo fcinfo)
{
	MemberSet  *x = PG_GETARG_MEMBERSET_P(0);
	MemberSet  *y = PG_GETARG_MEMBERSET_P(1);
	RoaringOwned *a;
	RoaringOwned *b;
	bool		result;

	/* identical bytes are equal sets; different bytes may still be */
	if (VARSIZE(x) == VARSIZE(y) && memcmp(x, y, VARSIZE(x)) == 0)
		return true;
	if (memberset_count(x) != memberset_count(y))
		return false;
	a = memberset_to_roaring(x);
	b = memberset_to_roaring(y);
	result = roaring_bitmap_equals(a->bitmap, b->bitmap);
	roaring_owned_free(a);
	roaring_owned_free(b);
	return result;
}

PG_FUNCTION_INFO_V1(memberset_eq);
Datum
memberset_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(memberset_equal(fcinfo));
}

PG_FUNCTION_INFO_V1(memberset_ne);
Datum
memberset_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!memberset_equal(fcinfo));
}

/* a @> b: every member of b is in a */
PG_FUNCTION_INFO_V1(memberset_contains);
Datum
memberset_contains(PG_FUNCTION_ARGS)
{
	RoaringOwned *a = arg_roaring(fcinfo, 0);
	RoaringOwned *b = arg_roaring(fcinfo, 1);
	bool		result = roaring_bitmap_is_subset(b->bitmap, a->bitmap);

	roaring_owned_free(a);
	roaring_owned_free(b);
	PG_RETURN_BOOL(result);
}

/* a <@ b: every member of a is in b */
PG_FUNCTION_INFO_V1(memberset_contained);
Datum
memberset_contained(PG_FUNCTION_ARGS)
{
	RoaringOwned *a = arg_roaring(fcinfo, 0);
	RoaringOwned *b = arg_roaring(fcinfo, 1);
	bool		result = roaring_bitmap_is_subset(a->bitmap, b->bitmap);

	roaring_owned_free(a);
	roaring_owned_free(b);
	PG_RETURN_BOOL(result);
}

/*
 * Argument n, detoasted, for functions called once per row with the same
 * stored set (e.g. "where stored_set @> t.id"): a set stored out of line is
 * fetched once per query and kept in fn_extra, keyed by its toast pointer.
 */
typedef struct MemberSetArgCache
{
	Oid			toastrelid;
	Oid			valueid;
	MemberSet  *ms;
} MemberSetArgCache;

static MemberSet *
getarg_memberset_cached(FunctionCallInfo fcinfo, int n)
{
	struct varlena *raw = (struct varlena *) PG_GETARG_POINTER(n);
	struct varatt_external ext;
	MemberSetArgCache *c;
	MemoryContext old;

	if (!VARATT_IS_EXTERNAL_ONDISK(raw))
		return PG_GETARG_MEMBERSET_P(n);

	VARATT_EXTERNAL_GET_POINTER(ext, raw);
	c = (MemberSetArgCache *) fcinfo->flinfo->fn_extra;
	if (c != NULL && c->ms != NULL &&
		c->toastrelid == ext.va_toastrelid && c->valueid == ext.va_valueid)
		return c->ms;
	if (c == NULL)
		c = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(MemberSetArgCache));
	if (c->ms != NULL)
	{
		pfree(c->ms);
		c->ms = NULL;
	}
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	c->ms = (MemberSet *) detoast_attr(raw);
	MemoryContextSwitchTo(old);
	c->toastrelid = ext.va_toastrelid;
	c->valueid = ext.va_valueid;
	return c->ms;
}

/* set @> id (an id outside 0..4294967295 is never a member) */
PG_FUNCTION_INFO_V1(memberset_contains_member);
Datum
memberset_contains_member(PG_FUNCTION_ARGS)
{
	MemberSet  *ms = getarg_memberset_cached(fcinfo, 0);
	int64		id = PG_GETARG_INT64(1);

	if (id < 0 || id > SEGMENT_MAX_MEMBER_ID)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(memberset_has_member(ms, (uint32) id));
}

/* id <@ set */
PG_FUNCTION_INFO_V1(memberset_member_contained);
Datum
memberset_member_contained(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	MemberSet  *ms = getarg_memberset_cached(fcinfo, 1);

	if (id < 0 || id > SEGMENT_MAX_MEMBER_ID)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(memberset_has_member(ms, (uint32) id));
}

PG_FUNCTION_INFO_V1(memberset_overlaps);
Datum
memberset_overlaps(PG_FUNCTION_ARGS)
{
	RoaringOwned *a = arg_roaring(fcinfo, 0);
	RoaringOwned *b = arg_roaring(fcinfo, 1);
	bool		result = roaring_bitmap_intersect(a->bitmap, b->bitmap);

	roaring_owned_free(a);
	roaring_owned_free(b);
	PG_RETURN_BOOL(result);
}

/* ------------------------------------------------------------------------
 * Functions
 * ------------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(memberset_cardinality);
Datum
memberset_cardinality(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64((int64) memberset_count(PG_GETARG_MEMBERSET_P(0)));
}

PG_FUNCTION_INFO_V1(memberset_is_empty);
Datum
memberset_is_empty(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(memberset_count(PG_GETARG_MEMBERSET_P(0)) == 0);
}

/* memberset(int8[]): NULL elements are an error, duplicates are fine. */
PG_FUNCTION_INFO_V1(memberset_from_array);
Datum
memberset_from_array(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	RoaringOwned *o;
	uint32		batch[ID_BATCH];
	int			nbatch = 0;

	deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	o = roaring_owned_create();
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("member ids must not be null"),
					 errdetail("Element %d of the array is null.", i + 1)));
		batch[nbatch++] = memberset_check_id(DatumGetInt64(elems[i]), "member id");
		if (nbatch == ID_BATCH)
		{
			roaring_bitmap_add_many(o->bitmap, nbatch, batch);
			nbatch = 0;
			CHECK_FOR_INTERRUPTS();
		}
	}
	if (nbatch > 0)
		roaring_bitmap_add_many(o->bitmap, nbatch, batch);
	pfree(elems);
	pfree(nulls);
	return return_roaring(o);
}

PG_FUNCTION_INFO_V1(memberset_to_array);
Datum
memberset_to_array(PG_FUNCTION_ARGS)
{
	RoaringOwned *o = arg_roaring(fcinfo, 0);
	uint64		n = roaring_bitmap_get_cardinality(o->bitmap);
	Datum	   *elems;
	roaring_uint32_iterator_t it;
	uint64		i = 0;
	ArrayType  *result;

	if (n > MaxAllocSize / sizeof(int64))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("member set has too many members (" UINT64_FORMAT ") for an array", n),
				 errhint("Use segment.member_ids() to read it as rows.")));
	elems = palloc(sizeof(Datum) * Max(n, 1));
	roaring_init_iterator(o->bitmap, &it);
	while (it.has_value && i < n)
	{
		elems[i++] = Int64GetDatum((int64) it.current_value);
		roaring_advance_uint32_iterator(&it);
	}
	roaring_owned_free(o);
	result = construct_array(elems, (int) i, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
							 TYPALIGN_DOUBLE);
	PG_RETURN_ARRAYTYPE_P(result);
}

/* member_ids(set): ascending, one per call; the bitmap lives in the SRF's context. */
typedef struct MemberIdsState
{
	RoaringOwned *set;
	roaring_uint32_iterator_t it;
} MemberIdsState;

PG_FUNCTION_INFO_V1(memberset_member_ids);
Datum
memberset_member_ids(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	MemberIdsState *st;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		st = palloc(sizeof(MemberIdsState));
		st->set = arg_roaring(fcinfo, 0);
		roaring_init_iterator(st->set->bitmap, &st->it);
		funcctx->user_fctx = st;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	st = (MemberIdsState *) funcctx->user_fctx;
	if (st->it.has_value)
	{
		int64		id = st->it.current_value;

		roaring_advance_uint32_iterator(&st->it);
		SRF_RETURN_NEXT(funcctx, Int64GetDatum(id));
	}
	roaring_owned_free(st->set);
	SRF_RETURN_DONE(funcctx);
}

/* memberset_stats(set): size and container make-up, for tuning and docs. */
PG_FUNCTION_INFO_V1(memberset_stats);
Datum
memberset_stats(PG_FUNCTION_ARGS)
{
	MemberSet  *ms = PG_GETARG_MEMBERSET_P(0);
	PortableView pv;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	int64		card = 0;
	int32		narray = 0,
				nbitset = 0,
				nrun = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "memberset_stats must return a record");
	tupdesc = BlessTupleDesc(tupdesc);

	memberset_view(ms, &pv);
	for (int32 i = 0; i < pv.n; i++)
	{
		card += pv_card(&pv, i);
		if (pv_isrun(&pv, i))
			nrun++;
		else if (pv_card(&pv, i) <= PORTABLE_ARRAY_MAX)
			narray++;
		else
			nbitset++;
	}
	values[0] = Int64GetDatum(card);
	values[1] = Int32GetDatum(pv.n);
	values[2] = Int32GetDatum(narray);
	values[3] = Int32GetDatum(nbitset);
	values[4] = Int32GetDatum(nrun);
	values[5] = Int64GetDatum((int64) VARSIZE(ms));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ------------------------------------------------------------------------
 * Aggregates
 *
 * The transition state (type internal) is a RoaringOwned allocated in, and
 * owned by, the aggregate context; a NULL state means no non-null input yet.
 * ------------------------------------------------------------------------
 */

static MemoryContext
agg_context(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext aggcxt;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context", fname)));
	return aggcxt;
}

static inline RoaringOwned *
agg_state(FunctionCallInfo fcinfo)
{
	return PG_ARGISNULL(0) ? NULL : (RoaringOwned *) PG_GETARG_POINTER(0);
}

/* memberset_agg(int8): add one id */
PG_FUNCTION_INFO_V1(memberset_agg_trans);
Datum
memberset_agg_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = agg_context(fcinfo, "memberset_agg_trans");
	RoaringOwned *state = agg_state(fcinfo);
	uint32		id;

	if (PG_ARGISNULL(1))
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state);
	}
	id = memberset_check_id(PG_GETARG_INT64(1), "member id");
	if (state == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(aggcxt);

		state = roaring_owned_create();
		MemoryContextSwitchTo(old);
	}
	roaring_bitmap_add(state->bitmap, id);
	PG_RETURN_POINTER(state);
}

/*
 * Transition of union_agg / intersect_agg: the first non-NULL set becomes the
 * state (copied into the aggregate context); later ones are ORed or ANDed
 * in. An empty intersection stays empty without reading more sets.
 */
static Datum
set_agg_trans(FunctionCallInfo fcinfo, const char *fname, bool intersect)
{
	MemoryContext aggcxt = agg_context(fcinfo, fname);
	RoaringOwned *state = agg_state(fcinfo);

	if (PG_ARGISNULL(1))
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state);
	}
	if (state == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(aggcxt);

		state = arg_roaring(fcinfo, 1);
		MemoryContextSwitchTo(old);
	}
	else if (!intersect || !roaring_bitmap_is_empty(state->bitmap))
	{
		RoaringOwned *in = arg_roaring(fcinfo, 1);

		if (intersect)
			roaring_bitmap_and_inplace(state->bitmap, in->bitmap);
		else
			roaring_bitmap_or_inplace(state->bitmap, in->bitmap);
		roaring_owned_free(in);
	}
	PG_RETURN_POINTER(state);
}

/* union_agg(memberset) */
PG_FUNCTION_INFO_V1(memberset_union_trans);
Datum
memberset_union_trans(PG_FUNCTION_ARGS)
{
	return set_agg_trans(fcinfo, "memberset_union_trans", false);
}

/* intersect_agg(memberset) */
PG_FUNCTION_INFO_V1(memberset_intersect_trans);
Datum
memberset_intersect_trans(PG_FUNCTION_ARGS)
{
	return set_agg_trans(fcinfo, "memberset_intersect_trans", true);
}

/*
 * Combine: state2 is left untouched (it may belong to another context);
 * when state1 is NULL a copy of state2 is made in the aggregate context.
 */
static Datum
agg_combine(FunctionCallInfo fcinfo, bool intersect)
{
	MemoryContext aggcxt = agg_context(fcinfo, "memberset combine function");
	RoaringOwned *state1 = agg_state(fcinfo);
	RoaringOwned *state2 = PG_ARGISNULL(1) ? NULL : (RoaringOwned *) PG_GETARG_POINTER(1);

	if (state2 == NULL)
	{
		if (state1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state1);
	}
	if (state1 == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(aggcxt);

		state1 = roaring_owned_copy(state2->bitmap);
		MemoryContextSwitchTo(old);
	}
	else if (intersect)
		roaring_bitmap_and_inplace(state1->bitmap, state2->bitmap);
	else
		roaring_bitmap_or_inplace(state1->bitmap, state2->bitmap);
	PG_RETURN_POINTER(state1);
}

PG_FUNCTION_INFO_V1(memberset_union_combine);
Datum
memberset_union_combine(PG_FUNCTION_ARGS)
{
	return agg_combine(fcinfo, false);
}

PG_FUNCTION_INFO_V1(memberset_intersect_combine);
Datum
memberset_intersect_combine(PG_FUNCTION_ARGS)
{
	return agg_combine(fcinfo, true);
}

/* State -> bytea (portable serialization), for parallel aggregation. */
PG_FUNCTION_INFO_V1(memberset_agg_serialize);
Datum
memberset_agg_serialize(PG_FUNCTION_ARGS)
{
	RoaringOwned *state = (RoaringOwned *) PG_GETARG_POINTER(0);
	size_t		size;
	bytea	   *result;

	(void) agg_context(fcinfo, "memberset_agg_serialize");
	roaring_bitmap_run_optimize(state->bitmap);
	size = roaring_bitmap_portable_size_in_bytes(state->bitmap);
	if (size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("member set is too large to serialize (%zu bytes)", size)));
	result = palloc(VARHDRSZ + size);
	roaring_bitmap_portable_serialize(state->bitmap, VARDATA(result));
	SET_VARSIZE(result, VARHDRSZ + size);
	PG_RETURN_BYTEA_P(result);
}

/* bytea -> state, in the current (per-tuple) context; combine copies it. */
PG_FUNCTION_INFO_V1(memberset_agg_deserialize);
Datum
memberset_agg_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	roaring_bitmap_t *r;

	(void) agg_context(fcinfo, "memberset_agg_deserialize");
	r = roaring_bitmap_portable_deserialize_safe(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	if (r == NULL)
		memberset_corrupt();
	PG_RETURN_POINTER(roaring_owned_adopt(r));
}

/* State -> memberset. Leaves the state's content unchanged. */
PG_FUNCTION_INFO_V1(memberset_agg_final);
Datum
memberset_agg_final(PG_FUNCTION_ARGS)
{
	RoaringOwned *state = (RoaringOwned *) PG_GETARG_POINTER(0);

	(void) agg_context(fcinfo, "memberset_agg_final");
	PG_RETURN_MEMBERSET_P(memberset_from_roaring(state->bitmap));
}
