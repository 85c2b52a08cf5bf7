import { DateTime } from 'luxon'
import { BaseModel, belongsTo, column } from '@adonisjs/lucid/orm'
import type { BelongsTo } from '@adonisjs/lucid/types/relations'
import User from '#models/user'
import { periodBounds, type SpendPeriod } from '#gateway/metering/spend_period'
import type { StoredModelLimits } from '#gateway/limits/model_limits'

const jsonArray = {
  prepare: (v: string[] | null) => (v === null ? null : JSON.stringify(v)),
}

/** An API key. Only its SHA-256 hash is stored; prefix and last four are for display. */
export default class ApiKey extends BaseModel {
  @column({ isPrimary: true })
  declare id: number

  @column()
  declare userId: number

  @column()
  declare name: string

  @column({ serializeAs: null })
  declare keyHash: string

  @column()
  declare prefix: string

  @column()
  declare lastFour: string

  @column(jsonArray)
  declare allowedModels: string[] | null

  @column()
  declare spendLimit: string | null

  /** USD: crossing it alerts the operator (budget_alerts.ts), never refuses; null = none (LiteLLM's soft_budget) */
  @column()
  declare softBudget: string | null

  /** IPv4/IPv6 addresses and CIDR ranges the key may be used from (normalised); null = any address */
  @column(jsonArray)
  declare allowedIps: string[] | null

  /** USD spent through this key (metering keeps it) */
  @column()
  declare spent: string

  /** The spend cap resets each UTC day, week or month; null = it caps the key's whole life */
  @column()
  declare spendPeriod: SpendPeriod | null

  /** USD spent in the period starting periodStart (metering keeps it; only with a spendPeriod) */
  @column()
  declare periodSpent: string

  @column.date()
  declare periodStart: DateTime | null

  /** May call the management API (/api/admin); only for an admin's key */
  @column()
  declare manage: boolean

  @column()
  declare rpm: number | null

  @column()
  declare tpm: number | null

  /** rpm/tpm per model asked for (LiteLLM's model_rpm_limit / model_tpm_limit; limits/model_limits.ts); null = none */
  @column({ prepare: (v: StoredModelLimits | null) => (v === null ? null : JSON.stringify(v)) })
  declare modelLimits: StoredModelLimits | null

  /** Requests in flight at once (LiteLLM's max_parallel_requests); null = no cap */
  @column()
  declare maxParallel: number | null

  @column.dateTime()
  declare expiresAt: DateTime | null

  @column.dateTime()
  declare revokedAt: DateTime | null

  /** Blocked for now (LiteLLM's /key/block): refused until unblocked; null = not blocked */
  @column.dateTime()
  declare blockedAt: DateTime | null

  @column.dateTime()
  declare lastUsedAt: DateTime | null

  /** The key's team (teams, app/actions/teams.ts): its budget, models, limits and block apply too; null = none */
  @column()
  declare teamId: number | null

  @belongsTo(() => User)
  declare user: BelongsTo<typeof User>

  @column.dateTime({ autoCreate: true })
  declare createdAt: DateTime

  @column.dateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime

  /** "sk-gw-AbCd…wxyz" */
  get masked() {
    return `${this.prefix}…${this.lastFour}`
  }

  /**
   * What the spend cap counts now: the whole spend, or this period's (0 when
   * nothing was metered yet in the current period).
   */
  get capSpent(): string {
    if (!this.spendPeriod) return this.spent
    const start = DateTime.fromMillis(periodBounds(this.spendPeriod, Date.now()).start, { zone: 'utc' })
    return this.periodStart && this.periodStart.toISODate() === start.toISODate() ? this.periodSpent : '0'
  }

  get isActive() {
    if (this.revokedAt || this.blockedAt) return false
    return !this.expiresAt || this.expiresAt > DateTime.now()
  }
}
