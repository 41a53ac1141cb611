/*
 * audience.c
 *     The audience language (see audience.h and docs/audiences.md): a
 *     tokenizer and recursive-descent parser, name resolution against the
 *     catalog, loading of every referenced member set with one SPI query,
 *     and evaluation with in-place CRoaring operations.
 *
 * Errors are raised with errposition() (1-based character offset into the
 * audience text); an error context callback turns that into
 * internalerrposition()/internalerrquery() so clients show the audience
 * with a caret under the offending spot, as for SQL function bodies.
 *
 * Names resolve to tags today. A dotted name (scheme.bucket) is parsed and
 * reported as an unknown scheme; segments and scheme buckets plug in as new
 * AudienceRefKind values resolved and loaded next to tags.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "audience.h"

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
	const char *text = (const char *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(text);
	}
}

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

/* Index of the distinct name (qualifier, name), adding it if new. */
static int
add_ref(Audience *a, const char *qualifier, const char *name, int location)
{
	for (int i = 0; i < a->nrefs; i++)
	{
		AudienceRef *r = &a->refs[i];

		if (strcmp(r->name, name) == 0 &&
			((r->qualifier == NULL && qualifier == NULL) ||
			 (r->qualifier != NULL && qualifier != NULL && strcmp(r->qualifier, qualifier) == 0)))
			return i;
	}
	if (a->nrefs % 8 == 0)
		a->refs = a->nrefs == 0 ? palloc0(8 * sizeof(AudienceRef))
			: repalloc(a->refs, (a->nrefs + 8) * sizeof(AudienceRef));
	memset(&a->refs[a->nrefs], 0, sizeof(AudienceRef));
	a->refs[a->nrefs].kind = AUDREF_UNRESOLVED;
	a->refs[a->nrefs].qualifier = qualifier ? pstrdup(qualifier) : NULL;
	a->refs[a->nrefs].name = pstrdup(name);
	a->refs[a->nrefs].location = location;
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

static Audience *
audience_parse_internal(const char *text)
{
	Parser		p;
	Audience   *a = palloc0(sizeof(Audience));

	a->text = text;
	a->not_location = -1;
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
	a->root = parse_or(&p);
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
	return a;
}

Audience *
audience_parse(const char *text)
{
	ErrorContextCallback errcb;
	Audience   *a;

	errcb.callback = audience_error_callback;
	errcb.arg = (void *) text;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	a = audience_parse_internal(text);

	error_context_stack = errcb.previous;
	return a;
}

/* ------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------
 */

/* What the catalog says about one unqualified name. */
typedef struct TagRow
{
	bool		found;
	int32		tag_id;
	int32		subject_id;
	char	   *subject_name;
	bool		manual;
	bool		active;
	bool		refreshed;
	RoaringOwned *members;		/* rule result (rule tags of this subject) */
	RoaringOwned *manual_members;	/* unexpired manual members, or NULL */
} TagRow;

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

static char *
suggest_tag_name(const SubjectInfo *subject, const char *name)
{
	Datum		args[2];
	Oid			types[2] = {INT4OID, TEXTOID};
	char	   *result = NULL;
	MemoryContext callercxt = CurrentMemoryContext;

	args[0] = Int32GetDatum(subject->subject_id);
	args[1] = CStringGetTextDatum(name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT name::text FROM segment.tag"
							  " WHERE subject_id = $1 AND lower(name::text) = lower($2)"
							  " ORDER BY name LIMIT 1",
							  2, types, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		result = MemoryContextStrdup(callercxt, s);
	}
	SPI_finish();
	return result;
}

static void
check_ref(Audience *a, const SubjectInfo *subject, AudienceRef *r, TagRow *row)
{
	const char *sname = NameStr(subject->name);

	if (r->qualifier != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("unknown scheme \"%s\" in audience", r->qualifier),
				 errdetail("\"%s.%s\" names a bucket of a scheme, and subject \"%s\" has no scheme \"%s\".",
						   r->qualifier, r->name, sname, r->qualifier),
				 errhint("To use a tag whose name contains a dot, double-quote it: \"%s.%s\".",
						 r->qualifier, r->name),
				 AUDPOS(a->text, r->location)));
	if (!row->found)
	{
		char	   *suggestion = suggest_tag_name(subject, r->name);

		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("unknown name \"%s\" in audience", r->name),
				 errdetail("Subject \"%s\" has no tag named \"%s\".", sname, r->name),
				 suggestion
				 ? errhint("Names are case-sensitive; did you mean \"%s\"?", suggestion)
				 : errhint("The tags of subject \"%s\" are listed in segment.tag.", sname),
				 AUDPOS(a->text, r->location)));
	}
	if (row->subject_id != subject->subject_id)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tag \"%s\" belongs to subject \"%s\", not \"%s\"",
						r->name, row->subject_name, sname),
				 errhint("An audience combines tags of one subject."),
				 AUDPOS(a->text, r->location)));
	if (!row->active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tag \"%s\" is inactive", r->name),
				 errhint("Reactivate it with segment.alter_tag('%s', active => true), or leave it out of the audience.",
						 r->name),
				 AUDPOS(a->text, r->location)));
	if (!row->manual && !row->refreshed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tag \"%s\" has not been refreshed", r->name),
				 errdetail("Its members are computed by a refresh of subject \"%s\".", sname),
				 errhint("Run: select * from segment.refresh('%s');", sname),
				 AUDPOS(a->text, r->location)));
}

/*
 * Load every referenced set (and the universe if a "not" needs it) with one
 * query, then check the names in the order they appear in the text.
 */
static void
audience_load(Audience *a, const SubjectInfo *subject)
{
	static SPIPlanPtr plan = NULL;
	static Oid	plan_typid = InvalidOid;
	MemoryContext callercxt = CurrentMemoryContext;
	TagRow	   *rows = palloc0(sizeof(TagRow) * Max(a->nrefs, 1));
	Datum	   *names = palloc(sizeof(Datum) * Max(a->nrefs, 1));
	int			nnames = 0;
	Oid			argtypes[3] = {NAMEARRAYOID, INT4OID, BOOLOID};
	Datum		args[3];
	Oid			typid = memberset_type_oid();
	int			ret;

	for (int i = 0; i < a->nrefs; i++)
	{
		if (a->refs[i].qualifier == NULL)
		{
			NameData   *n = palloc(sizeof(NameData));

			namestrcpy(n, a->refs[i].name);
			names[nnames++] = NameGetDatum(n);
		}
	}
	args[0] = PointerGetDatum(construct_array(names, nnames, NAMEOID, NAMEDATALEN,
											  false, TYPALIGN_CHAR));
	args[1] = Int32GetDatum(subject->subject_id);
	args[2] = BoolGetDatum(a->universe_uses > 0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plan != NULL && plan_typid != typid)
	{
		SPI_freeplan(plan);
		plan = NULL;
	}
	segment_saved_plan(&plan,
					   "SELECT t.name, t.tag_id, t.subject_id, s.name, t.rule IS NULL, t.active,"
					   "       st.tag_id IS NOT NULL,"
					   "       CASE WHEN t.subject_id = $2 AND t.active AND t.rule IS NOT NULL"
					   "            THEN st.members END,"
					   "       CASE WHEN t.subject_id = $2 AND t.active THEN"
					   "            (SELECT segment.memberset_agg(m.member_id) FROM segment.manual_tag m"
					   "              WHERE m.tag_id = t.tag_id"
					   "                AND (m.expires_at IS NULL OR m.expires_at > now())) END"
					   "  FROM segment.tag t"
					   "  JOIN segment.subject s ON s.subject_id = t.subject_id"
					   "  LEFT JOIN segment.tag_state st ON st.tag_id = t.tag_id"
					   " WHERE t.name = ANY ($1)"
					   " UNION ALL "
					   "SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, u.universe, NULL"
					   "  FROM segment.subject_state u"
					   " WHERE u.subject_id = $2 AND $3",
					   3, argtypes);
	plan_typid = typid;
	ret = SPI_execute_plan(plan, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "loading audience sets failed: %s", SPI_result_code_string(ret));

	for (uint64 k = 0; k < SPI_processed; k++)
	{
		HeapTuple	tup = SPI_tuptable->vals[k];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d = SPI_getbinval(tup, td, 1, &isnull);
		TagRow	   *row = NULL;

		if (isnull)
		{
			/* the universe row */
			d = SPI_getbinval(tup, td, 8, &isnull);
			if (!isnull)
				a->universe = load_set(d, callercxt);
			continue;
		}
		for (int i = 0; i < a->nrefs; i++)
			if (a->refs[i].qualifier == NULL &&
				strcmp(a->refs[i].name, NameStr(*DatumGetName(d))) == 0)
				row = &rows[i];
		if (row == NULL)
			continue;
		row->found = true;
		row->tag_id = DatumGetInt32(SPI_getbinval(tup, td, 2, &isnull));
		row->subject_id = DatumGetInt32(SPI_getbinval(tup, td, 3, &isnull));
		row->subject_name = MemoryContextStrdup(callercxt,
												NameStr(*DatumGetName(SPI_getbinval(tup, td, 4, &isnull))));
		row->manual = DatumGetBool(SPI_getbinval(tup, td, 5, &isnull));
		row->active = DatumGetBool(SPI_getbinval(tup, td, 6, &isnull));
		row->refreshed = DatumGetBool(SPI_getbinval(tup, td, 7, &isnull));
		d = SPI_getbinval(tup, td, 8, &isnull);
		if (!isnull)
			row->members = load_set(d, callercxt);
		d = SPI_getbinval(tup, td, 9, &isnull);
		if (!isnull)
			row->manual_members = load_set(d, callercxt);
	}
	SPI_finish();

	for (int i = 0; i < a->nrefs; i++)
	{
		AudienceRef *r = &a->refs[i];
		TagRow	   *row = &rows[i];

		check_ref(a, subject, r, row);
		r->kind = AUDREF_TAG;
		r->id = row->tag_id;

		/* a tag's members: its rule's result plus its unexpired manual members */
		if (row->members != NULL)
		{
			r->set = row->members;
			if (row->manual_members != NULL)
			{
				roaring_bitmap_or_inplace(r->set->bitmap, row->manual_members->bitmap);
				roaring_owned_free(row->manual_members);
			}
		}
		else if (row->manual_members != NULL)
			r->set = row->manual_members;
		else
			r->set = roaring_owned_create();
	}

	if (a->universe_uses > 0 && a->universe == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("subject \"%s\" has not been refreshed", NameStr(subject->name)),
				 errdetail("\"not\" is evaluated against all rows seen by the last refresh."),
				 errhint("Run: select * from segment.refresh('%s');", NameStr(subject->name)),
				 AUDPOS(a->text, a->not_location)));
	pfree(rows);
}

/* ------------------------------------------------------------------------
 * Evaluation
 *
 * count_uses() mirrors evaluate(): it counts how many times each loaded set
 * (and the universe) will be read, so the last reader can take the set
 * itself and modify it in place instead of copying it.
 * ------------------------------------------------------------------------
 */

static void
count_uses(Audience *a, AudienceNode *n)
{
	check_stack_depth();
	switch (n->kind)
	{
		case AUD_NAME:
			a->refs[n->ref].uses++;
			break;
		case AUD_NOT:
			if (a->not_location < 0 || n->location < a->not_location)
				a->not_location = n->location;
			a->universe_uses++;
			count_uses(a, n->left);
			break;
		case AUD_AND:
			if (n->right->kind == AUD_NOT)
			{
				count_uses(a, n->left);
				count_uses(a, n->right->left);
			}
			else if (n->left->kind == AUD_NOT)
			{
				count_uses(a, n->right);
				count_uses(a, n->left->left);
			}
			else
			{
				count_uses(a, n->left);
				count_uses(a, n->right);
			}
			break;
		case AUD_OR:
			count_uses(a, n->left);
			count_uses(a, n->right);
			break;
	}
}

static RoaringOwned *
take(RoaringOwned **slot, int *uses)
{
	RoaringOwned *o = *slot;

	Assert(o != NULL && *uses > 0);
	if (--(*uses) == 0)
	{
		*slot = NULL;
		return o;
	}
	return roaring_owned_copy(o->bitmap);
}

/* a := a minus b; b is freed */
static RoaringOwned *
minus(RoaringOwned *a, RoaringOwned *b)
{
	roaring_bitmap_andnot_inplace(a->bitmap, b->bitmap);
	roaring_owned_free(b);
	return a;
}

static RoaringOwned *
evaluate(Audience *a, AudienceNode *n)
{
	RoaringOwned *l;
	RoaringOwned *r;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	switch (n->kind)
	{
		case AUD_NAME:
			return take(&a->refs[n->ref].set, &a->refs[n->ref].uses);
		case AUD_NOT:
			l = take(&a->universe, &a->universe_uses);
			return minus(l, evaluate(a, n->left));
		case AUD_AND:
			/* x and not y = x minus y: no universe needed */
			if (n->right->kind == AUD_NOT)
			{
				l = evaluate(a, n->left);
				return minus(l, evaluate(a, n->right->left));
			}
			if (n->left->kind == AUD_NOT)
			{
				r = evaluate(a, n->right);
				return minus(r, evaluate(a, n->left->left));
			}
			l = evaluate(a, n->left);
			r = evaluate(a, n->right);
			roaring_bitmap_and_inplace(l->bitmap, r->bitmap);
			roaring_owned_free(r);
			return l;
		case AUD_OR:
			l = evaluate(a, n->left);
			r = evaluate(a, n->right);
			roaring_bitmap_or_inplace(l->bitmap, r->bitmap);
			roaring_owned_free(r);
			return l;
	}
	return NULL;				/* not reached */
}

RoaringOwned *
audience_evaluate(const SubjectInfo *subject, const char *text)
{
	ErrorContextCallback errcb;
	Audience   *a;
	RoaringOwned *result;

	errcb.callback = audience_error_callback;
	errcb.arg = (void *) text;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	a = audience_parse_internal(text);
	count_uses(a, a->root);
	audience_load(a, subject);
	result = evaluate(a, a->root);

	error_context_stack = errcb.previous;
	return result;
}
