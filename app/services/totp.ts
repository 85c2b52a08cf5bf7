import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Time-based one-time passwords (RFC 6238, on HOTP of RFC 4226) as
 * authenticator apps compute them: HMAC-SHA1 over the number of 30-second
 * steps since the Unix epoch, dynamically truncated to 6 digits. Secrets are
 * 20 random bytes, written in RFC 4648 base32 for the app. Also the
 * one-time recovery codes: 10 characters of Crockford base32, of which only
 * a SHA-256 is stored. Pure functions: the account side (encrypted secret,
 * replay protection, consuming a recovery code) is app/services/two_factor.ts.
 */

export type TotpAlgorithm = 'sha1' | 'sha256' | 'sha512'

export const STEP_SECONDS = 30
export const DIGITS = 6
/** Steps accepted either side of now, for a phone's clock that drifts. */
export const DRIFT_STEPS = 1

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** RFC 4648 base32, without padding (what otpauth URIs carry). */
export function base32Encode(bytes: Uint8Array): string {
  let out = ''
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += BASE32[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= (1 << bits) - 1
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31]
  return out
}

/** Reads base32 as people copy it (any case, spaces, dashes, padding); null when it is not base32. */
export function base32Decode(text: string): Buffer | null {
  const clean = text.toUpperCase().replace(/[\s\-=]/g, '')
  const bytes: number[] = []
  let buffer = 0
  let bits = 0
  for (const char of clean) {
    const value = BASE32.indexOf(char)
    if (value < 0) return null
    buffer = (buffer << 5) | value
    bits += 5
    if (bits >= 8) {
      bytes.push((buffer >>> (bits - 8)) & 255)
      bits -= 8
    }
    buffer &= (1 << bits) - 1
  }
  return Buffer.from(bytes)
}

/** A new secret: 20 random bytes (160 bits, RFC 4226's recommendation for SHA-1), in base32. */
export function generateSecret(): string {
  return base32Encode(randomBytes(20))
}

/** RFC 4226 HOTP: the code for one counter value. */
export function hotp(key: Uint8Array, counter: number | bigint, digits = DIGITS, algorithm: TotpAlgorithm = 'sha1'): string {
  const message = Buffer.alloc(8)
  message.writeBigUInt64BE(BigInt(counter))
  const mac = createHmac(algorithm, key).update(message).digest()
  const offset = mac[mac.length - 1] & 0x0f
  const binary = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3]
  return String(binary % 10 ** digits).padStart(digits, '0')
}

/** The time step (counter) a moment falls in: floor(unix seconds / 30). */
export function timeStep(atMs: number = Date.now(), stepSeconds = STEP_SECONDS): number {
  return Math.floor(atMs / 1000 / stepSeconds)
}

/** RFC 6238 TOTP: the code at a moment. */
export function totp(
  key: Uint8Array,
  options: { atMs?: number; stepSeconds?: number; digits?: number; algorithm?: TotpAlgorithm } = {}
): string {
  return hotp(key, timeStep(options.atMs, options.stepSeconds), options.digits ?? DIGITS, options.algorithm)
}

/**
 * The step whose code the user typed, looking `drift` steps either side of
 * now (the current step first), or null. Only 6 digits are read (spaces
 * allowed); every candidate is compared in constant time. Replay protection
 * is the caller's: accept a step only once per account.
 */
export function matchingStep(secret: string, typed: string, atMs: number = Date.now(), drift = DRIFT_STEPS): number | null {
  const code = typed.replace(/\s/g, '')
  if (!/^\d{6}$/.test(code)) return null
  const key = base32Decode(secret)
  if (!key || key.length === 0) return null
  const now = timeStep(atMs)
  const typedBytes = Buffer.from(code)
  let found: number | null = null
  for (const offset of offsets(drift)) {
    const step = now + offset
    if (timingSafeEqual(Buffer.from(hotp(key, step)), typedBytes) && found === null) found = step
  }
  return found
}

/** 0, -1, +1, -2, +2 … up to the drift. */
function offsets(drift: number): number[] {
  const list = [0]
  for (let d = 1; d <= drift; d++) list.push(-d, d)
  return list
}

/** The URI authenticator apps read from a QR code: otpauth://totp/Issuer:account?secret=…&issuer=… */
export function otpauthUri(input: { issuer: string; account: string; secret: string }): string {
  const label = `${encodeURIComponent(input.issuer)}:${encodeURIComponent(input.account)}`
  const query = new URLSearchParams({
    secret: input.secret,
    issuer: input.issuer,
    algorithm: 'SHA1',
    digits: String(DIGITS),
    period: String(STEP_SECONDS),
  })
  return `otpauth://totp/${label}?${query.toString().replace(/\+/g, '%20')}`
}

/** The secret in groups of four, easier to type into an app by hand. */
export function groupSecret(secret: string): string {
  return secret.match(/.{1,4}/g)?.join(' ') ?? secret
}

/*
 * Recovery codes: 10 characters of Crockford's base32 (50 random bits), shown
 * as `XXXXX-XXXXX`; read leniently like redemption codes (any case, spaces or
 * dashes, O for 0, I and L for 1). Only a SHA-256 of the normal form is kept.
 */
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
const RECOVERY_LENGTH = 10
export const RECOVERY_CODE_COUNT = 10

export interface RecoveryCodes {
  /** As shown to the user, once */
  codes: string[]
  hashes: string[]
}

export function generateRecoveryCodes(count = RECOVERY_CODE_COUNT): RecoveryCodes {
  const codes: string[] = []
  const hashes: string[] = []
  while (codes.length < count) {
    const bytes = randomBytes(RECOVERY_LENGTH)
    let body = ''
    // 256 is a multiple of 32: each byte's low five bits are uniform.
    for (const byte of bytes) body += CROCKFORD[byte & 31]
    const digest = hashRecoveryCode(body)
    if (hashes.includes(digest)) continue
    codes.push(`${body.slice(0, 5)}-${body.slice(5)}`)
    hashes.push(digest)
  }
  return { codes, hashes }
}

/** The normal form of a typed recovery code, or null when it cannot be one. */
export function normaliseRecoveryCode(input: string): string | null {
  const text = input
    .toUpperCase()
    .replace(/[\s\-_.]/g, '')
    .replace(/O/g, '0')
    .replace(/[IL]/g, '1')
  if (text.length !== RECOVERY_LENGTH) return null
  for (const char of text) if (!CROCKFORD.includes(char)) return null
  return text
}

export function hashRecoveryCode(normal: string): string {
  return hash('sha256', `RC-${normal}`, 'hex')
}
