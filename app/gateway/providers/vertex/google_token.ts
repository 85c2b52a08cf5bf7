import { createHash, createSign } from 'node:crypto'
import { CredentialsRefused } from '#gateway/providers/provider_adapter'
import type { ServiceAccount } from '#gateway/providers/vertex/vertex_settings'
import { boundedText } from '#gateway/providers/credential_reads'

/**
 * OAuth access tokens for a Google service account (the JWT bearer grant,
 * RFC 7523): a JWT signed RS256 with the account's private key is traded at
 * its `token_uri` for an access token. Tokens are kept per account until
 * REFRESH_MARGIN_MS before they expire (Google's last an hour; a shorter
 * one half its life), so a request normally finds one ready (cachedToken,
 * synchronous); when none is, every request waiting shares the one exchange
 * in flight (accessToken). A cached token Vertex refuses (revoked) is
 * forgotten (forgetToken): the next request exchanges again.
 */
export const SCOPE = 'https://www.googleapis.com/auth/cloud-platform'
const REFRESH_MARGIN_MS = 5 * 60_000
const EXCHANGE_TIMEOUT_MS = 15_000
const JWT_LIFETIME_S = 3600
/** The longest a token is kept, whatever `expires_in` says (a JWT grant's token lives an hour) */
const MAX_TOKEN_LIFETIME_S = 3600
/** The most of the token endpoint's answer read (Google's is under 2 KB): one that never ends is not held whole */
const MAX_TOKEN_ANSWER_BYTES = 64 * 1024
/** Accounts kept at most (channels' keys; a replaced key's entry is dropped first) */
const MAX_ACCOUNTS = 256

interface Held {
  token: string | null
  /** When the token stops being used (its expiry minus the margin) */
  freshUntil: number
  exchange: Promise<string> | null
}

const held = new Map<string, Held>()

/** The cache key of an account: its email, token URI and a digest of its private key (a rotated key is another account). */
export function accountKey(account: ServiceAccount): string {
  const digest = createHash('sha256').update(account.privateKey).digest('base64url').slice(0, 16)
  return `${account.clientEmail}\n${account.tokenUri}\n${digest}`
}

/** A token still fresh for this account, or null (then call accessToken). */
export function cachedToken(key: string): string | null {
  const entry = held.get(key)
  return entry?.token && entry.freshUntil > Date.now() ? entry.token : null
}

/** A fresh token: the cached one, the exchange in flight, or a new exchange. */
export function accessToken(key: string, account: ServiceAccount): Promise<string> {
  let entry = held.get(key)
  if (entry?.token && entry.freshUntil > Date.now()) return Promise.resolve(entry.token)
  if (entry?.exchange) return entry.exchange
  if (!entry) {
    if (held.size >= MAX_ACCOUNTS) held.delete(held.keys().next().value!)
    entry = { token: null, freshUntil: 0, exchange: null }
    held.set(key, entry)
  }
  const target = entry
  target.exchange = exchange(account)
    .then(({ token, expiresInS }) => {
      target.token = token
      target.freshUntil = Date.now() + freshForMs(expiresInS)
      return token
    })
    .finally(() => {
      target.exchange = null
    })
  return target.exchange
}

/**
 * How long a token of `expires_in` seconds is used: until REFRESH_MARGIN_MS
 * before it expires, or half its life when that is shorter (a 60 s token
 * was never kept, and every request made an exchange of its own); at most
 * an hour. One that says it has expired (0, negative) serves only the
 * requests that waited for it.
 */
export function freshForMs(expiresInS: number): number {
  if (!(expiresInS > 0)) return 0
  const lifetime = Math.min(expiresInS, MAX_TOKEN_LIFETIME_S) * 1000
  return lifetime - Math.min(REFRESH_MARGIN_MS, lifetime / 2)
}

/** A cached token was refused (Vertex's 401: revoked): the next request exchanges again instead of using it. */
export function forgetToken(key: string) {
  const entry = held.get(key)
  if (!entry) return
  entry.token = null
  entry.freshUntil = 0
}

/** Forgets every token (tests). */
export function forgetTokens() {
  held.clear()
}

/** The signed JWT a token is asked for with. */
export function signedAssertion(account: ServiceAccount, nowS = Math.floor(Date.now() / 1000)): string {
  const header = { alg: 'RS256', typ: 'JWT', ...(account.privateKeyId ? { kid: account.privateKeyId } : {}) }
  const claims = { iss: account.clientEmail, scope: SCOPE, aud: account.tokenUri, iat: nowS, exp: nowS + JWT_LIFETIME_S }
  const unsigned = `${base64url(header)}.${base64url(claims)}`
  let signature: string
  try {
    signature = createSign('RSA-SHA256').update(unsigned).sign(account.privateKey, 'base64url')
  } catch {
    throw new CredentialsRefused("the channel's service account private_key is not a usable PEM RSA key")
  }
  return `${unsigned}.${signature}`
}

/** OAuth's error codes that mean the account's key or grant is wrong, not the token server's state. */
const REFUSALS = new Set(['invalid_grant', 'invalid_client', 'unauthorized_client', 'access_denied', 'invalid_scope'])

async function exchange(account: ServiceAccount): Promise<{ token: string; expiresInS: number }> {
  const assertion = signedAssertion(account)
  const response = await fetch(account.tokenUri, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
    redirect: 'manual',
    signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
  })
  // At most MAX_TOKEN_ANSWER_BYTES read (the rest not waited for): a token answer is a few hundred bytes.
  const text = (await boundedText(response, MAX_TOKEN_ANSWER_BYTES)).slice(0, 2000)
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(text)
  } catch {}
  if (response.status !== 200) {
    const code = typeof body.error === 'string' ? body.error : ''
    const detail = `${code}${typeof body.error_description === 'string' ? `: ${body.error_description}` : ''}`.slice(0, 300)
    const message = `the token endpoint answered HTTP ${response.status}${detail ? ` (${detail})` : ''}`
    if (REFUSALS.has(code) || response.status === 401 || response.status === 403) throw new CredentialsRefused(message)
    throw new Error(message)
  }
  const token = body.access_token
  // OAuth's expires_in is optional (absent: the server's default, Google's hour); 0 or less is believed (freshForMs).
  const expiresIn = Number(body.expires_in ?? 3600)
  if (typeof token !== 'string' || !token) throw new Error('the token endpoint answered no access_token')
  return { token, expiresInS: Number.isFinite(expiresIn) ? expiresIn : 3600 }
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}
