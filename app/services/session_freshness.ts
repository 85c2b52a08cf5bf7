import type { HttpContext } from '@adonisjs/core/http'

/**
 * When this session's sign-in was proven (the password, a single sign-on,
 * then the second factor if on), kept in the session at sign-in
 * (sign_in.ts). An action that adds a way into the account without asking
 * for the current password (an SSO-only account's first password) wants a
 * recent one: a session left open elsewhere hours ago is not proof enough.
 */
const KEY = 'auth_at'
export const FRESH_SIGN_IN_MS = 10 * 60_000

export function rememberSignInTime(session: HttpContext['session']) {
  session.put(KEY, Date.now())
}

/** Signed in within FRESH_SIGN_IN_MS (a session from before this was kept holds none: not fresh). */
export function signedInRecently(session: HttpContext['session'], now = Date.now()): boolean {
  const at = Number(session.get(KEY))
  return Number.isFinite(at) && at <= now && now - at < FRESH_SIGN_IN_MS
}
