/*
| The admin panel: server-rendered pages under /admin, role admin only.
| Session, shield (CSRF) and auth run on this group alone, never on /v1.
| Controllers are thin: they validate and call app/actions, the same code
| the ace commands run.
*/
import router from '@adonisjs/core/services/router'
import { middleware, webStack } from '#start/kernel'
import { idMatcher } from '#services/record_id'

const DashboardController = () => import('#controllers/admin/dashboard_controller')
const UsersController = () => import('#controllers/admin/users_controller')
const PlansController = () => import('#controllers/admin/plans_controller')
const KeysController = () => import('#controllers/admin/keys_controller')
const ChannelsController = () => import('#controllers/admin/channels_controller')
const PricesController = () => import('#controllers/admin/prices_controller')
const UsageController = () => import('#controllers/admin/usage_controller')
const AuditController = () => import('#controllers/admin/audit_controller')
const ModelFallbacksController = () => import('#controllers/admin/model_fallbacks_controller')
const RedemptionCodesController = () => import('#controllers/admin/redemption_codes_controller')
const PaymentsController = () => import('#controllers/admin/payments_controller')
const SettingsController = () => import('#controllers/admin/settings_controller')
const EndUsersController = () => import('#controllers/admin/end_users_controller')
const BudgetsController = () => import('#controllers/admin/budgets_controller')
const BatchesController = () => import('#controllers/admin/batches_controller')
const TeamsController = () => import('#controllers/admin/teams_controller')

router
  .group(() => {
    router.get('/', [DashboardController, 'index']).as('dashboard')

    router.get('/users', [UsersController, 'index']).as('users.index')
    router.get('/users/new', [UsersController, 'create']).as('users.create')
    router.post('/users', [UsersController, 'store']).as('users.store')
    router.get('/users/:id', [UsersController, 'show']).as('users.show').where('id', idMatcher)
    router.post('/users/:id', [UsersController, 'update']).as('users.update').where('id', idMatcher)
    router.post('/users/:id/ledger', [UsersController, 'ledger']).as('users.ledger').where('id', idMatcher)
    router.post('/users/:id/two-factor/reset', [UsersController, 'resetTwoFactor']).as('users.two_factor_reset').where('id', idMatcher)
    router.post('/users/:id/email/confirm', [UsersController, 'confirmEmail']).as('users.email_confirm').where('id', idMatcher)
    router.get('/users/:id/end-users', [EndUsersController, 'index']).as('users.end_users').where('id', idMatcher)
    router.post('/users/:id/end-users', [EndUsersController, 'store']).as('users.end_users.store').where('id', idMatcher)
    router.post('/users/:id/end-users/remove', [EndUsersController, 'destroy']).as('users.end_users.destroy').where('id', idMatcher)
    router.get('/budgets', [BudgetsController, 'index']).as('budgets.index')
    router.post('/budgets', [BudgetsController, 'store']).as('budgets.store')
    router.post('/budgets/update', [BudgetsController, 'update']).as('budgets.update')
    router.post('/budgets/remove', [BudgetsController, 'destroy']).as('budgets.destroy')

    router.get('/plans', [PlansController, 'index']).as('plans.index')
    router.get('/plans/new', [PlansController, 'create']).as('plans.create')
    router.post('/plans', [PlansController, 'store']).as('plans.store')
    router.get('/plans/:id/edit', [PlansController, 'edit']).as('plans.edit').where('id', idMatcher)
    router.post('/plans/:id', [PlansController, 'update']).as('plans.update').where('id', idMatcher)
    router.post('/plans/:id/delete', [PlansController, 'destroy']).as('plans.destroy').where('id', idMatcher)
    router.get('/settings', [SettingsController, 'show']).as('settings.show')
    router.post('/settings/registration', [SettingsController, 'registration']).as('settings.registration')
    router.post('/settings/referrals', [SettingsController, 'referrals']).as('settings.referrals')
    router.post('/settings/announcement', [SettingsController, 'announcement']).as('settings.announcement')
    router.post('/settings/sensitive-words', [SettingsController, 'sensitiveWords']).as('settings.sensitive_words')
    router.post('/settings/account-keywords', [SettingsController, 'accountKeywords']).as('settings.account_keywords')
    router.post('/settings/mail', [SettingsController, 'mail']).as('settings.mail')
    router.post('/settings/mail/test', [SettingsController, 'mailTest']).as('settings.mail.test')
    router.post('/settings/mail/retry', [SettingsController, 'mailRetry']).as('settings.mail.retry')

    router.get('/keys', [KeysController, 'index']).as('keys.index')
    router.get('/keys/new', [KeysController, 'create']).as('keys.create')
    router.post('/keys', [KeysController, 'store']).as('keys.store')
    router.get('/keys/:id', [KeysController, 'show']).as('keys.show').where('id', idMatcher)
    router.get('/keys/:id/edit', [KeysController, 'edit']).as('keys.edit').where('id', idMatcher)
    router.post('/keys/:id', [KeysController, 'update']).as('keys.update').where('id', idMatcher)
    router.post('/keys/:id/revoke', [KeysController, 'revoke']).as('keys.revoke').where('id', idMatcher)
    router.post('/keys/:id/block', [KeysController, 'block']).as('keys.block').where('id', idMatcher)
    router.post('/keys/:id/unblock', [KeysController, 'unblock']).as('keys.unblock').where('id', idMatcher)

    router.get('/teams', [TeamsController, 'index']).as('teams.index')
    router.get('/teams/new', [TeamsController, 'create']).as('teams.create')
    router.post('/teams', [TeamsController, 'store']).as('teams.store')
    router.get('/teams/:id', [TeamsController, 'show']).as('teams.show').where('id', idMatcher)
    router.get('/teams/:id/edit', [TeamsController, 'edit']).as('teams.edit').where('id', idMatcher)
    router.post('/teams/:id', [TeamsController, 'update']).as('teams.update').where('id', idMatcher)
    router.post('/teams/:id/block', [TeamsController, 'block']).as('teams.block').where('id', idMatcher)
    router.post('/teams/:id/unblock', [TeamsController, 'unblock']).as('teams.unblock').where('id', idMatcher)
    router.post('/teams/:id/delete', [TeamsController, 'destroy']).as('teams.destroy').where('id', idMatcher)
    router.post('/teams/:id/members', [TeamsController, 'addMember']).as('teams.members.add').where('id', idMatcher)
    router.post('/teams/:id/members/remove', [TeamsController, 'removeMember']).as('teams.members.remove').where('id', idMatcher)

    router.get('/channels', [ChannelsController, 'index']).as('channels.index')
    router.get('/channels/new', [ChannelsController, 'create']).as('channels.create')
    router.post('/channels', [ChannelsController, 'store']).as('channels.store')
    router.post('/channels/test-all', [ChannelsController, 'testAll']).as('channels.test_all')
    router.post('/channels/balances', [ChannelsController, 'updateBalances']).as('channels.balances')
    router.post('/channels/models/preview', [ChannelsController, 'previewModels']).as('channels.models.preview')
    router.get('/channels/:id', [ChannelsController, 'show']).as('channels.show').where('id', idMatcher)
    router.post('/channels/:id', [ChannelsController, 'update']).as('channels.update').where('id', idMatcher)
    router.post('/channels/:id/enable', [ChannelsController, 'enable']).as('channels.enable').where('id', idMatcher)
    router.post('/channels/:id/disable', [ChannelsController, 'disable']).as('channels.disable').where('id', idMatcher)
    router.post('/channels/:id/test', [ChannelsController, 'test']).as('channels.test').where('id', idMatcher)
    router.post('/channels/:id/balance', [ChannelsController, 'updateBalance']).as('channels.balance').where('id', idMatcher)
    router.post('/channels/:id/models', [ChannelsController, 'fetchModels']).as('channels.models').where('id', idMatcher)
    router.post('/channels/:id/models/save', [ChannelsController, 'saveModels']).as('channels.models.save').where('id', idMatcher)

    router.post('/fallbacks', [ModelFallbacksController, 'store']).as('fallbacks.store')
    router.post('/fallbacks/delete', [ModelFallbacksController, 'destroy']).as('fallbacks.destroy')

    router.get('/prices', [PricesController, 'index']).as('prices.index')
    router.post('/prices', [PricesController, 'store']).as('prices.store')
    router.post('/prices/:id/delete', [PricesController, 'destroy']).as('prices.destroy').where('id', idMatcher)

    router.get('/redemptions', [RedemptionCodesController, 'index']).as('redemptions.index')
    router.get('/redemptions/new', [RedemptionCodesController, 'create']).as('redemptions.create')
    router.post('/redemptions', [RedemptionCodesController, 'store']).as('redemptions.store')
    router.post('/redemptions/disable-batch', [RedemptionCodesController, 'disableBatch']).as('redemptions.disable_batch')
    router.post('/redemptions/:id/disable', [RedemptionCodesController, 'disable']).as('redemptions.disable').where('id', idMatcher)

    router.get('/payments', [PaymentsController, 'index']).as('payments.index')
    router.post('/payments/:id/check', [PaymentsController, 'check']).as('payments.check').where('id', idMatcher)

    router.get('/usage', [UsageController, 'index']).as('usage.index')
    router.get('/usage/export.csv', [UsageController, 'export']).as('usage.export')
    router.get('/usage/:id', [UsageController, 'show']).as('usage.show').where('id', idMatcher)

    router.get('/batches', [BatchesController, 'index']).as('batches.index')
    router.get('/batches/:id', [BatchesController, 'show']).as('batches.show').where('id', idMatcher)
    router.post('/batches/:id/cancel', [BatchesController, 'cancel']).as('batches.cancel').where('id', idMatcher)

    router.get('/audit', [AuditController, 'index']).as('audit.index')
  })
  .prefix('/admin')
  .as('admin')
  .use([...webStack(), middleware.auth(), middleware.admin()])
