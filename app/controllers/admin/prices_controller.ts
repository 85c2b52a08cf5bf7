import type { HttpContext } from '@adonisjs/core/http'
import ModelPrice from '#models/model_price'
import { deletePrice, setPrice } from '#actions/set_price'
import { setPriceValidator } from '#validators/admin'
import { panelActor } from '#controllers/admin/panel'

export default class PricesController {
  /** Prices per model glob (most specific first wins), with the set form; ?edit=<id> fills it. */
  async index({ request, view }: HttpContext) {
    const prices = await ModelPrice.query().orderBy('model_pattern')
    const editing = prices.find((p) => p.id === Number(request.input('edit'))) ?? null
    return view.render('admin/prices/index', { prices, editing })
  }

  /** Sets (creates or replaces) a glob's prices. */
  async store(ctx: HttpContext) {
    const { request } = ctx
    const input = await setPriceValidator.validate({
      model: request.input('model') ?? '',
      input: request.input('input') ?? '',
      output: request.input('output') ?? '',
      perImage: request.input('perImage') ?? undefined,
      perSecond: request.input('perSecond') ?? undefined,
      perCharacter: request.input('perCharacter') ?? undefined,
      perRequest: request.input('perRequest') ?? undefined,
      perWebSearch: request.input('perWebSearch') ?? undefined,
      perVideoSecond: request.input('perVideoSecond') ?? undefined,
      cacheRead: request.input('cacheRead') ?? undefined,
      cacheWrite: request.input('cacheWrite') ?? undefined,
      cacheWrite1h: request.input('cacheWrite1h') ?? undefined,
      audioInput: request.input('audioInput') ?? undefined,
      audioOutput: request.input('audioOutput') ?? undefined,
      imageOutput: request.input('imageOutput') ?? undefined,
    })
    const price = await setPrice(
      {
        ...input,
        perImage: input.perImage ?? null,
        perSecond: input.perSecond ?? null,
        perCharacter: input.perCharacter ?? null,
        perRequest: input.perRequest ?? null,
        perWebSearch: input.perWebSearch ?? null,
        perVideoSecond: input.perVideoSecond ?? null,
        cacheRead: input.cacheRead ?? null,
        cacheWrite: input.cacheWrite ?? null,
        cacheWrite1h: input.cacheWrite1h ?? null,
        audioInput: input.audioInput ?? null,
        audioOutput: input.audioOutput ?? null,
        imageOutput: input.imageOutput ?? null,
      },
      panelActor(ctx)
    )
    ctx.session.flash('success', `Price for ${price.modelPattern} saved.`)
    return ctx.response.redirect('/admin/prices')
  }

  /** Removes a glob's price. */
  async destroy(ctx: HttpContext) {
    const removed = await deletePrice(Number(ctx.params.id), panelActor(ctx))
    ctx.session.flash('success', `Price for ${removed.model} deleted.`)
    return ctx.response.redirect('/admin/prices')
  }
}
