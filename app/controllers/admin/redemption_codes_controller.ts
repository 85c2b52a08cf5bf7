import { randomUUID } from 'node:crypto'
import type { HttpContext } from '@adonisjs/core/http'
import { recordId } from '#services/record_id'
import db from '@adonisjs/lucid/services/db'
import RedemptionCode from '#models/redemption_code'
import { createRedemptionCodes } from '#actions/create_redemption_codes'
import { disableRedemptionCodes } from '#actions/disable_redemption_code'
import { createRedemptionCodesValidator } from '#validators/admin'
import { hashRedemptionCode, normaliseRedemptionCode } from '#services/redemption_code_token'
import { optionalNumber, panelActor } from '#controllers/admin/panel'

const PAGE = 50
/**
 * The new-batch forms rendered and not used yet (one token each, a few tabs'
 * worth): the codes page answers the POST itself, since its clear codes go
 * in no cookie, so a refresh there sends the POST again; its token is spent
 * by then, and no second batch is made.
 */
const FORM_TOKENS = 'redemptionForms'
const OPEN_FORMS = 5
const STATUSES = ['unused', 'redeemed', 'expired', 'disabled'] as const

/** One batch's totals, for the table at the top of the page. */
interface BatchSummary {
  batch: string
  codes: number
  redeemed: number
  unused: number
  redeemedValue: string
  unusedValue: string
  createdAt: Date
}

export default class RedemptionCodesController {
  /**
   * Batches (codes, redeemed, unused and their value) and the codes, newest
   * first; filter by batch, status, or a whole code a customer quotes.
   */
  async index({ request, view }: HttpContext) {
    const q = String(request.input('q', '') ?? '').trim()
    const status = STATUSES.find((s) => s === request.input('status')) ?? ''
    const before = recordId(request.input('before'))
    const query = RedemptionCode.query().preload('redeemer').orderBy('id', 'desc').limit(PAGE + 1)
    if (q) {
      const normal = normaliseRedemptionCode(q)
      query.where((w) => {
        w.where('batch', q)
        if (normal) w.orWhere('code_hash', hashRedemptionCode(normal))
      })
    }
    if (status === 'redeemed') query.whereNotNull('redeemed_at')
    if (status === 'disabled') query.whereNull('redeemed_at').whereNotNull('disabled_at')
    if (status === 'expired') query.whereNull('redeemed_at').whereNull('disabled_at').where('expires_at', '<=', new Date())
    if (status === 'unused') {
      query.whereNull('redeemed_at').whereNull('disabled_at').where((w) => w.whereNull('expires_at').orWhere('expires_at', '>', new Date()))
    }
    if (before) query.where('id', '<', before)
    const [rows, batches] = await Promise.all([query, batchSummaries()])
    const codes = rows.slice(0, PAGE)
    const next = rows.length > PAGE ? codes[codes.length - 1].id : null
    return view.render('admin/redemptions/index', { codes, batches, q, status, before, next })
  }

  /** The new-batch form, with the token that makes one batch. */
  async create({ view, session }: HttpContext) {
    const formToken = randomUUID()
    session.put(FORM_TOKENS, [...openForms(session), formToken].slice(-OPEN_FORMS))
    return view.render('admin/redemptions/create', { formToken })
  }

  /**
   * Makes a batch; the clear codes are rendered in this response only (never stored, never in a cookie).
   * Once per form: the same form sent again (a refresh of the codes page) makes nothing and says so.
   */
  async store(ctx: HttpContext) {
    const { request, view, response, session } = ctx
    const formToken = String(request.input('formToken') ?? '')
    if (!openForms(session).includes(formToken)) {
      session.flash('error', 'Nothing made: this form had made its batch already (a refresh of the codes page sends it again). Its codes were shown once; for more, open New batch.')
      return response.redirect('/admin/redemptions')
    }
    const input = await createRedemptionCodesValidator.validate({
      batch: request.input('batch') ?? '',
      perCode: request.input('perCode') ?? '',
      count: optionalNumber(request.input('count')),
      expiresInDays: optionalNumber(request.input('expiresInDays')),
    })
    const made = await createRedemptionCodes(
      { batch: input.batch, amount: input.perCode, count: input.count, expiresInDays: input.expiresInDays },
      panelActor(ctx)
    )
    session.put(FORM_TOKENS, openForms(session).filter((token) => token !== formToken))
    // A page holding secrets: not to be kept by the browser or a proxy.
    response.header('cache-control', 'no-store')
    return view.render('admin/redemptions/created', { made, perCode: input.perCode })
  }

  /** Disables one unused code. */
  async disable(ctx: HttpContext) {
    const count = await disableRedemptionCodes({ id: Number(ctx.params.id) }, panelActor(ctx))
    ctx.session.flash('success', count ? 'Code disabled: it can no longer be redeemed.' : 'Nothing to disable: the code was already redeemed or disabled.')
    return ctx.response.redirect().back()
  }

  /** Disables every unused code of a batch. */
  async disableBatch(ctx: HttpContext) {
    const batch = String(ctx.request.input('batch', '') ?? '').trim()
    const count = batch ? await disableRedemptionCodes({ batch }, panelActor(ctx)) : 0
    ctx.session.flash('success', `${count} unused code${count === 1 ? '' : 's'} of batch "${batch}" disabled.`)
    return ctx.response.redirect().back()
  }
}

/** The 20 newest batches with their counts and values (one grouped read). */
async function batchSummaries(): Promise<BatchSummary[]> {
  const result = await db.rawQuery(`
    SELECT batch,
           count(*)::int AS codes,
           count(redeemed_at)::int AS redeemed,
           count(*) FILTER (WHERE redeemed_at IS NULL AND disabled_at IS NULL AND (expires_at IS NULL OR expires_at > now()))::int AS unused,
           coalesce(sum(amount) FILTER (WHERE redeemed_at IS NOT NULL), 0)::text AS redeemed_value,
           coalesce(sum(amount) FILTER (WHERE redeemed_at IS NULL AND disabled_at IS NULL AND (expires_at IS NULL OR expires_at > now())), 0)::text AS unused_value,
           min(created_at) AS created_at
      FROM redemption_codes
     GROUP BY batch
     ORDER BY min(created_at) DESC, batch
     LIMIT 20`)
  return result.rows.map((r: Record<string, any>) => ({
    batch: r.batch,
    codes: r.codes,
    redeemed: r.redeemed,
    unused: r.unused,
    redeemedValue: r.redeemed_value,
    unusedValue: r.unused_value,
    createdAt: r.created_at,
  }))
}

/** The tokens of the new-batch forms this session may still send. */
function openForms(session: HttpContext['session']): string[] {
  const tokens = session.get(FORM_TOKENS, [])
  return Array.isArray(tokens) ? tokens.map(String) : []
}
