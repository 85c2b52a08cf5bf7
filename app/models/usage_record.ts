import { DateTime } from 'luxon'
import { BaseModel, column } from '@adonisjs/lucid/orm'

/** One row per API request, written by the metering service. */
export default class UsageRecord extends BaseModel {
  @column({ isPrimary: true })
  declare id: number

  @column()
  declare requestId: string

  @column()
  declare userId: number

  @column()
  declare apiKeyId: number | null

  @column()
  declare channelId: number | null

  @column()
  declare provider: string | null

  /** The model that answered and was billed */
  @column()
  declare model: string

  /** The model the client asked for, when a fallback model answered (else null) */
  @column()
  declare requestedModel: string | null

  /** Answered from the response cache: no provider call, 0 tokens, 0 cost */
  @column()
  declare cacheHit: boolean

  @column()
  declare servedModel: string | null

  @column()
  declare endpoint: string

  @column()
  declare stream: boolean

  @column()
  declare status: number

  @column()
  declare errorCode: string | null

  @column()
  declare promptTokens: number

  @column()
  declare completionTokens: number

  @column()
  declare totalTokens: number

  @column()
  declare cachedTokens: number

  @column()
  declare reasoningTokens: number

  @column()
  declare estimated: boolean

  @column()
  declare cost: string

  @column()
  declare latencyMs: number

  @column()
  declare ttftMs: number | null

  @column.dateTime()
  declare createdAt: DateTime
}
