import { BaseSchema } from '@adonisjs/lucid/schema'

export default class extends BaseSchema {
  protected tableName = 'balance_ledger'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.enum('kind', ['topup', 'charge', 'refund', 'adjustment']).notNullable()
      /** Signed USD: top-ups positive, charges negative */
      table.decimal('amount', 24, 12).notNullable()
      table
        .bigInteger('usage_record_id')
        .nullable()
        .references('id')
        .inTable('usage_records')
        .onDelete('SET NULL')
      /** Who made a manual entry (admin user id); null for automatic charges */
      table.bigInteger('actor_id').nullable()
      table.text('note').nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.index(['user_id', 'created_at'])
    })

    // A usage record is charged at most once.
    this.schema.raw(
      `CREATE UNIQUE INDEX balance_ledger_one_charge_per_usage ON balance_ledger (usage_record_id) WHERE kind = 'charge'`
    )

    // users.balance is always the sum of the user's ledger, whatever code path
    // writes it. Statement-level with a transition table: a metering batch of
    // N charges updates each user once, not N times.
    this.schema.raw(`
      CREATE FUNCTION balance_ledger_apply() RETURNS trigger AS $$
      BEGIN
        UPDATE users u SET balance = u.balance + s.total
          FROM (SELECT user_id, SUM(amount) AS total FROM new_rows GROUP BY user_id) s
         WHERE u.id = s.user_id;
        RETURN NULL;
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(`
      CREATE TRIGGER balance_ledger_apply AFTER INSERT ON balance_ledger
      REFERENCING NEW TABLE AS new_rows
      FOR EACH STATEMENT EXECUTE FUNCTION balance_ledger_apply();
    `)
    // The ledger is append-only: a correction is a new entry.
    this.schema.raw(`
      CREATE FUNCTION balance_ledger_immutable() RETURNS trigger AS $$
      BEGIN
        RAISE EXCEPTION 'balance_ledger is append-only';
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(`
      CREATE TRIGGER balance_ledger_immutable BEFORE UPDATE OF amount, user_id ON balance_ledger
      FOR EACH ROW EXECUTE FUNCTION balance_ledger_immutable();
    `)
  }

  async down() {
    this.schema.dropTable(this.tableName)
    this.schema.raw('DROP FUNCTION IF EXISTS balance_ledger_apply()')
    this.schema.raw('DROP FUNCTION IF EXISTS balance_ledger_immutable()')
  }
}
