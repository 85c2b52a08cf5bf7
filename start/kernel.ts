/*
| HTTP kernel. Nothing runs globally on every request except the error
| handler: the API hot path gets only API-key auth. Session, shield, auth and
| the body parser are named middleware for the admin panel and portal.
*/
import router from '@adonisjs/core/services/router'
import server from '@adonisjs/core/services/server'
// Flashed form input kept within the session cookie's size (start/session_flash.ts).
import '#start/session_flash'

server.errorHandler(() => import('#exceptions/handler'))

server.use([])

router.use([])

export const middleware = router.named({
  apiKey: () => import('#middleware/api_key_middleware'),
  /** The management API (/api/admin): an admin's API key */
  adminApiKey: () => import('#middleware/admin_api_key_middleware'),
  /** The management API's JSON bodies: bounded and scanned like /v1's */
  managementBody: () => import('#middleware/management_body_middleware'),
  bodyparser: () => import('@adonisjs/core/bodyparser_middleware'),
  session: () => import('@adonisjs/session/session_middleware'),
  shield: () => import('@adonisjs/shield/shield_middleware'),
  /** Pages: Referrer-Policy (shield has no option for it) */
  referrerPolicy: () => import('#middleware/referrer_policy_middleware'),
  initAuth: () => import('@adonisjs/auth/initialize_auth_middleware'),
  /** Pages: a signed-in account (redirects to /login) */
  auth: () => import('#middleware/auth_middleware'),
  /** Portal pages: the nav items that depend on the account (Teams); after `auth` */
  portalNav: () => import('#middleware/portal_nav_middleware'),
  /** Pages: role admin (403 otherwise); after `auth` */
  admin: () => import('#middleware/admin_middleware'),
  /** Pages for signed-out visitors (login): signed-in accounts go home */
  guest: () => import('#middleware/guest_middleware'),
  /** Page language (cookie, Accept-Language); pages only */
  locale: () => import('#middleware/detect_user_locale_middleware'),
})

/**
 * The middleware every HTML page needs, in order: body parser, session,
 * shield (CSRF, Content-Security-Policy with a per-request nonce, frame and
 * sniffing headers), Referrer-Policy, auth initialisation. Route
 * groups of the panel and portal use this; /v1 never does.
 */
export const webStack = () => [
  middleware.bodyparser(),
  middleware.session(),
  middleware.shield(),
  middleware.referrerPolicy(),
  middleware.initAuth(),
]
