/*
 * audience_names.c
 *     What the names of an audience denote: resolution of the distinct names
 *     of a parsed audience (audience_parse.c) to tags, segments, scheme
 *     buckets and scorecard bands (AudienceNameKind, catalog_names.h), the
 *     loading of their member sets for audience_eval.c, the checks of each
 *     name (unknown, of another subject, inactive, not refreshed), and the
 *     search for cycles of segments. audience_validate() and
 *     audience_expand() stop here: they resolve without evaluating.
 *
 * Resolution works in rounds. A round for an audience of tags of the
 * subject reads them directly (state_read.h, sets through the backend-local
 * cache); any other round is one catalog query (catalog_names_lookup),
 * which returns, with each tag, bucket or band, its member set (and the
 * universe when a "not" needs it), and with each segment, its audience
 * text; when a name is a segment, the subject's other segments come along.
 * The segments reached are parsed, and the names only they use make a
 * second round: an audience costs one query, two if it uses segments.
 * Every segment is parsed, and evaluated, once however often it is used;
 * a depth-first search over segments reports cycles (42P17).
 *
 * This file runs no SQL itself: the catalog's SQL is catalog_names.c's.
 * Exported symbols are prefixed audience_.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"

#include "audience_int.h"
#include "catalog_names.h"
#include "state_read.h"
#include "subject.h"

/*
 * Snapshot mode (audience_set_snapshot): sets come from the per-date tables
 * of one retained snapshot instead of the current state
 * (CatalogNamesRequest.snapshot).
 */
static bool snapshot_mode = false;
static DateADT snapshot_mode_date;

void
audience_set_snapshot(bool on, DateADT d)
{
	snapshot_mode = on;
	snapshot_mode_date = d;
}

/* ------------------------------------------------------------------------
 * Resolution
 * ------------------------------------------------------------------------
 */

/* Keep the subject's segments a round brought, for resolve_known(). */
static void
add_known(Audience *a, const CatalogNamesResult *res)
{
	if (res->nsegments == 0)
		return;
	if (a->nknown == 0)
		a->known = res->segments;
	else
	{
		a->known = repalloc(a->known, sizeof(CatalogSegment) * (a->nknown + res->nsegments));
		memcpy(a->known + a->nknown, res->segments, sizeof(CatalogSegment) * res->nsegments);
	}
	a->nknown += res->nsegments;
}

/*
 * Ref r (unresolved) denotes c; bm is its stored set (c->set's bitmap, or a
 * set of the cache), or NULL when none was loaded.
 */
static void
take_name(AudienceRef *r, const CatalogName *c, const roaring_bitmap_t *bm)
{
	r->kind = c->kind;
	r->id = c->id;
	r->subject_id = c->subject_id;
	r->subject_name = c->subject_name;
	r->manual = c->manual;
	r->missing = c->missing;
	r->active = c->active;
	r->refreshed = c->refreshed;
	r->bm = bm;
	r->set = c->set;
	r->manual_set = c->manual_set;
	r->audience = c->audience;
}

/*
 * One round: look up every name not looked up yet, and the universe if
 * want_universe. With load, the member sets come too. When one of the names
 * is a segment, the subject's other segments come along, so that the
 * segments they lead to need no further round.
 */
static void
lookup_round(Audience *a, const SubjectInfo *subject, bool want_universe, bool load)
{
	int			n = Max(a->nrefs, 1);
	CatalogNamesRequest req;
	CatalogNamesResult res;

	memset(&req, 0, sizeof(req));
	req.subject_id = subject->subject_id;
	req.names = palloc(sizeof(char *) * n);
	req.qualifiers = palloc(sizeof(char *) * n);
	req.qnames = palloc(sizeof(char *) * n);
	req.load = load;
	req.want_universe = want_universe;
	req.want_segments = !a->segments_fetched;
	req.snapshot = snapshot_mode;
	req.snapshot_date = snapshot_mode_date;
	for (int i = 0; i < a->nrefs; i++)
	{
		AudienceRef *r = &a->refs[i];

		if (r->looked_up)
			continue;
		r->pending = true;
		if (r->qualifier == NULL)
			req.names[req.nnames++] = r->name;
		else
		{
			req.qualifiers[req.nqualified] = r->qualifier;
			req.qnames[req.nqualified++] = r->name;
		}
	}

	catalog_names_lookup(&req, &res);

	add_known(a, &res);
	if (res.universe != NULL)
	{
		a->universe = res.universe;
		a->universe_bm = a->universe->bitmap;
	}
	for (int k = 0; k < res.nnames; k++)
	{
		CatalogName *c = &res.names[k];
		int			i = audience_find_ref(a, c->qualifier, c->name);
		AudienceRef *r;

		if (i < 0 || !a->refs[i].pending)
			continue;
		r = &a->refs[i];
		/* one name, one meaning: a tag before a segment, a scheme before a scorecard */
		if (r->kind != AUD_NAME_UNRESOLVED)
			continue;
		if (snapshot_mode && (c->kind == AUD_NAME_BUCKET || c->kind == AUD_NAME_BAND))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("\"%s.%s\" is a %s, which is not kept per snapshot date", c->qualifier, c->name,
							c->kind == AUD_NAME_BUCKET ? "scheme bucket" : "scorecard band"),
					 errhint("Read it without as_of (the current snapshot); as_of => date reads tags and segments of tags.")));
		if (c->kind == AUD_NAME_SEGMENT)
			a->segments_fetched = true;
		take_name(r, c, c->set != NULL ? c->set->bitmap : NULL);
	}

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
		CatalogName c;

		if (r->looked_up)
			continue;
		state_read_tag_sets(sr, t);
		memset(&c, 0, sizeof(c));
		c.kind = AUD_NAME_TAG;
		c.id = t->tag_id;
		c.subject_id = t->subject_id;
		c.subject_name = pstrdup(NameStr(subject->name));
		c.manual = t->manual;
		c.active = t->active;
		c.refreshed = t->refreshed;
		c.set = t->set_owned;
		c.manual_set = t->manual_set;
		take_name(r, &c, t->set);
		r->looked_up = true;
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
	root = audience_parse_text(a, r->audience);	/* may move a->refs */
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
		if (strcmp(a->known[k].name, r->name) == 0)
		{
			r->kind = AUD_NAME_SEGMENT;
			r->looked_up = true;
			r->id = a->known[k].segment_id;
			r->subject_id = subject->subject_id;
			r->subject_name = pstrdup(NameStr(subject->name));
			r->active = r->refreshed = true;
			r->audience = a->known[k].audience;
			return;
		}
	}
}

void
audience_resolve(Audience *a, const SubjectInfo *subject, bool load)
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
			if (r->kind == AUD_NAME_SEGMENT && r->root == NULL && r->audience != NULL &&
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

static const char *
ref_kind_word(const AudienceRef *r)
{
	switch (r->kind)
	{
		case AUD_NAME_TAG:
			return "tag";
		case AUD_NAME_SEGMENT:
			return "segment";
		case AUD_NAME_BUCKET:
			return "scheme";
		case AUD_NAME_BAND:
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

	if (r->kind == AUD_NAME_UNRESOLVED && r->qualifier != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("unknown scheme \"%s\" in audience", r->qualifier),
				 errdetail("\"%s.%s\" names a bucket of a scheme or a band of a scorecard, and subject \"%s\" has no scheme or scorecard \"%s\".",
						   r->qualifier, r->name, sname, r->qualifier),
				 errhint("To use a tag whose name contains a dot, double-quote it: \"%s.%s\".",
						 r->qualifier, r->name),
				 AUDPOS(text, r->location)));
	if (r->kind == AUD_NAME_UNRESOLVED)
	{
		char	   *suggestion = catalog_names_suggest(subject->subject_id, r->name);

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
				 r->kind == AUD_NAME_TAG ? errhint("An audience combines tags of one subject.")
				 : errhint("An audience combines names of one subject."),
				 AUDPOS(text, r->location)));
	if (r->missing)
	{
		char	   *members = catalog_names_members(r->kind, r->id);

		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s \"%s\" has no %s \"%s\"", ref_kind_word(r), r->qualifier,
						r->kind == AUD_NAME_BUCKET ? "bucket" : "band", r->name),
				 members
				 ? errhint("Its %s are: %s.", r->kind == AUD_NAME_BUCKET ? "buckets" : "bands", members)
				 : errhint("It has no %s.", r->kind == AUD_NAME_BUCKET ? "buckets" : "bands"),
				 AUDPOS(text, r->location)));
	}
	if (!load || r->kind == AUD_NAME_SEGMENT)
		return;
	if (!r->active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s \"%s\" is inactive", ref_kind_word(r), what),
				 r->kind == AUD_NAME_TAG
				 ? errhint("Reactivate it with segment.alter_tag('%s', active => true), or leave it out of the audience.",
						   r->name)
				 : errhint("Reactivate it, or leave it out of the audience."),
				 AUDPOS(text, r->location)));
	if (!(r->kind == AUD_NAME_TAG && r->manual) && !r->refreshed)
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

void
audience_check_refs(Audience *a, const SubjectInfo *subject, bool load)
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
		case AUD_NODE_NAME:
			{
				AudienceRef *r = &cs->a->refs[n->ref];

				if (r->kind != AUD_NAME_SEGMENT)
					return;
				if (r->visit == 1)
					report_cycle(cs, n->ref);
				if (r->visit == 0)
					visit_segment(cs, n->ref);
				return;
			}
		case AUD_NODE_NOT:
			visit_tree(cs, n->left);
			return;
		case AUD_NODE_AND:
		case AUD_NODE_OR:
			visit_tree(cs, n->left);
			visit_tree(cs, n->right);
			return;
	}
}

void
audience_check_cycles(Audience *a, int defining)
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
 * Resolving without evaluating: validation and explain
 * ------------------------------------------------------------------------
 */


void
audience_validate(const SubjectInfo *subject, const char *text, const char *defining)
{
	ErrorContextCallback errcb;
	Audience   *a = audience_new(1, &text);
	int			d = -1;

	audience_push_error_context(a, &errcb);
	audience_parse_tops(a);
	if (defining != NULL)
	{
		AudienceRef *r;

		/* the segment being defined stands for the new text */
		d = audience_find_ref(a, NULL, defining);
		if (d < 0)
		{
			d = audience_add_ref(a, NULL, defining, -1);
			a->refs[d].location = -1;
		}
		r = &a->refs[d];
		r->kind = AUD_NAME_SEGMENT;
		r->looked_up = true;
		r->id = 0;
		r->subject_id = subject->subject_id;
		r->subject_name = pstrdup(NameStr(subject->name));
		r->active = r->refreshed = true;
		r->audience = pstrdup(text);
		r->root = a->roots[0];
	}
	audience_resolve(a, subject, false);
	audience_check_refs(a, subject, false);
	audience_check_cycles(a, d);
	error_context_stack = errcb.previous;
}

static void
expand_tree(Audience *a, AudienceNode *n, List **out)
{
	check_stack_depth();
	switch (n->kind)
	{
		case AUD_NODE_NAME:
			{
				AudienceRef *r = &a->refs[n->ref];

				if (r->listed)
					return;
				r->listed = true;
				*out = lappend(*out, r);
				if (r->kind == AUD_NAME_SEGMENT && r->root != NULL)
					expand_tree(a, r->root, out);
				return;
			}
		case AUD_NODE_NOT:
			expand_tree(a, n->left, out);
			return;
		case AUD_NODE_AND:
		case AUD_NODE_OR:
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

	audience_push_error_context(a, &errcb);
	audience_parse_tops(a);
	audience_resolve(a, subject, false);
	audience_check_refs(a, subject, false);
	audience_check_cycles(a, -1);
	expand_tree(a, a->root, &out);
	error_context_stack = errcb.previous;
	return out;
}
