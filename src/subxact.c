/*
 * subxact.c
 *     One step run in an internal subtransaction (subxact.h): the one place
 *     that begins, releases and rolls back segment's subtransactions and
 *     decides which errors a caller may survive.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "subxact.h"

/* Errors that are the session's or the server's, not the step's: never caught. */
static bool
must_propagate(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_QUERY_CANCELED ||
		sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
		sqlerrcode == ERRCODE_OUT_OF_MEMORY;
}

bool
subxact_run(SubxactStep step, void *arg, ErrorData **error)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile caught = NULL;

	if (error != NULL)
		*error = NULL;
	BeginInternalSubTransaction(NULL);
	/* the step runs in the caller's context: what it allocates there stays */
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		step(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* copy the error out of ErrorContext before the rollback resets it */
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (must_propagate(edata->sqlerrcode))
			ReThrowError(edata);
		caught = edata;
	}
	PG_END_TRY();

	if (caught == NULL)
		return true;
	if (error != NULL)
		*error = caught;
	else
		FreeErrorData(caught);
	return false;
}
