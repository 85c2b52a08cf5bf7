import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import ApiKey from '#models/api_key'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { AdminInputError } from '#actions/admin_input_error'
import { recordId } from '#services/record_id'
import { cliActor, writeAudit, type Actor } from '#actions/audit'

/**
 * Revokes a key given its id, its full value, or its display prefix
 * ("sk-gw-AbCd", unique among active keys). Revoking a revoked key changes
 * nothing and writes no audit row.
 */
export async function revokeApiKey(ref: string, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const key = await findApiKey(ref, trx)
    if (!key.revokedAt) {
      key.revokedAt = DateTime.now()
      key.useTransaction(trx)
      await key.save()
      await writeAudit(trx, actor, {
        action: 'key.revoke',
        subjectType: 'api_key',
        subjectId: key.id,
        summary: `${await keyLabel(trx, key)} revoked`,
        before: { revoked: false },
        after: { revoked: true },
      })
    }
    return key
  })
}

/**
 * A key by its id, its full value, or its display prefix ("sk-gw-AbCd",
 * unique among active keys); locked for update inside a transaction.
 */
export async function findApiKey(ref: string, trx?: TransactionClientContract): Promise<ApiKey> {
  const query = () => (trx ? ApiKey.query({ client: trx }).forUpdate() : ApiKey.query())
  let key: ApiKey | null = null
  // An id past 15 digits names no row (Postgres refused it as a bigint: a generic error instead of this 404).
  const id = recordId(ref)
  if (id !== null) key = await query().where('id', id).first()
  if (!key) key = await query().where('key_hash', hashApiKey(ref)).first()
  // A prefix is printable text: a NUL (which a text column refuses) matches none.
  if (!key && !ref.includes('\0')) {
    const matches = await (trx ? ApiKey.query({ client: trx }) : ApiKey.query()).whereNull('revoked_at').where('prefix', ref).limit(2)
    if (matches.length > 1) throw new AdminInputError(`Prefix ${ref} matches several keys: use the key id`)
    key = matches[0] ?? null
  }
  if (!key) throw AdminInputError.notFound(`No API key matches "${ref}"`)
  return key
}

/** How the audit log names a key: `key sk-gw-AbCd…wxyz "name" of owner@example.com` (its owner read in the change's transaction). */
export async function keyLabel(trx: TransactionClientContract, key: ApiKey): Promise<string> {
  const owner = await trx.from('users').where('id', key.userId).select('email').first()
  return `key ${key.masked} "${key.name}" of ${owner?.email ?? `user ${key.userId}`}`
}
