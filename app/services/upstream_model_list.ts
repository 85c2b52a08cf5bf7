import { Agent, request } from 'undici'
import { adapterFor } from '#gateway/providers/registry'
import type { ChannelInfo, ChannelTimeouts, ProviderKind } from '#gateway/types'
import { AdminInputError } from '#actions/admin_input_error'

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
/** No wait of an admin's call is longer than this, whatever the channel allows a generation */
export const ADMIN_WAIT_MS = 30_000
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

type Paging = 'none' | 'anthropic' | 'google'

function pagingOf(provider: ProviderKind): Paging {
  if (provider === 'anthropic') return 'anthropic'
  if (provider === 'google') return 'google'
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
  const paging = pagingOf(target.provider)
  const wait = (ms: number) => Math.max(1, Math.min(ms, ADMIN_WAIT_MS))
  // One agent for this listing: the channel's connect timeout is a dispatcher setting in undici.
  // The first-byte limit is a plain timer per page (fetchPage), as in the dispatcher: undici's
  // headersTimeout runs on its coarse clock, which fires up to ~0.5 s late when idle and later
  // still on a loaded machine (the clock advances by ticks, whatever time passed).
  const agent = new Agent({
    connect: { timeout: wait(target.timeouts.connect) },
    headersTimeout: 0,
    bodyTimeout: wait(target.timeouts.idle),
  })
  const firstByteMs = wait(target.timeouts.firstByte)
  const totalMs = Math.min(wait(target.timeouts.total), wait(options.totalMs ?? ADMIN_WAIT_MS))
  const total = AbortSignal.timeout(totalMs)
  const stop = options.signal ? AbortSignal.any([options.signal, total]) : total
  const mask = (text: string) => (target.apiKey ? text.split(target.apiKey).join('••••') : text)
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
      const answer = await fetchPage(agent, upstream.origin, path, upstream.headers, stop, mask, totalMs, firstByteMs)
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
    agent.destroy().catch(() => {})
  }
  return { ids: [...ids].sort(), truncated, latencyMs: Math.round(performance.now() - started), status }
}

function pageQuery(paging: Paging, cursor: string | null): string {
  if (paging === 'anthropic') return `limit=1000${cursor ? `&after_id=${encodeURIComponent(cursor)}` : ''}`
  if (paging === 'google') return `pageSize=1000${cursor ? `&pageToken=${encodeURIComponent(cursor)}` : ''}`
  return ''
}

function withQuery(path: string, query: string): string {
  if (!query) return path
  return `${path}${path.includes('?') ? '&' : '?'}${query}`
}

async function fetchPage(
  agent: Agent,
  origin: string,
  path: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  mask: (text: string) => string,
  totalMs: number,
  firstByteMs: number
): Promise<{ status: number; body: unknown }> {
  let response: Awaited<ReturnType<typeof request>>
  const firstByte = new AbortController()
  const timer = setTimeout(() => firstByte.abort(), firstByteMs)
  try {
    response = await request(`${origin}${path}`, {
      method: 'GET',
      headers: { accept: 'application/json', ...headers },
      dispatcher: agent,
      signal: AbortSignal.any([signal, firstByte.signal]),
    })
  } catch (error) {
    if (firstByte.signal.aborted && !signal.aborted) throw new UpstreamModelsError(FIRST_BYTE_TIMEOUT)
    throw new UpstreamModelsError(networkFailure(error, signal, totalMs))
  } finally {
    clearTimeout(timer)
  }
  const status = response.statusCode
  let text: string
  try {
    text = await readBounded(response.body)
  } catch (error) {
    if (error instanceof UpstreamModelsError) throw new UpstreamModelsError(error.reason, status)
    throw new UpstreamModelsError(networkFailure(error, signal, totalMs), status)
  }
  if (status >= 300 && status < 400) {
    // Never followed: the key would go wherever the upstream points.
    const location = [response.headers.location].flat()[0]
    const to = location ? ` to ${excerpt(mask(String(location)))}` : ''
    throw new UpstreamModelsError(`upstream answered HTTP ${status}, a redirect${to}, not followed: check the base URL`, status)
  }
  if (status >= 400) {
    throw new UpstreamModelsError(`upstream answered HTTP ${status}: ${excerpt(mask(text))}`, status)
  }
  if (text.trim() === '') {
    throw new UpstreamModelsError(`upstream answered HTTP ${status} with an empty body, not a model list: check the base URL`, status)
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    // A web page (the base URL points at a site, or a proxy's error page) or plain text.
    const type = String(response.headers['content-type'] ?? 'no content type')
    throw new UpstreamModelsError(`upstream answered HTTP ${status} with ${type}, not JSON (check the base URL): ${excerpt(mask(text))}`, status)
  }
  const said = errorIn(body)
  if (said !== null) throw new UpstreamModelsError(`upstream answered HTTP ${status} with an error${said ? `: ${excerpt(mask(said))}` : ''}`, status)
  return { status, body }
}

/**
 * The error an answer carries under a 2xx, or null: `{"error": {...}}` (OpenAI's,
 * Google's and most servers' shape) or `{"error": "..."}`; "" when it says
 * nothing more. Such a body is no list, whatever else it holds.
 */
function errorIn(body: unknown): string | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return null
  const error = (body as Record<string, unknown>).error
  if (typeof error === 'string' && error) return error
  if (error === null || typeof error !== 'object') return null
  const message = (error as Record<string, unknown>).message
  return typeof message === 'string' ? message : ''
}

async function readBounded(body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown }): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > MAX_PAGE_BYTES) {
      body.destroy()
      throw new UpstreamModelsError(`the model list is larger than ${MAX_PAGE_BYTES / 1024 / 1024} MB a page`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

const FIRST_BYTE_TIMEOUT = 'upstream sent no answer in time (first byte timeout)'

function networkFailure(error: unknown, signal: AbortSignal, totalMs: number): string {
  const e = error as { code?: string; name?: string } | null
  if (signal.aborted || e?.name === 'AbortError' || e?.name === 'TimeoutError') return `no answer within ${totalMs} ms`
  if (e?.code === 'UND_ERR_CONNECT_TIMEOUT') return 'upstream unreachable: connect timeout'
  if (e?.code === 'UND_ERR_BODY_TIMEOUT') return 'upstream stopped sending the list (idle timeout)'
  return `upstream unreachable: ${e?.code ?? e?.name ?? 'error'}`
}

/** The start of an upstream's text, on one line. */
function excerpt(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > 300 ? `${line.slice(0, 300)}…` : line || '(empty body)'
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
