import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The metering statement writes a usage row and a ledger row per request.
 * Their foreign keys cost Postgres a key-share lock and an index probe per
 * referenced row on every insert: 20 of the 50 µs of CPU per metered row
 * (docs/benchmarks.md, "Lever 3"). The ids come from the gateway's own
 * caches of users, keys and channels, and nothing deletes those rows in the
 * normal course (keys are revoked, users disabled), so the checks buy little.
 *
 * What the foreign keys did on delete is kept, by statement-level triggers
 * that cost nothing on insert: deleting a user deletes its ledger and usage
 * rows; deleting a key or a channel clears the reference in usage rows;
 * deleting a usage row clears the ledger's reference to it.
 */
const FOREIGN_KEYS: Array<[table: string, column: string, references: string, onDelete: string]> = [
  ['usage_records', 'user_id', 'users', 'CASCADE'],
  ['usage_records', 'api_key_id', 'api_keys', 'SET NULL'],
  ['usage_records', 'channel_id', 'channels', 'SET NULL'],
  ['balance_ledger', 'user_id', 'users', 'CASCADE'],
  ['balance_ledger', 'usage_record_id', 'usage_records', 'SET NULL'],
]

const TRIGGERS: Array<[name: string, table: string, body: string]> = [
  [
    'metering_rows_on_user_delete',
    'users',
    `DELETE FROM balance_ledger WHERE user_id IN (SELECT id FROM gone);
     DELETE FROM usage_records WHERE user_id IN (SELECT id FROM gone);`,
  ],
  ['metering_rows_on_api_key_delete', 'api_keys', `UPDATE usage_records SET api_key_id = NULL WHERE api_key_id IN (SELECT id FROM gone);`],
  ['metering_rows_on_channel_delete', 'channels', `UPDATE usage_records SET channel_id = NULL WHERE channel_id IN (SELECT id FROM gone);`],
  [
    'metering_rows_on_usage_delete',
    'usage_records',
    `UPDATE balance_ledger SET usage_record_id = NULL WHERE usage_record_id IN (SELECT id FROM gone);`,
  ],
]

export default class extends BaseSchema {
  async up() {
    for (const [table, column] of FOREIGN_KEYS) {
      this.schema.raw(`ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS ${table}_${column}_foreign`)
    }
    for (const [name, table, body] of TRIGGERS) {
      this.schema.raw(`CREATE FUNCTION ${name}() RETURNS trigger AS $$ BEGIN ${body} RETURN NULL; END; $$ LANGUAGE plpgsql`)
      this.schema.raw(
        `CREATE TRIGGER ${name} AFTER DELETE ON ${table} REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION ${name}()`
      )
    }
  }

  async down() {
    for (const [name, table] of TRIGGERS) {
      this.schema.raw(`DROP TRIGGER IF EXISTS ${name} ON ${table}`)
      this.schema.raw(`DROP FUNCTION IF EXISTS ${name}()`)
    }
    for (const [table, column, references, onDelete] of FOREIGN_KEYS) {
      this.schema.raw(
        `ALTER TABLE ${table} ADD CONSTRAINT ${table}_${column}_foreign FOREIGN KEY (${column}) REFERENCES ${references} (id) ON DELETE ${onDelete}`
      )
    }
  }
}
