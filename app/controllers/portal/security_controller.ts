import type { HttpContext } from '@adonisjs/core/http'
import User from '#models/user'
import { startTwoFactor, cancelTwoFactor } from '#actions/start_two_factor'
import { enableTwoFactor } from '#actions/enable_two_factor'
import { disableTwoFactor } from '#actions/disable_two_factor'
import { regenerateRecoveryCodes } from '#actions/regenerate_recovery_codes'
import { PortalInputError } from '#actions/portal_input_error'
import { appCodeValidator, disableTwoFactorValidator } from '#validators/portal'
import { throttledTwoFactor } from '#services/form_throttle'
import { flashInputError } from '#services/form_errors'
import { portalActor } from '#services/portal_actor'
import { groupSecret, RECOVERY_CODE_COUNT } from '#services/totp'
import { enrolmentOf, secretOf } from '#services/two_factor'
import { identitiesOf } from '#actions/sso_accounts'
import { enabledSsoProviders, oidcSettings } from '#services/sso/sso_settings'
import { warmDiscovery } from '#services/sso/oidc_provider'
import { FRESH_SIGN_IN_MS, signedInRecently } from '#services/session_freshness'

const PAGE = '/dashboard/security'

/**
 * The Security page: every signed-in account's password, its single sign-on identities, and two-factor sign-in with an
 * authenticator app. `recoveryCodes` are codes just made, rendered in this response only
 * (never in the session cookie), with `notice` saying what just happened; the errors are
 * throttle messages, shown above their form.
 */
export async function renderSecurity(
  ctx: HttpContext,
  extra: { recoveryCodes?: string[]; notice?: string; passwordError?: string; twoFactorError?: string } = {}
) {
  const user = await User.findOrFail(ctx.auth.use('web').getUserOrFail().id)
  const state = user.totpEnabledAt ? 'on' : user.totpSecretEncrypted ? 'pending' : 'off'
  let enrolment = null
  if (state === 'pending') {
    const secret = secretOf(user)!
    enrolment = { secret: groupSecret(secret), ...enrolmentOf(secret, user.email, ctx.request.hostname() ?? '') }
  }
  // Single sign-on: the identities linked, and a Link form per provider that is on. The OIDC
  // provider's discovery is asked first (2 s at most) so the page's CSP lets the form go there.
  const providers = enabledSsoProviders()
  const oidc = oidcSettings()
  if (oidc) await warmDiscovery(oidc.issuer, 2_000)
  const identities = await identitiesOf(user.id)
  // Recovery codes or a secret being set up: a page not to be kept by the browser or a proxy.
  if (extra.recoveryCodes || enrolment) ctx.response.header('cache-control', 'no-store')
  return ctx.view.render('pages/portal/security', {
    twoFactor: {
      state,
      enabledAt: user.totpEnabledAt,
      recoveryLeft: user.totpRecoveryCodes?.length ?? 0,
      recoveryTotal: RECOVERY_CODE_COUNT,
      enrolment,
    },
    hasPassword: !!user.password,
    // An SSO-only account's first password (password_controller.ts set): a recent sign-in, or the second factor's code.
    firstPassword: { fresh: signedInRecently(ctx.session), minutes: FRESH_SIGN_IN_MS / 60_000 },
    sso: {
      // A Link button for each provider not linked yet
      providers: providers.filter((p) => !identities.some((i) => i.provider === p.id)),
      labels: Object.fromEntries(providers.map((p) => [p.id, p.label])),
      identities: identities.map((i) => ({ id: i.id, provider: i.provider, email: i.email, createdAt: i.createdAt, lastUsedAt: i.lastUsedAt })),
      // Without a password, the last identity is the only way in: no Unlink for it.
      canUnlink: !!user.password || identities.length > 1,
    },
    recoveryCodes: extra.recoveryCodes ?? null,
    notice: extra.notice ?? null,
    passwordError: extra.passwordError ?? null,
    twoFactorError: extra.twoFactorError ?? null,
  })
}

export default class SecurityController {
  /** GET /dashboard/security: password and two-factor sign-in. */
  async show(ctx: HttpContext) {
    return renderSecurity(ctx)
  }

  /** POST …/two-factor/start: a new secret to scan (not in force until confirmed). */
  async start(ctx: HttpContext) {
    const user = ctx.auth.use('web').getUserOrFail()
    return this.#attempt(ctx, async () => {
      await startTwoFactor(user.id)
      return ctx.response.redirect(`${PAGE}#two-factor`)
    })
  }

  /** POST …/two-factor/cancel: drops a pending enrolment. */
  async cancel({ auth, response }: HttpContext) {
    await cancelTwoFactor(auth.use('web').getUserOrFail().id)
    return response.redirect(`${PAGE}#two-factor`)
  }

  /** POST …/two-factor/confirm: a current code from the app turns it on; the recovery codes are shown once. */
  async confirm(ctx: HttpContext) {
    const { request, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const { app_code: code } = await request.validateUsing(appCodeValidator, { messagesProvider: i18n.createMessagesProvider() })
    return this.#attempt(ctx, () =>
      this.#throttled(ctx, user.id, async () => {
        const codes = await enableTwoFactor(user.id, code, portalActor(ctx))
        return renderSecurity(ctx, { recoveryCodes: codes, notice: i18n.t('portal.security.two_factor.enabled') })
      })
    )
  }

  /**
   * POST …/two-factor/disable: needs the password and a current code (or a recovery code).
   * A refusal comes back beside the form's own fields, and nothing typed here is flashed
   * into the session cookie (the password least of all).
   */
  async disable(ctx: HttpContext) {
    const { request, auth, i18n, session, response } = ctx
    const user = auth.use('web').getUserOrFail()
    const [invalid, input] = await disableTwoFactorValidator.tryValidate(request.all(), {
      messagesProvider: i18n.createMessagesProvider(),
    })
    if (invalid) return refuseDisable(ctx, bagOf(invalid.messages))
    try {
      return await this.#throttled(ctx, user.id, async () => {
        await disableTwoFactor(user.id, input.disable_password, input.disable_code, portalActor(ctx))
        session.flash('success', i18n.t('portal.security.two_factor.disabled'))
        return response.redirect(`${PAGE}#two-factor`)
      })
    } catch (error) {
      if (!(error instanceof PortalInputError)) throw error
      const field = error.field === 'current_password' ? 'disable_password' : 'disable_code'
      return refuseDisable(ctx, { [field]: [i18n.t(`errors.form.${error.code}`, error.params)] })
    }
  }

  /** POST …/two-factor/recovery-codes: new codes after a current code from the app; the old ones stop working. */
  async recoveryCodes(ctx: HttpContext) {
    const { request, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const { app_code: code } = await request.validateUsing(appCodeValidator, { messagesProvider: i18n.createMessagesProvider() })
    return this.#attempt(ctx, () =>
      this.#throttled(ctx, user.id, async () => {
        const codes = await regenerateRecoveryCodes(user.id, code, portalActor(ctx))
        return renderSecurity(ctx, { recoveryCodes: codes, notice: i18n.t('portal.security.two_factor.regenerated') })
      })
    )
  }

  /** Wrong codes and passwords count (5 per 10 minutes per user, the three forms together); a refusal is rethrown. */
  async #throttled(ctx: HttpContext, userId: number, run: () => Promise<unknown>): Promise<unknown> {
    const { wait, result } = await throttledTwoFactor(userId, run)
    if (wait === 0) return result
    ctx.response.status(429).header('retry-after', String(wait))
    return renderSecurity(ctx, { twoFactorError: ctx.i18n.t('errors.form.throttled', { seconds: wait }) })
  }

  /** An action's refusal goes back to the page, beside its field. */
  async #attempt(ctx: HttpContext, run: () => Promise<unknown>): Promise<unknown> {
    try {
      return await run()
    } catch (error) {
      if (error instanceof PortalInputError) {
        flashInputError(ctx, error)
        return ctx.response.redirect(`${PAGE}#two-factor`)
      }
      throw error
    }
  }
}

/** Back to the turn-off form, opened, with its errors and none of what was typed. */
function refuseDisable({ session, response }: HttpContext, errors: Record<string, string[]>) {
  session.flash('inputErrorsBag', errors)
  session.flash('_form', 'disable')
  return response.redirect(`${PAGE}#two-factor`)
}

function bagOf(messages: Array<{ field: string; message: string }>) {
  const bag: Record<string, string[]> = {}
  for (const m of messages) (bag[m.field] ??= []).push(m.message)
  return bag
}
