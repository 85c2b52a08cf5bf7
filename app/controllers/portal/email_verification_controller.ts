import type { HttpContext } from '@adonisjs/core/http'
import { resendVerificationMail, verifyEmail } from '#actions/email_verification'
import { mailAddressValidator } from '#validators/portal'
import { mailRequestAttempt } from '#services/mail/mail_throttle'
import { inBackground } from '#services/mail/mail_outbox'
import { mailConfigured } from '#services/mail/smtp_settings'
import { mailSiteBase } from '#services/mail/site_url'

/** Sign-up verification's pages: "check your inbox" / "send the link again", and the e-mailed link. */
export default class EmailVerificationController {
  /** GET /verify-email: after sign-up (the address flashed as `verify.sent`) or a refused sign-in (`verify.email`). */
  async show({ view, session, response }: HttpContext) {
    if (!(await mailConfigured())) return response.redirect('/login')
    return view.render('pages/auth/verify_email', { sentTo: session.flashMessages.get('verify.sent'), email: session.flashMessages.get('verify.email') })
  }

  /** POST /verify-email/resend: the same answer whatever the address; throttled with "Forgot password?" per address and IP. */
  async resend({ request, response, session, i18n, view }: HttpContext) {
    if (!(await mailConfigured())) return response.redirect('/login')
    const { email } = await request.validateUsing(mailAddressValidator, { messagesProvider: i18n.createMessagesProvider() })
    const wait = await mailRequestAttempt(email, request.ip())
    if (wait > 0) {
      response.status(429).header('retry-after', String(wait))
      return view.render('pages/auth/verify_email', { email, error: i18n.t('errors.form.throttled', { seconds: wait }) })
    }
    const base = await mailSiteBase()
    const locale = i18n.locale
    if (base !== null) inBackground('verification link', () => resendVerificationMail(email, base, locale))
    session.flash('success', i18n.t('auth.verify.resent'))
    return response.redirect('/login')
  }

  /** GET /verify-email/:token: confirms the address (once), then to /login with what happened. */
  async verify({ params, request, response, session, i18n }: HttpContext) {
    const user = await verifyEmail(params.token, request.ip())
    if (user) session.flash('success', i18n.t('auth.verify.done'))
    else session.flash('error', i18n.t('auth.verify.invalid'))
    return response.redirect('/login')
  }
}
