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
 * error; the worker first records which tag it was evaluating, so the
 * leader can keep isolating a failing rule the way a serial refresh does.
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
#include "utils/snapmgr.h"

#include "refresh_parallel.h"

#define KEY_SHARED		UINT64CONST(0x5E6D000000000001)
#define KEY_TAGS		UINT64CONST(0x5E6D000000000002)
#define KEY_PSCAN		UINT64CONST(0x5E6D000000000003)
#define KEY_QUEUES		UINT64CONST(0x5E6D000000000004)

#define QUEUE_SIZE		(1024 * 1024)

/* message kinds ahead of the payload; tags are >= 0 */
#define MSG_UNIVERSE	(-1)
#define MSG_COUNTS		(-2)

typedef struct SharedRefresh
{
	Oid			relid;
	AttrNumber	keyattno;
	Oid			keytype;
	DateADT		as_of;
	int			ntags;
	pg_atomic_uint32 failed_tag;	/* 1 + index of a tag that raised an error */
} SharedRefresh;

/* Tags as: skip flag byte, name, NUL, rule, NUL; repeated ntags times. */
static Size
tags_blob_size(ScanCore *sc)
{
	Size		sz = 0;
	int			i;

	for (i = 0; i < sc->ntags; i++)
		sz += 1 + strlen(sc->tags[i].name) + 1 + strlen(sc->tags[i].rule) + 1;
	return sz;
}

static void
tags_blob_write(ScanCore *sc, char *p)
{
	int			i;

	for (i = 0; i < sc->ntags; i++)
	{
		Size		n;

		*p++ = sc->tags[i].skip ? 1 : 0;
		n = strlen(sc->tags[i].name) + 1;
		memcpy(p, sc->tags[i].name, n);
		p += n;
		n = strlen(sc->tags[i].rule) + 1;
		memcpy(p, sc->tags[i].rule, n);
		p += n;
	}
}

static ScanTag *
tags_blob_read(const char *p, int ntags)
{
	ScanTag    *tags = palloc0(sizeof(ScanTag) * Max(ntags, 1));
	int			i;

	for (i = 0; i < ntags; i++)
	{
		tags[i].skip = *p++ != 0;
		tags[i].name = p;
		p += strlen(p) + 1;
		tags[i].rule = p;
		p += strlen(p) + 1;
	}
	return tags;
}

static void
send_set(shm_mq_handle *mqh, int32 kind, roaring_bitmap_t *set)
{
	Size		n = roaring_bitmap_portable_size_in_bytes(set);
	char	   *buf = palloc(sizeof(int32) + n);

	memcpy(buf, &kind, sizeof(int32));
	roaring_bitmap_portable_serialize(set, buf + sizeof(int32));
	if (shm_mq_send(mqh, sizeof(int32) + n, buf, false, true) != SHM_MQ_SUCCESS)
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
	char	   *blob = shm_toc_lookup(toc, KEY_TAGS, false);
	ParallelTableScanDesc pscan = shm_toc_lookup(toc, KEY_PSCAN, false);
	char	   *queues = shm_toc_lookup(toc, KEY_QUEUES, false);
	shm_mq	   *mq = (shm_mq *) (queues + (Size) ParallelWorkerNumber * QUEUE_SIZE);
	shm_mq_handle *mqh;
	volatile int current_tag = -1;
	ScanCore	sc;
	TableScanDesc scan;
	int64		counts[2];
	int32		kind = MSG_COUNTS;
	char		msg[sizeof(int32) + sizeof(counts)];
	int			i;

	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);

	memset(&sc, 0, sizeof(sc));
	sc.rel = table_open(shared->relid, AccessShareLock);
	sc.keyattno = shared->keyattno;
	sc.keytype = shared->keytype;
	sc.subject = RelationGetRelationName(sc.rel);
	sc.ntags = shared->ntags;
	sc.tags = tags_blob_read(blob, shared->ntags);
	sc.current_tag = &current_tag;

	PG_TRY();
	{
		scan_core_compile(&sc, shared->as_of);
		scan = table_beginscan_parallel(sc.rel, pscan);
		scan_core_run(&sc, scan, false);
		table_endscan(scan);
		scan_core_finish(&sc);
	}
	PG_CATCH();
	{
		/* tell the leader which rule failed; the error itself follows */
		if (current_tag >= 0)
		{
			uint32		expected = 0;

			pg_atomic_compare_exchange_u32(&shared->failed_tag, &expected,
										   (uint32) current_tag + 1);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	for (i = 0; i < sc.ntags; i++)
	{
		if (sc.tags[i].skip)
			continue;
		send_set(mqh, i, sc.tags[i].set->bitmap);
		roaring_owned_free(sc.tags[i].set);
	}
	send_set(mqh, MSG_UNIVERSE, sc.universe->bitmap);
	roaring_owned_free(sc.universe);
	counts[0] = sc.rows;
	counts[1] = sc.null_keys;
	memcpy(msg, &kind, sizeof(int32));
	memcpy(msg + sizeof(int32), counts, sizeof(counts));
	if (shm_mq_send(mqh, sizeof(msg), msg, false, true) != SHM_MQ_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not send row counts to the leader")));
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
		int32		kind;
		shm_mq_result res = shm_mq_receive(mqh, &nbytes, &data, false);

		if (res == SHM_MQ_DETACHED)
			break;
		if (res != SHM_MQ_SUCCESS || nbytes < sizeof(int32))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("lost contact with a parallel worker of the refresh")));
		memcpy(&kind, data, sizeof(int32));
		if (kind == MSG_COUNTS)
		{
			int64		counts[2];

			memcpy(counts, (char *) data + sizeof(int32), sizeof(counts));
			sc->rows += counts[0];
			sc->null_keys += counts[1];
		}
		else if (kind == MSG_UNIVERSE)
			merge_set(sc->universe, (char *) data + sizeof(int32), nbytes - sizeof(int32));
		else if (kind >= 0 && kind < sc->ntags && !sc->tags[kind].skip)
			merge_set(sc->tags[kind].set, (char *) data + sizeof(int32), nbytes - sizeof(int32));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("a parallel worker sent an unknown message %d", kind)));
	}
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
	Size		blobsize = tags_blob_size(sc);
	Size		pscansize = table_parallelscan_estimate(sc->rel, snapshot);
	TableScanDesc scan;
	int			i;

	scan_core_compile(sc, as_of);
	EnterParallelMode();
	pcxt = CreateParallelContext("segment", "segment_refresh_worker", nworkers);
	shm_toc_estimate_chunk(&pcxt->estimator, sizeof(SharedRefresh));
	shm_toc_estimate_chunk(&pcxt->estimator, blobsize);
	shm_toc_estimate_chunk(&pcxt->estimator, pscansize);
	shm_toc_estimate_chunk(&pcxt->estimator, (Size) QUEUE_SIZE * nworkers);
	shm_toc_estimate_keys(&pcxt->estimator, 4);
	InitializeParallelDSM(pcxt);

	shared = shm_toc_allocate(pcxt->toc, sizeof(SharedRefresh));
	shared->relid = RelationGetRelid(sc->rel);
	shared->keyattno = sc->keyattno;
	shared->keytype = sc->keytype;
	shared->as_of = as_of;
	shared->ntags = sc->ntags;
	pg_atomic_init_u32(&shared->failed_tag, 0);
	shm_toc_insert(pcxt->toc, KEY_SHARED, shared);

	blob = shm_toc_allocate(pcxt->toc, blobsize);
	tags_blob_write(sc, blob);
	shm_toc_insert(pcxt->toc, KEY_TAGS, blob);

	pscan = shm_toc_allocate(pcxt->toc, pscansize);
	table_parallelscan_initialize(sc->rel, pscan, snapshot);
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

	PG_TRY();
	{
		/* the leader takes its share of blocks too */
		scan = table_beginscan_parallel(sc->rel, pscan);
		scan_core_run(sc, scan, true);
		table_endscan(scan);
		scan_core_finish(sc);
		for (i = 0; i < pcxt->nworkers_launched; i++)
			receive_results(sc, handles[i]);
		WaitForParallelWorkersToFinish(pcxt);
	}
	PG_CATCH();
	{
		uint32		failed = pg_atomic_read_u32(&shared->failed_tag);

		/* a worker's rule error: attribute it as a serial scan would */
		if (failed > 0 && *sc->current_tag < 0)
			*sc->current_tag = (int) failed - 1;
		PG_RE_THROW();
	}
	PG_END_TRY();

	DestroyParallelContext(pcxt);
	ExitParallelMode();
}
