import { createHash } from 'node:crypto'
import logger from '@adonisjs/core/services/logger'
import { SsoError } from '#services/sso/sso_error'
import { asObject, httpUrl, ssoJson } from '#services/sso/sso_http'
import { verifyIdToken, type Jwk } from '#services/sso/id_token'
import { isTrue, providerAddress, type FlowSecrets, type ProviderIdentity, type SsoProvider } from '#services/sso/sso_provider'
import type { OidcSettings } from '#services/sso/sso_settings'

/**
 * A generic OpenID Connect provider (Okta, Entra ID, Google Workspace,
 * Keycloak, Authentik...): discovery, the authorization code flow with PKCE
 * (S256), the token exchange, the id_token checked against the provider's
 * JWKS, and the e-mail from the id_token or the userinfo endpoint.
 */
interface Discovery {
  authorizationEndpoint: string
  tokenEndpoint: string
  jwksUri: string
  userinfoEndpoint: string | null
  /** client_secret_basic unless the provider offers only client_secret_post */
  secretInBody: boolean
}

/** Discovery and keys are kept this long; an unknown kid refetches the keys sooner */
const CACHE_MS = 60 * 60_000
/** Keys refetched at most this often (an unknown kid in a stream of tokens fetches once) */
const MIN_KEYS_REFETCH_MS = 1_000

const discoveries = new Map<string, { at: number; value: Promise<Discovery> }>()
const keySets = new Map<string, { at: number; value: Promise<Jwk[]> }>()

/** For tests: the next sign-in reads discovery and keys afresh. */
export function forgetOidcCaches() {
  discoveries.clear()
  keySets.clear()
  authorizationOrigins.clear()
}

async function fetchDiscovery(issuer: string): Promise<Discovery> {
  const url = `${issuer}/.well-known/openid-configuration`
  const { status, json } = await ssoJson(url)
  const doc = asObject(json)
  if (status !== 200 || !doc) throw new SsoError('provider', `discovery ${url}: HTTP ${status}`)
  if (typeof doc.issuer !== 'string' || doc.issuer.replace(/\/+$/, '') !== issuer) {
    throw new SsoError('provider', `discovery ${url}: issuer "${String(doc.issuer)}" is not the configured one`)
  }
  const authorizationEndpoint = httpUrl(doc.authorization_endpoint)
  const tokenEndpoint = httpUrl(doc.token_endpoint)
  const jwksUri = httpUrl(doc.jwks_uri)
  if (!authorizationEndpoint || !tokenEndpoint || !jwksUri) {
    throw new SsoError('provider', `discovery ${url}: authorization_endpoint, token_endpoint or jwks_uri missing`)
  }
  authorizationOrigins.set(issuer, new URL(authorizationEndpoint).origin)
  const methods = Array.isArray(doc.token_endpoint_auth_methods_supported) ? doc.token_endpoint_auth_methods_supported : null
  return {
    authorizationEndpoint,
    tokenEndpoint,
    jwksUri,
    userinfoEndpoint: httpUrl(doc.userinfo_endpoint),
    secretInBody: !!methods && !methods.includes('client_secret_basic') && methods.includes('client_secret_post'),
  }
}

/**
 * The panel's "Test discovery": the document read now, uncached, through the
 * same bounded calls as a sign-in (sso_http.ts); an SsoError says why not.
 */
export function probeDiscovery(issuer: string): Promise<Discovery> {
  return fetchDiscovery(issuer)
}

/** Cached per issuer; a failure is not kept (the next sign-in asks again). */
export function discovery(issuer: string): Promise<Discovery> {
  const cached = discoveries.get(issuer)
  if (cached && Date.now() - cached.at < CACHE_MS) return cached.value
  const value = fetchDiscovery(issuer)
  discoveries.set(issuer, { at: Date.now(), value })
  value.catch(() => discoveries.get(issuer)?.value === value && discoveries.delete(issuer))
  return value
}

/** Origins of the authorization endpoints discovered so far (the pages' CSP form-action, read synchronously) */
const authorizationOrigins = new Map<string, string>()

/** The authorization endpoint's origin once discovery has answered (null while it has not). */
export function knownAuthorizationOrigin(issuer: string): string | null {
  return authorizationOrigins.get(issuer) ?? null
}

/** Discovery asked for ahead of a page with a Link form, waiting at most `ms` (the page renders either way). */
export async function warmDiscovery(issuer: string, ms: number) {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([discovery(issuer).catch(() => null), new Promise((resolve) => (timer = setTimeout(resolve, ms)))])
  clearTimeout(timer)
}

async function fetchKeys(jwksUri: string): Promise<Jwk[]> {
  const { status, json } = await ssoJson(jwksUri)
  const keys = asObject(json)?.keys
  if (status !== 200 || !Array.isArray(keys)) throw new SsoError('provider', `JWKS ${jwksUri}: HTTP ${status}, no keys`)
  return keys.filter((k) => asObject(k)) as Jwk[]
}

function keys(jwksUri: string, refresh: boolean): Promise<Jwk[]> {
  const cached = keySets.get(jwksUri)
  const age = cached ? Date.now() - cached.at : Infinity
  if (cached && (refresh ? age < MIN_KEYS_REFETCH_MS : age < CACHE_MS)) return cached.value
  const value = fetchKeys(jwksUri)
  keySets.set(jwksUri, { at: Date.now(), value })
  value.catch(() => keySets.get(jwksUri)?.value === value && keySets.delete(jwksUri))
  return value
}

const s256 = (verifier: string) => createHash('sha256').update(verifier).digest('base64url')

export class OidcProvider implements SsoProvider {
  constructor(private settings: OidcSettings) {}

  async authorizeUrl(flow: FlowSecrets) {
    const { authorizationEndpoint } = await discovery(this.settings.issuer)
    const url = new URL(authorizationEndpoint)
    url.searchParams.set('response_type', 'code')
    url.searchParams.set('client_id', this.settings.clientId)
    url.searchParams.set('redirect_uri', flow.redirectUri)
    url.searchParams.set('scope', this.settings.scopes.split(/\s+/).includes('openid') ? this.settings.scopes : `openid ${this.settings.scopes}`)
    url.searchParams.set('state', flow.state)
    url.searchParams.set('nonce', flow.nonce)
    url.searchParams.set('code_challenge', s256(flow.verifier))
    url.searchParams.set('code_challenge_method', 'S256')
    return url.toString()
  }

  async complete(code: string, flow: FlowSecrets): Promise<ProviderIdentity> {
    const { issuer, clientId, clientSecret } = this.settings
    const found = await discovery(issuer)
    const form: Record<string, string> = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: flow.redirectUri,
      code_verifier: flow.verifier,
      client_id: clientId,
    }
    const headers: Record<string, string> = {}
    if (clientSecret && found.secretInBody) form.client_secret = clientSecret
    else if (clientSecret) {
      // RFC 6749 2.3.1: both parts form-urlencoded before the Basic encoding.
      const pair = `${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`
      headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`
    }
    const { status, json } = await ssoJson(found.tokenEndpoint, { method: 'POST', form, headers })
    const answer = asObject(json)
    if (status !== 200 || !answer || typeof answer.id_token !== 'string') {
      throw new SsoError('provider', `token endpoint: HTTP ${status} ${String(answer?.error ?? '')} ${String(answer?.error_description ?? '')}`.trim())
    }
    const claims = await verifyIdToken(answer.id_token, {
      issuer,
      clientId,
      nonce: flow.nonce,
      keys: (refresh) => keys(found.jwksUri, refresh),
    })
    let email = claims.email
    let verified = claims.email_verified
    // No address in the id_token: the userinfo endpoint, for the same subject only.
    if (typeof email !== 'string' && found.userinfoEndpoint && typeof answer.access_token === 'string') {
      const info = await ssoJson(found.userinfoEndpoint, { headers: { authorization: `Bearer ${answer.access_token}` } })
      const user = asObject(info.json)
      if (info.status === 200 && user && user.sub === claims.sub) {
        email = user.email
        verified = user.email_verified
      } else {
        logger.warn({ status: info.status }, 'sso: userinfo answer unusable (status, or a different sub)')
      }
    }
    const address = providerAddress(email)
    return {
      provider: 'oidc',
      issuer,
      subject: claims.sub,
      email: address && isTrue(verified) ? address : null,
      unverifiedEmail: address && !isTrue(verified) ? address : null,
    }
  }
}
