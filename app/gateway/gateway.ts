import { recordChannelSpeed } from '#gateway/routing/channel_speed'
import { Catalog } from '#gateway/catalog'
import { RequestMetrics } from '#gateway/metrics/request_metrics'
import type { MetricsAccess } from '#gateway/metrics/metrics_access'
import { ChangeListener } from '#gateway/change_listener'
import { hangUpOrphanCalls } from '#gateway/realtime/realtime_calls'
import { GatewayService } from '#gateway/gateway_service'
import { UsageMeter } from '#gateway/metering/usage_meter'
import { closePools } from '#gateway/upstream/upstream_pool'
import { ChannelHealth, type HealthTransition } from '#gateway/routing/channel_health'
import { setDispatchPolicy } from '#gateway/upstream/dispatcher'
import db from '@adonisjs/lucid/services/db'
import type { Logger } from '@adonisjs/core/logger'
import type { AlertSender } from '#gateway/alerts/alert_sender'
import type { LogExporter } from '#gateway/log_export/log_exporter'
import type { ExportNames } from '#gateway/log_export/export_row'
import { ExportKeyNames } from '#gateway/log_export/key_names'
import { RequestLogWriter, type BodyLogMode } from '#gateway/logs/request_log_writer'
import type { MeterEvent } from '#gateway/metering/meter_event'
import type { UserState } from '#gateway/types'
import { displayUsd } from '#gateway/metering/money'
import { appUrl } from '#config/app'
import { applyModelBudgetSpend } from '#gateway/limits/model_budgets'
import { BatchService } from '#gateway/batches/batch_service'
import { VideoService, videoMaxAgeMs } from '#gateway/videos/video_service'
import { ResponseStore } from '#gateway/responses_store/response_store'
import { BackgroundRuns } from '#gateway/responses_store/background_runs'
import { BackgroundSweeper, newInstanceId } from '#gateway/responses_store/background_sweeper'
import { ConversationStore } from '#gateway/conversations/conversation_store'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { LowBalanceWatch } from '#gateway/metering/low_balance_watch'
import { claimLowBalanceNotices } from '#services/mail/low_balance_notice'
import { appSettingChanged, reloadAppSettings } from '#services/app_setting_notices'
import { BudgetWatch } from '#gateway/metering/budget_watch'
import { claimBudgetAlerts } from '#services/budget_alerts'
import { providerFiles } from '#gateway/provider_files/provider_file_store'

export interface GatewayOptions {
  databaseUrl: string
  logger: Logger
  meterBatchSize: number
  meterFlushMs: number
  /** DATA_DIR: where metering spills what the database cannot take */
  spillDir?: string
  /** Longest the shutdown flush waits for the database before spilling the rest */
  meterShutdownFlushMs?: number
  /** Listen for configuration changes (off for one-shot ace commands) */
  listen: boolean
  /** Failover and circuit breaking */
  maxAttempts: number
  maxBackoffMs: number
  circuitFailures: number
  circuitCooldownMs: number
  /** Stored Responses: days kept (RESPONSES_STORE_DAYS, default 30; 0: none) and bytes per response (RESPONSES_STORE_MAX_KB) */
  responsesStoreDays?: number
  responsesStoreMaxBytes?: number
  /** Background responses per user at once (RESPONSES_BACKGROUND_MAX, default 16), upstream polling from this, ms, for at most this long */
  responsesBackgroundMax?: number
  responsesBackgroundPollMs?: number
  responsesBackgroundMaxMs?: number
  /** Bytes of background runs' events this instance keeps for late or resumed streams (RESPONSES_BACKGROUND_EVENTS_MB, default 256) */
  responsesBackgroundEventsBytes?: number
  /** Longest the shutdown waits for log export's collectors (LOG_EXPORT_SHUTDOWN_MS) */
  logExportShutdownMs?: number
}

/**
 * The gateway's long-lived objects, built once at boot and bound in the
 * container by providers/gateway_provider.ts.
 */
export class Gateway {
  readonly catalog = new Catalog()
  /** GET /metrics' per-request figures, fed by the meter's record hook below (metrics/request_metrics.ts) */
  readonly metrics = new RequestMetrics(this.catalog)
  /** Who may read GET /metrics besides a management key (METRICS_TOKEN, METRICS_PUBLIC: metrics/metrics_access.ts) */
  metricsAccess: MetricsAccess = { token: null, public: false }
  readonly meter: UsageMeter
  readonly service: GatewayService
  readonly health: ChannelHealth
  /** The Files and Batch API's batches: their holds, bills and sweep (batches/) */
  readonly batches: BatchService
  /** Video generations (OpenAI's Videos API, Veo): their holds, bills and sweep (videos/) */
  readonly videos: VideoService
  /** Stored Responses: previous_response_id on every channel, GET/DELETE /v1/responses/{id} (responses_store/) */
  readonly responses: ResponseStore
  /** Background responses (`background: true`) this instance runs or waits to bill (responses_store/background_runs.ts) */
  readonly background: BackgroundRuns
  /** This process's id among the instances (its background runs' rows name it) and its heartbeat and sweep of dead ones' */
  readonly instanceId = newInstanceId()
  readonly backgroundSweeper: BackgroundSweeper
  /** The Conversations API's conversations and items (conversations/) */
  readonly conversations: ConversationStore
  #listener: ChangeListener | null = null
  /** The boot in progress (first run, caches, spill replay); a stop waits for it */
  booting: Promise<void> = Promise.resolve()
  /** Set once the boot is over (caches loaded, heap settled): /api/status reports it as `ready` */
  ready = false
  /** The operator's webhook for alerts (ALERT_WEBHOOK_URL); null when none */
  alerts: AlertSender | null = null
  /** This process's e-mail sender (app/services/mail/mail_sender.ts; web and test), woken when any instance queues a message */
  mailSender: import('#services/mail/mail_sender').MailSender | null = null
  /** Users' low-balance e-mails, checked after each metering batch commits (low_balance_watch.ts) */
  readonly lowBalance = new LowBalanceWatch(
    (userId) => this.catalog.loadedUser(userId),
    (userIds) => claimLowBalanceNotices(userIds),
    (error) => this.options.logger.error({ err: error }, 'low-balance notice check failed')
  )
  /** Budget alerts (a key's soft budget and 80 % / 100 % of its cap, a customer's soft budget), checked after each batch commits (budget_watch.ts) */
  readonly budgets = new BudgetWatch(
    (keyId) => this.catalog.loadedKey(keyId),
    (userId, endUser) => this.catalog.endUsers.policyOf(userId, endUser),
    (crossings) => claimBudgetAlerts(crossings, this.alerts),
    (error) => this.options.logger.error({ err: error }, 'budget alert check failed')
  )
  /** Request and response bodies kept for debugging (LOG_BODIES); null when off */
  requestLogs: RequestLogWriter | null = null
  /** Each metered request exported to Langfuse / OTLP / a webhook (log_export/); null when none is configured */
  logExport: LogExporter | null = null
  /** Names of keys the key cache lacks, read by log export once per batch (never per row, never on a request) */
  readonly #exportKeyNames = new ExportKeyNames((ids) => db.from('api_keys').whereIn('id', ids as number[]).select('id', 'name'))
  /** The names log export reads from the caches, behind the requests */
  readonly exportNames: ExportNames = {
    keyName: (keyId) => this.catalog.keyName(keyId) ?? this.#exportKeyNames.get(keyId),
    loadKeyNames: (keyIds) => this.#exportKeyNames.load(keyIds),
    teamAlias: (teamId) => this.catalog.teams.get(teamId)?.alias ?? null,
    channelName: (channelId) => this.catalog.channels.find((c) => c.id === channelId)?.name ?? null,
  }

  constructor(private options: GatewayOptions) {
    this.meter = new UsageMeter({
      connectionString: options.databaseUrl,
      batchSize: options.meterBatchSize,
      flushMs: options.meterFlushMs,
      logger: options.logger,
      spillDir: options.spillDir,
      onRecord: (event) => {
        this.metrics.record(event)
        // The channel's measured speed (OpenRouter's :nitro, provider.sort): one map lookup per answered row.
        recordChannelSpeed(event)
        const user = this.catalog.applyUsage(event.userId, event.costPico, event.usage.promptTokens, event.usage.completionTokens)
        if (event.apiKeyId !== null) this.catalog.applyKeySpend(event.apiKeyId, event.costPico, event.createdAt.getTime())
        // An end user's monthly spend (end_user_policies.ts): only rows that name one look.
        if (event.endUser) this.catalog.endUsers.applySpend(event.userId, event.endUser, event.costPico, event.createdAt.getTime())
        // A team's budget (teams/team_policies.ts): only rows of a team's key look.
        if (event.teamId != null) {
          this.catalog.teams.applySpend(event.teamId, event.costPico, event.createdAt.getTime())
          // ...and its organization's: only rows of an organization's team look.
          if (event.organizationId != null) this.catalog.teams.applyOrgSpend(event.organizationId, event.costPico, event.createdAt.getTime())
          // ...and the owner's in it: only rows admitted under a member's limits look.
          if (event.memberBudget) this.catalog.teams.applyMemberSpend(event.teamId, event.userId, event.costPico, event.createdAt.getTime())
        }
        // A key's budget for the model asked for (limits/model_budgets.ts): only rows admitted under one look.
        if (event.modelBudget != null) applyModelBudgetSpend(event.modelBudget, event.costPico, event.createdAt.getTime())
        // Two comparisons per priced request: an alert only when this charge emptied the balance.
        if (this.alerts !== null && event.costPico > 0n) this.#alertOnCharge(event, user)
      },
      onCommitted: (rows) => {
        this.lowBalance.committed(rows)
        this.budgets.committed(rows)
      },
    })
    // Another instance's batch may be the one that crossed: checked again once its charge is read here.
    this.catalog.onChargedReread = (userId, keyId) => {
      const row = [{ userId, apiKeyId: Number.isFinite(keyId) && keyId > 0 ? keyId : null }]
      this.lowBalance.committed(row)
      this.budgets.committed(row)
    }
    // A user or key (re)loaded from the database gets what the meter holds uncommitted added back.
    this.catalog.setPendingSource(this.meter)
    this.catalog.onWordFilterError = (error) =>
      options.logger.error({ err: error }, 'the stored sensitive-word list does not compile; the filter keeps its last good list')
    this.service = new GatewayService(this.catalog, this.meter)
    this.responses = new ResponseStore({
      days: options.responsesStoreDays ?? 30,
      maxBytes: options.responsesStoreMaxBytes ?? 1024 * 1024,
      log: (message) => options.logger.warn(message),
    })
    this.service.responses = this.responses
    this.background = new BackgroundRuns(
      {
        perUser: options.responsesBackgroundMax ?? 16,
        pollMs: options.responsesBackgroundPollMs ?? 1000,
        maxMs: options.responsesBackgroundMaxMs ?? 3_600_000,
        instanceId: this.instanceId,
        eventsMaxBytes: options.responsesBackgroundEventsBytes ?? 256 * 1024 * 1024,
        log: (message) => options.logger.warn(message),
      },
      this.responses,
      (id) => this.catalog.channels.find((c) => c.id === id)
    )
    this.backgroundSweeper = new BackgroundSweeper({
      instanceId: this.instanceId,
      log: (message) => options.logger.warn(message),
      // WebRTC calls of a dead instance run on unmetered (their sideband died with it): hung up.
      alsoSweep: (staleMs) => hangUpOrphanCalls(this, staleMs),
    })
    this.service.background = this.background
    this.conversations = new ConversationStore({
      days: options.responsesStoreDays ?? 30,
      maxBytes: bodyLimitFor('responses'),
      log: (message) => options.logger.warn(message),
    })
    this.service.conversations = this.conversations
    this.batches = new BatchService(this.catalog, this.meter, options.logger)
    this.videos = new VideoService(this.catalog, this.meter, options.logger, { maxAgeMs: videoMaxAgeMs() })
    this.health = new ChannelHealth(
      {
        failureThreshold: options.circuitFailures,
        baseCooldownMs: options.circuitCooldownMs,
        maxCooldownMs: Math.max(options.circuitCooldownMs, 300_000),
      },
      (transition) => this.#mirrorHealth(transition),
      (channelId) => this.#scheduleModelMirror(channelId)
    )
    setDispatchPolicy({
      health: this.health,
      maxAttempts: options.maxAttempts,
      maxBackoffMs: options.maxBackoffMs,
      disableChannel: (channelId, reason, cause) => this.#disableChannel(channelId, reason, cause),
      noteChannelError: (channelId, message) => this.#noteChannelError(channelId, message),
      accountProblemKeywords: () => this.catalog.accountProblemKeywords,
    })
  }

  /**
   * A charge that emptied the user's balance is told to the operator. (A key's
   * cap, 80 % and 100 %, is told once across instances by budgets, after the
   * batch commits: budget_watch.ts.)
   */
  #alertOnCharge(event: MeterEvent, user: UserState | undefined) {
    const alerts = this.alerts!
    if (user && user.balancePico <= 0n && user.balancePico + event.costPico > 0n) {
      alerts.notify('user.balance_exhausted', event.userId, async () => {
        const row = await db.from('users').where('id', event.userId).select('email').first()
        const balance = displayUsd(user.balancePico)
        return {
          text: `User ${row?.email ?? event.userId} has run out of balance ($${balance}): priced models answer 402 until a top-up. ${appUrl}/admin/users/${event.userId}`,
          data: { user_id: event.userId, email: row?.email ?? null, balance },
        }
      })
    }
  }

  /** A channel's name and provider for an alert's text. */
  #channelLabel(channelId: number) {
    const channel = this.catalog.channels.find((c) => c.id === channelId)
    return channel ? `"${channel.name}" (#${channelId}, ${channel.provider})` : `#${channelId}`
  }

  /** Circuit transitions are mirrored into the channels table, for admins (best effort). */
  #mirrorHealth(transition: HealthTransition) {
    if (transition.state === 'open' && this.alerts !== null) {
      const until = transition.until ? new Date(transition.until).toISOString().slice(11, 19) : 'later'
      this.alerts.notify('channel.circuit_open', transition.channelId, async () => ({
        text: `Channel ${this.#channelLabel(transition.channelId)} is failing: out of rotation until ${until} UTC, then tried again. Last error: ${transition.error ?? 'unknown'}. ${appUrl}/admin/channels/${transition.channelId}`,
        data: { channel_id: transition.channelId, until: transition.until ? new Date(transition.until).toISOString() : null, error: transition.error },
      }))
    }
    db.from('channels')
      .where('id', transition.channelId)
      .update({
        health: transition.state,
        cooldown_until: transition.until ? new Date(transition.until) : null,
        ...(transition.error ? { last_error: transition.error.slice(0, 1000), last_error_at: new Date() } : {}),
      })
      .catch((error) => this.options.logger.warn({ err: error }, 'could not record channel health'))
  }

  #modelMirrorDirty = new Set<number>()
  #modelMirrorTimer: NodeJS.Timeout | null = null

  /**
   * Per-model cool-downs are mirrored into channels.model_cooldowns for
   * admins, coalesced (at most one write per channel per 500 ms: a burst of
   * 429s must not become a burst of writes). Best effort.
   */
  #scheduleModelMirror(channelId: number) {
    this.#modelMirrorDirty.add(channelId)
    this.#modelMirrorTimer ??= setTimeout(() => this.#flushModelMirror(), 500).unref()
  }

  #flushModelMirror() {
    this.#modelMirrorTimer = null
    const now = Date.now()
    for (const channelId of this.#modelMirrorDirty) {
      const cooling: Record<string, { until: string; kind: string; reason: string }> = {}
      for (const c of this.health.modelCooldowns(channelId, now)) {
        cooling[c.model] = { until: new Date(c.until).toISOString(), kind: c.kind, reason: c.reason }
      }
      db.from('channels')
        .where('id', channelId)
        .update({ model_cooldowns: JSON.stringify(cooling) })
        .catch((error) => this.options.logger.warn({ err: error }, 'could not record model cool-downs'))
    }
    this.#modelMirrorDirty.clear()
  }

  /**
   * A bad upstream key, or an upstream account that cannot serve (out of credit, billing,
   * deactivated): out of rotation at once here, and for every instance via the database.
   */
  #disableChannel(channelId: number, reason: string, cause: 'key' | 'account' = 'key') {
    this.catalog.disableChannel(channelId, reason)
    this.options.logger.warn({ channelId, reason }, 'channel disabled')
    this.alerts?.notify('channel.disabled', channelId, async () => ({
      text:
        cause === 'account'
          ? `Channel ${this.#channelLabel(channelId)} was disabled by the gateway: ${reason}. Top up or fix its upstream account, then Test it on the panel to put it back. ${appUrl}/admin/channels/${channelId}`
          : `Channel ${this.#channelLabel(channelId)} was disabled by the gateway: ${reason}. Fix its upstream key, then Test it on the panel (or channel:test) to put it back. ${appUrl}/admin/channels/${channelId}`,
      data: { channel_id: channelId, reason, cause },
    }))
    db.from('channels')
      .where('id', channelId)
      .update({ enabled: false, disabled_reason: reason, auto_disabled_at: new Date(), last_error: reason, last_error_at: new Date() })
      .catch((error) => this.options.logger.error({ err: error }, 'could not disable channel'))
      .finally(() => this.catalog.disableWritten(channelId))
  }

  /** When each channel's last error was last noted (a flood of 404s writes once per window) */
  #noted = new Map<number, number>()

  /** An answer admins should see as the channel's last error, without it counting against the channel (best effort). */
  #noteChannelError(channelId: number, message: string) {
    const now = Date.now()
    if (now - (this.#noted.get(channelId) ?? 0) < 10_000) return
    this.#noted.set(channelId, now)
    db.from('channels')
      .where('id', channelId)
      .update({ last_error: message.slice(0, 1000), last_error_at: new Date() })
      .catch((error) => this.options.logger.warn({ err: error }, 'could not record channel error'))
  }

  /** Turns body logging on or off (LOG_BODIES at boot; tests). */
  async logBodies(mode: BodyLogMode, maxBodyBytes = 64 * 1024) {
    await this.requestLogs?.close()
    this.requestLogs =
      mode === 'off'
        ? null
        : new RequestLogWriter({ connectionString: this.options.databaseUrl, mode, maxBodyBytes, logger: this.options.logger })
    this.service.bodyLog = this.requestLogs
    if (this.requestLogs) this.requestLogs.exportBodies = this.logExport?.wantsBodies ? this.logExport : null
  }

  /**
   * Turns log export on (an exporter) or off (null; LOG_EXPORT_* at boot, tests): the meter hands
   * it each committed batch, the body log each call's bodies when it wants them.
   */
  async setLogExport(exporter: LogExporter | null, closeGraceMs = 0) {
    const previous = this.logExport
    this.logExport = exporter
    this.meter.exporter = exporter
    if (this.requestLogs) this.requestLogs.exportBodies = exporter?.wantsBodies ? exporter : null
    if (previous && previous !== exporter) await previous.close(closeGraceMs)
  }

  async start() {
    if (this.options.listen) {
      this.#listener = new ChangeListener(
        this.options.databaseUrl,
        this.options.logger,
        // Charges this instance's meter wrote are in its caches already (applied at record time).
        (payload, pid) => {
          // A message queued in the e-mail outbox (migration 1023), by any instance: this one's sender claims it now.
          if (payload === 'mail_outbox:') return this.mailSender?.wake()
          // A stored response deleted (responses_store/): not the catalog's business.
          if (payload.startsWith('stored_responses:')) return this.responses.forget(payload.slice('stored_responses:'.length))
          // A provider file or cache deleted (by its owner on any instance, or expired): its holder read again when next named.
          if (payload.startsWith('provider_files:')) return providerFiles.forgetNotice(payload)
          // A background response cancelled through another instance: stopped if it runs here.
          if (payload.startsWith('stored_responses_cancel:')) return this.background.get(payload.slice('stored_responses_cancel:'.length))?.cancel()
          // Settings the pages keep in memory (single sign-on); the catalog reloads those the API path obeys.
          if (payload.startsWith('app_settings:')) {
            appSettingChanged(payload.slice('app_settings:'.length)).catch((error) => this.options.logger.warn({ err: error }, 'setting reload failed'))
          }
          return payload.startsWith('charged:') && this.meter.writesFrom(pid) ? undefined : this.catalog.handleChange(payload)
        },
        () => {
          // Deletes told while the listener was away are unknown: what the store remembers goes too.
          this.responses.forgetCached()
          providerFiles.forgetAll()
          reloadAppSettings().catch(() => {})
          // Messages queued while the listener was away are due: the sender looks now rather than at its next poll.
          this.mailSender?.wake()
          return this.catalog.reload()
        }
      )
      await this.#listener.start()
    }
    await this.catalog.ensureLoaded()
    // Unbilled batches hold money on their owners from the first request on, across restarts.
    await this.batches.holds.sync()
    await this.videos.holds.sync()
    // Usage a previous run could not write (crash, outage at shutdown) is committed before serving.
    await this.meter.replayOrphans()
    // This instance's heartbeat before its first background run; background rows of instances that died are failed.
    await this.backgroundSweeper.start()
  }

  /**
   * Graceful stop (after the HTTP server stopped accepting): in-flight
   * requests get `graceMs` to finish, then every recorded request is
   * committed before the pools close.
   */
  async stop(graceMs = 30_000) {
    await this.service.drain(graceMs)
    // Upstream background responses still running at the grace's end: asked once more, cancelled there, billed.
    await this.background.settled()
    this.background.stop()
    this.options.logger.info('shutdown: in-flight requests done')
    await this.#listener?.stop()
    if (this.#modelMirrorTimer) clearTimeout(this.#modelMirrorTimer)
    await this.responses.flush().catch(() => {})
    // After the last rows are written: a run whose row that flush lost is swept by another instance.
    await this.backgroundSweeper.stop()
    await this.meter.close(this.options.meterShutdownFlushMs ?? 10_000)
    // After the meter's last commits, which hand it their rows: what it can send within its own bound.
    await this.logExport?.close(this.options.logExportShutdownMs ?? 5_000)
    await this.requestLogs?.close()
    await closePools()
  }
}
