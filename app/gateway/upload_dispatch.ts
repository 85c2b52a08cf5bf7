import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RequestAccount } from '#gateway/metering/request_account'
import { addOperationHeaders } from '#gateway/http/litellm_headers'
import { adapterFor } from '#gateway/providers/registry'
import type { Operation } from '#gateway/providers/provider_adapter'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { dispatch, type AnswerCheck, type DispatchResult } from '#gateway/upstream/dispatcher'
import type { ChannelInfo, TokenUsage } from '#gateway/types'

/** What a multipart upload (image edits and variations, audio transcriptions) sends each candidate. */
export interface UploadRequest {
  /** The client's multipart body, forwarded as-is unless a channel maps the model */
  rawBody: Buffer
  /** The client's content type (its boundary is the body's) */
  contentType: string
  model: string
  stream: boolean
  req: IncomingMessage
}

/**
 * The body each candidate gets: the client's bytes when the channel takes
 * the model's own name, else one rebuilt with the upstream's name (`rebuild`:
 * the `model` part's value replaced, or added), made once per name however
 * many candidates share it.
 */
export class UploadBodies {
  #mapped: Map<string, Buffer> | null = null

  constructor(
    private call: UploadRequest,
    private rebuild: (upstreamModel: string) => Buffer
  ) {}

  for(upstreamModel: string): Buffer {
    if (upstreamModel === this.call.model) return this.call.rawBody
    this.#mapped ??= new Map()
    let body = this.#mapped.get(upstreamModel)
    if (!body) this.#mapped.set(upstreamModel, (body = this.rebuild(upstreamModel)))
    return body
  }

  /** The upstream has its bytes: the copies go (an upload may be tens of MB) */
  release() {
    this.#mapped = null
  }
}

/**
 * Sends an upload to its candidates in turn (dispatcher.ts: failover,
 * health, attempts), each with its body (`bodyOf`). The
 * answer is read (a stream's opening looked at) inside its attempt by
 * `check`, so one that is no answer fails over like a 5xx.
 */
export function dispatchUpload<A>(
  call: UploadRequest,
  candidates: RouteCandidate[],
  operation: Operation,
  /** Each candidate's body (UploadBodies.for its upstream model; an image edit translated for Google's channels) */
  bodyOf: (candidate: RouteCandidate) => Buffer,
  account: RequestAccount,
  signal: AbortSignal,
  check: AnswerCheck<A>
): Promise<DispatchResult<A>> {
  return dispatch(
    candidates,
    (c) =>
      adapterFor(c.channel.provider).request(c.channel, {
        operation,
        dialect: 'openai_chat',
        model: c.upstreamModel,
        stream: call.stream,
        body: bodyOf(c),
        clientHeaders: call.req.headers,
        contentType: call.contentType,
      }),
    signal,
    account.dispatchHooks,
    check
  )
}

/**
 * A whole answer of an upload, as the upstream sent it, in one write (none
 * once the client is gone); `usage`: what its row bills, for LiteLLM's cost
 * header; `channel`: the one that answered.
 */
export function answerUpload(
  res: ServerResponse,
  account: RequestAccount,
  status: number,
  bytes: Buffer,
  contentType: string,
  usage: TokenUsage,
  channel: ChannelInfo
) {
  if (account.loggedRequest !== null) account.loggedResponse = bytes
  account.markFirstByte()
  if (res.destroyed) return
  const headers: Record<string, string> = { 'content-type': contentType, 'content-length': String(bytes.length), 'x-request-id': account.requestId }
  addOperationHeaders(headers, account, account.successCost(usage), channel)
  res.writeHead(status, headers)
  res.end(bytes)
}
