import type { TokenUsage } from '#gateway/types'

/**
 * What the gateway believes of a count an upstream reports. Upstreams are
 * remote services (and proxies) that can be buggy or compromised, and their
 * usage numbers become money and database rows:
 *
 * - a count is a non-negative integer: a number, or a string of one ("12",
 *   as some proxies send); anything else (null, "abc", "NaN", a boolean, an
 *   object) counts as absent (0), a fraction is rounded down;
 * - a negative count, or one over MAX_TOKEN_COUNT, makes the whole report
 *   unbelievable (`reportedTokens`): the request is billed on the gateway's
 *   own count instead (estimated). Never a negative cost, which would credit
 *   the balance and lower a key's spend.
 * - whatever reaches the meter is in range (`saneUsage`, the last line for
 *   endpoints that read their answers' usage themselves): negative is 0,
 *   beyond the cap is the cap. A count is at most MAX_TOKEN_COUNT. The usage columns are Postgres
 *   `integer`s (2^31 - 1): a row with a larger value is refused by the meter's
 *   batch and lost. Two capped counts (prompt + completion = total) still fit,
 *   and tokens at the cap times any price below $500,000,000 per 1M tokens
 *   stay within the cost columns' numeric(24,12). A billion tokens is also
 *   some hundred times the largest context window sold today.
 * - the parts are within their whole: cached and cache-written tokens within
 *   the prompt, reasoning tokens within the completion (cache prices and
 *   encoders that subtract them rely on it).
 */
export const MAX_TOKEN_COUNT = 1_000_000_000

/**
 * A count as an upstream's usage report gives it: a non-negative integer
 * (a fraction rounded down, "12" read as 12), 0 for an absent or non-numeric
 * field, and NaN for a count no request can have: negative, or beyond
 * MAX_TOKEN_COUNT. NaN carries through sums; a report holding one is not
 * believed at all (the dialects' decoders return no usage, and the request
 * is billed on the gateway's own count, marked estimated).
 */
export function reportedTokens(value: unknown): number {
  let n: number
  if (typeof value === 'number') n = value
  else if (typeof value === 'string' && value.trim() !== '') n = Number(value)
  else return 0
  if (Number.isNaN(n)) return 0
  if (n < 0 || n > MAX_TOKEN_COUNT) return Number.NaN
  return Math.floor(n)
}

/**
 * A count an upstream reported, as the endpoints that read one field at a
 * time take it (embeddings, rerank, moderations): the count when it is there
 * and believed (reportedTokens), null when absent or not believed (the
 * request is then counted by the gateway instead).
 */
export function reportedCount(value: unknown): number | null {
  if (!holdsCount(value)) return null
  const n = reportedTokens(value)
  return Number.isNaN(n) ? null : n
}

/** Does this field hold a count at all (a number, or a string of one)? A report with none is no report. */
export function holdsCount(value: unknown): boolean {
  return (typeof value === 'number' && !Number.isNaN(value)) || (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value)))
}

/** A count forced into range (the meter's last line: see saneUsage). */
export function tokenCount(value: unknown): number {
  let n: number
  if (typeof value === 'number') n = value
  else if (typeof value === 'string' && value.trim() !== '') n = Number(value)
  else return 0
  if (!(n > 0)) return 0 // NaN and negatives
  return n >= MAX_TOKEN_COUNT ? MAX_TOKEN_COUNT : Math.floor(n)
}

/**
 * The most server-side web searches one request is billed (pricing.ts: a
 * price per search, $0.01 at Anthropic): a model runs a few to a few dozen
 * per turn, so a billion, which a buggy or hostile upstream may report and
 * the token counts' bound lets through, cost the client $10,000,000.
 */
export const MAX_WEB_SEARCHES = 1000

/** usage_records.audio_seconds is numeric(12,3): under a billion seconds, in ms. */
const MAX_AUDIO_MILLIS = 1e12 - 1

/** A count the gateway computed (or an upstream reported) that is already an integer in range. */
function sane(n: number | undefined): boolean {
  return n === undefined || (Number.isInteger(n) && n >= 0 && n <= MAX_TOKEN_COUNT)
}

/**
 * A request's usage as the meter may store and bill it. Called once per
 * request (RequestAccount.close): the usual usage comes back as it is, with
 * no copy; one that breaks a rule above comes back repaired.
 */
export function saneUsage(usage: TokenUsage): TokenUsage {
  if (
    sane(usage.promptTokens) &&
    sane(usage.completionTokens) &&
    usage.totalTokens === usage.promptTokens + usage.completionTokens &&
    sane(usage.cachedTokens) &&
    sane(usage.cacheWriteTokens) &&
    usage.cachedTokens + (usage.cacheWriteTokens ?? 0) <= usage.promptTokens &&
    (usage.cacheWrite1hTokens === undefined || (sane(usage.cacheWrite1hTokens) && usage.cacheWrite1hTokens <= (usage.cacheWriteTokens ?? 0))) &&
    sane(usage.reasoningTokens) &&
    usage.reasoningTokens <= usage.completionTokens &&
    sane(usage.images) &&
    sane(usage.characters) &&
    sane(usage.videoSeconds) &&
    (usage.webSearches === undefined || (Number.isInteger(usage.webSearches) && usage.webSearches >= 0 && usage.webSearches <= MAX_WEB_SEARCHES)) &&
    (usage.audioMillis === undefined || (Number.isInteger(usage.audioMillis) && usage.audioMillis >= 0 && usage.audioMillis <= MAX_AUDIO_MILLIS)) &&
    (usage.requestUnits === undefined || (usage.requestUnits > 0 && usage.requestUnits <= MAX_TOKEN_COUNT))
  ) {
    return usage
  }
  const promptTokens = tokenCount(usage.promptTokens)
  const completionTokens = tokenCount(usage.completionTokens)
  const cachedTokens = Math.min(tokenCount(usage.cachedTokens), promptTokens)
  const repaired: TokenUsage = {
    ...usage,
    promptTokens,
    completionTokens,
    totalTokens: promptTokens + completionTokens,
    cachedTokens,
    reasoningTokens: Math.min(tokenCount(usage.reasoningTokens), completionTokens),
  }
  if (usage.cacheWriteTokens !== undefined) repaired.cacheWriteTokens = Math.min(tokenCount(usage.cacheWriteTokens), promptTokens - cachedTokens)
  if (usage.cacheWrite1hTokens !== undefined) repaired.cacheWrite1hTokens = Math.min(tokenCount(usage.cacheWrite1hTokens), repaired.cacheWriteTokens ?? 0)
  if (usage.images !== undefined) repaired.images = tokenCount(usage.images)
  if (usage.characters !== undefined) repaired.characters = tokenCount(usage.characters)
  if (usage.videoSeconds !== undefined) repaired.videoSeconds = tokenCount(usage.videoSeconds)
  if (usage.webSearches !== undefined) repaired.webSearches = Math.min(tokenCount(usage.webSearches), MAX_WEB_SEARCHES)
  if (usage.audioMillis !== undefined) {
    const ms = Number(usage.audioMillis)
    repaired.audioMillis = ms > 0 ? Math.min(Math.floor(ms), MAX_AUDIO_MILLIS) : 0
  }
  // Units out of range are not believed: the request pays its per-request price once.
  if (usage.requestUnits !== undefined && !(usage.requestUnits > 0 && usage.requestUnits <= MAX_TOKEN_COUNT)) delete repaired.requestUnits
  return repaired
}
