import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The daily rollups gain a `key_model` dimension (spend per key and model:
 * LiteLLM's /global/spend/keys and /global/spend/report?group_by=api_key,
 * app/services/usage_rollup.ts). Days rolled up before it have no such rows:
 * they are marked stale, so the next reader of a range rolls them up again
 * from their rows (a day's rows pruned before this version are in its other
 * dimensions' totals only: they cannot be split per key any more).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.raw('INSERT INTO usage_daily_stale (day) SELECT day FROM usage_daily_days ON CONFLICT (day) DO NOTHING')
  }

  async down() {
    this.schema.raw("DELETE FROM usage_daily WHERE dim = 'key_model'")
    this.schema.raw("DELETE FROM usage_daily_pruned WHERE dim = 'key_model'")
  }
}
