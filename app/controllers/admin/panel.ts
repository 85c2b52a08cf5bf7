import { errors as vineErrors } from '@vinejs/vine'
import { AdminInputError } from '#actions/admin_input_error'
import type { HttpContext } from '@adonisjs/core/http'
import type { Actor } from '#actions/audit'
import { useRequestLocale } from '#middleware/detect_user_locale_middleware'
import { signedWholeNumber, wholeNumber } from '#gateway/http/whole_number'

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

/** record -> "name = value" lines, for editing */
export function pairsText(record: Record<string, string> | null | undefined, separator: '=' | ':') {
  return Object.entries(record ?? {})
    .map(([k, v]) => `${k} ${separator === '=' ? '=' : ':'} ${v}`)
    .join('\n')
}

/**
 * Form numbers: '' or null -> undefined, so optional limits stay unset; else
 * digits only (wholeNumber: `0x10`, `1e3` are NaN, which the validator refuses
 * naming the field). A negative channel priority keeps its minus sign.
 */
export function optionalNumber(value: unknown): number | undefined {
  if (value === null || value === undefined || value === '') return undefined
  return signedWholeNumber(value)
}

/** Checked ids of a checkbox list (the channel form's plans), each digits only (NaN otherwise: refused by the validator). */
export function idList(value: unknown): number[] {
  if (value === null || value === undefined) return []
  return [value].flat().map(wholeNumber)
}

/**
 * A checkbox posted with a hidden "0" before it (form/field.edge): the last
 * value wins. The field uses it too, to tick the box again from old input.
 */
export function checkbox(value: unknown): boolean {
  const last = Array.isArray(value) ? value[value.length - 1] : value
  return last === '1' || last === 'on' || last === true || last === 'true'
}

/** The 404 page of the panel (an id that does not exist), in the visitor's language like every error page. */
export async function notFound(ctx: HttpContext) {
  ctx.response.status(404)
  useRequestLocale(ctx)
  return ctx.view.render('pages/errors/not_found')
}

/**
 * Runs an action for a form whose fields are named otherwise than the
 * action's validator names them (budget_id / budgetId): a refusal comes back
 * as an AdminInputError naming the form's field, so the message is shown
 * beside it and above the form (the validator's own name matched no field:
 * "check the errors below" with none below). `fields`: validator name -> form name.
 */
export async function withFormFields<T>(fields: Record<string, string>, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    if (!(error instanceof vineErrors.E_VALIDATION_ERROR)) throw error
    const messages = error.messages as Array<{ field: string; message: string }>
    throw new AdminInputError(messages.map((m) => m.message).join(' '), fields[messages[0]?.field] ?? messages[0]?.field)
  }
}
