import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Channel groups (new-api's "groups"): the plans a channel is open to.
 * NULL = every plan (and users without a plan); a set = only users on one
 * of those plans reach it. A column on the row rather than a join table: the
 * catalog reads channels whole (`select *`), so the router gets the set with
 * no extra query, and the channels update trigger (migration 201: every
 * column but model_cooldowns) already tells every instance of a change.
 * Plans' ids are bigints. No foreign key on array elements: the actions check
 * the ids (unknown: refused), and deleting a plan is refused while a channel
 * names it (update_plan.ts), since dropping it from a one-plan set would
 * open the channel to every plan.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('channels', (table) => {
      table.specificType('plan_ids', 'bigint[]').nullable()
    })
    // "Which channels name this plan" (a plan's page, a plan's delete): one index look-up.
    this.schema.raw('CREATE INDEX channels_plan_ids ON channels USING GIN (plan_ids) WHERE plan_ids IS NOT NULL')
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS channels_plan_ids')
    this.schema.alterTable('channels', (table) => table.dropColumn('plan_ids'))
  }
}
