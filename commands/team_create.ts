import { args, flags } from '@adonisjs/core/ace'
import { BudgetGroupCreateCommand } from '#services/budget_group_command'
import { createTeam } from '#actions/teams'

export default class TeamCreate extends BudgetGroupCreateCommand {
  static commandName = 'team:create'
  static description = 'Create a team (LiteLLM\'s /team/new): a shared budget, models and rate limits over the keys put in it (key:team)'

  @args.string({ description: 'The team\'s name (alias)' })
  declare alias: string

  @flags.string({ description: 'Budget in USD shared by the team\'s keys (402 spend_limit_exceeded once reached)' })
  declare budget?: string

  @flags.string({ description: 'The budget resets each UTC day, week or month (default: never)' })
  declare period?: string

  @flags.string({ description: 'Comma-separated model globs the team\'s keys may use (default: all)' })
  declare models?: string

  @flags.number({ description: 'Requests per minute, shared by the team\'s keys' })
  declare rpm?: number

  @flags.number({ description: 'Tokens per minute, shared by the team\'s keys' })
  declare tpm?: number

  @flags.string({ description: 'The organization (id) the team is in; its budget, models and limits apply too' })
  declare organization?: string

  async execute() {
    const team = await createTeam({ ...this.groupSettings(), organization: this.organization })
    this.logger.success(`Created team ${team.alias} (id ${team.id})`)
    this.logger.log(String(team.id))
  }
}
