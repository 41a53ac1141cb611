/*
 * refresh_scan.c
 *     One pass over (a share of) a subject table: every rule of the tags,
 *     schemes and scorecards on every row, a batch at a time, member ids
 *     collected per tag, per bucket and per score.
 *
 * Each unit is compiled and evaluated as its owner with
 * SECURITY_RESTRICTED_OPERATION (rule_owner.h), switched per unit and per
 * batch; the scan itself, the key map and the sets run as the scanning
 * role. On error the caller's (sub)transaction abort restores the user id.
 * Prefix of exported symbols: refresh_scan_.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/relscan.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "refresh_scan.h"
#include "rule_owner.h"
#include "segment.h"

static inline void
unit_enter(ScanCore *sc, Oid owner)
{
	SetUserIdAndSecContext(OidIsValid(owner) ? owner : sc->save_userid,
						   sc->save_sec_context | SECURITY_RESTRICTED_OPERATION);
}

static inline void
unit_leave(ScanCore *sc)
{
	SetUserIdAndSecContext(sc->save_userid, sc->save_sec_context);
}

static inline void
flush_ids(RoaringOwned *set, uint32 *buf, int *n)
{
	if (*n > 0)
	{
		roaring_bitmap_add_many(set->bitmap, *n, buf);
		*n = 0;
	}
}

/*
 * Analyse, plan and compile as the owner: planning folds immutable functions
 * and compiling checks EXECUTE on the functions, both as the owner. The
 * owner must still exist and may still read the rule's columns.
 */
static void
compile_rule(ScanCore *sc, ScanTag *t, const char *what, DateADT as_of, bool with_set,
			 Oid owner)
{
	Expr	   *planned = t->planned;
	Node	   *analysed = NULL;

	if (planned == NULL)
		analysed = rule_analyze(sc->rel, t->rule, what, NULL);
	rule_owner_check(owner, sc->rel, rule_columns_read(analysed ? analysed : (Node *) planned),
					 what, false);
	unit_enter(sc, owner);
	if (planned == NULL)
		planned = rule_plan(analysed, as_of);
	t->prog = rule_compile(sc->rs, planned);
	unit_leave(sc);
	if (with_set)
	{
		t->set = roaring_owned_create();
		t->buf = palloc(sizeof(uint32) * ID_BUFFER_SIZE);
		t->nbuf = 0;
		id_window_init(&t->win);
	}
}

ScanTag *
refresh_scan_tags_from_defs(const SubjectDefs *defs)
{
	ScanTag    *tags = palloc0(sizeof(ScanTag) * Max(defs->ntags, 1));
	int			i;

	for (i = 0; i < defs->ntags; i++)
	{
		tags[i].name = defs->tags[i].name;
		tags[i].rule = defs->tags[i].rule;
		tags[i].owner = defs->tags[i].owner;
	}
	return tags;
}

/* The items of a scheme or scorecard as scan tags. */
static ScanTag *
group_items(const RuleGroupDef *g)
{
	ScanTag    *items = palloc0(sizeof(ScanTag) * Max(g->nitems, 1));
	int			j;

	for (j = 0; j < g->nitems; j++)
	{
		items[j].name = g->item_names[j];
		items[j].rule = g->rules[j];
	}
	return items;
}

ScanScheme *
refresh_scan_schemes_from_defs(const SubjectDefs *defs)
{
	ScanScheme *schemes = palloc0(sizeof(ScanScheme) * Max(defs->nschemes, 1));
	int			i;

	for (i = 0; i < defs->nschemes; i++)
	{
		const RuleGroupDef *g = &defs->schemes[i];

		schemes[i].name = g->name;
		schemes[i].owner = g->owner;
		schemes[i].nbuckets = g->nitems;
		schemes[i].buckets = group_items(g);
	}
	return schemes;
}

ScanScorecard *
refresh_scan_scorecards_from_defs(const SubjectDefs *defs)
{
	ScanScorecard *cards = palloc0(sizeof(ScanScorecard) * Max(defs->nscorecards, 1));
	int			i;

	for (i = 0; i < defs->nscorecards; i++)
	{
		const RuleGroupDef *g = &defs->scorecards[i];

		cards[i].name = g->name;
		cards[i].owner = g->owner;
		cards[i].skip = g->error != NULL;
		cards[i].base = g->base;
		cards[i].nitems = g->nitems;
		cards[i].items = group_items(g);
		cards[i].points = palloc0(sizeof(ScoreValue) * Max(g->nitems, 1));
		memcpy(cards[i].points, g->points, sizeof(ScoreValue) * g->nitems);
	}
	return cards;
}

ScoreSet *
refresh_scan_score_set(ScanScorecard *card, ScoreValue score)
{
	bool		found;
	ScoreSet   *ss = hash_search(card->scores, &score, HASH_ENTER, &found);

	if (!found)
	{
		ss->set = roaring_owned_create();
		ss->buf = palloc(sizeof(uint32) * ID_BUFFER_SIZE);
		ss->nbuf = 0;
	}
	return ss;
}

void
refresh_scan_compile(ScanCore *sc, DateADT as_of)
{
	int			i,
				j;

	GetUserIdAndSecContext(&sc->save_userid, &sc->save_sec_context);
	sc->econtext = CreateStandaloneExprContext();
	sc->rs = rule_scan_create(sc->rel, sc->econtext);
	for (i = 0; i < sc->ntags; i++)
	{
		if (sc->tags[i].skip)
			continue;
		*sc->current_unit = i;
		compile_rule(sc, &sc->tags[i], psprintf("tag \"%s\"", sc->tags[i].name), as_of, true,
					 sc->tags[i].owner);
	}
	for (i = 0; i < sc->nschemes; i++)
	{
		ScanScheme *s = &sc->schemes[i];

		if (s->skip)
			continue;
		*sc->current_unit = sc->ntags + i;
		for (j = 0; j < s->nbuckets; j++)
			compile_rule(sc, &s->buckets[j],
						 psprintf("bucket \"%s\" of scheme \"%s\"", s->buckets[j].name, s->name),
						 as_of, true, s->owner);
	}
	for (i = 0; i < sc->nscorecards; i++)
	{
		ScanScorecard *c = &sc->scorecards[i];
		HASHCTL		ctl;

		if (c->skip)
			continue;
		*sc->current_unit = sc->ntags + sc->nschemes + i;
		for (j = 0; j < c->nitems; j++)
			compile_rule(sc, &c->items[j],
						 psprintf("item %d of scorecard \"%s\"", j + 1, c->name), as_of, false,
						 c->owner);
		ctl.keysize = sizeof(ScoreValue);
		ctl.entrysize = sizeof(ScoreSet);
		ctl.hcxt = CurrentMemoryContext;
		c->scores = hash_create("segment scores", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	*sc->current_unit = -1;
	rule_scan_stats(sc->rs, &sc->native_nodes, &sc->fallback_nodes);
	rule_scan_begin(sc->rs, sc->keyattno);
	sc->universe = roaring_owned_create();
	sc->ubuf = palloc(sizeof(uint32) * ID_BUFFER_SIZE);
	sc->nubuf = 0;
	id_window_init(&sc->uwin);
	sc->rows = 0;
	sc->null_keys = 0;
}

/*
 * The ids of the rows of m into a set: its chunk's window, or its buffer.
 * Batches of fewer than ID_WINDOW_MIN_ROWS rows always take the buffer:
 * flushing a window reads its whole bitset, which a statement of one row
 * (live maintenance) would pay for every set.
 */
static void
collect_into(RoaringOwned *set, uint32 *buf, int *nbuf, IdWindow *win,
			 const uint64 *m, const IdBatch *b, int nwords)
{
	int			w;

	if (b->one_chunk && b->nrows >= ID_WINDOW_MIN_ROWS)
	{
		id_window_add(win, set->bitmap, b, m, nwords);
		return;
	}
	for (w = 0; w < nwords; w++)
	{
		uint64		bits;

		for (bits = m[w]; bits != 0; bits &= bits - 1)
		{
			buf[(*nbuf)++] = b->ids[w * 64 + pg_rightmost_one_pos64(bits)];
			if (*nbuf == ID_BUFFER_SIZE)
				flush_ids(set, buf, nbuf);
		}
	}
}

static inline void
collect_ids(ScanTag *t, const RuleMask *m, const IdBatch *b, int nwords)
{
	collect_into(t->set, t->buf, &t->nbuf, &t->win, m->w, b, nwords);
}

/* First matching bucket wins: later rules only see rows still unplaced. */
static void
batch_scheme(ScanCore *sc, ScanScheme *s, const IdBatch *ids, int nwords)
{
	RuleMask	remaining;
	int			b,
				w;

	rule_mask_all(sc->rs, &remaining);
	for (b = 0; b < s->nbuckets; b++)
	{
		RuleMask	m;
		bool		any = false;

		for (w = 0; w < nwords; w++)
			any |= remaining.w[w] != 0;
		if (!any)
			break;
		rule_eval_batch_rows(s->buckets[b].prog, &remaining, &m);
		collect_ids(&s->buckets[b], &m, ids, nwords);
		for (w = 0; w < RULE_BATCH_WORDS; w++)
			remaining.w[w] &= ~m.w[w];
	}
}

static void
batch_scorecard(ScanCore *sc, ScanScorecard *c, const uint32 *ids, int nrows)
{
	ScoreValue	score[RULE_BATCH_ROWS];
	ScoreSet   *last = NULL;
	int			nwords = (nrows + 63) / 64;
	int			i,
				r,
				w;

	for (r = 0; r < nrows; r++)
		score[r] = c->base;
	for (i = 0; i < c->nitems; i++)
	{
		RuleMask	m;

		rule_eval_batch(c->items[i].prog, &m);
		for (w = 0; w < nwords; w++)
		{
			uint64		bits;

			for (bits = m.w[w]; bits != 0; bits &= bits - 1)
				score[w * 64 + pg_rightmost_one_pos64(bits)] += c->points[i];
		}
	}
	for (r = 0; r < nrows; r++)
	{
		if (last == NULL || last->score != score[r])
			last = refresh_scan_score_set(c, score[r]);
		last->buf[last->nbuf++] = ids[r];
		if (last->nbuf == ID_BUFFER_SIZE)
			flush_ids(last->set, last->buf, &last->nbuf);
	}
}

/* Evaluate every unit over the batch and collect the member ids. */
static void
flush_batch(ScanCore *sc, uint32 *ids)
{
	RuleScan   *rs = sc->rs;
	int			nrows = rule_scan_nrows(rs);
	int			nwords = (nrows + 63) / 64;
	int			i;
	IdBatch		batch;
	RuleMask	all;

	if (nrows == 0)
		return;
	/* where the batch's ids fall: decided once for every set */
	id_batch_describe(&batch, ids, nrows);
	rule_mask_all(rs, &all);
	collect_into(sc->universe, sc->ubuf, &sc->nubuf, &sc->uwin, all.w, &batch, nwords);
	for (i = 0; i < sc->ntags; i++)
	{
		ScanTag    *t = &sc->tags[i];
		RuleMask	m;

		if (t->skip)
			continue;
		*sc->current_unit = i;
		unit_enter(sc, t->owner);
		rule_eval_batch(t->prog, &m);
		unit_leave(sc);
		collect_ids(t, &m, &batch, nwords);
	}
	for (i = 0; i < sc->nschemes; i++)
	{
		if (sc->schemes[i].skip)
			continue;
		*sc->current_unit = sc->ntags + i;
		unit_enter(sc, sc->schemes[i].owner);
		batch_scheme(sc, &sc->schemes[i], &batch, nwords);
		unit_leave(sc);
	}
	for (i = 0; i < sc->nscorecards; i++)
	{
		if (sc->scorecards[i].skip)
			continue;
		*sc->current_unit = sc->ntags + sc->nschemes + i;
		unit_enter(sc, sc->scorecards[i].owner);
		batch_scorecard(sc, &sc->scorecards[i], ids, nrows);
		unit_leave(sc);
	}
	*sc->current_unit = -1;
	rule_scan_reset_batch(rs);
}

static uint32
row_member_id(ScanCore *sc, Datum d)
{
	int64		id;

	if (sc->keytype == INT4OID)
		id = DatumGetInt32(d);
	else if (sc->keytype == INT8OID)
		id = DatumGetInt64(d);
	else
		return sc->map_key(sc->map_key_arg, d);

	if (id < 0 || id > SEGMENT_MAX_MEMBER_ID)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("key %lld of subject \"%s\" is outside the range of member ids",
						(long long) id, sc->subject),
				 errdetail("Integer keys are used as member ids and must be between 0 and %lld.",
						   (long long) SEGMENT_MAX_MEMBER_ID),
				 errhint("Register the subject on a text column holding the key instead.")));
	return (uint32) id;
}

static void
report_progress(ScanCore *sc, TableScanDesc scan)
{
	HeapScanDesc hscan = (HeapScanDesc) scan;
	double		pct = 0;

	if (hscan->rs_nblocks > 0)
	{
		BlockNumber done = (hscan->rs_cblock + hscan->rs_nblocks - hscan->rs_startblock) % hscan->rs_nblocks;

		pct = 100.0 * done / hscan->rs_nblocks;
	}
	ereport(NOTICE,
			(errmsg("refresh of subject \"%s\": about %.0f%% of the table, %lld rows here",
					sc->subject, pct, (long long) sc->rows)));
}

void
refresh_scan_add_slot(ScanCore *sc, TupleTableSlot *slot, uint32 *ids)
{
	RuleScan   *rs = sc->rs;

	sc->rows++;
	slot_getsomeattrs(slot, sc->keyattno);
	if (slot->tts_isnull[sc->keyattno - 1])
		sc->null_keys++;
	else
	{
		uint32		id = row_member_id(sc, slot->tts_values[sc->keyattno - 1]);

		ids[rule_scan_nrows(rs)] = id;
		rule_scan_add_row(rs, slot);
		if (rule_scan_nrows(rs) == RULE_BATCH_ROWS)
			flush_batch(sc, ids);
	}
}

void
refresh_scan_flush(ScanCore *sc, uint32 *ids)
{
	flush_batch(sc, ids);
}

void
refresh_scan_run(ScanCore *sc, TableScanDesc scan, bool report)
{
	/* the scanned relation's slot: a leaf partition's, when rel is its parent */
	TupleTableSlot *slot = table_slot_create(scan->rs_rd, NULL);
	TimestampTz last_report = GetCurrentTimestamp();
	uint32		ids[RULE_BATCH_ROWS];

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		refresh_scan_add_slot(sc, slot, ids);

		if (report && (sc->rows & 0xFFFF) == 0 && segment_progress_seconds > 0 &&
			TimestampDifferenceExceeds(last_report, GetCurrentTimestamp(),
									   segment_progress_seconds * 1000))
		{
			report_progress(sc, scan);
			last_report = GetCurrentTimestamp();
		}
	}
	flush_batch(sc, ids);
	ExecDropSingleTupleTableSlot(slot);
}

/* Flush every buffer into its set; the programs stay compiled. */
void
refresh_scan_collect(ScanCore *sc)
{
	int			i;

	flush_ids(sc->universe, sc->ubuf, &sc->nubuf);
	id_window_flush(&sc->uwin, sc->universe->bitmap);
	for (i = 0; i < sc->ntags; i++)
		if (!sc->tags[i].skip)
		{
			flush_ids(sc->tags[i].set, sc->tags[i].buf, &sc->tags[i].nbuf);
			id_window_flush(&sc->tags[i].win, sc->tags[i].set->bitmap);
		}
	for (i = 0; i < sc->nschemes; i++)
	{
		int			b;

		if (sc->schemes[i].skip)
			continue;
		for (b = 0; b < sc->schemes[i].nbuckets; b++)
		{
			flush_ids(sc->schemes[i].buckets[b].set, sc->schemes[i].buckets[b].buf,
					  &sc->schemes[i].buckets[b].nbuf);
			id_window_flush(&sc->schemes[i].buckets[b].win, sc->schemes[i].buckets[b].set->bitmap);
		}
	}
	for (i = 0; i < sc->nscorecards; i++)
	{
		HASH_SEQ_STATUS hs;
		ScoreSet   *ss;

		if (sc->scorecards[i].skip)
			continue;
		hash_seq_init(&hs, sc->scorecards[i].scores);
		while ((ss = hash_seq_search(&hs)) != NULL)
			flush_ids(ss->set, ss->buf, &ss->nbuf);
	}
	rule_scan_end(sc->rs);
}

void
refresh_scan_finish(ScanCore *sc)
{
	refresh_scan_collect(sc);
	FreeExprContext(sc->econtext, true);
	sc->rs = NULL;
	sc->econtext = NULL;
}

/*
 * A compiled core evaluates another set of rows: empty sets in
 * CurrentMemoryContext, empty buffers and batch (whatever an error left in
 * them), the relation as opened now. The buffers and programs stay where
 * refresh_scan_compile put them.
 */
void
refresh_scan_restart(ScanCore *sc, Relation rel, const Bitmapset *attnos)
{
	RoaringOwned *empty;
	int			i,
				j;

	sc->rel = rel;
	GetUserIdAndSecContext(&sc->save_userid, &sc->save_sec_context);
	/*
	 * every unit gets a set; those skipped this time share one that stays
	 * empty (nothing adds to the set of a skipped unit)
	 */
	empty = roaring_owned_create();
	for (i = 0; i < sc->ntags; i++)
	{
		sc->tags[i].set = sc->tags[i].skip ? empty : roaring_owned_create();
		sc->tags[i].nbuf = 0;
	}
	for (i = 0; i < sc->nschemes; i++)
	{
		for (j = 0; j < sc->schemes[i].nbuckets; j++)
		{
			sc->schemes[i].buckets[j].set = sc->schemes[i].skip ? empty : roaring_owned_create();
			sc->schemes[i].buckets[j].nbuf = 0;
		}
	}
	for (i = 0; i < sc->nscorecards; i++)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(ScoreValue);
		ctl.entrysize = sizeof(ScoreSet);
		ctl.hcxt = CurrentMemoryContext;
		sc->scorecards[i].scores = hash_create("segment scores", 16, &ctl,
											   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	rule_scan_set_rel(sc->rs, rel);
	rule_scan_begin_columns(sc->rs, sc->keyattno, attnos);
	rule_scan_reset_batch(sc->rs);
	sc->universe = roaring_owned_create();
	sc->nubuf = 0;
	sc->rows = 0;
	sc->null_keys = 0;
	*sc->current_unit = -1;
}
