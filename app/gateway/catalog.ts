import { NO_METER_WRITES, readSettled, type MeterWrites } from '#gateway/metering/settled_read'
import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import { UNREADABLE_KEY_REASON } from '#services/app_key_check'
import { globMatches, globSpecificity, isGlob } from '#gateway/glob'
import { parseModelSuffix } from '#gateway/routing/model_suffix'
import { ACCOUNT_KEYWORDS_SETTING, accountKeywordsOf } from '#gateway/upstream/account_problems'
import { rememberBounded } from '#gateway/bounded_memo'
import { compileIpAllowlist } from '#gateway/auth/ip_allowlist'
import { WORD_FILTER_SETTING, WordFilter, wordFilterSettingsOf } from '#gateway/content_filter/word_filter'
import { DEFAULT_TIMEOUTS } from '#gateway/upstream/timeouts'
import { poolKey, retirePoolsExcept } from '#gateway/upstream/upstream_pool'
import { baseOf } from '#gateway/providers/provider_adapter'
import { pricePerTokenPico, toPico } from '#gateway/metering/money'
import { priceRatioOf } from '#gateway/metering/pricing'
import { hasModelBudget, modelLimitsFromRow } from '#gateway/limits/model_limits'
import type { ModelSpendRow } from '#gateway/limits/model_budgets'
import { isSpendPeriod, periodBounds, addSpendInPeriod } from '#gateway/metering/spend_period'
import { EndUserPolicies } from '#gateway/end_users/end_user_policies'
import { TeamPolicies } from '#gateway/teams/team_policies'
import { SharedReload } from '#gateway/shared_reload'
import {
  currentPeriod,
  type ChannelInfo,
  type KeyInfo,
  type PlanInfo,
  type PriceInfo,
  type ProviderKind,
  type UserState,
} from '#gateway/types'

/**
 * What is metered but not yet committed (the meter provides it): the caches
 * add it to what they read from the database, so a reload loses none of it.
 */
export interface PendingSource extends MeterWrites {
  pendingFor(userId: number): { costPico: bigint; input: number; output: number }
  /** Cost through the key of calls begun at or after `sinceMs` (-Infinity: all) */
  pendingKeyCost(keyId: number, sinceMs: number): bigint
  /** Cost of an owner's end user of calls begun at or after `sinceMs` */
  pendingEndUserCost(userId: number, endUser: string, sinceMs: number): bigint
  /** Cost through a team's keys of calls begun at or after `sinceMs` */
  pendingTeamCost(teamId: number, sinceMs: number): bigint
  /** Cost admitted under an organization of calls begun at or after `sinceMs` */
  pendingOrgCost(orgId: number, sinceMs: number): bigint
  /** Cost admitted under a member's limits in a team (MemberPolicy.id) of calls begun at or after `sinceMs` */
  pendingMemberCost(memberId: string, sinceMs: number): bigint
  /** Cost on a key's budget for a model (`${keyId} ${model}`) of calls begun at or after `sinceMs` */
  pendingModelBudgetCost(id: string, sinceMs: number): bigint
}

const NOTHING_PENDING: PendingSource = {
  pendingFor: () => ({ costPico: 0n, input: 0, output: 0 }),
  pendingKeyCost: () => 0n,
  pendingEndUserCost: () => 0n,
  pendingTeamCost: () => 0n,
  pendingOrgCost: () => 0n,
  pendingMemberCost: () => 0n,
  pendingModelBudgetCost: () => 0n,
  ...NO_METER_WRITES,
}

/**
 * Which of the prices (or fallback lists) whose globs match a model applies: the most specific
 * (most literal characters; an exact name beats any glob), and between two
 * as specific (`gpt-*` and `*-4o` for gpt-4o) the pattern first in code-point
 * order. The table's row order is no rule: an edit moves the edited row last,
 * which flipped a tie to the other price.
 */
function byPrecedence(a: { pattern: string; specificity: number }, b: { pattern: string; specificity: number }): number {
  if (a.specificity !== b.specificity) return b.specificity - a.specificity
  return a.pattern < b.pattern ? -1 : a.pattern > b.pattern ? 1 : 0
}

/** A channel's plan set as the router reads it: null (every plan) for NULL or empty; bigint[] comes as strings. */
export function planIdsOf(value: unknown): number[] | null {
  if (!Array.isArray(value) || value.length === 0) return null
  return value.map(Number)
}

/** A user's cached state: the row and this month's tokens (parameters: period, user id) */
const USER_STATE_SQL = `
  SELECT u.id, u.role, u.plan_id, u.balance, u.disabled_at IS NOT NULL AS disabled,
         u.low_balance_threshold, u.low_balance_notified,
         COALESCE(SUM(m.input_tokens), 0) AS input_tokens,
         COALESCE(SUM(m.output_tokens), 0) AS output_tokens
    FROM users u
    LEFT JOIN monthly_usage m ON m.user_id = u.id AND m.period = ?
   WHERE u.id = ?
   GROUP BY u.id`

const USER_TTL_MS = 15_000
const KEY_TTL_MS = 60_000
/**
 * Unknown key hashes remembered (a client retrying a bad key costs no read),
 * oldest forgotten first. They live apart from the real keys: a flood of
 * random keys only ever pushes out other random keys.
 */
const UNKNOWN_KEY_LIMIT = 10_000
/** A plan id users name that a read did not find is read for at most this often (unheardPlan) */
const UNKNOWN_PLAN_RECHECK_MS = 1_000
/** Unknown plan ids remembered (only a deleted plan a cached user still names: few) */
const UNKNOWN_PLAN_LIMIT = 1_000
const NO_FALLBACKS: readonly string[] = Object.freeze([])
/** Model names whose price and fallbacks are remembered (client-chosen names: bounded, oldest forgotten first) */
const MODEL_MEMO_LIMIT = 10_000

interface CachedKey {
  info: KeyInfo
  loadedAt: number
}

/**
 * In-memory view of everything the hot path needs from the database: plans,
 * channels, prices (loaded whole), keys and users (loaded on first use).
 * Kept fresh by Postgres NOTIFY (see change_listener.ts) with a short TTL as a
 * fallback, so a request never waits on a configuration read after warm-up.
 */
export class Catalog {
  plans = new Map<number, PlanInfo>()
  /** Reads of the plans table on notices and misses: shared, and one asked for during a read gets one more after it */
  #planReloads = new SharedReload(() => this.loadPlans())
  /** Plan ids users named that a read did not find, and when (unheardPlan) */
  #unknownPlans = new Map<number, number>()
  channels: ChannelInfo[] = []
  prices: PriceInfo[] = []
  /** Bumped whenever channels change, so dependants (the router) rebuild */
  channelsVersion = 0

  #keys = new Map<string, CachedKey>()
  /** Hashes no key has, with when that was read (a string and a number each, bounded by UNKNOWN_KEY_LIMIT) */
  #unknownKeys = new Map<string, number>()
  /** The same keys by id: the meter adds each request's cost to its key's spend */
  #keysById = new Map<number, KeyInfo>()
  #keyLoads = new Map<string, Promise<KeyInfo | null>>()
  /** Hash of each cached key by id: another instance's charge names the key by id (`charged:`) */
  #hashById = new Map<number, string>()
  /** Users and keys charged again while their re-read was out: read once more when it ends */
  #rereadUsers = new Set<number>()
  #rereadKeys = new Set<string>()
  #users = new Map<number, UserState>()
  /** Users forgotten by reload() while requests of theirs held something (reused by their next load) */
  #heldUsers = new Map<number, UserState>()
  #userLoads = new Map<number, Promise<UserState | null>>()
  #priceByModel = new Map<string, PriceInfo | null>()
  /** Model fallbacks, most specific glob first */
  fallbacks: Array<{ pattern: string; models: string[]; specificity: number }> = []
  #fallbacksByModel = new Map<string, readonly string[]>()
  #pending: PendingSource = NOTHING_PENDING
  #loaded = false
  /** The sensitive-word filter (content_filter/word_filter.ts), compiled once per change; null when off */
  wordFilter: WordFilter | null = null
  /** The operator's extra account-problem phrases (account_problems.ts), read on the error path only */
  accountProblemKeywords: readonly string[] = []
  /** Told when a stored word list does not compile (a hand edit): the filter then stays as it was */
  onWordFilterError: (error: unknown) => void = () => {}

  /** End users' blocks and monthly limits (end_users/end_user_policies.ts), loaded whole */
  readonly endUsers = new EndUserPolicies()

  /** Teams' budgets, models, limits and blocks (teams/team_policies.ts), loaded whole */
  readonly teams = new TeamPolicies()

  setPendingSource(source: PendingSource) {
    this.#pending = source
    this.endUsers.setPendingSource(source)
    this.teams.setPendingSource(source)
  }

  /**
   * Money held on a user by something that outlives requests (a batch until
   * it is billed: batches/batch_holds.ts): a state loaded fresh starts with
   * it held. Read on a user's first load only, never per request.
   */
  standingHolds: (userId: number) => bigint = () => 0n

  /**
   * The user's state object if loaded, or kept aside by a reload while
   * something held money on it: where a hold is added or released. No read,
   * no refresh.
   */
  loadedUser(userId: number): UserState | undefined {
    return this.#users.get(userId) ?? this.#heldUsers.get(userId)
  }

  /** A cached key's name by id (log export's names, read behind the requests); null when not cached. */
  keyName(keyId: number): string | null {
    return this.#keysById.get(keyId)?.name ?? null
  }

  #loading: Promise<void> | null = null

  /** True once plans, channels and prices are in memory (the hot path checks this, no await). */
  get loaded() {
    return this.#loaded
  }

  /** Loads plans, channels and prices once; concurrent callers share the load. */
  async ensureLoaded() {
    if (this.#loaded) return
    this.#loading ??= Promise.all([
      // Through the shared reload: a notice's or a miss's read out meanwhile is never overtaken by an older one.
      this.#planReloads.run(),
      this.loadChannels(),
      this.loadPrices(),
      this.loadFallbacks(),
      this.loadWordFilter(),
      this.loadAccountProblemKeywords(),
      this.endUsers.reload(),
      this.teams.reload(),
    ])
      .then(() => {
        this.#loaded = true
      })
      .finally(() => {
        this.#loading = null
      })
    await this.#loading
  }

  async loadPlans() {
    const rows = await db.from('plans').select('*')
    const plans = new Map<number, PlanInfo>()
    for (const row of rows) {
      plans.set(Number(row.id), {
        id: Number(row.id),
        name: row.name,
        monthlyInputTokens: row.monthly_input_tokens === null ? null : Number(row.monthly_input_tokens),
        monthlyOutputTokens:
          row.monthly_output_tokens === null ? null : Number(row.monthly_output_tokens),
        allowedModels: row.allowed_models ?? ['*'],
        rpm: row.rpm,
        tpm: row.tpm,
        priceRatio: priceRatioOf(row.price_multiplier),
        scaledPrices: new WeakMap(),
      })
    }
    this.plans = plans
  }

  /**
   * The plan of a user whose plan this map does not hold: created (or the
   * user moved onto it) moments ago, its notice not applied yet, or lost.
   * Read again, not served as planless (fewer channels, no model globs, no
   * price multiplier). Concurrent misses share one read; an id still unknown
   * after a read (a plan deleted since) is read for at most once a second.
   * A known plan never gets here: one map lookup per request.
   */
  async unheardPlan(planId: number): Promise<PlanInfo | undefined> {
    const checked = this.#unknownPlans.get(planId)
    if (checked !== undefined && Date.now() - checked < UNKNOWN_PLAN_RECHECK_MS) return undefined
    await this.#planReloads.run()
    const plan = this.plans.get(planId)
    this.#unknownPlans.delete(planId)
    if (plan === undefined) rememberBounded(this.#unknownPlans, planId, Date.now(), UNKNOWN_PLAN_LIMIT)
    return plan
  }

  /**
   * Channels this instance took out of rotation (a bad key, an account that
   * cannot serve) whose row may not say so yet: the UPDATE is on its way. A
   * load that read the row before that UPDATE committed must not put the
   * channel back (it did: any reload meanwhile, a price set, another
   * instance's charge, re-enabled it until the UPDATE's own notice, and
   * requests went to the broken account again). Value: the channel loads
   * begun when the write committed (undefined: not yet).
   */
  #disabling = new Map<number, { reason: string; committedAt: number | undefined }>()
  #channelLoads = 0

  /** Out of rotation here at once; the caller writes the row and then calls disableWritten. */
  disableChannel(channelId: number, reason: string) {
    this.#disabling.set(channelId, { reason, committedAt: undefined })
    const channel = this.channels.find((c) => c.id === channelId)
    if (channel?.enabled) {
      channel.enabled = false
      channel.disabledReason = reason
      this.channelsVersion++
    }
  }

  /** The row says so now (or the write failed): loads begun from here on read the truth. */
  disableWritten(channelId: number) {
    const entry = this.#disabling.get(channelId)
    if (entry) entry.committedAt = this.#channelLoads
  }

  async loadChannels() {
    const load = ++this.#channelLoads
    const rows = await db.from('channels').select('*').orderBy('id')
    for (const [id, entry] of this.#disabling) {
      // Begun after the write committed: the row is the truth (an operator may have enabled it since).
      if (entry.committedAt !== undefined && load > entry.committedAt) this.#disabling.delete(id)
    }
    this.channels = rows.map((row) => {
      const apiKey = row.api_key_encrypted ? encryption.decrypt<string>(row.api_key_encrypted) : null
      // Saved with another APP_KEY: out of rotation rather than called without its key (app_key_check.ts).
      const keyUnreadable = row.api_key_encrypted !== null && apiKey === null
      return {
        id: Number(row.id),
        name: row.name,
        provider: row.provider as ProviderKind,
        baseUrl: String(row.base_url).replace(/\/+$/, ''),
        apiKey,
        keyUnreadable,
        models: row.models ?? [],
        modelMapping: row.model_mapping ?? {},
        extraHeaders: row.extra_headers ?? {},
        priority: row.priority,
        weight: Math.max(0, row.weight),
        enabled: row.enabled && !keyUnreadable && !this.#disabling.has(Number(row.id)),
        disabledReason: keyUnreadable ? UNREADABLE_KEY_REASON : (this.#disabling.get(Number(row.id))?.reason ?? row.disabled_reason),
        timeouts: {
          connect: row.connect_timeout_ms ?? DEFAULT_TIMEOUTS.connect,
          firstByte: row.first_byte_timeout_ms ?? DEFAULT_TIMEOUTS.firstByte,
          idle: row.idle_timeout_ms ?? DEFAULT_TIMEOUTS.idle,
          total: row.total_timeout_ms ?? DEFAULT_TIMEOUTS.total,
        },
        planIds: planIdsOf(row.plan_ids),
      }
    })
    this.channelsVersion++
    retirePoolsExcept(poolsInUse(this.channels))
  }

  async loadPrices() {
    const rows = await db.from('model_prices').select('*')
    this.prices = rows
      .map((row) => ({
        pattern: row.model_pattern,
        inputPico: pricePerTokenPico(String(row.input_per_million)),
        outputPico: pricePerTokenPico(String(row.output_per_million)),
        perImagePico: row.per_image == null ? 0n : toPico(String(row.per_image)),
        perSecondPico: row.per_second == null ? 0n : toPico(String(row.per_second)),
        perCharacterPico: row.per_character == null ? 0n : toPico(String(row.per_character)),
        perRequestPico: row.per_request == null ? 0n : toPico(String(row.per_request)),
        perWebSearchPico: row.per_web_search == null ? 0n : toPico(String(row.per_web_search)),
        perVideoSecondPico: row.per_video_second == null ? 0n : toPico(String(row.per_video_second)),
        cacheReadPico: row.cache_read_per_million == null ? undefined : pricePerTokenPico(String(row.cache_read_per_million)),
        cacheWritePico: row.cache_write_per_million == null ? undefined : pricePerTokenPico(String(row.cache_write_per_million)),
        cacheWrite1hPico: row.cache_write_1h_per_million == null ? undefined : pricePerTokenPico(String(row.cache_write_1h_per_million)),
        audioInputPico: row.audio_input_per_million == null ? undefined : pricePerTokenPico(String(row.audio_input_per_million)),
        audioOutputPico: row.audio_output_per_million == null ? undefined : pricePerTokenPico(String(row.audio_output_per_million)),
        imageOutputPico: row.image_output_per_million == null ? undefined : pricePerTokenPico(String(row.image_output_per_million)),
        specificity: globSpecificity(row.model_pattern),
      }))
      .sort(byPrecedence)
    this.#priceByModel.clear()
  }

  async loadFallbacks() {
    const rows = await db.from('model_fallbacks').select('model_pattern', 'fallbacks')
    this.fallbacks = rows
      .map((row) => ({ pattern: row.model_pattern as string, models: row.fallbacks as string[], specificity: globSpecificity(row.model_pattern) }))
      .sort(byPrecedence)
    this.#fallbacksByModel.clear()
  }

  /**
   * Compiles the stored sensitive-word setting. Saving checks the list
   * (set_word_filter.ts), so a list that does not compile was written by
   * hand: the last good filter is kept and the error reported.
   */
  async loadWordFilter() {
    const row = await db.from('app_settings').where('key', WORD_FILTER_SETTING).first()
    try {
      this.wordFilter = WordFilter.of(wordFilterSettingsOf(row?.value ?? null))
    } catch (error) {
      this.onWordFilterError(error)
    }
  }

  /** The operator's extra phrases that mark an upstream 4xx as an account problem (Settings page). */
  async loadAccountProblemKeywords() {
    const row = await db.from('app_settings').where('key', ACCOUNT_KEYWORDS_SETTING).first()
    this.accountProblemKeywords = accountKeywordsOf(row?.value ?? null)
  }

  /** The models to try when every channel of `model` fails (the most specific glob's list); empty when none. */
  fallbacksFor(model: string): readonly string[] {
    if (this.fallbacks.length === 0) return NO_FALLBACKS
    let models = this.#fallbacksByModel.get(model)
    if (models === undefined) {
      models = this.fallbacks.find((f) => globMatches(f.pattern, model))?.models.filter((m) => m !== model) ?? NO_FALLBACKS
      rememberBounded(this.#fallbacksByModel, model, models, MODEL_MEMO_LIMIT)
    }
    return models
  }

  /** The most specific price whose glob matches the model, or null (free). */
  priceFor(model: string): PriceInfo | null {
    let price = this.#priceByModel.get(model)
    if (price === undefined) {
      price = null
      for (const candidate of this.prices) {
        if (globMatches(candidate.pattern, model)) {
          price = candidate
          break
        }
      }
      rememberBounded(this.#priceByModel, model, price, MODEL_MEMO_LIMIT)
    }
    return price
  }

  /**
   * The price of a name served as its base model by a thinking suffix
   * (routing/model_suffix.ts): the base model's, unless the price table has
   * one for the suffixed name that is more specific than the base's (glob
   * order, byPrecedence): `claude-x-thinking` priced exactly, or `*-thinking`
   * over a base priced only by `*`. A glob that takes both names is the same
   * price either way. Suffixes stacked (`claude-x-thinking:nitro`, whose base
   * is `claude-x`): each name between the one asked and the base is asked in
   * turn, nearest first (`claude-x-thinking` priced exactly keeps its price).
   */
  priceForSuffixed(model: string, base: string): PriceInfo | null {
    const ofBase = this.priceFor(base)
    for (let name: string | undefined = model; name !== undefined && name !== base; name = parseModelSuffix(name)?.base) {
      const own = this.priceFor(name)
      if (own === null || own === ofBase) continue
      if (ofBase === null || !isGlob(own.pattern) || own.specificity > ofBase.specificity) return own
    }
    return ofBase
  }

  /**
   * Key by SHA-256 hash from memory: null when known to be unknown, undefined
   * when not cached (or stale). Lets the request path skip a promise per call.
   */
  cachedKey(hash: string): KeyInfo | null | undefined {
    const cached = this.#keys.get(hash)
    if (cached !== undefined) return Date.now() - cached.loadedAt < KEY_TTL_MS ? cached.info : undefined
    const unknownAt = this.#unknownKeys.get(hash)
    return unknownAt !== undefined && Date.now() - unknownAt < KEY_TTL_MS ? null : undefined
  }

  /** Key by SHA-256 hash; null when unknown. Misses read the database once, concurrent misses share the read. */
  async key(hash: string): Promise<KeyInfo | null> {
    const cached = this.cachedKey(hash)
    if (cached !== undefined) return cached
    return this.#refreshKey(hash)
  }

  async #loadKey(hash: string): Promise<KeyInfo | null> {
    // A key with a budget per model reads its spend rows too, in the same settled read (one more query, at load only).
    const [row, spend] = await this.#readSettled(async () => {
      const read = await db.from('api_keys').where('key_hash', hash).first()
      if (!read || !hasModelBudget(read.model_limits)) return [read, undefined] as const
      const rows: ModelSpendRow[] = await db.from('api_key_model_spend').where('api_key_id', read.id).select('model', 'spent', 'period_spent', 'period_start')
      return [read, new Map(rows.map((r) => [r.model, r]))] as const
    })
    const info: KeyInfo | null = row
      ? {
          id: Number(row.id),
          userId: Number(row.user_id),
          name: row.name,
          allowedModels: row.allowed_models,
          expiresAt: row.expires_at ? new Date(row.expires_at).getTime() : null,
          revoked: row.revoked_at !== null || row.blocked_at !== null,
          blocked: row.revoked_at === null && row.blocked_at !== null,
          rpm: row.rpm,
          tpm: row.tpm,
          modelLimits: modelLimitsFromRow(Number(row.id), row.model_limits, spend, this.#pending),
          maxParallel: row.max_parallel ?? null,
          spendLimitPico: row.spend_limit === null ? null : toPico(String(row.spend_limit)),
          softBudgetPico: row.soft_budget == null ? null : toPico(String(row.soft_budget)),
          ...keySpend(row, this.#pending),
          manage: row.manage === true,
          allowedIps: compileIpAllowlist(row.allowed_ips),
          teamId: row.team_id === null || row.team_id === undefined ? null : Number(row.team_id),
        }
      : null
    if (info) {
      this.#unknownKeys.delete(hash)
      this.#keys.set(hash, { info, loadedAt: Date.now() })
      this.#keysById.set(info.id, info)
      this.#hashById.set(info.id, hash)
    } else {
      this.#rememberUnknown(hash)
    }
    return info
  }

  /** A hash no key has (any more): remembered among the unknown ones, the oldest forgotten past the limit. */
  #rememberUnknown(hash: string) {
    const known = this.#keys.get(hash)
    if (known) {
      // Deleted since it was cached: out of the by-id map too, or the meter would keep adding to it.
      this.#keys.delete(hash)
      if (this.#keysById.get(known.info.id) === known.info) {
        this.#keysById.delete(known.info.id)
        this.#hashById.delete(known.info.id)
      }
    }
    // Deleted first so a refreshed entry moves to the young end.
    this.#unknownKeys.delete(hash)
    if (this.#unknownKeys.size >= UNKNOWN_KEY_LIMIT) {
      for (const oldest of this.#unknownKeys.keys()) {
        this.#unknownKeys.delete(oldest)
        if (this.#unknownKeys.size < UNKNOWN_KEY_LIMIT) break
      }
    }
    this.#unknownKeys.set(hash, Date.now())
  }

  /** A read of a row the meter also writes (a user's balance and tokens, a key's spend): metering/settled_read.ts. */
  #readSettled<T>(read: () => Promise<T>): Promise<T> {
    return readSettled(this.#pending, read)
  }

  /** The user's live state from memory (undefined when not loaded); refreshed in the background when older than the TTL. */
  cachedUser(userId: number): UserState | undefined {
    const cached = this.#users.get(userId)
    if (cached) {
      if (cached.period !== currentPeriod()) {
        cached.period = currentPeriod()
        cached.inputTokens = 0
        cached.outputTokens = 0
      }
      if (Date.now() - cached.loadedAt > USER_TTL_MS) this.#refreshUser(userId).catch(() => {})
    }
    return cached
  }

  /** The user's live state; loaded on a miss, refreshed in the background when older than the TTL. */
  async user(userId: number): Promise<UserState | null> {
    return this.cachedUser(userId) ?? this.#refreshUser(userId)
  }

  #refreshUser(userId: number): Promise<UserState | null> {
    let load = this.#userLoads.get(userId)
    if (!load) {
      load = this.#loadUser(userId).finally(() => this.#userLoads.delete(userId))
      this.#userLoads.set(userId, load)
    }
    return load
  }

  async #loadUser(userId: number): Promise<UserState | null> {
    const period = currentPeriod()
    const result = await this.#readSettled(() => db.rawQuery(USER_STATE_SQL, [period, userId]))
    const row = result.rows[0]
    if (!row) {
      this.#users.delete(userId)
      this.#heldUsers.delete(userId)
      return null
    }
    const pending = this.#pending.pendingFor(userId)
    const previous = this.#users.get(userId) ?? this.#heldUsers.get(userId)
    const state: UserState = {
      id: Number(row.id),
      role: row.role,
      planId: row.plan_id === null ? null : Number(row.plan_id),
      disabled: row.disabled === true,
      balancePico: toPico(String(row.balance)) - pending.costPico,
      lowBalancePico: row.low_balance_threshold === null ? null : toPico(String(row.low_balance_threshold)),
      lowBalanceNotified: row.low_balance_notified === true,
      // The holds belong to requests in flight (and batches), not to the row: they survive a reload.
      reservedPico: previous?.reservedPico ?? this.standingHolds(userId),
      reservedInputTokens: previous?.reservedInputTokens ?? 0,
      reservedOutputTokens: previous?.reservedOutputTokens ?? 0,
      period,
      inputTokens: Number(row.input_tokens) + pending.input,
      outputTokens: Number(row.output_tokens) + pending.output,
      loadedAt: Date.now(),
    }
    // Keep the same object identity when refreshing so in-flight requests see updates.
    if (previous) {
      Object.assign(previous, state)
      this.#users.set(userId, previous)
      this.#heldUsers.delete(userId)
      return previous
    }
    this.#users.set(userId, state)
    return state
  }

  /** Applies a metered request to the cached user state at once (before the write-behind commit). */
  applyUsage(userId: number, costPico: bigint, input: number, output: number): UserState | undefined {
    const state = this.#users.get(userId)
    if (!state) return
    if (state.period !== currentPeriod()) {
      state.period = currentPeriod()
      state.inputTokens = 0
      state.outputTokens = 0
    }
    state.balancePico -= costPico
    state.inputTokens += input
    state.outputTokens += output
    return state
  }

  /** The cached key with this id, if any (budget_watch.ts after a batch commits; no load). */
  loadedKey(keyId: number): KeyInfo | undefined {
    return this.#keysById.get(keyId)
  }

  /**
   * Called after another instance's charge of a cached user or key was read
   * again: budget and low-balance crossings that instance's batch made are
   * seen here too (gateway.ts). Not on the request path.
   */
  onChargedReread: ((userId: number, keyId: number) => void) | null = null

  /**
   * Adds a metered cost to the cached key's spend (for spend caps), in the
   * key's current period. A call begun in an earlier period (before midnight,
   * metered after it) counts in that one, as the meter's statement and a
   * reload (keySpend) count it.
   */
  applyKeySpend(keyId: number, costPico: bigint, createdAtMs: number): KeyInfo | undefined {
    if (costPico === 0n) return
    const key = this.#keysById.get(keyId)
    if (!key) return
    return addSpendInPeriod(key, costPico, createdAtMs) ? key : undefined
  }

  #forgetKeys() {
    this.#keys.clear()
    this.#keysById.clear()
    this.#hashById.clear()
    this.#unknownKeys.clear()
  }

  /** Reacts to `NOTIFY gateway_changes '<table>:<id>'`. */
  async handleChange(payload: string) {
    const [table, rawId] = payload.split(':')
    const id = Number(rawId)
    switch (table) {
      case 'plans':
        return this.#planReloads.run()
      case 'channels':
        return this.loadChannels()
      case 'model_prices':
        return this.loadPrices()
      case 'model_fallbacks':
        return this.loadFallbacks()
      case 'app_settings':
        // `app_settings:<key>` (migration 989): the word filter and the account-problem phrases are cached here.
        if (rawId === WORD_FILTER_SETTING) return this.loadWordFilter()
        if (rawId === ACCOUNT_KEYWORDS_SETTING) return this.loadAccountProblemKeywords()
        return
      case 'api_keys':
        // Keys are cached by hash: drop them all (changes are rare).
        this.#forgetKeys()
        return
      case 'users':
      case 'balance':
        if (this.#users.has(id)) await this.#refreshUser(id)
        return
      case 'end_users':
      // A shared budget changed: every end user linked to it takes the new limits (end_user_policies.ts).
      case 'budgets':
        return this.endUsers.reload()
      case 'teams':
      // Organizations are held with their teams (team_policies.ts): one read of both.
      case 'organizations':
        return this.teams.reload()
      case 'charged': {
        // Another instance's charge of an owner with end-user limits: their spend is read again too.
        if (this.endUsers.hasOwner(id)) this.endUsers.reload().catch(() => {})
        // ...and of a key in a team: the teams' spend.
        const keyId = Number(payload.split(':')[2])
        if (this.teams.size > 0 && this.#keysById.get(keyId)?.teamId != null) this.teams.reload().catch(() => {})
        return this.#charged(id, keyId)
      }
    }
  }

  /**
   * Another instance committed usage of this user (and key): re-read the
   * cached ones in the background (migration 996), so this instance does
   * not let them spend again what the other one charged. A re-read already
   * out may have been sent before that commit: one more follows it, however
   * many charges arrive meanwhile (at most one read out and one waiting per
   * user and key).
   */
  async #charged(userId: number, keyId: number) {
    const reads: Promise<unknown>[] = []
    if (this.#users.has(userId)) reads.push(this.#reread(this.#userLoads, this.#rereadUsers, userId, () => this.#users.has(userId) && this.#refreshUser(userId)))
    const hash = this.#hashById.get(keyId)
    if (hash !== undefined) reads.push(this.#reread(this.#keyLoads, this.#rereadKeys, hash, () => this.#keys.has(hash) && this.#refreshKey(hash)))
    if (reads.length === 0) return
    await Promise.all(reads)
    this.onChargedReread?.(userId, keyId)
  }

  /** Reads now, or once the read already out ends (one waiting at most: a second charge meanwhile joins it). */
  #reread<K>(loads: Map<K, Promise<unknown>>, waiting: Set<K>, id: K, read: () => unknown): Promise<unknown> {
    const out = loads.get(id)
    if (!out) return Promise.resolve(read())
    if (waiting.has(id)) return out
    waiting.add(id)
    return out
      .catch(() => {})
      .then(() => {
        waiting.delete(id)
        return read()
      })
  }

  /** Reads a cached key again (concurrent reads of one hash share it). */
  #refreshKey(hash: string): Promise<KeyInfo | null> {
    let load = this.#keyLoads.get(hash)
    if (!load) {
      load = this.#loadKey(hash).finally(() => this.#keyLoads.delete(hash))
      this.#keyLoads.set(hash, load)
    }
    return load
  }

  /** Forgets everything (tests, and after reconnecting the change listener). */
  async reload() {
    this.#forgetKeys()
    // Requests in flight hold money and tokens on their user's state object, and release them
    // there: those objects are kept aside, and the user's next load refreshes the same object.
    this.#heldUsers.clear()
    for (const [id, state] of this.#users) if (holdsAnything(state)) this.#heldUsers.set(id, state)
    this.#users.clear()
    this.#loaded = false
    await this.ensureLoaded()
  }
}

/** The upstream pools (upstream_pool.ts) these channels send to: one per origin and connect timeout. */
function poolsInUse(channels: ChannelInfo[]): Set<string> {
  const keys = new Set<string>()
  for (const channel of channels) {
    try {
      keys.add(poolKey(baseOf(channel).origin, channel.timeouts.connect))
    } catch {
      // A base URL that does not parse has no pool (its requests fail before one is made).
    }
  }
  return keys
}

/** Does a request in flight hold money or tokens on this user? */
function holdsAnything(state: UserState) {
  return state.reservedPico !== 0n || state.reservedInputTokens !== 0 || state.reservedOutputTokens !== 0
}

/**
 * What a key's spend cap counts, from its row: the whole spend, or, when the
 * cap resets, what it spent in the current period (0 when the row's period
 * is an older one: nothing metered yet in this one). Plus what the meter
 * holds for the key and has not committed yet (queued, being written,
 * spilled), of calls begun in the current period only: when those commit,
 * the statement counts an older period's calls in the lifetime spend alone.
 * Without it a reload (TTL, any api_keys change) would forget the queued
 * cost until the next one, and the key could overrun its cap by it.
 */
function keySpend(row: Record<string, any>, pending: PendingSource) {
  const id = Number(row.id)
  if (!isSpendPeriod(row.spend_period)) {
    return {
      spentPico: toPico(String(row.spent ?? '0')) + pending.pendingKeyCost(id, -Infinity),
      spendPeriod: null,
      periodStartsAt: -Infinity,
      periodEndsAt: Infinity,
    }
  }
  const { start, end } = periodBounds(row.spend_period, Date.now())
  const rowStart = row.period_start ? periodStartMs(row.period_start) : null
  return {
    spentPico: (rowStart === start ? toPico(String(row.period_spent ?? '0')) : 0n) + pending.pendingKeyCost(id, start),
    spendPeriod: row.spend_period,
    periodStartsAt: start,
    periodEndsAt: end,
  }
}

/** A `date` column as node-pg returns it (a Date at local midnight, or a string) -> epoch ms of that UTC day. */
function periodStartMs(value: Date | string): number {
  if (typeof value === 'string') return Date.parse(`${value.slice(0, 10)}T00:00:00Z`)
  return Date.UTC(value.getFullYear(), value.getMonth(), value.getDate())
}
