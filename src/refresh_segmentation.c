/*
 * refresh_segmentation.c
 *     The schemes and scorecards of a refresh, once refresh_scan.c has
 *     evaluated them in the same pass as the tags: store the members of
 *     every bucket (with entered/exited against the previous state, one
 *     result row each) and of every distinct score, through the catalog
 *     module. Prefix: refresh_segmentation_.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/date.h"

#include "catalog.h"
#include "memberset.h"
#include "numeric_scaled.h"
#include "refresh_segmentation.h"

void
refresh_segmentation_save_schemes(SubjectRun *sr, DateADT as_of, int64 run_id, ReturnSetInfo *rsinfo)
{
	const char *subject = sr->defs->name;
	int			i,
				b;

	for (i = 0; i < sr->defs->nschemes; i++)
	{
		ScanScheme *s = &sr->schemes[i];
		int32		scheme_id = sr->defs->schemes[i].id;

		if (sr->scheme_errors[i])
		{
			for (b = 0; b < s->nbuckets; b++)
				refresh_put_row(rsinfo, subject, psprintf("%s.%s", s->name, s->buckets[b].name),
								0, 0, 0, true);
			continue;
		}
		for (b = 0; b < s->nbuckets; b++)
		{
			ScanTag    *bk = &s->buckets[b];
			Datum		bname = DirectFunctionCall1(namein, CStringGetDatum(bk->name));
			RoaringOwned *prev = catalog_bucket_set(scheme_id, bname);
			CatalogSetRow row;
			int64		members,
						entered,
						exited;

			refresh_count_changes(bk->set, prev, &members, &entered, &exited);
			refresh_put_row(rsinfo, subject, psprintf("%s.%s", s->name, bk->name),
							members, entered, exited, false);
			refresh_set_row(&row, bk->set, as_of, run_id);
			catalog_save_bucket(scheme_id, bname, &row);
			pfree(DatumGetPointer(row.members));
		}
		catalog_prune_buckets(scheme_id, run_id);
	}
}

void
refresh_segmentation_save_scorecards(SubjectRun *sr, DateADT as_of, int64 run_id)
{
	int			i;

	for (i = 0; i < sr->defs->nscorecards; i++)
	{
		ScanScorecard *c = &sr->scorecards[i];
		int32		scorecard_id = sr->defs->scorecards[i].id;
		HASH_SEQ_STATUS hs;
		ScoreSet   *ss;

		if (sr->scorecard_errors[i])
			continue;
		catalog_clear_scores(scorecard_id);
		hash_seq_init(&hs, c->scores);
		while ((ss = hash_seq_search(&hs)) != NULL)
		{
			CatalogSetRow row;

			refresh_set_row(&row, ss->set, as_of, run_id);
			catalog_save_score(scorecard_id, numeric_scaled_to_numeric(ss->score), &row);
			pfree(DatumGetPointer(row.members));
		}
	}
}
