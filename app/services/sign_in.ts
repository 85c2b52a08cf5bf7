import type { HttpContext } from '@adonisjs/core/http'
import type User from '#models/user'
import { homeFor, safeNextPath } from '#services/home_path'
import { rememberSessionEpoch } from '#services/session_epoch'
import { rememberSignInTime } from '#services/session_freshness'

/**
 * The end of a sign-in, whichever way it was proven (the password form, a
 * single sign-on): with two-factor sign-in on, only the second step
 * (/login/two-factor) opens, for 5 minutes; otherwise the session starts.
 */

/** A sign-in whose first factor was right, waiting for its second (in the encrypted session cookie). */
export const PENDING = 'login.twoFactor'
const PENDING_MS = 5 * 60_000

export interface PendingLogin {
  userId: number
  email: string
  until: number
}

export function pendingLogin(session: HttpContext['session']): PendingLogin | null {
  const pending = session.get(PENDING) as PendingLogin | undefined
  if (!pending || typeof pending.userId !== 'number' || !(pending.until > Date.now())) return null
  return pending
}

/** The first factor was right: ask for the second, or start the session. */
export async function signInOrAskSecondFactor(ctx: HttpContext, user: User) {
  if (user.hasTwoFactor) {
    ctx.session.put(PENDING, { userId: user.id, email: user.email, until: Date.now() + PENDING_MS } satisfies PendingLogin)
    return ctx.response.redirect('/login/two-factor')
  }
  ctx.session.forget(PENDING)
  return startSession(ctx, user)
}

/** Starts the session; back to the page that asked for a login, else the account's home. */
export async function startSession({ response, session, auth }: HttpContext, user: User) {
  const next = safeNextPath(session.pull('login.next'))
  await auth.use('web').login(user)
  rememberSessionEpoch(session, user)
  rememberSignInTime(session)
  return response.redirect(next && (user.role === 'admin' || !next.startsWith('/admin')) ? next : homeFor(user))
}
