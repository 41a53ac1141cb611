/*
 * audience_eval.c
 *     Evaluation of a resolved audience over member sets: the trees parsed
 *     by audience_parse.c, whose names audience_names.c has resolved and
 *     whose sets it has loaded, are combined with in-place CRoaring
 *     operations into one set (audience_evaluate*) or only counted
 *     (audience_count). The sets come from the backend-local cache
 *     (memberset_cache.h) or the catalog query, and are only ever read.
 *
 * Apart from parsing and resolving, so that the tuned hot path (docs/performance.md:
 * in-place operations on the last reader of a set, "x and not y" without
 * the universe, one or_many for a chain of "or", a count without a result
 * set) stays in one file with nothing else in it.
 *
 * Exported symbols are prefixed audience_.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "audience_int.h"
#include "memberset_cache.h"

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
		case AUD_NODE_NAME:
			{
				AudienceRef *r = &a->refs[n->ref];

				r->uses++;
				if (r->kind == AUD_NAME_SEGMENT && !r->counted)
				{
					r->counted = true;
					count_uses(a, r->root, r->top, r->location);
				}
				break;
			}
		case AUD_NODE_NOT:
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
		case AUD_NODE_AND:
			if (n->right->kind == AUD_NODE_NOT)
			{
				count_uses(a, n->left, top, location);
				count_uses(a, n->right->left, top, location);
			}
			else if (n->left->kind == AUD_NODE_NOT)
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
		case AUD_NODE_OR:
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

	if (ref->kind == AUD_NAME_SEGMENT && !ref->computed)
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
		case AUD_NODE_NAME:
			return name_value(a, n);
		case AUD_NODE_NOT:
			l = universe_value(a);
			return op_minus(l, evaluate(a, n->left));
		case AUD_NODE_AND:
			/* x and not y = x minus y: no universe needed */
			if (n->right->kind == AUD_NODE_NOT)
			{
				l = evaluate(a, n->left);
				return op_minus(l, evaluate(a, n->right->left));
			}
			if (n->left->kind == AUD_NODE_NOT)
			{
				l = evaluate(a, n->right);
				return op_minus(l, evaluate(a, n->left->left));
			}
			l = evaluate(a, n->left);
			return op_and(l, evaluate(a, n->right));
		case AUD_NODE_OR:
			if (n->left->kind == AUD_NODE_OR || n->right->kind == AUD_NODE_OR)
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
	if (n->kind == AUD_NODE_OR)
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
	return n->kind == AUD_NODE_OR ? or_width(n->left) + or_width(n->right) : 1;
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
		case AUD_NODE_NAME:
			return roaring_bitmap_get_cardinality(name_value(a, n).bm);
		case AUD_NODE_NOT:
			l = universe_value(a);
			r = evaluate(a, n->left);
			c = roaring_bitmap_andnot_cardinality(l.bm, r.bm);
			break;
		case AUD_NODE_AND:
			if (n->right->kind == AUD_NODE_NOT || n->left->kind == AUD_NODE_NOT)
			{
				AudienceNode *pos = n->right->kind == AUD_NODE_NOT ? n->left : n->right;
				AudienceNode *neg = n->right->kind == AUD_NODE_NOT ? n->right->left : n->left->left;

				l = evaluate(a, pos);
				r = evaluate(a, neg);
				c = roaring_bitmap_andnot_cardinality(l.bm, r.bm);
				break;
			}
			l = evaluate(a, n->left);
			r = evaluate(a, n->right);
			c = roaring_bitmap_and_cardinality(l.bm, r.bm);
			break;
		case AUD_NODE_OR:
			if (n->left->kind == AUD_NODE_OR || n->right->kind == AUD_NODE_OR)
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
 * The members of w in a tree, without evaluating the tree over whole sets:
 * every step is a set no larger than w (a name: its set and w; "not x": w
 * in the universe, minus x within w). For a few customers (an event) this
 * reads a few containers of each set instead of combining sets of every
 * customer. Mirrors evaluate(): "x and not y" reads no universe, so the
 * same audiences need it (prepare() has checked that it is there). A
 * segment is evaluated within w through its own tree. The loaded sets are
 * only read; every result is new and owned.
 */
static AVal
within(Audience *a, AudienceNode *n, const roaring_bitmap_t *w)
{
	AVal		l,
				r;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	switch (n->kind)
	{
		case AUD_NODE_NAME:
			{
				AudienceRef *ref = &a->refs[n->ref];

				if (ref->kind == AUD_NAME_SEGMENT)
					return within(a, ref->root, w);
				Assert(ref->bm != NULL);
				return owned(roaring_bitmap_and(ref->bm, w));
			}
		case AUD_NODE_NOT:
			Assert(a->universe_bm != NULL);
			l = owned(roaring_bitmap_and(a->universe_bm, w));
			r = within(a, n->left, l.bm);
			break;
		case AUD_NODE_AND:
			if (n->right->kind == AUD_NODE_NOT || n->left->kind == AUD_NODE_NOT)
			{
				AudienceNode *pos = n->right->kind == AUD_NODE_NOT ? n->left : n->right;
				AudienceNode *neg = n->right->kind == AUD_NODE_NOT ? n->right->left : n->left->left;

				l = within(a, pos, w);
				r = within(a, neg, l.bm);
				break;
			}
			l = within(a, n->left, w);
			r = within(a, n->right, l.bm);
			roaring_bitmap_and_inplace(l.own->bitmap, r.bm);
			release(r);
			return l;
		case AUD_NODE_OR:
			l = within(a, n->left, w);
			r = within(a, n->right, w);
			roaring_bitmap_or_inplace(l.own->bitmap, r.bm);
			release(r);
			return l;
		default:
			pg_unreachable();
	}
	/* NOT and "x and not y": l minus r */
	roaring_bitmap_andnot_inplace(l.own->bitmap, r.bm);
	release(r);
	return l;
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

		if (r->kind == AUD_NAME_SEGMENT)
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
	audience_push_error_context(a, errcb);
	audience_parse_tops(a);
	audience_resolve(a, subject, true);
	audience_check_refs(a, subject, true);
	audience_check_cycles(a, -1);
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

RoaringOwned *
audience_evaluate_within(const SubjectInfo *subject, const char *text,
						 const roaring_bitmap_t *members)
{
	ErrorContextCallback errcb;
	Audience   *a = prepare(subject, 1, &text, &errcb);
	AVal		v = within(a, a->roots[0], members);

	release_sets(a);
	error_context_stack = errcb.previous;
	return v.own;
}
