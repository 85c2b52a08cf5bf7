import vine from '@vinejs/vine'
import { SPEND_PERIODS } from '#gateway/metering/spend_period'
import { adminMessages } from '#validators/admin_messages'
import { wholeNumberField } from '#validators/whole_number_field'

/**
 * A budget's name (LiteLLM's budget_id): 1 to 128 characters, no control
 * characters (a NUL cannot be stored), no space at either end: the panel's
 * forms trim what they post, so " gold" could not be edited, deleted or
 * linked there, and linking it from an End users form linked "gold".
 */
const BUDGET_ID = /^(?!\s)[^\u0000-\u001f\u007f]{1,128}(?<!\s)$/
/** USD, kept to the micro-dollar as a key's cap; never negative */
const USD = /^\d{1,12}(\.\d{1,6})?$/

/**
 * A shared budget's settings (app/actions/budgets.ts), for the panel, the
 * management API and LiteLLM's /budget/*. Left out: unchanged (a new budget:
 * none); null: no limit. budgetPeriod null: the limit covers each linked end
 * user's whole life.
 */
export const budgetSettingsValidator = vine.compile(
  vine.object({
    budgetId: vine.string().regex(BUDGET_ID).optional(),
    maxBudget: vine.string().trim().regex(USD).nullable().optional(),
    softBudget: vine.string().trim().regex(USD).nullable().optional(),
    budgetPeriod: vine.enum(SPEND_PERIODS).nullable().optional(),
    rpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    tpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    maxParallel: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
  })
)
budgetSettingsValidator.messagesProvider = adminMessages

/** An end user's limits beside its block and limit (app/actions/end_users.ts): period, rpm, tpm, linked budget. */
export const endUserLimitsValidator = vine.compile(
  vine.object({
    budgetPeriod: vine.enum(SPEND_PERIODS).nullable().optional(),
    rpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    tpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    budgetId: vine.string().regex(BUDGET_ID).nullable().optional(),
  })
)
endUserLimitsValidator.messagesProvider = adminMessages
