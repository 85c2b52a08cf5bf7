import { BaseModel, column } from '@adonisjs/lucid/orm'

/** Per user, calendar month (UTC), model and provider: requests, tokens and cost. */
export default class MonthlyUsage extends BaseModel {
  static table = 'monthly_usage'

  @column({ isPrimary: true })
  declare id: number

  @column()
  declare userId: number

  /** First day of the month, 'YYYY-MM-DD' */
  @column({ consume: (v) => (v instanceof Date ? v.toISOString().slice(0, 10) : v) })
  declare period: string

  @column()
  declare model: string

  @column()
  declare provider: string

  @column({ consume: Number })
  declare requests: number

  @column({ consume: Number })
  declare inputTokens: number

  @column({ consume: Number })
  declare outputTokens: number

  @column()
  declare cost: string
}
