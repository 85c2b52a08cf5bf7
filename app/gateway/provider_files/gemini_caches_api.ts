import { GatewayError } from '#exceptions/gateway_error'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { closeSignal } from '#gateway/batches/files_api'
import { NEVER } from '#gateway/batches/upstream_calls'
import { fileChannels } from '#gateway/provider_files/file_channels'
import { geminiFileReferences, ownedOr404, pinnedCandidates } from '#gateway/provider_files/file_pins'
import { deleteHeld, googleHolder, googleJson, listOwned, readJsonObject, timeOf } from '#gateway/provider_files/google_calls'
import { providerFiles, type ProviderFileRow } from '#gateway/provider_files/provider_file_store'

/**
 * `POST /v1beta/cachedContents` (@google/genai `caches.create`): routed by
 * its `model` to the google channels serving it for the caller (a mapped
 * name sent as the channel's), or, when its contents name Files API files
 * the gateway recorded, to the channel holding them (file_pins.ts); the
 * cache is then the caller's, on that channel, under the upstream's name,
 * and a generateContent naming it goes there. The cached tokens a
 * generation reads are billed as cache reads (`cachedContentTokenCount`:
 * the model's cache-read price); the storage Google bills per hour is not
 * metered by the gateway.
 */
export async function createGeminiCache(gw: Gateway, call: ApiCall) {
  const { raw, body } = await readJsonObject(gw.service, call, bodyLimitFor('generation'))
  if (typeof body.model !== 'string' || body.model === '') throw GatewayError.invalidRequest("'model' is required", 'missing_required_parameter', 'model')
  const model = body.model.replace(/^models\//, '')
  let candidates = fileChannels(gw, call, 'google', model)
  const files = geminiFileReferences(raw, body)
  if (files !== null) candidates = await pinnedCandidates(candidates, files, call.principal.user.id, model)
  const { candidate, answer } = await googleJson(
    candidates,
    (c) => ({ method: 'POST', path: '/cachedContents', body: c.upstreamModel === model ? raw : Buffer.from(JSON.stringify({ ...body, model: `models/${c.upstreamModel}` })) }),
    // Not aborted with the client: a cache made upstream and not recorded here would be nobody's (and billed by the hour).
    NEVER
  )
  if (typeof answer.name !== 'string' || !answer.name.startsWith('cachedContents/') || answer.name.length > 255) {
    throw GatewayError.providerError('The upstream answered without a cache name')
  }
  const view = { ...answer, model: `models/${model}` }
  await providerFiles.insert({
    kind: 'gemini_cache',
    upstream_id: answer.name,
    user_id: call.principal.user.id,
    api_key_id: call.principal.key.id,
    channel_id: candidate.channel.id,
    filename: typeof answer.displayName === 'string' ? answer.displayName.slice(0, 1000) : null,
    mime_type: null,
    bytes: null,
    model: `models/${model}`,
    status: 'active',
    object: view,
    expires_at: timeOf(answer.expireTime),
  })
  return view
}

/** `GET /v1beta/cachedContents` (`pageSize` up to 1000, default 100; `pageToken`): the caller's caches, newest first, as last seen. */
export async function listGeminiCaches(call: ApiCall, query: Record<string, unknown>) {
  return listOwned('gemini_cache', 'cachedContents', call, query, { fallback: 100, max: 1000 })
}

/** The upstream's cache under the name the client knows (the model as the client named it). */
function seenAs(row: ProviderFileRow, answer: Record<string, any>) {
  return row.model === null ? answer : { ...answer, model: row.model }
}

/** `GET /v1beta/cachedContents/{id}`: asked of the holding channel, kept on the row. */
export async function showGeminiCache(gw: Gateway, call: ApiCall, name: string) {
  const row = await ownedOr404('gemini_cache', call.principal.user.id, name)
  const { answer } = await googleJson([googleHolder(gw.catalog.channels, row.channel_id)], { method: 'GET', path: `/${name}` }, closeSignal(call))
  const view = seenAs(row, answer)
  await providerFiles.update(row, view, timeOf(answer.expireTime) ?? row.expires_at)
  return view
}

/** `PATCH /v1beta/cachedContents/{id}` (`ttl` or `expireTime`, `updateMask`): relayed to the holding channel. */
export async function updateGeminiCache(gw: Gateway, call: ApiCall, name: string, search: string) {
  const row = await ownedOr404('gemini_cache', call.principal.user.id, name)
  const { raw } = await readJsonObject(gw.service, call, bodyLimitFor('batches'))
  const { answer } = await googleJson(
    [googleHolder(gw.catalog.channels, row.channel_id)],
    { method: 'PATCH', path: `/${name}${search}`, body: raw },
    closeSignal(call)
  )
  const view = seenAs(row, answer)
  await providerFiles.update(row, view, timeOf(answer.expireTime) ?? row.expires_at)
  return view
}

/** `DELETE /v1beta/cachedContents/{id}`: deleted upstream (one gone there already is gone), then marked here. */
export async function deleteGeminiCache(gw: Gateway, call: ApiCall, name: string) {
  return deleteHeld(gw.catalog.channels, call, await ownedOr404('gemini_cache', call.principal.user.id, name), name)
}
