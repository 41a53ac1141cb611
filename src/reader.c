/*
 * reader.c
 *     What the SQL readers share beyond the audience module (reader.h): the
 *     checks of an as_of date and an audience evaluated as of a retained
 *     snapshot (snapshot_read.c), and segment.members up to its first row
 *     (reading.c, snapshot_read.c and the streaming member scan,
 *     members_scan.c).
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/date.h"

#include "audience.h"
#include "catalog.h"
#include "governance.h"
#include "reader.h"
#include "snapshot.h"

void
reader_check_as_of(DateADT d)
{
	/*
	 * An infinite date is no day a refresh can store: refused up front, as
	 * segment.refresh refuses it, rather than reported as a snapshot that is
	 * not retained.
	 */
	if (DATE_NOT_FINITE(d))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be a finite date, not %s", snapshot_date_text(d)),
				 errhint("Give one of the retained snapshot dates: segment.snapshots(subject) lists them.")));
}

SubjectInfo *
reader_retained_subject(const char *subject, DateADT d)
{
	SubjectInfo *s = subject_lookup(subject, false);
	bool		found;
	char	   *dates = NULL;

	if (!s->has_snapshot_column)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("subject \"%s\" is not a snapshot subject: it keeps no earlier member sets",
						NameStr(s->name)),
				 errhint("Call it without as_of, or register the table with snapshot_column => ...")));
	found = catalog_snapshot_retained(s->subject_id, d, &dates);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("subject \"%s\" has no retained snapshot of %s", NameStr(s->name),
						snapshot_date_text(d)),
				 dates ? errdetail("Retained snapshots: %s.", dates)
				 : errdetail("No snapshot of it has been refreshed yet."),
				 errhint("Refresh that date with segment.refresh('%s', '%s') (it is kept while among the %d newest; segment.set_snapshot_retention changes that).",
						 NameStr(s->name), snapshot_date_text(d), s->snapshot_retention)));
	return s;
}

RoaringOwned *
reader_evaluate_as_of(const SubjectInfo *s, const char *audience, DateADT d)
{
	RoaringOwned *volatile set = NULL;

	audience_set_snapshot(true, d);
	PG_TRY();
	{
		set = audience_evaluate(s, audience);
	}
	PG_FINALLY();
	{
		audience_set_snapshot(false, 0);
	}
	PG_END_TRY();
	return set;
}

/* ERROR 42804 for a subject whose keys are not integers. */
static void
check_integer_keys(const SubjectInfo *s, const char *as_of_arg)
{
	if (!s->integer_keys)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("subject \"%s\" has %s keys, which segment.members cannot return as bigint",
						NameStr(s->name), format_type_be(s->key_type)),
				 errhint("Use segment.members_text('%s', ...%s) instead.", NameStr(s->name), as_of_arg)));
}

const roaring_bitmap_t *
reader_members(const char *subject, const char *audience, const DateADT *as_of,
			   bool keep, RoaringOwned **owned)
{
	SubjectInfo *s;
	const roaring_bitmap_t *set;

	if (as_of == NULL)
	{
		s = subject_lookup(subject, false);
		check_integer_keys(s, "");
		governance_check_export("segment.members");
		set = audience_evaluate_view(s, audience, owned);
		if (keep && *owned == NULL)
		{
			*owned = roaring_owned_copy(set);
			set = (*owned)->bitmap;
		}
		governance_audit_export("segment.members", NameStr(s->name), audience,
								(int64) roaring_bitmap_get_cardinality(set));
	}
	else
	{
		reader_check_as_of(*as_of);
		governance_check_export("segment.members");
		s = reader_retained_subject(subject, *as_of);
		check_integer_keys(s, ", as_of");
		*owned = reader_evaluate_as_of(s, audience, *as_of);
		set = (*owned)->bitmap;
		governance_audit_export("segment.members", NameStr(s->name),
								psprintf("%s (as of %s)", audience,
										 DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(*as_of)))),
								(int64) roaring_bitmap_get_cardinality(set));
	}
	return set;
}
