import type { HttpContext } from '@adonisjs/core/http'
import User from '#models/user'
import { loginValidator } from '#validators/session'
import { formatWait } from '#services/format'
import { homeFor, safeNextPath } from '#services/home_path'
import { clearFailedLogins, loginWait, recordFailedLogin } from '#services/login_throttle'

export default class SessionController {
  /** The login form. */
  async create({ view }: HttpContext) {
    return view.render('pages/auth/login')
  }

  /** Logs in with email and password (throttled per email and IP); admins land in /admin, users in /dashboard. */
  async store({ request, response, session, auth, i18n }: HttpContext) {
    const { email, password } = await request.validateUsing(loginValidator, { messagesProvider: i18n.createMessagesProvider() })
    const ip = request.ip()
    const wait = await loginWait(email, ip)
    if (wait > 0) {
      session.flashExcept(['password', '_csrf'])
      session.flash('error', i18n.t('ui.login.throttled', { wait: formatWait(wait, i18n.locale) }))
      return response.redirect().back()
    }
    let user: User
    try {
      user = await User.verifyCredentials(email, password)
    } catch {
      await recordFailedLogin(email, ip)
      session.flashExcept(['password', '_csrf'])
      session.flash('error', i18n.t('ui.login.invalid'))
      return response.redirect().back()
    }
    if (user.disabledAt) {
      session.flashExcept(['password', '_csrf'])
      session.flash('error', i18n.t('ui.login.disabled'))
      return response.redirect().back()
    }
    await clearFailedLogins(email)
    const next = safeNextPath(session.pull('login.next'))
    await auth.use('web').login(user)
    return response.redirect(next && (user.role === 'admin' || !next.startsWith('/admin')) ? next : homeFor(user))
  }

  /** Logs out and returns to the login page. */
  async destroy({ response, session, auth, i18n }: HttpContext) {
    await auth.use('web').logout()
    session.flash('success', i18n.t('ui.login.loggedOut'))
    return response.redirect('/login')
  }
}
