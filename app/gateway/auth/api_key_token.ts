import { createHash, randomBytes } from 'node:crypto'

/** Issuing and hashing API keys: `<prefix><32 url-safe chars>`, stored only as SHA-256. */
export function keyPrefix(): string {
  return process.env.API_KEY_PREFIX || 'sk-gw-'
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex')
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
