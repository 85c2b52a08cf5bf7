import db from '@adonisjs/lucid/services/db'
import User from '#models/user'
import { PortalInputError } from '#actions/portal_input_error'
import { generateSecret } from '#services/totp'
import { encryptSecret } from '#services/two_factor'

/**
 * Starts enrolling an authenticator app: a new secret (20 random bytes),
 * kept encrypted on the account but not in force until a code from the app
 * confirms it (enableTwoFactor). Starting again replaces a pending secret;
 * an account with two-factor sign-in on must turn it off first.
 */
export async function startTwoFactor(userId: number): Promise<string> {
  return db.transaction(async (trx) => {
    const user = await User.query({ client: trx }).where('id', userId).forUpdate().firstOrFail()
    if (user.totpEnabledAt) throw new PortalInputError('two_factor_on')
    const secret = generateSecret()
    user.totpSecretEncrypted = encryptSecret(secret)
    user.totpLastStep = null
    user.totpRecoveryCodes = []
    user.useTransaction(trx)
    await user.save()
    return secret
  })
}

/** Abandons an enrolment that was never confirmed (the pending secret goes). */
export async function cancelTwoFactor(userId: number) {
  await db.from('users').where('id', userId).whereNull('totp_enabled_at').update({ totp_secret_encrypted: null })
}
