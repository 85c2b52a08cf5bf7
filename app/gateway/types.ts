import type { ModelLimits } from '#gateway/limits/model_limits'
import type { TeamPolicy } from '#gateway/teams/team_policies'
import type { OrgPolicy } from '#gateway/teams/organization_policies'
import type { MemberPolicy } from '#gateway/teams/member_policies'
import type { BlockList } from 'node:net'
import type { SpendPeriod } from '#gateway/metering/spend_period'
/**
 * The shapes the hot path works with: immutable snapshots of configuration
 * rows, built once per change, never per request.
 */
export type ProviderKind =
  | 'openai'
  | 'openrouter'
  | 'deepseek'
  | 'zai'
  | 'gemini'
  | 'anthropic'
  | 'google'
  | 'azure'
  | 'bedrock'
  | 'vertex'
  | 'custom'

export const PROVIDER_KINDS: readonly ProviderKind[] = [
  'openai',
  'openrouter',
  'deepseek',
  'zai',
  'gemini',
  'anthropic',
  'google',
  'azure',
  'bedrock',
  'vertex',
  'custom',
]

export interface PlanInfo {
  id: number
  name: string
  monthlyInputTokens: number | null
  monthlyOutputTokens: number | null
  allowedModels: string[]
  rpm: number | null
  tpm: number | null
  /** Price multiplier over 10^4 (8000n = 0.8x list prices); null = list prices */
  priceRatio: bigint | null
  /** The list prices scaled by priceRatio, made on first use (see pricing.ts priceForPlan) */
  scaledPrices: WeakMap<PriceInfo, PriceInfo>
}

export interface ChannelInfo {
  id: number
  name: string
  provider: ProviderKind
  baseUrl: string
  apiKey: string | null
  /** A key is stored but this APP_KEY cannot read it: out of rotation (app_key_check.ts) */
  keyUnreadable?: boolean
  models: string[]
  modelMapping: Record<string, string>
  extraHeaders: Record<string, string>
  priority: number
  weight: number
  enabled: boolean
  disabledReason: string | null
  timeouts: ChannelTimeouts
  /** The plans the channel is open to (channel groups); null or absent = every plan, and users without one */
  planIds?: readonly number[] | null
}

/** Per-channel upstream timeouts, ms (defaults filled in by the catalog) */
export interface ChannelTimeouts {
  connect: number
  firstByte: number
  idle: number
  total: number
}

export interface PriceInfo {
  pattern: string
  /** pico-USD per token */
  inputPico: bigint
  outputPico: bigint
  /** pico-USD per generated image (images.generations); 0 when not priced per image */
  perImagePico?: bigint
  /** pico-USD per second of input audio (transcriptions, translations); 0 when not priced so */
  perSecondPico?: bigint
  /** pico-USD per input character (speech); 0 when not priced so */
  perCharacterPico?: bigint
  /**
   * pico-USD per request that succeeded (new-api's per-call price), times the
   * usage's requestUnits; 0 or undefined when not priced per request
   */
  perRequestPico?: bigint
  /** pico-USD per server-side web search (Anthropic's web_search tool, OpenAI's web_search_call); 0 or undefined when not priced so */
  perWebSearchPico?: bigint
  /** pico-USD per second of generated video (Sora, Veo); 0 or undefined when not priced so */
  perVideoSecondPico?: bigint
  /** pico-USD per prompt token read from / written to the provider's cache; undefined = the input price */
  cacheReadPico?: bigint
  cacheWritePico?: bigint
  /** pico-USD per prompt token written to Anthropic's one-hour cache; undefined = the cache-write price */
  cacheWrite1hPico?: bigint
  /** pico-USD per audio input / output token (realtime); undefined = the input / output price */
  audioInputPico?: bigint
  audioOutputPico?: bigint
  /** pico-USD per image output token (Gemini's image models); undefined = the output price */
  imageOutputPico?: bigint
  specificity: number
}

export interface KeyInfo {
  id: number
  userId: number
  name: string
  allowedModels: string[] | null
  /** epoch ms, or null */
  expiresAt: number | null
  /** Revoked, or blocked for now: refused either way (one test on the request path) */
  revoked: boolean
  /** Blocked (LiteLLM's /key/block), not revoked: read only to word the refusal */
  blocked?: boolean
  rpm: number | null
  tpm: number | null
  /** rpm/tpm of its own per model asked for (limits/model_limits.ts); null = none (one test per request) */
  modelLimits: ModelLimits | null
  /** Requests in flight at once through this key in this process; null = no cap (limits/parallel_requests.ts) */
  maxParallel: number | null
  /** pico-USD; null = no cap */
  spendLimitPico: bigint | null
  /** pico-USD: crossing it alerts (metering/budget_watch.ts), never refuses; null = none */
  softBudgetPico: bigint | null
  /**
   * pico-USD the spend cap counts: spent through this key (in the current
   * period when the cap resets), including charges not yet committed
   */
  spentPico: bigint
  /** The cap resets each UTC day, week or month; null = the key's whole life */
  spendPeriod: SpendPeriod | null
  /** epoch ms when the current period began (-Infinity without a period): see spend_period.ts */
  periodStartsAt: number
  /** epoch ms when the current period ends (Infinity without a period): see spend_period.ts */
  periodEndsAt: number
  /** May call the management API (/api/admin), with an admin owner */
  manage: boolean
  /**
   * The addresses the key may be used from, compiled once per snapshot
   * (auth/ip_allowlist.ts); null = any address (one comparison per request)
   */
  allowedIps: BlockList | null
  /** The key's team (api_keys.team_id), whose budget, models, limits and block apply too; null = none */
  teamId: number | null
}

export interface UserState {
  id: number
  role: 'admin' | 'user'
  planId: number | null
  /** Disabled by an admin: every key of the user is refused */
  disabled: boolean
  /** Balance including charges not yet flushed to the database */
  balancePico: bigint
  /** Held by requests in flight against priced models (settled when they end) */
  reservedPico: bigint
  /** The user's low-balance e-mail threshold (null: off; low_balance_notice.ts reads it after a batch commits) */
  lowBalancePico: bigint | null
  /** The notice for the current dip below it was sent (users.low_balance_notified as last read or set) */
  lowBalanceNotified: boolean
  /** 'YYYY-MM-01' of the counters below */
  period: string
  inputTokens: number
  outputTokens: number
  /**
   * This month's tokens held by requests in flight, when the plan limits them
   * (settled when they end): the monthly limits count them as used, as the
   * balance counts reservedPico, so concurrent requests see each other.
   */
  reservedInputTokens: number
  reservedOutputTokens: number
  loadedAt: number
}

/** Who is calling: the resolved key and its owner. */
export interface Principal {
  key: KeyInfo
  user: UserState
  plan: PlanInfo | null
  /** The key's team (teams/team_policies.ts); null for a key in none, the usual case */
  team: TeamPolicy | null
  /**
   * The team's organization when the key was resolved (TeamPolicy.org, taken
   * once: the request's hold is released and its row billed on this one even
   * if the team moves meanwhile); null for a key in no team or a team in none
   */
  org: OrgPolicy | null
  /**
   * The key owner's limits inside the team (TeamPolicy.members: a member
   * budget, rpm/tpm), taken once as the organization is; null for a key in no
   * team or whose owner has none there, the usual case
   */
  member: MemberPolicy | null
}

export interface TokenUsage {
  promptTokens: number
  completionTokens: number
  totalTokens: number
  /** Prompt tokens read from the provider's cache (included in promptTokens) */
  cachedTokens: number
  reasoningTokens: number
  /** Prompt tokens written to the provider's cache (Anthropic cache_creation; included in promptTokens) */
  cacheWriteTokens?: number
  /** Of the cache writes, those to Anthropic's one-hour cache (its own price) */
  cacheWrite1hTokens?: number
  /** Images generated (priced per image) */
  images?: number
  /** Milliseconds of input audio (transcriptions, translations; priced per second) */
  audioMillis?: number
  /** Characters of input (speech; priced per character) */
  characters?: number
  /** Seconds of video generated (the Videos API, Veo; priced per video second) */
  videoSeconds?: number
  /** Audio tokens among the prompt tokens (the Realtime API's), cached ones included */
  audioPromptTokens?: number
  /** Audio tokens among the cached prompt tokens */
  cachedAudioTokens?: number
  /** Audio tokens among the completion tokens */
  audioCompletionTokens?: number
  /** Image tokens among the completion tokens (the images Gemini's image models make) */
  imageCompletionTokens?: number
  /** Server-side web searches the provider ran and bills apart (Anthropic's server_tool_use, OpenAI's web_search_call items) */
  webSearches?: number
  /** Units of the per-request price (Cohere's rerank search units); absent = 1 */
  requestUnits?: number
  /** Counted by the gateway's tokenizer rather than reported by the upstream */
  estimated: boolean
}

export const ZERO_USAGE: Readonly<TokenUsage> = Object.freeze({
  promptTokens: 0,
  completionTokens: 0,
  totalTokens: 0,
  cachedTokens: 0,
  reasoningTokens: 0,
  estimated: false,
})

/** 'YYYY-MM-01' of the current UTC month */
let cachedPeriod = ''
let cachedUntil = 0

/** 'YYYY-MM-01' of the current UTC month (memoised until the month ends: it is read on every request) */
export function currentPeriod(now?: Date): string {
  if (now) return periodOf(now)
  const ms = Date.now()
  if (ms >= cachedUntil) {
    const date = new Date(ms)
    cachedPeriod = periodOf(date)
    cachedUntil = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1)
  }
  return cachedPeriod
}

function periodOf(date: Date): string {
  return `${date.getUTCFullYear()}-${String(date.getUTCMonth() + 1).padStart(2, '0')}-01`
}
