import type { HttpContext } from '@adonisjs/core/http'
import { removeModelFallbacks, setModelFallbacks } from '#actions/set_model_fallbacks'
import { setFallbacksValidator } from '#validators/admin'
import { listField, panelActor } from '#controllers/admin/panel'

/** The model fallbacks section of the Channels page. */
export default class ModelFallbacksController {
  /** Sets (or replaces) a model's fallbacks. */
  async store(ctx: HttpContext) {
    const input = await setFallbacksValidator.validate({
      model: ctx.request.input('model') ?? '',
      fallbacks: listField(ctx.request.input('fallbacks')),
    })
    const set = await setModelFallbacks(input, panelActor(ctx))
    ctx.session.flash('success', `Fallbacks of ${set.model}: ${set.fallbacks.join(' → ')}.`)
    return ctx.response.redirect('/admin/channels#fallbacks')
  }

  /** Removes a model's fallbacks. */
  async destroy(ctx: HttpContext) {
    const model = String(ctx.request.input('model') ?? '')
    await removeModelFallbacks(model, panelActor(ctx))
    ctx.session.flash('success', `Fallbacks of ${model} removed.`)
    return ctx.response.redirect('/admin/channels#fallbacks')
  }
}
