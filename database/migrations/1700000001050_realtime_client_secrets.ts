import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The Realtime API's client secrets (app/gateway/realtime/client_secrets.ts):
 * a server holding a gateway key mints a short-lived secret (`ek_gw_...`)
 * for a browser, which connects with it (WebSocket /v1/realtime, WebRTC
 * /v1/realtime/calls) as the minting key, for the model and session
 * configuration it was minted with. Only the secret's SHA-256 is kept, as a
 * key's; a row is read once per connect (never on the HTTP path) and swept a
 * while after it expires. Deleting the key deletes its secrets.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('realtime_client_secrets', (table) => {
      table.bigIncrements('id')
      table.string('secret_hash', 64).notNullable().unique()
      table.bigInteger('api_key_id').notNullable().references('id').inTable('api_keys').onDelete('CASCADE')
      table.string('model', 255).notNullable()
      /** The session configuration given at minting (GA `session`, or the beta sessions' body), applied on connect */
      table.jsonb('session').notNullable()
      table.timestamp('expires_at', { useTz: true }).notNullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.index(['expires_at'], 'realtime_client_secrets_expiry')
    })
  }

  async down() {
    this.schema.dropTable('realtime_client_secrets')
  }
}
