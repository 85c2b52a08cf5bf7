import vine from '@vinejs/vine'
import { SPEND_PERIODS } from '#gateway/metering/spend_period'
import { adminMessages } from '#validators/admin_messages'
import { wholeNumber } from '#gateway/http/whole_number'
import { wholeNumberField } from '#validators/whole_number_field'

/**
 * A team's settings (app/actions/teams.ts), shared by the panel, the
 * management API, LiteLLM's /team/* and `team:create`. Left out: unchanged
 * (a new team: none); null: no budget / no limit / every model.
 */
/** No control characters (a NUL cannot be stored in text or jsonb: Postgres refused the row, a 400 naming no field) */
const PRINTABLE = /^[^\u0000-\u001f\u007f]+$/

export const teamSettingsValidator = vine.compile(
  vine.object({
    alias: vine.string().trim().minLength(1).maxLength(100).regex(PRINTABLE).optional(),
    /** USD, kept to the micro-dollar as a key's cap */
    maxBudget: vine.string().trim().regex(/^\d{1,12}(\.\d{1,6})?$/).nullable().optional(),
    budgetPeriod: vine.enum(SPEND_PERIODS).nullable().optional(),
    models: vine.array(vine.string().trim().minLength(1).maxLength(200).regex(PRINTABLE)).maxLength(500).nullable().optional(),
    rpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    tpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    blocked: vine.boolean().optional(),
  })
)
teamSettingsValidator.messagesProvider = adminMessages

/**
 * Is this JSON value one the rpm/tpm rules may read: a number, its text in
 * digits (wholeNumber), or null? The validator reads values as Number() does
 * (the panel posts text), which makes `true` 1, `[5]` 5 and `"0x10"` 16: the
 * JSON APIs refuse those first.
 */
export function isLimitInput(value: unknown): boolean {
  return value === null || typeof value === 'number' || (typeof value === 'string' && !Number.isNaN(wholeNumber(value)))
}

/**
 * Can this `metadata` be stored (jsonb refuses a NUL in any string or key)?
 * Checked before the row is written: a 400 naming the field, where
 * Postgres's refusal was a 400 that named none.
 */
export function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000')
  if (Array.isArray(value)) return value.some(holdsNul)
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) if (key.includes('\u0000') || holdsNul(item)) return true
  }
  return false
}

/** A team member: a user (id or e-mail) and LiteLLM's role (admin or user) */
export const teamMemberValidator = vine.compile(
  vine.object({
    user: vine.string().trim().minLength(1).maxLength(254),
    role: vine.enum(['admin', 'user'] as const).optional(),
  })
)
teamMemberValidator.messagesProvider = adminMessages

/**
 * A member's limits inside a team (app/actions/team_member_budgets.ts;
 * LiteLLM's max_budget_in_team, tpm_limit, rpm_limit): the team's own rules
 * for each. Left out: unchanged; null: none.
 */
export const memberLimitsValidator = vine.compile(
  vine.object({
    role: vine.enum(['admin', 'user'] as const).optional(),
    maxBudget: vine.string().trim().regex(/^\d{1,12}(\.\d{1,6})?$/).nullable().optional(),
    budgetPeriod: vine.enum(SPEND_PERIODS).nullable().optional(),
    rpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    tpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
  })
)
memberLimitsValidator.messagesProvider = adminMessages
