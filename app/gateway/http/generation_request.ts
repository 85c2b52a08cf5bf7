import { admitEndUser as admitEndUserRate } from '#gateway/limits/rate_limits'
import { admitModelLimit } from '#gateway/limits/admit_model_limit'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import type { DialectName } from '#gateway/dialects/canonical'
import type { Gateway } from '#gateway/gateway'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { GenerateCall } from '#gateway/gateway_service'
import type { Principal } from '#gateway/types'
import { validateEnvelope, validateShape } from '#gateway/http/envelope'
import type { EnvelopeValidator } from '#validators/plain_envelope'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { assertStorableModel } from '#gateway/http/model_name'
import { deploymentName, withDeploymentModel } from '#gateway/http/deployment_model'
import { dialectForPath, inClientFormat } from '#gateway/http/error_renderers'
import { GatewayError } from '#exceptions/gateway_error'
import { tagsFromHeaders, withBodyTags } from '#gateway/metering/request_tags'
import { carriesLiteLLMFields, deleteLiteLLMFields } from '#gateway/litellm_fields'
import { setErrorHeaders } from '#gateway/http/litellm_headers'
import { endUserFromBody, endUserFromHeaders } from '#gateway/end_users/end_user_id'

let gateway: Gateway | undefined

export async function gatewayInstance(): Promise<Gateway> {
  gateway ??= await app.container.make('gateway')
  return gateway
}

/**
 * What an API endpoint needs of its HTTP request: the authenticated key and
 * the raw Node request and response (bodies are read and answers written on
 * them directly). Both the Adonis controllers and the lean API lane
 * (`api_lane.ts`) hand this over, so an endpoint runs the same code either way.
 */
export interface ApiCall {
  principal: Principal
  req: IncomingMessage
  res: ServerResponse
  /**
   * The model named in the path (percent-encoded), the call's model (deployment_model.ts): Azure's
   * `/openai/deployments/{deployment}/...`, OpenAI's legacy `/v1/engines/{engine}/...`
   */
  deployment?: string
}

export function apiCallOf(ctx: HttpContext): ApiCall {
  return { principal: ctx.principal, req: ctx.request.request, res: ctx.response.response }
}

/** An endpoint whose path names the model (Azure's deployments, OpenAI's legacy engines), as its resolver reads the path. */
export type PathEndpoint = { endpoint: (call: ApiCall) => Promise<void>; deployment?: string }

/**
 * The router's side of the paths that name their model (API_LANE=false, or
 * a path the lane passed on): resolved by the same function as in the
 * lane, so both answer alike; 404 when the path names no operation.
 */
export async function callByPath(ctx: HttpContext, resolve: (path: string) => PathEndpoint | undefined, unknown: string) {
  const url = ctx.request.request.url ?? '/'
  const query = url.indexOf('?')
  const target = resolve(query < 0 ? url : url.slice(0, query))
  if (target === undefined) throw new GatewayError(404, 'not_found', unknown, 'not_found_error')
  const call = apiCallOf(ctx)
  if (target.deployment !== undefined) call.deployment = target.deployment
  await target.endpoint(call)
}

export interface ParsedBody {
  rawBody: Buffer
  body: Record<string, any>
}

/**
 * The HTTP glue every API endpoint shares: open the request's account, read
 * the raw body, validate the thin envelope, run the work; any failure before
 * the answer is accounted once and rethrown for the error renderer.
 */
export async function withAccount(
  call: ApiCall,
  endpoint: string,
  validator: EnvelopeValidator,
  work: (gateway: Gateway, account: RequestAccount, parsed: ParsedBody) => Promise<void>,
  modelFromPath?: string,
  /** The model of a body that names none (moderations: omni-moderation-latest); the validator then checks the body's own */
  defaultModel?: string
): Promise<void> {
  // Read in a helper: this frame stays suspended for a whole stream, and V8
  // keeps every local of a suspended async function alive, dead or not. A
  // coding agent's body is 20-200 KB parsed; the work drops it once the
  // upstream has it (GatewayService releases it), so nothing here may hold it.
  return accounted(call, endpoint, async (gw, account) =>
    work(gw, account, await readParsedBody(gw, call, endpoint, validator, account, modelFromPath, defaultModel))
  )
}

/**
 * Opens the request's account and runs `run` under it: any failure before
 * the answer is accounted once (the one usage row) and rethrown, in the
 * client's wire format, for the error renderer. withAccount (JSON bodies) and
 * the audio uploads (multipart bodies, read by their endpoint) share it.
 */
export async function accounted(
  call: ApiCall,
  endpoint: string,
  run: (gateway: Gateway, account: RequestAccount) => Promise<void>
): Promise<void> {
  const gw = gateway ?? (await gatewayInstance())
  const account = gw.service.openAccount(call.principal, endpoint)
  try {
    // Cost-attribution tags (request_tags.ts): a bad one is refused here, with its usage row like any refusal.
    account.tags = tagsFromHeaders(call.req.headers)
    // LiteLLM's end-user header (end_user_id.ts): admitted before the body is read. One header lookup when absent.
    const endUser = endUserFromHeaders(call.req.headers)
    if (endUser !== null) {
      const rated = admitEndUser(gw, account, endUser, call)
      if (rated) await rated
    }
    await run(gw, account)
  } catch (caught) {
    const error = caught instanceof GatewayError ? inClientFormat(dialectForPath(call.req.url ?? ''), caught) : caught
    // A logged call that failed before its answer: what it was told (the upstream's own error, or the gateway's).
    if (account.loggedRequest !== null && account.loggedResponse === null) account.loggedResponse = loggedError(error)
    // Closed here, the row bills nothing (no usage); closed before, it holds what a failure was billed.
    const billsNothing = !account.closed
    account.fail(error)
    // The failed call's usage row has this id: the client can quote it (Anthropic's SDKs read request-id).
    if (!call.res.headersSent) {
      call.res.setHeader('x-request-id', account.requestId)
      if (endpoint.startsWith('messages')) call.res.setHeader('request-id', account.requestId)
      setErrorHeaders(call.res, account, billsNothing ? 0n : null)
    }
    throw error
  }
}

/**
 * The request names an end user: on its usage row whatever happens, refused when its owner blocked
 * it, it reached its limit for the period (end_user_policies.ts: a Map lookup or two, no read), or
 * its rpm/tpm window is spent (rate_limits.ts: 429). A promise only with a shared limiter store.
 */
function admitEndUser(gw: Gateway, account: RequestAccount, endUser: string, call: ApiCall): void | Promise<void> {
  account.endUser = endUser
  const policy = gw.catalog.endUsers.admit(account.principal.user.id, endUser)
  account.endUserPolicy = policy
  if (policy !== null && (policy.rpm !== null || policy.tpm !== null)) return admitEndUserRate(policy, call.res)
}

async function readParsedBody(
  gw: Gateway,
  call: ApiCall,
  endpoint: string,
  validator: EnvelopeValidator,
  account: RequestAccount,
  modelFromPath?: string,
  defaultModel?: string
): Promise<ParsedBody> {
  // A model in the path is checked before the body is read: nothing of it is needed to refuse.
  // Named on the row from here: an upload that times out or is abandoned says which model it was for.
  if (modelFromPath !== undefined) {
    assertStorableModel(modelFromPath)
    account.model = modelFromPath
  }
  const deployment = call.deployment === undefined ? undefined : deploymentName(call.deployment)
  // Known before the body is read: a body refused after this is the deployment's row.
  if (deployment !== undefined) account.model = deployment
  let rawBody = await gw.service.receiveBody(readRawBody(call.req, call.res, bodyLimitFor(endpoint)))
  const bodyLog = gw.service.bodyLog
  if (bodyLog !== null) {
    // Body logging (LOG_BODIES): the client's bytes as sent, a reference held until the call is metered.
    account.bodyLog = bodyLog
    account.loggedRequest = rawBody
  }
  const body = parseJsonObject(rawBody)
  // Logged above as sent; from here the body names the deployment it was sent to.
  if (deployment !== undefined) rawBody = withDeploymentModel(rawBody, body, deployment)
  const model = modelFromPath ?? (typeof body.model === 'string' ? body.model : (defaultModel ?? ''))
  assertStorableModel(model)
  account.model = model
  // The key's own rpm/tpm and budget for this model (admit_model_limit.ts): one null test without any.
  const rated = admitModelLimit(account, model, call.res)
  if (rated) await rated
  // The body's end user (`user`, `litellm_metadata.user`, `metadata.user_id`) unless the header named one.
  if (account.endUser === null) {
    const endUser = endUserFromBody(body)
    if (endUser !== null) {
      const rated = admitEndUser(gw, account, endUser, call)
      if (rated) await rated
    }
  }
  // OpenAI's chat and Responses bodies may carry `metadata.tags` (kept in the body sent upstream).
  if (endpoint === 'chat.completions' || endpoint === 'responses') account.tags = withBodyTags(account.tags, body)
  const checked =
    modelFromPath === undefined && defaultModel === undefined ? validateEnvelope(validator, body) : validateShape(validator, body)
  if (checked) await checked
  // Sensitive words (content_filter/word_filter.ts): refused before routing, nothing held, sent or charged. Off: one null check.
  const wordFilter = gw.catalog.wordFilter
  if (wordFilter !== null) wordFilter.screenPrompt(endpoint, body)
  // LiteLLM's own fields (litellm_fields.ts) on an endpoint whose body goes up as the client's bytes: taken
  // out once here, for every attempt. One look per field; only a body that carries them is serialised again.
  // (The request log keeps what the client sent: loggedRequest above.)
  if (RELAYED_BODIES.has(endpoint) && carriesLiteLLMFields(body)) {
    deleteLiteLLMFields(body)
    return { rawBody: Buffer.from(JSON.stringify(body)), body }
  }
  return { rawBody, body }
}

/**
 * The endpoints whose JSON body is relayed as the client's bytes (only `model` rewritten when mapped),
 * Anthropic's count_tokens included. Generations are not here: GatewayService builds their upstream
 * bodies and leaves the fields out there. (Gemini's embeddings are always rebuilt for the upstream.)
 */
const RELAYED_BODIES = new Set(['embeddings', 'images.generations', 'completions', 'rerank', 'moderations', 'audio.speech', 'messages.count_tokens'])

/**
 * The generation call made of a parsed body, which gives its contents up: from
 * here the call is the body's only holder, so releasing it there frees it.
 */
function handOver(
  parsed: ParsedBody,
  call: ApiCall,
  ingress: DialectName,
  options: { model?: string; stream?: boolean; jsonArray?: boolean }
): GenerateCall {
  const { rawBody, body } = parsed
  parsed.rawBody = EMPTY_BODY
  parsed.body = {}
  return {
    principal: call.principal,
    ingress,
    rawBody,
    body,
    model: options.model ?? body.model,
    stream: options.stream ?? body.stream === true,
    jsonArray: options.jsonArray,
    req: call.req,
    res: call.res,
  }
}

const EMPTY_BODY = Buffer.alloc(0)

/** A generation endpoint: the body goes to GatewayService.generate in the client's dialect. */
export function generate(
  call: ApiCall,
  endpoint: string,
  ingress: DialectName,
  validator: EnvelopeValidator,
  options: { model?: string; stream?: boolean; jsonArray?: boolean } = {}
): Promise<void> {
  return withAccount(
    call,
    endpoint,
    validator,
    (gw, account, parsed) => gw.service.generate(handOver(parsed, call, ingress, options), account),
    options.model
  )
}

/** A failure as the request log keeps it. */
function loggedError(error: unknown): Buffer | string {
  if (error instanceof GatewayError) {
    return error.upstreamBody ?? JSON.stringify({ error: { code: error.code, type: error.type, message: error.message } })
  }
  return JSON.stringify({ error: { code: 'internal_error', message: 'Internal error' } })
}
