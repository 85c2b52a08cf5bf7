import type { HttpContext } from '@adonisjs/core/http'
import type { PortalInputError } from '#actions/portal_input_error'

/**
 * An action refused the input: the message (in the visitor's language) goes
 * beside its field the way validation errors do, with the old input, except
 * secrets.
 */
export function flashInputError({ session, i18n }: HttpContext, error: PortalInputError) {
  session.flashExcept(['_csrf', 'password', 'password_confirmation', 'current_password'])
  const message = i18n.t(`errors.form.${error.code}`, error.params)
  if (error.field) session.flash('inputErrorsBag', { [error.field]: [message] })
  else session.flash('error', message)
}
