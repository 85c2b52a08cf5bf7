import type { ChannelTestRow } from '#actions/test_all_channels'

/**
 * Test all's results carried across its redirect in the session flash
 * (post/redirect/get: refreshing the list shows them again instead of
 * running every test again, which costs a generation per channel). The
 * session is a cookie, which a browser drops whole past 4 KB, so the
 * results travel compact and within FLASH_BUDGET bytes: each channel's
 * outcome, latency, status and flags, and its failure's message (each
 * distinct one once), cut when needed to share what is left (the list shows
 * 160 characters of it; the channel's page and its Last error keep the
 * rest). Past the budget even without messages
 * (hundreds of channels), the passes go first, then the last failures; the
 * counts stay exact and the page says how many results were not kept.
 */

/** One channel's result as the list shows it */
export interface TestAllResult {
  ok: boolean
  /** Checked by listing the upstream's models (no model to generate with) */
  keyCheck: boolean
  latencyMs: number
  status: number | null
  message: string
  reEnabled: boolean
  skipped: boolean
}

export interface TestAllSummary {
  tested: number
  passed: number
  failed: number
  reEnabled: number
  /** Results not kept for want of room (their channels show "no result kept") */
  notKept: number
  results: Map<number, TestAllResult>
}

/** [channel id, flags (OK | KEY_CHECK | RE_ENABLED | SKIPPED), latency ms, status (0: none), message index (-1: none)] */
type Packed = [number, number, number, number, number]

interface TestAllFlash {
  counts: [tested: number, passed: number, reEnabled: number]
  rows: Packed[]
  /** Each distinct failure message once (channels failing alike, e.g. one unreachable host, share one) */
  messages: string[]
}

export const FLASH_KEY = 'testAll'
/** Bytes of JSON at most: about 2.7 KB once encrypted, leaving room for the rest of the session */
export const FLASH_BUDGET = 2000
/** What the list shows of a failure's message */
export const MESSAGE_CHARS = 160

const OK = 1
const KEY_CHECK = 2
const RE_ENABLED = 4
const SKIPPED = 8

const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value))

/** The flash value for a run's rows, within FLASH_BUDGET. */
export function packTestAll(rows: ChannelTestRow[]): TestAllFlash {
  const counts: TestAllFlash['counts'] = [rows.length, rows.filter((r) => r.ok).length, rows.filter((r) => r.reEnabled).length]
  // Failures first: when rows must go, passes (which show no message) go before them.
  const ordered = [...rows.filter((r) => !r.ok), ...rows.filter((r) => r.ok)]
  const pack = (limit: number): TestAllFlash => {
    const messages: string[] = []
    const indexOf = new Map<string, number>()
    const packed: Packed[] = ordered.map((r) => {
      let index = -1
      if (!r.ok && limit > 0) {
        const message = cut(r.message, limit)
        index = indexOf.get(message) ?? messages.push(message) - 1
        indexOf.set(message, index)
      }
      const flags = (r.ok ? OK : 0) | (r.model === null ? KEY_CHECK : 0) | (r.reEnabled ? RE_ENABLED : 0) | (r.skipped ? SKIPPED : 0)
      return [r.channelId, flags, r.latencyMs, r.status ?? 0, index]
    })
    return { counts, rows: packed, messages }
  }
  // The longest cut of the messages that fits (all 160 characters in the usual case).
  let flash = pack(MESSAGE_CHARS)
  if (size(flash) > FLASH_BUDGET) {
    let [fits, tooLong] = [0, MESSAGE_CHARS]
    while (tooLong - fits > 1) {
      const middle = Math.floor((fits + tooLong) / 2)
      if (size(pack(middle)) <= FLASH_BUDGET) fits = middle
      else tooLong = middle
    }
    flash = pack(fits)
  }
  while (flash.rows.length && size(flash) > FLASH_BUDGET) flash.rows.pop()
  return flash
}

/** The flash value read back for the list; null when there is none (or it is not one of ours). */
export function unpackTestAll(value: unknown): TestAllSummary | null {
  const flash = value as TestAllFlash | null
  if (!flash || !Array.isArray(flash.counts) || !Array.isArray(flash.rows) || !Array.isArray(flash.messages)) return null
  const [tested, passed, reEnabled] = flash.counts.map(Number)
  const results = new Map<number, TestAllResult>()
  for (const [id, flags, latencyMs, status, message] of flash.rows) {
    results.set(Number(id), {
      ok: (flags & OK) !== 0,
      keyCheck: (flags & KEY_CHECK) !== 0,
      latencyMs: Number(latencyMs),
      status: Number(status) || null,
      message: String(flash.messages[message] ?? ''),
      reEnabled: (flags & RE_ENABLED) !== 0,
      skipped: (flags & SKIPPED) !== 0,
    })
  }
  return { tested, passed, failed: tested - passed, reEnabled, notKept: tested - results.size, results }
}

function cut(text: string, limit: number) {
  if (limit <= 0) return ''
  return text.length > limit ? `${text.slice(0, limit)}…` : text
}
