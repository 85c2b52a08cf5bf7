import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { findApiKey, keyLabel } from '#actions/revoke_api_key'

/**
 * Blocks a key for now, or lifts the block (LiteLLM's /key/block and
 * /key/unblock), given its id, full value or display prefix. A blocked key is
 * refused (401 "This API key is blocked") until unblocked; its settings and
 * spend stay. A revoked key is history: refused. Asking for the state the key
 * is already in changes nothing and writes no audit row. Every gateway hears
 * of it through the api_keys trigger (migration 999).
 */
export async function setApiKeyBlocked(ref: string, blocked: boolean, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const key = await findApiKey(ref, trx)
    if (key.revokedAt) throw new AdminInputError(`Key ${key.masked} is revoked: issue a new key instead`, 'key')
    if (!!key.blockedAt !== blocked) {
      key.blockedAt = blocked ? DateTime.now() : null
      key.useTransaction(trx)
      await key.save()
      await writeAudit(trx, actor, {
        action: blocked ? 'key.block' : 'key.unblock',
        subjectType: 'api_key',
        subjectId: key.id,
        summary: `${await keyLabel(trx, key)} ${blocked ? 'blocked' : 'unblocked'}`,
        before: { blocked: !blocked },
        after: { blocked },
      })
    }
    return key
  })
}
