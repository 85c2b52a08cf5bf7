import { BaseSchema } from '@adonisjs/lucid/schema'

export default class extends BaseSchema {
  protected tableName = 'api_keys'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.string('name', 100).notNullable().defaultTo('default')
      /** SHA-256 of the full key, hex. The key itself is never stored. */
      table.string('key_hash', 64).notNullable().unique()
      /** Display only: "sk-gw-AbCd" and the last 4 characters */
      table.string('prefix', 32).notNullable()
      table.string('last_four', 4).notNullable()
      /** Optional extra restriction on top of the plan (globs); null = plan decides */
      table.jsonb('allowed_models').nullable()
      /** Optional USD cap on this key's total spend */
      table.decimal('spend_limit', 24, 12).nullable()
      table.timestamp('expires_at', { useTz: true }).nullable()
      table.timestamp('revoked_at', { useTz: true }).nullable()
      table.timestamp('last_used_at', { useTz: true }).nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.index(['user_id'])
    })
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
