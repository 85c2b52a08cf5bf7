import { GatewayError } from '#exceptions/gateway_error'
import { authorizeModel } from '#gateway/access_policy'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { MESSAGE_BATCH_BYTES } from '#gateway/http/body_limits'
import { modelNameProblem } from '#gateway/http/model_name'
import { readRawBody } from '#gateway/http/raw_body'
import { fromPico } from '#gateway/metering/money'
import { requestId } from '#gateway/metering/request_id'
import { dispatch } from '#gateway/upstream/dispatcher'
import { batchBudgetOf, refuseUncoveredHold } from '#gateway/batches/batch_holds'
import { batchHold, embedBatchHold } from '#gateway/batches/batch_pricing'
import { findOwned, GEMINI_BATCH_ENDPOINT, GEMINI_EMBED_BATCH_ENDPOINT, insertObject, listOwned, markDeleted } from '#gateway/batches/batch_store'
import { closeSignal, relayBytes } from '#gateway/batches/files_api'
import { GeminiHoldTally, readGeminiBatch, tallyInputFile, withUpstreamModel } from '#gateway/batches/gemini_batch_input'
import { EmbedTokenTally } from '#gateway/batches/gemini_embed_batch_input'
import { GEMINI_FINISHED_STATES, geminiBatchState, geminiBatchView, isGeminiBatchName, withoutInlined } from '#gateway/batches/gemini_batch_objects'
import { withinReadDeadline } from '#gateway/batches/read_deadline'
import {
  callChannel,
  channelRequest,
  GEMINI_BATCH_CHANNEL_KINDS,
  jsonAnswer,
  NEVER,
  sendToChannel,
} from '#gateway/batches/upstream_calls'
import { geminiFileReferences, notFound, pinnedCandidates, type FileReference } from '#gateway/provider_files/file_pins'
import { googleHolder, pageQuery } from '#gateway/provider_files/google_calls'
import { providerFiles } from '#gateway/provider_files/provider_file_store'

/**
 * Gemini's Batch API (@google/genai `batches.create / createEmbeddings / get
 * / list / cancel / delete`) on `google` channels, on the Batch API's machinery: a row in
 * batch_objects (endpoint `batchGenerateContent` or `asyncBatchEmbedContent`, a `batches/gw…` name),
 * the key's only; a hold at the batch price from its creation; one bill when
 * the gateway first sees it in a final state (batch_service.ts
 * settleGeminiBatch), whoever looks (a get, a cancel, the sweep), for the
 * requests that completed, at BATCH_PRICE_PERCENT (Google's batch price is
 * half its interactive one).
 */

/** Gemini's two batch creations: generateContent's and embeddings' (`batches.createEmbeddings`) */
export type GeminiBatchMethod = typeof GEMINI_BATCH_ENDPOINT | typeof GEMINI_EMBED_BATCH_ENDPOINT

/**
 * `POST /v1beta/models/{model}:batchGenerateContent` and
 * `:asyncBatchEmbedContent`: the body read (gemini_batch_input.ts: inline
 * requests, or a Files API file), the model authorised as a
 * generateContent's or embedContent's (plan and key globs, monthly tokens,
 * spend cap) and routed to its google channels: to the one holding the
 * input file (another user's file: 404; one the gateway did not record:
 * 404, its lines cannot be held), or the files its inline requests name.
 * Held at the batch price (402 when the balance, less what is held already,
 * or the key's cap cannot cover it): a generation batch by its requests'
 * bytes and output allowances (batchHold), an embedding batch by its
 * requests' input tokens as the gateway counts them
 * (gemini_embed_batch_input.ts, the counts kept for its bill). Then sent to
 * the first channel that takes it, the channel's model name in the path.
 */
export async function createGeminiBatch(gw: Gateway, call: ApiCall, model: string, method: GeminiBatchMethod = GEMINI_BATCH_ENDPOINT): Promise<Record<string, any>> {
  const raw = await gw.service.receiveBody(readRawBody(call.req, call.res, MESSAGE_BATCH_BYTES))
  const body = jsonObject(raw)
  const problem = modelNameProblem(model)
  if (problem) throw GatewayError.invalidRequest(problem, 'invalid_model', 'model')
  const embeds = method === GEMINI_EMBED_BATCH_ENDPOINT
  const tally = embeds ? new EmbedTokenTally() : new GeminiHoldTally()
  const source = readGeminiBatch(body, model, tally)
  const { principal } = call
  const price = authorizeModel(gw.catalog, principal, model)
  let candidates = gw.service
    .router(principal.plan)
    .route(model)
    .filter((c) => GEMINI_BATCH_CHANNEL_KINDS.has(c.channel.provider))
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(`No channel serving '${model}' offers Gemini's Batch API: it goes to Google channels ('google')`, 'unsupported_endpoint', 'model')
  }
  let bytes = raw.length
  let inputFile: string | null = null
  if (source.kind === 'file') {
    inputFile = source.fileName
    if ((await providerFiles.owned('gemini_file', principal.user.id, inputFile)) === null) throw notFound({ kind: 'gemini_file', id: inputFile })
    candidates = await pinnedCandidates(candidates, [{ kind: 'gemini_file', id: inputFile }], principal.user.id, model)
    // The gateway keeps no copy of the file: its lines are read back from the channel holding it for the hold.
    bytes = await withinReadDeadline(`Reading ${inputFile} for the batch's hold`, async (signal) => {
      const { body: lines } = await sendToChannel(candidates[0], { method: 'GET', prefix: '/download', path: `/${inputFile}:download?alt=media` }, signal)
      return tallyInputFile(lines, tally)
    })
    if (tally.requests === 0) throw GatewayError.invalidRequest(`${inputFile} holds no request line`, 'invalid_batch', 'batch.input_config.file_name')
  } else {
    const refs = inlineFileReferences(raw, source.requests)
    if (refs.length > 0) candidates = await pinnedCandidates(candidates, refs, principal.user.id, model)
    if (tally instanceof EmbedTokenTally) await tally.flush()
  }
  const hold =
    tally instanceof EmbedTokenTally
      ? embedBatchHold(price, tally.tokens, tally.requests)
      : batchHold(price, bytes, tally.completionHold, tally.requests, tally.searchHold, tally.audioHold, tally.imageHold, tally.imageAnswerHold)
  refuseUncoveredHold(principal, price, hold, tally.requests, model)
  const budgetModel = batchBudgetOf(principal, model)?.model ?? null
  /** The body for a mapped name (one per name): the inline requests' own `model` renamed; else the client's bytes */
  const mapped = new Map<string, Buffer | string>()
  const bodyFor = (upstreamModel: string): Buffer | string => {
    if (upstreamModel === model) return raw
    let renamed = mapped.get(upstreamModel)
    if (renamed === undefined) mapped.set(upstreamModel, (renamed = withUpstreamModel(body, source, upstreamModel) ?? raw))
    return renamed
  }
  const digests = tally.customIds()
  const displayName = body.batch.displayName ?? body.batch.display_name
  let upstream: Record<string, any> = {}
  const row = await gw.batches.holds.holdWhileCreating(principal.user.id, principal.key.id, principal.team?.id ?? null, hold, async () => {
    const result = await dispatch(
      candidates,
      (c) =>
        channelRequest(c.channel, {
          method: 'POST',
          path: `/models/${encodeURIComponent(c.upstreamModel)}:${method}`,
          body: bodyFor(c.upstreamModel),
        }),
      // Not aborted when the client leaves: the upstream may have made the batch already, and one the gateway never
      // recorded would run there unbilled (as OpenAI batches, batches_api.ts). Recorded, held and billed.
      NEVER,
      undefined,
      jsonAnswer
    )
    upstream = result.answer
    if (!isGeminiBatchName(upstream.name)) throw GatewayError.providerError('The upstream answered the batch without a usable name')
    return insertObject({
      kind: 'batch',
      upstream_id: upstream.name,
      user_id: principal.user.id,
      api_key_id: principal.key.id,
      channel_id: result.candidate.channel.id,
      model,
      served_model: result.candidate.upstreamModel,
      purpose: null,
      endpoint: method,
      filename: typeof displayName === 'string' ? displayName.replaceAll('\0', '').slice(0, 1000) : null,
      bytes,
      lines: tally.requests,
      completion_hold: tally instanceof EmbedTokenTally ? 0 : tally.completionHold,
      input_file_id: inputFile,
      customIds: digests === null ? undefined : { digests },
      inputTokens: tally instanceof EmbedTokenTally ? tally.countsBuffer() : undefined,
      // Its hold counted against the team's budget (batch_holds.ts), its bill in the team's spend (batch_service.ts).
      team_id: principal.team?.id ?? null,
      budget_model: budgetModel,
      status: geminiBatchState(upstream) ?? 'BATCH_STATE_PENDING',
      object: withoutInlined(upstream),
      request_id: requestId(),
      hold: fromPico(hold),
    })
  }, budgetModel)
  await gw.batches.settleGeminiBatch(row, upstream)
  return geminiBatchView(row, upstream)
}

/** The body as a JSON object (Google's 400 otherwise) */
function jsonObject(raw: Buffer): Record<string, any> {
  let body: unknown
  try {
    body = JSON.parse(raw.toString('utf8'))
  } catch {
    throw GatewayError.invalidJson()
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw GatewayError.invalidRequest('The request body must be a JSON object', 'invalid_request')
  return body as Record<string, any>
}

/** What file_pins.ts searches a body's bytes for before it walks it (a file, a cache, an escape) */
const MARKERS = ['files/', 'ached', '\\u', '\\/'].map((marker) => Buffer.from(marker))
/** Bytes holding a marker: each request's walk then skips the search the whole body had already passed */
const MARKED = MARKERS[0]

/** The Files API files and caches the inline requests name (one byte search of the body for a batch naming none) */
function inlineFileReferences(raw: Buffer, requests: Array<Record<string, any>>): FileReference[] {
  if (!MARKERS.some((marker) => raw.indexOf(marker) >= 0)) return []
  const seen = new Map<string, FileReference>()
  for (const item of requests) for (const ref of geminiFileReferences(MARKED, item.request) ?? []) seen.set(`${ref.kind} ${ref.id}`, ref)
  return [...seen.values()]
}

/** The caller's batch of that name (`batches/gw…`; Google's 404 for any other key's) */
function ownedBatch(call: ApiCall, id: string) {
  return findOwned(call.principal, 'gemini_batch', `batches/${id}`)
}

/**
 * `GET /v1beta/batches/{id}`: asked of the upstream every time (its inline
 * answers are not kept here), settled: billed once when first seen final.
 */
export async function showGeminiBatch(gw: Gateway, call: ApiCall, id: string) {
  const row = await ownedBatch(call, id)
  return geminiBatchView(row, await gw.batches.poll(row, closeSignal(call)))
}

/** `POST /v1beta/batches/{id}:cancel`: cancelled upstream, then asked for (billed once it ended); Google's empty answer. */
export async function cancelGeminiBatch(gw: Gateway, call: ApiCall, id: string) {
  const row = await ownedBatch(call, id)
  await gw.batches.cancel(row, closeSignal(call))
  return {}
}

/**
 * `DELETE /v1beta/batches/{id}`: only a finished batch (Google's delete
 * does not stop a running one, and the gateway could then not learn what it
 * used: cancel it first), and only once billed; deleted upstream (one gone
 * there is gone), then marked deleted here (the row keeps its bill).
 */
export async function deleteGeminiBatch(gw: Gateway, call: ApiCall, id: string) {
  const row = await ownedBatch(call, id)
  const signal = closeSignal(call)
  if (row.billed_at === null) await gw.batches.poll(row, signal)
  if (row.billed_at === null && !GEMINI_FINISHED_STATES.has(row.status)) {
    throw GatewayError.invalidRequest(
      `Batch ${row.public_id} cannot be deleted while it is ${row.status}: cancel it and wait for it to end`,
      'batch_in_progress',
      'name'
    )
  }
  if (row.billed_at === null) {
    throw new GatewayError(503, 'batch_not_billed', `Batch ${row.public_id} ended, but its results could not be read for its bill yet; try the delete again shortly`, 'service_unavailable')
  }
  try {
    await callChannel(gw.batches.holdingChannelOf(row), { method: 'DELETE', path: `/${row.upstream_id}` }, signal)
  } catch (error) {
    if (!(error instanceof GatewayError && error.status === 404)) throw error
  }
  await markDeleted(row.id)
  return {}
}

/** `GET /v1beta/batches` (`pageSize` up to 1000, default 50; `pageToken`): the key's batches, newest first, as last seen. */
export async function listGeminiBatches(call: ApiCall, query: Record<string, unknown>) {
  const { size, token } = pageQuery(query, 50, 1000)
  const rows = await listOwned(call.principal, 'gemini_batch', { after: token, limit: size })
  const operations = rows.slice(0, size).map((row) => geminiBatchView(row, row.object ?? {}))
  const answer: Record<string, any> = { operations }
  if (rows.length > size) answer.nextPageToken = operations[operations.length - 1].name
  return answer
}

/**
 * `GET /download/v1beta/files/{id}:download` (a batch's results file, or any
 * Files API file the caller recorded): its owner's only (Google's 404 for
 * anyone else), the holding channel's bytes relayed as they come.
 */
export async function downloadGeminiFile(gw: Gateway, call: ApiCall, name: string) {
  const row = await providerFiles.owned('gemini_file', call.principal.user.id, name)
  if (row === null) throw notFound({ kind: 'gemini_file', id: name })
  const { response, body } = await sendToChannel(
    googleHolder(gw.catalog.channels, row.channel_id),
    { method: 'GET', prefix: '/download', path: `/${name}:download?alt=media` },
    closeSignal(call)
  )
  await relayBytes(call, response, body, 'application/octet-stream')
}
