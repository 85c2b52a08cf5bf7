import db from '@adonisjs/lucid/services/db'
import i18nManager from '@adonisjs/i18n/services/main'
import type User from '#models/user'
import { issueEmailToken, TOKEN_LIFETIME_MS, type EmailTokenPurpose } from '#services/mail/email_tokens'
import { enqueueMail } from '#services/mail/mail_outbox'
import { productName } from '#services/mail/mail_options'

/** Each purpose's message: its template (resources/views/emails/), subject key and the page its link opens. */
const LINK_MAILS: Record<EmailTokenPurpose, { view: string; subject: string; path: string }> = {
  password_reset: { view: 'password_reset', subject: 'mail.reset.subject', path: '/reset-password/' },
  verify_email: { view: 'verify_email', subject: 'mail.verify.subject', path: '/verify-email/' },
}

/**
 * Issues the account a new link of this purpose (the previous one stops
 * working) and queues the message carrying it, in `locale`, the product's
 * name in its sender and subject. The link and its message are committed
 * together: no link without its message in the outbox, no message whose
 * link was never saved. The message expires with the link (the outbox
 * erases its body once sent, and never sends it late).
 */
export async function queueLinkMail(user: User, purpose: EmailTokenPurpose, siteBase: string, locale: string) {
  const product = await productName(locale)
  const i18n = i18nManager.locale(locale)
  const mail = LINK_MAILS[purpose]
  await db.transaction(async (trx) => {
    const token = await issueEmailToken(user, purpose, trx)
    await enqueueMail(
      {
        to: user.email,
        senderName: product,
        subject: i18n.t(mail.subject, { product }),
        view: mail.view,
        data: { t: i18n.t.bind(i18n), product, link: `${siteBase}${mail.path}${token}` },
        expiresAt: new Date(Date.now() + TOKEN_LIFETIME_MS[purpose]),
      },
      trx
    )
  })
}
