import pg from 'pg'
import type { Logger } from '@adonisjs/core/logger'

/**
 * Listens on Postgres channel `gateway_changes` (sent by triggers on every
 * cached table) and hands each payload to the catalog. Reconnects with
 * backoff; after a reconnect the caller reloads everything, since changes
 * may have been missed while disconnected.
 */
export class ChangeListener {
  #client: pg.Client | null = null
  #stopped = false
  #retry: NodeJS.Timeout | null = null

  constructor(
    private connectionString: string,
    private logger: Logger,
    /** `pid`: the Postgres backend that sent it (the sender's own changes can be told apart) */
    private onChange: (payload: string, pid: number) => void | Promise<void>,
    private onReconnect: () => void | Promise<void>
  ) {}

  async start() {
    await this.#connect(false)
  }

  async #connect(isReconnect: boolean) {
    if (this.#stopped) return
    const client = new pg.Client({ connectionString: this.connectionString })
    client.on('notification', (message) => {
      if (message.channel !== 'gateway_changes' || !message.payload) return
      Promise.resolve(this.onChange(message.payload, message.processId)).catch((error) =>
        this.logger.warn({ err: error }, 'cache invalidation failed')
      )
    })
    client.on('error', () => this.#scheduleReconnect())
    client.on('end', () => this.#scheduleReconnect())
    try {
      await client.connect()
      await client.query('LISTEN gateway_changes')
      // stop() ran while connecting (a shutdown right after boot or a reconnect):
      // this client is not ours to keep, or its socket holds the process open.
      if (this.#stopped) {
        client.removeAllListeners('end')
        client.removeAllListeners('error')
        client.on('error', () => {})
        await client.end().catch(() => {})
        return
      }
      this.#client = client
      if (isReconnect) await this.onReconnect()
    } catch (error) {
      this.logger.warn({ err: error }, 'change listener could not connect; retrying')
      client.end().catch(() => {})
      this.#scheduleReconnect()
    }
  }

  #scheduleReconnect() {
    if (this.#stopped || this.#retry) return
    this.#client = null
    this.#retry = setTimeout(() => {
      this.#retry = null
      this.#connect(true).catch(() => {})
    }, 1000)
  }

  async stop() {
    this.#stopped = true
    if (this.#retry) clearTimeout(this.#retry)
    const client = this.#client
    this.#client = null
    if (client) {
      client.removeAllListeners('end')
      client.removeAllListeners('error')
      client.on('error', () => {})
      await client.end().catch(() => {})
    }
  }
}
