import { createHash } from 'node:crypto'
import { SsoError } from '#services/sso/sso_error'
import { asObject, ssoJson } from '#services/sso/sso_http'
import { providerAddress, type FlowSecrets, type ProviderIdentity, type SsoProvider } from '#services/sso/sso_provider'
import type { GithubSettings } from '#services/sso/sso_settings'

/**
 * GitHub OAuth (an OAuth App): authorize, the code traded for an access token
 * (with PKCE), then `/user` for the stable numeric id and `/user/emails` for
 * the primary address, used only when GitHub verified it.
 */
export class GithubProvider implements SsoProvider {
  constructor(private settings: GithubSettings) {}

  async authorizeUrl(flow: FlowSecrets) {
    const url = new URL(`${this.settings.oauthBase}/login/oauth/authorize`)
    url.searchParams.set('client_id', this.settings.clientId)
    url.searchParams.set('redirect_uri', flow.redirectUri)
    url.searchParams.set('scope', 'read:user user:email')
    url.searchParams.set('state', flow.state)
    url.searchParams.set('code_challenge', createHash('sha256').update(flow.verifier).digest('base64url'))
    url.searchParams.set('code_challenge_method', 'S256')
    url.searchParams.set('allow_signup', 'false')
    return url.toString()
  }

  async complete(code: string, flow: FlowSecrets): Promise<ProviderIdentity> {
    const { oauthBase, apiBase, clientId, clientSecret } = this.settings
    const token = await ssoJson(`${oauthBase}/login/oauth/access_token`, {
      method: 'POST',
      form: { client_id: clientId, client_secret: clientSecret, code, redirect_uri: flow.redirectUri, code_verifier: flow.verifier },
    })
    // GitHub answers a refused code with 200 and {"error": "bad_verification_code"}.
    const tokenAnswer = asObject(token.json)
    const accessToken = tokenAnswer?.access_token
    if (token.status !== 200 || typeof accessToken !== 'string' || !accessToken) {
      throw new SsoError('provider', `GitHub token: HTTP ${token.status} ${String(tokenAnswer?.error ?? '')} ${String(tokenAnswer?.error_description ?? '')}`.trim())
    }
    const headers = { 'authorization': `Bearer ${accessToken}`, 'accept': 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' }
    const user = await ssoJson(`${apiBase}/user`, { headers })
    const profile = asObject(user.json)
    const id = profile?.id
    if (user.status !== 200 || !(typeof id === 'number' && Number.isSafeInteger(id) && id > 0)) {
      throw new SsoError('provider', `GitHub /user: HTTP ${user.status}, no numeric id`)
    }
    const emails = await ssoJson(`${apiBase}/user/emails`, { headers })
    if (emails.status !== 200 || !Array.isArray(emails.json)) throw new SsoError('provider', `GitHub /user/emails: HTTP ${emails.status}`)
    const primary = emails.json.map(asObject).find((e) => e?.primary === true && typeof e.email === 'string')
    const address = providerAddress(primary?.email)
    const verified = primary?.verified === true
    return {
      provider: 'github',
      // One github.com: its numeric ids are global
      issuer: '',
      subject: String(id),
      email: address && verified ? address : null,
      unverifiedEmail: address && !verified ? address : null,
    }
  }
}
