import { BaseSchema } from '@adonisjs/lucid/schema'

export default class extends BaseSchema {
  protected tableName = 'model_prices'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      /** Glob over the requested model name; the most specific match wins */
      table.string('model_pattern', 200).notNullable().unique()
      /** USD per 1M tokens */
      table.decimal('input_per_million', 20, 6).notNullable().defaultTo(0)
      table.decimal('output_per_million', 20, 6).notNullable().defaultTo(0)
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
    })
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
