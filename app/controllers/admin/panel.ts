import type { HttpContext } from '@adonisjs/core/http'
import { errors } from '@vinejs/vine'
import type { Actor } from '#actions/audit'

/** Helpers the panel's controllers share: who is acting, and form-field parsing. */

/** The signed-in admin as the actor of a change (audit log). */
export function panelActor(ctx: HttpContext): Actor {
  const user = ctx.auth.use('web').user!
  return { id: user.id, label: user.email, source: 'panel', ip: ctx.request.ip() }
}

/** "a, b\nc" -> ["a","b","c"] */
export function listField(value: unknown): string[] {
  if (value === null || value === undefined) return []
  return String(value)
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean)
}

/**
 * "name = value" (or "name: value") lines -> record; a malformed line is a
 * validation error on that field, shown beside it.
 */
export function pairsField(field: string, value: unknown, separator: '=' | ':'): Record<string, string> {
  const record: Record<string, string> = {}
  if (value === null || value === undefined) return record
  for (const [index, raw] of String(value).split('\n').entries()) {
    const line = raw.trim()
    if (!line) continue
    const at = line.indexOf(separator)
    const key = at > 0 ? line.slice(0, at).trim() : ''
    if (!key) {
      throw new errors.E_VALIDATION_ERROR([
        { field, message: `Line ${index + 1} must look like "name ${separator} value"`, rule: 'pairs' },
      ])
    }
    record[key] = line.slice(at + 1).trim()
  }
  return record
}

/** record -> "name = value" lines, for editing */
export function pairsText(record: Record<string, string> | null | undefined, separator: '=' | ':') {
  return Object.entries(record ?? {})
    .map(([k, v]) => `${k} ${separator === '=' ? '=' : ':'} ${v}`)
    .join('\n')
}

/** Form numbers: '' or null -> undefined, so optional limits stay unset. */
export function optionalNumber(value: unknown): number | undefined {
  if (value === null || value === undefined || value === '') return undefined
  return Number(value)
}

/** A checkbox posted with a hidden "0" before it: the last value wins. */
export function checkbox(value: unknown): boolean {
  const last = Array.isArray(value) ? value[value.length - 1] : value
  return last === '1' || last === 'on' || last === true || last === 'true'
}

/** The 404 page of the panel (an id that does not exist). */
export async function notFound({ response, view }: HttpContext) {
  response.status(404)
  return view.render('pages/errors/not_found')
}
