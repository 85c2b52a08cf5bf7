import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The model the client asked for, on a usage row a fallback model served
 * (LiteLLM's spend logs keep it as `model_group`): `model` is the model that
 * answered and was billed, `requested_model` the one named in the request.
 * NULL when they are the same, the usual case, so rows stay as small as
 * before. Adding a nullable column without a default rewrites nothing.
 *
 * The partial index serves the usage pages' model filter, which matches
 * either column (`model = X OR requested_model = X`: a bitmap OR with the
 * (model, created_at) index); it holds fallback rows only, so the meter's
 * usual insert does not touch it.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('usage_records', (table) => {
      table.text('requested_model').nullable()
    })
    this.schema.raw(
      `CREATE INDEX usage_records_requested_model_created_at ON usage_records (requested_model, created_at)
        WHERE requested_model IS NOT NULL`
    )
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS usage_records_requested_model_created_at')
    this.schema.alterTable('usage_records', (table) => {
      table.dropColumn('requested_model')
    })
  }
}
