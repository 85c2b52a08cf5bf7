import { constants, createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto'
import { SsoError } from '#services/sso/sso_error'

/**
 * Verification of an OpenID Connect id_token (a JWS in compact form) with
 * node:crypto only. Asymmetric algorithms only: `none` and the HS* family are
 * refused whatever the header says (an HS256 token "signed" with the public
 * key is the classic forgery), and the key must be of the algorithm's type.
 */
interface Algorithm {
  hash: 'sha256' | 'sha384' | 'sha512'
  kty: 'RSA' | 'EC'
  pss?: boolean
  crv?: string
}

const ALGORITHMS: Record<string, Algorithm> = {
  RS256: { hash: 'sha256', kty: 'RSA' },
  RS384: { hash: 'sha384', kty: 'RSA' },
  RS512: { hash: 'sha512', kty: 'RSA' },
  PS256: { hash: 'sha256', kty: 'RSA', pss: true },
  PS384: { hash: 'sha384', kty: 'RSA', pss: true },
  PS512: { hash: 'sha512', kty: 'RSA', pss: true },
  ES256: { hash: 'sha256', kty: 'EC', crv: 'P-256' },
  ES384: { hash: 'sha384', kty: 'EC', crv: 'P-384' },
  ES512: { hash: 'sha512', kty: 'EC', crv: 'P-521' },
}

/** Clock difference tolerated between the provider and this server (seconds) */
export const CLOCK_SKEW_S = 60
/** An id_token is a few KB; a much larger one is refused before any parsing */
const MAX_TOKEN_CHARS = 16 * 1024

export type Jwk = JsonWebKey & { kid?: string; use?: string; alg?: string }

export interface IdTokenExpectations {
  issuer: string
  clientId: string
  nonce: string
  /** The provider's keys; `refresh` asks for the set again (once per token, on an unknown kid) */
  keys: (refresh: boolean) => Promise<Jwk[]>
  nowS?: number
}

export type IdTokenClaims = Record<string, unknown> & { sub: string }

const bad = (detail: string) => new SsoError('invalid_token', detail)

function decodeJson(part: string, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    if (value && typeof value === 'object' && !Array.isArray(value)) return value
  } catch {}
  throw bad(`id_token ${what} is not a JSON object`)
}

function pickKey(keys: Jwk[], kid: string | undefined, alg: string, spec: Algorithm): Jwk | null {
  const usable = keys.filter(
    (k) => k && k.kty === spec.kty && (!k.use || k.use === 'sig') && (!k.alg || k.alg === alg) && (!spec.crv || k.crv === spec.crv)
  )
  if (kid !== undefined) return usable.find((k) => k.kid === kid) ?? null
  // No kid in the header: only an unambiguous key will do.
  return usable.length === 1 ? usable[0] : null
}

function publicKey(jwk: Jwk): KeyObject {
  try {
    const { kid, use, alg, key_ops: _ops, ...material } = jwk as any
    return createPublicKey({ key: material, format: 'jwk' })
  } catch (error: any) {
    throw bad(`the provider's key ${jwk.kid ?? ''} is unusable: ${error?.message}`)
  }
}

/** Checks the signature and the claims; returns the claims of a token this client may trust. */
export async function verifyIdToken(token: unknown, expected: IdTokenExpectations): Promise<IdTokenClaims> {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS) throw bad('no id_token, or an oversized one')
  const parts = token.split('.')
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) throw bad('id_token is not a compact JWS')
  const header = decodeJson(parts[0], 'header')
  const alg = typeof header.alg === 'string' ? header.alg : ''
  const spec = Object.hasOwn(ALGORITHMS, alg) ? ALGORITHMS[alg] : undefined
  if (!spec) throw bad(`id_token algorithm "${alg}" refused (asymmetric signatures only)`)
  if (header.crit !== undefined) throw bad('id_token carries critical header extensions')
  const kid = typeof header.kid === 'string' ? header.kid : undefined

  let jwk = pickKey(await expected.keys(false), kid, alg, spec)
  // An unknown kid: the provider may have rotated its keys since they were cached.
  if (!jwk) jwk = pickKey(await expected.keys(true), kid, alg, spec)
  if (!jwk) throw bad(`no ${spec.kty} key ${kid ? `with kid "${kid}"` : 'that fits'} in the provider's key set`)

  const signature = Buffer.from(parts[2], 'base64url')
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`)
  const key = publicKey(jwk)
  let valid = false
  try {
    valid = verify(spec.hash, signed, {
      key,
      ...(spec.pss ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } : {}),
      ...(spec.kty === 'EC' ? { dsaEncoding: 'ieee-p1363' as const } : {}),
    }, signature)
  } catch {
    valid = false
  }
  if (!valid) throw bad('id_token signature does not verify')

  const claims = decodeJson(parts[1], 'payload')
  const now = expected.nowS ?? Math.floor(Date.now() / 1000)
  if (typeof claims.iss !== 'string' || claims.iss.replace(/\/+$/, '') !== expected.issuer) {
    throw bad(`id_token issuer "${String(claims.iss)}" is not "${expected.issuer}"`)
  }
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  if (!audiences.includes(expected.clientId)) throw bad(`id_token audience ${JSON.stringify(claims.aud)} does not include this client`)
  // Several audiences: the token must have been issued to this client (OIDC Core 3.1.3.7).
  if (audiences.length > 1 && claims.azp !== expected.clientId) throw bad('id_token has several audiences and azp is not this client')
  if (typeof claims.exp !== 'number' || claims.exp + CLOCK_SKEW_S < now) throw bad('id_token expired')
  if (typeof claims.iat !== 'number' || claims.iat - CLOCK_SKEW_S > now) throw bad('id_token issued in the future')
  if (typeof claims.nbf === 'number' && claims.nbf - CLOCK_SKEW_S > now) throw bad('id_token not valid yet')
  if (claims.nonce !== expected.nonce) throw bad('id_token nonce does not match this sign-in')
  if (typeof claims.sub !== 'string' || !claims.sub || claims.sub.length > 255) throw bad('id_token has no usable sub')
  return claims as IdTokenClaims
}
