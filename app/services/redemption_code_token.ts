import { hash, randomBytes } from 'node:crypto'

/**
 * Redemption codes as people type them: 20 characters of Crockford's base32
 * (100 random bits; no I, L, O or U, so nothing reads as another character),
 * shown in groups of four after a "GW" tag: `GW-7K3M-Q9XD-2F8H-VN4T-J6RP`.
 * What a user types is read leniently (any case, spaces or dashes, O for 0,
 * I and L for 1) and only its normal form is hashed and stored.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
const LENGTH = 20
const TAG = 'GW'

export interface IssuedCode {
  /** As shown to the operator once: GW-XXXX-XXXX-XXXX-XXXX-XXXX */
  code: string
  hash: string
  /** "7K3M…J6RP": enough for a person to tell codes apart, useless to redeem */
  hint: string
}

export function issueRedemptionCode(): IssuedCode {
  const bytes = randomBytes(LENGTH)
  let body = ''
  // 256 is a multiple of 32: each byte's low five bits are uniform.
  for (let i = 0; i < LENGTH; i++) body += ALPHABET[bytes[i] & 31]
  return { code: `${TAG}-${body.match(/.{4}/g)!.join('-')}`, hash: hashRedemptionCode(body), hint: hintOf(body) }
}

/**
 * The 20-character normal form of what a user typed, or null when it cannot
 * be a code (wrong length or characters), so a typo is told apart from a
 * code that does not exist without a database read.
 */
export function normaliseRedemptionCode(input: string): string | null {
  let text = input.toUpperCase().replace(/[\s\-_.]/g, '')
  if (text.length === LENGTH + TAG.length && text.startsWith(TAG)) text = text.slice(TAG.length)
  text = text.replace(/O/g, '0').replace(/[IL]/g, '1')
  if (text.length !== LENGTH) return null
  for (const char of text) if (!ALPHABET.includes(char)) return null
  return text
}

export function hashRedemptionCode(normal: string): string {
  return hash('sha256', `${TAG}-${normal}`, 'hex')
}

function hintOf(normal: string) {
  return `${normal.slice(0, 4)}…${normal.slice(-4)}`
}
