import { hash, randomBytes } from 'node:crypto'

/** Issuing and hashing API keys: `<prefix><32 url-safe chars>`, stored only as SHA-256. */
export function keyPrefix(): string {
  return process.env.API_KEY_PREFIX || 'sk-gw-'
}

/** Once per API call: the one-shot `hash` is 3-4x cheaper than a createHash object for a key this short. */
export function hashApiKey(key: string): string {
  return hash('sha256', key, 'hex')
}

export interface IssuedKey {
  key: string
  hash: string
  /** Display prefix: "sk-gw-AbCd" */
  prefix: string
  lastFour: string
}

export function issueApiKey(): IssuedKey {
  const key = keyPrefix() + randomBytes(24).toString('base64url')
  return {
    key,
    hash: hashApiKey(key),
    prefix: key.slice(0, keyPrefix().length + 4),
    lastFour: key.slice(-4),
  }
}
