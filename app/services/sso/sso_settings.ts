import env from '#start/env'
import { panelSso } from '#services/sso/sso_panel_settings'

/**
 * Which single sign-on providers are on. One precedence, per provider: the
 * environment wins whole when it names the provider (OIDC_ISSUER or
 * OIDC_CLIENT_ID; GITHUB_CLIENT_ID or GITHUB_CLIENT_SECRET), even when it
 * names it incompletely (then the provider is off, and the panel says why);
 * otherwise the panel's Settings > Sign-in, when switched on
 * (sso_panel_settings.ts, in memory). Read per use, no await: the tests turn
 * providers on and off at run time, and the login pages, the CSP and the
 * flow read them.
 */
export type SsoProviderId = 'oidc' | 'github'

export const SSO_PROVIDERS: readonly SsoProviderId[] = ['oidc', 'github']

export interface OidcSettings {
  source: 'env' | 'panel'
  issuer: string
  clientId: string
  clientSecret: string
  scopes: string
  label: string
  /** An unknown identity whose verified e-mail is an existing account's is linked to it (else refused) */
  linkByEmail: boolean
}

export interface GithubSettings {
  source: 'env' | 'panel'
  clientId: string
  clientSecret: string
  /** github.com in production; GITHUB_OAUTH_BASE_URL / GITHUB_API_BASE_URL point the tests at a mock */
  oauthBase: string
  apiBase: string
  label: string
}

const trimSlash = (url: string) => url.replace(/\/+$/, '')

export const DEFAULT_OIDC_SCOPES = 'openid email profile'
export const DEFAULT_OIDC_LABEL = 'Single sign-on'

/** The environment names an OIDC provider: it decides alone, the panel's is not used. */
export function oidcFromEnv(): boolean {
  return !!(env.get('OIDC_ISSUER')?.trim() || env.get('OIDC_CLIENT_ID')?.trim())
}

/** The environment names a GitHub app: it decides alone. */
export function githubFromEnv(): boolean {
  return !!(env.get('GITHUB_CLIENT_ID')?.trim() || env.get('GITHUB_CLIENT_SECRET'))
}

export function oidcSettings(): OidcSettings | null {
  if (oidcFromEnv()) {
    const issuer = env.get('OIDC_ISSUER')?.trim()
    const clientId = env.get('OIDC_CLIENT_ID')?.trim()
    if (!issuer || !clientId) return null
    return {
      source: 'env',
      issuer: trimSlash(issuer),
      clientId,
      clientSecret: env.get('OIDC_CLIENT_SECRET') ?? '',
      scopes: env.get('OIDC_SCOPES')?.trim() || DEFAULT_OIDC_SCOPES,
      label: env.get('OIDC_BUTTON_LABEL')?.trim() || DEFAULT_OIDC_LABEL,
      linkByEmail: env.get('OIDC_LINK_BY_EMAIL') === true,
    }
  }
  const panel = panelSso().oidc
  if (!panel?.enabled || !panel.issuer || !panel.clientId) return null
  return {
    source: 'panel',
    issuer: trimSlash(panel.issuer),
    clientId: panel.clientId,
    clientSecret: panel.clientSecret ?? '',
    scopes: panel.scopes || DEFAULT_OIDC_SCOPES,
    label: panel.label || DEFAULT_OIDC_LABEL,
    linkByEmail: panel.linkByEmail === true,
  }
}

export function githubSettings(): GithubSettings | null {
  let source: GithubSettings['source']
  let clientId: string | undefined
  let clientSecret: string | null | undefined
  if (githubFromEnv()) {
    source = 'env'
    clientId = env.get('GITHUB_CLIENT_ID')?.trim()
    clientSecret = env.get('GITHUB_CLIENT_SECRET')
  } else {
    const panel = panelSso().github
    if (!panel?.enabled) return null
    source = 'panel'
    clientId = panel.clientId
    clientSecret = panel.clientSecret
  }
  if (!clientId || !clientSecret) return null
  return {
    source,
    clientId,
    clientSecret,
    oauthBase: trimSlash(env.get('GITHUB_OAUTH_BASE_URL')?.trim() || 'https://github.com'),
    apiBase: trimSlash(env.get('GITHUB_API_BASE_URL')?.trim() || 'https://api.github.com'),
    label: 'GitHub',
  }
}

/** The providers that are on, with the label of their button (the login page, the Security page). */
export function enabledSsoProviders(): Array<{ id: SsoProviderId; label: string }> {
  const list: Array<{ id: SsoProviderId; label: string }> = []
  const oidc = oidcSettings()
  if (oidc) list.push({ id: 'oidc', label: oidc.label })
  const github = githubSettings()
  if (github) list.push({ id: 'github', label: github.label })
  return list
}

export function isSsoProvider(value: unknown): value is SsoProviderId {
  return typeof value === 'string' && (SSO_PROVIDERS as readonly string[]).includes(value)
}

/**
 * Origins the pages' CSP `form-action` adds for single sign-on: the Security
 * page's Link forms POST here and are answered with a redirect to the
 * provider, and Chromium applies form-action to that redirect too. The OIDC
 * issuer's origin and its authorization endpoint's once discovered
 * (oidc_provider.ts), GitHub's OAuth origin. Empty when SSO is off.
 */
export function ssoFormSources(authorizationOrigin: (issuer: string) => string | null): string {
  const sources = new Set<string>()
  const add = (url: string | null | undefined) => {
    try {
      if (url) sources.add(new URL(url).origin)
    } catch {
      // A malformed setting fails the sign-in itself, not every page.
    }
  }
  const oidc = oidcSettings()
  if (oidc) {
    add(oidc.issuer)
    add(authorizationOrigin(oidc.issuer))
  }
  add(githubSettings()?.oauthBase)
  return [...sources].join(' ')
}
