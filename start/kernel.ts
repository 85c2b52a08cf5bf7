/*
| HTTP kernel. Nothing runs globally on every request except the error
| handler: the API hot path gets only API-key auth. Session, shield, auth and
| the body parser are named middleware for the admin panel and portal.
*/
import router from '@adonisjs/core/services/router'
import server from '@adonisjs/core/services/server'

server.errorHandler(() => import('#exceptions/handler'))

server.use([])

router.use([])

export const middleware = router.named({
  apiKey: () => import('#middleware/api_key_middleware'),
  bodyparser: () => import('@adonisjs/core/bodyparser_middleware'),
  session: () => import('@adonisjs/session/session_middleware'),
  shield: () => import('@adonisjs/shield/shield_middleware'),
  initAuth: () => import('@adonisjs/auth/initialize_auth_middleware'),
  auth: () => import('#middleware/auth_middleware'),
  /** Page language (cookie, Accept-Language); pages only */
  locale: () => import('#middleware/detect_user_locale_middleware'),
})
