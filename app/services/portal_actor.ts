import type { HttpContext } from '@adonisjs/core/http'
import type { Actor } from '#actions/audit'

/** The signed-in user acting on their own account (audit log: source "portal"). */
export function portalActor(ctx: HttpContext): Actor {
  const user = ctx.auth.use('web').getUserOrFail()
  return { id: user.id, label: user.email, source: 'portal', ip: ctx.request.ip() }
}
