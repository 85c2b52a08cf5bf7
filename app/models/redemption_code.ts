import { DateTime } from 'luxon'
import { BaseModel, belongsTo, column, computed } from '@adonisjs/lucid/orm'
import type { BelongsTo } from '@adonisjs/lucid/types/relations'
import User from '#models/user'

export type RedemptionCodeStatus = 'unused' | 'redeemed' | 'expired' | 'disabled'

/** A prepaid code (see the migration): only its hash is stored; `hint` is for display. */
export default class RedemptionCode extends BaseModel {
  @column({ isPrimary: true })
  declare id: number

  @column()
  declare batch: string

  @column({ serializeAs: null })
  declare codeHash: string

  @column()
  declare hint: string

  /** USD, exact decimal string */
  @column()
  declare amount: string

  @column.dateTime()
  declare expiresAt: DateTime | null

  @column.dateTime()
  declare disabledAt: DateTime | null

  @column()
  declare redeemedBy: number | null

  @column.dateTime()
  declare redeemedAt: DateTime | null

  @column()
  declare ledgerEntryId: number | null

  @column()
  declare createdBy: number | null

  @column.dateTime({ autoCreate: true })
  declare createdAt: DateTime

  @belongsTo(() => User, { foreignKey: 'redeemedBy' })
  declare redeemer: BelongsTo<typeof User>

  /** A redeemed code stays "redeemed" even if later disabled or past its date. */
  @computed()
  get status(): RedemptionCodeStatus {
    if (this.redeemedAt) return 'redeemed'
    if (this.disabledAt) return 'disabled'
    if (this.expiresAt && this.expiresAt <= DateTime.now()) return 'expired'
    return 'unused'
  }
}
