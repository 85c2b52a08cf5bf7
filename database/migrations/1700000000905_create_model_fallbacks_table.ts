import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Model fallbacks (LiteLLM's router `fallbacks`): when every channel of a
 * model (or of the models a glob matches) fails, the gateway tries these
 * models in order, each on its own channels, and bills the one that answers.
 * Cached by the gateway; the trigger tells every process of a change.
 */
export default class extends BaseSchema {
  protected tableName = 'model_fallbacks'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      table.string('model_pattern', 200).notNullable().unique()
      /** Model names, in the order to try them */
      table.jsonb('fallbacks').notNullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
    })
    this.schema.raw(
      `CREATE TRIGGER model_fallbacks_notify_change AFTER INSERT OR UPDATE OR DELETE ON model_fallbacks
       FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
