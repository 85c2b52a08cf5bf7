import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Anthropic's one-hour prompt cache (`cache_control: {type: "ephemeral",
 * ttl: "1h"}`; Claude Code with ENABLE_PROMPT_CACHING_1H) bills a write at
 * 2x the input price, against 1.25x for the default five minutes, and its
 * usage reports the two apart (`cache_creation.ephemeral_1h_input_tokens`).
 * USD per 1M tokens written to the one-hour cache; null = the cache-write
 * price (as before).
 *
 * Server-side web searches (Anthropic's web_search tool, $10 per 1,000,
 * reported as `usage.server_tool_use.web_search_requests`; OpenAI's
 * Responses `web_search_call` items) are billed per search by the provider:
 * USD per search; null = not billed.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('model_prices', (table) => {
      table.decimal('cache_write_1h_per_million', 20, 6).nullable()
      table.decimal('per_web_search', 20, 6).nullable()
    })
  }

  async down() {
    this.schema.alterTable('model_prices', (table) => {
      table.dropColumn('cache_write_1h_per_million')
      table.dropColumn('per_web_search')
    })
  }
}
