import { flags } from '@adonisjs/core/ace'
import { AdminCommand, list, num } from '#services/admin_command'
import { createPlanValidator } from '#validators/admin'
import { createPlan } from '#actions/create_plan'

export default class PlanCreate extends AdminCommand {
  static commandName = 'plan:create'
  static description = 'Create a plan: monthly token quotas, allowed model globs, rate limits, price multiplier'

  @flags.string({ description: 'Plan name', required: true })
  declare name: string

  @flags.string({ description: 'Monthly input token limit (omit = unlimited)' })
  declare monthlyInputTokens?: string

  @flags.string({ description: 'Monthly output token limit (omit = unlimited)' })
  declare monthlyOutputTokens?: string

  @flags.string({ description: 'Allowed model globs, comma separated (default "*")' })
  declare models?: string

  @flags.string({ description: 'Requests per minute per key' })
  declare rpm?: string

  @flags.string({ description: 'Tokens per minute per key' })
  declare tpm?: string

  @flags.string({ description: 'Users on the plan pay model prices times this, e.g. 0.8 (default 1)' })
  declare priceMultiplier?: string

  async execute() {
    const input = await createPlanValidator.validate({
      name: this.name,
      monthlyInputTokens: num(this.monthlyInputTokens),
      monthlyOutputTokens: num(this.monthlyOutputTokens),
      models: list(this.models),
      rpm: num(this.rpm),
      tpm: num(this.tpm),
      priceMultiplier: this.priceMultiplier,
    })
    const plan = await createPlan(input)
    this.logger.success(`Created plan ${plan.name} (id ${plan.id}), models: ${plan.allowedModels.join(', ')}`)
  }
}
