import { errorMessageOf, reasoningRules, type Dialect, type EncodeHints } from '#gateway/dialects/dialect'
import { decodeChatRequest, effortOfBudget, encodeChatRequest, openRouterReasoning, thinkingBudget } from '#gateway/dialects/openai_chat/request'
import {
  chatChunkUsage,
  chatUsageOfBody,
  decodeChatResponse,
  decodeChatUsage,
  encodeChatResponse,
} from '#gateway/dialects/openai_chat/response'
import { ChatStreamDecoder } from '#gateway/dialects/openai_chat/stream_decoder'
import { ChatStreamEncoder } from '#gateway/dialects/openai_chat/stream_encoder'
import { ChatStreamCut } from '#gateway/dialects/openai_chat/stream_cut'
import { amendChat, chatMayAmend } from '#gateway/dialects/openai_chat/amend'
import { dropUpstreamCost } from '#gateway/upstream/upstream_cost'
import { chatStreamError } from '#gateway/dialects/stream_failure'

/** OpenAI chat completions (`POST /v1/chat/completions`), the dialect of the whole OpenAI-compatible family. */
export const openAiChat: Dialect = {
  name: 'openai_chat',
  decodeRequest: (body) => decodeChatRequest(body as any),
  encodeRequest: (request, model, hints) => encodeChatRequest(request, model, hints) as unknown as Record<string, unknown>,
  decodeResponse: (body) => decodeChatResponse(body),
  encodeResponse: (response, model, upstream) => encodeChatResponse(response, model, upstream) as unknown as Record<string, unknown>,
  streamDecoder: () => new ChatStreamDecoder(),
  streamEncoder: (options) => new ChatStreamEncoder(options),
  usageOfBody: chatUsageOfBody,
  isAnswer: (body) => Array.isArray(body?.choices) && body.choices.length > 0,
  passThrough: {
    // A chunk citing the web, or a search model's (its `model` holds "-search-"), is parsed too: the search it
    // shows is billed (chatChunkUsage), also when the stream is cut before its usage chunk.
    carriesUsage: (event) => event.data.includes('"usage"') || event.data.includes('"url_citation"') || event.data.includes('-search-'),
    readUsage: chatChunkUsage,
    isFinal: (parsed) => decodeChatUsage(parsed?.usage) !== null,
    rewriteModel(parsed, model) {
      if (typeof parsed?.model !== 'string') return false
      parsed.model = model
      return true
    },
    isUnrequested: (parsed, options) =>
      !options.includeUsage && Array.isArray(parsed?.choices) && parsed.choices.length === 0 && !!parsed.usage,
    mayAmend: chatMayAmend,
    amend: amendChat,
    dropUpstreamCost,
    errorEvent: (message, kind) => ({ data: JSON.stringify(chatStreamError(message, kind)) }),
    upstreamError: (event) => (event.data.includes('"error"') ? errorMessageOf(event.data) : null),
    sentinel: '[DONE]',
    isLast: (event) => event.data === '[DONE]',
    streamCut: () => new ChatStreamCut(),
    upstreamBody(body, upstreamModel, clientModel, stream, raw, hints) {
      const needsModel = upstreamModel !== clientModel
      // Usage is always asked for on streams, so it can be metered exactly.
      const needsUsage = stream && body.stream_options?.include_usage !== true
      const renamesMaxTokens = hints !== undefined && maxTokensRenamed(body, upstreamModel, hints)
      const convertsThinking = hints?.refusesThinking === true && body.thinking !== undefined
      // OpenRouter's reasoning object: OpenRouter reads it; any other vendor gets it as reasoning_effort.
      const convertsReasoning = body.reasoning !== undefined && hints?.openRouterFields !== true
      const edits = renamesMaxTokens || convertsThinking || convertsReasoning
      if (!needsModel && !needsUsage && !edits) return null
      // The usual case (a stream, no stream_options of the client's): add the member to the bytes, instead of
      // serialising a conversation of maybe 200 KB again. (Client bodies have no duplicate keys: parseJsonObject.)
      if (!needsModel && !edits && raw && body.stream_options === undefined) return withFirstMember(raw, ASK_FOR_USAGE)
      const copy = { ...body }
      if (needsModel) copy.model = upstreamModel
      if (needsUsage) copy.stream_options = { ...(body.stream_options ?? {}), include_usage: true }
      if (renamesMaxTokens) {
        copy.max_completion_tokens = body.max_tokens
        delete copy.max_tokens
      }
      if (convertsThinking) thinkingAsEffort(copy, upstreamModel, hints!)
      if (convertsReasoning) reasoningAsEffort(copy, upstreamModel, hints)
      return copy
    },
  },
}

const ASK_FOR_USAGE = Buffer.from('"stream_options":{"include_usage":true},')

/**
 * OpenAI's reasoning models (o-series, gpt-5) refuse `max_tokens` with a 400
 * ("Use 'max_completion_tokens' instead"), which most clients and tools still
 * send: on a channel whose vendor says so (OpenAI, Azure), it goes as
 * `max_completion_tokens`, as LiteLLM renames it. Other models keep it.
 */
function maxTokensRenamed(body: Record<string, any>, upstreamModel: string, hints: EncodeHints): boolean {
  return (
    hints.maxTokensField === 'max_completion_tokens' &&
    body.max_tokens !== undefined &&
    body.max_completion_tokens === undefined &&
    hints.reasoningModels?.test(upstreamModel) === true
  )
}

/**
 * `thinking` for a vendor that refuses it (EncodeHints.refusesThinking):
 * taken out; its budget becomes `reasoning_effort` on the vendor's reasoning
 * models when the client set none (other models take no effort: GPT-4o
 * answers 400 to it).
 */
function thinkingAsEffort(copy: Record<string, any>, upstreamModel: string, hints: EncodeHints) {
  const budget = thinkingBudget(copy.thinking)
  delete copy.thinking
  if (budget !== null && copy.reasoning_effort === undefined && hints.reasoningModels?.test(upstreamModel) === true) {
    copy.reasoning_effort = effortOfBudget(budget)
  }
}

/**
 * OpenRouter's `reasoning` for a vendor that is not OpenRouter: taken out
 * (OpenAI refuses the unknown field); what it asks for becomes
 * `reasoning_effort` (a budget as the effort it is closest to) when the
 * client set none and the model takes one (reasoningRules: the vendor's
 * reasoning models, or any model of a vendor that names none).
 */
function reasoningAsEffort(copy: Record<string, any>, upstreamModel: string, hints: EncodeHints | undefined) {
  const asked = openRouterReasoning(copy.reasoning)
  delete copy.reasoning
  if (asked === null || copy.reasoning_effort !== undefined || !reasoningRules(upstreamModel, hints).effort) return
  copy.reasoning_effort = asked.effort ?? effortOfBudget(asked.budgetTokens!)
}

/** A JSON object's bytes with one more member first (the object has members: a body always has its model). */
function withFirstMember(raw: Buffer, member: Buffer): Buffer {
  const open = raw.indexOf(0x7b) // '{': only whitespace may come before it
  return Buffer.concat([raw.subarray(0, open + 1), member, raw.subarray(open + 1)])
}
