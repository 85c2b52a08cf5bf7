import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { signedInUser } from '#services/signed_in_user'
import { defaultPlan } from '#actions/set_default_plan'
import { modelCatalogue } from '#services/model_catalogue'
import { registrationOpen } from '#services/app_settings'
import { formatMultiplier } from '#gateway/metering/pricing'

export default class PricingController {
  /**
   * GET /pricing: every model the gateway serves and what it costs, for
   * anyone (new-api's public model list, OpenRouter's models page): the
   * signed-in user's plan, else the plan new accounts get (its models and
   * its multiplier), else the list prices. From the in-memory catalogue.
   */
  async show(ctx: HttpContext) {
    const { view, request } = ctx
    const gateway = await app.container.make('gateway')
    const user = await signedInUser(ctx)
    if (user) view.share({ currentUser: user })
    // The plan registration gives (defaultPlan: the one marked default, else one named "default").
    const planId = user ? user.planId : ((await defaultPlan())?.id ?? null)
    const plan = planId ? (gateway.catalog.plans.get(Number(planId)) ?? null) : null
    const q = String(request.input('q', '') ?? '').trim().toLowerCase().slice(0, 100)
    const all = modelCatalogue(gateway, plan, plan?.allowedModels ?? null, plan)
    const models = q ? all.filter((m) => m.id.toLowerCase().includes(q) || m.provider.toLowerCase().includes(q)) : all
    return view.render('pages/pricing/show', {
      models,
      total: all.length,
      q,
      planName: plan?.name ?? null,
      yours: user !== null,
      multiplier: plan?.priceRatio ? formatMultiplier(plan.priceRatio) : null,
      canRegister: !user && (await registrationOpen()),
    })
  }
}
