import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeAndReserve } from '#gateway/access_policy'
import { addTokens, hasLimits } from '#gateway/limits/rate_limits'
import type { Catalog } from '#gateway/catalog'
import { relayOpenAiStream } from '#gateway/dialects/openai_chat/stream_relay'
import { usageFromOpenAi } from '#gateway/dialects/openai_chat/usage'
import { countChatPromptTokens, countTokens } from '#gateway/metering/tokenizer'
import { RequestAccount } from '#gateway/metering/request_account'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import { adapterFor } from '#gateway/providers/registry'
import { ChannelRouter, type RouteCandidate } from '#gateway/routing/channel_router'
import { ClientGoneError, dispatch, readBody } from '#gateway/upstream/dispatcher'
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
    return new RequestAccount(this.meter, principal, endpoint, onAccountClosed)
  }

  async chatCompletions(call: ChatCall, account: RequestAccount): Promise<void> {
    account.model = call.model
    account.stream = call.stream
    authorizeAndReserve(this.catalog, account, call.model, call.rawBody.length, call.body)
    const candidates = this.router().route(call.model)
    const clientWantsUsage = call.body.stream_options?.include_usage === true

    const abort = new AbortController()
    const onClose = () => {
      if (!call.res.writableFinished) abort.abort()
    }
    call.res.on('close', onClose)
    try {
      const { candidate, response, body } = await dispatch(
        candidates,
        (c) =>
          adapterFor(c.channel.provider).chatCompletions(
            c.channel,
            this.#upstreamBody(call, c, clientWantsUsage),
            call.req.headers
          ),
        abort.signal,
        account.dispatchHooks
      )
      const mapped = candidate.upstreamModel !== call.model
      if (call.stream && isEventStream(response.headers['content-type'])) {
        return await this.#relayStream(call, account, body, mapped, clientWantsUsage)
      }
      return await this.#relayJson(call, account, response.statusCode, body, mapped)
    } catch (error) {
      if (error instanceof ClientGoneError || (abort.signal.aborted && !(error instanceof GatewayError))) {
        return this.#clientGone(call, account)
      }
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
    status: number,
    upstreamBody: AsyncIterable<Buffer>,
    mapped: boolean
  ) {
    let bytes = await readBody(upstreamBody)
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
      call.res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': String(bytes.length),
        'x-request-id': account.requestId,
      })
      call.res.end(bytes)
    }
    account.close(status, null, usage)
  }

  async #relayStream(
    call: ChatCall,
    account: RequestAccount,
    upstreamBody: AsyncIterable<Buffer>,
    mapped: boolean,
    clientWantsUsage: boolean
  ) {
    const result = await relayOpenAiStream(upstreamBody, call.res, {
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



/** Counts tokens against TPM windows (only principals that have any). */
function onAccountClosed(account: RequestAccount, usage: TokenUsage) {
  if (hasLimits(account.principal)) addTokens(account.principal, usage.totalTokens).catch(() => {})
}

function isEventStream(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.includes('text/event-stream')
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

