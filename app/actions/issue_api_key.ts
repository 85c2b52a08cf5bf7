import { DateTime } from 'luxon'
import ApiKey from '#models/api_key'
import { issueApiKey } from '#gateway/auth/api_key_token'
import { findUser } from '#actions/post_ledger_entry'

/** Issues a key for a user. The clear key is returned here only; the database keeps its hash. */
export async function createApiKey(input: {
  userRef: string
  name?: string
  models?: string[]
  expiresInDays?: number
  rpm?: number
  tpm?: number
  /** USD */
  spendLimit?: string
}) {
  const user = await findUser(input.userRef)
  const issued = issueApiKey()
  const apiKey = await ApiKey.create({
    userId: user.id,
    name: input.name ?? 'default',
    keyHash: issued.hash,
    prefix: issued.prefix,
    lastFour: issued.lastFour,
    allowedModels: input.models?.length ? input.models : null,
    expiresAt: input.expiresInDays ? DateTime.now().plus({ days: input.expiresInDays }) : null,
    rpm: input.rpm ?? null,
    tpm: input.tpm ?? null,
    spendLimit: input.spendLimit ?? null,
  })
  return { apiKey, key: issued.key }
}
