import { GatewayError } from '#exceptions/gateway_error'
import type { DialectName } from '#gateway/dialects/canonical'
import {
  baseOf,
  CredentialsRefused,
  withChannelHeaders,
  type AnswerWire,
  type ProviderAdapter,
  type RelayedService,
  type UpstreamCall,
  type UpstreamRequest,
} from '#gateway/providers/provider_adapter'
import { accessToken, accountKey, cachedToken, forgetToken } from '#gateway/providers/vertex/google_token'
import { authoriseAdc } from '#gateway/providers/vertex/google_adc'
import { assertNoStorageUris } from '#gateway/providers/vertex/storage_uris'
import { parseVertexKey, vertexModelsPrefix, type VertexAuth } from '#gateway/providers/vertex/vertex_settings'
import { isImagenModel } from '#gateway/google_images'
import type { ChannelInfo } from '#gateway/types'

const GEMINI: readonly DialectName[] = ['gemini']
const CLAUDE: readonly DialectName[] = ['anthropic_messages']
export const VERTEX_ANTHROPIC_VERSION = 'vertex-2023-10-16'

/** Anthropic's models on Vertex (`claude-sonnet-4-5@20250929`): publishers/anthropic, the Messages API */
export function isClaudeModel(model: string | undefined): boolean {
  return model !== undefined && /^(?:publishers\/anthropic\/models\/)?claude-/.test(model)
}

/** What a channel snapshot's settings come to, worked out once (the catalog builds a new snapshot on every change). */
interface VertexChannel {
  auth: VertexAuth | null
  /** The service account's token cache key */
  tokenKey: string | null
  /** `{basePath}[/projects/{p}/locations/{l}]`; null: a service account without a project */
  prefix: string | null
  /** How an answer to a request sent with a cached token is read (cachedTokenAnswer) */
  cachedAnswer: AnswerWire | undefined
}
const settings = new WeakMap<ChannelInfo, VertexChannel>()

function settingsOf(channel: ChannelInfo): VertexChannel {
  let found = settings.get(channel)
  if (!found) {
    const auth = channel.apiKey ? parseVertexKey(channel.apiKey) : null
    const tokenKey = auth?.kind === 'service_account' ? accountKey(auth.account) : null
    found = {
      auth,
      tokenKey,
      prefix: vertexModelsPrefix(channel.baseUrl, baseOf(channel).basePath, auth),
      cachedAnswer: tokenKey === null ? undefined : cachedTokenAnswer(tokenKey),
    }
    settings.set(channel, found)
  }
  return found
}

/**
 * Google Vertex AI (provider kind `vertex`). Gemini models:
 * `{prefix}/publishers/google/models/{model}:generateContent` and friends
 * (vertex_settings.ts), the Gemini API's bodies and answers (the `gemini`
 * dialect: passed through to Gemini clients, translated for the others),
 * streams as SSE (`alt=sse`). Authenticated with an OAuth access token from
 * the channel's service account (google_token.ts: cached, refreshed ~5 min
 * before expiry), or express mode's API key / access token.
 *
 * Claude models (`claude-*`): `{prefix}/publishers/anthropic/models/{model}:rawPredict`
 * (`:streamRawPredict` streamed), the Anthropic Messages body without `model`
 * and with `anthropic_version: vertex-2023-10-16`, answered in Anthropic's
 * JSON and SSE (the `anthropic_messages` dialect).
 *
 * Embeddings: `{prefix}/publishers/google/models/{model}:predict` with
 * `instances` (embeddings.ts, the `vertex` embeddings wire).
 */
export class VertexAdapter implements ProviderAdapter {
  dialects(_channel: ChannelInfo, upstreamModel?: string) {
    return isClaudeModel(upstreamModel) ? CLAUDE : GEMINI
  }

  /** Gemini's countTokens; Claude's count-tokens on Vertex takes another form: the gateway's tokenizer counts */
  countsTokens(_channel: ChannelInfo, upstreamModel?: string) {
    return !isClaudeModel(upstreamModel)
  }

  /** Vertex embeds through `:predict` (`instances` / `predictions`), not the Gemini API's batchEmbedContents (embeddings.ts) */
  embeddings() {
    return 'vertex' as const
  }

  /** OpenAI's images and image edits, translated as for the Gemini API (google_images.ts); Imagen's `:predict` relayed */
  offers(_channel: ChannelInfo, service: RelayedService) {
    return service === 'images' || service === 'image_edits' || service === 'predict'
  }

  request(channel: ChannelInfo, call: UpstreamCall): UpstreamRequest {
    const { origin } = baseOf(channel)
    const prefix = prefixOf(channel)
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    const claude = isClaudeModel(call.model)
    // Vertex names a model's version after '@' (claude-sonnet-4-5@20250929): kept readable in the path
    const model = encodeURIComponent(call.model.replace(/^(?:publishers\/[^/]+\/)?models\//, '')).replace(/%40/g, '@')
    const request: UpstreamRequest = claude
      ? {
          origin,
          path: `${prefix}/publishers/anthropic/models/${model}:${call.stream ? 'streamRawPredict' : 'rawPredict'}`,
          headers,
          body: Buffer.from(JSON.stringify(rawPredictBody(call))),
        }
      : { origin, path: `${prefix}/publishers/google/models/${model}:${methodOf(call)}`, headers, body: call.body }
    // Vertex would read a gs:// URI with the gateway's own identity (storage_uris.ts)
    if (!claude) assertNoStorageUris(call.body)
    if (claude) headers['accept'] = call.stream ? 'text/event-stream' : 'application/json'
    authorise(channel, request)
    // Beta flags only mean something to a same-dialect client (Vertex reads them from the header)
    withChannelHeaders(headers, channel, call.clientHeaders, claude && call.dialect === 'anthropic_messages' ? ['anthropic-beta'] : [])
    return request
  }

  /** The publisher's model list (`GET {base}/publishers/google/models`; v1beta1 on Google's hosts) */
  modelsPath(channel: ChannelInfo): UpstreamRequest {
    const { origin, basePath } = baseOf(channel)
    const headers: Record<string, string> = {}
    const request: UpstreamRequest = {
      method: 'GET',
      origin,
      path: `${basePath.replace(/\/projects\/.*$/, '').replace(/\/v1$/, '/v1beta1')}/publishers/google/models`,
      headers,
      body: '',
    }
    authorise(channel, request)
    withChannelHeaders(headers, channel, {}, [])
    return request
  }
}

/**
 * A call of a Google model's own method on Vertex (Veo's `predictLongRunning`
 * and `fetchPredictOperation`: videos/veo.ts), to the channel's project and
 * location, authorised as its generation calls are. The body is the
 * gateway's own (no client gs:// URI in it).
 */
export function vertexModelCall(channel: ChannelInfo, model: string, method: string, body: string): UpstreamRequest {
  const { origin } = baseOf(channel)
  const name = encodeURIComponent(model.replace(/^(?:publishers\/[^/]+\/)?models\//, '')).replace(/%40/g, '@')
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  const request: UpstreamRequest = { origin, path: `${prefixOf(channel)}/publishers/google/models/${name}:${method}`, headers, body }
  authorise(channel, request)
  withChannelHeaders(headers, channel, {}, [])
  return request
}

function prefixOf(channel: ChannelInfo): string {
  const { prefix } = settingsOf(channel)
  // A service account key without project_id, on a base naming none: refused as bad credentials (the channel is unusable as set).
  return prefix ?? '/projects/-/locations/-'
}

/** Sets the request's credentials: a cached token at once, else a prepare() the dispatcher awaits. */
function authorise(channel: ChannelInfo, request: UpstreamRequest) {
  const { auth, tokenKey, prefix, cachedAnswer } = settingsOf(channel)
  if (!auth) return
  switch (auth.kind) {
    case 'api_key':
      request.headers['x-goog-api-key'] = auth.key
      return
    case 'bearer':
      request.headers['authorization'] = `Bearer ${auth.token}`
      return
    case 'invalid':
      request.prepare = () => Promise.reject(new CredentialsRefused(auth.problem))
      return
    case 'adc':
      return authoriseAdc(request)
    case 'service_account': {
      if (prefix === null) {
        request.prepare = () =>
          Promise.reject(new CredentialsRefused("the service account key has no project_id and the base URL names no project (add ?project= or /projects/{project}/locations/{location})"))
        return
      }
      const token = cachedToken(tokenKey!)
      if (token) {
        request.headers['authorization'] = `Bearer ${token}`
        request.answer = cachedAnswer
        return
      }
      request.prepare = async () => {
        request.headers['authorization'] = `Bearer ${await accessToken(tokenKey!, auth.account)}`
      }
    }
  }
}

/**
 * A 401 to a request sent with a cached token: the token was revoked (a key
 * rotated, the account's tokens revoked) before it expired, which says
 * nothing yet of the account. The token is forgotten and the answer counts
 * as the channel's passing failure (503: the next candidate is tried);
 * the next request exchanges again, and a 401 to a fresh token takes the
 * channel out of rotation as any 401. (It did so at once: one revoked
 * token disabled a channel whose account was fine.)
 */
function cachedTokenAnswer(tokenKey: string): AnswerWire {
  return {
    status(statusCode) {
      if (statusCode !== 401) return statusCode
      forgetToken(tokenKey)
      return 503
    },
  }
}

/** The Messages body as rawPredict takes it: no `model` (it is in the path), Vertex's `anthropic_version`; `stream` stays. */
function rawPredictBody(call: UpstreamCall): Record<string, unknown> {
  let body: Record<string, unknown>
  try {
    body = JSON.parse(typeof call.body === 'string' ? call.body : call.body.toString('utf8'))
  } catch {
    throw GatewayError.invalidJson()
  }
  const { model: _model, ...rest } = body
  return { anthropic_version: VERTEX_ANTHROPIC_VERSION, ...rest }
}

function methodOf(call: UpstreamCall): string {
  if (call.operation === 'count_tokens') return 'countTokens'
  if (call.operation === 'embeddings' || call.operation === 'predict' || ((call.operation === 'images' || call.operation === 'image_edits') && isImagenModel(call.model))) return 'predict'
  return call.stream ? 'streamGenerateContent?alt=sse' : 'generateContent'
}

export const vertexAdapter = new VertexAdapter()
