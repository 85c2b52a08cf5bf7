import type { HttpContext } from '@adonisjs/core/http'
import RedemptionCode from '#models/redemption_code'
import { createRedemptionCodes } from '#actions/create_redemption_codes'
import { disableRedemptionCodes } from '#actions/disable_redemption_code'
import { createRedemptionCodesValidator } from '#validators/admin'
import { apiActor, codeJson, filterId, keysetPage, managed, money, numberAsText } from '#services/management_api'


export default class ManagementRedemptionCodesController {
  /** GET /api/admin/redemption-codes[?batch=name][&before=id]: the codes' hints and states, never the codes. */
  async index({ request }: HttpContext) {
    const batch = String(request.input('batch', '') ?? '').trim()
    const before = filterId(request.input('before'), 'before')
    return keysetPage((limit) => {
      const query = RedemptionCode.query().orderBy('id', 'desc').limit(limit)
      if (batch) query.where('batch', batch)
      if (before) query.where('id', '<', before)
      return query
    }, codeJson)
  }

  /** POST /api/admin/redemption-codes: {batch, per_code, count?, expires_in_days?}; the codes are in this answer only. */
  async store(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const input = await createRedemptionCodesValidator.validate({
        batch: body.batch,
        perCode: body.per_code === null ? undefined : numberAsText(body.per_code),
        count: body.count ?? 1,
        expiresInDays: body.expires_in_days,
      })
      const made = await createRedemptionCodes(
        { batch: input.batch, amount: input.perCode, count: input.count, expiresInDays: input.expiresInDays },
        apiActor(ctx)
      )
      ctx.response.status(201)
      return {
        object: 'redemption_batch',
        batch: made.batch,
        per_code: money(input.perCode),
        expires_at: made.expiresAt?.toISO() ?? null,
        codes: made.codes.map((c) => ({ id: c.id, code: c.code, hint: c.hint })),
      }
    })
  }

  /** POST /api/admin/redemption-codes/disable: {id} or {batch}: disables unused codes. */
  async disable(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const target = body.id !== undefined ? { id: filterId(body.id, 'id') ?? 0 } : { batch: String(body.batch ?? '') }
      const disabled = await disableRedemptionCodes(target, apiActor(ctx))
      return { object: 'redemption_disable', disabled }
    })
  }
}
