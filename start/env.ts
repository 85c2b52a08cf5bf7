/*
| Environment variables, validated once at boot. Defaults for a fresh clone
| are filled in by start/runtime.ts before this file runs.
*/
import { Env } from '@adonisjs/core/env'
import { parseBalanceAlertThresholds } from '#services/balance_alert_thresholds'

export default await Env.create(new URL('../', import.meta.url), {
  NODE_ENV: Env.schema.enum(['development', 'production', 'test'] as const),
  PORT: Env.schema.number(),
  HOST: Env.schema.string({ format: 'host' }),
  APP_KEY: Env.schema.secret(),
  /** Keys secrets may still be saved with after an APP_KEY rotation (comma-separated; config/encryption.ts) */
  APP_KEY_PREVIOUS: Env.schema.secret.optional(),
  APP_URL: Env.schema.string.optional(),
  LOG_LEVEL: Env.schema.string(),
  DATA_DIR: Env.schema.string(),
  DATABASE_URL: Env.schema.string(),
  DB_POOL_MAX: Env.schema.number.optional(),

  /** Prefix of newly issued API keys */
  API_KEY_PREFIX: Env.schema.string.optional(),
  /** Secure flag on the admin session cookie (set true behind HTTPS) */
  COOKIE_SECURE: Env.schema.boolean.optional(),

  /** First-start bootstrap */
  ADMIN_EMAIL: Env.schema.string.optional(),
  ADMIN_PASSWORD: Env.schema.string.optional(),
  OPENAI_API_KEY: Env.schema.string.optional(),
  OPENROUTER_API_KEY: Env.schema.string.optional(),
  GEMINI_API_KEY: Env.schema.string.optional(),
  DEEPSEEK_API_KEY: Env.schema.string.optional(),
  ZAI_API_KEY: Env.schema.string.optional(),
  ANTHROPIC_API_KEY: Env.schema.string.optional(),

  /** Failover: channels tried per request, max pause between attempts; circuit breaker */
  ROUTE_MAX_ATTEMPTS: Env.schema.number.optional(),
  ROUTE_MAX_BACKOFF_MS: Env.schema.number.optional(),
  CIRCUIT_FAILURES: Env.schema.number.optional(),
  CIRCUIT_COOLDOWN_MS: Env.schema.number.optional(),
  UPSTREAM_CONNECT_TIMEOUT_MS: Env.schema.number.optional(),
  UPSTREAM_FIRST_BYTE_TIMEOUT_MS: Env.schema.number.optional(),
  UPSTREAM_IDLE_TIMEOUT_MS: Env.schema.number.optional(),
  UPSTREAM_TOTAL_TIMEOUT_MS: Env.schema.number.optional(),

  /** Rate-limit counters: memory (one instance) or database (shared by instances) */
  LIMITER_STORE: Env.schema.enum.optional(['memory', 'database'] as const),
  /** Bound on upstream requests in flight per instance; beyond it, 503 */
  MAX_INFLIGHT: Env.schema.number.optional(),
  /** LiteLLM's x-litellm-* response headers on generations (on by default; false: none) */
  LITELLM_HEADERS: Env.schema.boolean.optional(),
  /** LiteLLM's x-litellm-model-id / x-litellm-model-api-base on answers: the channel that served (off by default) */
  LITELLM_DEPLOYMENT_HEADERS: Env.schema.boolean.optional(),
  /** Graceful shutdown: how long in-flight requests may take to finish (ms) */
  SHUTDOWN_GRACE_MS: Env.schema.number.optional(),

  /** Request bodies: size limits per endpoint (MB), bytes held at once (MB), upload time limit (ms) */
  BODY_LIMIT_GENERATION_MB: Env.schema.number.optional(),
  BODY_LIMIT_EMBEDDINGS_MB: Env.schema.number.optional(),
  BODY_LIMIT_IMAGES_MB: Env.schema.number.optional(),
  AUDIO_MAX_MB: Env.schema.number.optional(),
  /** Files API uploads (batch input files), MB */
  FILE_UPLOAD_MAX_MB: Env.schema.number.optional(),
  /** Provider file uploads (streamed): Anthropic's Files API, Gemini's uploads; PROVIDER_FILE_MAX_MB lowers both, MB */
  ANTHROPIC_FILE_MAX_MB: Env.schema.number.optional(),
  GEMINI_FILE_MAX_MB: Env.schema.number.optional(),
  PROVIDER_FILE_MAX_MB: Env.schema.number.optional(),
  /** A message batch's creation body (POST /v1/messages/batches), MB */
  MESSAGE_BATCH_MAX_MB: Env.schema.number.optional(),
  /** Realtime sessions (WebSocket /v1/realtime): longest session, largest frame (app/gateway/realtime/realtime_limits.ts) */
  REALTIME_MAX_SESSION_MINUTES: Env.schema.number.optional(),
  REALTIME_MAX_MESSAGE_MB: Env.schema.number.optional(),
  BODY_INFLIGHT_MAX_MB: Env.schema.number.optional(),
  BODY_TIMEOUT_MS: Env.schema.number.optional(),

  /** Self-service registration at /register (false closes it whatever the panel says) */
  ALLOW_REGISTRATION: Env.schema.boolean.optional(),
  /**
   * Single sign-on for the portal and the panel (app/services/sso/; set in the environment only):
   * a generic OpenID Connect provider (issuer, client, scopes, the button's label; linking an existing
   * account by its verified e-mail only with OIDC_LINK_BY_EMAIL=true) and GitHub OAuth. The two
   * GITHUB_*_BASE_URL are for tests only (a mock GitHub); production uses github.com.
   */
  OIDC_ISSUER: Env.schema.string.optional(),
  OIDC_CLIENT_ID: Env.schema.string.optional(),
  OIDC_CLIENT_SECRET: Env.schema.string.optional(),
  OIDC_SCOPES: Env.schema.string.optional(),
  OIDC_BUTTON_LABEL: Env.schema.string.optional(),
  OIDC_LINK_BY_EMAIL: Env.schema.boolean.optional(),
  GITHUB_CLIENT_ID: Env.schema.string.optional(),
  GITHUB_CLIENT_SECRET: Env.schema.string.optional(),
  GITHUB_OAUTH_BASE_URL: Env.schema.string.optional(),
  GITHUB_API_BASE_URL: Env.schema.string.optional(),
  /** Proxies whose X-Forwarded-Proto/Host are believed (/docs base URL): "loopback", "true", or IPs/CIDRs */
  TRUSTED_PROXIES: Env.schema.string.optional(),

  /** Batch API: the share of the model's price a batch pays (percent, 50 as OpenAI), and how often unfinished batches are polled (s) */
  BATCH_PRICE_PERCENT: Env.schema.number.optional(),
  BATCH_POLL_SECONDS: Env.schema.number.optional(),
  BATCH_READ_DEADLINE_SECONDS: Env.schema.number.optional(),

  /** Metering write-behind: max events per transaction and max wait (ms) */
  METER_BATCH_SIZE: Env.schema.number.optional(),
  METER_FLUSH_MS: Env.schema.number.optional(),
  METER_SHUTDOWN_FLUSH_MS: Env.schema.number.optional(),

  /**
   * Usage log retention: days of request rows kept (0 or unset: forever). The server prunes older
   * ones hourly (app/services/usage_retention_timer.ts); at least 31 (MIN_RETENTION_DAYS in
   * app/services/usage_retention.ts): a key's monthly spend cap and the portal's 30-day chart read the rows.
   */
  USAGE_RETENTION_DAYS: (key: string, value?: string): number | undefined => {
    if (value === undefined || value.trim() === '') return undefined
    const days = Number(value)
    if (!Number.isInteger(days) || days < 0 || (days > 0 && days < 31)) {
      throw new Error(`${key} must be 0 (keep every usage row) or a whole number of days, at least 31; got "${value}"`)
    }
    return days
  },

  /**
   * Stored Responses (app/gateway/responses_store/): days a response the gateway stored is kept
   * (default 30; 0: nothing stored, previous_response_id only on Responses-native channels), and
   * the largest one kept (its input + output items, KB; default 1024: a larger one is not stored)
   */
  RESPONSES_STORE_DAYS: Env.schema.number.optional(),
  RESPONSES_STORE_MAX_KB: Env.schema.number.optional(),
  /**
   * Responses' background mode (`background: true`): background responses one user may have running at
   * once (default 16; beyond, 429), and minutes an upstream's is polled before it is cancelled there (60)
   */
  RESPONSES_BACKGROUND_MAX: Env.schema.number.optional(),
  RESPONSES_BACKGROUND_MAX_MINUTES: Env.schema.number.optional(),
  RESPONSES_BACKGROUND_EVENTS_MB: Env.schema.number.optional(),

  /** Seconds without requests before the heap is settled (returned to the OS); 0 = never (start/settle_heap.ts) */
  HEAP_IDLE_SETTLE_SECONDS: Env.schema.number.optional(),

  /**
   * GET /metrics (Prometheus): besides an administrator's management key, a bearer token that may
   * read the metrics only (METRICS_TOKEN), or no authentication at all (METRICS_PUBLIC=true; off by default)
   */
  METRICS_TOKEN: Env.schema.string.optional(),
  METRICS_PUBLIC: Env.schema.boolean.optional(),

  /** Exact-match response cache clients opt into (x-gateway-cache-ttl): memory bound (0: off) and longest TTL */
  RESPONSE_CACHE_MB: Env.schema.number.optional(),
  RESPONSE_CACHE_MAX_TTL_S: Env.schema.number.optional(),

  /** Request and response bodies kept for debugging: off, errors (failed calls), all; each cut at this many KB */
  LOG_BODIES: Env.schema.enum.optional(['off', 'errors', 'all'] as const),
  LOG_BODIES_MAX_KB: Env.schema.number.optional(),

  /**
   * Log export of every metered request (app/gateway/log_export/): Langfuse's ingestion API, an OTLP/HTTP
   * JSON traces endpoint, a JSON-lines webhook; the bodies LOG_BODIES keeps only with LOG_EXPORT_BODIES
   */
  LANGFUSE_PUBLIC_KEY: Env.schema.string.optional(),
  LANGFUSE_SECRET_KEY: Env.schema.string.optional(),
  LANGFUSE_HOST: Env.schema.string.optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: Env.schema.string.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Env.schema.string.optional(),
  OTEL_EXPORTER_OTLP_HEADERS: Env.schema.string.optional(),
  OTEL_SERVICE_NAME: Env.schema.string.optional(),
  LOG_EXPORT_WEBHOOK_URL: Env.schema.string.optional(),
  LOG_EXPORT_BODIES: Env.schema.boolean.optional(),
  LOG_EXPORT_BATCH_SIZE: Env.schema.number.optional(),
  LOG_EXPORT_INTERVAL_MS: Env.schema.number.optional(),
  LOG_EXPORT_MAX_QUEUE: Env.schema.number.optional(),
  LOG_EXPORT_TIMEOUT_MS: Env.schema.number.optional(),
  LOG_EXPORT_MAX_QUEUE_MB: Env.schema.number.optional(),
  LOG_EXPORT_MAX_AGE_S: Env.schema.number.optional(),
  LOG_EXPORT_SHUTDOWN_MS: Env.schema.number.optional(),

  /** Operator alerts (channel disabled or failing, balance run out, key cap reached) to a chat webhook */
  ALERT_WEBHOOK_URL: Env.schema.string.optional(),
  ALERT_WEBHOOK_FORMAT: Env.schema.enum.optional(['slack', 'discord', 'json'] as const),
  ALERT_REPEAT_MINUTES: Env.schema.number.optional(),
  /** Users' own alert webhooks (app/services/user_webhook.ts) may reach loopback and private addresses (tests, a LAN) */
  USER_WEBHOOK_ALLOW_PRIVATE: Env.schema.boolean.optional(),
  /**
   * Channel balances (app/actions/channel_balance.ts): minutes between background checks of every
   * channel whose provider publishes one (0 or unset: only when asked), and the amount below which a
   * check sends the `channel.low_balance` alert (in the balance's currency; unset: no alert)
   */
  CHANNEL_BALANCE_REFRESH_MINUTES: Env.schema.number.optional(),
  /** `10` (USD) or `USD:10,CNY:70` (per currency): app/services/balance_alert_thresholds.ts */
  CHANNEL_BALANCE_ALERT_BELOW: (key: string, value?: string) =>
    value === undefined || value.trim() === '' ? undefined : parseBalanceAlertThresholds(key, value),

  /**
   * Outgoing e-mail (password reset, sign-up verification): SMTP_URL (smtp://user:pass@host:587,
   * smtps://... for TLS from the start) or SMTP_HOST and the rest; MAIL_FROM is the sender. When set,
   * they win over the panel's Settings > E-mail (app/services/mail/smtp_settings.ts).
   */
  SMTP_URL: Env.schema.string.optional(),
  SMTP_HOST: Env.schema.string.optional(),
  SMTP_PORT: Env.schema.number.optional(),
  SMTP_USER: Env.schema.string.optional(),
  SMTP_PASSWORD: Env.schema.string.optional(),
  SMTP_SECURE: Env.schema.boolean.optional(),
  MAIL_FROM: Env.schema.string.optional(),

  /** Card top-ups through Stripe Checkout (off unless the secret key is set) */
  STRIPE_SECRET_KEY: Env.schema.string.optional(),
  STRIPE_WEBHOOK_SECRET: Env.schema.string.optional(),
  STRIPE_API_BASE: Env.schema.string.optional(),
  /** Bounds of one card top-up, USD */
  TOPUP_MIN_USD: Env.schema.number.optional(),
  TOPUP_MAX_USD: Env.schema.number.optional(),
})
