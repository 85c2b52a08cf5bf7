import { DateTime } from 'luxon'
import encryption from '@adonisjs/core/services/encryption'
import { BaseModel, column } from '@adonisjs/lucid/orm'

const json = { prepare: (v: unknown) => JSON.stringify(v) }

/** An upstream provider account the gateway forwards requests to. */
export default class Channel extends BaseModel {
  @column({ isPrimary: true })
  declare id: number

  @column()
  declare name: string

  @column()
  declare provider: string

  @column()
  declare baseUrl: string

  @column({ serializeAs: null })
  declare apiKeyEncrypted: string | null

  @column(json)
  declare models: string[]

  @column(json)
  declare modelMapping: Record<string, string>

  @column(json)
  declare extraHeaders: Record<string, string>

  @column()
  declare priority: number

  @column()
  declare weight: number

  @column()
  declare enabled: boolean

  @column()
  declare disabledReason: string | null

  /** Upstream timeouts (ms); null = gateway defaults */
  @column()
  declare connectTimeoutMs: number | null

  @column()
  declare firstByteTimeoutMs: number | null

  @column()
  declare idleTimeoutMs: number | null

  @column()
  declare totalTimeoutMs: number | null

  /** The plans the channel is open to (channel groups); null = every plan. bigint[]: pg gives strings */
  @column({ consume: (v: unknown) => (Array.isArray(v) && v.length > 0 ? v.map(Number) : null) })
  declare planIds: number[] | null

  /** Circuit breaker state, mirrored by the gateway: closed | open | half_open */
  @column()
  declare health: string

  @column.dateTime()
  declare cooldownUntil: DateTime | null

  @column()
  declare lastError: string | null

  @column.dateTime()
  declare lastErrorAt: DateTime | null

  /** (channel, upstream model) pairs cooling down, mirrored by the gateway: model -> { until, kind, reason } */
  @column(json)
  declare modelCooldowns: Record<string, { until: string; kind: 'rate_limited' | 'forbidden'; reason: string }>

  /** Set when the gateway disabled the channel itself (bad key); a successful test re-enables it */
  @column.dateTime()
  declare autoDisabledAt: DateTime | null

  @column.dateTime({ autoCreate: true })
  declare createdAt: DateTime

  @column.dateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime

  /** Stores the upstream key encrypted with APP_KEY. */
  setApiKey(plain: string | null) {
    this.apiKeyEncrypted = plain ? encryption.encrypt(plain) : null
  }

  /** The upstream key in clear, or null (none, or not readable with this APP_KEY). */
  getApiKey(): string | null {
    if (!this.apiKeyEncrypted) return null
    return encryption.decrypt<string>(this.apiKeyEncrypted)
  }

  /** A key is stored but this APP_KEY cannot read it (see app/services/app_key_check.ts). */
  get keyUnreadable(): boolean {
    return this.apiKeyEncrypted !== null && this.getApiKey() === null
  }
}
