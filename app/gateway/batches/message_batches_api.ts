import { GatewayError } from '#exceptions/gateway_error'
import { wholeNumber } from '#gateway/http/whole_number'
import { authorizeModel } from '#gateway/access_policy'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { MESSAGE_BATCH_BYTES } from '#gateway/http/body_limits'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { fromPico } from '#gateway/metering/money'
import { requestId } from '#gateway/metering/request_id'
import { dispatch } from '#gateway/upstream/dispatcher'
import { batchBudgetOf, refuseUncoveredHold } from '#gateway/batches/batch_holds'
import { batchHold } from '#gateway/batches/batch_pricing'
import {
  findOwned,
  insertObject,
  listOwned,
  markDeleted,
  MESSAGE_BATCH_ENDPOINT,
  type BatchObjectRow,
} from '#gateway/batches/batch_store'
import { closeSignal, relayBytes } from '#gateway/batches/files_api'
import { NEVER } from '#gateway/batches/upstream_calls'
import { anthropicFileReferences, pinnedCandidates } from '#gateway/provider_files/file_pins'
import { readMessageBatch, withoutForeignBatchCitations, withUpstreamModel } from '#gateway/batches/message_batch_input'
import {
  callChannel,
  channelRequest,
  jsonAnswer,
  MESSAGE_BATCH_CHANNEL_KINDS,
  messageBatchPath,
  sendToChannel,
} from '#gateway/batches/upstream_calls'

/**
 * Anthropic's Message Batches (`/v1/messages/batches`, the Anthropic SDKs'
 * `messages.batches.*`) on `anthropic` channels, on the Batch API's
 * machinery: a row in batch_objects (endpoint `/v1/messages`, a
 * `msgbatch_gw…` id), the key's only; a hold at the batch price from its
 * creation; one bill when the gateway sees it `ended` (batch_service.ts),
 * whoever looks (a retrieve, the results, a cancel, the sweep).
 *
 * `base` is the gateway's address as the client reached it: a batch's
 * `results_url` points there (the SDK's `results()` follows it with the
 * same key), never at the upstream.
 */

/** Each request's params, checked for a key twice as a request body's */
const REQUEST_PARAMS = ['requests', '*', 'params'] as const

/**
 * `POST /v1/messages/batches` {requests: [{custom_id, params}]}: read
 * (message_batch_input.ts: one model, custom ids), the model authorised as
 * any request's (plan and key globs, monthly tokens, spend cap), routed to
 * its Anthropic channels, held at the batch price (402 when the balance,
 * less what is held already, or the key's cap cannot cover it), then sent to
 * the first channel that takes it (failing over as any call), each request's
 * `params.model` renamed for a channel that maps the name, else the client's
 * bytes as sent.
 */
export async function createMessageBatch(gw: Gateway, call: ApiCall, base: string): Promise<Record<string, any>> {
  const raw = await gw.service.receiveBody(readRawBody(call.req, call.res, MESSAGE_BATCH_BYTES))
  // Sent as the client's bytes: a key twice in a request's params (`"model"`) would be held and billed as the
  // last, and Anthropic may read the first.
  const body = parseJsonObject(raw, JSON.parse, REQUEST_PARAMS)
  const input = readMessageBatch(body)
  const { principal } = call
  const price = authorizeModel(gw.catalog, principal, input.model)
  let candidates = gw.service
    .router(principal.plan)
    .route(input.model)
    .filter((c) => MESSAGE_BATCH_CHANNEL_KINDS.has(c.channel.provider))
  // Files (Anthropic's Files API) its requests name: the caller's only, the batch sent to the channel holding them.
  const files = anthropicFileReferences(raw, { messages: body.requests.map((r: any) => r?.params?.messages) })
  if (files !== null && candidates.length > 0) candidates = await pinnedCandidates(candidates, files, principal.user.id, input.model)
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(
      `No channel serving '${input.model}' offers Message Batches: they go to Anthropic channels ('anthropic')`,
      'unsupported_endpoint',
      'requests'
    )
  }
  const hold = batchHold(price, raw.length, input.completionHold, input.requests, input.searchHold)
  refuseUncoveredHold(principal, price, hold, input.requests, input.model)
  const budgetModel = batchBudgetOf(principal, input.model)?.model ?? null
  /** The body for a mapped name (one per name): every request's params.model renamed */
  const mapped = new Map<string, string>()
  // The gateway's own citations in the histories (empty encrypted_index): Anthropic cannot resolve them
  const cleaned = withoutForeignBatchCitations(body)
  const bodyFor = (upstreamModel: string): Buffer | string => {
    if (upstreamModel === input.model && cleaned === null) return raw
    let renamed = mapped.get(upstreamModel)
    if (renamed === undefined) mapped.set(upstreamModel, (renamed = withUpstreamModel(cleaned ?? body, upstreamModel)))
    return renamed
  }
  let upstream: Record<string, any> = {}
  const row = await gw.batches.holds.holdWhileCreating(principal.user.id, principal.key.id, principal.team?.id ?? null, hold, async () => {
    const result = await dispatch(
      candidates,
      (c) =>
        channelRequest(c.channel, { method: 'POST', path: '/messages/batches', body: bodyFor(c.upstreamModel), clientHeaders: call.req.headers }),
      // Not aborted when the client leaves: the upstream may have made the batch already, and one the gateway
      // never recorded would run there unbilled (as OpenAI batches, batches_api.ts). Recorded, held and billed.
      NEVER,
      undefined,
      jsonAnswer
    )
    upstream = result.answer
    if (!isStorableUpstreamId(upstream.id)) throw GatewayError.providerError('The upstream answered the message batch without a usable id')
    return insertObject({
      kind: 'batch',
      upstream_id: upstream.id,
      user_id: principal.user.id,
      api_key_id: principal.key.id,
      channel_id: result.candidate.channel.id,
      model: input.model,
      served_model: result.candidate.upstreamModel,
      purpose: null,
      endpoint: MESSAGE_BATCH_ENDPOINT,
      filename: null,
      bytes: raw.length,
      lines: input.requests,
      completion_hold: input.completionHold,
      input_file_id: null,
      customIds: { digests: input.customIds },
      // Its hold counted against the team's budget (batch_holds.ts), its bill in the team's spend (batch_service.ts).
      team_id: principal.team?.id ?? null,
      budget_model: budgetModel,
      status: typeof upstream.processing_status === 'string' ? upstream.processing_status : 'in_progress',
      object: upstream,
      request_id: requestId(),
      hold: fromPico(hold),
    })
  }, budgetModel)
  await gw.batches.settleMessageBatch(row, upstream)
  return messageBatchView(row, base)
}

/** An upstream id the row keeps as sent (upstream_id is 255 characters, text without NUL): polled, canceled and billed by it */
function isStorableUpstreamId(id: unknown): id is string {
  return typeof id === 'string' && id !== '' && id.length <= 255 && !id.includes('\0')
}

/**
 * `GET /v1/messages/batches/{id}`: asked of the upstream while the batch is
 * not billed (an ended one is billed before the answer); a billed one is
 * answered as last seen.
 */
export async function showMessageBatch(gw: Gateway, call: ApiCall, id: string, base: string) {
  const row = await findOwned(call.principal, 'message_batch', id)
  if (row.billed_at === null) await gw.batches.poll(row, closeSignal(call))
  return messageBatchView(row, base)
}

/** `POST /v1/messages/batches/{id}/cancel`: canceled upstream; billed once the upstream says it ended (BatchService.cancel). */
export async function cancelMessageBatch(gw: Gateway, call: ApiCall, id: string, base: string) {
  const row = await findOwned(call.principal, 'message_batch', id)
  await gw.batches.cancel(row, closeSignal(call))
  return messageBatchView(row, base)
}

/**
 * `GET /v1/messages/batches/{id}/results`: the batch billed first when it
 * has ended (its results are read for the bill), then the upstream's results
 * relayed as they come (JSONL, never held whole). Before the batch ends the
 * upstream's refusal is relayed.
 */
export async function messageBatchResults(gw: Gateway, call: ApiCall, id: string) {
  const row = await findOwned(call.principal, 'message_batch', id)
  const signal = closeSignal(call)
  if (row.billed_at === null) await gw.batches.poll(row, signal)
  const { response, body } = await sendToChannel(gw.batches.holdingChannelOf(row), { method: 'GET', path: messageBatchPath(row.upstream_id, '/results') }, signal)
  await relayBytes(call, response, body, 'application/binary')
}

/**
 * `DELETE /v1/messages/batches/{id}`: only an ended batch (as Anthropic),
 * and only once billed: its results are gone upstream after this, and with
 * them what it used. Deleted upstream (one already gone there is gone), then
 * marked deleted here (the row keeps its bill's figures).
 */
export async function deleteMessageBatch(gw: Gateway, call: ApiCall, id: string) {
  const row = await findOwned(call.principal, 'message_batch', id)
  const signal = closeSignal(call)
  if (row.billed_at === null) await gw.batches.poll(row, signal)
  if (row.billed_at === null && row.status !== 'ended') {
    throw GatewayError.invalidRequest(
      `Message batch ${row.public_id} cannot be deleted while it is ${row.status}: cancel it and wait for it to end`,
      'batch_in_progress',
      'message_batch_id'
    )
  }
  if (row.billed_at === null) {
    throw new GatewayError(
      503,
      'batch_not_billed',
      `Message batch ${row.public_id} ended, but its results could not be read for its bill yet; try the delete again shortly`,
      'service_unavailable'
    )
  }
  try {
    await callChannel(gw.batches.holdingChannelOf(row), { method: 'DELETE', path: messageBatchPath(row.upstream_id) }, signal)
  } catch (error) {
    if (!(error instanceof GatewayError && error.status === 404)) throw error
  }
  await markDeleted(row.id)
  return { id: row.public_id, type: 'message_batch_deleted' }
}

/** Anthropic's list query: `limit` 1 to 1,000 (20 by default), `after_id` (older) or `before_id` (newer), not both. */
export interface MessageBatchListParams {
  limit: number
  afterId?: string
  beforeId?: string
}

export function messageBatchListParams(query: Record<string, unknown>): MessageBatchListParams {
  const params: MessageBatchListParams = { limit: 20 }
  if (query.limit !== undefined) {
    const n = wholeNumber(query.limit)
    if (!Number.isInteger(n) || n < 1 || n > 1000) {
      throw GatewayError.invalidRequest('limit must be an integer from 1 to 1000', 'invalid_value', 'limit')
    }
    params.limit = n
  }
  if (typeof query.after_id === 'string' && query.after_id !== '') params.afterId = query.after_id.slice(0, 64)
  if (typeof query.before_id === 'string' && query.before_id !== '') params.beforeId = query.before_id.slice(0, 64)
  if (params.afterId !== undefined && params.beforeId !== undefined) {
    throw GatewayError.invalidRequest('after_id and before_id cannot both be given', 'invalid_value', 'before_id')
  }
  return params
}

/**
 * `GET /v1/messages/batches`: this key's message batches, newest first, as
 * last seen (retrieve one to ask the upstream now), in Anthropic's page
 * (`data`, `has_more`, `first_id`, `last_id`).
 */
export async function listMessageBatches(call: ApiCall, params: MessageBatchListParams, base: string) {
  const rows = await listOwned(call.principal, 'message_batch', { after: params.afterId, before: params.beforeId, limit: params.limit })
  const hasMore = rows.length > params.limit
  const page = rows.slice(0, params.limit)
  // A before_id page was read oldest first (the ones nearest the cursor): shown newest first like any page.
  if (params.beforeId !== undefined) page.reverse()
  const data = page.map((row) => messageBatchView(row, base))
  return { data, has_more: hasMore, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null }
}

/** A message batch as the client sees it: the upstream's last word with the gateway's id and results_url. */
function messageBatchView(row: BatchObjectRow, base: string): Record<string, any> {
  const upstream = row.object ?? {}
  return {
    ...upstream,
    id: row.public_id,
    type: 'message_batch',
    results_url: upstream.results_url ? `${base}/v1/messages/batches/${row.public_id}/results` : null,
  }
}
