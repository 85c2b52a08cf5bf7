import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { creditReport, keyPeriodSpend } from '#services/account_report'
import { fromPico } from '#gateway/metering/money'
import { rollSpendPeriod, type SpendPeriod } from '#gateway/metering/spend_period'
import type { Principal } from '#gateway/types'

/** OpenRouter's names for the periods a key's limit resets in */
const LIMIT_RESETS: Record<SpendPeriod, string> = { day: 'daily', week: 'weekly', month: 'monthly' }

/** USD as a JSON number, from exact pico-USD */
const usd = (pico: bigint) => Number(fromPico(pico))

/** The figures are exact once the meter's queue is written (a call that just ended may still be in it). */
async function drained() {
  const gateway = await app.container.make('gateway')
  await gateway.meter.drain()
}

async function figures(principal: Principal) {
  await drained()
  return creditReport(principal.user.id, principal.key.id)
}

/**
 * The tightest requests-per-minute window on the key (its own, its plan's per
 * user), or -1 when there is none: what OpenRouter answers for a key without
 * a rate limit.
 */
function requestsPerMinute(principal: Principal): number {
  const limits = [principal.key.rpm, principal.plan?.rpm].filter((n): n is number => typeof n === 'number' && n > 0)
  return limits.length === 0 ? -1 : Math.min(...limits)
}

/**
 * OpenRouter's account endpoints, which apps written against OpenRouter call
 * to show what a key may still spend (its key-info and credits checks), with
 * the gateway's key: at `/api/v1/...` as on openrouter.ai (an app that keeps
 * OpenRouter's paths with the host changed; `/api/v1/auth/key` is the older
 * name) and under `/v1` (an app whose base URL became the gateway's /v1).
 */
export default class OpenRouterAccountController {
  /**
   * GET /api/v1/key: the calling key. `limit` its spend cap (null without),
   * `limit_reset` the cap's period, `limit_remaining` what the cap has left in
   * it; `usage` what the key spent in its life, `usage_daily` / `_weekly` /
   * `_monthly` in the current UTC day, week (from Monday) and month;
   * `byok_usage*` 0 (no bring-your-own-key billing); `is_free_tier` while the
   * account never had a top-up; `rate_limit` the tightest requests-per-minute
   * window (-1: none).
   */
  async key({ principal, response }: HttpContext) {
    await drained()
    const [report, periods] = await Promise.all([creditReport(principal.user.id, principal.key.id), keyPeriodSpend(principal.key.id)])
    const key = principal.key
    let limit: number | null = null
    let remaining: number | null = null
    if (key.spendLimitPico !== null) {
      rollSpendPeriod(key, Date.now())
      const left = key.spendLimitPico - key.spentPico
      limit = usd(key.spendLimitPico)
      remaining = usd(left > 0n ? left : 0n)
    }
    return response.json({
      data: {
        label: key.name,
        limit,
        limit_reset: key.spendLimitPico !== null && key.spendPeriod !== null ? LIMIT_RESETS[key.spendPeriod] : null,
        limit_remaining: remaining,
        usage: usd(report.keySpentPico),
        usage_daily: usd(periods.dailyPico),
        usage_weekly: usd(periods.weeklyPico),
        usage_monthly: usd(periods.monthlyPico),
        // Bring-your-own-key usage (OpenRouter billing a provider key of the user's): none here; its SDKs require the fields.
        byok_usage: 0,
        byok_usage_daily: 0,
        byok_usage_weekly: 0,
        byok_usage_monthly: 0,
        include_byok_in_limit: false,
        is_free_tier: !report.paid,
        expires_at: key.expiresAt === null ? null : new Date(key.expiresAt).toISOString(),
        rate_limit: { requests: requestsPerMinute(principal), interval: '1m' },
      },
    })
  }

  /**
   * GET /api/v1/credits: the account's money, such that `total_credits -
   * total_usage` is the balance /v1/balance reports: `total_usage` its
   * total spent (charges less refunds), `total_credits` that plus the balance.
   */
  async credits({ principal, response }: HttpContext) {
    const report = await figures(principal)
    return response.json({
      data: { total_credits: usd(report.balancePico + report.spentPico), total_usage: usd(report.spentPico) },
    })
  }
}
