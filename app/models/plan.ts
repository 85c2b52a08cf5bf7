import { DateTime } from 'luxon'
import { BaseModel, column, hasMany } from '@adonisjs/lucid/orm'
import type { HasMany } from '@adonisjs/lucid/types/relations'
import User from '#models/user'

/** A set of limits users are placed on: monthly token quotas, model globs, rate limits. */
export default class Plan extends BaseModel {
  @column({ isPrimary: true })
  declare id: number

  @column()
  declare name: string

  /** Null = unlimited */
  @column({ consume: (v) => (v === null ? null : Number(v)) })
  declare monthlyInputTokens: number | null

  @column({ consume: (v) => (v === null ? null : Number(v)) })
  declare monthlyOutputTokens: number | null

  @column({ prepare: (v: string[]) => JSON.stringify(v) })
  declare allowedModels: string[]

  @column()
  declare rpm: number | null

  @column()
  declare tpm: number | null

  /** Users on the plan pay the model prices times this ("1.0000" = list prices; decimal string) */
  @column()
  declare priceMultiplier: string

  /** New self-registered users get this plan (at most one plan has it) */
  @column()
  declare isDefault: boolean

  @hasMany(() => User)
  declare users: HasMany<typeof User>

  @column.dateTime({ autoCreate: true })
  declare createdAt: DateTime

  @column.dateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime
}
