import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The daily rollups gain the status dimensions `model_status` (`<status>
 * <model>`) and `requested_status` (`<status> <model asked for>`, fallback
 * rows only): the usage pages' status filter, alone or with a model, reads
 * them instead of aggregating every row of its range
 * (app/services/usage_rollup.ts dailyStatusTotals).
 *
 * Upgrade: the new dimensions alone are filled here for every rolled-up day
 * from its rows (one grouped read of the table: ~3 s at 1M rows), as
 * migration 1008 filled the end-user rollup, instead of marking every day
 * stale (a re-roll of every dimension). Rows pruned before this version
 * are in the other dimensions' totals only: their status cannot be told
 * any more, so those days hold their kept rows' (what the rows gave before;
 * the Usage page's retention notice says so). Run it with the gateway
 * stopped, as every migration: an old server rolling up a day from here on
 * would leave these dimensions out of it.
 */
export default class extends BaseSchema {
  async up() {
    this.defer(async (db) => {
      await db.rawQuery(
        `INSERT INTO usage_daily (day, dim, key, requests, errors, input_tokens, output_tokens, cost)
         SELECT r.day, d.dim, d.key, count(*), count(*) FILTER (WHERE r.status >= 400),
                coalesce(sum(r.prompt_tokens), 0), coalesce(sum(r.completion_tokens), 0), coalesce(sum(r.cost), 0)
           FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, model, requested_model, status, prompt_tokens, completion_tokens, cost
                   FROM usage_records
                  WHERE created_at < date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') r
           JOIN usage_daily_days done ON done.day = r.day
          CROSS JOIN LATERAL (VALUES ('model_status', left(r.status::text || ' ' || r.model, 200)),
                                     ('requested_status', CASE WHEN r.requested_model IS NULL THEN NULL
                                                               ELSE left(r.status::text || ' ' || r.requested_model, 200) END)) d(dim, key)
          WHERE d.key IS NOT NULL
          GROUP BY 1, 2, 3
         ON CONFLICT (dim, day, key) DO NOTHING`
      )
      await db.rawQuery('ANALYZE usage_daily')
    })
  }

  async down() {
    this.schema.raw("DELETE FROM usage_daily WHERE dim IN ('model_status', 'requested_status')")
    this.schema.raw("DELETE FROM usage_daily_pruned WHERE dim IN ('model_status', 'requested_status')")
  }
}
