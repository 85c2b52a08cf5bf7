import { AdminInputError } from '#actions/admin_input_error'
import { AdminGetSession } from '#services/upstream_admin_get'
import type { ModelListTarget } from '#services/upstream_model_list'
import type { ProviderKind } from '#gateway/types'

/**
 * What an upstream account has left (new-api's channel balance), asked with
 * the channel's key where the provider says it:
 *
 * - `openrouter`: `GET {base}/credits`, `total_credits - total_usage` (USD);
 * - `deepseek`: `GET {origin}/user/balance` (its base without `/v1`), the
 *   `total_balance` of the USD entry, else the first (DeepSeek bills in CNY
 *   or USD);
 * - `openai` and `custom`: the dashboard billing endpoints OpenAI-compatible
 *   resellers, new-api, one-api and this gateway answer,
 *   `GET {base}/dashboard/billing/subscription` (`hard_limit_usd`) and
 *   `/dashboard/billing/usage` (`total_usage`, cents) since the 1st of the
 *   month (or the last 100 days when the account has no payment method, as
 *   new-api asks): `hard_limit_usd - total_usage / 100`. OpenAI's own API
 *   refuses API keys there: its error is what the check shows.
 *
 * Other kinds (Anthropic, Google, Gemini, Z.ai, Azure) publish no balance
 * for an API key: `balanceSourceOf` is null and nothing is asked.
 */

export type BalanceSource = 'openrouter_credits' | 'deepseek_balance' | 'dashboard_billing'

export function balanceSourceOf(provider: ProviderKind | string): BalanceSource | null {
  if (provider === 'openrouter') return 'openrouter_credits'
  if (provider === 'deepseek') return 'deepseek_balance'
  if (provider === 'openai' || provider === 'custom') return 'dashboard_billing'
  return null
}

export interface UpstreamBalance {
  /** Decimal text, 6 places at most */
  amount: string
  currency: string
  latencyMs: number
}

/** The upstream could not be asked, or its answer held no balance: a message fit to show. */
export class UpstreamBalanceError extends AdminInputError {
  constructor(
    public reason: string,
    public status: number | null = null
  ) {
    super(`Balance: ${reason}`)
    this.name = 'UpstreamBalanceError'
  }
}

/** A balance answer is a few hundred bytes; more is not one */
const MAX_BYTES = 64 * 1024

export async function fetchUpstreamBalance(target: ModelListTarget, options: { signal?: AbortSignal; totalMs?: number } = {}): Promise<UpstreamBalance> {
  const source = balanceSourceOf(target.provider)
  if (source === null) throw new UpstreamBalanceError(`${target.provider} publishes no account balance for an API key`)
  const url = new URL(target.baseUrl)
  const origin = url.origin
  const basePath = url.pathname.replace(/\/+$/, '')
  const headers: Record<string, string> = { ...target.extraHeaders }
  if (target.apiKey) headers['authorization'] = `Bearer ${target.apiKey}`
  const session = new AdminGetSession(target, {
    what: 'balance',
    maxBytes: MAX_BYTES,
    failure: (reason, status) => new UpstreamBalanceError(reason, status),
    signal: options.signal,
    totalMs: options.totalMs,
  })
  const started = performance.now()
  try {
    const balance = await read(source, session, origin, basePath, headers)
    return { ...balance, latencyMs: Math.round(performance.now() - started) }
  } finally {
    session.close()
  }
}

async function read(
  source: BalanceSource,
  session: AdminGetSession,
  origin: string,
  basePath: string,
  headers: Record<string, string>
): Promise<{ amount: string; currency: string }> {
  if (source === 'openrouter_credits') {
    const { body } = await session.getJson(`${origin}${basePath}/credits`, headers)
    const data = field(body, 'data')
    const credits = amountIn(field(data, 'total_credits'), 'data.total_credits')
    const usage = amountIn(field(data, 'total_usage'), 'data.total_usage')
    return { amount: decimal(credits - usage), currency: 'USD' }
  }
  if (source === 'deepseek_balance') {
    const { body } = await session.getJson(`${origin}${basePath.replace(/\/v1$/, '')}/user/balance`, headers)
    const infos = field(body, 'balance_infos')
    if (!Array.isArray(infos) || infos.length === 0) throw new UpstreamBalanceError('the answer holds no balance (no "balance_infos")')
    const chosen = infos.find((info) => currencyOf(info) === 'USD') ?? infos[0]
    const amount = numberIn(field(chosen, 'total_balance'), 'balance_infos[].total_balance')
    return { amount: decimal(amount), currency: currencyOf(chosen) ?? 'CNY' }
  }
  const { body: subscription } = await session.getJson(`${origin}${basePath}/dashboard/billing/subscription`, headers)
  const limit = amountIn(field(subscription, 'hard_limit_usd'), 'hard_limit_usd')
  const now = new Date()
  const start =
    field(subscription, 'has_payment_method') === false
      ? day(new Date(now.getTime() - 100 * 86_400_000))
      : `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}-01`
  const query = `start_date=${start}&end_date=${day(new Date(now.getTime() + 86_400_000))}`
  const { body: usage } = await session.getJson(`${origin}${basePath}/dashboard/billing/usage?${query}`, headers)
  const used = amountIn(field(usage, 'total_usage'), 'total_usage')
  return { amount: decimal(limit - used / 100), currency: 'USD' }
}

/** An entry's ISO currency code, as sent or in another case or padded ("usd", " USD "); null when none */
function currencyOf(info: unknown): string | null {
  const currency = field(info, 'currency')
  if (typeof currency !== 'string') return null
  const code = currency.trim().toUpperCase()
  return /^[A-Z]{3}$/.test(code) ? code : null
}

function field(value: unknown, name: string): unknown {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[name] : undefined
}

/** A finite number, or decimal text of one (DeepSeek sends "110.00") */
function numberIn(value: unknown, name: string): number {
  const number = typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : value
  if (typeof number !== 'number' || !Number.isFinite(number) || Math.abs(number) >= 1e12) {
    throw new UpstreamBalanceError(`the answer holds no balance ("${name}" is not a number)`)
  }
  return number
}

/**
 * A credit, limit or usage figure: never below zero. A negative usage added
 * to the balance (credits 10, usage -1000: 1010 left), a negative limit or
 * credit took it away: neither is a balance. Usage beyond the credits is
 * kept (a negative balance: an account overdrawn, below any alert line).
 */
function amountIn(value: unknown, name: string): number {
  const number = numberIn(value, name)
  if (number < 0) throw new UpstreamBalanceError(`the answer holds no balance ("${name}" is negative)`)
  return number
}

/** 6 places, as the column keeps it; -0 as 0 */
function decimal(value: number): string {
  const text = (Math.round(value * 1e6) / 1e6).toFixed(6)
  return text === '-0.000000' ? '0.000000' : text
}

function day(date: Date): string {
  return date.toISOString().slice(0, 10)
}
