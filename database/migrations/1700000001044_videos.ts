import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Video generation (OpenAI's Videos API, Google's Veo): a job runs upstream
 * for minutes, so each lives in `videos` (app/gateway/videos/): the gateway's
 * id (`public_id`, what the client sees) mapped to the upstream's (`upstream_id`:
 * OpenAI's video id, or Veo's operation name), its owner, channel, model,
 * seconds and size, its status as last seen, the hold on its owner's balance
 * (`hold`, synced into every instance as a batch's is) and its bill, claimed
 * once (`billed_at`, with its cost and seconds). `polled_at` orders the sweep
 * that any instance runs.
 *
 * Prices: `model_prices.per_video_second` (USD per second of generated video,
 * LiteLLM's output_cost_per_video_per_second); the usage row keeps the
 * seconds billed (`usage_records.video_seconds`).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('videos', (table) => {
      table.bigIncrements('id')
      table.string('public_id', 64).notNullable().unique()
      table.string('upstream_id', 512).notNullable()
      /** openai: OpenAI's Videos API; veo: an OpenAI-wire video made by Veo; veo_native: a Gemini client's own operation */
      table.string('wire', 16).notNullable()
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.bigInteger('api_key_id').nullable().references('id').inTable('api_keys').onDelete('SET NULL')
      table.bigInteger('team_id').nullable()
      table.string('budget_model', 255).nullable()
      table.bigInteger('channel_id').nullable().references('id').inTable('channels').onDelete('SET NULL')
      table.string('model', 255).notNullable()
      table.string('served_model', 255).nullable()
      /** Seconds of each video, and videos asked for (1 but for a Gemini client's own sampleCount) */
      table.integer('seconds').notNullable()
      table.integer('samples').notNullable().defaultTo(1)
      table.string('size', 32).nullable()
      table.string('status', 32).notNullable()
      table.jsonb('object').nullable()
      table.string('remixed_from', 64).nullable()
      table.uuid('request_id').notNullable().unique()
      table.decimal('hold', 24, 12).notNullable().defaultTo(0)
      table.timestamp('billed_at', { useTz: true }).nullable()
      table.decimal('billed_cost', 24, 12).nullable()
      /** The seconds billed: with billed_cost, what a usage row a crash lost is written again from */
      table.integer('billed_seconds').nullable()
      table.timestamp('polled_at', { useTz: true }).nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.unique(['channel_id', 'upstream_id'], { indexName: 'videos_upstream' })
    })
    // The owner's list, newest first; the sweep's unbilled videos only.
    this.schema.raw('CREATE INDEX videos_owner ON videos (user_id, id DESC)')
    this.schema.raw('CREATE INDEX videos_unbilled ON videos (polled_at NULLS FIRST, id) WHERE billed_at IS NULL')
    this.schema.alterTable('model_prices', (table) => {
      table.decimal('per_video_second', 20, 6).nullable()
    })
    this.schema.alterTable('usage_records', (table) => {
      table.integer('video_seconds').nullable()
    })
  }

  async down() {
    this.schema.alterTable('usage_records', (table) => {
      table.dropColumn('video_seconds')
    })
    this.schema.alterTable('model_prices', (table) => {
      table.dropColumn('per_video_second')
    })
    this.schema.dropTable('videos')
  }
}
