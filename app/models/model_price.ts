import { DateTime } from 'luxon'
import { BaseModel, column } from '@adonisjs/lucid/orm'

/** USD per 1M input/output tokens for the models matching a glob. */
export default class ModelPrice extends BaseModel {
  @column({ isPrimary: true })
  declare id: number

  @column()
  declare modelPattern: string

  /** Decimal strings, exact */
  @column()
  declare inputPerMillion: string

  @column()
  declare outputPerMillion: string

  /** USD per 1M prompt tokens read from / written to the provider's cache; null = the input price */
  @column()
  declare cacheReadPerMillion: string | null

  @column()
  declare cacheWritePerMillion: string | null

  /** USD per 1M prompt tokens written to Anthropic's one-hour cache; null = the cache-write price */
  @column({ columnName: 'cache_write_1h_per_million' })
  declare cacheWrite1hPerMillion: string | null

  /** USD per 1M audio input / output tokens (the Realtime API's audio); null = the token prices */
  @column()
  declare audioInputPerMillion: string | null

  @column()
  declare audioOutputPerMillion: string | null

  /** USD per 1M image output tokens (Gemini's image models); null = the output price */
  @column()
  declare imageOutputPerMillion: string | null

  /** USD per generated image, or null */
  @column()
  declare perImage: string | null

  /** USD per second of input audio (transcriptions, translations), or null */
  @column()
  declare perSecond: string | null

  /** USD per input character (speech), or null */
  @column()
  declare perCharacter: string | null

  /** USD per server-side web search (Anthropic's web_search tool, OpenAI's web_search_call), or null */
  @column()
  declare perWebSearch: string | null

  /** USD per second of generated video (the Videos API, Veo), or null */
  @column()
  declare perVideoSecond: string | null

  /** USD per request that succeeded (new-api's per-call price), on top of the token prices, or null */
  @column()
  declare perRequest: string | null

  @column.dateTime({ autoCreate: true })
  declare createdAt: DateTime

  @column.dateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime
}
