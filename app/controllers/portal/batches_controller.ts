import type { HttpContext } from '@adonisjs/core/http'
import { batchPage } from '#services/batch_pages'
import { recordId } from '#services/record_id'

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
}
