/*
 * refresh_parallel.c
 *     Refresh a large table with parallel workers, the way a parallel
 *     sequential scan divides the work: the leader and each worker take
 *     blocks from one shared parallel heap scan, evaluate every rule on their
 *     rows (refresh_scan.c), and the workers send their member sets back
 *     through a shm_mq each; the leader ORs them into its own.
 *
 * Workers see the leader's snapshot, settings and locks (PostgreSQL's
 * parallel infrastructure). An error in a worker reaches the leader as an
 * error; the worker first records which tag it was evaluating and the error
 * (SQLSTATE, message), so the leader can tell which tag the error it
 * received belongs to and keep isolating a failing rule the way a serial
 * refresh does: the tag fails with its own error, whichever worker's error
 * arrived first.
 *
 * Prefix: refresh_parallel_ (segment_refresh_worker: the worker entry point,
 * looked up by name).
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"
#include "utils/snapmgr.h"

#include "refresh_parallel.h"

#define KEY_SHARED		UINT64CONST(0x5E6D000000000001)
#define KEY_UNITS		UINT64CONST(0x5E6D000000000002)
#define KEY_PSCAN		UINT64CONST(0x5E6D000000000003)
#define KEY_QUEUES		UINT64CONST(0x5E6D000000000004)

#define QUEUE_SIZE		(1024 * 1024)


/*
 * What a worker records before it raises a rule's error, so that the leader
 * can tell which unit the error it receives belongs to. Several workers (and
 * the leader) may fail at once on different units with different errors, and
 * the leader receives one of those errors, from whichever worker; one shared
 * "failed unit" would pair one worker's unit with another's message (a tag
 * failed with another tag's error). The leader matches the error it got with
 * the worker that raised it by SQLSTATE and message.
 */
#define FAILURE_MESSAGE_SIZE 512

typedef struct WorkerFailure
{
	int32		unit;			/* the unit that raised, -1: none */
	int			sqlerrcode;
	char		message[FAILURE_MESSAGE_SIZE];	/* truncated if longer */
} WorkerFailure;

typedef struct SharedRefresh
{
	Oid			relid;			/* rules are compiled against it */
	Oid			scan_relid;		/* the heap scanned (relid, or one leaf partition of it) */
	AttrNumber	keyattno;
	Oid			keytype;
	DateADT		as_of;
	int			nworkers;
	WorkerFailure failures[FLEXIBLE_ARRAY_MEMBER];	/* one per worker */
} SharedRefresh;

#define SHARED_REFRESH_SIZE(n) \
	(offsetof(SharedRefresh, failures) + sizeof(WorkerFailure) * Max((n), 1))

/*
 * The units a worker compiles, as one blob: counts, then per tag (skip,
 * owner, name, rule), per scheme (skip, owner, name, n, then n times name,
 * rule), per scorecard (skip, owner, name, base, n, then n times rule,
 * points). Workers run each unit as its owner, as the leader does. Strings are
 * NUL-terminated; numbers are copied as bytes.
 */
static void
put_str(StringInfo b, const char *s)
{
	appendBinaryStringInfo(b, s, strlen(s) + 1);
}

#define put_val(b, v) appendBinaryStringInfo((b), (const char *) &(v), sizeof(v))

static char *
units_blob(ScanCore *sc, Size *size)
{
	StringInfoData b;
	int			i,
				j;

	initStringInfo(&b);
	put_val(&b, sc->ntags);
	put_val(&b, sc->nschemes);
	put_val(&b, sc->nscorecards);
	for (i = 0; i < sc->ntags; i++)
	{
		put_val(&b, sc->tags[i].skip);
		put_val(&b, sc->tags[i].owner);
		put_str(&b, sc->tags[i].name);
		put_str(&b, sc->tags[i].rule);
	}
	for (i = 0; i < sc->nschemes; i++)
	{
		ScanScheme *s = &sc->schemes[i];

		put_val(&b, s->skip);
		put_val(&b, s->owner);
		put_str(&b, s->name);
		put_val(&b, s->nbuckets);
		for (j = 0; j < s->nbuckets; j++)
		{
			put_str(&b, s->buckets[j].name);
			put_str(&b, s->buckets[j].rule);
		}
	}
	for (i = 0; i < sc->nscorecards; i++)
	{
		ScanScorecard *c = &sc->scorecards[i];

		put_val(&b, c->skip);
		put_val(&b, c->owner);
		put_str(&b, c->name);
		put_val(&b, c->base);
		put_val(&b, c->nitems);
		for (j = 0; j < c->nitems; j++)
		{
			put_str(&b, c->items[j].rule);
			put_val(&b, c->points[j]);
		}
	}
	*size = b.len;
	return b.data;
}

static const char *
get_str(const char **p)
{
	const char *s = *p;

	*p += strlen(s) + 1;
	return s;
}

#define get_val(p, v) (memcpy(&(v), *(p), sizeof(v)), *(p) += sizeof(v))

static void
units_read(ScanCore *sc, const char *p)
{
	int			i,
				j;

	get_val(&p, sc->ntags);
	get_val(&p, sc->nschemes);
	get_val(&p, sc->nscorecards);
	sc->tags = palloc0(sizeof(ScanTag) * Max(sc->ntags, 1));
	sc->schemes = palloc0(sizeof(ScanScheme) * Max(sc->nschemes, 1));
	sc->scorecards = palloc0(sizeof(ScanScorecard) * Max(sc->nscorecards, 1));
	for (i = 0; i < sc->ntags; i++)
	{
		get_val(&p, sc->tags[i].skip);
		get_val(&p, sc->tags[i].owner);
		sc->tags[i].name = get_str(&p);
		sc->tags[i].rule = get_str(&p);
	}
	for (i = 0; i < sc->nschemes; i++)
	{
		ScanScheme *s = &sc->schemes[i];

		get_val(&p, s->skip);
		get_val(&p, s->owner);
		s->name = get_str(&p);
		get_val(&p, s->nbuckets);
		s->buckets = palloc0(sizeof(ScanTag) * Max(s->nbuckets, 1));
		for (j = 0; j < s->nbuckets; j++)
		{
			s->buckets[j].name = get_str(&p);
			s->buckets[j].rule = get_str(&p);
		}
	}
	for (i = 0; i < sc->nscorecards; i++)
	{
		ScanScorecard *c = &sc->scorecards[i];

		get_val(&p, c->skip);
		get_val(&p, c->owner);
		c->name = get_str(&p);
		get_val(&p, c->base);
		get_val(&p, c->nitems);
		c->items = palloc0(sizeof(ScanTag) * Max(c->nitems, 1));
		c->points = palloc(sizeof(ScoreValue) * Max(c->nitems, 1));
		for (j = 0; j < c->nitems; j++)
		{
			c->items[j].rule = get_str(&p);
			c->items[j].name = "item";
			get_val(&p, c->points[j]);
		}
	}
}

/* What a worker sends back, ahead of a serialized set or the counts. */
typedef struct ResultHeader
{
	int32		kind;			/* MSG_* */
	int32		unit;			/* tag, scheme or scorecard index */
	int32		bucket;			/* MSG_BUCKET */
	ScoreValue	score;			/* MSG_SCORE */
} ResultHeader;

#define MSG_TAG			1
#define MSG_BUCKET		2
#define MSG_SCORE		3
#define MSG_UNIVERSE_SET 4
#define MSG_ROW_COUNTS	5

static void
send_set(shm_mq_handle *mqh, ResultHeader *h, roaring_bitmap_t *set)
{
	Size		n = roaring_bitmap_portable_size_in_bytes(set);
	char	   *buf = palloc(sizeof(ResultHeader) + n);

	memcpy(buf, h, sizeof(ResultHeader));
	roaring_bitmap_portable_serialize(set, buf + sizeof(ResultHeader));
	if (shm_mq_send(mqh, sizeof(ResultHeader) + n, buf, false, true) != SHM_MQ_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not send member sets to the leader")));
	pfree(buf);
}

/*
 * Parallel worker entry point: scan a share of the table and send the sets.
 */
PGDLLEXPORT void segment_refresh_worker(dsm_segment *seg, shm_toc *toc);

void
segment_refresh_worker(dsm_segment *seg, shm_toc *toc)
{
	SharedRefresh *shared = shm_toc_lookup(toc, KEY_SHARED, false);
	char	   *blob = shm_toc_lookup(toc, KEY_UNITS, false);
	ParallelTableScanDesc pscan = shm_toc_lookup(toc, KEY_PSCAN, false);
	char	   *queues = shm_toc_lookup(toc, KEY_QUEUES, false);
	shm_mq	   *mq = (shm_mq *) (queues + (Size) ParallelWorkerNumber * QUEUE_SIZE);
	shm_mq_handle *mqh;
	volatile int current_unit = -1;
	ScanCore	sc;
	TableScanDesc scan;
	ResultHeader h;
	int64		counts[2];
	char		msg[sizeof(ResultHeader) + sizeof(counts)];
	int			i,
				j;
	MemoryContext workcxt = CurrentMemoryContext;

	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);

	memset(&sc, 0, sizeof(sc));
	sc.rel = table_open(shared->relid, AccessShareLock);
	if (shared->scan_relid != shared->relid)
		sc.scan_rel = table_open(shared->scan_relid, AccessShareLock);
	sc.keyattno = shared->keyattno;
	sc.keytype = shared->keytype;
	sc.subject = RelationGetRelationName(sc.rel);
	units_read(&sc, blob);
	sc.current_unit = &current_unit;

	PG_TRY();
	{
		refresh_scan_compile(&sc, shared->as_of);
		scan = table_beginscan_parallel(sc.scan_rel ? sc.scan_rel : sc.rel, pscan);
		refresh_scan_run(&sc, scan, false);
		table_endscan(scan);
		refresh_scan_finish(&sc);
	}
	PG_CATCH();
	{
		/* tell the leader which rule raised this error; the error itself follows */
		if (current_unit >= 0 && ParallelWorkerNumber >= 0 &&
			ParallelWorkerNumber < shared->nworkers)
		{
			WorkerFailure *f = &shared->failures[ParallelWorkerNumber];
			MemoryContext ecxt = MemoryContextSwitchTo(workcxt);
			ErrorData  *edata = CopyErrorData();

			MemoryContextSwitchTo(ecxt);
			f->sqlerrcode = edata->sqlerrcode;
			strlcpy(f->message, edata->message ? edata->message : "", FAILURE_MESSAGE_SIZE);
			pg_write_barrier();
			f->unit = current_unit;
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	memset(&h, 0, sizeof(h));
	for (i = 0; i < sc.ntags; i++)
	{
		if (sc.tags[i].skip)
			continue;
		h.kind = MSG_TAG;
		h.unit = i;
		send_set(mqh, &h, sc.tags[i].set->bitmap);
		roaring_owned_free(sc.tags[i].set);
	}
	for (i = 0; i < sc.nschemes; i++)
	{
		if (sc.schemes[i].skip)
			continue;
		for (j = 0; j < sc.schemes[i].nbuckets; j++)
		{
			h.kind = MSG_BUCKET;
			h.unit = i;
			h.bucket = j;
			send_set(mqh, &h, sc.schemes[i].buckets[j].set->bitmap);
			roaring_owned_free(sc.schemes[i].buckets[j].set);
		}
	}
	for (i = 0; i < sc.nscorecards; i++)
	{
		HASH_SEQ_STATUS hs;
		ScoreSet   *ss;

		if (sc.scorecards[i].skip)
			continue;
		hash_seq_init(&hs, sc.scorecards[i].scores);
		while ((ss = hash_seq_search(&hs)) != NULL)
		{
			h.kind = MSG_SCORE;
			h.unit = i;
			h.score = ss->score;
			send_set(mqh, &h, ss->set->bitmap);
			roaring_owned_free(ss->set);
		}
	}
	h.kind = MSG_UNIVERSE_SET;
	send_set(mqh, &h, sc.universe->bitmap);
	roaring_owned_free(sc.universe);
	h.kind = MSG_ROW_COUNTS;
	counts[0] = sc.rows;
	counts[1] = sc.null_keys;
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), counts, sizeof(counts));
	if (shm_mq_send(mqh, sizeof(msg), msg, false, true) != SHM_MQ_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not send row counts to the leader")));
	if (sc.scan_rel)
		table_close(sc.scan_rel, AccessShareLock);
	table_close(sc.rel, AccessShareLock);
}

/* OR a worker's serialized set into one of the leader's. */
static void
merge_set(RoaringOwned *into, const char *data, Size n)
{
	roaring_bitmap_t *b = roaring_bitmap_portable_deserialize_safe(data, n);
	RoaringOwned *owned;

	if (b == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("a parallel worker sent an unreadable member set")));
	owned = roaring_owned_adopt(b);
	roaring_bitmap_or_inplace(into->bitmap, owned->bitmap);
	roaring_owned_free(owned);
}

static void
receive_results(ScanCore *sc, shm_mq_handle *mqh)
{
	for (;;)
	{
		Size		nbytes;
		void	   *data;
		ResultHeader h;
		const char *body;
		Size		bodylen;
		shm_mq_result res = shm_mq_receive(mqh, &nbytes, &data, false);

		if (res == SHM_MQ_DETACHED)
			break;
		if (res != SHM_MQ_SUCCESS || nbytes < sizeof(ResultHeader))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("lost contact with a parallel worker of the refresh")));
		memcpy(&h, data, sizeof(h));
		body = (const char *) data + sizeof(h);
		bodylen = nbytes - sizeof(h);
		if (h.kind == MSG_ROW_COUNTS)
		{
			int64		counts[2];

			memcpy(counts, body, sizeof(counts));
			sc->rows += counts[0];
			sc->null_keys += counts[1];
		}
		else if (h.kind == MSG_UNIVERSE_SET)
			merge_set(sc->universe, body, bodylen);
		else if (h.kind == MSG_TAG && h.unit >= 0 && h.unit < sc->ntags && !sc->tags[h.unit].skip)
			merge_set(sc->tags[h.unit].set, body, bodylen);
		else if (h.kind == MSG_BUCKET && h.unit >= 0 && h.unit < sc->nschemes &&
				 !sc->schemes[h.unit].skip &&
				 h.bucket >= 0 && h.bucket < sc->schemes[h.unit].nbuckets)
			merge_set(sc->schemes[h.unit].buckets[h.bucket].set, body, bodylen);
		else if (h.kind == MSG_SCORE && h.unit >= 0 && h.unit < sc->nscorecards &&
				 !sc->scorecards[h.unit].skip)
			merge_set(refresh_scan_score_set(&sc->scorecards[h.unit], h.score)->set, body, bodylen);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("a parallel worker sent an unknown message %d", h.kind)));
	}
}

/*
 * The unit of the worker that raised the error being handled, or -1 when it
 * is not a rule error of a worker (the leader's own, a cancel ...). Called
 * in PG_CATCH: the error is matched by SQLSTATE and message, which a worker
 * recorded before raising it; the leader receives one worker's error, not
 * necessarily from the first worker that failed. When the leader's own error
 * is also a worker's (same SQLSTATE and message), the worker's unit fails
 * with it, which is true too; the leader's unit fails on the next scan.
 */
static int
worker_failure_unit(SharedRefresh *shared, MemoryContext cxt)
{
	MemoryContext ecxt = MemoryContextSwitchTo(cxt);
	ErrorData  *edata = CopyErrorData();
	const char *msg = edata->message ? edata->message : "";
	int			unit = -1;
	int			i;

	MemoryContextSwitchTo(ecxt);
	pg_read_barrier();
	for (i = 0; i < shared->nworkers && unit < 0; i++)
	{
		WorkerFailure *f = &shared->failures[i];

		if (f->unit >= 0 && f->sqlerrcode == edata->sqlerrcode &&
			strncmp(f->message, msg, FAILURE_MESSAGE_SIZE - 1) == 0)
			unit = f->unit;
	}
	FreeErrorData(edata);
	return unit;
}

void
refresh_parallel_scan(ScanCore *sc, int nworkers, DateADT as_of)
{
	ParallelContext *pcxt;
	SharedRefresh *shared;
	ParallelTableScanDesc pscan;
	char	   *blob;
	char	   *queues;
	shm_mq_handle **handles;
	Snapshot	snapshot = GetActiveSnapshot();
	Size		blobsize;
	char	   *units = units_blob(sc, &blobsize);
	Relation	heap = sc->scan_rel ? sc->scan_rel : sc->rel;
	Size		pscansize = table_parallelscan_estimate(heap, snapshot);
	TableScanDesc scan;
	MemoryContext oldcxt;
	int			i;

	refresh_scan_compile(sc, as_of);
	EnterParallelMode();
	pcxt = CreateParallelContext("segment", "segment_refresh_worker", nworkers);
	shm_toc_estimate_chunk(&pcxt->estimator, SHARED_REFRESH_SIZE(nworkers));
	shm_toc_estimate_chunk(&pcxt->estimator, blobsize);
	shm_toc_estimate_chunk(&pcxt->estimator, pscansize);
	shm_toc_estimate_chunk(&pcxt->estimator, (Size) QUEUE_SIZE * nworkers);
	shm_toc_estimate_keys(&pcxt->estimator, 4);
	InitializeParallelDSM(pcxt);

	shared = shm_toc_allocate(pcxt->toc, SHARED_REFRESH_SIZE(nworkers));
	shared->relid = RelationGetRelid(sc->rel);
	shared->scan_relid = RelationGetRelid(heap);
	shared->keyattno = sc->keyattno;
	shared->keytype = sc->keytype;
	shared->as_of = as_of;
	shared->nworkers = nworkers;
	for (i = 0; i < nworkers; i++)
		shared->failures[i].unit = -1;
	shm_toc_insert(pcxt->toc, KEY_SHARED, shared);

	blob = shm_toc_allocate(pcxt->toc, blobsize);
	memcpy(blob, units, blobsize);
	shm_toc_insert(pcxt->toc, KEY_UNITS, blob);

	pscan = shm_toc_allocate(pcxt->toc, pscansize);
	table_parallelscan_initialize(heap, pscan, snapshot);
	shm_toc_insert(pcxt->toc, KEY_PSCAN, pscan);

	queues = shm_toc_allocate(pcxt->toc, (Size) QUEUE_SIZE * nworkers);
	shm_toc_insert(pcxt->toc, KEY_QUEUES, queues);
	handles = palloc0(sizeof(shm_mq_handle *) * nworkers);
	for (i = 0; i < nworkers; i++)
	{
		shm_mq	   *mq = shm_mq_create(queues + (Size) i * QUEUE_SIZE, QUEUE_SIZE);

		shm_mq_set_receiver(mq, MyProc);
		handles[i] = shm_mq_attach(mq, pcxt->seg, NULL);
	}

	LaunchParallelWorkers(pcxt);
	for (i = 0; i < pcxt->nworkers_launched; i++)
		shm_mq_set_handle(handles[i], pcxt->worker[i].bgwhandle);

	oldcxt = CurrentMemoryContext;
	PG_TRY();
	{
		/* the leader takes its share of blocks too */
		scan = table_beginscan_parallel(heap, pscan);
		refresh_scan_run(sc, scan, true);
		table_endscan(scan);
		refresh_scan_finish(sc);
		for (i = 0; i < pcxt->nworkers_launched; i++)
			receive_results(sc, handles[i]);
		WaitForParallelWorkersToFinish(pcxt);
	}
	PG_CATCH();
	{
		int			unit = worker_failure_unit(shared, oldcxt);

		/* a worker's rule error: attribute it as a serial scan would */
		if (unit >= 0)
			*sc->current_unit = unit;
		PG_RE_THROW();
	}
	PG_END_TRY();

	DestroyParallelContext(pcxt);
	ExitParallelMode();
}
