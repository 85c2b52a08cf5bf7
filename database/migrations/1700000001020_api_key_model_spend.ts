import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * What a key spent on one model with a budget (LiteLLM's model_max_budget,
 * set in api_keys.model_limits): the lifetime spend, and the spend in the
 * UTC day/week/month starting `period_start` for a budget that resets. The
 * model is the name the client asked for. Written by the meter's statement
 * only for rows admitted under such a budget (MODEL_BUDGET_SPEND_EFFECT), and
 * recounted from usage_records when a budget or its period changes.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('api_key_model_spend', (table) => {
      table.bigInteger('api_key_id').notNullable().references('id').inTable('api_keys').onDelete('CASCADE')
      table.text('model').notNullable()
      table.decimal('spent', 24, 12).notNullable().defaultTo(0)
      table.decimal('period_spent', 24, 12).notNullable().defaultTo(0)
      table.date('period_start').nullable()
      table.primary(['api_key_id', 'model'])
    })
  }

  async down() {
    this.schema.dropTable('api_key_model_spend')
  }
}
