import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Anthropic's Message Batches (app/gateway/batches/message_batches_api.ts)
 * report prompt tokens written to the cache (`cache_creation_input_tokens`),
 * priced apart from plain and cached input. A batch's bill keeps every figure
 * of its usage row (batch_service.ts repairBills writes a row a crash lost
 * from them): the cache writes are one more. NULL on rows billed before it.
 */
export default class extends BaseSchema {
  protected tableName = 'batch_objects'

  async up() {
    this.schema.alterTable(this.tableName, (table) => {
      table.bigInteger('cache_write_tokens').nullable()
    })
  }

  async down() {
    this.schema.alterTable(this.tableName, (table) => {
      table.dropColumn('cache_write_tokens')
    })
  }
}
