import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeAndReserve } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import type { CanonicalRequest, CanonicalResponse } from '#gateway/dialects/canonical'
import { toTokenUsage } from '#gateway/dialects/dialect'
import { dialectOf } from '#gateway/dialects/registry'
import { asClientError, decodeClientRequest } from '#gateway/dialects/client_request'
import { decodeResponsesUsage, encodeResponsesUsage } from '#gateway/dialects/openai_responses/response'
import { STREAM_HEADERS } from '#gateway/relay/client_stream'
import { addOperationHeaders } from '#gateway/http/litellm_headers'
import { compactionAnswer, compactionV2Events, replacementHistory, sealedSummary, summarisationRequest } from '#gateway/dialects/openai_responses/compaction'
import { countCanonicalPrompt } from '#gateway/dialects/prompt_tokens'
import { countTokens } from '#gateway/metering/tokenizer'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { UpstreamRequest } from '#gateway/providers/provider_adapter'
import { adapterFor, upstreamDialect } from '#gateway/providers/registry'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { dispatch, readBody, type DispatchHooks, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { whileClientListens } from '#gateway/relay/client_gone'
import { decodeAnswer, parseAnswer } from '#gateway/upstream/upstream_answer'
import { withoutUpstreamCost } from '#gateway/upstream/upstream_cost'
import type { ChannelInfo, Principal, TokenUsage } from '#gateway/types'

/** A parsed `POST /v1/responses/compact` (Codex's remote compaction). */
export interface CompactCall {
  principal: Principal
  rawBody: Buffer
  body: Record<string, any>
  model: string
  req: IncomingMessage
  res: ServerResponse
}

/**
 * Codex's remote compaction, `POST /v1/responses/compact`: one non-stream
 * call, one usage row (`responses.compact`), admitted as /v1/responses is
 * (the endpoint's account: key, limits, in-flight cap, end user; then the
 * model's globs, quota, balance and hold here).
 *
 * - Channels that speak Responses natively get the body as it came (the model
 *   renamed when mapped) at their own `/responses/compact`, and their answer
 *   (OpenAI's encrypted `compaction` item) goes back as its bytes.
 * - When none does, or the one tried has no such endpoint (a 404 or 405:
 *   many OpenAI-compatible servers serve /responses only), the compaction is
 *   emulated over the whole route: the history and a summarisation prompt sent
 *   as one ordinary generation in the channel's own format, the answer built
 *   from the summary as Codex's local compaction builds its history
 *   (openai_responses/compaction.ts). When the Responses channels all fail as
 *   failover passes a channel by (5xx, 429, timeouts), the route's other
 *   channels get the emulation.
 *
 * Not on the hot path: /v1/responses and /v1/chat/completions never come here.
 */
export async function compactResponses(
  catalog: Catalog,
  /** The model's candidates, then those of its fallback models (GatewayService.#route) */
  route: (model: string) => RouteCandidate[],
  call: CompactCall,
  account: RequestAccount
): Promise<void> {
  account.model = call.model
  authorizeAndReserve(catalog, account, call.model, call.rawBody.length, call.body)
  const candidates = route(call.model)
  // The client watched: gone, the upstream call ends and the row is 499, billed the prompt as counted from its size.
  await whileClientListens(call.res, account, () => promptEstimate(call), async () => {
    const native = candidates.filter((c) => speaksResponses(c))
    let emulatedOn = candidates
    if (native.length > 0) {
      try {
        return await relayNative(native, call, account)
      } catch (error) {
        if (!(error instanceof GatewayError) || account.abort.signal.aborted) throw error
        const others = candidates.filter((c) => !native.includes(c))
        // An upstream without the endpoint (404, or 405 for a POST it does not route): the summary is
        // asked for through an ordinary call instead, on the same channels first.
        if (error.status === 404 || error.status === 405) emulatedOn = candidates
        // Every Responses channel failed as a failover would pass them by: the others, emulated.
        else if (others.length > 0 && (error.status >= 500 || error.status === 429)) emulatedOn = others
        else throw error
      }
    }
    await emulate(catalog, emulatedOn, call, account)
  })
}

/** A channel whose adapter speaks OpenAI Responses itself (openai, azure, custom with responses...). */
function speaksResponses(candidate: RouteCandidate): boolean {
  return upstreamDialect(candidate.channel, 'openai_responses', candidate.upstreamModel) === 'openai_responses'
}

/**
 * The channel's compaction request: its Responses request with `/compact`
 * after the `/responses` path (OpenAI `/v1/responses/compact`, Azure
 * `{base}/responses/compact?api-version=...`), the body as the client sent it.
 */
function compactRequest(candidate: RouteCandidate, call: CompactCall): UpstreamRequest {
  const body = candidate.upstreamModel === call.model ? call.rawBody : Buffer.from(JSON.stringify({ ...call.body, model: candidate.upstreamModel }))
  const request = adapterFor(candidate.channel.provider).request(candidate.channel, {
    operation: 'generate',
    dialect: 'openai_responses',
    model: candidate.upstreamModel,
    stream: false,
    body,
    clientHeaders: call.req.headers,
  })
  const query = request.path.indexOf('?')
  const path = query < 0 ? request.path : request.path.slice(0, query)
  request.path = `${path}/compact${query < 0 ? '' : request.path.slice(query)}`
  return request
}

async function relayNative(candidates: RouteCandidate[], call: CompactCall, account: RequestAccount) {
  const { answer, candidate } = await dispatch(candidates, (c) => compactRequest(c, call), account.abort.signal, account.dispatchHooks, readCompaction)
  const { bytes, parsed } = answer
  const reported = decodeResponsesUsage(parsed.usage)
  const usage = reported ? toTokenUsage(reported) : promptEstimate(call)
  answerJson(call, account, bytes, usage, candidate.channel)
  account.close(200, null, usage)
}

/** dispatch()'s AnswerCheck for a native compaction: JSON with an `output` list, else the next candidate. */
async function readCompaction(body: UpstreamBody): Promise<{ bytes: Buffer; parsed: any }> {
  const bytes = await readBody(body)
  const parsed = parseAnswer(bytes)
  if (!Array.isArray(parsed?.output)) throw GatewayError.providerError('Upstream returned a compaction without its output')
  return { bytes: withoutUpstreamCost(bytes, parsed), parsed }
}

/**
 * The compaction emulated: one ordinary call to the routed model (in the
 * channel's format) asking for the summary, answered as a compaction of plain messages.
 */
async function emulate(catalog: Catalog, candidates: RouteCandidate[], call: CompactCall, account: RequestAccount) {
  const { summary, usage, billed, channel } = await summarise(catalog, candidates, call, account)
  const output = replacementHistory(call.body.input, summary)
  answerJson(call, account, Buffer.from(JSON.stringify(compactionAnswer(`cmp_${account.requestId.replaceAll('-', '')}`, output, usage))), billed, channel)
  account.close(200, null, billed)
}

/**
 * The summarisation call: the history and the prompt, one non-stream call in
 * the channel's own format (failover as any call), the answer's text checked
 * by the operator's answer filter (a refusal is thrown, the call billed).
 */
async function summarise(catalog: Catalog, candidates: RouteCandidate[], call: CompactCall, account: RequestAccount) {
  const request = summarisationRequest(call.body)
  const canonical = decodeClientRequest(dialectOf('openai_responses'), request)
  canonical.stream = false
  // Built before dispatch: a body the codecs cannot carry is the client's 400, not a channel's failure.
  const bodies = new Map<RouteCandidate, Buffer>()
  for (const candidate of candidates) bodies.set(candidate, summarisationBody(candidate, request, canonical))
  const { answer: response, candidate } = await dispatch(
    candidates,
    (c) =>
      adapterFor(c.channel.provider).request(c.channel, {
        operation: 'generate',
        dialect: upstreamDialect(c.channel, 'openai_responses', c.upstreamModel),
        model: c.upstreamModel,
        clientModel: call.model,
        stream: false,
        body: bodies.get(c)!,
        clientHeaders: call.req.headers,
      }),
    account.abort.signal,
    continuedHooks(account),
    readSummary
  )
  const summary = summaryText(response)
  const usage = response.usage ?? (await estimatedUsage(canonical, summary))
  const billed: TokenUsage = response.usage ? toTokenUsage(response.usage) : { ...toTokenUsage(usage), estimated: true }
  // The summary is the model's answer, in plain text: the operator's answer check applies (the upstream was paid: billed).
  if (catalog.wordFilter?.checkCompletions === true) {
    const refusal = catalog.wordFilter.screenCompletion(summary)
    if (refusal) {
      account.close(refusal.status, refusal.code, billed)
      throw refusal
    }
  }
  return { summary, usage, billed, channel: candidate.channel }
}

/**
 * Codex's compaction v2 (an ordinary `/responses` call whose input ends with
 * `compaction_trigger`) for a model no Responses channel serves: the
 * summary asked for as the v1 emulation asks it, answered as Codex requires
 * (codex-rs/core/src/compact_remote_v2.rs): exactly one `compaction` output
 * item, then `response.completed`. Codex keeps the user's messages itself and
 * sends the item back on every later turn; its `encrypted_content` is the
 * gateway's own sealed summary (compaction.ts sealedSummary: the summary's
 * text, encoded, not encrypted), which the Responses decoder turns back into
 * a summary message for a translated channel.
 *
 * Streamed when asked (Codex always streams): the whole stream written once
 * the summary is in (nothing goes out before, so a failure is an ordinary
 * error answer). Metered on the call's own row (endpoint `responses`).
 */
export async function compactionV2(
  catalog: Catalog,
  route: (model: string) => RouteCandidate[],
  call: CompactCall & { stream: boolean },
  account: RequestAccount
): Promise<void> {
  account.model = call.model
  account.stream = call.stream
  authorizeAndReserve(catalog, account, call.model, call.rawBody.length, call.body)
  const candidates = route(call.model)
  // The client watched: gone, the upstream call ends and the row is 499, billed the prompt as counted from its size.
  await whileClientListens(call.res, account, () => promptEstimate(call), async () => {
    // The history is what comes before the trigger.
    const history = { ...call.body, input: (call.body.input as unknown[]).slice(0, -1) }
    const { summary, usage, billed, channel } = await summarise(catalog, candidates, { ...call, body: history }, account)
    const id = `resp_${account.requestId.replaceAll('-', '')}`
    const item = { type: 'compaction', id: `cmp_${account.requestId.replaceAll('-', '')}`, encrypted_content: sealedSummary(summary) }
    const response = { id, object: 'response', created_at: Math.floor(Date.now() / 1000), status: 'completed', model: call.model, output: [item], usage: encodeResponsesUsage(usage), error: null, incomplete_details: null }
    if (call.stream) answerStream(call, account, compactionV2Events(response, item), channel)
    else answerJson(call, account, Buffer.from(JSON.stringify(response)), billed, channel)
    account.close(200, null, billed)
  })
}

/** Whether every channel of a model speaks another format than Responses (the v2 emulation's case). */
export function translatedOnly(candidates: RouteCandidate[]): boolean {
  return candidates.length > 0 && !candidates.some(speaksResponses)
}

/** The account's dispatch hooks, attempts numbered on after a first dispatch's (the native try). */
function continuedHooks(account: RequestAccount): DispatchHooks {
  const before = account.attempts.length
  if (before === 0) return account.dispatchHooks
  return {
    onAttempt: (candidate) => account.onAttempt(candidate),
    onAttemptResult: (record) => account.onAttemptResult({ ...record, attempt: record.attempt + before }),
  }
}

function summarisationBody(candidate: RouteCandidate, request: Record<string, any>, canonical: CanonicalRequest): Buffer {
  const dialect = upstreamDialect(candidate.channel, 'openai_responses', candidate.upstreamModel)
  try {
    if (dialect === 'openai_responses') return Buffer.from(JSON.stringify({ ...request, model: candidate.upstreamModel }))
    const hints = adapterFor(candidate.channel.provider).encodeHints?.(candidate.channel)
    return Buffer.from(JSON.stringify(dialectOf(dialect).encodeRequest(canonical, candidate.upstreamModel, hints)))
  } catch (error) {
    throw asClientError(error)
  }
}

/** dispatch()'s AnswerCheck for the summarisation call: an answer of the channel's format, decoded. */
async function readSummary(body: UpstreamBody, candidate: RouteCandidate): Promise<CanonicalResponse> {
  const upstream = dialectOf(upstreamDialect(candidate.channel, 'openai_responses', candidate.upstreamModel))
  const parsed = parseAnswer(await readBody(body))
  if (!upstream.isAnswer(parsed)) throw GatewayError.providerError('Upstream returned an answer without its content')
  return decodeAnswer(() => upstream.decodeResponse(parsed))
}

/** The answer's text (its reasoning and any tool call left out: the summary is what it said). */
function summaryText(response: CanonicalResponse): string {
  let text = ''
  for (const part of response.content) if (part.type === 'text') text += part.text
  return text
}

async function estimatedUsage(canonical: CanonicalRequest, summary: string) {
  const inputTokens = await countCanonicalPrompt(canonical)
  return { inputTokens, outputTokens: await countTokens(summary), cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 }
}

/** What a compaction that got no answer is billed: its prompt, counted from its size. */
function promptEstimate(call: CompactCall): TokenUsage {
  const promptTokens = Math.ceil(call.rawBody.length / 4)
  return { promptTokens, completionTokens: 0, totalTokens: promptTokens, cachedTokens: 0, reasoningTokens: 0, estimated: true }
}

/**
 * The answers carry LiteLLM's headers as every other generation's do
 * (litellm_headers.ts): a whole one the cost its row will bill (the usage is
 * known before it goes out), a stream none, as LiteLLM leaves it out.
 */
function answerStream(call: CompactCall, account: RequestAccount, text: string, channel: ChannelInfo) {
  const bytes = Buffer.from(text)
  if (account.loggedRequest !== null) account.loggedResponse = bytes
  account.markFirstByte()
  if (call.res.destroyed) return
  const headers: Record<string, string> = { ...STREAM_HEADERS, 'x-request-id': account.requestId }
  addOperationHeaders(headers, account, null, channel)
  call.res.writeHead(200, headers)
  call.res.end(bytes)
}

function answerJson(call: CompactCall, account: RequestAccount, bytes: Buffer, usage: TokenUsage, channel: ChannelInfo) {
  if (account.loggedRequest !== null) account.loggedResponse = bytes
  account.markFirstByte()
  if (call.res.destroyed) return
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(bytes.length), 'x-request-id': account.requestId }
  addOperationHeaders(headers, account, account.successCost(usage), channel)
  call.res.writeHead(200, headers)
  call.res.end(bytes)
}
