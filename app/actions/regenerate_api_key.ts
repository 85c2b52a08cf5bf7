import db from '@adonisjs/lucid/services/db'
import { issueApiKey } from '#gateway/auth/api_key_token'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { findApiKey, keyLabel } from '#actions/revoke_api_key'

/**
 * Gives a key a new secret (LiteLLM's /key/regenerate): the same key (id,
 * owner, name, limits, spend, usage) answers to a new value from now on, and
 * the old value is refused at once on every gateway (the key_hash change goes
 * through the api_keys trigger), and so are the Realtime client secrets it
 * minted (a leaked key's secrets would otherwise outlive it). The clear key is returned here only. A
 * revoked key is history: refused.
 */
export async function regenerateApiKey(ref: string, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const key = await findApiKey(ref, trx)
    if (key.revokedAt) throw new AdminInputError(`Key ${key.masked} is revoked: issue a new key instead`, 'key')
    const masked = key.masked
    const before = await keyLabel(trx, key)
    const issued = issueApiKey()
    key.merge({ keyHash: issued.hash, prefix: issued.prefix, lastFour: issued.lastFour })
    key.useTransaction(trx)
    await key.save()
    // The Realtime client secrets the old value minted stand for the key by its id: they go with the old value.
    await trx.from('realtime_client_secrets').where('api_key_id', key.id).delete()
    await writeAudit(trx, actor, {
      action: 'key.regenerate',
      subjectType: 'api_key',
      subjectId: key.id,
      summary: `${before} regenerated as ${key.masked}`,
      before: { display: masked },
      after: { display: key.masked },
    })
    return { apiKey: key, key: issued.key }
  })
}
