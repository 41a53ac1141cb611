/*
 * refresh_pipeline.c
 *     The steps a refresh runs around writing a subject's state, in order,
 *     from one place (docs/dba-guide.md#the-refresh-pipeline).
 *
 * A refresh scans, writes the state (tag, bucket, score and subject state,
 * then the day's history), and then does what follows from the new state:
 * live maintenance's cached definitions go stale (the date moved), and the
 * customers who entered an audience watched by an entry rule get its
 * opportunities. Those steps are listed in pipeline_steps below, in the
 * order they run; none is a trigger on segment's own tables, so they do not
 * depend on the order in which the refresh writes them.
 *
 * A step needing the state as it was (entries are the audience after the
 * run minus the audience before it) runs in the phase before the state is
 * written; the others after. Each step runs in a subtransaction: a step
 * that fails is reported with a WARNING and logged with its error, and the
 * refresh keeps the state it wrote (a cancel, a shutdown or running out of
 * memory still fail the refresh). Each step is logged in segment.run_step
 * with its start, duration and what it counted, in the refresh's own
 * transaction: a refresh that rolls back leaves no step rows.
 *
 * A catalog still at 0.1.0 (before ALTER EXTENSION segment UPDATE) has no
 * segment.run_step and still has the triggers of 0.1.0, which do this
 * work: then no step runs here.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "refresh_pipeline.h"
#include "subject.h"
#include "subxact.h"
#include "internal_schema.h"

typedef enum StepPhase
{
	STEP_BEFORE_STATE,			/* before the run writes its first state row */
	STEP_AFTER_STATE			/* after it wrote the last one */
} StepPhase;

/* What a step reports for the log. */
typedef struct StepResult
{
	bool		counted;		/* rows is meaningful */
	int64		rows;
	char	   *failed;			/* NULL, or what failed (the step went on or not) */
} StepResult;

typedef void (*StepFunction) (RefreshPipeline *pipeline, StepResult *result);

typedef struct PipelineStep
{
	const char *name;			/* segment.run_step.step */
	StepPhase	phase;
	StepFunction run;
	const char *what;			/* what StepResult.rows counts */
} PipelineStep;

struct RefreshPipeline
{
	int32		subject_id;
	char	   *subject;
	int64		run_id;
	DateADT		as_of;
	bool		active;			/* false: no step runs (back-fill, 0.1.0 catalog) */
	MemoryContext cxt;			/* where what passes between steps lives */
	int			step_no;		/* of the last step logged */
	/* capture_entry_audiences -> fire_entry_rules; (Datum) 0: none */
	Datum		audiences;		/* text[] */
	Datum		befores;		/* memberset[], NULL elements: not evaluable */
};

static void step_capture_entry_audiences(RefreshPipeline *p, StepResult *r);
static void step_invalidate_live_definitions(RefreshPipeline *p, StepResult *r);
static void step_fire_entry_rules(RefreshPipeline *p, StepResult *r);

/* The steps, in the order they run. */
static const PipelineStep pipeline_steps[] = {
	{"capture_entry_audiences", STEP_BEFORE_STATE, step_capture_entry_audiences, "audiences"},
	{"invalidate_live_definitions", STEP_AFTER_STATE, step_invalidate_live_definitions, NULL},
	{"fire_entry_rules", STEP_AFTER_STATE, step_fire_entry_rules, "opportunities"},
};

/* ---------- the steps ---------- */

/*
 * The audiences of the subject's entry rules as they are before the run
 * writes anything (segment_internal._entry_audiences), kept for fire_entry_rules.
 */
static void
step_capture_entry_audiences(RefreshPipeline *p, StepResult *r)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	bool		isnull;
	Datum		audiences;
	int			nest = segment_spi_connect();

	args[0] = Int32GetDatum(p->subject_id);
	if (SPI_execute_with_args(segment_internal_sql("SELECT count(*), array_agg(a.audience), array_agg(a.members) "
							  "  FROM segment_internal._entry_audiences($1) a"),
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not evaluate the audiences of entry rules");
	r->counted = true;
	r->rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	audiences = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
	{
		Datum		befores = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		MemoryContext old = MemoryContextSwitchTo(p->cxt);

		/* out of SPI's memory, which segment_spi_finish frees */
		p->audiences = datumCopy(audiences, false, -1);
		p->befores = datumCopy(befores, false, -1);
		MemoryContextSwitchTo(old);
	}
	segment_spi_finish(nest);
}

/*
 * Live maintenance caches the subject's definitions and the date of its
 * state per backend (src/live.c): a relcache invalidation of
 * segment.live_subject makes every backend rebuild them, at our commit.
 */
static void
step_invalidate_live_definitions(RefreshPipeline *p, StepResult *r)
{
	Oid			relid = get_relname_relid("live_subject", get_namespace_oid("segment", false));

	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
}

/*
 * Entered = the audience now minus the audience captured before the run;
 * the opportunities of the rules that fire on that entry, for the run's
 * date (segment_internal._fire_entered). A failing entry rule is reported there with
 * a WARNING and does not fail the step; what failed is logged.
 */
static void
step_fire_entry_rules(RefreshPipeline *p, StepResult *r)
{
	Oid			mstype;
	Oid			argtypes[4];
	Datum		args[4];
	bool		isnull;
	Datum		failed;
	int			nest;

	r->counted = true;
	r->rows = 0;
	if (p->audiences == (Datum) 0)
		return;					/* no entry rule, or the capture failed */
	nest = segment_spi_connect();
	mstype = memberset_type_oid();
	argtypes[0] = INT4OID;
	argtypes[1] = TEXTARRAYOID;
	argtypes[2] = get_array_type(mstype);
	argtypes[3] = DATEOID;
	args[0] = Int32GetDatum(p->subject_id);
	args[1] = p->audiences;
	args[2] = p->befores;
	args[3] = DateADTGetDatum(p->as_of);
	if (SPI_execute_with_args(segment_internal_sql("SELECT f.made, f.failed "
							  "  FROM segment_internal._fire_entered($1, NULL, $2, $3, $4, 'refresh') f"),
							  4, argtypes, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not fire the entry rules");
	r->rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	failed = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
		r->failed = MemoryContextStrdup(p->cxt, TextDatumGetCString(failed));
	segment_spi_finish(nest);
}

/* ---------- running and logging ---------- */

static void
log_step(RefreshPipeline *p, const PipelineStep *step, TimestampTz started,
		 TimestampTz finished, const StepResult *r)
{
	int			nest = segment_spi_connect();

	catalog_run_step(p->run_id, ++p->step_no, step->name, started, finished,
					 r->counted, r->rows, step->what, r->failed);
	segment_spi_finish(nest);
}

/* What subxact_run calls: one step with its pipeline and result. */
typedef struct StepCall
{
	RefreshPipeline *p;
	const PipelineStep *step;
	StepResult *r;
} StepCall;

static void
call_step(void *arg)
{
	StepCall   *c = (StepCall *) arg;

	c->step->run(c->p, c->r);
}

/* One step in a subtransaction; a failure is a WARNING and a logged error. */
static void
run_step(RefreshPipeline *p, const PipelineStep *step)
{
	TimestampTz started = GetCurrentTimestamp();
	StepResult *r = palloc0(sizeof(StepResult));
	StepCall	call = {p, step, r};
	ErrorData  *edata;

	/* a cancel, a shutdown or out of memory are not a step's fault: the refresh fails */
	if (!subxact_run(call_step, &call, &edata))
	{
		r->counted = false;
		r->failed = MemoryContextStrdup(p->cxt, edata->message);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("after-refresh step %s of subject \"%s\" failed: %s",
						step->name, p->subject, edata->message),
				 errdetail("The refresh keeps the state it wrote; the error is in segment.run_step (run %lld).",
						   (long long) p->run_id)));
		FreeErrorData(edata);
	}
	log_step(p, step, started, GetCurrentTimestamp(), r);
}

static void
run_phase(RefreshPipeline *p, StepPhase phase)
{
	int			i;

	if (!p->active)
		return;
	for (i = 0; i < lengthof(pipeline_steps); i++)
		if (pipeline_steps[i].phase == phase)
			run_step(p, &pipeline_steps[i]);
}

RefreshPipeline *
refresh_pipeline_begin(int32 subject_id, const char *subject, int64 run_id, DateADT as_of,
					   bool writes_state)
{
	RefreshPipeline *p = palloc0(sizeof(RefreshPipeline));

	p->subject_id = subject_id;
	p->subject = pstrdup(subject);
	p->run_id = run_id;
	p->as_of = as_of;
	p->cxt = CurrentMemoryContext;
	p->active = writes_state && segment_catalog_has_column("run_step", "step");
	run_phase(p, STEP_BEFORE_STATE);
	return p;
}

void
refresh_pipeline_end(RefreshPipeline *pipeline)
{
	run_phase(pipeline, STEP_AFTER_STATE);
}
