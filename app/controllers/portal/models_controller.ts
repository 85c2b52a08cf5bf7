import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { modelCatalogue } from '#services/model_catalogue'
import { formatMultiplier } from '#gateway/metering/pricing'

export default class ModelsController {
  /** GET /dashboard/models: the models the user's plan allows, with provider, prices and context notes. */
  async index({ view, auth }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    const gateway = await app.container.make('gateway')
    const plan = user.planId ? gateway.catalog.plans.get(user.planId) : null
    return view.render('pages/portal/models', {
      models: modelCatalogue(gateway, plan ?? null, plan?.allowedModels ?? ['*'], plan ?? null),
      planName: plan?.name ?? null,
      /** "0.8" when the plan's prices differ from the list prices, else null */
      multiplier: plan?.priceRatio ? formatMultiplier(plan.priceRatio) : null,
    })
  }
}
