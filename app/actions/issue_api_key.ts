import type { StoredModelLimits } from '#gateway/limits/model_limits'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import ApiKey from '#models/api_key'
import { issueApiKey } from '#gateway/auth/api_key_token'
import { findUser } from '#actions/post_ledger_entry'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { AdminInputError } from '#actions/admin_input_error'
import { findTeam, findTeamAdministeredBy, putKeyInTeam } from '#actions/teams'
import { allowedIpsColumn } from '#actions/allowed_ips'
import type { SpendPeriod } from '#gateway/metering/spend_period'

/** Issues a key for a user. The clear key is returned here only; the database keeps its hash. */
export async function createApiKey(
  input: {
    userRef: string
    name?: string
    models?: string[]
    expiresInDays?: number
    rpm?: number
    tpm?: number
    /** Requests in flight at once; undefined or null = no cap */
    maxParallel?: number | null
    /** rpm/tpm per model, checked (model_limits.ts modelLimitsColumn); null = none */
    modelLimits?: StoredModelLimits | null
    /** USD */
    spendLimit?: string
    /** The cap resets each UTC day, week or month (needs spendLimit) */
    spendPeriod?: SpendPeriod | null
    /** USD; crossing it alerts the operator once (budget_alerts.ts), never refuses */
    softBudget?: string | null
    /** May call the management API; the owner must be an admin */
    manage?: boolean
    /** Addresses and CIDR ranges the key may be used from; empty or null = any */
    allowedIps?: string[] | null
    /** The team the key is made in (an id, or its digits); 404 when it does not exist by the time the key is made */
    team?: unknown
    /** The owner must be an `admin` member of `team` (a key a user makes in the portal); anything else is refused */
    teamAdminOnly?: boolean
  },
  actor: Actor = cliActor()
) {
  if (input.spendPeriod && !input.spendLimit) {
    throw new AdminInputError('A spend cap that resets needs a spend cap', 'spendPeriod')
  }
  const allowedIps = allowedIpsColumn(input.allowedIps)
  return db.transaction(async (trx) => {
    const user = await findUser(input.userRef, trx)
    if (input.manage && user.role !== 'admin') {
      throw new AdminInputError('Only an administrator\'s key can have the management scope', 'manage')
    }
    // Read and locked in this transaction: a team deleted meanwhile fails the whole change (no key left behind).
    const team =
      input.team === undefined || input.team === null
        ? null
        : input.teamAdminOnly
          ? await findTeamAdministeredBy(input.team, user.id, trx)
          : await findTeam(input.team, trx)
    const issued = issueApiKey()
    const apiKey = await ApiKey.create(
      {
        userId: user.id,
        name: input.name ?? 'default',
        keyHash: issued.hash,
        prefix: issued.prefix,
        lastFour: issued.lastFour,
        allowedModels: input.models?.length ? input.models : null,
        expiresAt: input.expiresInDays ? DateTime.now().plus({ days: input.expiresInDays }) : null,
        rpm: input.rpm ?? null,
        tpm: input.tpm ?? null,
        maxParallel: input.maxParallel ?? null,
        modelLimits: input.modelLimits ?? null,
        spendLimit: input.spendLimit ?? null,
        spendPeriod: input.spendLimit ? (input.spendPeriod ?? null) : null,
        softBudget: input.softBudget ?? null,
        manage: input.manage ?? false,
        allowedIps,
      },
      { client: trx }
    )
    await writeAudit(trx, actor, {
      action: 'key.create',
      subjectType: 'api_key',
      subjectId: apiKey.id,
      summary: `key ${apiKey.masked} "${apiKey.name}" issued for ${user.email}`,
      after: {
        user: user.email,
        name: apiKey.name,
        display: apiKey.masked,
        models: apiKey.allowedModels,
        expiresAt: apiKey.expiresAt?.toISO() ?? null,
        rpm: apiKey.rpm,
        tpm: apiKey.tpm,
        maxParallel: apiKey.maxParallel,
        modelLimits: apiKey.modelLimits,
        spendLimit: apiKey.spendLimit,
        spendPeriod: apiKey.spendPeriod,
        softBudget: apiKey.softBudget,
        manage: apiKey.manage,
        allowedIps: apiKey.allowedIps,
      },
    })
    if (team !== null) await putKeyInTeam(trx, apiKey, team, actor)
    return { apiKey, key: issued.key }
  })
}
