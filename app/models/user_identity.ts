import { DateTime } from 'luxon'
import { BaseModel, column } from '@adonisjs/lucid/orm'
import type { SsoProviderId } from '#services/sso/sso_settings'

/** An account's identity at a single sign-on provider (database/migrations/1700000001015_create_user_identities_table.ts). */
export default class UserIdentity extends BaseModel {
  static table = 'user_identities'

  @column({ isPrimary: true })
  declare id: number

  @column()
  declare userId: number

  @column()
  declare provider: SsoProviderId

  /** The OIDC issuer the subject belongs to (migration 1025); '' for GitHub, and for an OIDC row no issuer has taken yet */
  @column()
  declare issuer: string

  /** The provider's stable id for the person (id_token `sub`, GitHub's numeric id) */
  @column()
  declare subject: string

  /** The verified e-mail when linked (shown on the Security page), null if none was given */
  @column()
  declare email: string | null

  @column.dateTime({ autoCreate: true })
  declare createdAt: DateTime

  @column.dateTime()
  declare lastUsedAt: DateTime | null
}
