import type { HttpContext } from '@adonisjs/core/http'
import { changePassword } from '#actions/change_password'
import { PortalInputError } from '#actions/portal_input_error'
import { changePasswordValidator, setFirstPasswordValidator } from '#validators/portal'
import { passwordChangeAttempt, throttledTwoFactor } from '#services/form_throttle'
import { setFirstPassword } from '#actions/set_first_password'
import { signedInRecently, FRESH_SIGN_IN_MS } from '#services/session_freshness'
import { portalActor } from '#services/portal_actor'
import User from '#models/user'
import { flashInputError } from '#services/form_errors'
import { renderSecurity } from '#controllers/portal/security_controller'
import { rememberSessionEpoch } from '#services/session_epoch'

export default class PasswordController {
  /** GET /dashboard/password: the Security page, whose first form changes the password. */
  async edit(ctx: HttpContext) {
    return renderSecurity(ctx)
  }

  /** POST /dashboard/password: checks the current password, sets the new one (throttled per user). */
  async update(ctx: HttpContext) {
    const { request, response, session, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const wait = await passwordChangeAttempt(user.id)
    if (wait > 0) {
      response.status(429).header('retry-after', String(wait))
      return renderSecurity(ctx, { passwordError: i18n.t('errors.form.throttled', { seconds: wait }) })
    }
    const input = await request.validateUsing(changePasswordValidator, {
      messagesProvider: i18n.createMessagesProvider(),
    })
    try {
      await changePassword(user, input.current_password, input.password)
    } catch (error) {
      if (error instanceof PortalInputError) {
        flashInputError(ctx, error)
        return response.redirect().back()
      }
      throw error
    }
    // This session stays signed in; the account's others are over.
    rememberSessionEpoch(session, user)
    session.flash('success', i18n.t('auth.password.changed'))
    return response.redirect('/dashboard/password')
  }

  /**
   * POST /dashboard/password/set: an account made by single sign-on sets its
   * first password. Proof: the second factor's code when it is on, else a
   * sign-in in the last 10 minutes (session_freshness.ts). Throttled as a
   * change, and wrong codes as every two-factor form.
   */
  async set(ctx: HttpContext) {
    const { request, response, session, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const wait = await passwordChangeAttempt(user.id)
    if (wait > 0) {
      response.status(429).header('retry-after', String(wait))
      return renderSecurity(ctx, { passwordError: i18n.t('errors.form.throttled', { seconds: wait }) })
    }
    const input = await request.validateUsing(setFirstPasswordValidator, { messagesProvider: i18n.createMessagesProvider() })
    if (!user.totpEnabledAt && !signedInRecently(session)) {
      return renderSecurity(ctx, { passwordError: i18n.t('errors.form.sign_in_again', { minutes: FRESH_SIGN_IN_MS / 60_000 }) })
    }
    try {
      const attempt = () => setFirstPassword(user.id, input.password, input.code ?? null, portalActor(ctx), signedInRecently(session))
      if (user.totpEnabledAt) {
        const throttled = await throttledTwoFactor(user.id, attempt)
        if (throttled.wait > 0) {
          response.status(429).header('retry-after', String(throttled.wait))
          return renderSecurity(ctx, { passwordError: i18n.t('errors.form.throttled', { seconds: throttled.wait }) })
        }
        // Rethrown by the throttle when it counted a wrong code: handled below.
      } else {
        await attempt()
      }
    } catch (error) {
      if (error instanceof PortalInputError) {
        flashInputError(ctx, error)
        return response.redirect('/dashboard/security#password')
      }
      throw error
    }
    const fresh = await User.findOrFail(user.id)
    rememberSessionEpoch(session, fresh)
    session.flash('success', i18n.t('auth.password.set'))
    return response.redirect('/dashboard/security#password')
  }
}
