import type { SsoProviderId } from '#services/sso/sso_settings'

/** What a provider says about who signed in: its stable subject, and the e-mail only if the provider verified it. */
export interface ProviderIdentity {
  provider: SsoProviderId
  /**
   * Who vouched for the subject: the OIDC issuer (a `sub` is unique only
   * within its issuer, so an identity is bound to it), '' for GitHub
   */
  issuer: string
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

/**
 * A provider's address as accounts are matched on it (lower-cased), or null
 * when it is not one (it becomes the account's address on a sign-up). Lower-casing must not turn a character into an ASCII
 * one it was not: the Kelvin sign U+212A lower-cases to "k" and "İ" to "i"
 * plus a dot, so "\u212Aate@corp.com", another mailbox the provider may have
 * verified for someone else, would otherwise sign in as kate@corp.com's account.
 */
export function providerAddress(value: unknown): string | null {
  if (typeof value !== 'string') return null
  const trimmed = value.trim()
  // One @, no spaces or control characters (a CR/LF would reach the headers of the mails it is sent).
  if (trimmed.split('@').length !== 2 || trimmed.length > 254 || /[\s\u0000-\u001f\u007f]/.test(trimmed)) return null
  const lower = trimmed.toLowerCase()
  return asciiCount(lower) === asciiCount(trimmed) ? lower : null
}

const asciiCount = (text: string) => text.replace(/[^\u0000-\u007f]/g, '').length
