import type { HttpContext } from '@adonisjs/core/http'
import User from '#models/user'
import { loginCodeValidator, loginValidator } from '#validators/session'
import { formatWait } from '#services/format'
import {
  clearFailedLogins,
  clearFailedTwoFactor,
  loginWait,
  recordFailedLogin,
  recordFailedTwoFactor,
  twoFactorWait,
} from '#services/login_throttle'
import { PENDING, pendingLogin, signInOrAskSecondFactor, startSession } from '#services/sign_in'
import { verifyTwoFactorLogin } from '#actions/verify_two_factor_login'
import { markEmailVerified } from '#actions/email_verification'
import { verificationRequired } from '#services/mail/mail_options'
import { mailConfigured } from '#services/mail/smtp_settings'
import db from '@adonisjs/lucid/services/db'

export default class SessionController {
  /** The login form. */
  async create({ view }: HttpContext) {
    return view.render('pages/auth/login', { forgotPassword: await mailConfigured() })
  }

  /**
   * Logs in with email and password (throttled per email and IP); admins
   * land in /admin, users in /dashboard. With two-factor sign-in on, a right
   * password only opens the second step (/login/two-factor) for 5 minutes.
   */
  async store(ctx: HttpContext) {
    const { request, response, session, i18n } = ctx
    const { email, password } = await request.validateUsing(loginValidator, { messagesProvider: i18n.createMessagesProvider() })
    const ip = request.ip()
    const wait = await loginWait(email, ip)
    if (wait > 0) {
      session.flashExcept(['password', '_csrf'])
      session.flash('error', i18n.t('ui.login.throttled', { wait: formatWait(wait, i18n.locale) }))
      return response.redirect().back()
    }
    let user: User
    try {
      user = await User.verifyCredentials(email, password)
    } catch {
      await recordFailedLogin(email, ip)
      session.flashExcept(['password', '_csrf'])
      session.flash('error', i18n.t('ui.login.invalid'))
      return response.redirect().back()
    }
    if (user.disabledAt) {
      session.flashExcept(['password', '_csrf'])
      session.flash('error', i18n.t('ui.login.disabled'))
      return response.redirect().back()
    }
    if (!user.emailVerifiedAt) {
      // Signed up while verification was required and never opened the link: not in, unless it no longer is.
      if (await verificationRequired()) {
        session.flash('verify.email', user.email)
        return response.redirect('/verify-email')
      }
      await db.transaction((trx) => markEmailVerified(trx, user, { id: user.id, label: user.email, source: 'portal', ip }))
    }
    await clearFailedLogins(email)
    return signInOrAskSecondFactor(ctx, user)
  }

  /** The second step of a sign-in with two-factor on: the code form. */
  async twoFactor({ view, session, response, i18n }: HttpContext) {
    const pending = pendingLogin(session)
    if (!pending) {
      session.forget(PENDING)
      session.flash('error', i18n.t('ui.two_factor.expired'))
      return response.redirect('/login')
    }
    return view.render('pages/auth/two_factor', { email: pending.email })
  }

  /**
   * Checks the code from the app, or a recovery code (used up), for the
   * pending sign-in; wrong codes are throttled per account and IP. Only a
   * right one signs in.
   */
  async verifyTwoFactor(ctx: HttpContext) {
    const { request, response, session, i18n } = ctx
    const pending = pendingLogin(session)
    if (!pending) {
      session.forget(PENDING)
      session.flash('error', i18n.t('ui.two_factor.expired'))
      return response.redirect('/login')
    }
    const input = await request.validateUsing(loginCodeValidator, { messagesProvider: i18n.createMessagesProvider() })
    const code = input.code || input.recovery_code
    if (!code) {
      session.flash('error', i18n.t('ui.two_factor.invalid'))
      return response.redirect('/login/two-factor')
    }
    const ip = request.ip()
    const wait = await twoFactorWait(pending.userId, ip)
    if (wait > 0) {
      session.flash('error', i18n.t('ui.login.throttled', { wait: formatWait(wait, i18n.locale) }))
      return response.redirect('/login/two-factor')
    }
    const { user, factor } = await verifyTwoFactorLogin(pending.userId, code, { source: 'portal', ip })
    if (!user) {
      session.forget(PENDING)
      session.flash('error', i18n.t('ui.two_factor.expired'))
      return response.redirect('/login')
    }
    if (!factor.ok) {
      await recordFailedTwoFactor(user.id, ip)
      session.flash('error', i18n.t(factor.reason === 'replayed' ? 'errors.form.two_factor_code_used' : 'ui.two_factor.invalid'))
      return response.redirect('/login/two-factor')
    }
    await clearFailedTwoFactor(user.id)
    session.forget(PENDING)
    const signedIn = await startSession(ctx, user)
    if (factor.method === 'recovery') session.flash('info', i18n.t('ui.two_factor.recovery_used', { remaining: factor.remaining }))
    return signedIn
  }

  /** Logs out and returns to the login page. */
  async destroy({ response, session, auth, i18n }: HttpContext) {
    await auth.use('web').logout()
    session.flash('success', i18n.t('ui.login.loggedOut'))
    return response.redirect('/login')
  }
}
