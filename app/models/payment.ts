import { DateTime } from 'luxon'
import { BaseModel, belongsTo, column } from '@adonisjs/lucid/orm'
import type { BelongsTo } from '@adonisjs/lucid/types/relations'
import User from '#models/user'

export type PaymentStatus = 'pending' | 'paid' | 'expired' | 'failed'

/** A card top-up through Stripe Checkout (see the migration). */
export default class Payment extends BaseModel {
  @column({ isPrimary: true })
  declare id: number

  @column()
  declare userId: number

  @column()
  declare provider: 'stripe'

  @column()
  declare sessionId: string | null

  /** USD, exact decimal string */
  @column()
  declare amount: string

  @column()
  declare amountCents: number

  @column()
  declare currency: string

  @column()
  declare status: PaymentStatus

  @column()
  declare failure: string | null

  @column()
  declare ledgerEntryId: number | null

  @column.dateTime({ autoCreate: true })
  declare createdAt: DateTime

  @column.dateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime

  @column.dateTime()
  declare paidAt: DateTime | null

  @belongsTo(() => User)
  declare user: BelongsTo<typeof User>
}
