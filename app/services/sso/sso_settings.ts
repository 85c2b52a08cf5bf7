import env from '#start/env'

/**
 * Which single sign-on providers are on, from the environment only (no panel
 * setting: the client secret stays out of the database and out of every page,
 * and one place decides). Read per use, never cached: the tests turn providers
 * on and off at run time, and only the login pages and the flow read them.
 */
export type SsoProviderId = 'oidc' | 'github'

export const SSO_PROVIDERS: readonly SsoProviderId[] = ['oidc', 'github']

export interface OidcSettings {
  issuer: string
  clientId: string
  clientSecret: string
  scopes: string
  label: string
  /** An unknown identity whose verified e-mail is an existing account's is linked to it (else refused) */
  linkByEmail: boolean
}

export interface GithubSettings {
  clientId: string
  clientSecret: string
  /** github.com in production; GITHUB_OAUTH_BASE_URL / GITHUB_API_BASE_URL point the tests at a mock */
  oauthBase: string
  apiBase: string
  label: string
}

const trimSlash = (url: string) => url.replace(/\/+$/, '')

export function oidcSettings(): OidcSettings | null {
  const issuer = env.get('OIDC_ISSUER')?.trim()
  const clientId = env.get('OIDC_CLIENT_ID')?.trim()
  if (!issuer || !clientId) return null
  return {
    issuer: trimSlash(issuer),
    clientId,
    clientSecret: env.get('OIDC_CLIENT_SECRET') ?? '',
    scopes: env.get('OIDC_SCOPES')?.trim() || 'openid email profile',
    label: env.get('OIDC_BUTTON_LABEL')?.trim() || 'Single sign-on',
    linkByEmail: env.get('OIDC_LINK_BY_EMAIL') === true,
  }
}

export function githubSettings(): GithubSettings | null {
  const clientId = env.get('GITHUB_CLIENT_ID')?.trim()
  const clientSecret = env.get('GITHUB_CLIENT_SECRET')
  if (!clientId || !clientSecret) return null
  return {
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
