import { args, flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { createOrganization } from '#actions/organizations'
import { isSpendPeriod } from '#gateway/metering/spend_period'
import { AdminInputError } from '#actions/admin_input_error'

export default class OrganizationCreate extends AdminCommand {
  static commandName = 'organization:create'
  static description =
    'Create an organization (LiteLLM\'s /organization/new): a budget, models and rate limits over the teams put in it (team:create --organization)'

  @args.string({ description: 'The organization\'s name (alias)' })
  declare alias: string

  @flags.string({ description: 'Budget in USD shared by every key of its teams (402 spend_limit_exceeded once reached)' })
  declare budget?: string

  @flags.string({ description: 'The budget resets each UTC day, week or month (default: never)' })
  declare period?: string

  @flags.string({ description: 'Comma-separated model globs its teams\' keys may use (default: all)' })
  declare models?: string

  @flags.number({ description: 'Requests per minute, shared by every key of its teams' })
  declare rpm?: number

  @flags.number({ description: 'Tokens per minute, shared by every key of its teams' })
  declare tpm?: number

  protected flagNames = { maxBudget: 'budget', budgetPeriod: 'period' }

  async execute() {
    if (this.period !== undefined && !isSpendPeriod(this.period)) throw new AdminInputError('--period is day, week or month', 'budgetPeriod')
    const org = await createOrganization({
      alias: this.alias,
      maxBudget: this.budget,
      budgetPeriod: this.period as 'day' | 'week' | 'month' | undefined,
      models: this.models?.split(',').map((m) => m.trim()).filter(Boolean),
      rpm: this.rpm,
      tpm: this.tpm,
    })
    this.logger.success(`Created organization ${org.alias} (id ${org.id})`)
    this.logger.log(String(org.id))
  }
}
