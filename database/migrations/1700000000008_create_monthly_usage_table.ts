import { BaseSchema } from '@adonisjs/lucid/schema'

export default class extends BaseSchema {
  protected tableName = 'monthly_usage'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      /** First day of the calendar month (UTC) */
      table.date('period').notNullable()
      table.string('model', 200).notNullable()
      table.string('provider', 32).notNullable().defaultTo('')
      table.bigInteger('requests').notNullable().defaultTo(0)
      table.bigInteger('input_tokens').notNullable().defaultTo(0)
      table.bigInteger('output_tokens').notNullable().defaultTo(0)
      table.decimal('cost', 24, 12).notNullable().defaultTo(0)
      table.unique(['user_id', 'period', 'model', 'provider'])
    })
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
