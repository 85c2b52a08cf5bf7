import type { HttpContext } from '@adonisjs/core/http'
import { panelActor } from '#controllers/admin/panel'
import { registrationOpen } from '#services/app_settings'
import { setRegistrationOpenBy } from '#actions/set_registration_open'
import { referralTerms, setReferralTerms } from '#actions/referrals'
import { currentAnnouncement, setAnnouncement } from '#actions/set_announcement'
import { setWordFilter, wordFilterSettings } from '#actions/set_word_filter'
import { MAX_ENTRIES, MAX_ENTRY_LENGTH, MAX_PATTERNS } from '#gateway/content_filter/word_matcher'
import { accountProblemKeywords, setAccountProblemKeywords } from '#actions/set_account_problem_keywords'
import { ACCOUNT_KEYWORD_LIMITS } from '#gateway/upstream/account_problems'
import env from '#start/env'
import i18nManager from '@adonisjs/i18n/services/main'
import { setMailSettings } from '#actions/set_mail_settings'
import { mailOptions, productName } from '#services/mail/mail_options'
import { smtpFromEnv } from '#services/mail/smtp_env'
import { smtpSettings, storedSmtp } from '#services/mail/smtp_settings'
import { errorText, sendMail } from '#services/mail/mail_outbox'
import { outboxCounts, outboxProblems } from '#services/mail/mail_sender'
import { retryFailedMail } from '#actions/retry_failed_mail'
import app from '@adonisjs/core/services/app'
import { requestBaseUrl } from '#controllers/pages/docs_controller'
import { ssoSection } from '#controllers/admin/sso_settings_controller'

/**
 * Operator settings kept in the database (app_settings), changed at run
 * time: self-service registration, referral rewards, the announcement, the
 * sensitive-word filter, the extra phrases that disable a channel, e-mail,
 * single sign-on (its forms in sso_settings_controller.ts).
 */
export default class SettingsController {
  /** GET /admin/settings */
  async show({ view, request }: HttpContext) {
    return view.render('admin/settings/show', {
      registrationOpen: await registrationOpen(),
      referralTerms: await referralTerms(),
      announcement: await currentAnnouncement(),
      wordFilter: await wordFilterSettings(),
      wordLimits: { entries: MAX_ENTRIES, length: MAX_ENTRY_LENGTH, patterns: MAX_PATTERNS },
      accountKeywords: await accountProblemKeywords(),
      accountKeywordLimits: ACCOUNT_KEYWORD_LIMITS,
      mail: await mailSection(requestBaseUrl(request)),
      sso: await ssoSection(request),
    })
  }

  /** Settings > E-mail: the product name, sign-up verification, and the SMTP server when the environment names none. */
  async mail(ctx: HttpContext) {
    const field = (name: string) => String(ctx.request.input(name) ?? '')
    const checked = (name: string) => [ctx.request.input(name) ?? []].flat().includes('1')
    const saved = await setMailSettings(
      {
        productName: field('productName'),
        verifySignups: checked('verifySignups'),
        siteUrl: field('siteUrl'),
        host: field('host'),
        port: field('port'),
        secure: checked('secure'),
        user: field('user'),
        password: field('password'),
        clearPassword: checked('clearPassword'),
        from: field('from'),
      },
      panelActor(ctx)
    )
    ctx.session.flash('success', saved.smtp || smtpFromEnv() ? 'E-mail settings saved.' : 'E-mail settings saved. No SMTP server: e-mail is off.')
    return ctx.response.redirect('/admin/settings#mail')
  }

  /** Sends a test message to the signed-in administrator, now (not queued), and says what the server answered. */
  async mailTest(ctx: HttpContext) {
    const admin = ctx.auth.use('web').getUserOrFail()
    try {
      const server = await smtpSettings()
      if (!server) throw new Error('No SMTP server is configured')
      // The panel is in English (no locale middleware on its routes): so is its test message.
      const product = await productName('en')
      const i18n = i18nManager.locale('en')
      await sendMail(
        { to: admin.email, senderName: product, subject: i18n.t('mail.test.subject', { product }), view: 'test', data: { t: i18n.t.bind(i18n), product } },
        server
      )
      ctx.session.flash('success', `A test e-mail was sent to ${admin.email} through ${server.host}:${server.port}.`)
    } catch (error) {
      ctx.session.flash('error', `The test e-mail was not sent: ${errorText(error)}`)
    }
    return ctx.response.redirect('/admin/settings#mail')
  }

  /** "Retry failed": the outbox's failed and waiting messages are due now, with a fresh count of attempts. */
  async mailRetry(ctx: HttpContext) {
    const count = await retryFailedMail(panelActor(ctx))
    // This instance's sender looks now; the others at their next poll.
    ;(await app.container.make('gateway')).mailSender?.wake()
    ctx.session.flash('success', count ? `${count} e-mail${count === 1 ? '' : 's'} queued again.` : 'No failed e-mail to retry.')
    return ctx.response.redirect('/admin/settings#mail-outbox')
  }

  /** Opens or closes self-service registration at /register (ALLOW_REGISTRATION=false still wins). */
  async registration(ctx: HttpContext) {
    const open = [ctx.request.input('open') ?? []].flat().includes('1')
    await setRegistrationOpenBy(open, panelActor(ctx))
    ctx.session.flash('success', open ? 'Registration is open.' : 'Registration is closed.')
    return ctx.response.redirect('/admin/settings')
  }

  /** Sets the referral rewards (0 and 0: no program). */
  async referrals(ctx: HttpContext) {
    const terms = await setReferralTerms(
      { inviterCredit: String(ctx.request.input('inviterCredit') ?? ''), inviteeCredit: String(ctx.request.input('inviteeCredit') ?? '') },
      panelActor(ctx)
    )
    ctx.session.flash('success', `Referral rewards saved: inviter ${terms.inviterCredit} USD, invitee ${terms.inviteeCredit} USD.`)
    return ctx.response.redirect('/admin/settings#referrals')
  }

  /** Puts up, changes or (empty text) takes down the announcement on the portal and public pages. */
  async announcement(ctx: HttpContext) {
    const value = await setAnnouncement(
      { text: String(ctx.request.input('text') ?? ''), level: String(ctx.request.input('level') ?? 'info'), link: ctx.request.input('link') ?? null },
      panelActor(ctx)
    )
    ctx.session.flash('success', value ? 'The announcement is up.' : 'The announcement is down.')
    return ctx.response.redirect('/admin/settings#announcement')
  }

  /** The sensitive-word filter: on/off, the list, answers checked too, matches hidden. */
  async sensitiveWords(ctx: HttpContext) {
    const checked = (name: string) => [ctx.request.input(name) ?? []].flat().includes('1')
    const saved = await setWordFilter(
      {
        enabled: checked('enabled'),
        words: String(ctx.request.input('words') ?? ''),
        checkCompletions: ctx.request.input('scope') === 'prompt_and_completion',
        hideMatches: checked('hideMatches'),
      },
      panelActor(ctx)
    )
    ctx.session.flash('success', saved.enabled ? `The sensitive-word filter is on (${saved.words.length} entries).` : 'The sensitive-word filter is off.')
    return ctx.response.redirect('/admin/settings#sensitive-words')
  }

  /** Extra phrases that mark an upstream error as its account's (new-api's AutomaticDisableKeywords). */
  async accountKeywords(ctx: HttpContext) {
    const saved = await setAccountProblemKeywords(String(ctx.request.input('keywords') ?? ''), panelActor(ctx))
    ctx.session.flash('success', saved.length ? `Saved ${saved.length} phrase${saved.length === 1 ? '' : 's'} that disable a channel.` : 'No extra phrases: the built-in list only.')
    return ctx.response.redirect('/admin/settings#account-keywords')
  }
}

/** What Settings > E-mail shows: where e-mail goes (the environment's server wins), the panel's fields, never a password. */
async function mailSection(panelOrigin: string) {
  let envServer = null
  let envError: string | null = null
  try {
    envServer = smtpFromEnv()
  } catch (error) {
    envError = errorText(error)
  }
  const stored = await storedSmtp()
  let usable = false
  try {
    usable = (await smtpSettings()) !== null
  } catch (error) {
    envError = envError ?? `The saved SMTP password cannot be read (APP_KEY changed?): ${errorText(error)}`
  }
  return {
    options: await mailOptions(),
    env: envServer && { host: envServer.host, port: envServer.port, secure: envServer.secure, user: envServer.user, from: envServer.from },
    envError,
    stored: stored && { host: stored.host, port: stored.port, secure: stored.secure, user: stored.user ?? '', from: stored.from, passwordSet: !!stored.passwordEncrypted },
    usable,
    outbox: { counts: await outboxCounts(), problems: await outboxProblems() },
    appUrl: env.get('APP_URL') || null,
    /** What the site address field suggests before one is saved: the address the administrator reached the panel at */
    panelOrigin,
  }
}
