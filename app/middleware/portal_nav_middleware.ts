import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { inAnyTeam } from '#actions/teams'
import { inAnyOrganization } from '#services/portal_organizations'

/**
 * The portal's nav items that depend on the account: Teams shows only for a
 * user in a team (a member, or the owner of a key in one), Organizations only
 * for a member of one. Each asked lazily, once,
 * by the layout when it renders (a redirect or a CSV asks nothing). After `auth`.
 */
export default class PortalNavMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    const user = ctx.auth.use('web').getUserOrFail()
    let teams: Promise<boolean> | null = null
    let organizations: Promise<boolean> | null = null
    ctx.view.share({
      portalNav: {
        teams: () => (teams ??= inAnyTeam(user.id)),
        organizations: () => (organizations ??= inAnyOrganization(user.id)),
      },
    })
    return next()
  }
}
