import { args, flags } from '@adonisjs/core/ace'
import { BudgetGroupCreateCommand } from '#services/budget_group_command'
import { createOrganization } from '#actions/organizations'

export default class OrganizationCreate extends BudgetGroupCreateCommand {
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

  async execute() {
    const org = await createOrganization(this.groupSettings())
    this.logger.success(`Created organization ${org.alias} (id ${org.id})`)
    this.logger.log(String(org.id))
  }
}
