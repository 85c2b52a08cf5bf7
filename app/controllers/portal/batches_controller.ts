import type { HttpContext } from '@adonisjs/core/http'
import { batchPage } from '#services/batch_pages'
import { recordId } from '#services/record_id'
import { cancelBatch } from '#actions/cancel_batch'
import { AdminInputError } from '#actions/admin_input_error'
import { portalActor } from '#services/portal_actor'

export default class BatchesController {
  /**
   * GET /dashboard/batches: the signed-in user's own batches (every key's,
   * OpenAI's and Anthropic's), newest first, 50 a page (?before=<id>, keyset
   * as the panel's); one the user deleted through the API is gone here too.
   */
  async index({ request, response, view, auth, i18n }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    const cursor = request.input('before')
    const before = recordId(cursor)
    if (cursor !== undefined && cursor !== null && cursor !== '' && before === null) {
      response.status(422)
      return view.render('pages/portal/batches', { batches: null, error: i18n.t('portal.batches.bad_page') })
    }
    const { batches, next } = await batchPage({ userId: user.id, before: before ?? undefined, withDeleted: false })
    return view.render('pages/portal/batches', { batches, next, before, error: null })
  }

  /**
   * POST /dashboard/batches/:id/cancel: the user's own running batch, through
   * the same action as the panel's Cancel (BatchService.cancel, audited as the
   * user). Another user's batch is not there (404); one that cannot be
   * cancelled says why.
   */
  async cancel(ctx: HttpContext) {
    const { params, response, auth, i18n, session } = ctx
    const user = auth.use('web').getUserOrFail()
    try {
      const { summary } = await cancelBatch(Number(params.id), portalActor(ctx), user.id)
      session.flash('success', i18n.t('portal.batches.cancelled', { id: summary.publicId }))
    } catch (error) {
      if (!(error instanceof AdminInputError)) throw error
      if (error.kind === 'not_found') return response.notFound(i18n.t('portal.batches.not_found'))
      session.flash('error', i18n.t('portal.batches.cancel_failed', { reason: error.message }))
    }
    return response.redirect('/dashboard/batches')
  }
}
