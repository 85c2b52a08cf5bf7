import { Catalog } from '#gateway/catalog'
import { ChangeListener } from '#gateway/change_listener'
import { GatewayService } from '#gateway/gateway_service'
import { UsageMeter } from '#gateway/metering/usage_meter'
import { closePools } from '#gateway/upstream/upstream_pool'
import type { Logger } from '@adonisjs/core/logger'

export interface GatewayOptions {
  databaseUrl: string
  logger: Logger
  meterBatchSize: number
  meterFlushMs: number
  /** Listen for configuration changes (off for one-shot ace commands) */
  listen: boolean
}

/**
 * The gateway's long-lived objects, built once at boot and bound in the
 * container by providers/gateway_provider.ts.
 */
export class Gateway {
  readonly catalog = new Catalog()
  readonly meter: UsageMeter
  readonly service: GatewayService
  #listener: ChangeListener | null = null

  constructor(private options: GatewayOptions) {
    this.meter = new UsageMeter({
      connectionString: options.databaseUrl,
      batchSize: options.meterBatchSize,
      flushMs: options.meterFlushMs,
      logger: options.logger,
      onRecord: (event) =>
        this.catalog.applyUsage(
          event.userId,
          event.costPico,
          event.usage.promptTokens,
          event.usage.completionTokens
        ),
    })
    this.catalog.setPendingSource((userId) => this.meter.pendingFor(userId))
    this.service = new GatewayService(this.catalog, this.meter)
  }

  async start() {
    if (this.options.listen) {
      this.#listener = new ChangeListener(
        this.options.databaseUrl,
        this.options.logger,
        (payload) => this.catalog.handleChange(payload),
        () => this.catalog.reload()
      )
      await this.#listener.start()
    }
    await this.catalog.ensureLoaded()
  }

  /** Graceful stop: every recorded request is committed before the pools close. */
  async stop() {
    await this.#listener?.stop()
    await this.meter.close()
    await closePools()
  }
}
