/*
 * audience_parse.c
 *     The audience language's syntax (see audience.h for the grammar): a
 *     tokenizer and recursive-descent parser from text to a tree of
 *     AudienceNode (audience_int.h) with the byte offset of every node, and
 *     the table of the distinct names the tree uses (Audience.refs, the
 *     fields "as written"). Also the error context every step of the
 *     language reports through, and the quoting of names.
 *
 * Pure on purpose, like contrib/intarray's _int_bool.c: no SPI, no catalog,
 * no syscache. What a name denotes is audience_names.c's, evaluation is
 * audience_eval.c's; segment_internal._audience_names() lists the names of a text
 * with this file alone.
 *
 * Errors are raised with errposition() (1-based character offset into the
 * audience text); the error context callback turns that into
 * internalerrposition()/internalerrquery() so clients show the audience
 * with a caret under the offending spot, as for SQL function bodies. A name
 * reached through a segment is reported at the segment's name in the text
 * the caller gave, with a CONTEXT line naming the segments in between.
 *
 * Exported symbols are prefixed audience_.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "audience_int.h"

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

int
audience_find_ref(Audience *a, const char *qualifier, const char *name)
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
int
audience_add_ref(Audience *a, const char *qualifier, const char *name, int location)
{
	int			i = audience_find_ref(a, qualifier, name);
	AudienceRef *r;

	if (i >= 0)
		return i;
	if (a->nrefs % 8 == 0)
		a->refs = a->nrefs == 0 ? palloc0(8 * sizeof(AudienceRef))
			: repalloc(a->refs, (a->nrefs + 8) * sizeof(AudienceRef));
	r = &a->refs[a->nrefs];
	memset(r, 0, sizeof(AudienceRef));
	r->kind = AUD_NAME_UNRESOLVED;
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
				return make_node(AUD_NODE_NOT, loc, parse_primary(p), NULL);
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

				n = make_node(AUD_NODE_NAME, loc, NULL, NULL);
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
				n->ref = audience_add_ref(p->aud, n->qualifier, n->name, loc);
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
		left = make_node(AUD_NODE_AND, loc, left, parse_primary(p));
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
		left = make_node(AUD_NODE_OR, loc, left, parse_and(p));
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
		case AUD_NODE_NAME:
			return false;
		case AUD_NODE_NOT:
			return true;
		case AUD_NODE_AND:
			/* mirrors audience_eval.c's count_uses(): x and not y needs no universe */
			if (n->right->kind == AUD_NODE_NOT)
				return needs_universe(n->left) || needs_universe(n->right->left);
			if (n->left->kind == AUD_NODE_NOT)
				return needs_universe(n->right) || needs_universe(n->left->left);
			return needs_universe(n->left) || needs_universe(n->right);
		case AUD_NODE_OR:
			return needs_universe(n->left) || needs_universe(n->right);
	}
	return false;
}

/* Parse text into a tree, adding its names to a->refs. err_text must be text. */
AudienceNode *
audience_parse_text(Audience *a, const char *text)
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

Audience *
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

void
audience_push_error_context(Audience *a, ErrorContextCallback *errcb)
{
	errcb->callback = audience_error_callback;
	errcb->arg = (void *) a;
	errcb->previous = error_context_stack;
	error_context_stack = errcb;
}

/* Parse every top-level text. */
void
audience_parse_tops(Audience *a)
{
	for (int t = 0; t < a->ntops; t++)
	{
		a->cur_top = a->err_top = t;
		a->err_text = a->tops[t];
		a->err_segment = NULL;
		a->err_via = NULL;
		a->roots[t] = audience_parse_text(a, a->tops[t]);
	}
	a->root = a->roots[0];
}

Audience *
audience_parse(const char *text)
{
	ErrorContextCallback errcb;
	Audience   *a = audience_new(1, &text);

	audience_push_error_context(a, &errcb);
	audience_parse_tops(a);
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
