import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { hashApiKey } from '#gateway/auth/api_key_token'
import type { Catalog } from '#gateway/catalog'
import type { Principal } from '#gateway/types'

/**
 * The API key of a request, from whichever header its client uses:
 * `Authorization: Bearer`, `X-API-Key` (seed docs, Anthropic SDKs),
 * `x-goog-api-key` or `?key=` (Google clients), LiteLLM's
 * `x-litellm-api-key` (clients set up for a LiteLLM proxy, e.g. Cline's
 * model-info call), Azure OpenAI's `api-key` (the `AzureOpenAI` SDK
 * clients, LangChain's `AzureChatOpenAI`, Semantic Kernel).
 */
export function extractApiKey(headers: IncomingHttpHeaders, url: string | undefined): string | null {
  const authorization = headers['authorization']
  if (typeof authorization === 'string' && authorization.length > 7) {
    const scheme = authorization.slice(0, 7).toLowerCase()
    if (scheme === 'bearer ') return authorization.slice(7).trim() || null
  }
  const xApiKey = headers['x-api-key']
  if (typeof xApiKey === 'string' && xApiKey) return xApiKey.trim()
  const google = headers['x-goog-api-key']
  if (typeof google === 'string' && google) return google.trim()
  const litellm = headers['x-litellm-api-key']
  if (typeof litellm === 'string' && litellm) {
    // LiteLLM takes it with or without the Bearer scheme.
    const value = litellm.trim()
    return value.slice(0, 7).toLowerCase() === 'bearer ' ? value.slice(7).trim() || null : value
  }
  const azure = headers['api-key']
  if (typeof azure === 'string' && azure) return azure.trim() || null
  if (url && url.includes('key=')) {
    const query = url.slice(url.indexOf('?') + 1)
    const key = new URLSearchParams(query).get('key')
    if (key) return key
  }
  return null
}

/**
 * Key -> (key, owner, plan), from the catalog's caches. Unknown, revoked or
 * expired keys are invalid, and the client is told the same thing for each:
 * which one it is would tell whoever holds a leaked key that it once worked.
 */
export function resolvePrincipal(catalog: Catalog, rawKey: string | null, headers?: IncomingHttpHeaders): Promise<Principal> {
  // Not async itself: the lookup's own promise is the only one per call, as before the split.
  if (!rawKey) return Promise.reject(GatewayError.invalidApiKey(missingKeyMessage(headers)))
  return resolvePrincipalByHash(catalog, hashApiKey(rawKey))
}

/** The same from the key's SHA-256 (a realtime session re-reads its key by it; a client secret names its key so). */
export async function resolvePrincipalByHash(catalog: Catalog, hash: string): Promise<Principal> {
  // From memory when cached (every call but the first): no promise of the catalog's per call.
  const cachedKey = catalog.cachedKey(hash)
  const key = cachedKey !== undefined ? cachedKey : await catalog.key(hash)
  if (!key || key.revoked || (key.expiresAt !== null && key.expiresAt <= Date.now())) {
    // A block is an operator's, meant to be told (LiteLLM says it too); the other cases stay alike.
    throw GatewayError.invalidApiKey(key?.blocked ? 'This API key is blocked' : 'Invalid API key')
  }
  const user = catalog.cachedUser(key.userId) ?? (await catalog.user(key.userId))
  if (!user) throw GatewayError.invalidApiKey('Invalid API key')
  if (user.disabled) throw GatewayError.invalidApiKey('The account owning this API key is disabled')
  // A plan not loaded here yet (made or assigned moments ago, its notice late or lost) is read, once for all who ask.
  const plan = user.planId === null ? null : (catalog.plans.get(user.planId) ?? (await catalog.unheardPlan(user.planId)) ?? null)
  // A key in no team (the usual case) pays this one test; a team not heard of yet is read; one deleted since leaves the key without one.
  const team = key.teamId === null ? null : (catalog.teams.get(key.teamId) ?? (await catalog.teams.unheard(key.teamId)) ?? null)
  if (team === null) return { key, user, plan, team, org: null, member: null }
  if (team.blocked) throw GatewayError.invalidApiKey(`This API key's team '${team.alias}' is blocked`)
  // The team's organization, loaded with it (a team in none: one more null test). Blocked: as a blocked team.
  const org = team.org
  if (org !== null && org.blocked) throw GatewayError.invalidApiKey(`This API key's organization '${org.alias}' is blocked`)
  // The owner's limits in the team (member_policies.ts): one null test for a team where no member has any, else one lookup.
  const member = team.members === null ? null : (team.members.get(user.id) ?? null)
  return { key, user, plan, team, org, member }
}

/**
 * "Missing API key", or, when an Authorization header was sent in another
 * scheme (Basic, a bare key, `Bearer` with no key), what it should be: the
 * client did send something, and "missing" would send its author looking
 * for the wrong mistake. Only on the refusal path.
 */
function missingKeyMessage(headers: IncomingHttpHeaders | undefined): string {
  const authorization = headers?.['authorization']
  if (typeof authorization !== 'string' || authorization.trim() === '') return 'Missing API key'
  return "Missing API key: the Authorization header must be 'Bearer <key>' (or send the key in x-api-key)"
}
