import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The durable e-mail outbox (app/services/mail/mail_outbox.ts): a queued
 * message is a row, rendered (subject, HTML, text) when it was queued, so a
 * restart, a shutdown or an SMTP outage loses nothing. Each instance's
 * sender (mail_sender.ts) claims due rows with FOR UPDATE SKIP LOCKED and a
 * lease (`locked_until`), sends, and sets `sent_at`; a failure sets
 * `last_error` and the next attempt after a backoff; past the last attempt
 * the row stays, `failed_at` set, until "Retry failed" or the prune.
 *
 * An insert wakes every instance's sender at once: a statement trigger sends
 * NOTIFY gateway_changes 'mail_outbox:' (the channel every instance already
 * listens on); a slow poll picks up what a notification missed.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('mail_outbox', (table) => {
      table.bigIncrements('id')
      table.string('to', 320).notNullable()
      table.string('sender_name', 200).notNullable().defaultTo('')
      table.string('subject', 300).notNullable()
      table.text('html').notNullable()
      table.text('text').notNullable()
      /** The template it was rendered from (password_reset, verify_email, low_balance, ...): what the panel and the logs name */
      table.string('kind', 64).notNullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.integer('attempts').notNullable().defaultTo(0)
      table.timestamp('next_attempt_at', { useTz: true }).notNullable().defaultTo(this.now())
      /** A sender holds the row until then (its send in progress); past it, a crashed sender's row is due again */
      table.timestamp('locked_until', { useTz: true }).nullable()
      table.timestamp('sent_at', { useTz: true }).nullable()
      /** Set when the last attempt failed: the row is no longer tried (until "Retry failed") */
      table.timestamp('failed_at', { useTz: true }).nullable()
      table.string('last_error', 300).nullable()
      /**
       * The message carries a live link (a password reset, a confirmation) good until then: never sent
       * later, and its body is erased once sent, given up on or expired (the row keeps only its header).
       */
      table.timestamp('expires_at', { useTz: true }).nullable()
    })
    // What the senders look for: unsent, not given up, by when it is due.
    this.schema.raw('CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL')
    // The prune and "sent today".
    this.schema.raw('CREATE INDEX mail_outbox_sent ON mail_outbox (sent_at) WHERE sent_at IS NOT NULL')
    this.schema.raw(
      `CREATE FUNCTION mail_outbox_notify() RETURNS trigger AS $$
       BEGIN
         PERFORM pg_notify('gateway_changes', 'mail_outbox:');
         RETURN NULL;
       END;
       $$ LANGUAGE plpgsql`
    )
    this.schema.raw('CREATE TRIGGER mail_outbox_notify AFTER INSERT ON mail_outbox FOR EACH STATEMENT EXECUTE FUNCTION mail_outbox_notify()')
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS mail_outbox_notify ON mail_outbox')
    this.schema.raw('DROP FUNCTION IF EXISTS mail_outbox_notify()')
    this.schema.dropTable('mail_outbox')
  }
}
