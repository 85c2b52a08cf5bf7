import hash from '@adonisjs/core/services/hash'
import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import User from '#models/user'
import { PortalInputError } from '#actions/portal_input_error'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { findUser } from '#actions/post_ledger_entry'
import { checkSecondFactor } from '#services/two_factor'

/**
 * A user turns two-factor sign-in off for their own account: it takes the
 * password and a current code from the app or a recovery code, so a
 * borrowed session alone cannot do it.
 */
export async function disableTwoFactor(userId: number, password: string, code: string, actor: Actor) {
  return db.transaction(async (trx) => {
    const user = await User.query({ client: trx }).where('id', userId).forUpdate().firstOrFail()
    if (!user.totpEnabledAt) throw new PortalInputError('two_factor_off')
    // An account made by a single sign-on has no password: no typed one is right.
    if (!user.password || !(await hash.use('scrypt').verify(user.password, password))) throw new PortalInputError('wrong_password', 'current_password')
    const factor = await checkSecondFactor(trx, user, code)
    if (!factor.ok) throw new PortalInputError(factor.reason === 'replayed' ? 'two_factor_code_used' : 'two_factor_code', 'code')
    await clear(trx, user.id)
    await writeAudit(trx, actor, {
      action: 'user.2fa_disable',
      subjectType: 'user',
      subjectId: user.id,
      summary: `user ${user.email}: two-factor sign-in turned off${factor.method === 'recovery' ? ' (with a recovery code)' : ''}`,
      before: { twoFactor: true },
      after: { twoFactor: false },
    })
  })
}

/**
 * An administrator turns two-factor sign-in off for a user who lost their
 * device (panel, `user:2fa-reset`): the secret and recovery codes go; the
 * user signs in with the password alone and can enrol again.
 */
export async function resetTwoFactor(userRef: string, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const found = await findUser(userRef, trx)
    const user = await User.query({ client: trx }).where('id', found.id).forUpdate().firstOrFail()
    if (!user.totpEnabledAt) throw new AdminInputError(`${user.email} has no two-factor sign-in to reset`)
    await clear(trx, user.id)
    await writeAudit(trx, actor, {
      action: 'user.2fa_reset',
      subjectType: 'user',
      subjectId: user.id,
      summary: `user ${user.email}: two-factor sign-in reset by an administrator`,
      before: { twoFactor: true },
      after: { twoFactor: false },
    })
    return user
  })
}

async function clear(trx: TransactionClientContract, userId: number) {
  await trx.from('users').where('id', userId).update({
    totp_secret_encrypted: null,
    totp_enabled_at: null,
    totp_last_step: null,
    totp_recovery_codes: JSON.stringify([]),
    updated_at: new Date(),
  })
}
