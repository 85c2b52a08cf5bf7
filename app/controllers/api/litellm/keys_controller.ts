import { modelLimitsColumn } from '#gateway/limits/model_limits'
import { modelBudgetSpend } from '#services/key_model_spend'
import type { HttpContext } from '@adonisjs/core/http'
import vine from '@vinejs/vine'
import { wholeNumberField } from '#validators/whole_number_field'
import { DateTime } from 'luxon'
import ApiKey from '#models/api_key'
import type { Principal } from '#gateway/types'
import { createApiKey } from '#actions/issue_api_key'
import { findApiKey, revokeApiKey } from '#actions/revoke_api_key'
import { lastDayOf } from '#actions/update_api_key'
import { setApiKeyBlocked } from '#actions/block_api_key'
import { setKeySoftBudget, softBudgetText } from '#actions/key_soft_budget'
import { regenerateApiKey } from '#actions/regenerate_api_key'
import { AdminInputError } from '#actions/admin_input_error'
import { GatewayError } from '#exceptions/gateway_error'
import { createKeyValidator } from '#validators/admin'
import { ipAllowlistArray } from '#validators/ip_allowlist'
import { patchApiKey } from '#services/key_patch'
import { apiActor, numberAsText } from '#services/management_api'
import { settleMetering } from '#services/settle_metering'
import { userIdOf } from '#services/usage_query'
import { findTeam, setKeyTeam } from '#actions/teams'
import { budgetPeriod, budgetText, durationDays, fieldError, litellmKeyJson, litellmManaged, modelGlobs } from '#services/litellm_management'

const allowedIpsValidator = vine.compile(vine.object({ allowed_ips: ipAllowlistArray().nullable().optional() }))

/** /key/delete: `keys` (tokens or keys) or `key_aliases`, at most 100 */
const deleteValidator = vine.compile(
  vine.object({
    keys: vine.array(vine.string().trim().minLength(1).maxLength(200)).minLength(1).maxLength(100).optional(),
    key_aliases: vine.array(vine.string().trim().minLength(1).maxLength(100)).minLength(1).maxLength(100).optional(),
  })
)

/** /key/list's paging: LiteLLM's `page` (from 1) and `size` (at most 100 here) */
const listValidator = vine.compile(
  vine.object({
    page: wholeNumberField().min(1).max(100_000).optional(),
    size: wholeNumberField().min(1).max(100).optional(),
    user_id: vine.string().trim().minLength(1).optional(),
    key_alias: vine.string().trim().minLength(1).maxLength(100).optional(),
    team_id: vine.string().trim().regex(/^\d{1,15}$/).optional(),
    return_full_object: vine.boolean().optional(),
  })
)

/** The key a body or path names (`key`: a token, i.e. our key id, the full key, or its display prefix) */
function keyRef(value: unknown): string {
  if (typeof value === 'number' && Number.isInteger(value)) return String(value)
  if (typeof value !== 'string' || value.trim() === '') throw fieldError('key', 'required: the key, or its token')
  return value.trim()
}

/** LiteLLM's team_id (our team id as text or a number): 404 when no team has it */
async function litellmTeam(value: unknown) {
  if (typeof value !== 'string' && typeof value !== 'number') throw fieldError('team_id', 'a team id (text)')
  return findTeam(value)
}

/** A key LiteLLM would still know: a revoked key is deleted there (404) */
async function liveKey(ref: string) {
  const key = await findApiKey(ref)
  if (key.revokedAt) throw AdminInputError.notFound(`No API key matches "${ref}" (it was deleted)`)
  return key
}

/** LiteLLM's soft_budget (a number or numeric text, null: none) as our decimal text; a 400 naming it otherwise. */
function softBudgetField(value: unknown): string | null {
  try {
    return softBudgetText(budgetText(value))
  } catch {
    throw fieldError('soft_budget', 'a USD amount (at most 6 decimals) or null')
  }
}

function isAdmin(principal: Principal) {
  return principal.key.manage && principal.user.role === 'admin'
}

/**
 * LiteLLM's key management (/key/generate, /key/update, /key/delete,
 * /key/info, /key/list, /key/block, /key/unblock, /key/regenerate) over the
 * actions the management API (/api/admin/keys), the panel and ace use. Field
 * mapping: services/litellm_management.ts; README "Coming from LiteLLM".
 */
export default class LiteLLMKeysController {
  /** POST /key/generate: the clear `key` is in this answer only. */
  async generate(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      if (body.user_id === undefined || body.user_id === null || body.user_id === '') {
        throw fieldError('user_id', 'required: the user (id or e-mail) the key belongs to, whose balance pays for it')
      }
      if (body.blocked !== undefined && body.blocked !== null && typeof body.blocked !== 'boolean') throw fieldError('blocked', 'true or false')
      const spendPeriod = budgetPeriod(body.budget_duration)
      const expiresInDays = durationDays(body.duration)
      const { allowed_ips: allowedIps } = await allowedIpsValidator.validate({ allowed_ips: body.allowed_ips })
      const input = await createKeyValidator.validate({
        user: numberAsText(body.user_id),
        name: body.key_alias ?? undefined,
        models: modelGlobs(body.models) ?? undefined,
        expiresInDays: expiresInDays ?? undefined,
        rpm: body.rpm_limit ?? undefined,
        tpm: body.tpm_limit ?? undefined,
        maxParallel: body.max_parallel_requests ?? undefined,
        spendLimit: budgetText(body.max_budget) ?? undefined,
        spendPeriod: spendPeriod ?? undefined,
        allowedIps: allowedIps ?? undefined,
      })
      // LiteLLM's team_id must name a team (404 before the key is made); the owner need not be a member.
      const modelLimits = modelLimitsColumn(body.model_rpm_limit, body.model_tpm_limit, null, body.model_max_budget)
      const teamId = body.team_id === undefined || body.team_id === null ? null : (await litellmTeam(body.team_id)).id
      const softBudget = body.soft_budget === undefined ? null : softBudgetField(body.soft_budget)
      const actor = apiActor(ctx)
      const { apiKey, key } = await createApiKey({ ...input, modelLimits, userRef: input.user, team: teamId }, actor)
      if (body.blocked === true) await setApiKeyBlocked(String(apiKey.id), true, actor)
      if (softBudget !== null) await setKeySoftBudget(String(apiKey.id), softBudget, actor)
      return { ...litellmKeyJson(await ApiKey.findOrFail(apiKey.id)), key }
    })
  }

  /** POST /key/update: {key, ...the fields to change}; null clears a limit. */
  async update(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      const key = await liveKey(keyRef(body.key))
      const patch: Record<string, unknown> = {}
      if ('key_alias' in body) patch.name = body.key_alias ?? undefined
      if ('models' in body) patch.models = modelGlobs(body.models)
      if ('duration' in body) {
        const days = durationDays(body.duration)
        patch.expires_on = days === null ? null : lastDayOf(DateTime.utc().plus({ days }))
      }
      if ('rpm_limit' in body) patch.rpm = body.rpm_limit
      if ('tpm_limit' in body) patch.tpm = body.tpm_limit
      if ('max_parallel_requests' in body) patch.max_parallel_requests = body.max_parallel_requests
      if ('max_budget' in body) patch.spend_limit = budgetText(body.max_budget)
      if ('budget_duration' in body) patch.spend_period = budgetPeriod(body.budget_duration)
      if ('allowed_ips' in body) patch.allowed_ips = body.allowed_ips
      if ('model_max_budget' in body) patch.model_max_budget = body.model_max_budget
      if ('model_rpm_limit' in body) patch.model_rpm_limit = body.model_rpm_limit
      if ('model_tpm_limit' in body) patch.model_tpm_limit = body.model_tpm_limit
      const actor = apiActor(ctx)
      // null is "not given", as on /key/generate (LiteLLM's own clients send the field as null)
      if (body.blocked !== undefined && body.blocked !== null && typeof body.blocked !== 'boolean') throw fieldError('blocked', 'true or false')
      if (body.team_id !== undefined && body.team_id !== null) await litellmTeam(body.team_id)
      const softBudget = 'soft_budget' in body ? softBudgetField(body.soft_budget) : undefined
      await patchApiKey(key, patch, actor)
      if (softBudget !== undefined) await setKeySoftBudget(String(key.id), softBudget, actor)
      // `team_id: null` takes the key out of its team, as LiteLLM's update does
      if (body.team_id !== undefined) await setKeyTeam(String(key.id), body.team_id, actor)
      if (typeof body.blocked === 'boolean') await setApiKeyBlocked(String(key.id), body.blocked, actor)
      await settleMetering()
      return litellmKeyJson(await ApiKey.findOrFail(key.id))
    })
  }

  /** POST /key/delete: {keys: [...]} or {key_aliases: [...]}: each revoked (its row and usage stay). */
  async destroy(ctx: HttpContext) {
    return litellmManaged(async () => {
      const input = await deleteValidator.validate(ctx.request.body())
      if (!input.keys && !input.key_aliases) throw fieldError('keys', 'give `keys` (keys or tokens) or `key_aliases`')
      const ids: number[] = []
      // Every name resolved before anything is revoked: an unknown one deletes nothing.
      for (const ref of input.keys ?? []) ids.push((await liveKey(ref)).id)
      for (const alias of input.key_aliases ?? []) {
        const found = await ApiKey.query().whereNull('revoked_at').where('name', alias).select('id').limit(1000)
        if (!found.length) throw AdminInputError.notFound(`No API key with alias "${alias}"`)
        ids.push(...found.map((k) => k.id))
      }
      const actor = apiActor(ctx)
      for (const id of ids) await revokeApiKey(String(id), actor)
      return { deleted_keys: input.keys ?? input.key_aliases }
    })
  }

  /**
   * GET /key/info[?key=]: a key's settings and spend, as {key: token, info}.
   * Without `key`: the calling key itself, which any key may ask (as LiteLLM
   * allows); another key needs the management key.
   */
  async info(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ref = ctx.request.input('key')
      const principal = ctx.principal
      let key: ApiKey
      if (ref === undefined || ref === null || ref === '') {
        key = await ApiKey.findOrFail(principal.key.id)
      } else if (isAdmin(principal)) {
        key = await liveKey(keyRef(ref))
      } else {
        // A user's key sees itself only; whether another key exists is not its business (403 either way).
        const own = await findApiKey(keyRef(ref)).catch(() => null)
        if (!own || own.id !== principal.key.id) {
          throw new GatewayError(403, 'admin_required', 'Only the management key may read another key: ask without `key` for this key', 'permission_error')
        }
        key = own
      }
      await settleMetering()
      await key.refresh()
      // LiteLLM's model_spend: what each model with a budget spent of it (key_model_spend.ts).
      return { key: String(key.id), info: { ...litellmKeyJson(key), model_spend: await modelBudgetSpend(key.id, key.modelLimits) } }
    })
  }

  /**
   * POST /key/health: LiteLLM's check of the calling key's logging callbacks.
   * Keys here have none: a key that passes authentication (not revoked,
   * blocked, expired, nor its owner disabled) is healthy.
   */
  async health() {
    return { key: 'healthy', logging_callbacks: null }
  }

  /** GET /key/list[?page=&size=&user_id=&key_alias=&team_id=&return_full_object=]: keys not deleted, newest first. */
  async list(ctx: HttpContext) {
    return litellmManaged(async () => {
      const qs = ctx.request.qs()
      // `true` as LiteLLM's clients send it (Python's `True` too)
      const full = qs.return_full_object === undefined ? undefined : String(qs.return_full_object).toLowerCase() === 'true'
      const input = await listValidator.validate({ ...qs, return_full_object: full })
      const page = input.page ?? 1
      const size = input.size ?? 10
      // A user by id or e-mail; an unknown one matches no key (-1).
      const userId = input.user_id ? await userIdOf(input.user_id) : null
      const filtered = () => {
        const query = ApiKey.query().whereNull('revoked_at')
        if (userId !== null) query.where('user_id', userId)
        if (input.key_alias) query.where('name', input.key_alias)
        if (input.team_id) query.where('team_id', input.team_id)
        return query
      }
      await settleMetering()
      const [keys, counted] = await Promise.all([
        filtered().orderBy('id', 'desc').offset((page - 1) * size).limit(size),
        filtered().count('* as total').first(),
      ])
      const total = Number(counted?.$extras.total ?? 0)
      return {
        keys: keys.map((k) => (input.return_full_object ? litellmKeyJson(k) : String(k.id))),
        total_count: total,
        current_page: page,
        total_pages: Math.ceil(total / size),
      }
    })
  }

  /** POST /key/block: {key}: refused until unblocked (401 "This API key is blocked"). */
  async block(ctx: HttpContext) {
    return this.#setBlocked(ctx, true)
  }

  /** POST /key/unblock: {key}: works again. */
  async unblock(ctx: HttpContext) {
    return this.#setBlocked(ctx, false)
  }

  async #setBlocked(ctx: HttpContext, blocked: boolean) {
    return litellmManaged(async () => {
      const key = await liveKey(keyRef(ctx.request.body().key))
      const saved = await setApiKeyBlocked(String(key.id), blocked, apiActor(ctx))
      return litellmKeyJson(saved)
    })
  }

  /**
   * POST /key/{key}/regenerate, POST /key/regenerate {key}: the same key with
   * a new value (the old one refused from now on); the clear `key` is in
   * this answer only.
   */
  async regenerate(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ref = keyRef(ctx.params.key ?? ctx.request.body().key)
      await liveKey(ref)
      const { apiKey, key } = await regenerateApiKey(ref, apiActor(ctx))
      await settleMetering()
      return { ...litellmKeyJson(await ApiKey.findOrFail(apiKey.id)), key }
    })
  }
}
