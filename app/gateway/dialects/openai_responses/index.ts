import { errorMessageOf, parseJson, type Dialect } from '#gateway/dialects/dialect'
import { decodeResponsesRequest, encodeResponsesRequest } from '#gateway/dialects/openai_responses/request'
import {
  decodeResponsesResponse,
  decodeResponsesUsage,
  encodeResponsesResponse,
  finalResponsesUsage,
  usageAfterItemDone,
} from '#gateway/dialects/openai_responses/response'
import { ResponsesStreamDecoder } from '#gateway/dialects/openai_responses/stream_decoder'
import { ResponsesStreamEncoder } from '#gateway/dialects/openai_responses/stream_encoder'
import { ResponsesStreamCut } from '#gateway/dialects/openai_responses/stream_cut'
import { responsesStreamError } from '#gateway/dialects/stream_failure'

const FINAL_EVENTS = new Set(['response.completed', 'response.incomplete', 'response.failed'])
const ITEM_DONE = 'response.output_item.done'

/** OpenAI Responses (`POST /v1/responses`), the only wire Codex speaks. */
export const openAiResponses: Dialect = {
  name: 'openai_responses',
  decodeRequest: (body) => decodeResponsesRequest(body as any),
  encodeRequest: (request, model) => encodeResponsesRequest(request, model) as unknown as Record<string, unknown>,
  decodeResponse: (body) => decodeResponsesResponse(body),
  encodeResponse: (response, model) => encodeResponsesResponse(response, model) as unknown as Record<string, unknown>,
  streamDecoder: () => new ResponsesStreamDecoder(),
  streamEncoder: (options) => new ResponsesStreamEncoder(options),
  usageOfBody: (body) => decodeResponsesUsage(body?.usage, body?.output),
  isAnswer: (body) => Array.isArray(body?.output),
  passThrough: {
    // Usage comes once, on the terminal response.* event; a web search is counted as its item is done, for a
    // stream cut before that event (only those items' events are parsed, found by a string test).
    carriesUsage: (event) =>
      event.event !== undefined
        ? FINAL_EVENTS.has(event.event) || (event.event === ITEM_DONE && event.data.includes('"web_search_call"'))
        : event.data.includes('"response.completed"') || (event.data.includes('"web_search_call"') && event.data.includes(`"${ITEM_DONE}"`)),
    readUsage: (parsed, known) =>
      parsed?.type === ITEM_DONE ? usageAfterItemDone(parsed, known) : finalResponsesUsage(parsed?.response, known),
    isFinal: (parsed) => parsed?.type !== ITEM_DONE,
    isLast: (event) => event.event !== undefined && FINAL_EVENTS.has(event.event),
    streamCut: () => new ResponsesStreamCut(),
    upstreamError: (event) => {
      if (event.event === 'error') return parseJson(event.data)?.message ?? errorMessageOf(event.data) ?? 'upstream error'
      if (event.event === 'response.failed') return parseJson(event.data)?.response?.error?.message ?? 'upstream response failed'
      return null
    },
    rewriteModel(parsed, model) {
      if (typeof parsed?.response?.model !== 'string') return false
      parsed.response.model = model
      return true
    },
    upstreamBody: (body, upstreamModel, clientModel) =>
      upstreamModel === clientModel ? null : { ...body, model: upstreamModel },
    errorEvent: (message, kind) => ({
      event: 'response.failed',
      data: JSON.stringify({
        type: 'response.failed',
        response: { object: 'response', status: 'failed', output: [], error: responsesStreamError(message, kind) },
      }),
    }),
  },
}
