import type { HttpContext } from '@adonisjs/core/http'
import { sessionEpochCurrent } from '#services/session_epoch'

/**
 * The signed-in account on a page open to everyone (/docs, /status,
 * /pricing), or null. A disabled account's session is ended here too, as the
 * auth middleware ends it on the portal and panel: it must not keep an
 * administrator's view of /status, or the account's keys on /docs.
 */
export async function signedInUser({ auth, session }: HttpContext) {
  if (!(await auth.check())) return null
  const user = auth.user!
  if (!user.disabledAt && sessionEpochCurrent(session, user)) return user
  await auth.use('web').logout()
  return null
}
