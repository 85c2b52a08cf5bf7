import vine from '@vinejs/vine'
import type ApiKey from '#models/api_key'
import type { Actor } from '#actions/audit'
import { keySnapshot, lastDayOf, updateApiKey } from '#actions/update_api_key'
import { updateKeyValidator } from '#validators/admin'
import { SPEND_PERIODS } from '#gateway/metering/spend_period'
import { ipAllowlistArray } from '#validators/ip_allowlist'
import { wholeNumberField } from '#validators/whole_number_field'
import { settleMetering } from '#services/settle_metering'
import { modelLimitsColumn } from '#gateway/limits/model_limits'
import type { UpdateApiKeyInput } from '#actions/update_api_key'
import { softBudgetText } from '#actions/key_soft_budget'

/**
 * A key changed by the fields given, the rest kept (null clears a limit): the
 * management API's PATCH /api/admin/keys/:id and LiteLLM's /key/update, both
 * in the management API's snake_case names.
 */
export const patchKeyValidator = vine.compile(
  vine.object({
    name: vine.string().trim().minLength(1).maxLength(100).optional(),
    models: vine.array(vine.string().trim().minLength(1).maxLength(200)).maxLength(500).nullable().optional(),
    expires_on: vine.string().trim().regex(/^\d{4}-\d{2}-\d{2}$/).nullable().optional(),
    rpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    tpm: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    max_parallel_requests: wholeNumberField().min(1).max(2_147_483_647).nullable().optional(),
    spend_limit: vine.string().trim().regex(/^\d+(\.\d{1,6})?$/).nullable().optional(),
    spend_period: vine.enum(SPEND_PERIODS).nullable().optional(),
    allowed_ips: ipAllowlistArray().nullable().optional(),
  })
)

/** Validates `patch`, merges it over the stored key and saves it through updateApiKey (audited). */
export async function patchApiKey(key: ApiKey, body: unknown, actor: Actor) {
  const patch = await patchKeyValidator.validate(body)
  const given = body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : {}
  // A number or decimal text (a 400 naming soft_budget otherwise); null clears it; left out: unchanged.
  const softBudget =
    given.soft_budget === undefined ? undefined : softBudgetText(typeof given.soft_budget === 'number' ? String(given.soft_budget) : given.soft_budget)
  await settleMetering()
  const current = keySnapshot(key)
  const spendLimit = patch.spend_limit === undefined ? current.spendLimit : patch.spend_limit
  const input: UpdateApiKeyInput = await updateKeyValidator.validate({
    name: patch.name ?? key.name,
    models: (patch.models === undefined ? key.allowedModels : patch.models) ?? undefined,
    expiresOn: patch.expires_on === undefined ? lastDayOf(key.expiresAt) : patch.expires_on,
    rpm: patch.rpm === undefined ? key.rpm : patch.rpm,
    tpm: patch.tpm === undefined ? key.tpm : patch.tpm,
    maxParallel: patch.max_parallel_requests,
    spendLimit,
    // Clearing the cap clears its period, unless a period is asked for (then refused).
    spendPeriod: patch.spend_period === undefined ? (spendLimit === null ? null : key.spendPeriod) : patch.spend_period,
    allowedIps: patch.allowed_ips,
  })
  input.softBudget = softBudget
  // LiteLLM's maps, checked beside the rest (model_limits.ts); a map given replaces that kind, the others are kept.
  if (given.model_rpm_limit !== undefined || given.model_tpm_limit !== undefined || given.model_max_budget !== undefined) {
    input.modelLimits = modelLimitsColumn(given.model_rpm_limit, given.model_tpm_limit, key.modelLimits, given.model_max_budget)
  }
  return updateApiKey(key.id, input, actor)
}
