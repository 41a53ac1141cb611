/*
 * mask.c
 *     segment.mask(text): masks a sensitive value for display to managers in
 *     opportunity messages ({mobile|mask}, {customer_name|mask}).
 *
 * Rules, by what the value looks like (characters, not bytes):
 *   - 7 or more digits and longer than 7 characters (phone, id or card
 *     number): keep the first 3 and the last 4 characters, '*' in between;
 *   - an e-mail (an '@' after the first character): keep the first
 *     character of the local part and the whole domain;
 *   - anything else (a name): keep the first character.
 * Written in C because a template masks every generated customer's fields:
 * the SQL version with regexp_replace cost 2 us a row.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(segment_mask);
Datum
segment_mask(PG_FUNCTION_ARGS)
{
	text	   *in = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(in);
	int			len = VARSIZE_ANY_EXHDR(in);
	int			nchars = 0;
	int			ndigits = 0;
	int			at_char = -1;	/* character index of the first '@' */
	int			keep_head;
	int			keep_tail;
	int			i;
	int			ci;
	StringInfoData out;

	for (i = 0; i < len; i += pg_mblen(s + i))
	{
		if (s[i] >= '0' && s[i] <= '9')
			ndigits++;
		else if (s[i] == '@' && at_char < 0)
			at_char = nchars;
		nchars++;
	}

	if (ndigits >= 7 && nchars > 7)
	{
		keep_head = 3;
		keep_tail = 4;
	}
	else if (at_char > 0)
	{
		keep_head = 1;
		keep_tail = nchars - at_char;
	}
	else
	{
		keep_head = 1;
		keep_tail = 0;
	}

	initStringInfo(&out);
	for (i = 0, ci = 0; i < len; ci++)
	{
		int			l = pg_mblen(s + i);

		if (ci < keep_head || ci >= nchars - keep_tail)
			appendBinaryStringInfo(&out, s + i, l);
		else
			appendStringInfoChar(&out, '*');
		i += l;
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
