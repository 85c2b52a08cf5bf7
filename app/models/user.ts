import { DateTime } from 'luxon'
import hash from '@adonisjs/core/services/hash'
import { compose } from '@adonisjs/core/helpers'
import { BaseModel, belongsTo, column, hasMany } from '@adonisjs/lucid/orm'
import type { BelongsTo, HasMany } from '@adonisjs/lucid/types/relations'
import { withAuthFinder } from '@adonisjs/auth/mixins/lucid'
import Plan from '#models/plan'
import ApiKey from '#models/api_key'

const AuthFinder = withAuthFinder(() => hash.use('scrypt'), {
  uids: ['email'],
  passwordColumnName: 'password',
})

export type UserRole = 'admin' | 'user'

/** An account: an admin of the gateway or a user who owns API keys and a prepaid balance. */
export default class User extends compose(BaseModel, AuthFinder) {
  @column({ isPrimary: true })
  declare id: number

  @column()
  declare email: string

  /** Null for an account made by a single sign-on: only its linked identities let it in (models/user_identity.ts) */
  @column({ serializeAs: null })
  declare password: string | null

  @column()
  declare role: UserRole

  @column()
  declare planId: number | null

  /**
   * USD as a decimal string (exact). Written only by the balance_ledger
   * trigger: never assign it, post a ledger entry instead.
   */
  @column()
  declare balance: string

  /** Set when an admin disables the account: its keys stop working and it cannot log in */
  @column.dateTime()
  declare disabledAt: DateTime | null

  /**
   * When the account confirmed its e-mail address. Null only for a sign-up
   * at /register while verification is on, until its link is opened
   * (app/actions/email_verification.ts); such an account cannot sign in.
   */
  @column.dateTime()
  declare emailVerifiedAt: DateTime | null

  /** Bumped by a password change or reset: sessions signed in before it are over (services/session_epoch.ts) */
  @column()
  declare sessionEpoch: number

  /**
   * Two-factor sign-in (app/services/two_factor.ts): the TOTP secret,
   * encrypted with APP_KEY; set when enrolment starts, in force once
   * `totpEnabledAt` is set.
   */
  @column({ serializeAs: null })
  declare totpSecretEncrypted: string | null

  @column.dateTime()
  declare totpEnabledAt: DateTime | null

  /** The last time step whose code was accepted (a code is taken once). */
  @column({ serializeAs: null, consume: (v: string | number | null) => (v === null ? null : Number(v)) })
  declare totpLastStep: number | null

  /** SHA-256 hashes of the unused recovery codes. */
  @column({ serializeAs: null, prepare: (v: string[]) => JSON.stringify(v ?? []) })
  declare totpRecoveryCodes: string[]

  @belongsTo(() => Plan)
  declare plan: BelongsTo<typeof Plan>

  @hasMany(() => ApiKey)
  declare apiKeys: HasMany<typeof ApiKey>

  @column.dateTime({ autoCreate: true })
  declare createdAt: DateTime

  @column.dateTime({ autoCreate: true, autoUpdate: true })
  declare updatedAt: DateTime

  get isAdmin() {
    return this.role === 'admin'
  }

  /** Sign-in asks for a code from the authenticator app (or a recovery code) after the password. */
  get hasTwoFactor() {
    return this.totpEnabledAt !== null && this.totpEnabledAt !== undefined && !!this.totpSecretEncrypted
  }
}
