/**
 * Why a single sign-on did not go through. `reason` picks the message the
 * user reads on /login (ui.sso.errors.<reason>); `detail` is for the log only
 * (what the provider said, which check failed), never shown.
 */
export type SsoFailure =
  | 'not_configured'
  | 'expired'
  | 'denied'
  | 'provider'
  | 'invalid_token'
  | 'unverified_email'
  | 'not_linked'
  | 'admin_not_linked'
  | 'registration_closed'
  | 'disabled'
  | 'taken'

export class SsoError extends Error {
  constructor(
    readonly reason: SsoFailure,
    readonly detail: string
  ) {
    super(`${reason}: ${detail}`)
    this.name = 'SsoError'
  }
}
