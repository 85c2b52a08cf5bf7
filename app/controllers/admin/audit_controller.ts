import type { HttpContext } from '@adonisjs/core/http'
import { containsPattern, escapeLike, recordId } from '#services/record_id'
import db from '@adonisjs/lucid/services/db'

const PAGE = 50

export default class AuditController {
  /** Every admin change (panel and ace), newest first; filter by actor, action, subject. */
  async index({ request, view }: HttpContext) {
    const actor = String(request.input('actor', '') ?? '').trim()
    const action = String(request.input('action', '') ?? '').trim()
    const subject = String(request.input('subject', '') ?? '').trim()
    const before = recordId(request.input('before'))
    const query = db.from('audit_log').orderBy('id', 'desc').limit(PAGE + 1)
    if (actor) query.whereILike('actor', containsPattern(actor))
    if (action) query.where((w) => w.where('action', action).orWhere('action', 'like', `${escapeLike(action)}.%`))
    if (subject) {
      const [type, id] = subject.split(':')
      query.where('subject_type', type)
      // Digits that are no id (too many of them) name no row.
      if (/^\d+$/.test(id ?? '')) query.where('subject_id', recordId(id) ?? 0)
    }
    if (before) query.where('id', '<', before)
    const rows = await query
    const entries = rows.slice(0, PAGE)
    const next = rows.length > PAGE ? entries[entries.length - 1].id : null
    return view.render('admin/audit/index', { entries, actor, action, subject, before, next })
  }
}
