import { adapterFor } from '#gateway/providers/registry'
import type { ChannelInfo, ChannelTimeouts, ProviderKind } from '#gateway/types'
import { AdminInputError } from '#actions/admin_input_error'
import { AdminGetSession } from '#services/upstream_admin_get'

/**
 * Asks an upstream which models it has (new-api's "fetch model list"), with
 * the channel's key, through the channel's own provider adapter (its
 * `modelsPath`: URL, auth header, Azure's api-version):
 *
 * - OpenAI-compatible kinds and Azure: `GET {base}/models`, one page
 *   (`{data: [{id}]}`, or a bare array as some servers answer);
 * - Anthropic: `GET {base}/models?limit=1000`, paged by `after_id` while
 *   `has_more`;
 * - Google: `GET {base}/models?pageSize=1000`, paged by `pageToken` while
 *   `nextPageToken`; names without `models/`, only those that generate or
 *   embed content (the rest cannot be served through a channel).
 *
 * Bounded: the channel's timeouts (each capped at ADMIN_WAIT_MS: an admin
 * waits on the page), MAX_MODEL_IDS ids, MAX_PAGES pages (fewer when the
 * caller asks: the key check reads one), MAX_PAGE_BYTES a page. Whatever
 * goes wrong is an UpstreamModelsError with a message fit to show; the key
 * is masked out of any upstream text quoted in it. A 2xx that is no model
 * list (a web page at a wrong base URL, an error body sent with 200, an
 * empty body) and a redirect (never followed) are failures too: the one
 * client for Fetch models and the key check (`channel:test`), so both judge
 * an answer alike.
 */

export const MAX_MODEL_IDS = 5000
const MAX_PAGES = 50
const MAX_PAGE_BYTES = 16 * 1024 * 1024
/** Longest model name kept (the channel's model globs take 200 characters) */
const MAX_ID_LENGTH = 200

export interface ModelListTarget {
  provider: ProviderKind
  /** Canonical base URL (as stored) */
  baseUrl: string
  apiKey: string | null
  extraHeaders: Record<string, string>
  timeouts: ChannelTimeouts
}

export interface UpstreamModelList {
  /** Distinct ids, sorted */
  ids: string[]
  /** More than MAX_MODEL_IDS (or the pages allowed): the rest were not read */
  truncated: boolean
  latencyMs: number
  /** The HTTP status of the last page read (a 2xx) */
  status: number
}

export interface ListOptions {
  /** Ends the listing early (the caller's own limit or a client gone) */
  signal?: AbortSignal
  /** Pages read at most (MAX_PAGES when absent): the key check needs one */
  maxPages?: number
  /** The whole listing's limit when shorter than the channel's total timeout (ms) */
  totalMs?: number
}

/**
 * The upstream could not be asked, or its answer was no model list: an
 * admin input error (the page flashes it, the command prints it), which the
 * management API answers as a 502.
 */
export class UpstreamModelsError extends AdminInputError {
  constructor(
    /** What went wrong, without the "Model list:" the message starts with (the key check's own line) */
    public reason: string,
    /** The upstream's HTTP status, null when none came */
    public status: number | null = null
  ) {
    super(`Model list: ${reason}`)
    this.name = 'UpstreamModelsError'
  }
}

type Paging = 'none' | 'anthropic' | 'google' | 'bedrock' | 'vertex'

function pagingOf(provider: ProviderKind): Paging {
  if (provider === 'anthropic') return 'anthropic'
  if (provider === 'google') return 'google'
  if (provider === 'bedrock') return 'bedrock'
  if (provider === 'vertex') return 'vertex'
  return 'none'
}

/** Google's methods a channel can serve a model through */
const GOOGLE_SERVED_METHODS = ['generateContent', 'embedContent']

export async function listUpstreamModels(target: ModelListTarget, options: ListOptions = {}): Promise<UpstreamModelList> {
  const channel: ChannelInfo = {
    id: 0,
    name: '',
    provider: target.provider,
    baseUrl: target.baseUrl.replace(/\/+$/, ''),
    apiKey: target.apiKey,
    models: [],
    modelMapping: {},
    extraHeaders: target.extraHeaders,
    priority: 0,
    weight: 1,
    enabled: true,
    disabledReason: null,
    timeouts: target.timeouts,
  }
  const upstream = adapterFor(target.provider).modelsPath(channel)
  // Credentials fetched first (a Vertex service account's access token)
  if (upstream.prepare) {
    try {
      await upstream.prepare()
    } catch (error) {
      throw new UpstreamModelsError(`the channel's credentials: ${(error as Error).message}`)
    }
  }
  const paging = pagingOf(target.provider)
  const session = new AdminGetSession(target, {
    what: 'model list',
    maxBytes: MAX_PAGE_BYTES,
    maxBytesLabel: `${MAX_PAGE_BYTES / 1024 / 1024} MB a page`,
    failure: (reason, status) => new UpstreamModelsError(reason, status),
    signal: options.signal,
    totalMs: options.totalMs,
  })
  const maxPages = Math.max(1, Math.min(options.maxPages ?? MAX_PAGES, MAX_PAGES))

  const ids = new Set<string>()
  let truncated = false
  let cursor: string | null = null
  let status = 0
  const started = performance.now()
  try {
    for (let page = 0; ; page++) {
      if (page === maxPages) {
        truncated = true
        break
      }
      const path = withQuery(upstream.path, pageQuery(paging, cursor))
      const answer = await session.getJson(`${upstream.origin}${path}`, upstream.headers)
      status = answer.status
      const found = readPage(paging, answer.body)
      for (const id of found.ids) {
        if (ids.size >= MAX_MODEL_IDS) {
          truncated = true
          break
        }
        ids.add(id)
      }
      if (truncated || !found.next || found.next === cursor) break
      cursor = found.next
    }
  } finally {
    session.close()
  }
  return { ids: [...ids].sort(), truncated, latencyMs: Math.round(performance.now() - started), status }
}

function pageQuery(paging: Paging, cursor: string | null): string {
  if (paging === 'anthropic') return `limit=1000${cursor ? `&after_id=${encodeURIComponent(cursor)}` : ''}`
  if (paging === 'google' || paging === 'vertex') return `pageSize=1000${cursor ? `&pageToken=${encodeURIComponent(cursor)}` : ''}`
  return ''
}

function withQuery(path: string, query: string): string {
  if (!query) return path
  return `${path}${path.includes('?') ? '&' : '?'}${query}`
}

/** The ids of one page and the cursor of the next (null: last page). */
function readPage(paging: Paging, answer: unknown): { ids: string[]; next: string | null } {
  const body = answer as Record<string, unknown> | unknown[] | null
  if (paging === 'google') {
    const models = (body as Record<string, unknown> | null)?.models
    if (!Array.isArray(models)) {
      // An empty account answers {} (no `models` at all).
      if (body && typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0) return { ids: [], next: null }
      throw new UpstreamModelsError('the answer holds no model list (no "models" array)')
    }
    const ids = models
      .filter((m) => {
        const methods = (m as { supportedGenerationMethods?: unknown })?.supportedGenerationMethods
        return !Array.isArray(methods) || methods.some((method) => GOOGLE_SERVED_METHODS.includes(String(method)))
      })
      .map((m) => (m as { name?: unknown })?.name)
      .map((name) => (typeof name === 'string' ? name.replace(/^models\//, '') : name))
      .filter(validId)
    const token = (body as Record<string, unknown>).nextPageToken
    return { ids, next: typeof token === 'string' && token ? token : null }
  }
  if (paging === 'vertex') {
    // Vertex's publisher model list: `publisherModels[].name` = publishers/google/models/{id}
    const models = (body as Record<string, unknown> | null)?.publisherModels ?? []
    if (!Array.isArray(models)) throw new UpstreamModelsError('the answer holds no model list (no "publisherModels" array)')
    const ids = models.map((m) => String((m as { name?: unknown })?.name ?? '').replace(/^publishers\/[^/]+\/models\//, '')).filter(validId)
    const token = (body as Record<string, unknown>).nextPageToken
    return { ids, next: typeof token === 'string' && token ? token : null }
  }
  if (paging === 'bedrock') {
    // Bedrock's ListFoundationModels: every model at once, `modelSummaries[].modelId`
    const summaries = (body as Record<string, unknown> | null)?.modelSummaries
    if (!Array.isArray(summaries)) throw new UpstreamModelsError('the answer holds no model list (no "modelSummaries" array)')
    return { ids: summaries.map((m) => (m as { modelId?: unknown })?.modelId).filter(validId), next: null }
  }
  const data = Array.isArray(body) ? body : (body as Record<string, unknown> | null)?.data
  if (!Array.isArray(data)) throw new UpstreamModelsError('the answer holds no model list (no "data" array)')
  const ids = data.map((m) => (typeof m === 'string' ? m : (m as { id?: unknown })?.id)).filter(validId)
  if (paging !== 'anthropic' || Array.isArray(body)) return { ids, next: null }
  const more = (body as Record<string, unknown>).has_more === true
  const last = (body as Record<string, unknown>).last_id ?? ids[ids.length - 1]
  return { ids, next: more && typeof last === 'string' && last ? last : null }
}

function validId(id: unknown): id is string {
  return typeof id === 'string' && id.trim() === id && id.length > 0 && id.length <= MAX_ID_LENGTH && !/[\s,]/.test(id)
}
