/*
 * audience.c
 *     The audience language (see audience.h and docs/audiences.md): a
 *     tokenizer and recursive-descent parser, name resolution against the
 *     catalog (tags, named segments, scheme buckets, scorecard bands),
 *     loading of every referenced member set, and evaluation with in-place
 *     CRoaring operations.
 *
 * Resolution works in rounds: one SPI query looks up every name not seen
 * yet and returns, with each tag, bucket or band, its member set (and the
 * universe when a "not" needs it), and with each segment, its audience
 * text; when a name is a segment, the subject's other segments come along.
 * The segments reached are parsed, and the names only they use make a
 * second round: an audience costs one query, two if it uses segments.
 * Every segment is parsed, and evaluated, once however often it is used;
 * a depth-first search over segments reports cycles (42P17).
 *
 * Errors are raised with errposition() (1-based character offset into the
 * audience text); an error context callback turns that into
 * internalerrposition()/internalerrquery() so clients show the audience
 * with a caret under the offending spot, as for SQL function bodies. A name
 * reached through a segment is reported at the segment's name in the text
 * the caller gave, with a CONTEXT line naming the segments in between.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "internal_schema.h"
#include "audience.h"
#include "memberset_cache.h"
#include "state_read.h"
#include "subject.h"

/* ------------------------------------------------------------------------
 * Error positions
 * ------------------------------------------------------------------------
 */

int
audience_char_position(const char *text, int byte_offset)
{
	return pg_mbstrlen_with_len(text, byte_offset) + 1;
}

static void
audience_error_callback(void *arg)
{
	Audience   *a = (Audience *) arg;
	int			pos = geterrposition();

	if (pos > 0 && a->err_text != NULL)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(a->err_text);
		if (a->err_segment != NULL)
			errcontext("audience of segment \"%s\"", a->err_segment);
		if (a->err_via != NULL)
			errcontext("through %s %s", strstr(a->err_via, " -> ") ? "segments" : "segment",
					   a->err_via);
	}
	if (a->ntops > 1)
		errcontext("audience %d of %d", a->err_top + 1, a->ntops);
}

/* Errors about text a->err_text. */
#define AUDPOS(text, off) errposition(audience_char_position((text), (off)))

/* ------------------------------------------------------------------------
 * Tokenizer
 * ------------------------------------------------------------------------
 */

typedef enum TokKind
{
	TK_NAME,
	TK_AND,
	TK_OR,
	TK_NOT,
	TK_LPAREN,
	TK_RPAREN,
	TK_DOT,
	TK_END,
	TK_BAD
} TokKind;

typedef struct Token
{
	TokKind		kind;
	int			start;			/* byte offsets into the text */
	int			end;
	char	   *name;			/* TK_NAME: the name, quotes removed */
} Token;

typedef struct Parser
{
	const char *text;
	int			len;
	int			pos;
	Token		tok;
	Audience   *aud;
} Parser;

static inline bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline bool
is_ident_start(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c >= 0x80;
}

static inline bool
is_ident_cont(unsigned char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9');
}

static void
check_name_length(Parser *p, const char *name, int start)
{
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("name \"%s\" is too long", name),
				 errdetail("Names are at most %d bytes.", NAMEDATALEN - 1),
				 AUDPOS(p->text, start)));
}

static void
next_token(Parser *p)
{
	const char *t = p->text;
	int			i = p->pos;
	Token	   *tok = &p->tok;
	unsigned char c;

	while (i < p->len && is_space(t[i]))
		i++;
	tok->start = i;
	tok->name = NULL;
	if (i >= p->len)
	{
		tok->kind = TK_END;
		tok->end = i;
		p->pos = i;
		return;
	}
	c = (unsigned char) t[i];
	if (c == '(' || c == ')' || c == '.')
	{
		tok->kind = (c == '(') ? TK_LPAREN : (c == ')') ? TK_RPAREN : TK_DOT;
		i++;
	}
	else if (c == '"')
	{
		StringInfoData buf;

		initStringInfo(&buf);
		i++;
		for (;;)
		{
			if (i >= p->len)
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("unterminated quoted name in audience"),
						 errhint("Close the name with a double quote; write a double quote inside a name as \"\"."),
						 AUDPOS(t, tok->start)));
			if (t[i] == '"')
			{
				if (i + 1 < p->len && t[i + 1] == '"')
				{
					appendStringInfoChar(&buf, '"');
					i += 2;
					continue;
				}
				i++;
				break;
			}
			appendStringInfoChar(&buf, t[i]);
			i++;
		}
		if (buf.len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("zero-length quoted name in audience"),
					 AUDPOS(t, tok->start)));
		check_name_length(p, buf.data, tok->start);
		tok->kind = TK_NAME;
		tok->name = buf.data;
	}
	else if (is_ident_start(c))
	{
		char	   *word;

		while (i < p->len && is_ident_cont((unsigned char) t[i]))
			i++;
		word = pnstrdup(t + tok->start, i - tok->start);
		if (pg_strcasecmp(word, "and") == 0)
			tok->kind = TK_AND;
		else if (pg_strcasecmp(word, "or") == 0)
			tok->kind = TK_OR;
		else if (pg_strcasecmp(word, "not") == 0)
			tok->kind = TK_NOT;
		else
		{
			check_name_length(p, word, tok->start);
			tok->kind = TK_NAME;
			tok->name = word;
		}
	}
	else
	{
		/* something that cannot start a token: take a readable chunk */
		tok->kind = TK_BAD;
		if (c >= '0' && c <= '9')
		{
			while (i < p->len && is_ident_cont((unsigned char) t[i]))
				i++;
		}
		else if ((c == '&' || c == '|') && i + 1 < p->len && t[i + 1] == c)
			i += 2;
		else
			i += pg_mblen(t + i);
	}
	tok->end = i;
	p->pos = i;
}

static const char *
token_text(Parser *p, const Token *tok)
{
	return pnstrdup(p->text + tok->start, tok->end - tok->start);
}

/* Hint for a token that cannot appear where it is. */
static const char *
bad_token_hint(Parser *p, const Token *tok)
{
	const char *s = p->text + tok->start;

	if (tok->kind != TK_BAD)
		return NULL;
	if (*s == '&')
		return psprintf("Combine names with \"and\" (not \"%s\").", token_text(p, tok));
	if (*s == '|')
		return psprintf("Combine names with \"or\" (not \"%s\").", token_text(p, tok));
	if (*s == '!' || *s == '-' || *s == '~')
		return "Negate with \"not\".";
	if (*s >= '0' && *s <= '9')
		return "A name starts with a letter or an underscore; double-quote other names, e.g. \"2024_campaign\".";
	return "Names are letters, digits and underscores, or any text in double quotes.";
}

static void syntax_error(Parser *p, const Token *tok, const char *hint) pg_attribute_noreturn();

static void
syntax_error(Parser *p, const Token *tok, const char *hint)
{
	if (tok->kind == TK_END)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("syntax error at end of audience"),
				 hint ? errhint("%s", hint) : 0,
				 AUDPOS(p->text, tok->start)));
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("syntax error at or near \"%s\"", token_text(p, tok)),
			 hint ? errhint("%s", hint) : 0,
			 AUDPOS(p->text, tok->start)));
}

/* ------------------------------------------------------------------------
 * Parser
 * ------------------------------------------------------------------------
 */

static AudienceNode *
make_node(AudienceNodeKind kind, int location, AudienceNode *left, AudienceNode *right)
{
	AudienceNode *n = palloc0(sizeof(AudienceNode));

	n->kind = kind;
	n->location = location;
	n->left = left;
	n->right = right;
	n->ref = -1;
	return n;
}

static int
find_ref(Audience *a, const char *qualifier, const char *name)
{
	for (int i = 0; i < a->nrefs; i++)
	{
		AudienceRef *r = &a->refs[i];

		if (strcmp(r->name, name) == 0 &&
			((r->qualifier == NULL && qualifier == NULL) ||
			 (r->qualifier != NULL && qualifier != NULL && strcmp(r->qualifier, qualifier) == 0)))
			return i;
	}
	return -1;
}

/*
 * Index of the distinct name (qualifier, name), adding it if new. A new
 * name is reported where the text being parsed is used (a->cur_*).
 */
static int
add_ref(Audience *a, const char *qualifier, const char *name, int location)
{
	int			i = find_ref(a, qualifier, name);
	AudienceRef *r;

	if (i >= 0)
		return i;
	if (a->nrefs % 8 == 0)
		a->refs = a->nrefs == 0 ? palloc0(8 * sizeof(AudienceRef))
			: repalloc(a->refs, (a->nrefs + 8) * sizeof(AudienceRef));
	r = &a->refs[a->nrefs];
	memset(r, 0, sizeof(AudienceRef));
	r->kind = AUDREF_UNRESOLVED;
	r->qualifier = qualifier ? pstrdup(qualifier) : NULL;
	r->name = pstrdup(name);
	r->top = a->cur_top;
	r->location = a->cur_location >= 0 ? a->cur_location : location;
	r->via = a->cur_via;
	return a->nrefs++;
}

static AudienceNode *parse_or(Parser *p);

static const char *expect_name_hint =
"Expected a name, \"not\" or \"(\" here; double-quote a name that is a keyword, e.g. \"and\".";

static AudienceNode *
parse_primary(Parser *p)
{
	AudienceNode *n;

	check_stack_depth();
	switch (p->tok.kind)
	{
		case TK_NOT:
			{
				int			loc = p->tok.start;

				next_token(p);
				return make_node(AUD_NOT, loc, parse_primary(p), NULL);
			}
		case TK_LPAREN:
			{
				int			open = p->tok.start;

				next_token(p);
				n = parse_or(p);
				if (p->tok.kind != TK_RPAREN)
				{
					const char *hint = bad_token_hint(p, &p->tok);

					if (hint == NULL)
						hint = psprintf("The \"(\" at position %d is not closed.",
										audience_char_position(p->text, open));
					syntax_error(p, &p->tok, hint);
				}
				next_token(p);
				return n;
			}
		case TK_NAME:
			{
				char	   *first = p->tok.name;
				int			loc = p->tok.start;

				n = make_node(AUD_NAME, loc, NULL, NULL);
				next_token(p);
				if (p->tok.kind == TK_DOT)
				{
					next_token(p);
					if (p->tok.kind != TK_NAME)
						syntax_error(p, &p->tok,
									 psprintf("Expected a bucket name after \"%s.\" (scheme.bucket).", first));
					n->qualifier = first;
					n->name = p->tok.name;
					next_token(p);
				}
				else
					n->name = first;
				n->ref = add_ref(p->aud, n->qualifier, n->name, loc);
				return n;
			}
		default:
			{
				const char *hint = bad_token_hint(p, &p->tok);

				syntax_error(p, &p->tok, hint ? hint : expect_name_hint);
			}
	}
	return NULL;				/* not reached */
}

static AudienceNode *
parse_and(Parser *p)
{
	AudienceNode *left = parse_primary(p);

	while (p->tok.kind == TK_AND)
	{
		int			loc = p->tok.start;

		next_token(p);
		left = make_node(AUD_AND, loc, left, parse_primary(p));
	}
	return left;
}

static AudienceNode *
parse_or(Parser *p)
{
	AudienceNode *left;

	check_stack_depth();
	left = parse_and(p);
	while (p->tok.kind == TK_OR)
	{
		int			loc = p->tok.start;

		next_token(p);
		left = make_node(AUD_OR, loc, left, parse_and(p));
	}
	return left;
}

/* Does evaluating this tree (segments aside) read the universe? */
static bool
needs_universe(AudienceNode *n)
{
	check_stack_depth();
	switch (n->kind)
	{
		case AUD_NAME:
			return false;
		case AUD_NOT:
			return true;
		case AUD_AND:
			/* mirrors count_uses(): x and not y needs no universe */
			if (n->right->kind == AUD_NOT)
				return needs_universe(n->left) || needs_universe(n->right->left);
			if (n->left->kind == AUD_NOT)
				return needs_universe(n->right) || needs_universe(n->left->left);
			return needs_universe(n->left) || needs_universe(n->right);
		case AUD_OR:
			return needs_universe(n->left) || needs_universe(n->right);
	}
	return false;
}

/* Parse text into a tree, adding its names to a->refs. err_text must be text. */
static AudienceNode *
parse_text(Audience *a, const char *text)
{
	Parser		p;
	AudienceNode *root;

	p.text = text;
	p.len = strlen(text);
	p.pos = 0;
	p.aud = a;

	next_token(&p);
	if (p.tok.kind == TK_END)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("audience is empty"),
				 errhint("Write tag names combined with and, or, not and parentheses, e.g. high_value and not dormant.")));
	root = parse_or(&p);
	if (p.tok.kind != TK_END)
	{
		const char *hint = bad_token_hint(&p, &p.tok);

		if (hint == NULL)
		{
			if (p.tok.kind == TK_RPAREN)
				hint = "This \")\" has no matching \"(\".";
			else
				hint = "Combine names with \"and\" or \"or\".";
		}
		syntax_error(&p, &p.tok, hint);
	}
	if (needs_universe(root))
		a->needs_universe = true;
	return root;
}

static Audience *
audience_new(int ntops, const char **texts)
{
	Audience   *a = palloc0(sizeof(Audience));

	a->ntops = ntops;
	a->tops = palloc(sizeof(char *) * ntops);
	memcpy(a->tops, texts, sizeof(char *) * ntops);
	a->text = texts[0];
	a->roots = palloc0(sizeof(AudienceNode *) * ntops);
	a->cur_location = -1;
	a->not_location = -1;
	return a;
}

static void
push_error_context(Audience *a, ErrorContextCallback *errcb)
{
	errcb->callback = audience_error_callback;
	errcb->arg = (void *) a;
	errcb->previous = error_context_stack;
	error_context_stack = errcb;
}

/* Parse every top-level text. */
static void
parse_tops(Audience *a)
{
	for (int t = 0; t < a->ntops; t++)
	{
		a->cur_top = a->err_top = t;
		a->err_text = a->tops[t];
		a->err_segment = NULL;
		a->err_via = NULL;
		a->roots[t] = parse_text(a, a->tops[t]);
	}
	a->root = a->roots[0];
}

Audience *
audience_parse(const char *text)
{
	ErrorContextCallback errcb;
	Audience   *a = audience_new(1, &text);

	push_error_context(a, &errcb);
	parse_tops(a);
	error_context_stack = errcb.previous;
	return a;
}

char *
audience_quote_name(const char *name)
{
	bool		plain = is_ident_start((unsigned char) name[0]);
	StringInfoData buf;

	for (const char *s = name; *s && plain; s++)
		plain = is_ident_cont((unsigned char) *s);
	if (plain && pg_strcasecmp(name, "and") != 0 && pg_strcasecmp(name, "or") != 0 &&
		pg_strcasecmp(name, "not") != 0)
		return pstrdup(name);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '"');
	for (const char *s = name; *s; s++)
	{
		if (*s == '"')
			appendStringInfoChar(&buf, '"');
		appendStringInfoChar(&buf, *s);
	}
	appendStringInfoChar(&buf, '"');
	return buf.data;
}

/* ------------------------------------------------------------------------
 * Resolution and loading
 * ------------------------------------------------------------------------
 */

/* Deserialize a memberset datum from an SPI tuple into cxt. */
static RoaringOwned *
load_set(Datum d, MemoryContext cxt)
{
	MemberSet  *ms = (MemberSet *) PG_DETOAST_DATUM(d);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	RoaringOwned *o = memberset_to_roaring(ms);

	MemoryContextSwitchTo(old);
	if ((Pointer) ms != DatumGetPointer(d))
		pfree(ms);
	return o;
}

/*
 * One round: look up every name not looked up yet, and the universe if
 * want_universe. With load, the member sets come too. When one of the names
 * is a segment, the subject's other segments come along (kind 5), so that
 * the segments they lead to need no further round.
 *
 * Columns: kind (0 universe, 1 tag, 2 segment, 3 bucket, 4 band, 5 other
 * segment of the subject), name, qualifier, id, subject_id, subject name,
 * flag (tag: manual; bucket/band: missing), active, refreshed, set, manual
 * set, audience.
 */
static const char *lookup_sql =
	"SELECT 1, t.name, NULL::name, t.tag_id, t.subject_id, s.name, t.rule IS NULL, t.active,"
	"       st.tag_id IS NOT NULL,"
	"       CASE WHEN $6 AND t.subject_id = $4 AND t.active AND t.rule IS NOT NULL"
	"            THEN segment_internal._live_tag(st.members, t.subject_id, t.tag_id) END,"
	"       CASE WHEN $6 AND t.subject_id = $4 AND t.active THEN"
	"            (SELECT segment.memberset_agg(m.member_id) FROM segment.manual_tag m"
	"              WHERE m.tag_id = t.tag_id"
	"                AND (m.expires_at IS NULL OR m.expires_at > now())) END,"
	"       NULL::text"
	"  FROM segment.tag t"
	"  JOIN segment.subject s ON s.subject_id = t.subject_id"
	"  LEFT JOIN segment.tag_state st ON st.tag_id = t.tag_id"
	" WHERE t.name = ANY ($1)"
	" UNION ALL "
	"SELECT 2, g.name, NULL, g.segment_id, g.subject_id, s.name, false, true, true,"
	"       NULL, NULL, g.audience"
	"  FROM segment.segment g"
	"  JOIN segment.subject s ON s.subject_id = g.subject_id"
	" WHERE g.name = ANY ($1)"
	" UNION ALL "
	"SELECT 5, g.name, NULL, g.segment_id, g.subject_id, NULL, false, true, true,"
	"       NULL, NULL, g.audience"
	"  FROM segment.segment g"
	" WHERE $7 AND g.subject_id = $4 AND NOT g.name = ANY ($1)"
	"   AND EXISTS (SELECT 1 FROM segment.segment x"
	"                WHERE x.name = ANY ($1) AND x.subject_id = $4)"
	" UNION ALL "
	"SELECT 3, r.n, r.q, c.scheme_id, c.subject_id, s.name, b.name IS NULL, c.active,"
	"       bs.scheme_id IS NOT NULL,"
	"       CASE WHEN $6 AND c.subject_id = $4 AND c.active"
	"            THEN segment_internal._live_bucket(bs.members, c.subject_id, c.scheme_id, r.n) END,"
	"       NULL, NULL"
	"  FROM unnest($2, $3) AS r(q, n)"
	"  JOIN segment.scheme c ON c.name = r.q"
	"  JOIN segment.subject s ON s.subject_id = c.subject_id"
	"  LEFT JOIN segment.scheme_bucket b ON b.scheme_id = c.scheme_id AND b.name = r.n"
	"  LEFT JOIN segment.bucket_state bs ON bs.scheme_id = c.scheme_id AND bs.bucket = r.n"
	" UNION ALL "
	"SELECT 4, r.n, r.q, c.scorecard_id, c.subject_id, s.name, d.name IS NULL, c.active,"
	"       EXISTS (SELECT 1 FROM segment.score_state x WHERE x.scorecard_id = c.scorecard_id),"
	"       CASE WHEN $6 AND c.subject_id = $4 AND c.active AND d.name IS NOT NULL THEN"
	"            (SELECT segment.union_agg(x.members)"
	"               FROM segment_internal._live_scores(c.scorecard_id, c.subject_id) x"
	"              WHERE (d.min_score IS NULL OR x.score >= d.min_score)"
	"                AND (d.max_score IS NULL OR x.score < d.max_score)) END,"
	"       NULL, NULL"
	"  FROM unnest($2, $3) AS r(q, n)"
	"  JOIN segment.scorecard c ON c.name = r.q"
	"  JOIN segment.subject s ON s.subject_id = c.subject_id"
	"  LEFT JOIN segment.scorecard_band d ON d.scorecard_id = c.scorecard_id AND d.name = r.n"
	" UNION ALL "
	"SELECT 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
	"       segment_internal._live_universe(u.universe, u.subject_id), NULL, NULL"
	"  FROM segment.subject_state u"
	" WHERE u.subject_id = $4 AND $5";

/*
 * Snapshot mode (audience_set_snapshot): sets come from the per-date tables
 * of one retained snapshot instead of the current state. The query is
 * lookup_sql with those sources swapped in.
 */
static bool snapshot_mode = false;
static DateADT snapshot_mode_date;

void
audience_set_snapshot(bool on, DateADT d)
{
	snapshot_mode = on;
	snapshot_mode_date = d;
}

static char *
replace_once(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	StringInfoData buf;

	if (at == NULL)
		elog(ERROR, "audience lookup: \"%s\" not found in the query", from);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, text, at - text);
	appendStringInfoString(&buf, to);
	appendStringInfoString(&buf, at + strlen(from));
	return buf.data;
}

static const char *
snapshot_lookup_sql(void)
{
	static char *sql = NULL;

	if (sql == NULL)
	{
		char	   *q = (char *) lookup_sql;

		q = replace_once(q, "LEFT JOIN segment.tag_state st ON st.tag_id = t.tag_id",
						 "LEFT JOIN segment.tag_snapshot st ON st.tag_id = t.tag_id AND st.snapshot_date = $8");
		q = replace_once(q, "segment_internal._live_tag(st.members, t.subject_id, t.tag_id)", "st.members");
		q = replace_once(q, "segment_internal._live_universe(u.universe, u.subject_id)", "u.universe");
		q = replace_once(q, "FROM segment.subject_state u", "FROM segment.subject_snapshot u");
		q = replace_once(q, "WHERE u.subject_id = $4 AND $5", "WHERE u.subject_id = $4 AND $5 AND u.snapshot_date = $8");
		sql = MemoryContextStrdup(TopMemoryContext, q);
	}
	return sql;
}

static void
lookup_round(Audience *a, const SubjectInfo *subject, bool want_universe, bool load)
{
	int			spi_nest;
	static SPIPlanPtr current_plan = NULL;
	static Oid	current_typid = InvalidOid;
	static SPIPlanPtr snapshot_plan = NULL;
	static Oid	snapshot_typid = InvalidOid;
	SPIPlanPtr	plan = snapshot_mode ? snapshot_plan : current_plan;
	Oid			plan_typid = snapshot_mode ? snapshot_typid : current_typid;
	MemoryContext callercxt = CurrentMemoryContext;
	int			n = Max(a->nrefs, 1);
	Datum	   *names = palloc(sizeof(Datum) * n);
	Datum	   *quals = palloc(sizeof(Datum) * n);
	Datum	   *qnames = palloc(sizeof(Datum) * n);
	int			nnames = 0,
				nquals = 0;
	Oid			argtypes[8] = {NAMEARRAYOID, NAMEARRAYOID, NAMEARRAYOID, INT4OID, BOOLOID, BOOLOID, BOOLOID, DATEOID};
	Datum		args[8];
	Oid			typid = memberset_type_oid();
	int			ret;

	for (int i = 0; i < a->nrefs; i++)
	{
		AudienceRef *r = &a->refs[i];
		NameData   *nm;

		if (r->looked_up)
			continue;
		r->pending = true;
		nm = palloc(sizeof(NameData));
		namestrcpy(nm, r->name);
		if (r->qualifier == NULL)
			names[nnames++] = NameGetDatum(nm);
		else
		{
			NameData   *q = palloc(sizeof(NameData));

			namestrcpy(q, r->qualifier);
			quals[nquals] = NameGetDatum(q);
			qnames[nquals++] = NameGetDatum(nm);
		}
	}
	args[0] = PointerGetDatum(construct_array(names, nnames, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
	args[1] = PointerGetDatum(construct_array(quals, nquals, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
	args[2] = PointerGetDatum(construct_array(qnames, nquals, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
	args[3] = Int32GetDatum(subject->subject_id);
	args[4] = BoolGetDatum(want_universe);
	args[5] = BoolGetDatum(load);
	args[6] = BoolGetDatum(!a->segments_fetched);
	args[7] = DateADTGetDatum(snapshot_mode_date);

	spi_nest = segment_spi_connect();
	if (plan != NULL && plan_typid != typid)
	{
		SPI_freeplan(plan);
		plan = NULL;
	}
	if (plan == NULL)
	{
		/*
		 * A generic plan: the default (a custom plan per call while the
		 * generic one looks dearer) re-plans this six-branch query at every
		 * call, which costs several times the execution.
		 */
		SPIPlanPtr	p = snapshot_mode ?
			SPI_prepare_cursor(segment_internal_sql(snapshot_lookup_sql()), 8, argtypes, CURSOR_OPT_GENERIC_PLAN) :
			SPI_prepare_cursor(segment_internal_sql(lookup_sql), 7, argtypes, CURSOR_OPT_GENERIC_PLAN);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for the audience lookup: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		plan = p;
	}
	if (snapshot_mode)
	{
		snapshot_plan = plan;
		snapshot_typid = typid;
	}
	else
	{
		current_plan = plan;
		current_typid = typid;
	}
	ret = SPI_execute_plan(plan, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "loading audience sets failed: %s", SPI_result_code_string(ret));

	for (uint64 k = 0; k < SPI_processed; k++)
	{
		HeapTuple	tup = SPI_tuptable->vals[k];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		int			kind = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		char	   *qualifier = NULL;
		char	   *name;
		int			i;
		AudienceRef *r;
		Datum		d;

		if (kind == 0)
		{
			d = SPI_getbinval(tup, td, 10, &isnull);
			if (!isnull)
			{
				a->universe = load_set(d, callercxt);
				a->universe_bm = a->universe->bitmap;
			}
			continue;
		}
		name = NameStr(*DatumGetName(SPI_getbinval(tup, td, 2, &isnull)));
		if (kind == 5)
		{
			MemoryContext old = MemoryContextSwitchTo(callercxt);

			if (a->nknown % 16 == 0)
			{
				int			size = a->nknown + 16;

				a->known_names = a->nknown == 0 ? palloc(size * sizeof(char *))
					: repalloc(a->known_names, size * sizeof(char *));
				a->known_texts = a->nknown == 0 ? palloc(size * sizeof(char *))
					: repalloc(a->known_texts, size * sizeof(char *));
				a->known_ids = a->nknown == 0 ? palloc(size * sizeof(int32))
					: repalloc(a->known_ids, size * sizeof(int32));
			}
			a->known_names[a->nknown] = pstrdup(name);
			a->known_texts[a->nknown] = TextDatumGetCString(SPI_getbinval(tup, td, 12, &isnull));
			a->known_ids[a->nknown] = DatumGetInt32(SPI_getbinval(tup, td, 4, &isnull));
			a->nknown++;
			MemoryContextSwitchTo(old);
			continue;
		}
		d = SPI_getbinval(tup, td, 3, &isnull);
		if (!isnull)
			qualifier = NameStr(*DatumGetName(d));
		i = find_ref(a, qualifier, name);
		if (i < 0 || !a->refs[i].pending)
			continue;
		r = &a->refs[i];
		/* one name, one meaning: a tag before a segment, a scheme before a scorecard */
		if (r->kind != AUDREF_UNRESOLVED)
			continue;
		if (snapshot_mode && (kind == 3 || kind == 4))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("\"%s.%s\" is a %s, which is not kept per snapshot date", qualifier, name,
							kind == 3 ? "scheme bucket" : "scorecard band"),
					 errhint("Read it without as_of (the current snapshot); as_of => date reads tags and segments of tags.")));
		if (kind == 2)
			a->segments_fetched = true;
		r->kind = kind == 1 ? AUDREF_TAG : kind == 2 ? AUDREF_SEGMENT :
			kind == 3 ? AUDREF_BUCKET : AUDREF_BAND;
		r->id = DatumGetInt32(SPI_getbinval(tup, td, 4, &isnull));
		r->subject_id = DatumGetInt32(SPI_getbinval(tup, td, 5, &isnull));
		r->subject_name = MemoryContextStrdup(callercxt,
											  NameStr(*DatumGetName(SPI_getbinval(tup, td, 6, &isnull))));
		if (DatumGetBool(SPI_getbinval(tup, td, 7, &isnull)))
		{
			if (r->kind == AUDREF_TAG)
				r->manual = true;
			else
				r->missing = true;
		}
		r->active = DatumGetBool(SPI_getbinval(tup, td, 8, &isnull));
		r->refreshed = DatumGetBool(SPI_getbinval(tup, td, 9, &isnull));
		d = SPI_getbinval(tup, td, 10, &isnull);
		if (!isnull)
		{
			r->set = load_set(d, callercxt);
			r->bm = r->set->bitmap;
		}
		d = SPI_getbinval(tup, td, 11, &isnull);
		if (!isnull)
			r->manual_set = load_set(d, callercxt);
		d = SPI_getbinval(tup, td, 12, &isnull);
		if (!isnull)
			r->audience = MemoryContextStrdup(callercxt, TextDatumGetCString(d));
	}
	segment_spi_finish(spi_nest);

	for (int i = 0; i < a->nrefs; i++)
	{
		if (a->refs[i].pending)
			a->refs[i].looked_up = true;
		a->refs[i].pending = false;
	}
	if (want_universe)
		a->universe_fetched = true;
}

/*
 * A round without the catalog query, for the common audience: every name
 * not looked up yet is an unqualified name of a tag of this subject. The
 * names, sets and universe are read directly (state_read.h), the stored
 * sets through the backend-local cache. Returns false, having changed
 * nothing, when it cannot answer (a name that is not a tag of the subject,
 * snapshot mode, or whatever state_read_begin refuses): the catalog query
 * then does the round, and raises the errors.
 */
static bool
fast_lookup_round(Audience *a, const SubjectInfo *subject, bool want_universe)
{
	StateRead  *sr;
	StateTag   *tags;

	if (snapshot_mode)
		return false;
	for (int i = 0; i < a->nrefs; i++)
		if (!a->refs[i].looked_up && a->refs[i].qualifier != NULL)
			return false;
	sr = state_read_begin(subject->subject_id);
	if (sr == NULL)
		return false;
	/* first only the names, so that nothing is loaded for an audience the query must do */
	tags = palloc(sizeof(StateTag) * Max(a->nrefs, 1));
	for (int i = 0; i < a->nrefs; i++)
	{
		if (a->refs[i].looked_up)
			continue;
		if (!state_read_tag(sr, a->refs[i].name, &tags[i]) ||
			tags[i].subject_id != subject->subject_id)
		{
			state_read_end(sr);
			pfree(tags);
			return false;
		}
	}
	for (int i = 0; i < a->nrefs; i++)
	{
		AudienceRef *r = &a->refs[i];
		StateTag   *t = &tags[i];

		if (r->looked_up)
			continue;
		state_read_tag_sets(sr, t);
		r->kind = AUDREF_TAG;
		r->looked_up = true;
		r->id = t->tag_id;
		r->subject_id = t->subject_id;
		r->subject_name = pstrdup(NameStr(subject->name));
		r->manual = t->manual;
		r->active = t->active;
		r->refreshed = t->refreshed;
		r->bm = t->set;
		r->set = t->set_owned;
		r->manual_set = t->manual_set;
	}
	pfree(tags);
	if (want_universe)
	{
		(void) state_read_universe(sr, &a->universe_bm, &a->universe);
		a->universe_fetched = true;
	}
	state_read_end(sr);
	return true;
}

/* Parse the audience of segment ref i (of the subject); its names join a->refs. */
static void
parse_segment(Audience *a, int i)
{
	AudienceRef *r = &a->refs[i];
	char	   *via = r->via ? psprintf("%s -> \"%s\"", r->via, r->name)
		: psprintf("\"%s\"", r->name);
	AudienceNode *root;

	a->cur_top = a->err_top = r->top;
	a->cur_location = r->location;
	a->cur_via = via;
	a->err_text = r->audience;
	a->err_segment = r->name;
	a->err_via = r->via;
	root = parse_text(a, r->audience);	/* may move a->refs */
	a->refs[i].root = root;
	a->cur_location = -1;
	a->cur_via = NULL;
	a->err_segment = NULL;
	a->err_via = NULL;
}

/* Resolve ref i from the segments fetched earlier, if it is one of them. */
static void
resolve_known(Audience *a, const SubjectInfo *subject, int i)
{
	AudienceRef *r = &a->refs[i];

	if (r->looked_up || r->qualifier != NULL)
		return;
	for (int k = 0; k < a->nknown; k++)
	{
		if (strcmp(a->known_names[k], r->name) == 0)
		{
			r->kind = AUDREF_SEGMENT;
			r->looked_up = true;
			r->id = a->known_ids[k];
			r->subject_id = subject->subject_id;
			r->subject_name = pstrdup(NameStr(subject->name));
			r->active = r->refreshed = true;
			r->audience = a->known_texts[k];
			return;
		}
	}
}

/*
 * Look every name up until the audiences of all the segments reached are
 * parsed. With load, sets come with the names (and the universe once some
 * tree needs it).
 */
static void
resolve(Audience *a, const SubjectInfo *subject, bool load)
{
	for (;;)
	{
		bool		pending = false;
		bool		want_universe;

		/* expand what is known (a->nrefs grows as segments are parsed) */
		for (int i = 0; i < a->nrefs; i++)
		{
			AudienceRef *r;

			resolve_known(a, subject, i);
			r = &a->refs[i];
			if (r->kind == AUDREF_SEGMENT && r->root == NULL && r->audience != NULL &&
				r->subject_id == subject->subject_id)
				parse_segment(a, i);
			if (!a->refs[i].looked_up)
				pending = true;
		}
		want_universe = load && a->needs_universe && !a->universe_fetched;
		if (!pending && !want_universe)
			break;
		CHECK_FOR_INTERRUPTS();
		if (!(load && fast_lookup_round(a, subject, want_universe)))
			lookup_round(a, subject, want_universe, load);
	}
}

/* ------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------
 */

/* Case-insensitive look-alike among the subject's tags and segments. */
static char *
suggest_name(const SubjectInfo *subject, const char *name)
{
	int			spi_nest;
	Datum		args[2];
	Oid			types[2] = {INT4OID, TEXTOID};
	char	   *result = NULL;
	MemoryContext callercxt = CurrentMemoryContext;

	args[0] = Int32GetDatum(subject->subject_id);
	args[1] = CStringGetTextDatum(name);
	spi_nest = segment_spi_connect();
	if (SPI_execute_with_args("SELECT n::text FROM ("
							  " SELECT name AS n FROM segment.tag WHERE subject_id = $1"
							  " UNION ALL SELECT name FROM segment.segment WHERE subject_id = $1) x"
							  " WHERE lower(n::text) = lower($2)"
							  " ORDER BY n LIMIT 1",
							  2, types, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		result = MemoryContextStrdup(callercxt, s);
	}
	segment_spi_finish(spi_nest);
	return result;
}

/* The member names of a scheme or scorecard, for a hint. */
static char *
list_members(AudienceRef *r)
{
	int			spi_nest;
	Datum		args[1];
	Oid			types[1] = {INT4OID};
	char	   *result = NULL;
	MemoryContext callercxt = CurrentMemoryContext;
	const char *sql = r->kind == AUDREF_BUCKET
		? "SELECT string_agg(name::text, ', ' ORDER BY position) FROM segment.scheme_bucket WHERE scheme_id = $1"
		: "SELECT string_agg(name::text, ', ' ORDER BY min_score NULLS FIRST, name) FROM segment.scorecard_band"
		"  WHERE scorecard_id = $1";

	args[0] = Int32GetDatum(r->id);
	spi_nest = segment_spi_connect();
	if (SPI_execute_with_args(sql, 1, types, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (s != NULL)
			result = MemoryContextStrdup(callercxt, s);
	}
	segment_spi_finish(spi_nest);
	return result;
}

static const char *
ref_kind_word(const AudienceRef *r)
{
	switch (r->kind)
	{
		case AUDREF_TAG:
			return "tag";
		case AUDREF_SEGMENT:
			return "segment";
		case AUDREF_BUCKET:
			return "scheme";
		case AUDREF_BAND:
			return "scorecard";
		default:
			return "name";
	}
}

/*
 * Is the name usable? Unknown names and names of another subject always
 * fail; with load, so do inactive and never refreshed ones.
 */
static void
check_ref(Audience *a, const SubjectInfo *subject, AudienceRef *r, bool load)
{
	const char *sname = NameStr(subject->name);
	const char *text = a->tops[r->top];
	char	   *what;

	a->err_top = r->top;
	a->err_text = text;
	a->err_segment = NULL;
	a->err_via = r->via;

	if (r->kind == AUDREF_UNRESOLVED && r->qualifier != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("unknown scheme \"%s\" in audience", r->qualifier),
				 errdetail("\"%s.%s\" names a bucket of a scheme or a band of a scorecard, and subject \"%s\" has no scheme or scorecard \"%s\".",
						   r->qualifier, r->name, sname, r->qualifier),
				 errhint("To use a tag whose name contains a dot, double-quote it: \"%s.%s\".",
						 r->qualifier, r->name),
				 AUDPOS(text, r->location)));
	if (r->kind == AUDREF_UNRESOLVED)
	{
		char	   *suggestion = suggest_name(subject, r->name);

		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("unknown name \"%s\" in audience", r->name),
				 errdetail("Subject \"%s\" has no tag or segment named \"%s\".", sname, r->name),
				 suggestion
				 ? errhint("Names are case-sensitive; did you mean \"%s\"?", suggestion)
				 : errhint("The tags of subject \"%s\" are listed in segment.tag.", sname),
				 AUDPOS(text, r->location)));
	}
	what = r->qualifier ? r->qualifier : r->name;
	if (r->subject_id != subject->subject_id)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s \"%s\" belongs to subject \"%s\", not \"%s\"",
						ref_kind_word(r), what, r->subject_name, sname),
				 r->kind == AUDREF_TAG ? errhint("An audience combines tags of one subject.")
				 : errhint("An audience combines names of one subject."),
				 AUDPOS(text, r->location)));
	if (r->missing)
	{
		char	   *members = list_members(r);

		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s \"%s\" has no %s \"%s\"", ref_kind_word(r), r->qualifier,
						r->kind == AUDREF_BUCKET ? "bucket" : "band", r->name),
				 members
				 ? errhint("Its %s are: %s.", r->kind == AUDREF_BUCKET ? "buckets" : "bands", members)
				 : errhint("It has no %s.", r->kind == AUDREF_BUCKET ? "buckets" : "bands"),
				 AUDPOS(text, r->location)));
	}
	if (!load || r->kind == AUDREF_SEGMENT)
		return;
	if (!r->active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s \"%s\" is inactive", ref_kind_word(r), what),
				 r->kind == AUDREF_TAG
				 ? errhint("Reactivate it with segment.alter_tag('%s', active => true), or leave it out of the audience.",
						   r->name)
				 : errhint("Reactivate it, or leave it out of the audience."),
				 AUDPOS(text, r->location)));
	if (!(r->kind == AUDREF_TAG && r->manual) && !r->refreshed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s \"%s\" has not been refreshed", ref_kind_word(r), what),
				 errdetail("Its members are computed by a refresh of subject \"%s\".", sname),
				 errhint("Run: select * from segment.refresh('%s');", sname),
				 AUDPOS(text, r->location)));
}

static int
ref_order_cmp(const void *x, const void *y, void *arg)
{
	const AudienceRef *refs = (const AudienceRef *) arg;
	int			i = *(const int *) x;
	int			j = *(const int *) y;

	if (refs[i].top != refs[j].top)
		return refs[i].top < refs[j].top ? -1 : 1;
	if (refs[i].location != refs[j].location)
		return refs[i].location < refs[j].location ? -1 : 1;
	return i < j ? -1 : i > j ? 1 : 0;
}

/* Check every name, reporting the first wrong one in text order. */
static void
check_refs(Audience *a, const SubjectInfo *subject, bool load)
{
	int		   *order = palloc(sizeof(int) * Max(a->nrefs, 1));

	for (int i = 0; i < a->nrefs; i++)
		order[i] = i;
	qsort_arg(order, a->nrefs, sizeof(int), ref_order_cmp, a->refs);
	for (int k = 0; k < a->nrefs; k++)
		check_ref(a, subject, &a->refs[order[k]], load);
	pfree(order);
}

/* ------------------------------------------------------------------------
 * Cycles of segments: depth-first search with the current path on a stack
 * ------------------------------------------------------------------------
 */

typedef struct CycleSearch
{
	Audience   *a;
	int		   *path;
	int			depth;
} CycleSearch;

static void visit_tree(CycleSearch *cs, AudienceNode *n);

static void
report_cycle(CycleSearch *cs, int i)
{
	Audience   *a = cs->a;
	StringInfoData buf;
	int			from = 0;
	int			at = -1;

	while (cs->path[from] != i)
		from++;
	initStringInfo(&buf);
	for (int k = from; k < cs->depth; k++)
	{
		AudienceRef *r = &a->refs[cs->path[k]];

		appendStringInfo(&buf, "%s -> ", r->name);
		if (at < 0 && r->location >= 0)
			at = cs->path[k];
	}
	appendStringInfoString(&buf, a->refs[i].name);
	if (at < 0)
		at = i;

	a->err_top = a->refs[at].top;
	a->err_text = a->tops[a->refs[at].top];
	a->err_segment = NULL;
	a->err_via = NULL;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
			 errmsg("cycle in segment definitions: %s", buf.data),
			 errdetail("A segment cannot use itself, directly or through other segments."),
			 a->refs[at].location >= 0 ? AUDPOS(a->err_text, a->refs[at].location) : 0));
}

static void
visit_segment(CycleSearch *cs, int i)
{
	AudienceRef *r = &cs->a->refs[i];

	r->visit = 1;
	cs->path[cs->depth++] = i;
	if (r->root != NULL)
		visit_tree(cs, r->root);
	cs->depth--;
	cs->a->refs[i].visit = 2;
}

static void
visit_tree(CycleSearch *cs, AudienceNode *n)
{
	check_stack_depth();
	switch (n->kind)
	{
		case AUD_NAME:
			{
				AudienceRef *r = &cs->a->refs[n->ref];

				if (r->kind != AUDREF_SEGMENT)
					return;
				if (r->visit == 1)
					report_cycle(cs, n->ref);
				if (r->visit == 0)
					visit_segment(cs, n->ref);
				return;
			}
		case AUD_NOT:
			visit_tree(cs, n->left);
			return;
		case AUD_AND:
		case AUD_OR:
			visit_tree(cs, n->left);
			visit_tree(cs, n->right);
			return;
	}
}

/* defining: index of the segment whose (new) audience is top 0, or -1. */
static void
check_cycles(Audience *a, int defining)
{
	CycleSearch cs;

	cs.a = a;
	cs.path = palloc(sizeof(int) * (a->nrefs + 1));
	cs.depth = 0;
	if (defining >= 0)
		visit_segment(&cs, defining);
	for (int t = 0; t < a->ntops; t++)
		visit_tree(&cs, a->roots[t]);
	pfree(cs.path);
}

/* ------------------------------------------------------------------------
 * Evaluation
 *
 * count_uses() mirrors evaluate(): it counts how many times each loaded set
 * (and the universe) will be read, so the last reader can take the set
 * itself and modify it in place instead of copying it. A segment's tree is
 * walked (and evaluated) once; its set then counts like a tag's.
 * ------------------------------------------------------------------------
 */

/* top, location: where a "not" in this tree is reported (location -1: its own) */
static void
count_uses(Audience *a, AudienceNode *n, int top, int location)
{
	check_stack_depth();
	switch (n->kind)
	{
		case AUD_NAME:
			{
				AudienceRef *r = &a->refs[n->ref];

				r->uses++;
				if (r->kind == AUDREF_SEGMENT && !r->counted)
				{
					r->counted = true;
					count_uses(a, r->root, r->top, r->location);
				}
				break;
			}
		case AUD_NOT:
			{
				int			loc = location >= 0 ? location : n->location;

				if (a->not_location < 0 || top < a->not_top ||
					(top == a->not_top && loc < a->not_location))
				{
					a->not_top = top;
					a->not_location = loc;
				}
				a->universe_uses++;
				count_uses(a, n->left, top, location);
				break;
			}
		case AUD_AND:
			if (n->right->kind == AUD_NOT)
			{
				count_uses(a, n->left, top, location);
				count_uses(a, n->right->left, top, location);
			}
			else if (n->left->kind == AUD_NOT)
			{
				count_uses(a, n->right, top, location);
				count_uses(a, n->left->left, top, location);
			}
			else
			{
				count_uses(a, n->left, top, location);
				count_uses(a, n->right, top, location);
			}
			break;
		case AUD_OR:
			count_uses(a, n->left, top, location);
			count_uses(a, n->right, top, location);
			break;
	}
}

/*
 * A value during evaluation: bm, and own when bm is a result of this
 * evaluation that the step holding it may modify in place and must free.
 * Loaded sets (AudienceRef.bm, the universe) are only ever read: they may
 * be the cache's, and a set read twice must not change in between.
 */
typedef struct AVal
{
	const roaring_bitmap_t *bm;
	RoaringOwned *own;			/* NULL: read-only */
} AVal;

static AVal
read_only(const roaring_bitmap_t *bm)
{
	AVal		v;

	v.bm = bm;
	v.own = NULL;
	return v;
}

static AVal
owned(roaring_bitmap_t *bm)
{
	AVal		v;

	v.own = roaring_owned_adopt(bm);	/* frees bm if it must fail */
	v.bm = v.own->bitmap;
	return v;
}

static void
release(AVal v)
{
	if (v.own != NULL)
		roaring_owned_free(v.own);
}

/* l and r, l or r, l minus r: in place in an operand of our own, else a new set */
static AVal
op_and(AVal l, AVal r)
{
	if (l.own != NULL)
	{
		roaring_bitmap_and_inplace(l.own->bitmap, r.bm);
		release(r);
		return l;
	}
	if (r.own != NULL)
	{
		roaring_bitmap_and_inplace(r.own->bitmap, l.bm);
		return r;
	}
	return owned(roaring_bitmap_and(l.bm, r.bm));
}

static AVal
op_or(AVal l, AVal r)
{
	if (l.own != NULL)
	{
		roaring_bitmap_or_inplace(l.own->bitmap, r.bm);
		release(r);
		return l;
	}
	if (r.own != NULL)
	{
		roaring_bitmap_or_inplace(r.own->bitmap, l.bm);
		return r;
	}
	return owned(roaring_bitmap_or(l.bm, r.bm));
}

static AVal
op_minus(AVal l, AVal r)
{
	AVal		v;

	if (l.own != NULL)
	{
		roaring_bitmap_andnot_inplace(l.own->bitmap, r.bm);
		release(r);
		return l;
	}
	v = owned(roaring_bitmap_andnot(l.bm, r.bm));
	release(r);
	return v;
}

static AVal
universe_value(Audience *a)
{
	Assert(a->universe_bm != NULL && a->universe_uses > 0);
	a->universe_uses--;
	return read_only(a->universe_bm);
}

static AVal evaluate(Audience *a, AudienceNode *n);
static AVal or_chain(Audience *a, AudienceNode *n);

/* The value of a name: a loaded set, or a segment's (computed once). */
static AVal
name_value(Audience *a, AudienceNode *n)
{
	AudienceRef *ref = &a->refs[n->ref];

	if (ref->kind == AUDREF_SEGMENT && !ref->computed)
	{
		AVal		v;

		ref->computed = true;
		v = evaluate(a, ref->root);
		ref->bm = v.bm;
		ref->set = v.own;		/* kept until the evaluation's context goes */
	}
	Assert(ref->bm != NULL && ref->uses > 0);
	ref->uses--;
	return read_only(ref->bm);
}

static AVal
evaluate(Audience *a, AudienceNode *n)
{
	AVal		l;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	switch (n->kind)
	{
		case AUD_NAME:
			return name_value(a, n);
		case AUD_NOT:
			l = universe_value(a);
			return op_minus(l, evaluate(a, n->left));
		case AUD_AND:
			/* x and not y = x minus y: no universe needed */
			if (n->right->kind == AUD_NOT)
			{
				l = evaluate(a, n->left);
				return op_minus(l, evaluate(a, n->right->left));
			}
			if (n->left->kind == AUD_NOT)
			{
				l = evaluate(a, n->right);
				return op_minus(l, evaluate(a, n->left->left));
			}
			l = evaluate(a, n->left);
			return op_and(l, evaluate(a, n->right));
		case AUD_OR:
			if (n->left->kind == AUD_OR || n->right->kind == AUD_OR)
				return or_chain(a, n);
			l = evaluate(a, n->left);
			return op_or(l, evaluate(a, n->right));
	}
	pg_unreachable();
}

static void
collect_or(AudienceNode *n, AudienceNode **ops, int *k)
{
	check_stack_depth();
	if (n->kind == AUD_OR)
	{
		collect_or(n->left, ops, k);
		collect_or(n->right, ops, k);
	}
	else
		ops[(*k)++] = n;
}

static int
or_width(AudienceNode *n)
{
	check_stack_depth();
	return n->kind == AUD_OR ? or_width(n->left) + or_width(n->right) : 1;
}

/*
 * x or y or z ...: the operands (left to right, as the tree would), then
 * one union of all of them (CRoaring's or_many: one pass, no intermediate
 * results).
 */
static AVal
or_chain(Audience *a, AudienceNode *n)
{
	int			width = or_width(n);
	int			k = 0;
	AudienceNode **ops = palloc(sizeof(AudienceNode *) * width);
	AVal	   *vals = palloc(sizeof(AVal) * width);
	const roaring_bitmap_t **bms = palloc(sizeof(roaring_bitmap_t *) * width);
	roaring_bitmap_t *u;

	collect_or(n, ops, &k);
	for (int i = 0; i < k; i++)
	{
		vals[i] = evaluate(a, ops[i]);
		bms[i] = vals[i].bm;
	}
	u = roaring_bitmap_or_many(k, bms);	/* NULL (out of memory): owned() raises */
	for (int i = 0; i < k; i++)
		release(vals[i]);
	pfree(ops);
	pfree(vals);
	pfree(bms);
	return owned(u);
}

/*
 * The cardinality of a tree: as evaluate(), but the last operation only
 * counts (no result set is built).
 */
static uint64
count_tree(Audience *a, AudienceNode *n)
{
	AVal		l,
				r;
	uint64		c;

	check_stack_depth();
	switch (n->kind)
	{
		case AUD_NAME:
			return roaring_bitmap_get_cardinality(name_value(a, n).bm);
		case AUD_NOT:
			l = universe_value(a);
			r = evaluate(a, n->left);
			c = roaring_bitmap_andnot_cardinality(l.bm, r.bm);
			break;
		case AUD_AND:
			if (n->right->kind == AUD_NOT || n->left->kind == AUD_NOT)
			{
				AudienceNode *pos = n->right->kind == AUD_NOT ? n->left : n->right;
				AudienceNode *neg = n->right->kind == AUD_NOT ? n->right->left : n->left->left;

				l = evaluate(a, pos);
				r = evaluate(a, neg);
				c = roaring_bitmap_andnot_cardinality(l.bm, r.bm);
				break;
			}
			l = evaluate(a, n->left);
			r = evaluate(a, n->right);
			c = roaring_bitmap_and_cardinality(l.bm, r.bm);
			break;
		case AUD_OR:
			if (n->left->kind == AUD_OR || n->right->kind == AUD_OR)
			{
				l = or_chain(a, n);
				c = roaring_bitmap_get_cardinality(l.bm);
				release(l);
				return c;
			}
			l = evaluate(a, n->left);
			r = evaluate(a, n->right);
			c = roaring_bitmap_or_cardinality(l.bm, r.bm);
			break;
		default:
			pg_unreachable();
	}
	release(l);
	release(r);
	return c;
}

/*
 * A loaded name's set: a tag's rule result plus its unexpired manual
 * members. The merged set is new (the stored one may be the cache's).
 */
static void
finish_sets(Audience *a)
{
	for (int i = 0; i < a->nrefs; i++)
	{
		AudienceRef *r = &a->refs[i];

		if (r->kind == AUDREF_SEGMENT)
			continue;
		if (r->bm != NULL && r->manual_set != NULL)
		{
			if (r->set != NULL)
				roaring_bitmap_or_inplace(r->set->bitmap, r->manual_set->bitmap);
			else
				r->set = roaring_owned_adopt(roaring_bitmap_or(r->bm, r->manual_set->bitmap));
			roaring_owned_free(r->manual_set);
			r->bm = r->set->bitmap;
		}
		else if (r->manual_set != NULL)
		{
			r->set = r->manual_set;
			r->bm = r->set->bitmap;
		}
		else if (r->bm == NULL)
		{
			r->set = roaring_owned_create();
			r->bm = r->set->bitmap;
		}
		r->manual_set = NULL;
	}
}

/* Parse, resolve, load and check n audiences: ready for evaluate(). */
static Audience *
prepare(const SubjectInfo *subject, int n, const char **texts, ErrorContextCallback *errcb)
{
	Audience   *a = audience_new(n, texts);

	memberset_cache_begin();
	push_error_context(a, errcb);
	parse_tops(a);
	resolve(a, subject, true);
	check_refs(a, subject, true);
	check_cycles(a, -1);
	for (int t = 0; t < n; t++)
		count_uses(a, a->roots[t], t, -1);
	if (a->universe_uses > 0 && a->universe_bm == NULL)
	{
		a->err_top = a->not_top;
		a->err_text = a->tops[a->not_top];
		a->err_via = NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("subject \"%s\" has not been refreshed", NameStr(subject->name)),
				 errdetail("\"not\" is evaluated against all rows seen by the last refresh."),
				 errhint("Run: select * from segment.refresh('%s');", NameStr(subject->name)),
				 AUDPOS(a->err_text, a->not_location)));
	}
	finish_sets(a);
	return a;
}

/* Free the loaded and computed sets now (results never share them). */
static void
release_sets(Audience *a)
{
	for (int i = 0; i < a->nrefs; i++)
	{
		roaring_owned_free(a->refs[i].set);
		a->refs[i].bm = NULL;
	}
	roaring_owned_free(a->universe);
	a->universe_bm = NULL;
}

void
audience_evaluate_many(const SubjectInfo *subject, int n, const char **texts,
					   RoaringOwned **results)
{
	ErrorContextCallback errcb;
	Audience   *a = prepare(subject, n, texts, &errcb);

	for (int t = 0; t < n; t++)
	{
		AVal		v;

		a->err_top = t;
		v = evaluate(a, a->roots[t]);
		/* the caller may modify its result: a loaded set is copied */
		results[t] = v.own != NULL ? v.own : roaring_owned_copy(v.bm);
	}
	release_sets(a);
	error_context_stack = errcb.previous;
}

const roaring_bitmap_t *
audience_evaluate_view(const SubjectInfo *subject, const char *text, RoaringOwned **owned)
{
	ErrorContextCallback errcb;
	Audience   *a = prepare(subject, 1, &text, &errcb);
	AVal		v = evaluate(a, a->roots[0]);

	/* a read-only result may be a loaded set: the context frees those then */
	if (v.own != NULL)
		release_sets(a);
	*owned = v.own;
	error_context_stack = errcb.previous;
	return v.bm;
}

uint64
audience_count(const SubjectInfo *subject, const char *text)
{
	ErrorContextCallback errcb;
	Audience   *a = prepare(subject, 1, &text, &errcb);
	uint64		c = count_tree(a, a->roots[0]);

	release_sets(a);
	error_context_stack = errcb.previous;
	return c;
}

RoaringOwned *
audience_evaluate(const SubjectInfo *subject, const char *text)
{
	RoaringOwned *result;

	audience_evaluate_many(subject, 1, &text, &result);
	return result;
}

void
audience_validate(const SubjectInfo *subject, const char *text, const char *defining)
{
	ErrorContextCallback errcb;
	Audience   *a = audience_new(1, &text);
	int			d = -1;

	push_error_context(a, &errcb);
	parse_tops(a);
	if (defining != NULL)
	{
		AudienceRef *r;

		/* the segment being defined stands for the new text */
		d = find_ref(a, NULL, defining);
		if (d < 0)
		{
			d = add_ref(a, NULL, defining, -1);
			a->refs[d].location = -1;
		}
		r = &a->refs[d];
		r->kind = AUDREF_SEGMENT;
		r->looked_up = true;
		r->id = 0;
		r->subject_id = subject->subject_id;
		r->subject_name = pstrdup(NameStr(subject->name));
		r->active = r->refreshed = true;
		r->audience = pstrdup(text);
		r->root = a->roots[0];
	}
	resolve(a, subject, false);
	check_refs(a, subject, false);
	check_cycles(a, d);
	error_context_stack = errcb.previous;
}

static void
expand_tree(Audience *a, AudienceNode *n, List **out)
{
	check_stack_depth();
	switch (n->kind)
	{
		case AUD_NAME:
			{
				AudienceRef *r = &a->refs[n->ref];

				if (r->listed)
					return;
				r->listed = true;
				*out = lappend(*out, r);
				if (r->kind == AUDREF_SEGMENT && r->root != NULL)
					expand_tree(a, r->root, out);
				return;
			}
		case AUD_NOT:
			expand_tree(a, n->left, out);
			return;
		case AUD_AND:
		case AUD_OR:
			expand_tree(a, n->left, out);
			expand_tree(a, n->right, out);
			return;
	}
}

List *
audience_expand(const SubjectInfo *subject, const char *text)
{
	ErrorContextCallback errcb;
	Audience   *a = audience_new(1, &text);
	List	   *out = NIL;

	push_error_context(a, &errcb);
	parse_tops(a);
	resolve(a, subject, false);
	check_refs(a, subject, false);
	check_cycles(a, -1);
	expand_tree(a, a->root, &out);
	error_context_stack = errcb.previous;
	return out;
}
