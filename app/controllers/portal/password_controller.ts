import type { HttpContext } from '@adonisjs/core/http'
import { changePassword } from '#actions/change_password'
import { PortalInputError } from '#actions/portal_input_error'
import { changePasswordValidator } from '#validators/portal'
import { passwordChangeAttempt } from '#services/form_throttle'
import { flashInputError } from '#services/form_errors'
import { renderSecurity } from '#controllers/portal/security_controller'
import { rememberSessionEpoch } from '#services/session_epoch'

export default class PasswordController {
  /** GET /dashboard/password: the Security page, whose first form changes the password. */
  async edit(ctx: HttpContext) {
    return renderSecurity(ctx)
  }

  /** POST /dashboard/password: checks the current password, sets the new one (throttled per user). */
  async update(ctx: HttpContext) {
    const { request, response, session, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const wait = await passwordChangeAttempt(user.id)
    if (wait > 0) {
      response.status(429).header('retry-after', String(wait))
      return renderSecurity(ctx, { passwordError: i18n.t('errors.form.throttled', { seconds: wait }) })
    }
    const input = await request.validateUsing(changePasswordValidator, {
      messagesProvider: i18n.createMessagesProvider(),
    })
    try {
      await changePassword(user, input.current_password, input.password)
    } catch (error) {
      if (error instanceof PortalInputError) {
        flashInputError(ctx, error)
        return response.redirect().back()
      }
      throw error
    }
    // This session stays signed in; the account's others are over.
    rememberSessionEpoch(session, user)
    session.flash('success', i18n.t('auth.password.changed'))
    return response.redirect('/dashboard/password')
  }
}
