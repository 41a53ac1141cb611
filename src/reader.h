/*
 * reader.h
 *     What the SQL readers share beyond the audience module (reader.c):
 *     an audience read as of a retained snapshot, and everything
 *     segment.members does before its first row. Prefix: reader_.
 *
 * segment.members is answered by two executors: the set-returning function
 * (reading.c, snapshot_read.c), and the streaming member scan the planner
 * puts in its place (members_scan.c). Both call reader_members, so that
 * they raise the same errors, in the same order, evaluate the same set and
 * audit the same export.
 */
#ifndef SEGMENT_READER_H
#define SEGMENT_READER_H

#include "postgres.h"

#include "utils/date.h"

#include "memberset.h"
#include "subject.h"

/* ERROR 22023 unless d is a finite date (no refresh can store another). */
extern void reader_check_as_of(DateADT d);

/*
 * The subject, checked to be a snapshot subject (0A000 otherwise) whose
 * snapshot of d is retained (02000 otherwise, naming the retained dates).
 */
extern SubjectInfo *reader_retained_subject(const char *subject, DateADT d);

/*
 * The audience's set in snapshot d, owned by CurrentMemoryContext. Snapshot
 * mode (audience_set_snapshot) is off again on any exit.
 */
extern RoaringOwned *reader_evaluate_as_of(const SubjectInfo *s, const char *audience,
										   DateADT d);

/*
 * segment.members(subject, audience [, as_of]) up to its rows: the checks
 * (as_of, subject, bigint keys, export right), the evaluation and the audit
 * of the export with its row count. as_of NULL: now. Returns the set, in
 * ascending order of member id (the bigint key).
 *
 * keep false: the set may be read-only and only valid until the next
 * audience is evaluated in this backend (audience_evaluate_view); *owned is
 * what to free early (NULL: nothing). keep true: the set is *owned's,
 * owned by CurrentMemoryContext, valid whatever is evaluated meanwhile
 * (what a scan that returns its rows one at a time needs).
 */
extern const roaring_bitmap_t *reader_members(const char *subject, const char *audience,
											  const DateADT *as_of, bool keep,
											  RoaringOwned **owned);

#endif							/* SEGMENT_READER_H */
