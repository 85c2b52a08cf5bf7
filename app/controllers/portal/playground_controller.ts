import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { modelCatalogue } from '#services/model_catalogue'

export default class PlaygroundController {
  /**
   * GET /dashboard/playground: a chat to try a model in the browser. The page
   * only lists the chat models the user's plan allows (the in-memory
   * catalogue, no database read); the calls themselves go from the browser to
   * POST /v1/chat/completions with a key the user pastes (keys are stored
   * hashed: the page has none to use), kept in the tab's sessionStorage and
   * never sent to this route (resources/assets/playground.js).
   */
  async show({ view, auth }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    const gateway = await app.container.make('gateway')
    const plan = user.planId ? gateway.catalog.plans.get(user.planId) : null
    const models = modelCatalogue(gateway, plan ?? null, plan?.allowedModels ?? ['*'], plan ?? null)
      .filter((model) => model.kind === 'chat')
      .map((model) => model.id)
    return view.render('pages/portal/playground', { models })
  }
}
