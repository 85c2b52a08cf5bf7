import { GatewayError } from '#exceptions/gateway_error'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { jsonAnswer } from '#gateway/batches/upstream_calls'
import { responsesRequest } from '#gateway/responses_store/upstream_responses'
import { ClientGoneError, dispatch } from '#gateway/upstream/dispatcher'
import { responseObject } from '#gateway/dialects/openai_responses/response'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { openToPlan } from '#gateway/routing/plan_routers'
import type { StoredResponse } from '#gateway/responses_store/response_store'
import { wholeNumber } from '#gateway/http/whole_number'
import type { ServerResponse } from 'node:http'
import db from '@adonisjs/lucid/services/db'
import type { ChannelInfo } from '#gateway/types'
import { ClientStream, STREAM_HEADERS } from '#gateway/relay/client_stream'
import { unfinished } from '#gateway/responses_store/response_store'
import { terminal, type BackgroundRun } from '#gateway/responses_store/background_runs'

/**
 * `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}` and
 * `GET /v1/responses/{id}/input_items`: from the store for a response the
 * gateway keeps (translated answers); relayed, with that channel's key, to
 * the Responses-native channel that holds one it answered. Unknown, expired
 * or another user's id: OpenAI's 404. With the store off
 * (RESPONSES_STORE_DAYS=0) nothing is read back, as previous_response_id
 * reads nothing then: GET and input_items are the 404 for every id (rows kept
 * before stay until they expire); DELETE still removes one.
 */
export async function showResponse(gw: Gateway, call: ApiCall, id: string, query: ShowQuery = {}): Promise<Record<string, any> | undefined> {
  const stream = query.stream === 'true' || query.stream === true
  const after = startingAfter(query.starting_after)
  // A background response this instance runs: its state now, or its events (those after `starting_after`, then live).
  const run = liveRun(gw, call, id)
  if (run !== undefined) {
    if (!stream) return run.view()
    if (!run.follow(call.res, after)) throw GatewayError.invalidRequest('The events of this response are too many to be replayed; retrieve it without stream', 'invalid_value', 'stream')
    return undefined
  }
  const stored = await readable(gw, call, id)
  if (stored.kind === 'upstream') {
    if (stream) {
      const search = new URLSearchParams({ stream: 'true' })
      if (after >= 0) search.set('starting_after', String(after))
      await relayUpstreamStream(holdingChannel(gw, call, stored), stored.model, stored.id, search, call.res)
      return undefined
    }
    const answer = await relay(gw, call, stored, 'GET', '')
    // A background response the gateway waits to bill: billed now if this says it ended.
    if (stored.background === true) gw.background.seen(stored.id, answer)
    return answer
  }
  const view = responseView(stored)
  if (!stream) return view
  // Run by another instance, or ended before: its state as one event (its last one once it ended).
  const type = `response.${view.status === 'queued' || view.status === 'in_progress' ? view.status : view.status}`
  call.res.writeHead(200, { ...STREAM_HEADERS })
  call.res.end(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: Math.max(0, after + 1), response: view })}\n\n`)
  return undefined
}

export interface ShowQuery {
  stream?: unknown
  starting_after?: unknown
}

/** `starting_after`: a sequence number, -1 when absent (every event) */
function startingAfter(value: unknown): number {
  if (value === undefined || value === '') return -1
  const n = wholeNumber(value)
  if (!Number.isInteger(n) || n < 0) throw GatewayError.invalidRequest("'starting_after' must be a whole number", 'invalid_value', 'starting_after')
  return n
}

/** A background run of this instance that is this user's (another's: unknown, as its row is) */
function liveRun(gw: Gateway, call: ApiCall, id: string): BackgroundRun | undefined {
  const run = gw.background.get(id)
  return run !== undefined && run.userId === call.principal.user.id && !run.deleted ? run : undefined
}

/**
 * `POST /v1/responses/{id}/cancel`, as at OpenAI: only a response created
 * with `background: true` can be cancelled (another is a 400); one cancelled
 * already answers as it is (idempotent); one that ended otherwise is a 400.
 * Run here: stopped, billed what the upstream streamed until then. Run by
 * another instance: its row marked cancelled and that instance told (NOTIFY),
 * which stops it. Held upstream: relayed to the channel that holds it.
 */
export async function cancelResponse(gw: Gateway, call: ApiCall, id: string): Promise<Record<string, any>> {
  const run = liveRun(gw, call, id)
  if (run !== undefined) {
    if (terminal(run.status) && run.status !== 'cancelled') throw notCancellable(run.status)
    run.cancel()
    return run.view()
  }
  const stored = await readable(gw, call, id)
  if (stored.kind === 'upstream') {
    const answer = await relay(gw, call, stored, 'POST', '/cancel')
    if (stored.background === true) gw.background.seen(stored.id, answer)
    return answer
  }
  if (stored.background !== true) throw GatewayError.invalidRequest('Cannot cancel a synchronous response.', 'invalid_request', 'response_id')
  if (stored.status === 'cancelled') return responseView(stored)
  if (!unfinished(stored.status)) throw notCancellable(stored.status)
  const rows = await db.rawQuery(
    `WITH hit AS (UPDATE stored_responses SET status = 'cancelled'
                   WHERE id = ? AND user_id = ? AND background AND status IN ('queued', 'in_progress') RETURNING id)
     SELECT id, pg_notify('gateway_changes', 'stored_responses_cancel:' || id) FROM hit`,
    [id, call.principal.user.id]
  )
  if (rows.rows.length === 0) {
    // It ended meanwhile: as it ended.
    gw.responses.forget(id)
    const now = await readable(gw, call, id)
    if (now.status !== 'cancelled') throw notCancellable(now.status)
    return responseView(now)
  }
  return responseView({ ...stored, status: 'cancelled' })
}

function notCancellable(status: string): GatewayError {
  return GatewayError.invalidRequest(`Cannot cancel a response with status '${status}'.`, 'invalid_request', 'response_id')
}

export async function deleteResponse(gw: Gateway, call: ApiCall, id: string): Promise<Record<string, any>> {
  // Running here: stopped first, and its end writes no row.
  const run = liveRun(gw, call, id)
  if (run !== undefined) {
    run.deleted = true
    run.cancel()
  }
  const stored = await owned(gw, call, id)
  // Still running upstream and polled here: cancelled there and billed what it reports first.
  if (stored.kind === 'upstream' && stored.background === true) await gw.background.endBeforeDelete(id, call.principal.user.id)
  if (stored.kind === 'upstream') await deleteUpstreamCopy(gw, call, stored)
  if (!(await gw.responses.delete(id, call.principal.user.id))) throw notFound(id)
  return { id, object: 'response', deleted: true }
}

/**
 * A Responses-native answer's upstream copy, deleted through the channel that
 * holds it when that can be done. When it cannot (the channel deleted or
 * disabled, the upstream failing or not answering), the gateway's record is
 * deleted all the same: before, its owner got a 404 (or the upstream's
 * error) until it expired. The upstream copy then stays with that channel's
 * account until the provider expires it (logged for the operator). A client
 * gone meanwhile: nothing deleted.
 */
async function deleteUpstreamCopy(gw: Gateway, call: ApiCall, stored: StoredResponse) {
  const channel = gw.catalog.channels.find((c) => c.id === stored.channelId)
  if (!channel || !channel.enabled) {
    gw.responses.options.log(`stored responses: ${stored.id} deleted by its owner; its channel is ${channel ? 'disabled' : 'gone'}, so its copy upstream was not deleted`)
    return
  }
  try {
    await relay(gw, call, stored, 'DELETE', '')
  } catch (error) {
    if (error instanceof ClientGoneError) throw error
    // Its 404: gone upstream already. Else the upstream could not delete it now: the owner's delete stands.
    if (error instanceof GatewayError && error.status === 404) return
    const reason = error instanceof Error ? error.message : String(error)
    gw.responses.options.log(`stored responses: ${stored.id} deleted by its owner; its copy upstream (channel ${channel.id}) could not be deleted: ${reason.slice(0, 300)}`)
  }
}

export interface InputItemsQuery {
  limit?: unknown
  order?: unknown
  after?: unknown
  include?: unknown
}

export async function listInputItems(gw: Gateway, call: ApiCall, id: string, query: InputItemsQuery): Promise<Record<string, any>> {
  const params = listParams(query)
  const stored = await readable(gw, call, id)
  if (stored.kind === 'upstream') {
    const search = new URLSearchParams({ limit: String(params.limit), order: params.order })
    if (params.after !== null) search.set('after', params.after)
    return relay(gw, call, stored, 'GET', '/input_items', search)
  }
  let items = (stored.inputItems ?? []).map((item, index) => inputItemView(item, stored.id, index))
  if (params.order === 'desc') items.reverse()
  if (params.after !== null) {
    const at = items.findIndex((item) => item.id === params.after)
    items = at < 0 ? [] : items.slice(at + 1)
  }
  const data = items.slice(0, params.limit)
  return {
    object: 'list',
    data,
    first_id: data[0]?.id ?? null,
    last_id: data[data.length - 1]?.id ?? null,
    has_more: items.length > data.length,
    limit: params.limit,
    order: params.order,
    after: params.after,
  }
}

/** The response object of a stored response, as OpenAI's GET answers it. */
export function responseView(stored: StoredResponse): Record<string, any> {
  const status = (stored.background === true ? stored.status : stored.status === 'incomplete' ? 'incomplete' : 'completed') as any
  const base = responseObject(stored.id, stored.model, status, (stored.outputItems ?? []) as any[], null, status === 'incomplete' ? 'max_output_tokens' : null)
  return {
    ...base,
    ...(stored.background === true ? { background: true } : {}),
    created_at: Math.floor(stored.createdAt.getTime() / 1000),
    usage: stored.usage,
    error: stored.error ?? null,
    instructions: stored.instructions,
    previous_response_id: stored.previousResponseId,
    store: true,
    metadata: {},
  }
}

/**
 * An input item as OpenAI lists it: an id (the client's, or one made of the
 * response's id and the item's place: stable, so `after` pages), a message's
 * type and its text as a content part.
 */
function inputItemView(item: any, responseId: string, index: number): Record<string, any> {
  const view: Record<string, any> = item !== null && typeof item === 'object' ? { ...item } : { content: String(item) }
  view.type ??= 'message'
  view.id ??= `${view.type === 'message' ? 'msg' : 'item'}_${responseId.replace(/^resp_/, '')}_${index}`
  if (view.type === 'message' && typeof view.content === 'string') {
    view.content = [{ type: view.role === 'assistant' ? 'output_text' : 'input_text', text: view.content }]
  }
  return view
}

/** OpenAI's list paging (`limit` 1-100, default 20; `order` default desc; `after`), for input items and conversation items. */
export function listParams(query: InputItemsQuery): { limit: number; order: 'asc' | 'desc'; after: string | null } {
  const limit = query.limit === undefined ? 20 : wholeNumber(query.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw GatewayError.invalidRequest("'limit' must be a whole number from 1 to 100", 'invalid_value', 'limit')
  }
  const order = query.order === undefined ? 'desc' : query.order
  if (order !== 'asc' && order !== 'desc') throw GatewayError.invalidRequest("'order' must be 'asc' or 'desc'", 'invalid_value', 'order')
  const after = typeof query.after === 'string' && query.after !== '' ? query.after : null
  return { limit, order, after }
}

/** A response of this user that may be read back: none while the store is off (RESPONSES_STORE_DAYS=0). */
async function readable(gw: Gateway, call: ApiCall, id: string): Promise<StoredResponse> {
  if (!gw.responses.enabled) throw notFound(id)
  return owned(gw, call, id)
}

async function owned(gw: Gateway, call: ApiCall, id: string): Promise<StoredResponse> {
  const stored = mayExist(id) ? await gw.responses.find(id, call.principal.user.id) : null
  if (stored === null) throw notFound(id)
  return stored
}

/**
 * Could a response have this id? Ours and the upstreams' are short ASCII. One
 * longer than 128, with a control character or a lone surrogate is unknown
 * without a read: a NUL reached Postgres, whose refusal was answered as the
 * generic 400 invalid_value instead of OpenAI's not found.
 */
function mayExist(id: string): boolean {
  return id.length <= 128 && !/[\u0000-\u001f\u007f]/.test(id) && id.isWellFormed()
}

/** OpenAI's answer for an unknown id (its control characters and lone surrogates shown as U+FFFD). */
function notFound(id: string): GatewayError {
  const shown = id.slice(0, 128).replace(/[\u0000-\u001f\u007f]/g, '\uFFFD').toWellFormed()
  const error = new GatewayError(404, 'not_found', `Response with id '${shown}' not found.`, 'invalid_request_error')
  error.param = 'response_id'
  return error
}

/**
 * A call to the channel that holds an upstream-kept response, with its key.
 * Gone or disabled since, or no longer open to the caller's plan (channel
 * groups): 404, as for an unknown id (never another account).
 */
async function relay(gw: Gateway, call: ApiCall, stored: StoredResponse, method: 'GET' | 'DELETE' | 'POST', suffix: string, search?: URLSearchParams) {
  const channel = holdingChannel(gw, call, stored)
  const candidate: RouteCandidate = { channel, upstreamModel: stored.model }
  const abort = new AbortController()
  const onClose = () => abort.abort()
  call.res.once('close', onClose)
  try {
    const path = `/responses/${encodeURIComponent(stored.id)}${suffix}`
    const result = await dispatch([candidate], () => responsesRequest(channel, method, path, search), abort.signal, undefined, jsonAnswer)
    return result.answer
  } finally {
    call.res.off('close', onClose)
  }
}

/** The channel that holds an upstream-kept response, open to this caller; else the 404 */
function holdingChannel(gw: Gateway, call: ApiCall, stored: StoredResponse): ChannelInfo {
  const channel = gw.catalog.channels.find((c) => c.id === stored.channelId)
  if (!channel || !channel.enabled || !openToPlan(channel, call.principal.plan)) throw notFound(stored.id)
  return channel
}

/**
 * An upstream's background response as a stream (`GET /responses/{id}?stream=true`
 * there), relayed to the client as it comes: a client that asked a stream
 * when it created one, or resumes one (`starting_after`). Nothing is billed
 * here: the response is billed once, when it ends (background_runs.ts).
 */
export async function relayUpstreamStream(channel: ChannelInfo, model: string, id: string, search: URLSearchParams | undefined, res: ServerResponse) {
  const abort = new AbortController()
  const onClose = () => abort.abort()
  res.once('close', onClose)
  try {
    const path = `/responses/${encodeURIComponent(id)}`
    const query = search ?? new URLSearchParams({ stream: 'true' })
    const { body } = await dispatch([{ channel, upstreamModel: model }], () => responsesRequest(channel, 'GET', path, query, 'text/event-stream'), abort.signal)
    const out = new ClientStream(res, { ...STREAM_HEADERS }, () => {})
    for await (const chunk of body) await out.write(chunk.toString('utf8'))
    out.end()
  } catch (error) {
    if (error instanceof ClientGoneError || abort.signal.aborted) return
    if (res.headersSent) return void res.destroy()
    throw error
  } finally {
    res.off('close', onClose)
  }
}
