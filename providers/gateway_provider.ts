import type { ApplicationService } from '@adonisjs/core/types'
import { Gateway } from '#gateway/gateway'

declare module '@adonisjs/core/types' {
  interface ContainerBindings {
    gateway: Gateway
  }
}

/**
 * Boots the gateway: applies pending migrations (every process, guarded by
 * an advisory lock; the web server hands them to a child process), then in
 * the HTTP server and tests builds the long-lived gateway (caches, metering
 * writer, change listener), and on first start creates the admin and any
 * channels given by env vars.
 */
export default class GatewayProvider {
  #gateway: Gateway | null = null
  #idleSettler: { stop(): void } | null = null
  #retention: { stop(): Promise<void> } | null = null
  #batchSweeper: { stop(): Promise<void> } | null = null
  #videoSweeper: { stop(): Promise<void> } | null = null
  #balanceTimer: { stop(): Promise<void> } | null = null
  #mailSender: import('#services/mail/mail_sender').MailSender | null = null

  constructor(protected app: ApplicationService) {}

  register() {
    this.app.container.singleton('gateway', async () => {
      const env = (await import('#start/env')).default
      const logger = await this.app.container.make('logger')
      this.#gateway = new Gateway({
        databaseUrl: env.get('DATABASE_URL'),
        logger,
        meterBatchSize: env.get('METER_BATCH_SIZE') ?? 200,
        meterFlushMs: env.get('METER_FLUSH_MS') ?? 5,
        spillDir: process.env.DATA_DIR,
        meterShutdownFlushMs: env.get('METER_SHUTDOWN_FLUSH_MS') ?? 10_000,
        listen: true,
        maxAttempts: env.get('ROUTE_MAX_ATTEMPTS') ?? 3,
        maxBackoffMs: env.get('ROUTE_MAX_BACKOFF_MS') ?? 1000,
        circuitFailures: env.get('CIRCUIT_FAILURES') ?? 3,
        circuitCooldownMs: env.get('CIRCUIT_COOLDOWN_MS') ?? 30_000,
        responsesStoreDays: env.get('RESPONSES_STORE_DAYS') ?? 30,
        responsesStoreMaxBytes: (env.get('RESPONSES_STORE_MAX_KB') ?? 1024) * 1024,
        responsesBackgroundMax: env.get('RESPONSES_BACKGROUND_MAX') ?? 16,
        responsesBackgroundMaxMs: (env.get('RESPONSES_BACKGROUND_MAX_MINUTES') ?? 60) * 60_000,
        responsesBackgroundEventsBytes: (env.get('RESPONSES_BACKGROUND_EVENTS_MB') ?? 256) * 1024 * 1024,
        logExportShutdownMs: env.get('LOG_EXPORT_SHUTDOWN_MS') ?? 5_000,
      })
      this.#gateway.metricsAccess = { token: env.get('METRICS_TOKEN') || null, public: env.get('METRICS_PUBLIC') ?? false }
      return this.#gateway
    })
  }

  async boot() {
    const pg = await import('pg')
    // bigint ids and counters as numbers (they stay far below 2^53); numeric stays a string.
    pg.default.types.setTypeParser(20, (value: string) => Number(value))
  }

  async start() {
    await this.#waitForDatabase()
    if (this.app.getEnvironment() === 'web') await this.#migrateInChild()
    await this.#migrate()
  }

  /**
   * An external database (DATABASE_URL) may come up after the gateway (a
   * compose file starting both): wait for it, up to DATABASE_WAIT_SECONDS
   * (30; 0: not at all), saying once what is awaited, instead of failing on
   * the first refused connection. A refusal that waiting cannot mend (a
   * wrong password, a missing database) fails at once. The embedded
   * Postgres is already up here (start/runtime.ts waits for it).
   */
  async #waitForDatabase() {
    const { runtimeState, StartupError } = await import('#start/runtime')
    if (!runtimeState()?.externalDatabase || this.app.getEnvironment() === 'test') return
    const env = (await import('#start/env')).default
    const url = env.get('DATABASE_URL')
    const seconds = Number(process.env.DATABASE_WAIT_SECONDS ?? 30)
    const deadline = Date.now() + (Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0)
    const { default: pg } = await import('pg')
    const where = describeDatabase(url)
    let said = false
    for (;;) {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
      try {
        await client.connect()
        await client.query('SELECT 1')
        if (said) process.stderr.write(`gateway: the database at ${where} answers\n`)
        return
      } catch (error: any) {
        const reason = error?.code || error?.message || String(error)
        // Postgres answered and refused (auth, missing database, ...): waiting will not help.
        const refusedByPostgres = typeof error?.code === 'string' && /^[0-9A-Z]{5}$/.test(error.code) && !/^(57P03|08\w{3})$/.test(error.code)
        if (refusedByPostgres || Date.now() >= deadline) {
          throw new StartupError(`cannot use the database at ${where} (DATABASE_URL): ${error?.message || reason}`)
        }
        if (!said) process.stderr.write(`gateway: waiting for the database at ${where} (${reason}), up to ${seconds} s...\n`)
        said = true
        await new Promise((resolve) => setTimeout(resolve, 1000))
      } finally {
        await client.end().catch(() => {})
      }
    }
  }

  /**
   * The server hands pending migrations to a short-lived `ace migration:run`
   * (first start, upgrades): a process that ran them itself keeps Lucid's
   * migration runner, the schema builder and every migration file in its heap
   * for good, and measured 5-12% more CPU per request for the rest of its
   * life (docs/benchmarks.md, sixth pass). The child attaches to the same
   * database; #migrate() then finds nothing pending. Should the child fail,
   * #migrate() runs them here and reports the error as before.
   */
  async #migrateInChild() {
    const db = await this.app.container.make('lucid.db')
    if (!(await this.#hasPendingMigrations(db))) return
    const { spawn } = await import('node:child_process')
    const logger = await this.app.container.make('logger')
    const started = Date.now()
    // stdout ignored: the child's own boot applies them (this provider, console side), and the
    // command then only says "Already up to date". Errors reach stderr.
    const child = spawn(process.execPath, [this.app.makePath('ace.js'), 'migration:run', '--force'], {
      // The server's own working directory: a relative DATA_DIR must name the same database.
      cwd: process.cwd(),
      env: process.env,
      stdio: ['ignore', 'ignore', 'inherit'],
    })
    const code = await new Promise<number | null>((resolve) => {
      child.once('error', () => resolve(null))
      child.once('exit', (exitCode) => resolve(exitCode))
    })
    if (code === 0) logger.info(`pending migrations applied by a child process in ${Date.now() - started} ms`)
    else logger.warn(`ace migration:run exited with ${code}: applying the migrations in the server process`)
  }

  async ready() {
    const environment = this.app.getEnvironment()
    if (environment !== 'web' && environment !== 'test') return
    const gateway = await this.app.container.make('gateway')
    // A stop signal during boot waits for it (bin/server.ts): closing the pools
    // under a half-done boot would fail it instead of stopping cleanly.
    gateway.booting = (async () => {
      if (environment === 'web') {
        const { firstRun } = await import('#services/first_run')
        await firstRun()
        // Secrets saved with another APP_KEY: said once at start (the panel says it per channel).
        const { unreadableSecrets, unreadableSecretsWarning } = await import('#services/app_key_check')
        const warning = unreadableSecretsWarning(await unreadableSecrets())
        if (warning) (await this.app.container.make('logger')).warn(warning)
      }
      const env = (await import('#start/env')).default
      gateway.service.maxInFlight = env.get('MAX_INFLIGHT') ?? 8192
      gateway.service.litellmHeaders = env.get('LITELLM_HEADERS') ?? true
      gateway.service.deploymentHeaders = env.get('LITELLM_DEPLOYMENT_HEADERS') ?? false
      const logMode = env.get('LOG_BODIES') ?? 'off'
      if (logMode !== 'off') await gateway.logBodies(logMode, (env.get('LOG_BODIES_MAX_KB') ?? 64) * 1024)
      {
        // Log export (Langfuse, OTLP, a webhook): built only when a destination is named; off, the meter tests null.
        const { logExporterFrom } = await import('#gateway/log_export/log_export_config')
        const exporter = logExporterFrom(
          {
            LANGFUSE_PUBLIC_KEY: env.get('LANGFUSE_PUBLIC_KEY'),
            LANGFUSE_SECRET_KEY: env.get('LANGFUSE_SECRET_KEY'),
            LANGFUSE_HOST: env.get('LANGFUSE_HOST'),
            OTEL_EXPORTER_OTLP_ENDPOINT: env.get('OTEL_EXPORTER_OTLP_ENDPOINT'),
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: env.get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'),
            OTEL_EXPORTER_OTLP_HEADERS: env.get('OTEL_EXPORTER_OTLP_HEADERS'),
            OTEL_SERVICE_NAME: env.get('OTEL_SERVICE_NAME'),
            LOG_EXPORT_WEBHOOK_URL: env.get('LOG_EXPORT_WEBHOOK_URL'),
            LOG_EXPORT_BODIES: env.get('LOG_EXPORT_BODIES'),
            LOG_EXPORT_BATCH_SIZE: env.get('LOG_EXPORT_BATCH_SIZE'),
            LOG_EXPORT_INTERVAL_MS: env.get('LOG_EXPORT_INTERVAL_MS'),
            LOG_EXPORT_MAX_QUEUE: env.get('LOG_EXPORT_MAX_QUEUE'),
            LOG_EXPORT_TIMEOUT_MS: env.get('LOG_EXPORT_TIMEOUT_MS'),
            LOG_EXPORT_MAX_QUEUE_MB: env.get('LOG_EXPORT_MAX_QUEUE_MB'),
            LOG_EXPORT_MAX_AGE_S: env.get('LOG_EXPORT_MAX_AGE_S'),
          },
          gateway.exportNames,
          await this.app.container.make('logger')
        )
        if (exporter) await gateway.setLogExport(exporter)
      }
      const alertUrl = env.get('ALERT_WEBHOOK_URL')
      if (alertUrl) {
        const { AlertSender } = await import('#gateway/alerts/alert_sender')
        gateway.alerts = new AlertSender({
          url: alertUrl,
          format: env.get('ALERT_WEBHOOK_FORMAT') ?? (/discord(app)?\.com\//.test(alertUrl) ? 'discord' : 'slack'),
          repeatMs: (env.get('ALERT_REPEAT_MINUTES') ?? 60) * 60_000,
          logger: await this.app.container.make('logger'),
        })
      }
      const cacheMb = env.get('RESPONSE_CACHE_MB') ?? 64
      if (cacheMb > 0) {
        const { ResponseCache } = await import('#gateway/cache/response_cache')
        gateway.service.responseCache = new ResponseCache(cacheMb * 1024 * 1024, env.get('RESPONSE_CACHE_MAX_TTL_S') ?? 86_400)
      }
      await gateway.start()
      // The panel's single sign-on providers, in memory for the login pages (kept fresh by the listener's notices).
      const { loadSsoPanelSettings } = await import('#services/sso/sso_panel_settings')
      await loadSsoPanelSettings()
    })()
    await gateway.booting
    await this.#startMailSender(gateway)
    if (environment === 'web') {
      const { settleHeap, IdleHeapSettler } = await import('#start/settle_heap')
      const logger = await this.app.container.make('logger')
      if (process.env.SETTLE_HEAP !== 'false') {
        const settled = settleHeap()
        if (settled) logger.info(`heap settled after boot: RSS ${settled.beforeMb} -> ${settled.afterMb} MB in ${settled.ms} ms`)
      }
      const env = (await import('#start/env')).default
      const idleSettler = new IdleHeapSettler({
        idleMs: (env.get('HEAP_IDLE_SETTLE_SECONDS') ?? 300) * 1000,
        activity: () => gateway.service.admitted,
        busy: () => gateway.service.inFlight,
        settle: settleHeap,
        log: (message) => logger.info(message),
      })
      idleSettler.start()
      this.#idleSettler = idleSettler
      // Usage log retention: an hourly prune in the background (USAGE_RETENTION_DAYS; off by default),
      // and of the stored Responses past their expiry (also with the store off: rows kept before it was turned off expire).
      const { retentionDays } = await import('#services/usage_retention')
      // Always on: days marked stale (an upgrade that adds a rollup dimension marks a whole history) are rolled up here,
      // in the background, rather than in the first request that reads a long range.
      {
        const { UsageRetentionTimer } = await import('#services/usage_retention_timer')
        const { RETENTION_SWEEPS } = await import('#services/retention_sweeps')
        const { rollUpStaleDays } = await import('#services/usage_rollup')
        const retention = new UsageRetentionTimer({
          days: retentionDays,
          log: (message) => logger.info(message),
          // Stored Responses, provider files, Realtime client secrets past their expiry: the list usage:prune runs too.
          sweeps: RETENTION_SWEEPS,
          rollUpStale: (signal) => rollUpStaleDays(400, signal),
        })
        retention.start()
        this.#retention = retention
      }
      // Unfinished batches looked at upstream every BATCH_POLL_SECONDS: billed once finished, their holds released.
      const { BatchSweeper, batchPollMs } = await import('#gateway/batches/batch_sweeper')
      const sweeper = new BatchSweeper(gateway.batches, batchPollMs(), (message) => logger.warn(message))
      sweeper.start()
      this.#batchSweeper = sweeper
      // Unbilled videos looked at upstream (each as often as its age calls for): billed once finished, in any instance.
      const { videoPollMs } = await import('#gateway/videos/video_service')
      const videoSweeper = new BatchSweeper(gateway.videos, videoPollMs(), (message) => logger.warn(message))
      videoSweeper.start()
      this.#videoSweeper = videoSweeper
      // Channel balances asked of their upstreams every CHANNEL_BALANCE_REFRESH_MINUTES (off unless set).
      const balanceMinutes = env.get('CHANNEL_BALANCE_REFRESH_MINUTES') ?? 0
      if (balanceMinutes > 0) {
        const { ChannelBalanceTimer } = await import('#services/channel_balance_timer')
        const { lowBalanceObserver } = await import('#services/channel_balance_alert')
        const balances = new ChannelBalanceTimer({
          intervalMs: Math.max(5, balanceMinutes) * 60_000,
          observe: lowBalanceObserver(gateway),
          log: (message) => logger.warn(message),
        })
        balances.start()
        this.#balanceTimer = balances
      }
    }
    gateway.ready = true
  }

  async shutdown() {
    const env = (await import('#start/env')).default
    const logger = await this.app.container.make('logger')
    // Ace commands never build the gateway and print their own results on stdout
    // (key:create's last line is the key): they log nothing here.
    const served = this.#gateway !== null
    this.#idleSettler?.stop()
    // The e-mail sender takes no more rows and waits (bounded) for the sends under way, alongside the drain below;
    // the rest stays queued for the next start.
    const mailStopped = this.#mailSender?.stop(Math.min(10_000, env.get('SHUTDOWN_GRACE_MS') ?? 30_000))
    // A prune under way stops after its batch, before the pools close.
    await this.#retention?.stop()
    // A sweep under way ends before the meter is flushed and closed; its upstream reads are ended first
    // (a dripping upstream would hold the shutdown for the read deadline).
    this.#gateway?.batches.stopReads()
    await this.#batchSweeper?.stop()
    await this.#videoSweeper?.stop()
    await this.#balanceTimer?.stop()
    await this.#gateway?.stop(env.get('SHUTDOWN_GRACE_MS') ?? 30_000)
    if (served) logger.info('shutdown: requests drained, metering flushed')
    await mailStopped
    // Messages queued during the drain (a low-balance notice of the last batch, a reset link) are stored before
    // the pools close: they are sent at the next start.
    if (this.#mailSender) {
      const { mailStored } = await import('#services/mail/mail_outbox')
      await mailStored(3_000)
    }
    const { runtimeState } = await import('#start/runtime')
    const state = runtimeState()
    if (state?.ownsDatabase) {
      const db = await this.app.container.make('lucid.db')
      await db.manager.closeAll()
      await state.stopDatabase()
      if (served) logger.info('shutdown: embedded database released')
    }
  }

  /**
   * This process's sender of the e-mail outbox (web and test): woken by a
   * message queued here or, through the change listener, by any instance.
   */
  async #startMailSender(gateway: import('#gateway/gateway').Gateway) {
    const { MailSender } = await import('#services/mail/mail_sender')
    const { whenMailQueued, setSenderSettled } = await import('#services/mail/mail_outbox')
    const logger = await this.app.container.make('logger')
    const sender = new MailSender({ log: (level, message, fields) => logger[level](fields ?? {}, message) })
    whenMailQueued(() => sender.wake())
    setSenderSettled(() => sender.settled())
    gateway.mailSender = sender
    sender.start()
    this.#mailSender = sender
  }

  /**
   * Applies pending migrations. Processes start concurrently (the server and
   * ace commands), and Lucid's own lock is taken and released on whatever
   * pooled connection comes first, so it can fail either way. Instead, one
   * dedicated connection holds a Postgres advisory lock (waiting, not
   * failing) around "anything pending? run it".
   */
  async #migrate() {
    const { MigrationRunner } = await import('@adonisjs/lucid/migration')
    const { default: pg } = await import('pg')
    const env = (await import('#start/env')).default
    const db = await this.app.container.make('lucid.db')
    const lock = new pg.Client({ connectionString: env.get('DATABASE_URL') })
    await lock.connect()
    try {
      await lock.query('SELECT pg_advisory_lock(727274)')
      if (!(await this.#hasPendingMigrations(db))) return
      const runner = new MigrationRunner(db, this.app, { direction: 'up', dryRun: false, disableLocks: true })
      await runner.run()
      if (runner.error) throw runner.error
    } finally {
      await lock.query('SELECT pg_advisory_unlock(727274)').catch(() => {})
      await lock.end().catch(() => {})
    }
  }

  async #hasPendingMigrations(db: import('@adonisjs/lucid/database').Database): Promise<boolean> {
    const { readdir } = await import('node:fs/promises')
    const files = (await readdir(this.app.makePath('database/migrations'))).filter((f) => /\.(ts|js)$/.test(f))
    const hasTable = await db.connection().schema.hasTable('adonis_schema')
    if (!hasTable) return true
    const done = new Set((await db.from('adonis_schema').select('name')).map((row) => String(row.name).split('/').pop()))
    return files.some((file) => !done.has(file.replace(/\.(ts|js)$/, '')))
  }
}

/** host:port/database of a connection URL, without its credentials (for messages). */
function describeDatabase(url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port || 5432}${parsed.pathname}`
  } catch {
    return 'DATABASE_URL'
  }
}
