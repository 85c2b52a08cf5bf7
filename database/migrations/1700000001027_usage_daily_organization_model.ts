import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The daily rollups gain an `org_model` dimension (requests, tokens
 * and spend per organization and model, from `usage_records.organization_id`:
 * LiteLLM's /organization/daily/activity, app/services/usage_rollup.ts).
 * Organizations came with migration 1024, so only the days rolled up since
 * then can hold such rows: those days are marked stale, and the retention
 * timer (or the next reader of a range) rolls them up again from their rows
 * (one grouped read of the table here, not a re-roll of every day as 1001).
 * Rows of those days already pruned survive only as totals per team and
 * model: they are given their team's organization as it is now, from the
 * organization's creation on (the best information there is), as 1011 gave
 * pruned key totals their key's team.
 */
export default class extends BaseSchema {
  async up() {
    this.defer(async (db) => {
      await db.rawQuery(
        `INSERT INTO usage_daily_pruned (day, dim, key, requests, errors, input_tokens, output_tokens, cost)
         SELECT p.day, 'org_model', left(t.organization_id::text || ' ' || substr(p.key, strpos(p.key, ' ') + 1), 200),
                sum(p.requests), sum(p.errors), sum(p.input_tokens), sum(p.output_tokens), sum(p.cost)
           FROM usage_daily_pruned p
           JOIN teams t ON t.id = split_part(p.key, ' ', 1)::bigint
           JOIN organizations o ON o.id = t.organization_id
          WHERE p.dim = 'team_model' AND p.day >= (o.created_at AT TIME ZONE 'UTC')::date
          GROUP BY 1, 2, 3
         ON CONFLICT (day, dim, key) DO NOTHING`
      )
      await db.rawQuery(
        `INSERT INTO usage_daily_stale (day)
         SELECT d.day FROM usage_daily_days d
          WHERE EXISTS (SELECT 1 FROM usage_records u
                         WHERE u.organization_id IS NOT NULL
                           AND u.created_at >= d.day::timestamp AT TIME ZONE 'UTC' AND u.created_at < (d.day + 1)::timestamp AT TIME ZONE 'UTC')
             OR EXISTS (SELECT 1 FROM usage_daily_pruned p WHERE p.day = d.day AND p.dim = 'org_model')
         ON CONFLICT (day) DO NOTHING`
      )
    })
  }

  async down() {
    this.schema.raw("DELETE FROM usage_daily WHERE dim = 'org_model'")
    this.schema.raw("DELETE FROM usage_daily_pruned WHERE dim = 'org_model'")
  }
}
