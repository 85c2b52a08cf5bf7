import { BaseSchema } from '@adonisjs/lucid/schema'

export default class extends BaseSchema {
  protected tableName = 'plans'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      table.string('name', 100).notNullable().unique()
      /** Null = unlimited */
      table.bigInteger('monthly_input_tokens').nullable()
      table.bigInteger('monthly_output_tokens').nullable()
      /** Model globs this plan may use, e.g. ["gpt-*","deepseek-*"]; ["*"] = all */
      table.jsonb('allowed_models').notNullable().defaultTo(JSON.stringify(['*']))
      /** Requests and tokens per minute per key (enforced by the rate limiter) */
      table.integer('rpm').nullable()
      table.integer('tpm').nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
    })
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
