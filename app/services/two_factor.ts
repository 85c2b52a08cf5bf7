import encryption from '@adonisjs/core/services/encryption'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { encode } from 'uqr'
import type User from '#models/user'
import { hashRecoveryCode, matchingStep, normaliseRecoveryCode, otpauthUri } from '#services/totp'

/**
 * Two-factor sign-in on an account: the TOTP secret encrypted with APP_KEY
 * (the encryption service that keeps upstream channel keys), and checking
 * what a user typed as a second factor. A code from the app is taken once:
 * its time step must be later than the last one accepted, written in one
 * guarded UPDATE, so the same code cannot sign in twice, even by two
 * requests at once. A recovery code is removed by the UPDATE that finds it.
 */

export function encryptSecret(secret: string): string {
  return encryption.encrypt(secret)
}

/** The account's TOTP secret in base32, or null (none, or not readable with this APP_KEY). */
export function secretOf(user: Pick<User, 'totpSecretEncrypted'>): string | null {
  if (!user.totpSecretEncrypted) return null
  return encryption.decrypt<string>(user.totpSecretEncrypted)
}

export type SecondFactor =
  | { ok: true; method: 'totp' }
  | { ok: true; method: 'recovery'; remaining: number }
  | { ok: false; reason: 'invalid' | 'replayed' }

/**
 * Checks a typed second factor for a user with two-factor sign-in on:
 * 6 digits are a code from the app (`allowRecovery`: anything else is read
 * as a recovery code). Runs in the caller's transaction.
 */
export async function checkSecondFactor(
  trx: TransactionClientContract,
  user: User,
  typed: string,
  options: { allowRecovery?: boolean; atMs?: number } = {}
): Promise<SecondFactor> {
  const secret = secretOf(user)
  if (!secret || !user.totpEnabledAt) return { ok: false, reason: 'invalid' }
  const compact = typed.replace(/\s/g, '')
  if (/^\d{6}$/.test(compact)) {
    const step = matchingStep(secret, compact, options.atMs)
    if (step === null) return { ok: false, reason: 'invalid' }
    return (await takeStep(trx, user.id, step)) ? { ok: true, method: 'totp' } : { ok: false, reason: 'replayed' }
  }
  if (options.allowRecovery === false) return { ok: false, reason: 'invalid' }
  const normal = normaliseRecoveryCode(typed)
  if (!normal) return { ok: false, reason: 'invalid' }
  const digest = hashRecoveryCode(normal)
  const result = await trx.rawQuery(
    `UPDATE users SET totp_recovery_codes = totp_recovery_codes - ?::text, updated_at = now()
      WHERE id = ? AND totp_recovery_codes @> jsonb_build_array(?::text)
      RETURNING jsonb_array_length(totp_recovery_codes) AS remaining`,
    [digest, user.id, digest]
  )
  const row = result.rows[0]
  if (!row) return { ok: false, reason: 'invalid' }
  user.totpRecoveryCodes = user.totpRecoveryCodes.filter((h) => h !== digest)
  return { ok: true, method: 'recovery', remaining: Number(row.remaining) }
}

/** Accepts a time step once per account: false when it (or a later one) was already used. */
export async function takeStep(trx: TransactionClientContract, userId: number, step: number): Promise<boolean> {
  const result = await trx.rawQuery(
    `UPDATE users SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?) RETURNING id`,
    [step, userId, step]
  )
  return result.rows.length === 1
}

/** What an authenticator app needs to add the account: the otpauth URI and a QR code of it (SVG). */
export function enrolmentOf(secret: string, account: string, host: string) {
  const issuer = host && !/^(localhost|127\.|\[?::1)/.test(host) ? `AI Gateway (${host})` : 'AI Gateway'
  const uri = otpauthUri({ issuer, account, secret })
  return { uri, qrSvg: qrSvg(uri) }
}

/** A QR code as inline SVG, one unit per module with the standard 4-module quiet zone. */
export function qrSvg(text: string): string {
  const { size, data } = encode(text, { ecc: 'M', border: 4 })
  let path = ''
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) if (data[y][x]) path += `M${x},${y}h1v1h-1z`
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${size} ${size}" shape-rendering="crispEdges" aria-hidden="true" focusable="false">` +
    `<rect width="${size}" height="${size}" fill="#fff"/><path d="${path}" fill="#000"/></svg>`
  )
}
