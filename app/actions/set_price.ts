import db from '@adonisjs/lucid/services/db'
import ModelPrice from '#models/model_price'
import { AdminInputError } from '#actions/admin_input_error'
import { changedFields, cliActor, describeChanges, writeAudit, type Actor } from '#actions/audit'

function priceSnapshot(price: ModelPrice | null) {
  return {
    input: price ? trim(price.inputPerMillion) : null,
    output: price ? trim(price.outputPerMillion) : null,
    perImage: price?.perImage ? trim(price.perImage) : null,
    perSecond: price?.perSecond ? trim(price.perSecond) : null,
    perCharacter: price?.perCharacter ? trim(price.perCharacter) : null,
    perRequest: price?.perRequest ? trim(price.perRequest) : null,
    perWebSearch: price?.perWebSearch ? trim(price.perWebSearch) : null,
    perVideoSecond: price?.perVideoSecond ? trim(price.perVideoSecond) : null,
    cacheRead: price?.cacheReadPerMillion ? trim(price.cacheReadPerMillion) : null,
    cacheWrite: price?.cacheWritePerMillion ? trim(price.cacheWritePerMillion) : null,
    cacheWrite1h: price?.cacheWrite1hPerMillion ? trim(price.cacheWrite1hPerMillion) : null,
    audioInput: price?.audioInputPerMillion ? trim(price.audioInputPerMillion) : null,
    audioOutput: price?.audioOutputPerMillion ? trim(price.audioOutputPerMillion) : null,
    imageOutput: price?.imageOutputPerMillion ? trim(price.imageOutputPerMillion) : null,
  }
}

/** "2.500000" -> "2.5" so the audit log compares values, not formats. */
function trim(value: string | number) {
  const text = String(value)
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text
}

/** Sets (creates or replaces) the USD-per-1M-token prices (and optionally the per-image, per-request, per-second and per-character prices) of a model glob. */
export async function setPrice(
  input: {
    model: string
    input: string
    output: string
    perImage?: string | null
    /** USD per second of audio / per input character; null = none, undefined = unchanged */
    perSecond?: string | null
    perCharacter?: string | null
    /** USD per request that succeeded, on top of the token prices; null = none, undefined = unchanged */
    perRequest?: string | null
    /** USD per server-side web search; null = none, undefined = unchanged */
    perWebSearch?: string | null
    /** USD per second of generated video; null = none, undefined = unchanged */
    perVideoSecond?: string | null
    /** USD per 1M cached prompt tokens read / written; null = the input price, undefined = unchanged */
    cacheRead?: string | null
    cacheWrite?: string | null
    /** USD per 1M prompt tokens written to Anthropic's one-hour cache; null = the cache-write price, undefined = unchanged */
    cacheWrite1h?: string | null
    /** USD per 1M audio input / output tokens (realtime); null = the token prices, undefined = unchanged */
    audioInput?: string | null
    audioOutput?: string | null
    /** USD per 1M image output tokens (Gemini's image models); null = the output price, undefined = unchanged */
    imageOutput?: string | null
  },
  actor: Actor = cliActor()
) {
  return db.transaction(async (trx) => {
    const existing = await ModelPrice.query({ client: trx }).where('model_pattern', input.model).forUpdate().first()
    const before = priceSnapshot(existing)
    const price = existing ?? new ModelPrice()
    price.modelPattern = input.model
    price.inputPerMillion = input.input
    price.outputPerMillion = input.output
    if (input.perImage !== undefined) price.perImage = input.perImage
    if (input.perSecond !== undefined) price.perSecond = input.perSecond
    if (input.perCharacter !== undefined) price.perCharacter = input.perCharacter
    if (input.perRequest !== undefined) price.perRequest = input.perRequest
    if (input.perWebSearch !== undefined) price.perWebSearch = input.perWebSearch
    if (input.perVideoSecond !== undefined) price.perVideoSecond = input.perVideoSecond
    if (input.cacheRead !== undefined) price.cacheReadPerMillion = input.cacheRead
    if (input.cacheWrite !== undefined) price.cacheWritePerMillion = input.cacheWrite
    if (input.cacheWrite1h !== undefined) price.cacheWrite1hPerMillion = input.cacheWrite1h
    if (input.audioInput !== undefined) price.audioInputPerMillion = input.audioInput
    if (input.audioOutput !== undefined) price.audioOutputPerMillion = input.audioOutput
    if (input.imageOutput !== undefined) price.imageOutputPerMillion = input.imageOutput
    price.useTransaction(trx)
    await price.save()
    const after = priceSnapshot(price)
    const changes = describeChanges(before, after)
    if (!existing || changes) {
      await writeAudit(trx, actor, {
        action: existing ? 'price.update' : 'price.create',
        subjectType: 'price',
        subjectId: price.id,
        summary: existing ? `price ${price.modelPattern}: ${changes}` : `price ${price.modelPattern} set: in ${after.input}, out ${after.output} per 1M`,
        ...(existing ? changedFields(before, after) : { after: { model: price.modelPattern, ...after } }),
      })
    }
    return price
  })
}

/** Removes the price of a model glob (its models become unpriced, or fall to a wider glob). */
export async function deletePrice(id: number, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const price = await ModelPrice.query({ client: trx }).where('id', id).forUpdate().first()
    if (!price) throw new AdminInputError(`No price with id ${id}`)
    const before = { model: price.modelPattern, ...priceSnapshot(price) }
    await price.useTransaction(trx).delete()
    await writeAudit(trx, actor, {
      action: 'price.delete',
      subjectType: 'price',
      subjectId: id,
      summary: `price ${before.model} deleted`,
      before,
    })
    return before
  })
}
