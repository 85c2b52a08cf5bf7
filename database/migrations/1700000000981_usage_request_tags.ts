import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Cost-attribution tags on the usage row (`x-gateway-tags`, `x-litellm-tags`,
 * a chat or Responses body's `metadata.tags`: app/gateway/metering/request_tags.ts).
 * NULL when the request sent none, the usual case; adding a nullable column
 * without a default rewrites nothing.
 *
 * The GIN index serves the usage filters' `tags @> ARRAY[tag]` and the spend
 * per tag report. It is partial: untagged rows (NULL) are not in it, so the
 * meter's usual insert does not touch it (a GIN index otherwise takes a NULL
 * placeholder entry per row).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('usage_records', (table) => {
      table.specificType('tags', 'text[]').nullable()
    })
    this.schema.raw('CREATE INDEX usage_records_tags ON usage_records USING gin (tags) WHERE tags IS NOT NULL')
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS usage_records_tags')
    this.schema.alterTable('usage_records', (table) => {
      table.dropColumn('tags')
    })
  }
}
