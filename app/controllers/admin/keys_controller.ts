import { modelLimitsFromText, modelLimitsText } from '#gateway/limits/model_limits'
import type { HttpContext } from '@adonisjs/core/http'
import { containsPattern, recordId } from '#services/record_id'
import ApiKey from '#models/api_key'
import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import User from '#models/user'
import { createApiKey } from '#actions/issue_api_key'
import { revokeApiKey } from '#actions/revoke_api_key'
import { setApiKeyBlocked } from '#actions/block_api_key'
import { createKeyValidator, updateKeyValidator } from '#validators/admin'
import { lastDayOf, updateApiKey } from '#actions/update_api_key'
import { settleMetering } from '#services/settle_metering'
import { findTeam, listTeams, setKeyTeam } from '#actions/teams'
import { checkbox, listField, optionalNumber, panelActor, notFound } from '#controllers/admin/panel'

const PAGE = 50

/** The key form's team select: none, then every team by name. */
async function teamOptions() {
  const teams = await listTeams()
  return [{ value: '', label: 'No team' }, ...teams.sort((a, b) => a.alias.localeCompare(b.alias)).map((t) => ({ value: String(t.id), label: t.alias }))]
}

/** The team the form chose (its id), or null for none; a team that no longer exists is refused beside the field. */
async function chosenTeam(value: unknown): Promise<number | null> {
  if (value === undefined || value === null || value === '') return null
  try {
    return (await findTeam(value)).id
  } catch (error) {
    if (error instanceof AdminInputError) throw new AdminInputError('This team does not exist (any more)', 'teamId')
    throw error
  }
}

export default class KeysController {
  /** Every key (owner, name, prefix, created, last used, spend, status); filter by owner email or status. */
  async index({ request, view }: HttpContext) {
    const q = String(request.input('q', '') ?? '').trim()
    const status = String(request.input('status', '') ?? '')
    const before = recordId(request.input('before'))
    const query = ApiKey.query().preload('user').orderBy('id', 'desc').limit(PAGE + 1)
    if (q) {
      query.where((w) => {
        w.whereIn('user_id', User.query().whereILike('email', containsPattern(q)).select('id'))
          .orWhere('prefix', q)
          .orWhereILike('name', containsPattern(q))
      })
    }
    if (status === 'active') query.whereNull('revoked_at').whereNull('blocked_at').where((w) => w.whereNull('expires_at').orWhere('expires_at', '>', new Date()))
    if (status === 'blocked') query.whereNull('revoked_at').whereNotNull('blocked_at')
    if (status === 'revoked') query.whereNotNull('revoked_at')
    if (before) query.where('id', '<', before)
    const rows = await query
    const keys = rows.slice(0, PAGE)
    const next = rows.length > PAGE ? keys[keys.length - 1].id : null
    return view.render('admin/keys/index', { keys, q, status, before, next })
  }

  /** The new-key form (owner preselected with ?user=). */
  async create({ request, view }: HttpContext) {
    const userId = recordId(request.input('user'))
    const owner = userId ? await User.find(userId) : null
    return view.render('admin/keys/create', { owner, teamOptions: await teamOptions() })
  }

  /** Issues a key; the full key is shown once on the next page. */
  async store(ctx: HttpContext) {
    const { request, response, session } = ctx
    const input = await createKeyValidator.validate({
      user: request.input('user') ?? '',
      name: request.input('name') ?? undefined,
      models: listField(request.input('models')),
      expiresInDays: optionalNumber(request.input('expiresInDays')),
      rpm: optionalNumber(request.input('rpm')),
      tpm: optionalNumber(request.input('tpm')),
      maxParallel: optionalNumber(request.input('maxParallel')),
      spendLimit: request.input('spendLimit') ?? undefined,
      spendPeriod: request.input('spendPeriod') || undefined,
      softBudget: request.input('softBudget') ?? undefined,
      manage: checkbox(request.input('manage')),
      allowedIps: listField(request.input('allowedIps')),
    })
    const modelLimits = modelLimitsFromText(request.input('modelLimits'))
    // The team chosen must exist before the key is made (a team deleted meanwhile: the form says so).
    const team = await chosenTeam(request.input('teamId'))
    const { apiKey, key } = await createApiKey({ ...input, modelLimits, userRef: input.user, team }, panelActor(ctx))
    session.flash('newKey', key)
    session.flash('success', `Key "${apiKey.name}" issued. Copy it now: it will not be shown again.`)
    return response.redirect(`/admin/keys/${apiKey.id}`)
  }

  /** One key's details (and, right after creation, the full key once). */
  async show(ctx: HttpContext) {
    const { params, view } = ctx
    const key = await ApiKey.query().where('id', Number(params.id)).preload('user').first()
    if (!key) return notFound(ctx)
    // The full key, once: a page not to be kept by the browser or a proxy.
    if (ctx.session.flashMessages.has('newKey')) ctx.response.header('cache-control', 'no-store')
    const team = key.teamId === null ? null : await db.from('teams').where('id', key.teamId).select('id', 'alias').first()
    return view.render('admin/keys/show', { key, team, modelLimitsText })
  }

  /** The edit form of a key that is not revoked. */
  async edit(ctx: HttpContext) {
    const key = await ApiKey.query().where('id', Number(ctx.params.id)).preload('user').first()
    if (!key || key.revokedAt) return notFound(ctx)
    return ctx.view.render('admin/keys/edit', { key, lastDay: lastDayOf(key.expiresAt), teamOptions: await teamOptions(), modelLimitsText })
  }

  /** Saves a key's name, models, expiry, rate limits, spend cap, soft budget and IP allowlist; caches everywhere hear of it. */
  async update(ctx: HttpContext) {
    const { request, response, session, params } = ctx
    const input = await updateKeyValidator.validate({
      name: request.input('name') ?? '',
      models: listField(request.input('models')),
      expiresOn: request.input('expiresOn') || null,
      rpm: optionalNumber(request.input('rpm')) ?? null,
      tpm: optionalNumber(request.input('tpm')) ?? null,
      maxParallel: optionalNumber(request.input('maxParallel')) ?? null,
      spendLimit: request.input('spendLimit') || null,
      spendPeriod: request.input('spendPeriod') || null,
      // The form always shows it: empty clears it.
      softBudget: request.input('softBudget') || null,
      allowedIps: listField(request.input('allowedIps')),
    })
    const modelLimits = modelLimitsFromText(request.input('modelLimits'))
    const team = await chosenTeam(request.input('teamId'))
    await settleMetering()
    const key = await updateApiKey(Number(params.id), { ...input, modelLimits }, panelActor(ctx))
    await setKeyTeam(String(key.id), team, panelActor(ctx))
    session.flash('success', `Key ${key.masked} saved.`)
    return response.redirect(`/admin/keys/${key.id}`)
  }

  /** Revokes a key: the API refuses it at once. */
  async revoke(ctx: HttpContext) {
    const key = await revokeApiKey(String(Number(ctx.params.id)), panelActor(ctx))
    ctx.session.flash('success', `Key ${key.masked} revoked.`)
    return ctx.response.redirect().back()
  }

  /** Blocks a key for now (LiteLLM's /key/block): refused until unblocked, its settings and spend kept. */
  async block(ctx: HttpContext) {
    const key = await setApiKeyBlocked(String(Number(ctx.params.id)), true, panelActor(ctx))
    ctx.session.flash('success', `Key ${key.masked} blocked: requests with it are refused until it is unblocked.`)
    return ctx.response.redirect().back()
  }

  /** Lifts a key's block: it works again as it did. */
  async unblock(ctx: HttpContext) {
    const key = await setApiKeyBlocked(String(Number(ctx.params.id)), false, panelActor(ctx))
    ctx.session.flash('success', `Key ${key.masked} unblocked.`)
    return ctx.response.redirect().back()
  }
}
