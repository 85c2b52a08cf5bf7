import { GatewayError } from '#exceptions/gateway_error'
import { authorizeModel } from '#gateway/access_policy'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { fromPico } from '#gateway/metering/money'
import { requestId } from '#gateway/metering/request_id'
import { batchHold } from '#gateway/batches/batch_pricing'
import { batchBudgetOf, refuseUncoveredHold } from '#gateway/batches/batch_holds'
import { findOwned, insertObject, listOwned, type BatchObjectRow } from '#gateway/batches/batch_store'
import { batchEndpointFor, callChannel, holdingChannel, NEVER } from '#gateway/batches/upstream_calls'
import { closeSignal } from '#gateway/batches/files_api'
import { batchEndpointOf } from '#gateway/batches/batch_input'
import { listPage, type ListParams } from '#gateway/batches/list_params'

/**
 * `POST /v1/batches` {input_file_id, endpoint, completion_window, metadata}:
 * the key's file (404 otherwise), its endpoint, its model authorised as any
 * request's (plan and key globs, monthly tokens, spend cap), then a hold of
 * the batch's estimated cost at the batch price (batch_pricing.ts): refused
 * with 402 when the balance (less what is held already) cannot cover it, or
 * the key's cap. The hold is taken before the upstream is asked, so batches
 * created at once see each other, and kept until the batch is billed.
 */
export async function createBatch(gw: Gateway, call: ApiCall): Promise<Record<string, any>> {
  const raw = await gw.service.receiveBody(readRawBody(call.req, call.res, bodyLimitFor('batches')))
  const body = parseJsonObject(raw)
  const inputFileId = requiredString(body, 'input_file_id')
  const endpoint = requiredString(body, 'endpoint')
  const window = body.completion_window ?? '24h'
  if (window !== '24h') throw GatewayError.invalidRequest("completion_window must be '24h'", 'invalid_value', 'completion_window')
  const metadata = body.metadata
  if (metadata !== undefined && metadata !== null && !isStringMap(metadata)) {
    throw GatewayError.invalidRequest('metadata must be an object of strings', 'invalid_type', 'metadata')
  }
  // The upstream echoes it in the batch, which is stored: a NUL refused there would leave a batch running unbilled.
  if (metadata && Object.entries(metadata).some(([name, value]) => name.includes('\0') || (value as string).includes('\0'))) {
    throw GatewayError.invalidRequest('metadata must not contain NUL characters', 'invalid_value', 'metadata')
  }
  const file = await findOwned(call.principal, 'file', inputFileId)
  if (file.purpose !== 'batch' || file.model === null) {
    throw GatewayError.invalidRequest(`The file ${inputFileId} is not a batch input file`, 'invalid_value', 'input_file_id')
  }
  // Azure's form (`/chat/completions`, as AzureOpenAI clients following Azure's docs send it) is the same endpoint
  if (batchEndpointOf(endpoint) !== file.endpoint) {
    throw GatewayError.invalidRequest(
      `The file's requests call ${file.endpoint}, not ${endpoint.slice(0, 64)}: a batch's endpoint is its requests' url`,
      'invalid_value',
      'endpoint'
    )
  }
  const { principal } = call
  // A new batch is new work: on the file's channel only while it is open to the caller's plan (channel groups).
  const candidate = holdingChannel(gw.catalog.channels, file.channel_id, file.served_model, undefined, principal.plan)
  const price = authorizeModel(gw.catalog, principal, file.model)
  // Its lines' web searches, spoken answers and images too, as each request alone would hold them.
  const hold = batchHold(
    price,
    Number(file.bytes ?? 0),
    Number(file.completion_hold ?? 0),
    Number(file.lines ?? 0),
    Number(file.search_hold ?? 0),
    Number(file.audio_hold ?? 0),
    Number(file.image_hold ?? 0),
    Number(file.image_answer_hold ?? file.image_hold ?? 0)
  )
  refuseUncoveredHold(principal, price, hold, Number(file.lines ?? 0), file.model)
  const budgetModel = batchBudgetOf(principal, file.model)?.model ?? null
  let upstream: Record<string, any> = {}
  const row = await gw.batches.holds.holdWhileCreating(principal.user.id, principal.key.id, principal.team?.id ?? null, hold, async () => {
    upstream = await callChannel(
      candidate,
      {
        method: 'POST',
        path: '/batches',
        body: JSON.stringify({
          input_file_id: file.upstream_id,
          // Azure's without `/v1` (`/chat/completions`), as the file's lines were written for it at upload.
          endpoint: batchEndpointFor(candidate.channel, file.endpoint!),
          completion_window: window,
          ...(metadata ? { metadata } : {}),
        }),
      },
      // Not aborted when the client leaves: the upstream may have made the batch already, and one the gateway
      // never recorded would run there unbilled. The batch is recorded, held and billed, answered or not.
      NEVER
    )
    if (typeof upstream.id !== 'string' || upstream.id === '') throw GatewayError.providerError('The upstream answered the batch without an id')
    return insertObject({
      kind: 'batch',
      upstream_id: upstream.id,
      user_id: principal.user.id,
      api_key_id: principal.key.id,
      channel_id: file.channel_id,
      model: file.model,
      served_model: file.served_model,
      purpose: null,
      endpoint: file.endpoint,
      filename: null,
      bytes: file.bytes,
      lines: file.lines,
      completion_hold: file.completion_hold,
      search_hold: file.search_hold,
      audio_hold: file.audio_hold,
      image_hold: file.image_hold,
      image_answer_hold: file.image_answer_hold,
      input_file_id: file.public_id,
      customIds: { fromObject: file.id },
      // Its hold counted against the team's budget (batch_holds.ts), its bill in the team's spend (batch_service.ts).
      team_id: principal.team?.id ?? null,
      budget_model: budgetModel,
      status: typeof upstream.status === 'string' ? upstream.status : 'validating',
      object: upstream,
      request_id: requestId(),
      hold: fromPico(hold),
    })
  }, budgetModel)
  return gw.batches.settle(row, upstream)
}

/**
 * `GET /v1/batches/{id}`: asked of the upstream while the batch is not
 * billed (a finished one is billed before the answer); a billed one is
 * answered as last seen.
 */
export async function showBatch(gw: Gateway, call: ApiCall, id: string) {
  const row = await findOwned(call.principal, 'batch', id)
  if (row.billed_at !== null) return batchView(row)
  return gw.batches.poll(row, closeSignal(call))
}

/** `POST /v1/batches/{id}/cancel`: cancelled upstream; billed once the upstream says it is cancelled (BatchService.cancel). */
export async function cancelBatch(gw: Gateway, call: ApiCall, id: string) {
  const row = await findOwned(call.principal, 'batch', id)
  return gw.batches.cancel(row, closeSignal(call))
}

/** `GET /v1/batches`: this key's batches, newest first, as last seen (`after`, `limit`). */
export async function listBatches(call: ApiCall, params: ListParams) {
  return listPage(await listOwned(call.principal, 'batch', { after: params.after, limit: params.limit }), params.limit, batchView)
}

function batchView(row: BatchObjectRow): Record<string, any> {
  return { ...(row.object ?? {}), id: row.public_id, object: 'batch' }
}

function isStringMap(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string')
}

function requiredString(body: Record<string, any>, name: string): string {
  const value = body[name]
  if (typeof value !== 'string' || value === '') throw GatewayError.invalidRequest(`'${name}' is required`, 'missing_required_parameter', name)
  return value
}
