import type { HttpContext } from '@adonisjs/core/http'
import { registerUser, RegistrationClosedError } from '#actions/register_user'
import { PortalInputError } from '#actions/portal_input_error'
import { registerValidator } from '#validators/portal'
import { registrationOpen } from '#services/app_settings'
import { registrationAttempt } from '#services/form_throttle'
import { flashInputError } from '#services/form_errors'
import { rememberSessionEpoch } from '#services/session_epoch'
import { referralTerms } from '#actions/referrals'
import { sendVerificationMail } from '#actions/email_verification'
import { verificationRequired } from '#services/mail/mail_options'
import { inBackground } from '#services/mail/mail_outbox'
import { mailSiteBase } from '#services/mail/site_url'

export default class RegistrationController {
  /** GET /register: the sign-up form, or a notice when registration is closed. */
  async create({ view, auth, response, request }: HttpContext) {
    if (await auth.check()) return response.redirect('/dashboard')
    const open = await registrationOpen()
    if (!open) response.status(403)
    return view.render('pages/auth/register', { open, ...(await invitation(request.input('ref'))) })
  }

  /**
   * POST /register: creates the account on the default plan and signs it in
   * (throttled per IP). With verification required (Settings > E-mail) the
   * account waits unverified instead: a link is mailed and nobody signs in.
   */
  async store(ctx: HttpContext) {
    const { request, response, auth, i18n, view } = ctx
    const wait = await registrationAttempt(request.ip())
    if (wait > 0) {
      response.status(429).header('retry-after', String(wait))
      return view.render('pages/auth/register', {
        open: true,
        error: i18n.t('errors.form.throttled', { seconds: wait }),
        ...(await invitation(request.input('ref'))),
      })
    }
    const input = await request.validateUsing(registerValidator, {
      messagesProvider: i18n.createMessagesProvider(),
    })
    try {
      const unverified = await verificationRequired()
      const user = await registerUser({ email: input.email, password: input.password, referralCode: input.ref, ip: request.ip(), unverified })
      if (unverified) {
        const base = await mailSiteBase()
        const locale = i18n.locale
        if (base !== null) inBackground('verification link', () => sendVerificationMail(user, base, locale))
        ctx.session.flash('verify.sent', user.email)
        return response.redirect('/verify-email')
      }
      await auth.use('web').login(user)
      rememberSessionEpoch(ctx.session, user)
      return response.redirect('/dashboard')
    } catch (error) {
      if (error instanceof RegistrationClosedError) {
        response.status(403)
        return view.render('pages/auth/register', { open: false })
      }
      if (error instanceof PortalInputError) {
        flashInputError(ctx, error)
        return response.redirect().back()
      }
      throw error
    }
  }
}

/**
 * The invitation a sign-up link carries (`?ref=`): kept in the form, and the
 * welcome credit said when the operator offers one. Whether the code is
 * known is not said (it would confirm codes to anyone guessing).
 */
async function invitation(ref: unknown) {
  const code = typeof ref === 'string' ? ref.trim().slice(0, 32) : ''
  if (!code) return { ref: null, welcomeCredit: null }
  const terms = await referralTerms()
  return { ref: code, welcomeCredit: Number(terms.inviteeCredit) > 0 ? terms.inviteeCredit : null }
}
