import db from '@adonisjs/lucid/services/db'
import User from '#models/user'
import { writeAudit } from '#actions/audit'
import { markEmailVerified } from '#actions/email_verification'
import { consumeEmailToken } from '#services/mail/email_tokens'
import { queueLinkMail } from '#services/mail/link_mail'
import { mailConfigured } from '#services/mail/smtp_settings'
import { endOtherSessions } from '#services/session_epoch'

/**
 * Forgotten password: a link by e-mail (/forgot-password), valid 30 minutes
 * and once, that sets a new password (/reset-password/<token>). Setting it
 * signs out every session of the account and is audited; it signs nobody
 * in, so the next sign-in still asks for the two-factor code when it is on.
 */

/**
 * Mails a reset link when the address belongs to an enabled account;
 * otherwise nothing. Runs in the background (the form answers the same
 * either way), so it says nothing back.
 */
export async function requestPasswordReset(email: string, siteBase: string, locale: string) {
  if (!(await mailConfigured())) return
  const user = await User.query().whereRaw('lower(email) = ?', [email.trim().toLowerCase()]).first()
  if (!user || user.disabledAt) return
  await queueLinkMail(user, 'password_reset', siteBase, locale)
}

/**
 * Sets the new password through a link (used up here); null when the link
 * no longer works. The account's other sessions end (its epoch moves, which
 * also voids any other reset link), and an address not yet confirmed is
 * confirmed: the link reached it.
 */
export async function resetPassword(token: unknown, password: string, ip: string | null): Promise<User | null> {
  return db.transaction(async (trx) => {
    const userId = await consumeEmailToken(token, 'password_reset', trx)
    if (!userId) return null
    const user = await User.query({ client: trx }).where('id', userId).forUpdate().firstOrFail()
    const actor = { id: user.id, label: user.email, source: 'portal', ip } as const
    user.password = password
    endOtherSessions(user)
    await user.save()
    await writeAudit(trx, actor, {
      action: 'user.password_reset',
      subjectType: 'user',
      subjectId: user.id,
      summary: `${user.email} set a new password through an e-mailed link; every session signed out`,
    })
    if (!user.emailVerifiedAt) await markEmailVerified(trx, user, actor)
    return user
  })
}
