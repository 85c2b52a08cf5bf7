import db from '@adonisjs/lucid/services/db'
import User from '#models/user'
import { PortalInputError } from '#actions/portal_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { generateRecoveryCodes } from '#services/totp'
import { checkSecondFactor } from '#services/two_factor'

/**
 * New recovery codes for an account with two-factor sign-in on, after a
 * current code from the app: the old ones stop working. Returns the 10
 * codes, shown once.
 */
export async function regenerateRecoveryCodes(userId: number, code: string, actor: Actor): Promise<string[]> {
  return db.transaction(async (trx) => {
    const user = await User.query({ client: trx }).where('id', userId).forUpdate().firstOrFail()
    if (!user.totpEnabledAt) throw new PortalInputError('two_factor_off')
    const factor = await checkSecondFactor(trx, user, code, { allowRecovery: false })
    if (!factor.ok) throw new PortalInputError(factor.reason === 'replayed' ? 'two_factor_code_used' : 'two_factor_app_code', 'app_code')
    const recovery = generateRecoveryCodes()
    await trx.from('users').where('id', user.id).update({ totp_recovery_codes: JSON.stringify(recovery.hashes), updated_at: new Date() })
    await writeAudit(trx, actor, {
      action: 'user.2fa_recovery_codes',
      subjectType: 'user',
      subjectId: user.id,
      summary: `user ${user.email}: new recovery codes (${recovery.codes.length}); the old ones no longer work`,
    })
    return recovery.codes
  })
}
