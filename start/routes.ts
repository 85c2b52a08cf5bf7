/*
| Routes. /v1 is the API (API-key auth only: no session, shield or body
| parser on the hot path); the admin panel and portal live in their own
| groups with session auth.
*/
import router from '@adonisjs/core/services/router'
import { middleware, webStack } from '#start/kernel'

const ChatCompletionsController = () => import('#controllers/api/chat_completions_controller')
const ModelsController = () => import('#controllers/api/models_controller')
const UsageController = () => import('#controllers/api/usage_controller')
const BalanceController = () => import('#controllers/api/balance_controller')
const StatusController = () => import('#controllers/api/status_controller')
const MetricsController = () => import('#controllers/api/metrics_controller')
const MessagesController = () => import('#controllers/api/messages_controller')
const ResponsesController = () => import('#controllers/api/responses_controller')
const ConversationsController = () => import('#controllers/api/conversations_controller')
const RealtimeController = () => import('#controllers/api/realtime_controller')
const GeminiController = () => import('#controllers/api/gemini_controller')
const EmbeddingsController = () => import('#controllers/api/embeddings_controller')
const ImagesController = () => import('#controllers/api/images_controller')
const CompletionsController = () => import('#controllers/api/completions_controller')
const AudioController = () => import('#controllers/api/audio_controller')
const GenerationController = () => import('#controllers/api/generation_controller')
const BillingCompatController = () => import('#controllers/api/billing_compat_controller')
const RerankController = () => import('#controllers/api/rerank_controller')
const ModerationsController = () => import('#controllers/api/moderations_controller')
const ModelInfoController = () => import('#controllers/api/model_info_controller')
const AzureController = () => import('#controllers/api/azure_controller')
const EnginesController = () => import('#controllers/api/engines_controller')
const HealthController = () => import('#controllers/api/health_controller')
const OpenRouterAccountController = () => import('#controllers/api/openrouter_account_controller')
const FilesController = () => import('#controllers/api/files_controller')
const BatchesController = () => import('#controllers/api/batches_controller')
const MessageBatchesController = () => import('#controllers/api/message_batches_controller')
const VideosController = () => import('#controllers/api/videos_controller')
const GeminiFilesController = () => import('#controllers/api/gemini_files_controller')
const GeminiBatchesController = () => import('#controllers/api/gemini_batches_controller')

/** OpenAI's Files and Batch API (app/gateway/batches/): under /v1, without it as LiteLLM serves them, and at Azure's paths. */
function filesAndBatchesRoutes() {
  router.post('/files', [FilesController, 'store']).as('files.store')
  router.get('/files', [FilesController, 'index']).as('files.index')
  router.get('/files/:id', [FilesController, 'show']).as('files.show')
  router.get('/files/:id/content', [FilesController, 'content']).as('files.content')
  router.delete('/files/:id', [FilesController, 'destroy']).as('files.destroy')
  router.post('/batches', [BatchesController, 'store']).as('batches.store')
  router.get('/batches', [BatchesController, 'index']).as('batches.index')
  router.get('/batches/:id', [BatchesController, 'show']).as('batches.show')
  router.post('/batches/:id/cancel', [BatchesController, 'cancel']).as('batches.cancel')
}

/** The Files and Batch API with OpenAI's Videos API, under /v1 and without it. */
function batchRoutes() {
  filesAndBatchesRoutes()
  // OpenAI's Videos API (app/gateway/videos/), beside files and batches: long jobs, billed when they finish.
  router.post('/videos', [VideosController, 'store']).as('videos.store')
  router.get('/videos', [VideosController, 'index']).as('videos.index')
  router.get('/videos/:id', [VideosController, 'show']).as('videos.show')
  router.get('/videos/:id/content', [VideosController, 'content']).as('videos.content')
  router.delete('/videos/:id', [VideosController, 'destroy']).as('videos.destroy')
  router.post('/videos/:id/remix', [VideosController, 'remix']).as('videos.remix')
}

/** Stored Responses (app/gateway/responses_store/): under /v1, without it, and at Azure's Responses paths. */
function responsesRoutes() {
  router.get('/responses/:id', [ResponsesController, 'show']).as('responses.show')
  router.delete('/responses/:id', [ResponsesController, 'destroy']).as('responses.destroy')
  router.post('/responses/:id/cancel', [ResponsesController, 'cancel']).as('responses.cancel')
  router.get('/responses/:id/input_items', [ResponsesController, 'inputItems']).as('responses.input_items')
  // The Conversations API (app/gateway/conversations/), beside the responses that read it.
  router.post('/conversations', [ConversationsController, 'store']).as('conversations.store')
  router.get('/conversations/:id', [ConversationsController, 'show']).as('conversations.show')
  router.post('/conversations/:id', [ConversationsController, 'update']).as('conversations.update')
  router.delete('/conversations/:id', [ConversationsController, 'destroy']).as('conversations.destroy')
  router.get('/conversations/:id/items', [ConversationsController, 'items']).as('conversations.items')
  router.post('/conversations/:id/items', [ConversationsController, 'addItems']).as('conversations.items.store')
  router.get('/conversations/:id/items/:itemId', [ConversationsController, 'item']).as('conversations.items.show')
  router.delete('/conversations/:id/items/:itemId', [ConversationsController, 'destroyItem']).as('conversations.items.destroy')
}

router
  .group(() => {
    router.post('/chat/completions', [ChatCompletionsController, 'store']).as('chat.completions')
    router.post('/messages', [MessagesController, 'store']).as('messages')
    router.post('/messages/count_tokens', [MessagesController, 'countTokens']).as('messages.count_tokens')
    // Anthropic's Message Batches (app/gateway/batches/message_batches_api.ts); only under /v1, where Anthropic's SDKs call.
    router.post('/messages/batches', [MessageBatchesController, 'store']).as('messages.batches.store')
    router.get('/messages/batches', [MessageBatchesController, 'index']).as('messages.batches.index')
    router.get('/messages/batches/:id', [MessageBatchesController, 'show']).as('messages.batches.show')
    router.post('/messages/batches/:id/cancel', [MessageBatchesController, 'cancel']).as('messages.batches.cancel')
    router.get('/messages/batches/:id/results', [MessageBatchesController, 'results']).as('messages.batches.results')
    router.delete('/messages/batches/:id', [MessageBatchesController, 'destroy']).as('messages.batches.destroy')
    router.post('/responses', [ResponsesController, 'store']).as('responses')
    router.post('/responses/compact', [ResponsesController, 'compact']).as('responses.compact')
    responsesRoutes()
    router.post('/embeddings', [EmbeddingsController, 'store']).as('embeddings')
    router.post('/images/generations', [ImagesController, 'store']).as('images.generations')
    router.post('/images/edits', [ImagesController, 'edits']).as('images.edits')
    router.post('/images/variations', [ImagesController, 'variations']).as('images.variations')
    router.post('/completions', [CompletionsController, 'store']).as('completions')
    router.post('/audio/transcriptions', [AudioController, 'transcriptions']).as('audio.transcriptions')
    router.post('/audio/translations', [AudioController, 'translations']).as('audio.translations')
    router.post('/audio/speech', [AudioController, 'speech']).as('audio.speech')
    router.post('/rerank', [RerankController, 'store']).as('rerank')
    router.post('/moderations', [ModerationsController, 'store']).as('moderations')
    router.get('/models', [ModelsController, 'index']).as('models')
    router.get('/models/*', [ModelsController, 'show']).as('models.show')
    router.get('/model/info', [ModelInfoController, 'index']).as('model_info')
    router.get('/model_group/info', [ModelInfoController, 'groups']).as('model_group_info')
    // Gemini's native calls under /v1 (@google/genai with apiVersion 'v1'); GET /v1/models/* stays OpenAI's.
    router.post('/models/:target', [GeminiController, 'call']).as('gemini.call')
    router.get('/usage', [UsageController, 'show']).as('usage')
    router.get('/balance', [BalanceController, 'show']).as('balance')
    router.get('/generation', [GenerationController, 'show']).as('generation')
    router.get('/dashboard/billing/subscription', [BillingCompatController, 'subscription']).as('billing.subscription')
    router.get('/dashboard/billing/usage', [BillingCompatController, 'usage']).as('billing.usage')
    // OpenRouter's key and credits checks, for an app whose OpenRouter base URL became the gateway's /v1.
    router.get('/key', [OpenRouterAccountController, 'key']).as('openrouter.key')
    router.get('/auth/key', [OpenRouterAccountController, 'key']).as('openrouter.auth_key')
    router.get('/credits', [OpenRouterAccountController, 'credits']).as('openrouter.credits')
    batchRoutes()
  })
  .prefix('/v1')
  .as('v1')
  .use(middleware.apiKey())

/** Gemini's REST surface (@google/genai, Gemini CLI): key in x-goog-api-key, ?key= or Bearer. */
router
  .group(() => {
    router.post('/models/:target', [GeminiController, 'call']).as('call')
    router.get('/models', [GeminiController, 'index']).as('models')
    router.get('/models/:model', [GeminiController, 'show']).as('model')
    // Veo's operations (generateVideos' polls): the gateway's name for each, its owner's only.
    router.get('/models/:model/operations/:id', [VideosController, 'operation']).as('models.operation')
    router.get('/operations/:id', [VideosController, 'operation']).as('operation')
    // Gemini's Files API and cachedContents on google channels (app/gateway/provider_files/)
    router.get('/files', [GeminiFilesController, 'index']).as('files.index')
    router.get('/files/:id', [GeminiFilesController, 'show']).as('files.show')
    router.delete('/files/:id', [GeminiFilesController, 'destroy']).as('files.destroy')
    router.post('/cachedContents', [GeminiFilesController, 'createCache']).as('caches.store')
    router.get('/cachedContents', [GeminiFilesController, 'caches']).as('caches.index')
    router.get('/cachedContents/:id', [GeminiFilesController, 'showCache']).as('caches.show')
    router.patch('/cachedContents/:id', [GeminiFilesController, 'updateCache']).as('caches.update')
    router.delete('/cachedContents/:id', [GeminiFilesController, 'destroyCache']).as('caches.destroy')
    // Gemini's Batch API (app/gateway/batches/gemini_batches_api.ts); its creation is models/{m}:batchGenerateContent
    router.get('/batches', [GeminiBatchesController, 'index']).as('batches.index')
    router.get('/batches/:id', [GeminiBatchesController, 'show']).as('batches.show')
    router.post('/batches/:target', [GeminiBatchesController, 'cancel']).as('batches.cancel')
    router.delete('/batches/:id', [GeminiBatchesController, 'destroy']).as('batches.destroy')
  })
  .prefix('/v1beta')
  .as('v1beta')
  .use(middleware.apiKey())

/** A Gemini batch's results file (and any Files API file its owner recorded): `files/{id}:download?alt=media`. */
router
  .get('/download/v1beta/files/:target', [GeminiBatchesController, 'download'])
  .as('download.v1beta.files')
  .use(middleware.apiKey())

/** Gemini's Files API uploads (@google/genai files.upload): Google's resumable and multipart protocols. */
router
  .post('/upload/v1beta/files', [GeminiFilesController, 'upload'])
  .as('upload.v1beta.files')
  .use(middleware.apiKey())

/**
 * Google's OpenAI compatibility base (`.../v1beta/openai/`): clients set up for
 * Gemini through the OpenAI SDKs, with only the host changed. The /v1 endpoints,
 * OpenAI's errors (the API lane serves the POSTs; these routes with API_LANE=false).
 */
router
  .group(() => {
    router.post('/chat/completions', [ChatCompletionsController, 'store']).as('chat.completions')
    router.post('/embeddings', [EmbeddingsController, 'store']).as('embeddings')
    router.post('/images/generations', [ImagesController, 'store']).as('images.generations')
    router.get('/models', [ModelsController, 'index']).as('models')
    router.get('/models/*', [ModelsController, 'show']).as('models.show')
  })
  .prefix('/v1beta/openai')
  .as('v1beta.openai')
  .use(middleware.apiKey())

/**
 * The OpenAI paths without /v1, as LiteLLM serves them: clients set up for a
 * LiteLLM proxy use its base URL as LiteLLM's docs give it (`http://host:4000`)
 * and the OpenAI SDKs append `/chat/completions` to it. Same endpoints, same
 * answers (the API lane serves the POSTs; these routes with API_LANE=false).
 */
router
  .group(() => {
    router.post('/chat/completions', [ChatCompletionsController, 'store']).as('chat.completions')
    router.post('/completions', [CompletionsController, 'store']).as('completions')
    router.post('/responses', [ResponsesController, 'store']).as('responses')
    router.post('/responses/compact', [ResponsesController, 'compact']).as('responses.compact')
    responsesRoutes()
    router.post('/embeddings', [EmbeddingsController, 'store']).as('embeddings')
    router.post('/images/generations', [ImagesController, 'store']).as('images.generations')
    router.post('/images/edits', [ImagesController, 'edits']).as('images.edits')
    router.post('/images/variations', [ImagesController, 'variations']).as('images.variations')
    router.post('/audio/transcriptions', [AudioController, 'transcriptions']).as('audio.transcriptions')
    router.post('/audio/translations', [AudioController, 'translations']).as('audio.translations')
    router.post('/audio/speech', [AudioController, 'speech']).as('audio.speech')
    router.post('/moderations', [ModerationsController, 'store']).as('moderations')
    router.get('/models', [ModelsController, 'index']).as('models')
    router.get('/models/*', [ModelsController, 'show']).as('models.show')
    // LiteLLM's model info, where Roo Code and Kilo Code (`{base}/v1/model/info`) and curl users of LiteLLM's docs call it
    router.get('/model/info', [ModelInfoController, 'index']).as('model_info')
    router.get('/model_group/info', [ModelInfoController, 'groups']).as('model_group_info')
    batchRoutes()
  })
  .as('unversioned')
  .use(middleware.apiKey())

/**
 * Azure OpenAI's paths, for clients set up for Azure (AzureOpenAI, LangChain's
 * AzureChatOpenAI, Semantic Kernel): `/openai/deployments/{deployment}/...`
 * (the deployment is the model), the v1 API's `/openai/v1/...`, and
 * `/openai/responses`. The POSTs resolve through azure_endpoints.ts, as in the
 * API lane; the model lists are the /v1 ones.
 */
for (const prefix of ['/openai/v1', '/openai']) {
  router
    .group(() => {
      router.get('/models', [ModelsController, 'index']).as('models')
      router.get('/models/*', [ModelsController, 'show']).as('models.show')
      responsesRoutes()
      // AzureOpenAI's `files.*` and `batches.*` (`?api-version=` ignored): the gateway's, as under /v1.
      filesAndBatchesRoutes()
    })
    .prefix(prefix)
    .as(prefix === '/openai' ? 'azure' : 'azure.v1')
    .use(middleware.apiKey())
}
// After the Files and Batch API's POSTs above, which it would otherwise take.
router.post('/openai/*', [AzureController, 'call']).as('azure.call').use(middleware.apiKey())

/**
 * OpenAI's legacy engine paths (`/v1/engines/{model}/completions`, `/chat/completions`,
 * `/embeddings`) and LiteLLM's aliases without /v1: the engine is the model. The POSTs
 * resolve through engine_endpoints.ts, as in the API lane.
 */
router.post('/v1/engines/*', [EnginesController, 'call']).as('v1.engines.call').use(middleware.apiKey())
router.post('/engines/*', [EnginesController, 'call']).as('engines.call').use(middleware.apiKey())

/** Rerank where Cohere's v2 SDK (/v2/rerank) and LiteLLM-style clients (/rerank) call it. */
router.post('/v2/rerank', [RerankController, 'store']).as('v2.rerank').use(middleware.apiKey())
router.post('/rerank', [RerankController, 'store']).as('rerank').use(middleware.apiKey())

/** Codex's WebSocket attempt: answered before key auth so it falls back to HTTP. */
router.get('/v1/responses', [ResponsesController, 'upgrade']).as('v1.responses.upgrade')

/** The Realtime API asked without a WebSocket upgrade (the upgrades never reach the router). */
router.get('/v1/realtime', [RealtimeController, 'withoutUpgrade']).as('v1.realtime.without_upgrade')
/** A browser's client secret (and the beta sessions' form), and the hangup of a WebRTC call: the key's auth. */
router.post('/v1/realtime/client_secrets', [RealtimeController, 'clientSecret']).as('v1.realtime.client_secrets').use(middleware.apiKey())
router.post('/v1/realtime/sessions', [RealtimeController, 'betaSession']).as('v1.realtime.sessions').use(middleware.apiKey())
router
  .post('/v1/realtime/transcription_sessions', [RealtimeController, 'transcriptionSession'])
  .as('v1.realtime.transcription_sessions')
  .use(middleware.apiKey())
/** A call's hangup ends work: the key checked, not admitted (realtime_controller.ts). */
router.post('/v1/realtime/calls/:id/hangup', [RealtimeController, 'hangup']).as('v1.realtime.calls.hangup')
/** A WebRTC call: a client secret or a key (realtime_calls.ts authenticates itself). */
router.post('/v1/realtime/calls', [RealtimeController, 'createCall']).as('v1.realtime.calls')

router.get('/api/status', [StatusController, 'show']).as('status')
/** Prometheus' scrape: its own access check (a management key, METRICS_TOKEN or METRICS_PUBLIC), no session or shield. */
router.get('/metrics', [MetricsController, 'show']).as('metrics')

/**
 * OpenRouter's base, `https://openrouter.ai/api/v1`, for apps and agents that keep its paths with the
 * host changed (its SDKs, the OpenRouter providers of Cline, Roo Code, Kilo Code and the AI SDK; Claude
 * Code set up by OpenRouter's guide, `ANTHROPIC_BASE_URL=.../api`): the /v1 generations (the API lane
 * serves the POSTs; these routes with API_LANE=false), the model list, the generation lookup and its
 * account checks (`/key`, its older `/auth/key`, `/credits`). The API's key auth (the management API
 * is /api/admin, its own prefix).
 */
router
  .group(() => {
    router.post('/chat/completions', [ChatCompletionsController, 'store']).as('chat.completions')
    router.post('/completions', [CompletionsController, 'store']).as('completions')
    router.post('/responses', [ResponsesController, 'store']).as('responses')
    router.post('/embeddings', [EmbeddingsController, 'store']).as('embeddings')
    router.post('/messages', [MessagesController, 'store']).as('messages')
    router.post('/messages/count_tokens', [MessagesController, 'countTokens']).as('messages.count_tokens')
    router.get('/models', [ModelsController, 'index']).as('models')
    router.get('/models/*', [ModelsController, 'show']).as('models.show')
    router.get('/generation', [GenerationController, 'show']).as('generation')
    router.get('/key', [OpenRouterAccountController, 'key']).as('key')
    router.get('/auth/key', [OpenRouterAccountController, 'key']).as('auth_key')
    router.get('/credits', [OpenRouterAccountController, 'credits']).as('credits')
  })
  .prefix('/api/v1')
  .as('openrouter')
  .use(middleware.apiKey())

/** LiteLLM's probe paths (Kubernetes manifests copied from a LiteLLM deployment): no key, as probes send none. */
router.get('/health/liveliness', [HealthController, 'liveness']).as('health.liveliness')
router.get('/health/liveness', [HealthController, 'liveness']).as('health.liveness')
router.get('/health/readiness', [HealthController, 'readiness']).as('health.readiness')

/**
 * The management API: users, balances, keys, redemption codes, channels, prices and settings as JSON
 * for scripts and billing systems (LiteLLM's /key/generate, /key/update...),
 * with an administrator's API key. The same actions as the panel and ace.
 */
const ManagementUsersController = () => import('#controllers/api/management/users_controller')
const ManagementKeysController = () => import('#controllers/api/management/keys_controller')
const ManagementCodesController = () => import('#controllers/api/management/redemption_codes_controller')
const ManagementUsageController = () => import('#controllers/api/management/usage_controller')
const ManagementPaymentsController = () => import('#controllers/api/management/payments_controller')
const ManagementChannelsController = () => import('#controllers/api/management/channels_controller')
const ManagementChannelBalancesController = () => import('#controllers/api/management/channel_balances_controller')
const ManagementPricesController = () => import('#controllers/api/management/prices_controller')
const ManagementSettingsController = () => import('#controllers/api/management/settings_controller')
const ManagementEndUsersController = () => import('#controllers/api/management/end_users_controller')
const ManagementTeamsController = () => import('#controllers/api/management/teams_controller')
const ManagementOrganizationsController = () => import('#controllers/api/management/organizations_controller')
const ManagementBudgetsController = () => import('#controllers/api/management/budgets_controller')
router
  .group(() => {
    router.get('/users', [ManagementUsersController, 'index']).as('users.index')
    router.post('/users', [ManagementUsersController, 'store']).as('users.store')
    router.get('/users/:id', [ManagementUsersController, 'show']).as('users.show')
    router.patch('/users/:id', [ManagementUsersController, 'update']).as('users.update')
    router.post('/users/:id/ledger', [ManagementUsersController, 'ledger']).as('users.ledger')
    router.get('/users/:id/usage', [ManagementUsersController, 'usage']).as('users.usage')
    router.get('/keys', [ManagementKeysController, 'index']).as('keys.index')
    router.post('/keys', [ManagementKeysController, 'store']).as('keys.store')
    router.get('/keys/:id', [ManagementKeysController, 'show']).as('keys.show')
    router.patch('/keys/:id', [ManagementKeysController, 'update']).as('keys.update')
    router.delete('/keys/:id', [ManagementKeysController, 'destroy']).as('keys.destroy')
    router.post('/keys/:id/regenerate', [ManagementKeysController, 'regenerate']).as('keys.regenerate')
    router.get('/redemption-codes', [ManagementCodesController, 'index']).as('codes.index')
    router.post('/redemption-codes', [ManagementCodesController, 'store']).as('codes.store')
    router.post('/redemption-codes/disable', [ManagementCodesController, 'disable']).as('codes.disable')
    router.get('/usage', [ManagementUsageController, 'index']).as('usage.index')
    router.get('/usage/:request_id', [ManagementUsageController, 'show']).as('usage.show')
    router.get('/spend/tags', [ManagementUsageController, 'spendByTag']).as('spend.tags')
    router.get('/spend/end-users', [ManagementUsageController, 'spendByEndUser']).as('spend.end_users')
    router.get('/end-users', [ManagementEndUsersController, 'index']).as('end_users.index')
    router.post('/end-users', [ManagementEndUsersController, 'store']).as('end_users.store')
    router.delete('/end-users', [ManagementEndUsersController, 'destroy']).as('end_users.destroy')
    router.get('/budgets', [ManagementBudgetsController, 'index']).as('budgets.index')
    router.post('/budgets', [ManagementBudgetsController, 'store']).as('budgets.store')
    router.get('/budgets/:budget_id', [ManagementBudgetsController, 'show']).as('budgets.show')
    router.patch('/budgets/:budget_id', [ManagementBudgetsController, 'update']).as('budgets.update')
    router.delete('/budgets/:budget_id', [ManagementBudgetsController, 'destroy']).as('budgets.destroy')
    router.get('/teams', [ManagementTeamsController, 'index']).as('teams.index')
    router.post('/teams', [ManagementTeamsController, 'store']).as('teams.store')
    router.get('/teams/:id', [ManagementTeamsController, 'show']).as('teams.show')
    router.patch('/teams/:id', [ManagementTeamsController, 'update']).as('teams.update')
    router.delete('/teams/:id', [ManagementTeamsController, 'destroy']).as('teams.destroy')
    router.post('/teams/:id/members', [ManagementTeamsController, 'addMembers']).as('teams.members.add')
    router.delete('/teams/:id/members', [ManagementTeamsController, 'removeMember']).as('teams.members.remove')
    router.patch('/teams/:id/members/:user', [ManagementTeamsController, 'updateMember']).as('teams.members.update')
    router.get('/organizations', [ManagementOrganizationsController, 'index']).as('organizations.index')
    router.post('/organizations', [ManagementOrganizationsController, 'store']).as('organizations.store')
    router.get('/organizations/:id', [ManagementOrganizationsController, 'show']).as('organizations.show')
    router.patch('/organizations/:id', [ManagementOrganizationsController, 'update']).as('organizations.update')
    router.delete('/organizations/:id', [ManagementOrganizationsController, 'destroy']).as('organizations.destroy')
    router.post('/organizations/:id/members', [ManagementOrganizationsController, 'addMembers']).as('organizations.members.add')
    router.delete('/organizations/:id/members', [ManagementOrganizationsController, 'removeMember']).as('organizations.members.remove')
    router.get('/payments', [ManagementPaymentsController, 'index']).as('payments.index')
    router.get('/channels', [ManagementChannelsController, 'index']).as('channels.index')
    router.post('/channels', [ManagementChannelsController, 'store']).as('channels.store')
    router.get('/channels/:id', [ManagementChannelsController, 'show']).as('channels.show')
    router.patch('/channels/:id', [ManagementChannelsController, 'update']).as('channels.update')
    router.post('/channels/:id/test', [ManagementChannelsController, 'test']).as('channels.test')
    router.post('/channels/test-all', [ManagementChannelsController, 'testAll']).as('channels.test_all')
    router.get('/channels/:id/balance', [ManagementChannelBalancesController, 'show']).as('channels.balance')
    router.post('/channels/:id/balance', [ManagementChannelBalancesController, 'update']).as('channels.balance.update')
    router.post('/channels/balances', [ManagementChannelBalancesController, 'updateAll']).as('channels.balances.update')
    router.get('/channels/:id/models', [ManagementChannelsController, 'models']).as('channels.models')
    router.post('/channels/:id/models', [ManagementChannelsController, 'setModels']).as('channels.models.set')
    router.get('/prices', [ManagementPricesController, 'index']).as('prices.index')
    router.post('/prices', [ManagementPricesController, 'store']).as('prices.store')
    router.delete('/prices/:id', [ManagementPricesController, 'destroy']).as('prices.destroy')
    router.get('/settings/sensitive-words', [ManagementSettingsController, 'sensitiveWords']).as('settings.sensitive_words')
    router.patch('/settings/sensitive-words', [ManagementSettingsController, 'updateSensitiveWords']).as('settings.sensitive_words.update')
    router.get('/settings/account-keywords', [ManagementSettingsController, 'accountKeywords']).as('settings.account_keywords')
    router.patch('/settings/account-keywords', [ManagementSettingsController, 'updateAccountKeywords']).as('settings.account_keywords.update')
  })
  .prefix('/api/admin')
  .as('management')
  .use([middleware.adminApiKey(), middleware.managementBody()])

/**
 * LiteLLM's key, spend and user management under its own paths, for scripts and dashboards
 * written against a LiteLLM proxy: thin controllers over the actions of the management API
 * above (same auth: the management key, also in `x-litellm-api-key`; errors in LiteLLM's shape).
 * `GET /key/info` takes any key (without `?key=`: itself), as LiteLLM allows; so does `POST /key/health`
 * (about the calling key). Customers, /spend/tags, /global/spend/*, /user/delete and the model health check
 * (`GET /health`: a test generation per channel) too.
 */
const LiteLLMKeysController = () => import('#controllers/api/litellm/keys_controller')
const LiteLLMSpendController = () => import('#controllers/api/litellm/spend_controller')
const LiteLLMUsersController = () => import('#controllers/api/litellm/users_controller')
const LiteLLMCustomersController = () => import('#controllers/api/litellm/customers_controller')
const LiteLLMBudgetsController = () => import('#controllers/api/litellm/budgets_controller')
const LiteLLMGlobalSpendController = () => import('#controllers/api/litellm/global_spend_controller')
const LiteLLMModelHealthController = () => import('#controllers/api/litellm/model_health_controller')
const LiteLLMTeamsController = () => import('#controllers/api/litellm/teams_controller')
const LiteLLMOrganizationsController = () => import('#controllers/api/litellm/organizations_controller')
const LiteLLMUtilsController = () => import('#controllers/api/litellm/utils_controller')
router.get('/key/info', [LiteLLMKeysController, 'info']).as('litellm.key.info').use(middleware.apiKey())
router.post('/key/health', [LiteLLMKeysController, 'health']).as('litellm.key.health').use(middleware.apiKey())
// LiteLLM's token counter: any key, for a model it may use; a JSON body of 1 MB at most (errors in LiteLLM's shape: error_renderers.ts).
router
  .post('/utils/token_counter', [LiteLLMUtilsController, 'tokenCounter'])
  .as('litellm.utils.token_counter')
  .use([middleware.apiKey(), middleware.managementBody()])
router
  .group(() => {
    router.post('/key/generate', [LiteLLMKeysController, 'generate']).as('key.generate')
    router.post('/key/update', [LiteLLMKeysController, 'update']).as('key.update')
    router.post('/key/delete', [LiteLLMKeysController, 'destroy']).as('key.delete')
    router.get('/key/list', [LiteLLMKeysController, 'list']).as('key.list')
    router.post('/key/block', [LiteLLMKeysController, 'block']).as('key.block')
    router.post('/key/unblock', [LiteLLMKeysController, 'unblock']).as('key.unblock')
    router.post('/key/regenerate', [LiteLLMKeysController, 'regenerate']).as('key.regenerate')
    router.post('/key/:key/regenerate', [LiteLLMKeysController, 'regenerate']).as('key.regenerate_path')
    router.get('/spend/logs', [LiteLLMSpendController, 'logs']).as('spend.logs')
    router.post('/user/new', [LiteLLMUsersController, 'store']).as('user.new')
    router.get('/user/info', [LiteLLMUsersController, 'show']).as('user.info')
    router.post('/user/update', [LiteLLMUsersController, 'update']).as('user.update')
    router.get('/user/list', [LiteLLMUsersController, 'index']).as('user.list')
    router.post('/user/delete', [LiteLLMUsersController, 'destroy']).as('user.delete')
    router.get('/spend/tags', [LiteLLMSpendController, 'tags']).as('spend.tags')
    router.post('/customer/new', [LiteLLMCustomersController, 'store']).as('customer.new')
    router.get('/customer/info', [LiteLLMCustomersController, 'show']).as('customer.info')
    router.post('/customer/update', [LiteLLMCustomersController, 'update']).as('customer.update')
    router.post('/customer/delete', [LiteLLMCustomersController, 'destroy']).as('customer.delete')
    router.post('/customer/block', [LiteLLMCustomersController, 'block']).as('customer.block')
    router.post('/customer/unblock', [LiteLLMCustomersController, 'unblock']).as('customer.unblock')
    router.get('/customer/list', [LiteLLMCustomersController, 'index']).as('customer.list')
    router.post('/budget/new', [LiteLLMBudgetsController, 'store']).as('budget.new')
    router.post('/budget/update', [LiteLLMBudgetsController, 'update']).as('budget.update')
    router.post('/budget/info', [LiteLLMBudgetsController, 'info']).as('budget.info')
    router.get('/budget/list', [LiteLLMBudgetsController, 'index']).as('budget.list')
    router.post('/budget/delete', [LiteLLMBudgetsController, 'destroy']).as('budget.delete')
    router.get('/budget/settings', [LiteLLMBudgetsController, 'settings']).as('budget.settings')
    router.get('/global/spend/logs', [LiteLLMGlobalSpendController, 'logs']).as('global.spend.logs')
    router.get('/global/spend/keys', [LiteLLMGlobalSpendController, 'keys']).as('global.spend.keys')
    router.get('/global/spend/models', [LiteLLMGlobalSpendController, 'models']).as('global.spend.models')
    router.get('/global/spend/report', [LiteLLMGlobalSpendController, 'report']).as('global.spend.report')
    router.get('/health', [LiteLLMModelHealthController, 'show']).as('health.models')
    router.post('/team/new', [LiteLLMTeamsController, 'store']).as('team.new')
    router.get('/team/info', [LiteLLMTeamsController, 'show']).as('team.info')
    router.get('/team/list', [LiteLLMTeamsController, 'index']).as('team.list')
    router.post('/team/update', [LiteLLMTeamsController, 'update']).as('team.update')
    router.post('/team/delete', [LiteLLMTeamsController, 'destroy']).as('team.delete')
    router.post('/team/block', [LiteLLMTeamsController, 'block']).as('team.block')
    router.post('/team/unblock', [LiteLLMTeamsController, 'unblock']).as('team.unblock')
    router.post('/team/member_add', [LiteLLMTeamsController, 'memberAdd']).as('team.member_add')
    router.route('/team/member_update', ['POST', 'PATCH'], [LiteLLMTeamsController, 'memberUpdate']).as('team.member_update')
    router.post('/team/member_delete', [LiteLLMTeamsController, 'memberDelete']).as('team.member_delete')
    // LiteLLM's methods (PATCH update, DELETE delete), and POST for clients of its older versions.
    router.post('/organization/new', [LiteLLMOrganizationsController, 'store']).as('organization.new')
    router.route('/organization/info', ['GET', 'POST'], [LiteLLMOrganizationsController, 'show']).as('organization.info')
    router.get('/organization/list', [LiteLLMOrganizationsController, 'index']).as('organization.list')
    router.get('/organization/daily/activity', [LiteLLMOrganizationsController, 'dailyActivity']).as('organization.daily_activity')
    router.route('/organization/update', ['PATCH', 'POST'], [LiteLLMOrganizationsController, 'update']).as('organization.update')
    router.route('/organization/delete', ['DELETE', 'POST'], [LiteLLMOrganizationsController, 'destroy']).as('organization.delete')
    router.post('/organization/member_add', [LiteLLMOrganizationsController, 'memberAdd']).as('organization.member_add')
    router.route('/organization/member_update', ['PATCH', 'POST'], [LiteLLMOrganizationsController, 'memberUpdate']).as('organization.member_update')
    router.route('/organization/member_delete', ['DELETE', 'POST'], [LiteLLMOrganizationsController, 'memberDelete']).as('organization.member_delete')
  })
  .as('litellm')
  .use([middleware.adminApiKey(), middleware.managementBody()])

/** Clients probe the base URL (Claude Code sends HEAD /): answer cheaply. */
router.route('/', ['GET', 'HEAD'], ({ response }) => response.json({ status: 'ok', api: '/v1' }))

/** Pages: CSS/JS files, login/logout, and the admin panel (start/routes_admin.ts). */
const AssetsController = () => import('#controllers/assets_controller')
const SessionController = () => import('#controllers/session_controller')
const SsoController = () => import('#controllers/sso_controller')
/** The single sign-on providers' path segment (app/services/sso/sso_settings.ts) */
const SSO_PROVIDER = /^(oidc|github)$/

router.get('/assets/:file', [AssetsController, 'show']).as('assets')

router
  .group(() => {
    router.get('/login', [SessionController, 'create']).as('login').use(middleware.guest())
    router.post('/login', [SessionController, 'store']).as('login.store').use(middleware.guest())
    router.get('/login/two-factor', [SessionController, 'twoFactor']).as('login.two_factor').use(middleware.guest())
    router.post('/login/two-factor', [SessionController, 'verifyTwoFactor']).as('login.two_factor.store').use(middleware.guest())
    router.post('/logout', [SessionController, 'destroy']).as('logout').use(middleware.auth())
    // Single sign-on: the start is for signed-out visitors; the callback also ends a link started from the Security page.
    router.get('/auth/:provider', [SsoController, 'redirect']).as('sso.redirect').where('provider', SSO_PROVIDER).use(middleware.guest())
    router.get('/auth/:provider/callback', [SsoController, 'callback']).as('sso.callback').where('provider', SSO_PROVIDER)
  })
  .use([...webStack(), middleware.locale()])

await import('#start/routes_admin')

/** The user portal, /register, /docs, /status and the language picker (start/routes_portal.ts). */
await import('#start/routes_portal')
