import type { HttpContext } from '@adonisjs/core/http'

export default class DashboardController {
  /** The operator's overview: today and this month, top models/users/channels, 30-day chart, unhealthy channels. */
  async index({ view }: HttpContext) {
    return view.render('admin/dashboard')
  }
}
