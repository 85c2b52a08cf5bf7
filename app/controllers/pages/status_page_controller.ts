import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { gatewayStatus } from '#services/gateway_status'
import { channelStatuses } from '#services/channel_status'
import { signedInUser } from '#services/signed_in_user'

export default class StatusPageController {
  /**
   * GET /status: version, uptime, database latency and each channel's health
   * from recent requests. Upstream URLs only for administrators; never keys.
   */
  async show(ctx: HttpContext) {
    const { view, response } = ctx
    const gateway = await app.container.make('gateway')
    const user = await signedInUser(ctx)
    const isAdmin = user?.isAdmin ?? false
    if (user) view.share({ currentUser: user })
    const status = await gatewayStatus(gateway)
    const channels = await channelStatuses(gateway, isAdmin)
    const up = status.uptime_seconds
    const uptime = { days: Math.floor(up / 86400), hours: Math.floor((up % 86400) / 3600), minutes: Math.floor((up % 3600) / 60) }
    response.status(status.status === 'ok' ? 200 : 503)
    return view.render('pages/status/show', { status, channels, uptime, isAdmin })
  }
}
