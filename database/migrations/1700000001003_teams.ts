import { BaseSchema } from '@adonisjs/lucid/schema'

const KEY_COLUMNS =
  'user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage, allowed_ips, max_parallel, blocked_at'

/**
 * Teams (LiteLLM's /team/*): a policy over a set of keys. Billing stays on
 * each key's owner; a team adds a shared budget (`max_budget` per
 * `budget_period`, the key's day/week/month periods, or its whole life when
 * NULL), model globs, rpm/tpm shared by its keys, and a block.
 *
 * `spent` / `period_spent` / `period_start` are kept by the meter's statement
 * (usage_meter.ts TEAM_SPEND_EFFECT) as api_keys' are; the change trigger fires
 * on the settings only, so a change reaches every gateway's cache
 * (gateway/teams/team_policies.ts) at once and the meter's writes do not.
 * `api_keys.team_id` joins a key to one team (NULL: none, the usual key: its
 * requests pay one null test); the api_keys trigger learns the column.
 * `team_members` lists users in a team with a role (a user may be in
 * several, as in LiteLLM); membership does not gate which keys join a team.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('teams', (table) => {
      table.bigIncrements('id')
      table.string('alias', 100).notNullable()
      table.decimal('max_budget', 24, 12).nullable()
      table.string('budget_period', 8).nullable()
      table.decimal('spent', 24, 12).notNullable().defaultTo(0)
      table.decimal('period_spent', 24, 12).notNullable().defaultTo(0)
      table.date('period_start').nullable()
      table.jsonb('allowed_models').nullable()
      table.integer('rpm').nullable()
      table.integer('tpm').nullable()
      table.timestamp('blocked_at', { useTz: true }).nullable()
      table.jsonb('metadata').notNullable().defaultTo('{}')
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
    })
    this.schema.raw(`ALTER TABLE teams ADD CONSTRAINT teams_budget_period CHECK (budget_period IN ('day', 'week', 'month'))`)
    this.schema.raw('ALTER TABLE teams ADD CONSTRAINT teams_max_budget_positive CHECK (max_budget >= 0)')
    this.schema.raw(
      `CREATE TRIGGER teams_notify_change AFTER INSERT OR DELETE OR UPDATE OF alias, max_budget, budget_period, allowed_models, rpm, tpm, blocked_at
       ON teams FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )

    this.schema.createTable('team_members', (table) => {
      table.bigInteger('team_id').notNullable().references('id').inTable('teams').onDelete('CASCADE')
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.string('role', 16).notNullable().defaultTo('user')
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.primary(['team_id', 'user_id'])
      table.index(['user_id'])
    })
    this.schema.raw(`ALTER TABLE team_members ADD CONSTRAINT team_members_role CHECK (role IN ('admin', 'user'))`)

    this.schema.alterTable('api_keys', (table) => {
      // ON DELETE SET NULL: a team deleted leaves its keys working without it.
      table.bigInteger('team_id').nullable().references('id').inTable('teams').onDelete('SET NULL')
    })
    this.schema.raw('CREATE INDEX api_keys_team_id ON api_keys (team_id) WHERE team_id IS NOT NULL')
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${KEY_COLUMNS}, team_id
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${KEY_COLUMNS}
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.raw('DROP INDEX IF EXISTS api_keys_team_id')
    this.schema.alterTable('api_keys', (table) => {
      table.dropColumn('team_id')
    })
    this.schema.dropTableIfExists('team_members')
    this.schema.raw('DROP TRIGGER IF EXISTS teams_notify_change ON teams')
    this.schema.dropTableIfExists('teams')
  }
}
