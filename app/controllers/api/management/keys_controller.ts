import { modelLimitsColumn } from '#gateway/limits/model_limits'
import type { HttpContext } from '@adonisjs/core/http'
import vine from '@vinejs/vine'
import ApiKey from '#models/api_key'
import { createApiKey } from '#actions/issue_api_key'
import { findApiKey, revokeApiKey } from '#actions/revoke_api_key'
import { createKeyValidator } from '#validators/admin'
import { patchApiKey } from '#services/key_patch'
import { setApiKeyBlocked } from '#actions/block_api_key'
import { regenerateApiKey } from '#actions/regenerate_api_key'
import { ipAllowlistArray } from '#validators/ip_allowlist'
import { apiActor, filterId, keyJson, keysetPage, managed, numberAsText } from '#services/management_api'
import { settleMetering } from '#services/settle_metering'
import { findTeam, setKeyTeam } from '#actions/teams'
import { softBudgetText } from '#actions/key_soft_budget'


/** PATCH's `blocked`: a key blocked for now, or unblocked */
const blockedValidator = vine.compile(vine.object({ blocked: vine.boolean({ strict: true }).optional() }))

/** POST's `allowed_ips`, checked under its own name before the shared validator (whose fields are camelCase). */
const createAllowedIpsValidator = vine.compile(vine.object({ allowed_ips: ipAllowlistArray().nullable().optional() }))

export default class ManagementKeysController {
  /** GET /api/admin/keys[?user=id][&before=id]: newest first, 100 a page. */
  async index({ request }: HttpContext) {
    await settleMetering()
    const user = filterId(request.input('user'), 'user')
    const before = filterId(request.input('before'), 'before')
    return keysetPage((limit) => {
      const query = ApiKey.query().orderBy('id', 'desc').limit(limit)
      if (user) query.where('user_id', user)
      if (before) query.where('id', '<', before)
      return query
    }, keyJson)
  }

  /**
   * POST /api/admin/keys (LiteLLM's /key/generate): {user (id or e-mail),
   * name?, models?, expires_in_days?, rpm?, tpm?, max_parallel_requests?,
   * spend_limit?, spend_period?, soft_budget?, allowed_ips?, team_id?, model_rpm_limit?, model_tpm_limit?}.
   * The clear key is in this answer only.
   */
  async store(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const { allowed_ips: allowedIps } = await createAllowedIpsValidator.validate({ allowed_ips: body.allowed_ips })
      // Checked under its own name (a number or decimal text; null: none), as PATCH does.
      const softBudget = body.soft_budget === undefined || body.soft_budget === null ? null : softBudgetText(numberAsText(body.soft_budget))
      const input = await createKeyValidator.validate({
        user: numberAsText(body.user),
        name: body.name,
        models: body.models,
        expiresInDays: body.expires_in_days,
        rpm: body.rpm,
        tpm: body.tpm,
        maxParallel: body.max_parallel_requests ?? undefined,
        spendLimit: body.spend_limit === null ? undefined : numberAsText(body.spend_limit),
        spendPeriod: body.spend_period ?? undefined,
        manage: body.manage,
        allowedIps: allowedIps ?? undefined,
      })
      // A team named must exist (404) before the key is made.
      const modelLimits = modelLimitsColumn(body.model_rpm_limit, body.model_tpm_limit, null, body.model_max_budget)
      const teamId = body.team_id === undefined || body.team_id === null ? null : (await findTeam(body.team_id)).id
      const actor = apiActor(ctx)
      const { apiKey, key } = await createApiKey({ ...input, softBudget, modelLimits, userRef: input.user, team: teamId }, actor)
      ctx.response.status(201)
      return { ...keyJson(await ApiKey.findOrFail(apiKey.id)), key }
    })
  }

  /** GET /api/admin/keys/:id (id, full key or display prefix): LiteLLM's /key/info. */
  async show({ params }: HttpContext) {
    return managed(async () => {
      // Spend figures include calls still in this process's metering queue (as /v1/balance).
      await settleMetering()
      return keyJson(await findApiKey(params.id))
    })
  }

  /**
   * PATCH /api/admin/keys/:id (LiteLLM's /key/update): the fields given change
   * (null clears a limit), the rest stay; `blocked` true / false blocks the key
   * or lifts the block (LiteLLM's /key/block, /key/unblock); `team_id` puts
   * it in a team (null: in none).
   */
  async update(ctx: HttpContext) {
    return managed(async () => {
      const key = await findApiKey(ctx.params.id)
      const body = ctx.request.body()
      const { blocked } = await blockedValidator.validate({ blocked: body.blocked })
      if (body.team_id !== undefined && body.team_id !== null) await findTeam(body.team_id)
      const actor = apiActor(ctx)
      let saved = await patchApiKey(key, body, actor)
      if (body.team_id !== undefined) saved = await setKeyTeam(String(key.id), body.team_id, actor)
      return keyJson(blocked === undefined ? saved : await setApiKeyBlocked(String(key.id), blocked, actor))
    })
  }

  /** POST /api/admin/keys/:id/regenerate (LiteLLM's /key/regenerate): a new value for the same key, in this answer only; the old one is refused. */
  async regenerate(ctx: HttpContext) {
    return managed(async () => {
      const { apiKey, key } = await regenerateApiKey(ctx.params.id, apiActor(ctx))
      await settleMetering()
      return { ...keyJson(await ApiKey.findOrFail(apiKey.id)), key }
    })
  }

  /** DELETE /api/admin/keys/:id: revokes it (LiteLLM's /key/delete); the row and its usage stay. */
  async destroy(ctx: HttpContext) {
    return managed(async () => keyJson(await revokeApiKey(ctx.params.id, apiActor(ctx))))
  }
}
