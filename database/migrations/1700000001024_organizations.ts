import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Organizations (LiteLLM's /organization/*): teams grouped under one
 * organization that caps them all, as a team caps its keys: a budget
 * (`max_budget` per `budget_period`, a team's day/week/month, or its whole
 * life when NULL), model globs a team in it cannot widen, rpm/tpm shared by
 * every key of its teams, and a block. Billing stays on each key's owner.
 *
 * `spent` / `period_spent` / `period_start` are kept by the meter's statement
 * (usage_meter.ts ORG_SPEND_EFFECT) as teams' are; the change trigger fires
 * on the settings only. `teams.organization_id` puts a team in one
 * (NULL: none; a key whose team has none pays one null test on the hot
 * path); the teams trigger learns the column, so a team moved between
 * organizations reaches every gateway's cache (the organizations are held
 * with the teams: gateway/teams/team_policies.ts). ON DELETE RESTRICT: an
 * organization with teams in it is not deleted (the actions refuse first,
 * with a message; LiteLLM deletes the teams and their keys instead).
 *
 * `usage_records.organization_id` keeps the organization a request was
 * admitted under (the team's at admission), as `team_id` keeps the team: a
 * team moved to another organization leaves its past spend with the first,
 * and a period set later starts from the rows made under the organization.
 * No foreign key and no index, for the reasons of migration 1011 (NULL on
 * the usual row: a nullable column without a default rewrites nothing).
 *
 * `organization_members` lists users with LiteLLM's organization roles
 * (org_admin, internal_user, internal_user_viewer): a record, as team
 * members are; it gates nothing on the hot path.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('organizations', (table) => {
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
    this.schema.raw(`ALTER TABLE organizations ADD CONSTRAINT organizations_budget_period CHECK (budget_period IN ('day', 'week', 'month'))`)
    this.schema.raw('ALTER TABLE organizations ADD CONSTRAINT organizations_max_budget_positive CHECK (max_budget >= 0)')
    this.schema.raw(
      `CREATE TRIGGER organizations_notify_change AFTER INSERT OR DELETE OR UPDATE OF alias, max_budget, budget_period, allowed_models, rpm, tpm, blocked_at
       ON organizations FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )

    this.schema.createTable('organization_members', (table) => {
      table.bigInteger('organization_id').notNullable().references('id').inTable('organizations').onDelete('CASCADE')
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.string('role', 24).notNullable().defaultTo('internal_user')
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.primary(['organization_id', 'user_id'])
      table.index(['user_id'])
    })
    this.schema.raw(
      `ALTER TABLE organization_members ADD CONSTRAINT organization_members_role CHECK (role IN ('org_admin', 'internal_user', 'internal_user_viewer'))`
    )

    this.schema.alterTable('teams', (table) => {
      table.bigInteger('organization_id').nullable().references('id').inTable('organizations').onDelete('RESTRICT')
    })
    this.schema.raw('CREATE INDEX teams_organization_id ON teams (organization_id) WHERE organization_id IS NOT NULL')
    this.schema.raw('DROP TRIGGER IF EXISTS teams_notify_change ON teams')
    this.schema.raw(
      `CREATE TRIGGER teams_notify_change AFTER INSERT OR DELETE OR UPDATE OF alias, max_budget, budget_period, allowed_models, rpm, tpm, blocked_at, organization_id
       ON teams FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )

    this.schema.alterTable('usage_records', (table) => {
      table.bigInteger('organization_id').nullable()
    })
  }

  async down() {
    this.schema.alterTable('usage_records', (table) => {
      table.dropColumn('organization_id')
    })
    this.schema.raw('DROP TRIGGER IF EXISTS teams_notify_change ON teams')
    this.schema.raw(
      `CREATE TRIGGER teams_notify_change AFTER INSERT OR DELETE OR UPDATE OF alias, max_budget, budget_period, allowed_models, rpm, tpm, blocked_at
       ON teams FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.raw('DROP INDEX IF EXISTS teams_organization_id')
    this.schema.alterTable('teams', (table) => {
      table.dropColumn('organization_id')
    })
    this.schema.dropTableIfExists('organization_members')
    this.schema.raw('DROP TRIGGER IF EXISTS organizations_notify_change ON organizations')
    this.schema.dropTableIfExists('organizations')
  }
}
