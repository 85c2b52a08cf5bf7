import type { HttpContext } from '@adonisjs/core/http'
import logger from '@adonisjs/core/services/logger'
import { accountForIdentity, linkIdentity, unlinkIdentity, UnlinkRefused } from '#actions/sso_accounts'
import { portalActor } from '#services/portal_actor'
import { signInOrAskSecondFactor } from '#services/sign_in'
import { SsoError } from '#services/sso/sso_error'
import { beginFlow, providerFor, takeFlow, type Flow } from '#services/sso/sso_flow'
import { isSsoProvider, type SsoProviderId } from '#services/sso/sso_settings'

const SECURITY = '/dashboard/security#identities'

/**
 * Single sign-on (app/services/sso/): GET /auth/:provider starts a sign-in,
 * GET /auth/:provider/callback finishes it (or a link started from the
 * Security page), POST …/identities/:provider/link and …/:id/unlink on the
 * Security page. Every failure lands on /login (the Security page for a
 * link) with a message; the log says why.
 */
export default class SsoController {
  /** GET /auth/:provider: to the provider's sign-in page (an invitation code from /register?ref= kept). */
  async redirect(ctx: HttpContext) {
    const provider = ctx.params.provider as SsoProviderId
    const ref = ctx.request.input('ref')
    try {
      const url = await beginFlow(ctx, provider, { intent: 'login', ref: typeof ref === 'string' ? ref.slice(0, 32) : null })
      return ctx.response.redirect(url)
    } catch (error) {
      return failed(ctx, provider, 'login', error)
    }
  }

  /** GET /auth/:provider/callback: the provider sends the browser back with a code (or an error). */
  async callback(ctx: HttpContext) {
    const { request, response, session, i18n, auth } = ctx
    const provider = ctx.params.provider as SsoProviderId
    let intent: Flow['intent'] = 'login'
    try {
      const flow = takeFlow(ctx, provider)
      intent = flow.intent
      const { error, error_description: description, code } = request.qs()
      if (error !== undefined) throw new SsoError('denied', `provider answered error=${String(error)} ${String(description ?? '')}`.trim())
      if (typeof code !== 'string' || !code || code.length > 2048) throw new SsoError('provider', 'callback without a code')
      const identity = await providerFor(provider).complete(code, flow)

      if (flow.intent === 'link') {
        const user = (await auth.use('web').check()) ? auth.use('web').user! : null
        // The account that asked is the one still signed in here, or nothing is linked.
        if (!user || user.id !== flow.userId) throw new SsoError('expired', 'link flow finished in a different session')
        const linked = await linkIdentity(user.id, identity, portalActor(ctx))
        session.flash('success', i18n.t(linked ? 'portal.security.identities.linked' : 'portal.security.identities.already', { provider: labelOf(provider) }))
        return response.redirect(SECURITY)
      }
      const user = await accountForIdentity(identity, { ip: request.ip(), ref: flow.ref })
      logger.info({ provider, userId: user.id }, 'sso: signed in')
      return signInOrAskSecondFactor(ctx, user)
    } catch (error) {
      return failed(ctx, provider, intent, error)
    }
  }

  /** POST /dashboard/security/identities/:provider/link: the same flow, to link the identity to this account. */
  async link(ctx: HttpContext) {
    const provider = ctx.params.provider as SsoProviderId
    const user = ctx.auth.use('web').getUserOrFail()
    try {
      if (!isSsoProvider(provider)) throw new SsoError('not_configured', `no provider "${String(provider).slice(0, 40)}"`)
      return ctx.response.redirect(await beginFlow(ctx, provider, { intent: 'link', userId: user.id }))
    } catch (error) {
      return failed(ctx, provider, 'link', error)
    }
  }

  /** POST /dashboard/security/identities/:id/unlink */
  async unlink(ctx: HttpContext) {
    const { params, session, i18n, response } = ctx
    const user = ctx.auth.use('web').getUserOrFail()
    try {
      await unlinkIdentity(user.id, Number(params.id), portalActor(ctx))
      session.flash('success', i18n.t('portal.security.identities.unlinked'))
    } catch (error) {
      if (!(error instanceof UnlinkRefused)) throw error
      session.flash('error', i18n.t(`portal.security.identities.${error.reason}`))
    }
    return response.redirect(SECURITY)
  }
}

function labelOf(provider: SsoProviderId) {
  return provider === 'github' ? 'GitHub' : 'SSO'
}

/** A failed sign-in or link: the reason logged, a message shown, never a 500. */
function failed(ctx: HttpContext, provider: SsoProviderId, intent: Flow['intent'], error: unknown) {
  const known = error instanceof SsoError
  if (known) logger.warn({ provider, intent, reason: error.reason }, `sso: ${error.detail}`)
  else logger.error({ provider, intent, err: error }, 'sso: sign-in failed unexpectedly')
  const reason = known ? error.reason : 'provider'
  ctx.session.flash('error', ctx.i18n.t(`ui.sso.errors.${reason}`))
  return ctx.response.redirect(intent === 'link' ? SECURITY : '/login')
}

