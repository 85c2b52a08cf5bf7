import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * usage_records is append-only in time order: a BRIN index answers
 * time-range scans (admin usage log) at a fraction of a B-tree's cost on
 * every metered insert.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.raw('DROP INDEX IF EXISTS usage_records_created_at_index')
    this.schema.raw('CREATE INDEX usage_records_created_at_brin ON usage_records USING brin (created_at)')
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS usage_records_created_at_brin')
    this.schema.raw('CREATE INDEX usage_records_created_at_index ON usage_records (created_at)')
  }
}
