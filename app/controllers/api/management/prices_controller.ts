import type { HttpContext } from '@adonisjs/core/http'
import ModelPrice from '#models/model_price'
import { AdminInputError } from '#actions/admin_input_error'
import { deletePrice, setPrice } from '#actions/set_price'
import { setPriceValidator } from '#validators/admin'
import { apiActor, managed, priceJson } from '#services/management_api'

/** The API's snake_case fields -> the shared price validator's; a price given as null is removed (undefined: unchanged). */
const OPTIONAL: Record<string, string> = {
  per_image: 'perImage',
  per_second: 'perSecond',
  per_character: 'perCharacter',
  per_request: 'perRequest',
  per_web_search: 'perWebSearch',
  per_video_second: 'perVideoSecond',
  cache_read: 'cacheRead',
  cache_write: 'cacheWrite',
  cache_write_1h: 'cacheWrite1h',
  audio_input: 'audioInput',
  audio_output: 'audioOutput',
  image_output: 'imageOutput',
}

/**
 * Model prices over the management API (LiteLLM's model cost map, new-api's
 * ratios): the same action as the Prices page and `price:set`, audited with
 * source `api`. Decimal strings in USD: per 1M tokens, per image, per
 * second of audio, per character, per successful request.
 */
export default class ManagementPricesController {
  /** GET /api/admin/prices: every priced model glob. */
  async index() {
    const prices = await ModelPrice.query().orderBy('model_pattern')
    return { object: 'list', data: prices.map(priceJson) }
  }

  /**
   * POST /api/admin/prices: {model, input, output, per_image?, per_second?,
   * per_character?, per_request?, per_web_search?, per_video_second?, cache_read?, cache_write?, cache_write_1h?, audio_input?,
   * audio_output?, image_output?}: sets the
   * glob's prices (creates or replaces); an optional price left out stays,
   * `null` removes it. The gateways apply it to the next request.
   */
  async store(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const given: Record<string, unknown> = { model: body.model, input: body.input, output: body.output }
      for (const [from, to] of Object.entries(OPTIONAL)) if (body[from] !== undefined && body[from] !== null) given[to] = body[from]
      // Numbers are taken as written: 0.15 and "0.15" alike.
      for (const field of Object.keys(given)) if (typeof given[field] === 'number') given[field] = String(given[field])
      const input = await setPriceValidator.validate(given)
      const cleared = Object.fromEntries(Object.entries(OPTIONAL).filter(([from]) => body[from] === null).map(([, to]) => [to, null]))
      const price = await setPrice({ ...input, ...cleared }, apiActor(ctx))
      return priceJson(price)
    })
  }

  /** DELETE /api/admin/prices/:id (or the model glob, URL-encoded): its models become unpriced, or fall to a wider glob. */
  async destroy(ctx: HttpContext) {
    return managed(async () => {
      const ref = String(ctx.params.id)
      const price = /^\d+$/.test(ref) ? await ModelPrice.find(Number(ref)) : await ModelPrice.findBy('model_pattern', ref)
      if (!price) throw AdminInputError.notFound(`No price "${ref}"`)
      const removed = await deletePrice(price.id, apiActor(ctx))
      return { object: 'model_price', model: removed.model, deleted: true }
    })
  }
}
