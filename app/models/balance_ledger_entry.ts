import { DateTime } from 'luxon'
import { BaseModel, column } from '@adonisjs/lucid/orm'

export type LedgerKind = 'topup' | 'charge' | 'refund' | 'adjustment'

/** Append-only money movement; users.balance is the sum of these (kept by a trigger). */
export default class BalanceLedgerEntry extends BaseModel {
  static table = 'balance_ledger'

  @column({ isPrimary: true })
  declare id: number

  @column()
  declare userId: number

  @column()
  declare kind: LedgerKind

  /** Signed decimal string */
  @column()
  declare amount: string

  @column()
  declare usageRecordId: number | null

  @column()
  declare actorId: number | null

  @column()
  declare note: string | null

  @column.dateTime({ autoCreate: true })
  declare createdAt: DateTime
}
