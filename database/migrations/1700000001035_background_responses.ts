import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Responses' background mode (`background: true`; responses_store/background_runs.ts):
 * a stored response created in the background. Only those may be cancelled
 * (`POST /v1/responses/{id}/cancel`, as at OpenAI), and only those have their
 * row written again when they end (queued -> completed, incomplete, failed,
 * cancelled): the store's INSERT updates a row on conflict only when it is one.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('stored_responses', (table) => {
      table.boolean('background').notNullable().defaultTo(false)
    })
  }

  async down() {
    this.schema.alterTable('stored_responses', (table) => {
      table.dropColumn('background')
    })
  }
}
