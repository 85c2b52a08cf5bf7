import ApiKey from '#models/api_key'
import { revokeApiKey } from '#actions/revoke_api_key'
import { PortalInputError } from '#actions/portal_input_error'
import type { Actor } from '#actions/audit'

/** A user revokes one of their own keys; another user's key id is "not found", never revoked. */
export async function revokeUserApiKey(userId: number, keyId: number, actor: Actor) {
  const key = await ApiKey.query().where('id', keyId).where('user_id', userId).first()
  if (!key) throw new PortalInputError('key_not_found')
  return revokeApiKey(String(key.id), actor)
}
