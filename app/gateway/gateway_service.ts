import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeModel } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import { relayOpenAiStream } from '#gateway/dialects/openai_chat/stream_relay'
import { usageFromOpenAi } from '#gateway/dialects/openai_chat/usage'
import { countChatPromptTokens, countTokens } from '#gateway/metering/tokenizer'
import { RequestAccount } from '#gateway/metering/request_account'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import { adapterFor } from '#gateway/providers/registry'
import type { UpstreamRequest } from '#gateway/providers/provider_adapter'
import { ChannelRouter, type RouteCandidate } from '#gateway/routing/channel_router'
import { poolFor } from '#gateway/upstream/upstream_pool'
import type { Principal, TokenUsage } from '#gateway/types'

/** A parsed chat-completions call, as the controller hands it over. */
export interface ChatCall {
  principal: Principal
  /** The client's body bytes, forwarded as-is when nothing needs changing */
  rawBody: Buffer
  body: Record<string, any>
  model: string
  stream: boolean
  req: IncomingMessage
  res: ServerResponse
}

const STREAM_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'connection': 'keep-alive',
  'x-accel-buffering': 'no',
}

/**
 * The request path after authentication: plan checks -> route the model to a
 * channel -> call the upstream -> relay the answer -> meter. Errors before
 * the first byte are thrown as GatewayError (rendered by the exception
 * handler); every path ends in exactly one metering record.
 */
export class GatewayService {
  #router: ChannelRouter | null = null
  #routerVersion = -1

  constructor(
    private catalog: Catalog,
    private meter: UsageMeter
  ) {}

  router(): ChannelRouter {
    if (!this.#router || this.#routerVersion !== this.catalog.channelsVersion) {
      this.#router = new ChannelRouter(this.catalog.channels)
      this.#routerVersion = this.catalog.channelsVersion
    }
    return this.#router
  }

  /** Starts the accounting of a request that passed key authentication. */
  openAccount(principal: Principal, endpoint: string): RequestAccount {
    return new RequestAccount(this.meter, principal, endpoint)
  }

  async chatCompletions(call: ChatCall, account: RequestAccount): Promise<void> {
    account.model = call.model
    account.stream = call.stream
    account.price = authorizeModel(this.catalog, call.principal, call.model)
    const candidates = this.router().route(call.model)
    const candidate = candidates[0]
    account.channelId = candidate.channel.id
    account.provider = candidate.channel.provider
    account.servedModel = candidate.upstreamModel

    const clientWantsUsage = call.body.stream_options?.include_usage === true
    const upstreamBody = this.#upstreamBody(call, candidate, clientWantsUsage)
    const request = adapterFor(candidate.channel.provider).chatCompletions(
      candidate.channel,
      upstreamBody,
      call.req.headers
    )

    const abort = new AbortController()
    const onClose = () => {
      if (!call.res.writableFinished) abort.abort()
    }
    call.res.on('close', onClose)
    try {
      let upstream: Dispatcher.ResponseData
      try {
        upstream = await send(request, abort.signal)
      } catch (error) {
        if (abort.signal.aborted) return this.#clientGone(call, account)
        throw GatewayError.providerError(`Upstream request failed: ${describe(error)}`)
      }

      if (upstream.statusCode >= 400) {
        const bytes = await readBody(upstream).catch(() => Buffer.alloc(0))
        throw upstreamFailure(upstream.statusCode, bytes)
      }

      const mapped = candidate.upstreamModel !== call.model
      if (call.stream && isEventStream(upstream.headers['content-type'])) {
        return await this.#relayStream(call, account, upstream, mapped, clientWantsUsage)
      }
      return await this.#relayJson(call, account, upstream, mapped)
    } catch (error) {
      if (abort.signal.aborted && !(error instanceof GatewayError)) return this.#clientGone(call, account)
      throw error
    } finally {
      call.res.off('close', onClose)
    }
  }

  /** The body sent upstream: the client's bytes unless the model name or stream usage must change. */
  #upstreamBody(call: ChatCall, candidate: RouteCandidate, clientWantsUsage: boolean): string | Buffer {
    const needsModel = candidate.upstreamModel !== call.model
    const needsUsage = call.stream && !clientWantsUsage
    if (!needsModel && !needsUsage) return call.rawBody
    const body = { ...call.body }
    if (needsModel) body.model = candidate.upstreamModel
    if (needsUsage) body.stream_options = { ...(body.stream_options ?? {}), include_usage: true }
    return JSON.stringify(body)
  }

  async #relayJson(
    call: ChatCall,
    account: RequestAccount,
    upstream: Dispatcher.ResponseData,
    mapped: boolean
  ) {
    let bytes = await readBody(upstream)
    let parsed: any
    try {
      parsed = JSON.parse(bytes.toString('utf8'))
    } catch {
      throw GatewayError.providerError('Upstream returned a response that is not valid JSON')
    }
    let usage = usageFromOpenAi(parsed?.usage)
    if (!usage) usage = await this.#estimate(call, completionOfMessage(parsed))
    if (mapped && parsed && typeof parsed.model === 'string') {
      parsed.model = call.model
      bytes = Buffer.from(JSON.stringify(parsed))
    }
    account.markFirstByte()
    if (!call.res.destroyed) {
      call.res.writeHead(upstream.statusCode, {
        'content-type': 'application/json',
        'content-length': String(bytes.length),
        'x-request-id': account.requestId,
      })
      call.res.end(bytes)
    }
    account.close(upstream.statusCode, null, usage)
  }

  async #relayStream(
    call: ChatCall,
    account: RequestAccount,
    upstream: Dispatcher.ResponseData,
    mapped: boolean,
    clientWantsUsage: boolean
  ) {
    const result = await relayOpenAiStream(upstream.body, call.res, {
      stripUsageChunk: !clientWantsUsage,
      clientModel: mapped ? call.model : null,
      headers: { ...STREAM_HEADERS, 'x-request-id': account.requestId },
      onFirstByte: () => account.markFirstByte(),
    })
    const usage = result.usage ?? (await this.#estimate(call, result.completionText()))
    if (result.clientClosed) account.close(499, 'client_closed', usage)
    else if (result.error) account.close(200, 'stream_interrupted', usage)
    else account.close(200, null, usage)
  }

  /** The client went away before anything was sent back: bill what the prompt cost to send. */
  async #clientGone(call: ChatCall, account: RequestAccount) {
    account.close(499, 'client_closed', await this.#estimate(call, ''))
  }

  async #estimate(call: ChatCall, completion: string): Promise<TokenUsage> {
    const promptTokens = await countChatPromptTokens(call.body.messages)
    const completionTokens = await countTokens(completion)
    return {
      promptTokens,
      completionTokens,
      totalTokens: promptTokens + completionTokens,
      cachedTokens: 0,
      reasoningTokens: 0,
      estimated: true,
    }
  }
}

function send(request: UpstreamRequest, signal: AbortSignal) {
  return poolFor(request.origin).request({
    method: 'POST',
    path: request.path,
    headers: request.headers,
    body: request.body,
    signal,
  })
}

async function readBody(upstream: Dispatcher.ResponseData): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of upstream.body) chunks.push(chunk as Buffer)
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
}

function isEventStream(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.includes('text/event-stream')
}

/** Upstream 4xx reach the client with their status and message; 5xx become 502 provider_error. */
function upstreamFailure(status: number, bytes: Buffer): GatewayError {
  let message = ''
  let code: string | null = null
  try {
    const parsed = JSON.parse(bytes.toString('utf8'))
    const detail = Array.isArray(parsed) ? parsed[0] : parsed
    message = detail?.error?.message ?? detail?.message ?? ''
    if (typeof message !== 'string') message = JSON.stringify(message)
    if (typeof detail?.error?.code === 'string') code = detail.error.code
  } catch {
    message = bytes.toString('utf8').slice(0, 500)
  }
  if (status >= 500) {
    return GatewayError.providerError(
      `Upstream provider returned HTTP ${status}${message ? `: ${message}` : ''}`
    )
  }
  const error = new GatewayError(status, code ?? upstreamCode(status), message || `Upstream returned HTTP ${status}`)
  error.upstreamBody = bytes
  if (status === 429) error.type = 'rate_limit_error'
  return error
}

function upstreamCode(status: number): string {
  if (status === 429) return 'upstream_rate_limited'
  if (status === 401 || status === 403) return 'upstream_auth_error'
  return 'upstream_error'
}

function completionOfMessage(parsed: any): string {
  let text = ''
  for (const choice of parsed?.choices ?? []) {
    const message = choice?.message
    if (typeof message?.content === 'string') text += message.content
    for (const call of message?.tool_calls ?? []) {
      text += (call?.function?.name ?? '') + (call?.function?.arguments ?? '')
    }
  }
  return text
}

function describe(error: unknown): string {
  const e = error as any
  return e?.code ? `${e.code}${e.message ? ` (${e.message})` : ''}` : String(e?.message ?? e)
}
