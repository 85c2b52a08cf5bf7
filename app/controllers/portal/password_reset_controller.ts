import type { HttpContext } from '@adonisjs/core/http'
import { requestPasswordReset, resetPassword } from '#actions/password_reset'
import { mailAddressValidator, resetPasswordValidator } from '#validators/portal'
import { mailConfigured } from '#services/mail/smtp_settings'
import { mailRequestAttempt } from '#services/mail/mail_throttle'
import { inBackground } from '#services/mail/mail_outbox'
import { emailTokenUser } from '#services/mail/email_tokens'
import { mailSiteBase } from '#services/mail/site_url'

/** "Forgot password?" (linked from /login when e-mail is configured) and the e-mailed link's page. */
export default class PasswordResetController {
  /** GET /forgot-password: the address form (without e-mail configured there is nothing to offer: back to /login). */
  async create({ view, response }: HttpContext) {
    if (!(await mailConfigured())) return response.redirect('/login')
    return view.render('pages/auth/forgot_password')
  }

  /**
   * POST /forgot-password: always the same answer, at once; whether the
   * address has an account is looked up after it, in the background.
   * Throttled per address and per IP (every request counts).
   */
  async store({ request, response, session, i18n, view }: HttpContext) {
    if (!(await mailConfigured())) return response.redirect('/login')
    const { email } = await request.validateUsing(mailAddressValidator, { messagesProvider: i18n.createMessagesProvider() })
    const wait = await mailRequestAttempt(email, request.ip())
    if (wait > 0) {
      response.status(429).header('retry-after', String(wait))
      return view.render('pages/auth/forgot_password', { error: i18n.t('errors.form.throttled', { seconds: wait }) })
    }
    const base = await mailSiteBase()
    const locale = i18n.locale
    if (base !== null) inBackground('password reset', () => requestPasswordReset(email, base, locale))
    session.flash('success', i18n.t('auth.forgot.sent'))
    return response.redirect('/forgot-password')
  }

  /**
   * GET /reset-password/:token: the new-password form, or why the link no
   * longer works (404). Never stored by a browser or proxy cache: the URL is
   * a live credential (Back on a shared computer, a proxy's disk).
   */
  async edit({ params, view, response }: HttpContext) {
    response.header('cache-control', 'no-store')
    const valid = (await emailTokenUser(params.token, 'password_reset')) !== null
    if (!valid) response.status(404)
    return view.render('pages/auth/reset_password', { valid, token: params.token })
  }

  /** POST /reset-password/:token: sets the password (the link is used up), signs every session out, then to /login. */
  async update({ params, request, response, session, i18n, view }: HttpContext) {
    const { password } = await request.validateUsing(resetPasswordValidator, { messagesProvider: i18n.createMessagesProvider() })
    const user = await resetPassword(params.token, password, request.ip())
    if (!user) {
      response.header('cache-control', 'no-store')
      response.status(404)
      return view.render('pages/auth/reset_password', { valid: false, token: params.token })
    }
    session.flash('success', i18n.t('auth.reset.done'))
    return response.redirect('/login')
  }
}
