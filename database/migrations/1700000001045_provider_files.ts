import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Files and caches a provider keeps on the account a channel uses
 * (app/gateway/provider_files/): Anthropic's Files API (`anthropic_file`),
 * Gemini's Files API (`gemini_file`) and Gemini's cachedContents
 * (`gemini_cache`). One row each, naming its owner (user; the key that made
 * it), the channel that holds it and the upstream's id there
 * (`file_011...`, `files/abc`, `cachedContents/xyz`), which is also what the
 * client sees: a generation naming it is sent to that channel only. A Gemini
 * resumable upload is a row in status `uploading` from its start (its
 * `upload_token` in the gateway's upload URL, the upstream's session URL in
 * `upload_url`) until its last chunk, so any instance takes the next chunk.
 * Deleted rows are kept (`deleted_at`): a reference to a deleted id is still
 * known to be its owner's (for a while: pruned since migration 1053).
 */
export default class extends BaseSchema {
  protected tableName = 'provider_files'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      /** anthropic_file | gemini_file | gemini_cache */
      table.string('kind', 16).notNullable()
      /** The upstream's id (null while a resumable upload runs) */
      table.string('upstream_id', 255).nullable()
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.bigInteger('api_key_id').nullable().references('id').inTable('api_keys').onDelete('SET NULL')
      table.bigInteger('channel_id').nullable().references('id').inTable('channels').onDelete('SET NULL')
      table.text('filename').nullable()
      table.string('mime_type', 255).nullable()
      table.bigInteger('bytes').nullable()
      /** A cache's model (`models/gemini-2.5-flash`) */
      table.text('model').nullable()
      /** uploading | active | deleted */
      table.string('status', 16).notNullable()
      /** A resumable upload: the gateway's token for it, the upstream's session URL (never shown to the client) */
      table.string('upload_token', 64).nullable().unique()
      table.text('upload_url').nullable()
      /** The upstream's last answer for it */
      table.jsonb('object').nullable()
      table.timestamp('expires_at', { useTz: true }).nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('deleted_at', { useTz: true }).nullable()
    })
    // The pin's lookup (a generation naming an id) and the owner's lists, newest first.
    this.schema.raw('CREATE INDEX provider_files_upstream ON provider_files (kind, upstream_id)')
    this.schema.raw('CREATE INDEX provider_files_owner ON provider_files (user_id, kind, id DESC) WHERE deleted_at IS NULL')
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
