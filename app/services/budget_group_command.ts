import { AdminCommand, list } from '#services/admin_command'
import type { BudgetGroupSettings } from '#actions/budget_group'
import { isSpendPeriod, type SpendPeriod } from '#gateway/metering/spend_period'
import { AdminInputError } from '#actions/admin_input_error'

/**
 * Base of the commands that create a budget group (`team:create`,
 * `organization:create`): each declares the flags below with its own
 * descriptions (what the budget and limits are shared by) and adds its own.
 */
export abstract class BudgetGroupCreateCommand extends AdminCommand {
  declare alias: string
  declare budget?: string
  declare period?: string
  declare models?: string
  declare rpm?: number
  declare tpm?: number

  protected flagNames = { maxBudget: 'budget', budgetPeriod: 'period' }

  /** The flags as the create action's settings (--period checked here: the validator would name budgetPeriod). */
  protected groupSettings(): BudgetGroupSettings {
    if (this.period !== undefined && !isSpendPeriod(this.period)) throw new AdminInputError('--period is day, week or month', 'budgetPeriod')
    return {
      alias: this.alias,
      maxBudget: this.budget,
      budgetPeriod: this.period as SpendPeriod | undefined,
      models: list(this.models),
      rpm: this.rpm,
      tpm: this.tpm,
    }
  }
}
