/*
 * nightly.c
 *     What the nightly run (segment.run_all, sql/install/90-schedule.sql)
 *     cannot find out in PL/pgSQL.
 *
 * run_all commits after every step, which PostgreSQL allows only when the
 * CALL is not inside a transaction block. It asks first, so that a CALL
 * between BEGIN and COMMIT gets a clear error before anything is done,
 * instead of "invalid transaction termination" at its first COMMIT.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"

/*
 * segment_internal._in_transaction_block() returns boolean: true inside BEGIN ...
 * COMMIT or a multi-statement query string, where a CALL is atomic.
 */
PG_FUNCTION_INFO_V1(segment_in_transaction_block);
Datum
segment_in_transaction_block(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(IsTransactionBlock());
}
