import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The daily rollups gain an end-user dimension (app/services/usage_rollup.ts,
 * read by services/end_user_spend.ts): per UTC day, owner, end user, model,
 * model asked for (fallback rows; '' otherwise) and key (0: none), the
 * totals of the rows that named an end user. Its own table, not a
 * `usage_daily` dim: five key columns (an end user is up to 128 characters,
 * a model up to 200) do not fit usage_daily's 200-character key, and the
 * readers filter on owner, end user, model and key.
 *
 * `usage_daily_end_users_pruned` is the same per day for rows the retention
 * deleted (app/actions/prune_usage.ts), as usage_daily_pruned is for the
 * other dimensions.
 *
 * Upgrade: the new dimension alone is filled here from the rows of every
 * finished day (one grouped read of the rows that name an end user, on
 * their partial index; ~1 s at 1M rows, 250k named), instead of marking
 * every rolled-up day stale as migration 1001 did (a re-roll of all
 * dimensions: ~8 s a month at 1M rows). Rows pruned before this version
 * are in the other dimensions' totals only: they cannot be split per end
 * user any more. Run it with the gateway stopped (as every migration): an
 * old server rolling up a day from here on would not fill this table.
 */
export default class extends BaseSchema {
  async up() {
    for (const name of ['usage_daily_end_users', 'usage_daily_end_users_pruned']) {
      this.schema.createTable(name, (table) => {
        table.date('day').notNullable()
        table.bigInteger('user_id').notNullable()
        table.text('end_user').notNullable()
        table.string('model', 200).notNullable()
        table.string('requested_model', 200).notNullable().defaultTo('')
        table.bigInteger('api_key_id').notNullable().defaultTo(0)
        table.bigInteger('requests').notNullable()
        table.bigInteger('errors').notNullable()
        table.bigInteger('input_tokens').notNullable()
        table.bigInteger('output_tokens').notNullable()
        table.decimal('cost', 24, 12).notNullable()
        table.primary(['day', 'user_id', 'end_user', 'model', 'requested_model', 'api_key_id'])
      })
    }
    // An owner's end users over a range (/customer/*, the End users page, a user's spend per end user).
    this.schema.raw('CREATE INDEX usage_daily_end_users_user_day ON usage_daily_end_users (user_id, day)')
    // One end user over a range (the usage filters' end_user, across owners).
    this.schema.raw('CREATE INDEX usage_daily_end_users_end_user_day ON usage_daily_end_users (end_user, day)')
    this.defer(async (db) => {
      await db.rawQuery(
        `INSERT INTO usage_daily_end_users
           (day, user_id, end_user, model, requested_model, api_key_id, requests, errors, input_tokens, output_tokens, cost)
         SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, end_user, model, coalesce(requested_model, ''), coalesce(api_key_id, 0),
                count(*), count(*) FILTER (WHERE status >= 400), sum(prompt_tokens), sum(completion_tokens), sum(cost)
           FROM usage_records
          WHERE end_user IS NOT NULL AND created_at < date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
          GROUP BY 1, 2, 3, 4, 5, 6`
      )
      await db.rawQuery('ANALYZE usage_daily_end_users')
    })
  }

  async down() {
    this.schema.dropTable('usage_daily_end_users_pruned')
    this.schema.dropTable('usage_daily_end_users')
  }
}
