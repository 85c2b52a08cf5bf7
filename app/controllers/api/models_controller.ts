import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { modelAllowed } from '#gateway/access_policy'

export default class ModelsController {
  /** GET /v1/models: the models this key may use, in OpenAI's list shape. */
  async index({ principal, response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    const created = Math.floor(Date.now() / 1000)
    const data = gateway.service
      .router()
      .listedModels()
      .filter(({ id }) => modelAllowed(principal, id))
      .map(({ id, provider }) => ({ id, object: 'model', created, owned_by: provider }))
    return response.json({ object: 'list', data })
  }
}
