import { GatewayError } from '#exceptions/gateway_error'
import { modelNameProblem } from '#gateway/http/model_name'
import { completionTokenHold, webSearchHold } from '#gateway/metering/reservation'
import { MAX_COMPLETION_HOLD } from '#gateway/batches/batch_input'
import { CustomIdDigests } from '#gateway/batches/custom_ids'
import { withoutForeignCitations } from '#gateway/dialects/anthropic_messages/foreign_citations'

/**
 * A message batch's creation body (`{requests: [{custom_id, params}]}`),
 * read once for what the gateway must know of it: the one model its
 * requests name (the gateway routes, authorises and bills one model per
 * batch, as for OpenAI's batch files: one usage row at one price), how many
 * requests it holds and the output tokens they may use (each `max_tokens`)
 * and the web searches (each web search tool's `max_uses`), for the batch's hold.
 */
export interface MessageBatchInput {
  model: string
  requests: number
  completionHold: number
  /** The web searches they may make (reservation.ts webSearchHold), held at the per-search price */
  searchHold: number
  /** The requests' custom ids, kept for the bill (custom_ids.ts: each billed once, no other) */
  customIds: Buffer
}

/** Anthropic's own limit of requests in one message batch */
export const MAX_MESSAGE_BATCH_REQUESTS = 100_000

/** Anthropic's custom ids: 1 to 64 letters, digits, `-` and `_` */
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/

function refused(message: string, code = 'invalid_message_batch') {
  return GatewayError.invalidRequest(message, code, 'requests')
}

export function readMessageBatch(body: Record<string, any>): MessageBatchInput {
  const requests = body.requests
  if (!Array.isArray(requests) || requests.length === 0) throw refused('requests: a list of at least one {custom_id, params} is required')
  if (requests.length > MAX_MESSAGE_BATCH_REQUESTS) throw refused(`requests: at most ${MAX_MESSAGE_BATCH_REQUESTS} requests in a batch`)
  let model: string | null = null
  let completionHold = 0
  let searchHold = 0
  const customIds = new Set<string>()
  const digests = new CustomIdDigests()
  for (let i = 0; i < requests.length; i++) {
    const request = requests[i]
    const at = `requests.${i}`
    if (request === null || typeof request !== 'object' || Array.isArray(request)) throw refused(`${at}: an object {custom_id, params} is expected`)
    const customId = request.custom_id
    if (typeof customId !== 'string' || !CUSTOM_ID.test(customId)) {
      throw refused(`${at}.custom_id: 1 to 64 letters, digits, hyphens or underscores are required`)
    }
    if (customIds.has(customId)) throw refused(`${at}.custom_id: '${customId}' is used by another request; each must be unique`)
    customIds.add(customId)
    digests.add(customId)
    const params = request.params
    if (params === null || typeof params !== 'object' || Array.isArray(params)) throw refused(`${at}.params: an object is required`)
    if (typeof params.model !== 'string' || params.model === '') throw refused(`${at}.params.model: a model is required`)
    const problem = modelNameProblem(params.model)
    if (problem) throw refused(`${at}.params.model: ${problem}`)
    if (model !== null && params.model !== model) {
      throw refused(
        `${at}.params.model is '${params.model.slice(0, 100)}', requests.0's '${model.slice(0, 100)}': the gateway takes a message batch for one model (routed to one channel, billed at one price)`,
        'mixed_models'
      )
    }
    model = params.model
    // Bounded as a batch file's (batch_input.ts): max_tokens 1e300 is an integer to JSON, and a sum past the bigint
    // column failed the insert after the upstream had made the batch (a free model holds nothing, so no 402 first).
    completionHold = Math.min(completionHold + completionTokenHold(params), MAX_COMPLETION_HOLD)
    // The web searches each request may make (its web search tool's max_uses), billed per search as /v1/messages'.
    searchHold = Math.min(searchHold + webSearchHold(params), MAX_COMPLETION_HOLD)
  }
  return { model: model!, requests: requests.length, completionHold, searchHold, customIds: digests.toBuffer() }
}

/**
 * The body with the gateway's own web search citations (an empty
 * encrypted_index, anthropic_messages/foreign_citations.ts) dropped from
 * every request's history, as a history sent to /v1/messages is; null when
 * no request has one (the client's bytes go up as sent).
 */
export function withoutForeignBatchCitations(body: Record<string, any>): Record<string, any> | null {
  let cleaned: Record<string, any>[] | null = null
  body.requests.forEach((request: Record<string, any>, i: number) => {
    const params = withoutForeignCitations(request.params)
    if (params !== null) (cleaned ??= body.requests.slice())[i] = { ...request, params }
  })
  return cleaned === null ? null : { ...body, requests: cleaned }
}

/** The body with every request's `params.model` renamed (a channel that maps the client's name to another upstream). */
export function withUpstreamModel(body: Record<string, any>, model: string): string {
  return JSON.stringify({
    ...body,
    requests: body.requests.map((request: Record<string, any>) => ({ ...request, params: { ...request.params, model } })),
  })
}
