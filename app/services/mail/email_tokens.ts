import { createHash, randomBytes } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'

/**
 * The links sent by e-mail (table email_tokens, migration 1014): one per
 * account and purpose. The link carries 32 random bytes; only their SHA-256
 * is stored. A new link replaces the account's previous one of the same
 * purpose; using a link deletes it; a password change voids a reset link
 * (the account's session epoch moved past the one it was made under).
 */
export type EmailTokenPurpose = 'password_reset' | 'verify_email'

export const TOKEN_LIFETIME_MS: Record<EmailTokenPurpose, number> = {
  password_reset: 30 * 60_000,
  verify_email: 24 * 60 * 60_000,
}

/** What a link's token looks like: 43 base64url characters. Anything else is refused without a query. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/

export function tokenWellFormed(token: unknown): token is string {
  return typeof token === 'string' && TOKEN_SHAPE.test(token)
}

function hashOf(token: string) {
  return createHash('sha256').update(token).digest('hex')
}

/**
 * Makes the account's new link for `purpose` (replacing the previous one), in `client`'s
 * transaction when given; returns the token for the URL.
 */
export async function issueEmailToken(
  user: { id: number; sessionEpoch: number },
  purpose: EmailTokenPurpose,
  client: Pick<typeof db, 'table'> = db
): Promise<string> {
  const token = randomBytes(32).toString('base64url')
  await client
    .table('email_tokens')
    .insert({
      user_id: user.id,
      purpose,
      token_hash: hashOf(token),
      session_epoch: user.sessionEpoch ?? 0,
      expires_at: new Date(Date.now() + TOKEN_LIFETIME_MS[purpose]),
      created_at: new Date(),
    })
    .onConflict(['user_id', 'purpose'])
    .merge()
  return token
}

/** The account a link is still good for (not used, not replaced, not expired, no password change since), without using it. */
export async function emailTokenUser(token: unknown, purpose: EmailTokenPurpose): Promise<number | null> {
  if (!tokenWellFormed(token)) return null
  const row = await db
    .from('email_tokens as t')
    .join('users as u', 'u.id', 't.user_id')
    .where('t.token_hash', hashOf(token))
    .where('t.purpose', purpose)
    .where('t.expires_at', '>', new Date())
    .whereRaw('t.session_epoch = u.session_epoch')
    .whereNull('u.disabled_at')
    .select('t.user_id')
    .first()
  return row ? Number(row.user_id) : null
}

/**
 * Uses a link, once: the one DELETE that finds it valid gets the account
 * (two submissions at once: one wins, the other finds nothing).
 */
export async function consumeEmailToken(token: unknown, purpose: EmailTokenPurpose, trx: TransactionClientContract): Promise<number | null> {
  if (!tokenWellFormed(token)) return null
  const result = await trx.rawQuery(
    `DELETE FROM email_tokens t USING users u
      WHERE t.token_hash = ? AND t.purpose = ? AND u.id = t.user_id
        AND t.expires_at > now() AND t.session_epoch = u.session_epoch AND u.disabled_at IS NULL
      RETURNING t.user_id`,
    [hashOf(token), purpose]
  )
  const row = result.rows[0] as { user_id: string | number } | undefined
  return row ? Number(row.user_id) : null
}

/** The account's links of this purpose stop working (its password changed; it was verified another way). */
export async function dropEmailTokens(userId: number, purpose: EmailTokenPurpose, client: Pick<typeof db, 'from'> = db) {
  await client.from('email_tokens').where('user_id', userId).where('purpose', purpose).delete()
}
