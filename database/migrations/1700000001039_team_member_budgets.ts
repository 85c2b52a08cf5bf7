import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Member budgets inside a team (LiteLLM's `max_budget_in_team`): what one
 * member spends through the team's keys they own is capped, per UTC day,
 * week or month (`budget_period`, a team's periods) or for the membership's
 * life; `rpm` / `tpm` are one window per member in the team.
 *
 * `spent` / `period_spent` / `period_start` are kept by the meter's statement
 * (usage_meter.ts MEMBER_SPEND_EFFECT) for rows admitted under a member's
 * limits, as teams' are; a limit set where none was starts them from the
 * member's usage rows in the team (app/actions/team_member_budgets.ts). The
 * change trigger fires on membership and the settings only (not the meter's
 * writes) and names the team (`teams:<team_id>`), whose reload reads its
 * members' limits (gateway/teams/team_policies.ts).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('team_members', (table) => {
      table.decimal('max_budget', 24, 12).nullable()
      table.string('budget_period', 8).nullable()
      table.decimal('spent', 24, 12).notNullable().defaultTo(0)
      table.decimal('period_spent', 24, 12).notNullable().defaultTo(0)
      table.date('period_start').nullable()
      table.integer('rpm').nullable()
      table.integer('tpm').nullable()
    })
    this.schema.raw(`ALTER TABLE team_members ADD CONSTRAINT team_members_budget_period CHECK (budget_period IN ('day', 'week', 'month'))`)
    this.schema.raw('ALTER TABLE team_members ADD CONSTRAINT team_members_max_budget_positive CHECK (max_budget >= 0)')
    this.schema.raw(`
      CREATE FUNCTION gateway_notify_team_member() RETURNS trigger AS $$
      DECLARE team text;
      BEGIN
        IF TG_OP = 'DELETE' THEN team := OLD.team_id::text; ELSE team := NEW.team_id::text; END IF;
        PERFORM pg_notify('gateway_changes', 'teams:' || team);
        RETURN NULL;
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(
      `CREATE TRIGGER team_members_notify_change AFTER INSERT OR DELETE OR UPDATE OF max_budget, budget_period, rpm, tpm
       ON team_members FOR EACH ROW EXECUTE FUNCTION gateway_notify_team_member()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS team_members_notify_change ON team_members')
    this.schema.raw('DROP FUNCTION IF EXISTS gateway_notify_team_member()')
    this.schema.raw('ALTER TABLE team_members DROP CONSTRAINT IF EXISTS team_members_budget_period')
    this.schema.raw('ALTER TABLE team_members DROP CONSTRAINT IF EXISTS team_members_max_budget_positive')
    this.schema.alterTable('team_members', (table) => {
      for (const column of ['max_budget', 'budget_period', 'spent', 'period_spent', 'period_start', 'rpm', 'tpm']) table.dropColumn(column)
    })
  }
}
