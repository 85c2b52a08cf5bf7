import { FRESH_SIGN_IN_MS } from '#services/session_freshness'
import db from '@adonisjs/lucid/services/db'
import User from '#models/user'
import { PortalInputError } from '#actions/portal_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { checkSecondFactor } from '#services/two_factor'
import { endOtherSessions } from '#services/session_epoch'

/**
 * An account made by single sign-on sets its first password (Security
 * page). No current password exists to ask for, so the proof is the
 * second factor's code when two-factor sign-in is on, and otherwise a
 * sign-in in the last minutes (session_freshness.ts; decided here on the locked row).
 * A session borrowed hours ago thus cannot add a way in that outlives the
 * provider's account. Refused once the account has a password (a change
 * asks for the current one). The other sessions end, as after a change.
 */
export async function setFirstPassword(userId: number, password: string, code: string | null, actor: Actor, signedInRecently: boolean) {
  return db.transaction(async (trx) => {
    const user = await User.query({ client: trx }).where('id', userId).forUpdate().firstOrFail()
    if (user.password) throw new PortalInputError('password_exists', 'password')
    let method = 'a recent sign-in'
    // Decided on the locked row, not the request's copy: 2FA turned off meanwhile (an admin's reset) must not
    // leave the password settable with no proof at all.
    if (!user.totpEnabledAt && !signedInRecently) {
      throw new PortalInputError('sign_in_again', 'password', { minutes: FRESH_SIGN_IN_MS / 60_000 })
    }
    if (user.totpEnabledAt) {
      const factor = await checkSecondFactor(trx, user, code ?? '')
      if (!factor.ok) throw new PortalInputError(factor.reason === 'replayed' ? 'two_factor_code_used' : 'two_factor_code', 'code')
      method = factor.method === 'recovery' ? 'a recovery code' : 'a code from the app'
    }
    user.password = password
    endOtherSessions(user)
    user.useTransaction(trx)
    await user.save()
    await writeAudit(trx, actor, {
      action: 'user.password_set',
      subjectType: 'user',
      subjectId: user.id,
      summary: `user ${user.email}: first password set (proven by ${method})`,
      before: { password: false },
      after: { password: true },
    })
    return user
  })
}
