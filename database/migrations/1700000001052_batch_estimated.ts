import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * A batch's bill keeps every figure of its usage row (batch_service.ts
 * repairBills writes a row a crash lost from them): whether its tokens were
 * the gateway's count is one more. An embedding batch whose answers carry no
 * tokenCount is billed the gateway's count of its texts, its row marked
 * estimated; written again without the mark, it read as Google's figure.
 * False on rows billed before it (a constant default: no table rewrite).
 */
export default class extends BaseSchema {
  protected tableName = 'batch_objects'

  async up() {
    this.schema.alterTable(this.tableName, (table) => {
      table.boolean('estimated').notNullable().defaultTo(false)
    })
  }

  async down() {
    this.schema.alterTable(this.tableName, (table) => {
      table.dropColumn('estimated')
    })
  }
}
