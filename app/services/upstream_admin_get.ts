import { Agent, request } from 'undici'
import type { ChannelTimeouts } from '#gateway/types'

/**
 * One JSON GET an admin waits on, made with a channel's key outside the
 * request path: Fetch models and the key check (upstream_model_list.ts), the
 * upstream balance (upstream_balance.ts). Bounded by the channel's timeouts,
 * each capped at ADMIN_WAIT_MS, and by the size of the answer. Whatever goes
 * wrong is thrown as the caller's own error (`failure(reason, status)`), with
 * a reason fit to show an admin: the key and the extra headers' values
 * masked out of any upstream text
 * quoted, a redirect never followed (the key would go wherever it points), a
 * 2xx that is no JSON, is empty, or carries an error refused.
 */

/** No wait of an admin's call is longer than this, whatever the channel allows a generation */
export const ADMIN_WAIT_MS = 30_000

export interface AdminGetTarget {
  apiKey: string | null
  /** The channel's extra headers: their values are credentials too (write-only, as the key), masked as it is */
  extraHeaders?: Record<string, string>
  timeouts: ChannelTimeouts
}

/** Shorter extra-header values are no secrets (a version, a flag) and would mangle ordinary words (as channel_secrets.ts) */
const SHORTEST_SECRET = 8

export interface AdminGetOptions {
  /** What is asked for, in the reasons ("model list", "balance") */
  what: string
  /** Largest answer read (bytes) */
  maxBytes: number
  /** How the bound reads in the reason (default: the size, "16 MB") */
  maxBytesLabel?: string
  /** Makes the caller's error of a reason and the upstream's status (null: none came) */
  failure: (reason: string, status: number | null) => Error
  /** Ends the calls early (the caller's own limit or a client gone) */
  signal?: AbortSignal
  /** The whole session's limit when shorter than the channel's total timeout (ms) */
  totalMs?: number
}

/**
 * A session of GETs to one upstream (a paged list is several): one agent,
 * the channel's timeouts. `close()` when done.
 */
export class AdminGetSession {
  #agent: Agent
  #firstByteMs: number
  #totalMs: number
  #stop: AbortSignal
  #mask: (text: string) => string

  constructor(
    target: AdminGetTarget,
    private options: AdminGetOptions
  ) {
    const wait = (ms: number) => Math.max(1, Math.min(ms, ADMIN_WAIT_MS))
    // One agent: the channel's connect timeout is a dispatcher setting in undici. The first-byte
    // limit is a plain timer per call, as in the dispatcher: undici's headersTimeout runs on its
    // coarse clock, which fires up to ~0.5 s late when idle and later still on a loaded machine.
    this.#agent = new Agent({
      connect: { timeout: wait(target.timeouts.connect) },
      headersTimeout: 0,
      bodyTimeout: wait(target.timeouts.idle),
    })
    this.#firstByteMs = wait(target.timeouts.firstByte)
    this.#totalMs = Math.min(wait(target.timeouts.total), wait(options.totalMs ?? ADMIN_WAIT_MS))
    const total = AbortSignal.timeout(this.#totalMs)
    this.#stop = options.signal ? AbortSignal.any([options.signal, total]) : total
    // Longest first: a value that contains another is masked whole.
    const secrets = [...new Set([target.apiKey ?? '', ...Object.values(target.extraHeaders ?? {}).filter((v) => v.length >= SHORTEST_SECRET)])]
      .filter(Boolean)
      .sort((a, b) => b.length - a.length)
    this.#mask = (text: string) => {
      for (const secret of secrets) if (text.includes(secret)) text = text.split(secret).join('••••')
      return text
    }
  }

  /** The key and the extra headers' values masked out of an upstream's text */
  mask(text: string): string {
    return this.#mask(text)
  }

  close() {
    this.#agent.destroy().catch(() => {})
  }

  async getJson(url: string, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
    const { what, failure } = this.options
    const signal = this.#stop
    let response: Awaited<ReturnType<typeof request>>
    const firstByte = new AbortController()
    const timer = setTimeout(() => firstByte.abort(), this.#firstByteMs)
    try {
      response = await request(url, {
        method: 'GET',
        headers: { accept: 'application/json', ...headers },
        dispatcher: this.#agent,
        signal: AbortSignal.any([signal, firstByte.signal]),
      })
    } catch (error) {
      if (firstByte.signal.aborted && !signal.aborted) throw failure(FIRST_BYTE_TIMEOUT, null)
      throw failure(this.#networkFailure(error), null)
    } finally {
      clearTimeout(timer)
    }
    const status = response.statusCode
    let text: string
    try {
      text = await this.#readBounded(response.body)
    } catch (error) {
      throw failure(error instanceof TooLarge ? error.message : this.#networkFailure(error), status)
    }
    const mask = this.#mask
    if (status >= 300 && status < 400) {
      const location = [response.headers.location].flat()[0]
      const to = location ? ` to ${excerpt(mask(String(location)))}` : ''
      throw failure(`upstream answered HTTP ${status}, a redirect${to}, not followed: check the base URL`, status)
    }
    if (status >= 400) throw failure(`upstream answered HTTP ${status}: ${excerpt(mask(text))}`, status)
    if (text.trim() === '') throw failure(`upstream answered HTTP ${status} with an empty body, not a ${what}: check the base URL`, status)
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      // A web page (the base URL points at a site, or a proxy's error page) or plain text.
      const type = String(response.headers['content-type'] ?? 'no content type')
      throw failure(`upstream answered HTTP ${status} with ${type}, not JSON (check the base URL): ${excerpt(mask(text))}`, status)
    }
    const said = errorIn(body)
    if (said !== null) throw failure(`upstream answered HTTP ${status} with an error${said ? `: ${excerpt(mask(said))}` : ''}`, status)
    return { status, body }
  }

  async #readBounded(body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown }): Promise<string> {
    const { maxBytes, what, maxBytesLabel } = this.options
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of body) {
      size += chunk.length
      if (size > maxBytes) {
        body.destroy()
        throw new TooLarge(`the ${what} is larger than ${maxBytesLabel ?? formatBytes(maxBytes)}`)
      }
      chunks.push(chunk)
    }
    return Buffer.concat(chunks).toString('utf8')
  }

  #networkFailure(error: unknown): string {
    const e = error as { code?: string; name?: string } | null
    if (this.#stop.aborted || e?.name === 'AbortError' || e?.name === 'TimeoutError') return `no answer within ${this.#totalMs} ms`
    if (e?.code === 'UND_ERR_CONNECT_TIMEOUT') return 'upstream unreachable: connect timeout'
    if (e?.code === 'UND_ERR_BODY_TIMEOUT') return `upstream stopped sending the ${this.options.what} (idle timeout)`
    return `upstream unreachable: ${e?.code ?? e?.name ?? 'error'}`
  }
}

class TooLarge extends Error {}

const FIRST_BYTE_TIMEOUT = 'upstream sent no answer in time (first byte timeout)'

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / 1024 / 1024} MB` : `${Math.round(bytes / 1024)} KB`
}

/**
 * The error an answer carries under a 2xx, or null: `{"error": {...}}` (OpenAI's,
 * Google's and most servers' shape) or `{"error": "..."}`; "" when it says
 * nothing more. Such a body is no answer, whatever else it holds.
 */
function errorIn(body: unknown): string | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return null
  const error = (body as Record<string, unknown>).error
  if (typeof error === 'string' && error) return error
  if (error === null || typeof error !== 'object') return null
  const message = (error as Record<string, unknown>).message
  return typeof message === 'string' ? message : ''
}

/**
 * The start of an upstream's text, on one line. Other control characters
 * become U+FFFD: a NUL would make Postgres refuse the row that keeps the
 * reason (a balance check's `error`), and the admin would get a 400 for it.
 */
export function excerpt(text: string): string {
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/\s+/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '\uFFFD').trim()
  return line.length > 300 ? `${line.slice(0, 300)}…` : line || '(empty body)'
}
