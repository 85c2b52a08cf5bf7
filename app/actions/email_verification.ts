import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import User from '#models/user'
import { writeAudit, type Actor } from '#actions/audit'
import { AdminInputError } from '#actions/admin_input_error'
import { welcomeVerifiedInvitee } from '#actions/referrals'
import { consumeEmailToken, dropEmailTokens } from '#services/mail/email_tokens'
import { queueLinkMail } from '#services/mail/link_mail'

/**
 * Sign-up verification (Settings > E-mail, "Sign-ups must confirm their
 * address"): /register makes the account unverified and mails it a link;
 * opening the link verifies it and pays the welcome credit of an invited
 * sign-up, once.
 */

/** Mails the account a new confirmation link (the previous one stops working). */
export async function sendVerificationMail(user: User, siteBase: string, locale: string) {
  await queueLinkMail(user, 'verify_email', siteBase, locale)
}

/** "Send the link again": a new link when the address belongs to an enabled account still waiting; otherwise nothing. */
export async function resendVerificationMail(email: string, siteBase: string, locale: string) {
  const user = await User.query().whereRaw('lower(email) = ?', [email.trim().toLowerCase()]).first()
  if (!user || user.disabledAt || user.emailVerifiedAt) return
  await sendVerificationMail(user, siteBase, locale)
}

/** Opens a confirmation link: the account it verified, or null when the link is unknown, used, replaced or expired. */
export async function verifyEmail(token: unknown, ip: string | null): Promise<User | null> {
  return db.transaction(async (trx) => {
    const userId = await consumeEmailToken(token, 'verify_email', trx)
    if (!userId) return null
    const user = await User.findOrFail(userId, { client: trx })
    await markEmailVerified(trx, user, { id: user.id, label: user.email, source: 'portal', ip })
    return user
  })
}

/**
 * Marks the address confirmed (a confirmation link, a password reset link,
 * a sign-in once verification is no longer required) and pays what waited
 * for it. The guarded UPDATE is the once: a second call, or two at once,
 * find nothing to do. True when this call verified it.
 */
export async function markEmailVerified(
  trx: TransactionClientContract,
  user: User,
  actor: Actor,
  summary = `${user.email} confirmed the e-mail address`
): Promise<boolean> {
  const updated = await trx.rawQuery(
    `UPDATE users SET email_verified_at = now() WHERE id = ? AND email_verified_at IS NULL RETURNING email_verified_at, referred_by`,
    [user.id]
  )
  const row = updated.rows[0] as { email_verified_at: Date; referred_by: number | string | null } | undefined
  if (!row) return false
  await dropEmailTokens(user.id, 'verify_email', trx)
  await writeAudit(trx, actor, {
    action: 'user.verify_email',
    subjectType: 'user',
    subjectId: user.id,
    summary,
  })
  await welcomeVerifiedInvitee(trx, { id: user.id, email: user.email, referredBy: row.referred_by === null ? null : Number(row.referred_by) }, actor)
  return true
}

/**
 * An administrator releases an account stuck waiting for its confirmation
 * link (the panel's user page): confirmed as a link would, audited under the
 * administrator's name, what waited paid once. Refused when already confirmed.
 */
export async function confirmEmailByAdmin(userId: number, actor: Actor): Promise<User> {
  return db.transaction(async (trx) => {
    const user = await User.find(userId, { client: trx })
    if (!user) throw AdminInputError.notFound(`No user with id ${userId}`)
    const done = await markEmailVerified(trx, user, actor, `${user.email}: e-mail address marked confirmed by an administrator`)
    if (!done) throw new AdminInputError(`${user.email} has already confirmed the address`)
    return user
  })
}
