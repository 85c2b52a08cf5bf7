import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import type { DialectName } from '#gateway/dialects/canonical'
import {
  baseOf,
  withChannelHeaders,
  type AnswerWire,
  type ProviderAdapter,
  type UpstreamCall,
  type UpstreamRequest,
} from '#gateway/providers/provider_adapter'
import { bedrockControlOrigin, bedrockRegion, parseBedrockKey, type BedrockAuth } from '#gateway/providers/bedrock/bedrock_settings'
import { BedrockToAnthropicSse } from '#gateway/providers/bedrock/bedrock_stream'
import { signRequest, uriEncode } from '#gateway/providers/bedrock/sigv4'
import { awsCredentials, cachedAwsCredentials, forgetAwsCredentials } from '#gateway/providers/bedrock/aws_credentials'
import { converseRequest } from '#gateway/providers/bedrock/converse_request'
import { ConverseToAnthropicJson, ConverseToAnthropicSse, converseMessageId } from '#gateway/providers/bedrock/converse_answer'
import type { ChannelInfo } from '#gateway/types'

export const BEDROCK_ANTHROPIC_VERSION = 'bedrock-2023-05-31'
const DIALECTS: readonly DialectName[] = ['anthropic_messages']
const EVENT_STREAM = 'application/vnd.amazon.eventstream'

/** What a channel snapshot's settings come to, worked out once (the catalog builds a new snapshot on every change). */
interface BedrockChannel {
  auth: BedrockAuth | null
  region: string | null
  host: string
}
const settings = new WeakMap<ChannelInfo, BedrockChannel>()

function settingsOf(channel: ChannelInfo): BedrockChannel {
  let found = settings.get(channel)
  if (!found) {
    found = {
      auth: channel.apiKey ? parseBedrockKey(channel.apiKey) : null,
      region: bedrockRegion(channel.baseUrl),
      host: new URL(baseOf(channel).origin).host,
    }
    settings.set(channel, found)
  }
  return found
}

/**
 * AWS Bedrock's runtime, Claude models through InvokeModel: the Anthropic
 * Messages body with `anthropic_version: bedrock-2023-05-31` and without
 * `model` (in the path: `/model/{id}/invoke`) or `stream` (the path:
 * `/invoke-with-response-stream`, answered in AWS's event stream, decoded
 * into Anthropic's SSE as it arrives: bedrock_stream.ts). Authenticated by
 * SigV4 with the channel's IAM credentials, or a Bedrock API key as Bearer
 * (bedrock_settings.ts). Other models go through the Converse API
 * (`/model/{id}/converse`, `/converse-stream`): the Anthropic body as a
 * Converse request (converse_request.ts), its answers back as Anthropic's
 * (converse_answer.ts), so that the rest of the gateway sees the same
 * Anthropic upstream either way.
 */
export class BedrockAdapter implements ProviderAdapter {
  dialects() {
    return DIALECTS
  }

  /** Bedrock's CountTokens takes another body; the gateway's tokenizer counts */
  countsTokens() {
    return false
  }

  embeddings() {
    return null
  }

  offers() {
    return false
  }

  request(channel: ChannelInfo, call: UpstreamCall): UpstreamRequest {
    const { origin, basePath } = baseOf(channel)
    const claude = isClaude(call.model)
    const action = claude ? (call.stream ? 'invoke-with-response-stream' : 'invoke') : call.stream ? 'converse-stream' : 'converse'
    const path = `${basePath}/model/${uriEncode(call.model)}/${action}`
    const converse = claude ? null : converseRequest(bodyOf(call), { model: call.model, clientModel: call.clientModel, betas: clientBetas(call) })
    const body = Buffer.from(JSON.stringify(converse ? converse.body : invokeBody(call)))
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'accept': call.stream ? EVENT_STREAM : 'application/json',
    }
    const prepare = authorise(channel, { method: 'POST', path, headers, body }, 'bedrock')
    withChannelHeaders(headers, channel, {}, [])
    // Signed with keys the chain held: AWS refusing them is not yet a bad key (heldKeysAnswer).
    const held = prepare === HELD_KEYS
    const answer = !converse
      ? held
        ? BEDROCK_HELD_KEYS_ANSWER
        : BEDROCK_ANSWER
      : held
        ? heldKeysAnswer(converseAnswer(call.model, converse.jsonTool))
        : converseAnswer(call.model, converse.jsonTool)
    const upstream: UpstreamRequest = { origin, path, headers, body, answer }
    if (prepare !== undefined && !held) upstream.prepare = prepare
    return upstream
  }

  /** Bedrock's model list is its control plane's `GET /foundation-models` (bedrock.{region}, not bedrock-runtime). */
  modelsPath(channel: ChannelInfo): UpstreamRequest {
    const { basePath } = baseOf(channel)
    const origin = bedrockControlOrigin(channel.baseUrl)
    const path = `${basePath}/foundation-models`
    const headers: Record<string, string> = { accept: 'application/json' }
    const prepare = authorise(channel, { method: 'GET', path, headers, body: '', host: new URL(origin).host }, 'bedrock')
    withChannelHeaders(headers, channel, {}, [])
    const upstream: UpstreamRequest = { method: 'GET', origin, path, headers, body: '' }
    if (prepare !== undefined && prepare !== HELD_KEYS) upstream.prepare = prepare
    return upstream
  }
}

/**
 * The Anthropic Messages body as InvokeModel takes it. Bedrock refuses
 * `model` and `stream`; the client's `anthropic-beta` header goes in the body
 * as `anthropic_beta`, where Bedrock reads beta flags.
 */
function invokeBody(call: UpstreamCall): Record<string, unknown> {
  const { model: _model, stream: _stream, ...rest } = bodyOf(call)
  const anthropicBeta = rest.anthropic_beta === undefined ? clientBetas(call) : []
  return {
    anthropic_version: BEDROCK_ANTHROPIC_VERSION,
    ...rest,
    ...(anthropicBeta.length ? { anthropic_beta: anthropicBeta } : {}),
  }
}

/** The client's `anthropic-beta` header's flags (an Anthropic client's: Claude Code's interleaved thinking, ...) */
function clientBetas(call: UpstreamCall): string[] {
  const betas = call.dialect === 'anthropic_messages' ? call.clientHeaders['anthropic-beta'] : undefined
  return typeof betas === 'string' ? betas.split(',').map((beta) => beta.trim()).filter(Boolean) : []
}

function bodyOf(call: UpstreamCall): Record<string, any> {
  try {
    return JSON.parse(typeof call.body === 'string' ? call.body : call.body.toString('utf8'))
  } catch {
    throw GatewayError.invalidJson()
  }
}

/**
 * Claude's model ids and inference profiles (`anthropic.claude-...`,
 * `us.anthropic.claude-...`, an ARN ending in one): InvokeModel with the
 * Anthropic body, which keeps every Anthropic feature (betas, server tools,
 * cache TTLs). Every other model (Llama, Mistral, Nova, an application
 * inference profile's opaque ARN) goes through Converse.
 */
export function isClaude(model: string): boolean {
  return /^(?:[a-z]+\.)?anthropic\./.test(model.slice(model.lastIndexOf('/') + 1))
}

/**
 * Signs (SigV4) or sets the Bearer key on a request, in place. The gateway's
 * own credentials (`env`) sign at once when the chain holds fresh ones (then
 * HELD_KEYS is returned), else in the prepare() returned, which the
 * dispatcher awaits inside the attempt.
 */
function authorise(
  channel: ChannelInfo,
  request: { method: string; path: string; headers: Record<string, string>; body: string | Buffer; host?: string },
  service: string
): (() => Promise<void>) | typeof HELD_KEYS | undefined {
  const { auth, region, host } = settingsOf(channel)
  if (!auth) return
  if (auth.kind === 'bearer') {
    request.headers['authorization'] = `Bearer ${auth.token}`
    return
  }
  // normaliseBaseUrl refuses a bedrock base URL that names no region; a row written around it gets AWS's answer.
  const signing = { ...request, host: request.host ?? host }
  // On AWS's clock when a refused signature taught us the gateway's is off (awsClock below)
  const now = awsClock.offsetMs === 0 ? undefined : new Date(Date.now() + awsClock.offsetMs)
  if (auth.kind === 'sigv4') return void signRequest(signing, auth.credentials, region ?? 'us-east-1', service, now)
  const held = cachedAwsCredentials()
  if (held) {
    signRequest(signing, held, region ?? 'us-east-1', service, now)
    return HELD_KEYS
  }
  // The headers signed are the ones there now (the channel's extra headers come after, unsigned, as above)
  const signed = { ...request.headers }
  return async () => {
    const { credentials } = await awsCredentials()
    const at = awsClock.offsetMs === 0 ? undefined : new Date(Date.now() + awsClock.offsetMs)
    signRequest({ ...signing, headers: signed }, credentials, region ?? 'us-east-1', service, at)
    Object.assign(request.headers, { 'x-amz-date': signed['x-amz-date'], 'authorization': signed['authorization'] })
    if (signed['x-amz-security-token']) request.headers['x-amz-security-token'] = signed['x-amz-security-token']
  }
}

/** authorise() signed with keys the chain held (not fetched for this request) */
const HELD_KEYS = Symbol('held keys')

/**
 * An answer to a request signed with keys the chain held: a bad-credentials
 * refusal (ExpiredTokenException...) says they lapsed or were revoked before
 * the end their source stated, not yet that the chain's keys are wrong. They
 * are forgotten and the answer is the channel's passing failure (503): the
 * next request asks the chain again, and a refusal of keys just fetched
 * takes the channel out of rotation as any 401. (It did so at once, and the
 * keys stayed held: re-enabling the channel signed with them again.)
 */
function heldKeysAnswer(wire: AnswerWire): AnswerWire {
  return {
    ...wire,
    status(statusCode, headers) {
      const status = bedrockStatus(statusCode, headers)
      if (status !== 401) return status
      forgetAwsCredentials()
      return 503
    },
  }
}

/**
 * AWS's clock as the gateway's plus `offsetMs`, learnt from the Date of an
 * answer refusing a signature as expired (the AWS SDKs correct skew so):
 * AWS refuses a signature more than 5 minutes off its clock, and the
 * refusal (InvalidSignatureException, 403) read as bad credentials took
 * every Bedrock channel out of rotation on a gateway whose clock had
 * drifted. Mutable for tests.
 */
export const awsClock = { offsetMs: 0 }

/** AWS's window for a request's time (x-amz-date), minus a minute for the Date header's second and the trip */
const SKEW_MS = 4 * 60_000

/**
 * Whether a refused signature is explained by the clock: the answer's Date
 * is more than SKEW_MS from the time the request was signed with. The
 * offset is then learnt for the next requests.
 */
function clockSkewed(headers: IncomingHttpHeaders): boolean {
  const date = typeof headers.date === 'string' ? Date.parse(headers.date) : Number.NaN
  if (!Number.isFinite(date)) return false
  const now = Date.now()
  if (Math.abs(date - (now + awsClock.offsetMs)) <= SKEW_MS) return false
  awsClock.offsetMs = date - now
  return true
}

/** Bedrock's exceptions that mean the channel's credentials are wrong (AWS answers them 403 or 400) */
const BAD_CREDENTIALS = new Set([
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'IncompleteSignatureException',
  'MissingAuthenticationTokenException',
  'ExpiredTokenException',
  'InvalidClientTokenId',
])

/** x-amzn-errortype: `ValidationException:http://internal.amazon.com/coral/...` -> `ValidationException` */
export function bedrockErrorType(headers: IncomingHttpHeaders): string | null {
  const value = headers['x-amzn-errortype']
  const text = Array.isArray(value) ? value[0] : value
  return text ? text.split(':')[0].trim() : null
}

/**
 * Bedrock's errors in the statuses the dispatcher acts on: bad credentials
 * are 401 (the channel is disabled, as for any provider's 401; AWS says
 * 403), unless the answer's Date shows the gateway's clock is off (503: the
 * next channel is tried, the next request signed on AWS's time: awsClock),
 * a model timeout 504 and a model's own error 502 (the next channel is
 * tried), throttling and a model not ready 429; the rest as AWS says them
 * (AccessDenied 403 for a model not granted, Validation 400, ...).
 */
export function bedrockStatus(status: number, headers: IncomingHttpHeaders): number {
  if (status < 400) return status
  const type = bedrockErrorType(headers)
  if (!type) return status
  if (BAD_CREDENTIALS.has(type)) return clockSkewed(headers) ? 503 : 401
  if (type === 'ThrottlingException' || type === 'ModelNotReadyException') return 429
  if (type === 'ModelTimeoutException') return 504
  if (type === 'ModelErrorException') return 502
  if (type === 'ServiceUnavailableException') return 503
  return status
}

const BEDROCK_ANSWER: AnswerWire = {
  status: bedrockStatus,
  decoder(status, headers) {
    if (status < 200 || status >= 300) return null
    const type = headers['content-type']
    if (typeof type !== 'string' || !type.startsWith(EVENT_STREAM)) return null
    return { decoder: new BedrockToAnthropicSse(), contentType: 'text/event-stream' }
  },
}

const BEDROCK_HELD_KEYS_ANSWER = heldKeysAnswer(BEDROCK_ANSWER)

/** Converse's answers, decoded into Anthropic's (converse_answer.ts; jsonTool: the forced answer tool, read as text); errors are InvokeModel's. */
function converseAnswer(model: string, jsonTool: string | null): AnswerWire {
  return {
    status: bedrockStatus,
    decoder(status, headers) {
      if (status < 200 || status >= 300) return null
      const id = converseMessageId(headers['x-amzn-requestid'])
      const type = headers['content-type']
      if (typeof type === 'string' && type.startsWith(EVENT_STREAM)) {
        return { decoder: new ConverseToAnthropicSse(id, model, jsonTool), contentType: 'text/event-stream' }
      }
      return { decoder: new ConverseToAnthropicJson(id, model, jsonTool), contentType: 'application/json' }
    },
  }
}

export const bedrockAdapter = new BedrockAdapter()
