/*
| Pages for the gateway's users: /docs and /status (public), /register, the
| portal under /dashboard (any signed-in account, own data only), seed 004's
| /console paths as redirects, and the language picker. Session, shield and
| auth run on these groups only, never on /v1.
*/
import router from '@adonisjs/core/services/router'
import { middleware, webStack } from '#start/kernel'
import { idMatcher } from '#services/record_id'
import { REQUEST_ID_PATTERN } from '#gateway/metering/request_id'

const DocsController = () => import('#controllers/pages/docs_controller')
const StatusPageController = () => import('#controllers/pages/status_page_controller')
const PricingController = () => import('#controllers/pages/pricing_controller')
const LocaleController = () => import('#controllers/pages/locale_controller')
const RegistrationController = () => import('#controllers/portal/registration_controller')
const PasswordResetController = () => import('#controllers/portal/password_reset_controller')
const EmailVerificationController = () => import('#controllers/portal/email_verification_controller')
const OverviewController = () => import('#controllers/portal/overview_controller')
const ApiKeysController = () => import('#controllers/portal/api_keys_controller')
const BillingController = () => import('#controllers/portal/billing_controller')
const UsageLogsController = () => import('#controllers/portal/usage_logs_controller')
const PortalModelsController = () => import('#controllers/portal/models_controller')
const PlaygroundController = () => import('#controllers/portal/playground_controller')
const PasswordController = () => import('#controllers/portal/password_controller')
const SecurityController = () => import('#controllers/portal/security_controller')
const RedemptionsController = () => import('#controllers/portal/redemptions_controller')
const CheckoutController = () => import('#controllers/portal/checkout_controller')
const LowBalanceController = () => import('#controllers/portal/low_balance_controller')
const AlertWebhookController = () => import('#controllers/portal/alert_webhook_controller')
const PortalTeamsController = () => import('#controllers/portal/teams_controller')
const PortalBatchesController = () => import('#controllers/portal/batches_controller')
const PortalOrganizationsController = () => import('#controllers/portal/organizations_controller')
const SsoController = () => import('#controllers/sso_controller')
const StripeWebhookController = () => import('#controllers/webhooks/stripe_webhook_controller')

/** The pages' stack (start/kernel.ts: CSP, Referrer-Policy, CSRF...) and the page language. */
const pageStack = () => [...webStack(), middleware.locale()]

router
  .group(() => {
    router.get('/docs', [DocsController, 'show']).as('docs')
    router.get('/status', [StatusPageController, 'show']).as('status.page')
    router.get('/pricing', [PricingController, 'show']).as('pricing')
    router.get('/lang/:locale', [LocaleController, 'update']).as('locale.switch')
    router.get('/register', [RegistrationController, 'create']).as('register')
    router.post('/register', [RegistrationController, 'store']).as('register.store')
    // E-mail (app/services/mail/): forgotten password, sign-up verification; off without an SMTP server.
    router.get('/forgot-password', [PasswordResetController, 'create']).as('password.forgot')
    router.post('/forgot-password', [PasswordResetController, 'store']).as('password.forgot.store')
    router.get('/reset-password/:token', [PasswordResetController, 'edit']).as('password.reset')
    router.post('/reset-password/:token', [PasswordResetController, 'update']).as('password.reset.store')
    router.get('/verify-email', [EmailVerificationController, 'show']).as('verify_email')
    router.post('/verify-email/resend', [EmailVerificationController, 'resend']).as('verify_email.resend')
    router.get('/verify-email/:token', [EmailVerificationController, 'verify']).as('verify_email.verify')
  })
  .use(pageStack())

router
  .group(() => {
    router.get('/', [OverviewController, 'show']).as('overview')
    router.get('/keys', [ApiKeysController, 'index']).as('keys')
    router.post('/keys', [ApiKeysController, 'store']).as('keys.store')
    router.get('/keys/:id/edit', [ApiKeysController, 'edit']).as('keys.edit').where('id', idMatcher)
    router.post('/keys/:id', [ApiKeysController, 'update']).as('keys.update').where('id', idMatcher)
    router.post('/keys/:id/revoke', [ApiKeysController, 'revoke']).as('keys.revoke').where('id', idMatcher)
    router.get('/teams', [PortalTeamsController, 'index']).as('teams')
    router.get('/teams/:id', [PortalTeamsController, 'show']).as('teams.show').where('id', idMatcher)
    router.get('/organizations', [PortalOrganizationsController, 'index']).as('organizations')
    router.get('/organizations/:id', [PortalOrganizationsController, 'show']).as('organizations.show').where('id', idMatcher)
    router.post('/organizations/:id/members', [PortalOrganizationsController, 'addMember']).as('organizations.members.store').where('id', idMatcher)
    router
      .post('/organizations/:id/members/:user/role', [PortalOrganizationsController, 'changeRole'])
      .as('organizations.members.role')
      .where('id', idMatcher)
      .where('user', idMatcher)
    router
      .post('/organizations/:id/members/:user/remove', [PortalOrganizationsController, 'removeMember'])
      .as('organizations.members.remove')
      .where('id', idMatcher)
      .where('user', idMatcher)
    router.post('/organizations/:id/teams', [PortalOrganizationsController, 'createTeam']).as('organizations.teams.store').where('id', idMatcher)
    router.get('/billing', [BillingController, 'show']).as('billing')
    router.get('/billing.csv', [BillingController, 'csv']).as('billing.csv')
    router.post('/billing/redeem', [RedemptionsController, 'store']).as('billing.redeem')
    router.post('/billing/checkout', [CheckoutController, 'store']).as('billing.checkout')
    router.post('/billing/low-balance', [LowBalanceController, 'update']).as('billing.low_balance')
    router.post('/billing/webhook', [AlertWebhookController, 'update']).as('billing.webhook')
    router.get('/billing/checkout/return', [CheckoutController, 'return']).as('billing.checkout.return')
    router.get('/usage', [UsageLogsController, 'index']).as('usage')
    router.get('/usage.csv', [UsageLogsController, 'csv']).as('usage.csv')
    router.get('/usage/:id', [UsageLogsController, 'show']).as('usage.show').where('id', idMatcher)
    router.get('/usage/request/:request_id', [UsageLogsController, 'byRequestId']).as('usage.request').where('request_id', REQUEST_ID_PATTERN)
    router.get('/batches', [PortalBatchesController, 'index']).as('batches')
    router.post('/batches/:id/cancel', [PortalBatchesController, 'cancel']).as('batches.cancel').where('id', idMatcher)
    router.get('/models', [PortalModelsController, 'index']).as('models')
    router.get('/playground', [PlaygroundController, 'show']).as('playground')
    router.get('/security', [SecurityController, 'show']).as('security')
    router.post('/security/two-factor/start', [SecurityController, 'start']).as('two_factor.start')
    router.post('/security/two-factor/cancel', [SecurityController, 'cancel']).as('two_factor.cancel')
    router.post('/security/two-factor/confirm', [SecurityController, 'confirm']).as('two_factor.confirm')
    router.post('/security/two-factor/disable', [SecurityController, 'disable']).as('two_factor.disable')
    router.post('/security/two-factor/recovery-codes', [SecurityController, 'recoveryCodes']).as('two_factor.recovery_codes')
    router.post('/security/identities/:provider/link', [SsoController, 'link']).as('identities.link')
    router.post('/security/identities/:id/unlink', [SsoController, 'unlink']).as('identities.unlink').where('id', idMatcher)
    /** The Security page's password form; GET shows the Security page too (old links). */
    router.get('/password', [PasswordController, 'edit']).as('password')
    router.post('/password', [PasswordController, 'update']).as('password.update')
    router.post('/password/set', [PasswordController, 'set']).as('password.set')
  })
  .prefix('/dashboard')
  .as('portal')
  .use([...pageStack(), middleware.auth(), middleware.portalNav()])

/**
 * Stripe's webhook for card top-ups: no session, shield or body parser (the
 * signature covers the body's exact bytes; Stripe is not a browser).
 */
router.post('/webhooks/stripe', [StripeWebhookController, 'handle']).as('webhooks.stripe')

/** Seed 004's console paths. */
router.on('/console').redirectToPath('/dashboard')
router.on('/console/token').redirectToPath('/dashboard/keys')
router.on('/console/topup').redirectToPath('/dashboard/billing')
router.on('/console/log').redirectToPath('/dashboard/usage')
