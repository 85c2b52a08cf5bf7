import type { SsoProviderId } from '#services/sso/sso_settings'

/** What a provider says about who signed in: its stable subject, and the e-mail only if the provider verified it. */
export interface ProviderIdentity {
  provider: SsoProviderId
  subject: string
  /** Lower-cased; null when the provider gave none or did not verify it */
  email: string | null
  /** An address the provider gave but did not verify (for the log and the refusal) */
  unverifiedEmail: string | null
}

/** The one-time values of a sign-in in progress (kept in the session between the two legs). */
export interface FlowSecrets {
  state: string
  nonce: string
  /** PKCE code verifier (RFC 7636); the provider gets its S256 challenge */
  verifier: string
  redirectUri: string
}

export interface SsoProvider {
  authorizeUrl(flow: FlowSecrets): Promise<string>
  /** Trades the code for the identity, checking everything the provider signs or says */
  complete(code: string, flow: FlowSecrets): Promise<ProviderIdentity>
}

/** `true`, or the string "true" some providers (Cognito) send */
export function isTrue(value: unknown) {
  return value === true || value === 'true'
}
