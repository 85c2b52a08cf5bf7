import { GatewayError } from '#exceptions/gateway_error'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { upstreamDialect } from '#gateway/providers/registry'
import { MAX_CHAIN, type ResponseStore, type StoredResponse } from '#gateway/responses_store/response_store'

/** OpenAI's answer to a previous_response_id it does not know (400, as OpenAI answers it). */
export function previousResponseNotFound(id: string, why = ''): GatewayError {
  const error = new GatewayError(400, 'previous_response_not_found', `Previous response with id '${id.slice(0, 128)}' not found.${why}`)
  error.param = 'previous_response_id'
  return error
}

/**
 * A follow-up whose conversation, read from the store, is larger than a
 * request body may be (BODY_LIMIT_GENERATION_MB): the 413 of a body too large,
 * naming previous_response_id (start a new conversation, or compact it).
 */
export function conversationTooLarge(): GatewayError {
  const error = new GatewayError(
    413,
    'request_too_large',
    'The conversation previous_response_id names is larger than a request body may be; start a new one or compact it'
  )
  error.param = 'previous_response_id'
  return error
}

/** A Responses-native channel (the Responses request passes through; the upstream stores) */
export function nativeResponses(candidate: RouteCandidate): boolean {
  return upstreamDialect(candidate.channel, 'openai_responses', candidate.upstreamModel) === 'openai_responses'
}

/** A Responses input as items (a string is one user message, as OpenAI lists it) */
export function inputItemsOf(input: unknown): unknown[] {
  if (typeof input === 'string') return [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: input }] }]
  return Array.isArray(input) ? input : []
}

/** How a follow-up (`previous_response_id`) is served, once its chain was read. */
export type Continuation =
  /** Held by a Responses-native channel: only that channel's candidates (the body as sent) */
  | { kind: 'upstream'; candidates: RouteCandidate[] }
  /** Kept here: the body's input becomes the whole conversation (its earlier items `itemBytes` at least); any channel serves it */
  | { kind: 'gateway'; input: unknown[]; itemBytes: number }
  /** Unknown here: a Responses-native channel may hold it (stored before the gateway recorded it) */
  | { kind: 'unknown'; candidates: RouteCandidate[] }

/**
 * Reads what `previous_response_id` names and says how the request goes on.
 * Unknown or another user's id: OpenAI's 400 previous_response_not_found
 * (an unknown one is still passed to the route's Responses-native channels,
 * if any: they may hold it). An upstream-held one whose channel no longer
 * serves this model (deleted, disabled, model moved): also not found, never
 * another account. A kept conversation whose items alone pass `maxBytes`
 * (the body limit) is the 413, found while its chain is read: the read
 * stops there.
 */
export async function continuationOf(
  store: ResponseStore,
  id: string,
  userId: number,
  input: unknown,
  candidates: RouteCandidate[],
  maxBytes: number
): Promise<Continuation> {
  const found = await store.chain(id, userId, maxBytes)
  if (found === null || !found.owner) {
    const native = found === null ? candidates.filter(nativeResponses) : []
    if (native.length === 0) throw previousResponseNotFound(id)
    return { kind: 'unknown', candidates: native }
  }
  const [newest] = found.responses
  if (newest.kind === 'upstream') {
    const holding = candidates.filter((c) => c.channel.id === newest.channelId)
    if (holding.length === 0) throw previousResponseNotFound(id, ' The channel that holds it does not serve this model any more.')
    return { kind: 'upstream', candidates: holding }
  }
  if (found.tooLarge) throw conversationTooLarge()
  return { kind: 'gateway', input: conversationInput(found.responses, input), itemBytes: found.itemBytes }
}

/**
 * The whole input of a follow-up, as OpenAI builds it: each earlier
 * response's input items then its output items, oldest first, then this
 * request's input. Earlier `instructions` are not carried over.
 */
export function conversationInput(newestFirst: StoredResponse[], input: unknown): unknown[] {
  const last = newestFirst[newestFirst.length - 1]
  if (newestFirst.length >= MAX_CHAIN && last.previousResponseId !== null) {
    throw GatewayError.invalidRequest(
      `The conversation is longer than ${MAX_CHAIN} stored responses; send it whole in 'input'`,
      'previous_response_chain_too_long',
      'previous_response_id'
    )
  }
  const items: unknown[] = []
  for (let i = newestFirst.length - 1; i >= 0; i--) {
    const response = newestFirst[i]
    if (response.kind !== 'gateway') continue
    if (response.inputItems) items.push(...response.inputItems)
    if (response.outputItems) items.push(...response.outputItems)
  }
  items.push(...inputItemsOf(input))
  return items
}
