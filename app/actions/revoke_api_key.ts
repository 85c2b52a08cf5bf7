import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import ApiKey from '#models/api_key'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'

/**
 * Revokes a key given its id, its full value, or its display prefix
 * ("sk-gw-AbCd", unique among active keys). Revoking a revoked key changes
 * nothing and writes no audit row.
 */
export async function revokeApiKey(ref: string, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    let key: ApiKey | null = null
    if (/^\d+$/.test(ref)) key = await ApiKey.query({ client: trx }).where('id', Number(ref)).forUpdate().first()
    if (!key) key = await ApiKey.query({ client: trx }).where('key_hash', hashApiKey(ref)).forUpdate().first()
    if (!key) {
      const matches = await ApiKey.query({ client: trx }).whereNull('revoked_at').where('prefix', ref).limit(2)
      if (matches.length > 1) throw new AdminInputError(`Prefix ${ref} matches several keys: use the key id`)
      key = matches[0] ?? null
    }
    if (!key) throw new AdminInputError(`No API key matches "${ref}"`)
    if (!key.revokedAt) {
      key.revokedAt = DateTime.now()
      key.useTransaction(trx)
      await key.save()
      const owner = await trx.from('users').where('id', key.userId).select('email').first()
      await writeAudit(trx, actor, {
        action: 'key.revoke',
        subjectType: 'api_key',
        subjectId: key.id,
        summary: `key ${key.masked} "${key.name}" of ${owner?.email ?? `user ${key.userId}`} revoked`,
        before: { revoked: false },
        after: { revoked: true },
      })
    }
    return key
  })
}
