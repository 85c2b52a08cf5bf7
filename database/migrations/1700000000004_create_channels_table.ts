import { BaseSchema } from '@adonisjs/lucid/schema'

export default class extends BaseSchema {
  protected tableName = 'channels'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      table.string('name', 100).notNullable().unique()
      /** openai | openrouter | deepseek | zai | gemini | custom (| anthropic later) */
      table.string('provider', 32).notNullable()
      table.string('base_url', 500).notNullable()
      /** Upstream key, encrypted with APP_KEY */
      table.text('api_key_encrypted').nullable()
      /** Model globs this channel serves, e.g. ["gpt-4o*","o3-*"] */
      table.jsonb('models').notNullable().defaultTo(JSON.stringify([]))
      /** Public model name -> upstream model name */
      table.jsonb('model_mapping').notNullable().defaultTo(JSON.stringify({}))
      /** Extra headers sent upstream on every request */
      table.jsonb('extra_headers').notNullable().defaultTo(JSON.stringify({}))
      /** Higher first; weighted random within one priority */
      table.integer('priority').notNullable().defaultTo(0)
      table.integer('weight').notNullable().defaultTo(1)
      table.boolean('enabled').notNullable().defaultTo(true)
      table.text('disabled_reason').nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
    })
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
