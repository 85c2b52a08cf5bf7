import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeAndReserve } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import type { RequestAccount } from '#gateway/metering/request_account'
import { adapterFor } from '#gateway/providers/registry'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { dispatch, readBody } from '#gateway/upstream/dispatcher'
import type { Principal, TokenUsage } from '#gateway/types'

export interface ImagesCall {
  principal: Principal
  rawBody: Buffer
  body: Record<string, any>
  model: string
  req: IncomingMessage
  res: ServerResponse
}

/**
 * `POST /v1/images/generations` on channels that offer it (the OpenAI
 * family): the body passes through (b64_json or url answers alike), each
 * image is billed at the model's per-image price, plus tokens when the
 * upstream reports them (gpt-image).
 */
export async function generateImages(
  catalog: Catalog,
  /** The model's candidates, then those of its fallback models (GatewayService.#route) */
  route: (model: string) => RouteCandidate[],
  call: ImagesCall,
  account: RequestAccount
) {
  account.model = call.model
  authorizeAndReserve(catalog, account, call.model, call.rawBody.length, call.body)
  const candidates = route(call.model).filter((c) => adapterFor(c.channel.provider).images(c.channel))
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(`No channel serving '${call.model}' generates images`, 'unsupported_endpoint')
  }
  const { response, body } = await dispatch(
    candidates,
    (c) =>
      adapterFor(c.channel.provider).request(c.channel, {
        operation: 'images',
        dialect: 'openai_chat',
        model: c.upstreamModel,
        stream: false,
        body: c.upstreamModel === call.model ? call.rawBody : JSON.stringify({ ...call.body, model: c.upstreamModel }),
        clientHeaders: call.req.headers,
      }),
    account.abort.signal,
    account.dispatchHooks
  )
  const bytes = await readBody(body)
  let parsed: any
  try {
    parsed = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw GatewayError.providerError('Upstream returned a response that is not valid JSON')
  }
  const input = Number(parsed?.usage?.input_tokens ?? 0) || 0
  const output = Number(parsed?.usage?.output_tokens ?? 0) || 0
  const usage: TokenUsage = {
    promptTokens: input,
    completionTokens: output,
    totalTokens: input + output,
    cachedTokens: 0,
    reasoningTokens: 0,
    images: Array.isArray(parsed?.data) ? parsed.data.length : 0,
    estimated: false,
  }
  if (account.loggedRequest !== null) account.loggedResponse = bytes
  account.markFirstByte()
  if (!call.res.destroyed) {
    call.res.writeHead(response.statusCode, { 'content-type': 'application/json', 'content-length': String(bytes.length), 'x-request-id': account.requestId })
    call.res.end(bytes)
  }
  account.close(response.statusCode, null, usage)
}
