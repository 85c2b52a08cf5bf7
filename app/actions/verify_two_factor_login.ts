import db from '@adonisjs/lucid/services/db'
import User from '#models/user'
import { writeAudit, type Actor } from '#actions/audit'
import { checkSecondFactor, type SecondFactor } from '#services/two_factor'

/**
 * The second step of a sign-in: the code from the app or a recovery code
 * for the user whose password was right. A recovery code is used up and the
 * use is in the audit log. `user` is null when the account cannot sign in
 * any more (removed, disabled, or two-factor turned off meanwhile).
 */
export async function verifyTwoFactorLogin(userId: number, code: string, actor: Omit<Actor, 'id' | 'label'>) {
  return db.transaction(async (trx): Promise<{ user: User | null; factor: SecondFactor }> => {
    const user = await User.query({ client: trx }).where('id', userId).forUpdate().first()
    if (!user || user.disabledAt || !user.totpEnabledAt) return { user: null, factor: { ok: false, reason: 'invalid' } }
    const factor = await checkSecondFactor(trx, user, code)
    if (factor.ok && factor.method === 'recovery') {
      await writeAudit(trx, { ...actor, id: user.id, label: user.email }, {
        action: 'user.2fa_recovery_use',
        subjectType: 'user',
        subjectId: user.id,
        summary: `user ${user.email}: signed in with a recovery code (${factor.remaining} left)`,
        after: { remaining: factor.remaining },
      })
    }
    return { user, factor }
  })
}
