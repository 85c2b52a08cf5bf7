import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { HttpContext } from '@adonisjs/core/http'
import { mailSiteBase } from '#services/mail/site_url'
import { requestBaseUrl } from '#controllers/pages/docs_controller'
import { SsoError } from '#services/sso/sso_error'
import { GithubProvider } from '#services/sso/github_provider'
import { OidcProvider } from '#services/sso/oidc_provider'
import type { FlowSecrets, SsoProvider } from '#services/sso/sso_provider'
import { githubSettings, oidcSettings, type SsoProviderId } from '#services/sso/sso_settings'

/**
 * A sign-in through a provider between its two legs: the state, nonce and
 * PKCE verifier live in the (encrypted, HttpOnly) session cookie for 10
 * minutes and are taken out by the callback whatever happens next, so each
 * is used once. One flow at a time per browser: a new one replaces the last.
 */
const KEY = 'sso.flow'
const FLOW_MS = 10 * 60_000

export interface Flow extends FlowSecrets {
  provider: SsoProviderId
  /** Sign in (or up), or link the identity to the signed-in account */
  intent: 'login' | 'link'
  /** The account a link flow was started from */
  userId: number | null
  /** An invitation code the sign-up page carried (?ref=) */
  ref: string | null
  until: number
}

export function providerFor(id: SsoProviderId): SsoProvider {
  if (id === 'oidc') {
    const settings = oidcSettings()
    if (settings) return new OidcProvider(settings)
  } else {
    const settings = githubSettings()
    if (settings) return new GithubProvider(settings)
  }
  throw new SsoError('not_configured', `provider ${id} is not configured`)
}

const random = () => randomBytes(32).toString('base64url')

/**
 * Where the provider sends the browser back, the address to register there
 * (shown on Settings > Sign-in): APP_URL when set, else the site address of
 * Settings > E-mail, else the address this request came to.
 */
export async function callbackUrl(request: HttpContext['request'], provider: SsoProviderId) {
  const base = (await mailSiteBase()) ?? requestBaseUrl(request)
  return `${base}/auth/${provider}/callback`
}

/** Opens a flow: the provider's authorization URL to redirect to. */
export async function beginFlow(
  ctx: HttpContext,
  provider: SsoProviderId,
  options: { intent: Flow['intent']; userId?: number | null; ref?: string | null }
): Promise<string> {
  const client = providerFor(provider)
  const flow: Flow = {
    provider,
    intent: options.intent,
    userId: options.userId ?? null,
    ref: options.ref ?? null,
    state: random(),
    nonce: random(),
    verifier: random(),
    redirectUri: await callbackUrl(ctx.request, provider),
    until: Date.now() + FLOW_MS,
  }
  const url = await client.authorizeUrl(flow)
  ctx.session.put(KEY, flow)
  return url
}

function sameText(a: string, b: string) {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * The callback's flow, taken out of the session (single use): it must be for
 * this provider, unexpired, and carry the state the provider sent back.
 */
export function takeFlow(ctx: HttpContext, provider: SsoProviderId): Flow {
  const flow = ctx.session.pull(KEY) as Flow | undefined
  const state = ctx.request.qs().state
  if (!flow || typeof flow !== 'object') throw new SsoError('expired', 'no sign-in in progress in this browser')
  if (flow.provider !== provider) throw new SsoError('expired', `callback for ${provider}, flow for ${flow.provider}`)
  if (!(flow.until > Date.now())) throw new SsoError('expired', 'the sign-in took longer than 10 minutes')
  if (typeof state !== 'string' || !sameText(state, flow.state)) throw new SsoError('expired', 'state does not match this sign-in')
  return flow
}
