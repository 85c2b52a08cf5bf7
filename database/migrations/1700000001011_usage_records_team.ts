import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Each usage row keeps the team its request was admitted under
 * (`usage_records.team_id`, written by the meter's batch statement from the
 * MeterEvent's `teamId`: the team the team policy checked and the hold was
 * taken against; a batch's bill, the team the batch was made under). Spend
 * per team (LiteLLM's /global/spend/report?group_by=team, a team budget's
 * new period) reads it, so a key moved from team A to team B leaves its past
 * spend with A and B counts from the move.
 *
 * No foreign key: the hot table's inserts would pay a key-share lock and an
 * index probe on `teams` per row (migration 601 dropped usage_records' other
 * foreign keys for that), and a deleted team's rows should keep its id as
 * history (as `api_keys.team_id` ON DELETE SET NULL forgets it on the key,
 * but not on what the key spent while in it). The column is NULL for a key
 * in no team, the usual row (a nullable column without a default rewrites
 * nothing). No index: the team report reads the rollups' `team_model`
 * dimension for finished days and today's rows by created_at (~1 ms), and a
 * budget's new period reads at most a month of rows by created_at once per
 * settings change (EXPLAIN ANALYZE at ~870k rows over 30 days: 0.2 s, a
 * parallel scan; the read by the team's keys it replaces took 0.36 s). An
 * index would cost every team row's insert to save that rare read
 * (docs/benchmarks.md, twenty-fourth pass).
 *
 * Upgrade: rows from before this version are given their key's team as it
 * is now, from the team's creation on (the best information there is: a
 * row older than the team cannot be its spend; a key moved between teams
 * before the upgrade has all its rows after the later team's creation in
 * that team, as the report counted them before). The new rollup dimension is
 * filled for the days already rolled up (one grouped read of the rows in
 * teams, and the pruned days' key_model totals mapped the same way), rather
 * than marking every day stale (a re-roll of every dimension). Measured at
 * ~870k rows, 293k of them in teams: the row update ~8 s, the rollup fill
 * ~1.3 s. Run it with the gateway stopped (as every migration).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('usage_records', (table) => {
      table.bigInteger('team_id').nullable()
    })
    this.defer(async (db) => {
      await db.rawQuery(
        `UPDATE usage_records u SET team_id = k.team_id
           FROM api_keys k JOIN teams t ON t.id = k.team_id
          WHERE u.api_key_id = k.id AND u.created_at >= t.created_at`
      )
      // Pruned rows survive only as totals per key and model: their key's team, from the team's first day.
      await db.rawQuery(
        `INSERT INTO usage_daily_pruned (day, dim, key, requests, errors, input_tokens, output_tokens, cost)
         SELECT p.day, 'team_model', left(k.team_id::text || ' ' || substr(p.key, strpos(p.key, ' ') + 1), 200),
                sum(p.requests), sum(p.errors), sum(p.input_tokens), sum(p.output_tokens), sum(p.cost)
           FROM usage_daily_pruned p
           JOIN api_keys k ON k.id = split_part(p.key, ' ', 1)::bigint
           JOIN teams t ON t.id = k.team_id
          WHERE p.dim = 'key_model' AND p.day >= (t.created_at AT TIME ZONE 'UTC')::date
          GROUP BY 1, 2, 3`
      )
      await db.rawQuery(
        `INSERT INTO usage_daily (day, dim, key, requests, errors, input_tokens, output_tokens, cost)
         SELECT day, 'team_model', key, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(cost)
           FROM (SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, left(u.team_id::text || ' ' || u.model, 200) AS key,
                        count(*) AS requests, count(*) FILTER (WHERE u.status >= 400) AS errors,
                        coalesce(sum(u.prompt_tokens), 0) AS input_tokens, coalesce(sum(u.completion_tokens), 0) AS output_tokens,
                        coalesce(sum(u.cost), 0) AS cost
                   FROM usage_records u
                  WHERE u.team_id IS NOT NULL
                    AND (u.created_at AT TIME ZONE 'UTC')::date IN (SELECT day FROM usage_daily_days)
                  GROUP BY 1, 2
                 UNION ALL
                 SELECT day, key, requests, errors, input_tokens, output_tokens, cost
                   FROM usage_daily_pruned WHERE dim = 'team_model' AND day IN (SELECT day FROM usage_daily_days)) totals
          GROUP BY day, key`
      )
    })
  }

  async down() {
    this.schema.raw("DELETE FROM usage_daily WHERE dim = 'team_model'")
    this.schema.raw("DELETE FROM usage_daily_pruned WHERE dim = 'team_model'")
    this.schema.alterTable('usage_records', (table) => {
      table.dropColumn('team_id')
    })
  }
}
