import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeAndReserve } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { Operation, RelayedService } from '#gateway/providers/provider_adapter'
import { adapterFor } from '#gateway/providers/registry'
import { addOperationHeaders } from '#gateway/http/litellm_headers'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { dispatch, readBody, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { parseAnswer } from '#gateway/upstream/upstream_answer'
import { withoutUpstreamCost } from '#gateway/upstream/upstream_cost'
import type { Principal, TokenUsage } from '#gateway/types'

/** A call of a one-shot JSON endpoint relayed as it is (images, rerank, moderations). */
export interface JsonOperationCall {
  principal: Principal
  rawBody: Buffer
  body: Record<string, any>
  model: string
  req: IncomingMessage
  res: ServerResponse
}

/** What differs between the relayed JSON operations. */
export interface JsonOperation {
  operation: Operation & RelayedService
  /** The client's 400 when none of the model's channels offers it: "No channel serving 'x' <offers ...>" */
  unsupported: string
  /**
   * The request's usage: what the upstream's answer reports, else counted
   * from the request (estimated): a promise only when counted, so a reported
   * usage's cost goes out in LiteLLM's header
   */
  usageOf(answer: any, call: JsonOperationCall): TokenUsage | Promise<TokenUsage>
  /** What the request asks to be billed per image (images: its `n`), held at the per-image price while it runs */
  imagesAsked?(body: Record<string, any>): number
}

/**
 * Authorize, route to the channels that offer the operation, send the
 * client's bytes (re-serialised only when the upstream's model name differs),
 * relay the upstream's answer as its own bytes, meter what it reports.
 */
export async function relayJsonOperation(
  catalog: Catalog,
  /** The model's candidates, then those of its fallback models (GatewayService.#route) */
  route: (model: string) => RouteCandidate[],
  call: JsonOperationCall,
  account: RequestAccount,
  op: JsonOperation
) {
  account.model = call.model
  authorizeAndReserve(catalog, account, call.model, call.rawBody.length, call.body, op.imagesAsked?.(call.body) ?? 0)
  const candidates = route(call.model).filter((c) => adapterFor(c.channel.provider).offers(c.channel, op.operation))
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(`No channel serving '${call.model}' ${op.unsupported}`, 'unsupported_endpoint')
  }
  // The answer is read and parsed inside its attempt: not JSON or an error body fails over like a 5xx.
  const { candidate, response, answer: read } = await dispatch(
    candidates,
    (c) =>
      adapterFor(c.channel.provider).request(c.channel, {
        operation: op.operation,
        dialect: 'openai_chat',
        model: c.upstreamModel,
        stream: false,
        body: c.upstreamModel === call.model && call.body.model === call.model ? call.rawBody : JSON.stringify({ ...call.body, model: c.upstreamModel }),
        clientHeaders: call.req.headers,
      }),
    account.abort.signal,
    account.dispatchHooks,
    readAnswer
  )
  const { bytes, answer } = read
  if (account.loggedRequest !== null) account.loggedResponse = bytes
  account.markFirstByte()
  const usage = op.usageOf(answer, call)
  if (!call.res.destroyed) {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(bytes.length), 'x-request-id': account.requestId }
    // The cost when the upstream reported the usage (else counted by the tokenizer after the answer went out).
    addOperationHeaders(headers, account, usage instanceof Promise ? null : account.successCost(usage), candidate.channel)
    call.res.writeHead(response.statusCode, headers)
    call.res.end(bytes)
  }
  account.close(response.statusCode, null, await usage)
}

/**
 * dispatch()'s AnswerCheck: the upstream's bytes (relayed as they are, but
 * for the upstream's own bill: upstream_cost.ts) and their JSON, parsed once.
 */
async function readAnswer(body: UpstreamBody): Promise<{ bytes: Buffer; answer: any }> {
  const bytes = await readBody(body)
  const answer = parseAnswer(bytes)
  return { bytes: withoutUpstreamCost(bytes, answer), answer }
}

/** Usage of prompt tokens only (rerank, moderations are billed at the input price). */
export function promptUsage(tokens: number, estimated: boolean, requestUnits?: number): TokenUsage {
  const usage: TokenUsage = { promptTokens: tokens, completionTokens: 0, totalTokens: tokens, cachedTokens: 0, reasoningTokens: 0, estimated }
  if (requestUnits !== undefined) usage.requestUnits = requestUnits
  return usage
}
