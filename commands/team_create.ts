import { args, flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { createTeam } from '#actions/teams'
import { isSpendPeriod } from '#gateway/metering/spend_period'
import { AdminInputError } from '#actions/admin_input_error'

export default class TeamCreate extends AdminCommand {
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

  protected flagNames = { maxBudget: 'budget', budgetPeriod: 'period' }

  async execute() {
    if (this.period !== undefined && !isSpendPeriod(this.period)) throw new AdminInputError('--period is day, week or month', 'budgetPeriod')
    const team = await createTeam({
      alias: this.alias,
      maxBudget: this.budget,
      budgetPeriod: this.period as 'day' | 'week' | 'month' | undefined,
      models: this.models?.split(',').map((m) => m.trim()).filter(Boolean),
      rpm: this.rpm,
      tpm: this.tpm,
      organization: this.organization,
    })
    this.logger.success(`Created team ${team.alias} (id ${team.id})`)
    this.logger.log(String(team.id))
  }
}
