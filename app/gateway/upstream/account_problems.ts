/**
 * Upstream answers that mean the *channel's upstream account* cannot serve
 * anything (out of credit, over its billing quota, billing inactive, the
 * account or organization disabled, the key expired or suspended), as
 * opposed to a bad request (relayed to the client) or a rate limit (a
 * cool-down). The dispatcher fails such an attempt over to the next channel
 * and takes the channel out of rotation, as new-api's automatic channel
 * disabling does (its `ShouldDisableChannel`: codes `account_deactivated`,
 * `billing_not_active`, `Arrearage`, types `insufficient_quota`, and the
 * keywords of `AutomaticDisableKeywords`).
 *
 * Only 4xx answers are looked at, and only on the error path (nothing here
 * runs for a successful request). The rules are data: each names what it
 * matches and where that answer was seen.
 *
 * Messages are matched at their start only (a provider's own sentence), not
 * anywhere: a 400 that quotes the client's prompt back ("Invalid value for
 * 'messages[0]': 'Your credit balance is too low...'") must not let a client
 * disable the operator's channels. Codes are matched exactly.
 */

export interface AccountProblemRule {
  /** What the disable reason and the attempt's record call it */
  name: string
  /** HTTP statuses it applies to (any 4xx but 404 when absent) */
  statuses?: number[]
  /** Exact values (lowercase) of error.code, error.type, Google's error.status or a details[].reason */
  codes?: string[]
  /** Google's error.status the answer must carry too (with `message`) */
  googleStatus?: string
  /** The error message: tested as written (anchored rules start with ^) */
  message?: RegExp
}

export const ACCOUNT_PROBLEM_RULES: AccountProblemRule[] = [
  // HTTP 402 Payment Required says so whoever sends it. OpenRouter: 402 {"error":{"code":402,"message":
  // "Insufficient credits..."}} (also "This request requires more credits... can only afford N");
  // DeepSeek: 402 "Insufficient Balance" (its error-code table); a new-api or one-api upstream's 402s.
  { name: 'payment required', statuses: [402] },
  // OpenAI: 429 {"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded
  // your current quota, please check your plan and billing details..."}} - a billing limit, not a rate
  // limit (no wait ends it). By code only: Gemini's per-day 429 RESOURCE_EXHAUSTED says "You exceeded
  // your current quota" too, and that one is a rate limit. new-api: type insufficient_quota.
  { name: 'insufficient_quota', codes: ['insufficient_quota'] },
  // OpenAI: 429 {"type":"billing_not_active","code":"billing_not_active","message":"Your account is not
  // active, please check your billing details on our website."} (BerriAI/litellm#2743). new-api: code.
  { name: 'billing_not_active', codes: ['billing_not_active'] },
  // OpenAI: 401 code account_deactivated "Your OpenAI account has been deactivated..." (new-api: code);
  // access_terminated: an account banned for policy violations (oai-reverse-proxy's key checker).
  { name: 'account_deactivated', codes: ['account_deactivated', 'access_terminated'] },
  // Alibaba DashScope (OpenAI-compatible): 400 code "Arrearage", "Access denied, please make sure your
  // account is in good standing." new-api: code Arrearage.
  { name: 'account in arrears', codes: ['arrearage'] },
  // A new-api / one-api upstream (a reseller the operator buys from): the operator's account or token
  // there is out of quota: type insufficient_user_quota, code pre_consume_token_quota_failed (new-api: both).
  { name: 'upstream account out of quota', codes: ['insufficient_user_quota', 'pre_consume_token_quota_failed'] },
  // Anthropic: 400 {"type":"invalid_request_error","message":"Your credit balance is too low to access
  // the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}
  // (anthropics/claude-code#4684). new-api keyword "Your credit balance is too low".
  { name: 'credit balance too low', message: /^\s*your credit balance is too low/i },
  // Anthropic: 400 invalid_request_error "This organization has been disabled." (anthropics/claude-code
  // #54311; also seen as 403). new-api keyword "This organization has been disabled.".
  { name: 'organization disabled', message: /^\s*(this|your) organization has been disabled/i },
  // Gemini: 400 FAILED_PRECONDITION "Gemini API free tier is not available in your country. Please enable
  // billing on your project in Google AI Studio." and "User location is not supported for the API use
  // without a billing account linked." (u14app/neo-chat#45, EvanZhouDev/gemini-ai#16).
  { name: 'billing required', googleStatus: 'FAILED_PRECONDITION', message: /billing/i },
  // Gemini: 400 INVALID_ARGUMENT "API key expired. Please renew the API key." and "API key not valid.",
  // both with details[].reason API_KEY_INVALID (continuedev/continue#9655): the key is dead, as a 401.
  { name: 'API key invalid or expired', codes: ['api_key_invalid'] },
  // Gemini: 403 PERMISSION_DENIED "Permission denied: Consumer 'api_key:...' has been suspended." with
  // details[].reason CONSUMER_SUSPENDED; and "Your API key was reported as leaked. Please use another API key."
  { name: 'key suspended', codes: ['consumer_suspended'] },
  { name: 'key reported as leaked', statuses: [403], message: /^\s*your api key was reported as leaked/i },
]

/**
 * The operator's extra phrases (app_settings key below; new-api's
 * AutomaticDisableKeywords): set on the Settings page, cached by the
 * catalog (reloaded on the setting's NOTIFY), read only on the error path.
 */
export const ACCOUNT_KEYWORDS_SETTING = 'account_problem_keywords'
export const ACCOUNT_KEYWORD_LIMITS = { entries: 50, minLength: 4, maxLength: 200 }

/** A stored (or typed) list as the matcher takes it: trimmed, lowercase, no blanks or repeats. */
export function accountKeywordsOf(value: unknown): string[] {
  const lines = typeof value === 'string' ? value.split(/\r?\n/) : Array.isArray(value) ? value : []
  const keywords: string[] = []
  for (const line of lines) {
    if (typeof line !== 'string') continue
    const keyword = line.trim().toLowerCase()
    if (keyword && !keywords.includes(keyword)) keywords.push(keyword)
  }
  return keywords
}

/** How the dispatcher's disabled reason for an account problem begins (the key check reads it back). */
export const ACCOUNT_PROBLEM_REASON = 'upstream account problem'

/** The channel was disabled for its upstream account (credit, billing, deactivated), not for its key. */
export function disabledForAccount(reason: string | null | undefined): boolean {
  return typeof reason === 'string' && reason.startsWith(ACCOUNT_PROBLEM_REASON)
}

/** What the rules look at in an upstream's error body. */
interface ErrorFacts {
  codes: Set<string>
  googleStatus: string | null
  message: string
}

/** The statuses an account problem can come with (404 is a wrong URL or model; 5xx are the channel's failures). */
function couldBeAccountProblem(status: number): boolean {
  return status >= 400 && status < 500 && status !== 404
}

/**
 * The rule (its name) an upstream's 4xx answer matches, or null. `keywords`:
 * the operator's extra phrases (lowercase), matched anywhere in the message
 * as new-api's AutomaticDisableKeywords are (the operator's choice, quotes
 * of the client's prompt included).
 */
export function accountProblem(status: number, body: Buffer | string, keywords: readonly string[] = []): string | null {
  if (!couldBeAccountProblem(status)) return null
  const facts = readFacts(body)
  for (const rule of ACCOUNT_PROBLEM_RULES) {
    if (rule.statuses && !rule.statuses.includes(status)) continue
    if (rule.codes && !rule.codes.some((code) => facts.codes.has(code))) continue
    if (rule.googleStatus && facts.googleStatus !== rule.googleStatus) continue
    if (rule.message && !rule.message.test(facts.message)) continue
    return rule.name
  }
  if (keywords.length > 0) {
    const message = facts.message.toLowerCase()
    const keyword = keywords.find((k) => message.includes(k))
    if (keyword !== undefined) return `keyword "${keyword}"`
  }
  return null
}

/**
 * OpenRouter's 402 for one request too costly for the credit left ("This
 * request requires more credits, or fewer max_tokens. You requested up to
 * 16384 tokens, but can only afford 5017."): the account still serves
 * smaller requests, so the attempt fails over but the channel stays in
 * rotation (disabled, one client's large max_tokens would have taken it
 * away from every client).
 */
const REQUEST_OVER_CREDIT = /^\s*this request requires more credits|\bcan only afford \d+/i

export function requestOverCredit(status: number, body: Buffer | string): boolean {
  return status === 402 && REQUEST_OVER_CREDIT.test(readFacts(body).message)
}

function readFacts(body: Buffer | string): ErrorFacts {
  const text = typeof body === 'string' ? body : body.toString('utf8')
  const codes = new Set<string>()
  let googleStatus: string | null = null
  let message = ''
  let parsed: any
  try {
    parsed = JSON.parse(text)
  } catch {
    // Not JSON (a proxy's text or page): only its words count.
    return { codes, googleStatus, message: text.slice(0, 1000) }
  }
  // Gemini's REST errors sometimes come as a one-element array.
  const detail = Array.isArray(parsed) ? parsed[0] : parsed
  // OpenAI, Anthropic and Google nest under `error`; some compatible servers answer {message, code} flat.
  const error = detail?.error !== null && typeof detail?.error === 'object' ? detail.error : detail
  if (error === null || typeof error !== 'object') return { codes, googleStatus, message: typeof error === 'string' ? error : '' }
  for (const value of [error.code, error.type]) {
    if (typeof value === 'string') codes.add(value.toLowerCase())
  }
  if (typeof error.status === 'string') {
    googleStatus = error.status
    codes.add(error.status.toLowerCase())
  }
  if (Array.isArray(error.details)) {
    for (const item of error.details) {
      if (typeof item?.reason === 'string') codes.add(item.reason.toLowerCase())
    }
  }
  if (typeof error.message === 'string') message = error.message
  else if (typeof detail?.error === 'string') message = detail.error
  return { codes, googleStatus, message }
}
