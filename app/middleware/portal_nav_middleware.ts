import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { inAnyTeam } from '#actions/teams'

/**
 * The portal's nav items that depend on the account: Teams shows only for a
 * user in a team (a member, or the owner of a key in one). Asked lazily, once,
 * by the layout when it renders (a redirect or a CSV asks nothing). After `auth`.
 */
export default class PortalNavMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    const user = ctx.auth.use('web').getUserOrFail()
    let teams: Promise<boolean> | null = null
    ctx.view.share({ portalNav: { teams: () => (teams ??= inAnyTeam(user.id)) } })
    return next()
  }
}
