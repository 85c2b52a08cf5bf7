import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The key's budget per model (api_keys.model_limits) a batch was admitted
 * under: its own name, which may be another spelling than the batch's model
 * (a batch of `GPT-4o` spends the `gpt-4o` budget: model_limits.ts limitFor).
 * Its hold counts there (batch_holds.ts, after a restart too) and its bill
 * (batch_service.ts). Null: none then (the bill falls back to the model).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('batch_objects', (table) => {
      table.text('budget_model').nullable()
    })
  }

  async down() {
    this.schema.alterTable('batch_objects', (table) => {
      table.dropColumn('budget_model')
    })
  }
}
