import { modelLimitsText } from '#gateway/limits/model_limits'
import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import ApiKey from '#models/api_key'
import { createUserApiKey } from '#actions/create_user_api_key'
import { revokeUserApiKey } from '#actions/revoke_user_api_key'
import { PortalInputError } from '#actions/portal_input_error'
import { createKeyValidator, updateKeyValidator } from '#validators/portal'
import { updateUserApiKey } from '#actions/update_user_api_key'
import { lastDayOf } from '#actions/update_api_key'
import { settleMetering } from '#services/settle_metering'
import { parseGlobList } from '#gateway/glob'
import { splitIpText } from '#gateway/auth/ip_allowlist'
import { flashInputError } from '#services/form_errors'
import { modelCatalogue } from '#services/model_catalogue'
import { portalActor } from '#services/portal_actor'
import { teamsAdministeredBy } from '#actions/teams'

export default class ApiKeysController {
  /** GET /dashboard/keys: the user's keys (prefix, last used, spend) and the create form. */
  async index(ctx: HttpContext) {
    return this.render(ctx, null)
  }

  /** The keys page; `newKey` is the clear key just created, rendered in this response only (never in a cookie). */
  private async render({ view, auth, response }: HttpContext, newKey: string | null) {
    // The full key, once: a page not to be kept by the browser or a proxy.
    if (newKey) response.header('cache-control', 'no-store')
    const user = auth.use('web').getUserOrFail()
    const gateway = await app.container.make('gateway')
    const plan = user.planId ? (gateway.catalog.plans.get(user.planId) ?? null) : null
    // A key in a team shows the team's name (the same query); the form offers the teams the user is an admin of.
    const [keys, adminTeams] = await Promise.all([
      ApiKey.query()
        .where('api_keys.user_id', user.id)
        .leftJoin('teams', 'teams.id', 'api_keys.team_id')
        .select('api_keys.*', 'teams.alias as team_alias')
        .orderBy('api_keys.id', 'desc'),
      teamsAdministeredBy(user.id),
    ])
    return view.render('pages/portal/keys', {
      keys,
      adminTeams,
      planModels: plan?.allowedModels ?? ['*'],
      models: modelCatalogue(gateway, plan, plan?.allowedModels ?? ['*']).map((m) => m.id),
      newKey,
    })
  }

  /**
   * POST /dashboard/keys: creates a key (name, expiry, model subset, spend cap, IP allowlist, a team the
   * user is an admin of); the full key is shown once.
   */
  async store(ctx: HttpContext) {
    const { request, response, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const input = await request.validateUsing(createKeyValidator, { messagesProvider: i18n.createMessagesProvider() })
    try {
      const { key } = await createUserApiKey({
        userId: user.id,
        planId: user.planId,
        name: input.name,
        expiresInDays: input.expires_in_days,
        models: parseGlobList(input.models),
        spendLimit: input.spend_limit,
        spendPeriod: input.spend_period,
        allowedIps: splitIpText(input.allowed_ips ?? ''),
        teamId: input.team,
      }, portalActor(ctx))
      return this.render(ctx, key)
    } catch (error) {
      if (error instanceof PortalInputError) {
        flashInputError(ctx, error)
        return response.redirect().back()
      }
      throw error
    }
  }

  /** GET /dashboard/keys/:id/edit: one of the user's own active keys, in the edit form. */
  async edit(ctx: HttpContext) {
    const { params, auth, view, response, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const key = await ApiKey.query().where('id', Number(params.id)).where('user_id', user.id).whereNull('revoked_at').first()
    if (!key) return response.notFound(i18n.t('errors.form.key_not_found'))
    const gateway = await app.container.make('gateway')
    const plan = user.planId ? gateway.catalog.plans.get(user.planId) : null
    // The team field: no team and the teams the user is an admin of, the key's own team among them or shown
    // fixed (only an admin of the team a key is in may move it out).
    const [adminTeams, current] = await Promise.all([
      teamsAdministeredBy(user.id),
      key.teamId === null ? null : db.from('teams').where('id', key.teamId).select('id', 'alias').first(),
    ])
    const teamMovable = current === null || adminTeams.some((t) => t.id === Number(current.id))
    return view.render('pages/portal/key_edit', {
      key,
      lastDay: lastDayOf(key.expiresAt),
      planModels: plan?.allowedModels ?? ['*'],
      adminTeams,
      currentTeam: current ? { id: Number(current.id), alias: current.alias } : null,
      teamMovable,
      modelLimitsText,
    })
  }

  /** POST /dashboard/keys/:id: saves the edit (another user's key: 404). */
  async update(ctx: HttpContext) {
    const { request, response, auth, i18n, session, params } = ctx
    const user = auth.use('web').getUserOrFail()
    const input = await request.validateUsing(updateKeyValidator, { messagesProvider: i18n.createMessagesProvider() })
    try {
      await settleMetering()
      const key = await updateUserApiKey(
        user.id,
        user.planId,
        Number(params.id),
        {
          name: input.name,
          models: parseGlobList(input.models),
          expiresOn: input.expires_on,
          spendLimit: input.spend_limit,
          spendPeriod: input.spend_period,
          // The form always shows the list: an empty field clears it.
          allowedIps: splitIpText(input.allowed_ips ?? ''),
          team: input.team,
        },
        portalActor(ctx)
      )
      session.flash('success', i18n.t('portal.keys.saved', { name: key.name }))
      return response.redirect('/dashboard/keys')
    } catch (error) {
      if (error instanceof PortalInputError) {
        if (error.code === 'key_not_found') return response.notFound(i18n.t('errors.form.key_not_found'))
        flashInputError(ctx, error)
        return response.redirect().back()
      }
      throw error
    }
  }

  /** POST /dashboard/keys/:id/revoke: revokes one of the user's own keys (another user's id: 404). */
  async revoke(ctx: HttpContext) {
    const { params, response, auth, i18n, session } = ctx
    const user = auth.use('web').getUserOrFail()
    try {
      const key = await revokeUserApiKey(user.id, Number(params.id), portalActor(ctx))
      session.flash('success', i18n.t('portal.keys.revoked', { name: key.name }))
      return response.redirect('/dashboard/keys')
    } catch (error) {
      if (error instanceof PortalInputError) return response.notFound(i18n.t('errors.form.key_not_found'))
      throw error
    }
  }
}
