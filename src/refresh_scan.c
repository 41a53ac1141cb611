/*
 * refresh_scan.c
 *     One pass over (a share of) a subject table: every tag's rule on every
 *     row, a batch at a time, member ids collected per tag.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/relscan.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/timestamp.h"

#include "refresh_scan.h"
#include "segment.h"

static inline void
flush_ids(RoaringOwned *set, uint32 *buf, int *n)
{
	if (*n > 0)
	{
		roaring_bitmap_add_many(set->bitmap, *n, buf);
		*n = 0;
	}
}

void
scan_core_compile(ScanCore *sc, DateADT as_of)
{
	int			i;

	sc->econtext = CreateStandaloneExprContext();
	sc->rs = rule_scan_create(sc->rel, sc->econtext);
	for (i = 0; i < sc->ntags; i++)
	{
		ScanTag    *t = &sc->tags[i];
		Node	   *analysed;

		if (t->skip)
			continue;
		*sc->current_tag = i;
		analysed = rule_analyze(sc->rel, t->rule, psprintf("tag \"%s\"", t->name), NULL);
		t->prog = rule_compile(sc->rs, rule_plan(analysed, as_of));
		t->set = roaring_owned_create();
		t->buf = palloc(sizeof(uint32) * ID_BUFFER_SIZE);
		t->nbuf = 0;
	}
	*sc->current_tag = -1;
	rule_scan_stats(sc->rs, &sc->native_nodes, &sc->fallback_nodes);
	rule_scan_begin(sc->rs, sc->keyattno);
	sc->universe = roaring_owned_create();
	sc->ubuf = palloc(sizeof(uint32) * ID_BUFFER_SIZE);
	sc->nubuf = 0;
	sc->rows = 0;
	sc->null_keys = 0;
}

/* Evaluate every tag over the batch and collect the member ids it matched. */
static void
flush_batch(ScanCore *sc, uint32 *ids)
{
	RuleScan   *rs = sc->rs;
	int			nwords = (rule_scan_nrows(rs) + 63) / 64;
	int			i;

	if (rule_scan_nrows(rs) == 0)
		return;
	for (i = 0; i < sc->ntags; i++)
	{
		ScanTag    *t = &sc->tags[i];
		RuleMask	m;
		int			w;

		if (t->skip)
			continue;
		*sc->current_tag = i;
		rule_eval_batch(t->prog, &m);
		for (w = 0; w < nwords; w++)
		{
			uint64		bits;

			for (bits = m.w[w]; bits != 0; bits &= bits - 1)
			{
				t->buf[t->nbuf++] = ids[w * 64 + pg_rightmost_one_pos64(bits)];
				if (t->nbuf == ID_BUFFER_SIZE)
					flush_ids(t->set, t->buf, &t->nbuf);
			}
		}
	}
	*sc->current_tag = -1;
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
scan_core_run(ScanCore *sc, TableScanDesc scan, bool report)
{
	TupleTableSlot *slot = table_slot_create(sc->rel, NULL);
	TimestampTz last_report = GetCurrentTimestamp();
	uint32		ids[RULE_BATCH_ROWS];
	RuleScan   *rs = sc->rs;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		sc->rows++;
		slot_getsomeattrs(slot, sc->keyattno);
		if (slot->tts_isnull[sc->keyattno - 1])
			sc->null_keys++;
		else
		{
			uint32		id = row_member_id(sc, slot->tts_values[sc->keyattno - 1]);

			sc->ubuf[sc->nubuf++] = id;
			if (sc->nubuf == ID_BUFFER_SIZE)
				flush_ids(sc->universe, sc->ubuf, &sc->nubuf);
			ids[rule_scan_nrows(rs)] = id;
			rule_scan_add_row(rs, slot);
			if (rule_scan_nrows(rs) == RULE_BATCH_ROWS)
				flush_batch(sc, ids);
		}

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

void
scan_core_finish(ScanCore *sc)
{
	int			i;

	flush_ids(sc->universe, sc->ubuf, &sc->nubuf);
	for (i = 0; i < sc->ntags; i++)
		if (!sc->tags[i].skip)
			flush_ids(sc->tags[i].set, sc->tags[i].buf, &sc->tags[i].nbuf);
	rule_scan_end(sc->rs);
	FreeExprContext(sc->econtext, true);
	sc->rs = NULL;
	sc->econtext = NULL;
}
