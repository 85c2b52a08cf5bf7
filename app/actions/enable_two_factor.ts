import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import User from '#models/user'
import { PortalInputError } from '#actions/portal_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { generateRecoveryCodes, matchingStep } from '#services/totp'
import { secretOf } from '#services/two_factor'

/**
 * Turns two-factor sign-in on once the user typed a current code from the
 * app that scanned the pending secret (so a mistyped secret never locks
 * anyone out). Returns the 10 recovery codes, shown once: only their
 * SHA-256 is stored. The confirming code's step counts as used.
 */
export async function enableTwoFactor(userId: number, code: string, actor: Actor): Promise<string[]> {
  return db.transaction(async (trx) => {
    const user = await User.query({ client: trx }).where('id', userId).forUpdate().firstOrFail()
    if (user.totpEnabledAt) throw new PortalInputError('two_factor_on')
    const secret = secretOf(user)
    if (!secret) throw new PortalInputError('two_factor_not_started')
    const step = matchingStep(secret, code)
    if (step === null) throw new PortalInputError('two_factor_app_code', 'app_code')
    const recovery = generateRecoveryCodes()
    user.totpEnabledAt = DateTime.now()
    user.totpLastStep = step
    user.totpRecoveryCodes = recovery.hashes
    user.useTransaction(trx)
    await user.save()
    await writeAudit(trx, actor, {
      action: 'user.2fa_enable',
      subjectType: 'user',
      subjectId: user.id,
      summary: `user ${user.email}: two-factor sign-in turned on (${recovery.codes.length} recovery codes)`,
      before: { twoFactor: false },
      after: { twoFactor: true },
    })
    return recovery.codes
  })
}
