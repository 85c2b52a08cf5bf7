import ApiKey from '#models/api_key'
import { lastDayFrom, updateApiKey } from '#actions/update_api_key'
import { assertInsidePlan } from '#actions/create_user_api_key'
import { PortalInputError } from '#actions/portal_input_error'
import type { Actor } from '#actions/audit'
import { lockTeamsOfMove, moveOwnKeyToTeam } from '#actions/teams'
import type { SpendPeriod } from '#gateway/metering/spend_period'

/**
 * A user edits one of their own keys from the portal: name, models (inside
 * the plan), the last day it works, the spend cap and its period, the IP
 * allowlist, its team (one the user is an admin of, and only out of a team
 * the user is an admin of). Rate limits are the operator's and stay as they
 * are. Another user's key, or a revoked one, is "not found". A refused team
 * leaves the whole edit unsaved (one transaction).
 */
export async function updateUserApiKey(
  userId: number,
  planId: number | null,
  keyId: number,
  input: {
    name: string
    models?: string[]
    expiresOn?: string
    spendLimit?: string
    spendPeriod?: SpendPeriod
    /** Addresses and CIDR ranges the key may be used from; empty = any; undefined = unchanged */
    allowedIps?: string[]
    /** The team to move the key to (moveOwnKeyToTeam: the user administers it, and the one it leaves); null = none; undefined = unchanged */
    team?: number | null
  },
  actor: Actor
) {
  const key = await ApiKey.query().where('id', keyId).where('user_id', userId).whereNull('revoked_at').first()
  if (!key) throw new PortalInputError('key_not_found')
  if (input.spendPeriod && !input.spendLimit) throw new PortalInputError('period_needs_cap', 'spend_period')
  if (input.expiresOn && !lastDayFrom(input.expiresOn)) {
    throw new PortalInputError('invalid_date', 'expires_on')
  }
  await assertInsidePlan(planId, input.models)
  return updateApiKey(
    key.id,
    {
      name: input.name,
      models: input.models ?? null,
      expiresOn: input.expiresOn ?? null,
      rpm: key.rpm,
      tpm: key.tpm,
      spendLimit: input.spendLimit ?? null,
      spendPeriod: input.spendPeriod ?? null,
      allowedIps: input.allowedIps,
    },
    actor,
    input.team === undefined ? undefined : async (trx, locked) => void (await moveOwnKeyToTeam(trx, locked, userId, input.team ?? null, actor)),
    // The teams' rows before the key's (the meter's order).
    input.team === undefined ? undefined : async (trx) => void (await lockTeamsOfMove(trx, userId, key.teamId ?? null, input.team ?? null))
  )
}
