import type { HttpContext } from '@adonisjs/core/http'
import { registerUser, RegistrationClosedError } from '#actions/register_user'
import { PortalInputError } from '#actions/portal_input_error'
import { registerValidator } from '#validators/portal'
import { registrationOpen } from '#services/app_settings'
import { registrationAttempt } from '#services/form_throttle'
import { flashInputError } from '#services/form_errors'

export default class RegistrationController {
  /** GET /register: the sign-up form, or a notice when registration is closed. */
  async create({ view, auth, response }: HttpContext) {
    if (await auth.check()) return response.redirect('/dashboard')
    const open = await registrationOpen()
    if (!open) response.status(403)
    return view.render('pages/auth/register', { open })
  }

  /** POST /register: creates the account on the default plan and signs it in (throttled per IP). */
  async store(ctx: HttpContext) {
    const { request, response, auth, i18n, view } = ctx
    const wait = await registrationAttempt(request.ip())
    if (wait > 0) {
      response.status(429).header('retry-after', String(wait))
      return view.render('pages/auth/register', {
        open: true,
        error: i18n.t('errors.form.throttled', { seconds: wait }),
      })
    }
    const input = await request.validateUsing(registerValidator, {
      messagesProvider: i18n.createMessagesProvider(),
    })
    try {
      const user = await registerUser({ ...input, ip: request.ip() })
      await auth.use('web').login(user)
      return response.redirect('/dashboard')
    } catch (error) {
      if (error instanceof RegistrationClosedError) {
        response.status(403)
        return view.render('pages/auth/register', { open: false })
      }
      if (error instanceof PortalInputError) {
        flashInputError(ctx, error)
        return response.redirect().back()
      }
      throw error
    }
  }
}
