import type { HttpContext } from '@adonisjs/core/http'
import { errors as vineErrors } from '@vinejs/vine'
import db from '@adonisjs/lucid/services/db'
import { batchFiltersValidator } from '#validators/panel'
import { batchPage, findBatch, upstreamDetail, type BatchListFilters } from '#services/batch_pages'
import { BATCH_STATUS_FILTERS } from '#services/batch_statuses'
import { recordId } from '#services/record_id'
import { cancelBatch } from '#actions/cancel_batch'
import { notFound, panelActor } from '#controllers/admin/panel'

const FILTER_NAMES = ['owner', 'status', 'kind'] as const

export default class BatchesController {
  /**
   * Every user's batches (OpenAI's Batch API and Anthropic's Message
   * Batches), newest first, 50 a page (keyset on id); filters: owner (id or
   * e-mail), status (or running / billed), kind. A value the filters refuse
   * is said above the form (422), with what was typed, and nothing listed.
   */
  async index({ request, response, view }: HttpContext) {
    const raw = Object.fromEntries(Object.entries(request.qs()).filter(([, v]) => v !== ''))
    const typed = Object.fromEntries(FILTER_NAMES.map((name) => [name, String([raw[name]].flat()[0] ?? '')]))
    let input: Awaited<ReturnType<typeof batchFiltersValidator.validate>>
    try {
      input = await batchFiltersValidator.validate(raw)
    } catch (error) {
      if (!(error instanceof vineErrors.E_VALIDATION_ERROR)) throw error
      response.status(422)
      const errors = (error.messages as Array<{ message: string }>).map((m) => m.message)
      return view.render('admin/batches/index', { filters: typed, errors, statuses: BATCH_STATUS_FILTERS, batches: null })
    }
    const filters = { owner: input.owner ?? '', status: input.status ?? '', kind: input.kind ?? '' }
    const query: BatchListFilters = { status: input.status, kind: input.kind, before: input.before, withDeleted: true }
    if (input.owner) {
      const owner = await ownerOf(input.owner)
      if (owner === null) {
        const errors = [`No user has the id or e-mail "${input.owner}".`]
        return view.render('admin/batches/index', { filters, errors, statuses: BATCH_STATUS_FILTERS, batches: [] })
      }
      query.userId = owner
    }
    const { batches, next } = await batchPage(query)
    return view.render('admin/batches/index', { filters, errors: [], statuses: BATCH_STATUS_FILTERS, batches, next, before: input.before ?? null })
  }

  /** One batch: its row (owner, key, channel, hold or bill, usage row) and the stored upstream object's main fields. */
  async show(ctx: HttpContext) {
    const found = await findBatch(Number(ctx.params.id))
    if (!found) return notFound(ctx)
    return ctx.view.render('admin/batches/show', { batch: found.summary, upstream: upstreamDetail(found.row.object), upstreamId: found.row.upstream_id, endpoint: found.row.endpoint, lines: found.row.lines })
  }

  /** Cancels a running batch as the API's cancel does (app/actions/cancel_batch.ts), audited. */
  async cancel(ctx: HttpContext) {
    const id = Number(ctx.params.id)
    if (!(await findBatch(id))) return notFound(ctx)
    const { summary, status, billed } = await cancelBatch(id, panelActor(ctx))
    ctx.session.flash(
      'success',
      billed
        ? `Batch ${summary.publicId} cancelled and billed: it is ${status} upstream.`
        : `Cancel asked: batch ${summary.publicId} is ${status} upstream. It is billed for what it answered once it has stopped.`
    )
    return ctx.response.redirect(`/admin/batches/${id}`)
  }
}

/** A user id, or an e-mail (any case), to the user's id; null when nobody has it. */
async function ownerOf(value: string): Promise<number | null> {
  // No e-mail holds a NUL (text refuses it, and Postgres would refuse the query: a 500)
  if (value.includes('\0')) return null
  if (/^\d+$/.test(value)) {
    const id = recordId(value)
    const user = id === null ? null : await db.from('users').where('id', id).select('id').first()
    return user ? Number(user.id) : null
  }
  // The e-mail as stored (its unique index), else in any case (older accounts kept the case they were typed in)
  const user =
    (await db.from('users').where('email', value).select('id').first()) ??
    (await db.from('users').whereRaw('lower(email) = ?', [value.toLowerCase()]).select('id').first())
  return user ? Number(user.id) : null
}
