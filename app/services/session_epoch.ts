import type { HttpContext } from '@adonisjs/core/http'
import type User from '#models/user'

/**
 * Signing out the other sessions of an account when its password changes
 * (database/migrations/1700000000995_users_session_epoch.ts). A session
 * remembers the account's epoch when it signs in; a password change or reset
 * bumps the account's; a session that remembers an older one is over.
 */
const KEY = 'auth_epoch'

/** After a sign-in (or in the session that changed the password): this session is current. */
export function rememberSessionEpoch(session: HttpContext['session'], user: User) {
  session.put(KEY, user.sessionEpoch)
}

/** Still current? (A session made before epochs existed holds none: epoch 0.) */
export function sessionEpochCurrent(session: HttpContext['session'], user: User): boolean {
  return (Number(session.get(KEY)) || 0) === user.sessionEpoch
}

/** The password changed: every session signed in before this is over. */
export function endOtherSessions(user: User) {
  user.sessionEpoch = (user.sessionEpoch ?? 0) + 1
}
