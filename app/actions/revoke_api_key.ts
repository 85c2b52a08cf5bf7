import { DateTime } from 'luxon'
import ApiKey from '#models/api_key'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { AdminInputError } from '#actions/admin_input_error'

/**
 * Revokes a key given its id, its full value, or its display prefix
 * ("sk-gw-AbCd", unique among active keys).
 */
export async function revokeApiKey(ref: string) {
  let key: ApiKey | null = null
  if (/^\d+$/.test(ref)) key = await ApiKey.find(Number(ref))
  if (!key) key = await ApiKey.findBy('key_hash', hashApiKey(ref))
  if (!key) {
    const matches = await ApiKey.query().whereNull('revoked_at').where('prefix', ref).limit(2)
    if (matches.length > 1) throw new AdminInputError(`Prefix ${ref} matches several keys: use the key id`)
    key = matches[0] ?? null
  }
  if (!key) throw new AdminInputError(`No API key matches "${ref}"`)
  if (!key.revokedAt) {
    key.revokedAt = DateTime.now()
    await key.save()
  }
  return key
}
