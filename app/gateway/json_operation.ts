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
  /** The upstream takes the model in its path (Google's `:predict`): the client's bytes go up as they are, whatever the channel maps */
  modelInPath?: boolean
  /** What the request asks to be billed per image (images: its `n`), held at the per-image price while it runs */
  imagesAsked?(body: Record<string, any>): number
  /** The request's hold, when the operation holds otherwise than by its body (images: the images' tokens) */
  hold?(catalog: Catalog, account: RequestAccount, call: JsonOperationCall): void
  /**
   * A channel that does not speak the operation's OpenAI wire but serves it
   * translated (images on Google's channels: google_images.ts): its body,
   * and its answer read back into OpenAI's; null for the relayed channels.
   */
  translation?: {
    /** Whether this candidate gets the translation (else the client's bytes) */
    applies(candidate: RouteCandidate): boolean
    /** The call read for it, once, when a candidate needs it: it may refuse the request (400) before any is tried */
    of(call: JsonOperationCall): JsonOperationTranslation
  }
}

/** How a call is translated for the channels that need it (JsonOperation.translation). */
export interface JsonOperationTranslation {
  /** The upstream body for the candidate's model; a 400 GatewayError when that model cannot take the request */
  body(upstreamModel: string): string
  /** The upstream's answer in OpenAI's wire, what it bills, and the refusal when it has nothing to give (billed, then answered as the 400) */
  answer(upstream: any, upstreamModel: string): { answer: any; usage: TokenUsage; refusal: GatewayError | null }
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
  if (op.hold) op.hold(catalog, account, call)
  else authorizeAndReserve(catalog, account, call.model, call.rawBody.length, call.body, op.imagesAsked?.(call.body) ?? 0)
  const candidates = route(call.model).filter((c) => adapterFor(c.channel.provider).offers(c.channel, op.operation))
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(`No channel serving '${call.model}' ${op.unsupported}`, 'unsupported_endpoint')
  }
  const translates = op.translation?.applies ?? null
  const translation = translates !== null && candidates.some(translates) ? op.translation!.of(call) : null
  // Each upstream model's translated body is made once, however many candidates share it (a 400 before any is tried).
  const translated = translation === null ? null : new Map<string, string>()
  if (translated !== null) for (const c of candidates) if (translates!(c) && !translated.has(c.upstreamModel)) translated.set(c.upstreamModel, translation!.body(c.upstreamModel))
  // The answer is read and parsed inside its attempt: not JSON or an error body fails over like a 5xx.
  const { candidate, response, answer: read } = await dispatch(
    candidates,
    (c) =>
      adapterFor(c.channel.provider).request(c.channel, {
        operation: op.operation,
        dialect: 'openai_chat',
        model: c.upstreamModel,
        stream: false,
        body:
          translated !== null && translates!(c)
            ? translated.get(c.upstreamModel)!
            : op.modelInPath || (c.upstreamModel === call.model && call.body.model === call.model)
              ? call.rawBody
              : JSON.stringify({ ...call.body, model: c.upstreamModel }),
        clientHeaders: call.req.headers,
      }),
    account.abort.signal,
    account.dispatchHooks,
    (body, c): Promise<OperationAnswer> => (translation !== null && translates!(c) ? readTranslated(body, c, translation) : readAnswer(body))
  )
  const { bytes, answer } = read
  if (account.loggedRequest !== null) account.loggedResponse = bytes
  account.markFirstByte()
  if (read.refusal) {
    // Nothing to give (every image filtered): what the upstream billed is billed, the client gets the 400.
    account.close(read.refusal.status, read.refusal.code, read.usage)
    throw read.refusal
  }
  const usage = read.usage ?? op.usageOf(answer, call)
  if (!call.res.destroyed) {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(bytes.length), 'x-request-id': account.requestId }
    // The cost when the upstream reported the usage (else counted by the tokenizer after the answer went out).
    addOperationHeaders(headers, account, usage instanceof Promise ? null : account.successCost(usage), candidate.channel)
    call.res.writeHead(response.statusCode, headers)
    call.res.end(bytes)
  }
  account.close(response.statusCode, null, await usage)
}

/** An answer read in its attempt: the client's bytes and their JSON; a translated one also its usage, or its refusal */
interface OperationAnswer {
  bytes: Buffer
  answer: any
  usage?: TokenUsage
  refusal?: GatewayError | null
}

/**
 * dispatch()'s AnswerCheck: the upstream's bytes (relayed as they are, but
 * for the upstream's own bill: upstream_cost.ts) and their JSON, parsed once.
 */
async function readAnswer(body: UpstreamBody): Promise<OperationAnswer> {
  const bytes = await readBody(body)
  const answer = parseAnswer(bytes)
  return { bytes: withoutUpstreamCost(bytes, answer), answer }
}

/**
 * dispatch()'s AnswerCheck for a translated candidate: the upstream's answer
 * parsed (not JSON, or an error body, fails over), then made the client's
 * (OpenAI's JSON, serialised once) with its usage.
 */
async function readTranslated(body: UpstreamBody, candidate: RouteCandidate, translation: JsonOperationTranslation): Promise<OperationAnswer> {
  const upstream = parseAnswer(await readBody(body))
  const { answer, usage, refusal } = translation.answer(upstream, candidate.upstreamModel)
  return { bytes: Buffer.from(JSON.stringify(answer)), answer, usage, refusal }
}

/** Usage of prompt tokens only (rerank, moderations are billed at the input price). */
export function promptUsage(tokens: number, estimated: boolean, requestUnits?: number): TokenUsage {
  const usage: TokenUsage = { promptTokens: tokens, completionTokens: 0, totalTokens: tokens, cachedTokens: 0, reasoningTokens: 0, estimated }
  if (requestUnits !== undefined) usage.requestUnits = requestUnits
  return usage
}
