import type { HttpContext } from '@adonisjs/core/http'
import vine from '@vinejs/vine'
import { wholeNumberField } from '#validators/whole_number_field'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import ApiKey from '#models/api_key'
import { findApiKey } from '#actions/revoke_api_key'
import { dailyTotals, spendByKeyModel, spendByTeamDay, topBy, type TeamDaySpend } from '#services/usage_rollup'
import { END_USER_DAILY_LIMIT, endUserDailySpend } from '#services/end_user_spend'
import { parseFilters } from '#services/usage_query'
import { settleMetering } from '#services/settle_metering'
import { datesOf, litellmRangeValidator } from '#validators/usage_period'
import { fieldError, litellmManaged } from '#services/litellm_management'

/** LiteLLM's /global/spend/* views cover the last 30 days (from the UTC day 30 days before today) */
const WINDOW_DAYS = 30

const limitValidator = vine.compile(vine.object({ limit: wholeNumberField().min(1).max(1000).optional() }))

/** From 30 days before today to today, UTC days */
function lastThirtyDays() {
  const today = DateTime.utc().startOf('day')
  return { from: today.minus({ days: WINDOW_DAYS }), to: today }
}

/** The display form of keys by id (`key_alias` is the name, `key_name` the masked key), one read */
async function keysById(ids: number[]) {
  if (!ids.length) return new Map<number, ApiKey>()
  const keys = await ApiKey.query().whereIn('id', ids)
  return new Map(keys.map((k) => [k.id, k]))
}

/**
 * LiteLLM's global spend views (/global/spend/logs, /keys, /models,
 * /report) over the daily usage rollups (app/services/usage_rollup.ts:
 * finished days from usage_daily, today live), as the admin dashboard reads
 * them; the report by customer reads the end-user rollup
 * (usage_daily_end_users) the same way.
 */
export default class LiteLLMGlobalSpendController {
  /**
   * GET /global/spend/logs[?api_key=]: spend per UTC day over the last 30
   * days, `[{date, spend}]` (LiteLLM's MonthlyGlobalSpend); with `api_key`
   * (token, key or prefix) that key's, `[{date, spend, api_key}]`, from its
   * rows on the key-and-time index.
   */
  async logs(ctx: HttpContext) {
    return litellmManaged(async () => {
      const { from, to } = lastThirtyDays()
      const ref = ctx.request.input('api_key')
      await settleMetering()
      if (ref === undefined || ref === null || ref === '') {
        const days = await dailyTotals(from, to)
        return days.filter((d) => d.requests > 0).map((d) => ({ date: d.day, spend: d.cost }))
      }
      const key = await findApiKey(String(ref))
      const rows = await db
        .from('usage_records')
        .where('api_key_id', key.id)
        .where('created_at', '>=', from.toJSDate())
        .groupByRaw('1')
        .orderByRaw('1')
        .select(db.raw(`to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS date`))
        .select(db.raw('coalesce(sum(cost), 0)::text AS spend'))
      return rows.map((r: any) => ({ date: r.date, spend: Number(r.spend), api_key: String(key.id) }))
    })
  }

  /** GET /global/spend/keys[?limit=]: keys by spend over the last 30 days, `[{api_key, key_alias, key_name, total_spend}]` */
  async keys(ctx: HttpContext) {
    return litellmManaged(async () => {
      const { limit } = await limitValidator.validate({ limit: ctx.request.input('limit') })
      const { from, to } = lastThirtyDays()
      await settleMetering()
      const totals = new Map<number, number>()
      for (const row of await spendByKeyModel(from, to)) totals.set(row.keyId, (totals.get(row.keyId) ?? 0) + Number(row.cost))
      const top = [...totals.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, limit ?? totals.size)
      const keys = await keysById(top.map(([id]) => id))
      return top.map(([id, spend]) => ({
        api_key: String(id),
        key_alias: keys.get(id)?.name ?? null,
        key_name: keys.get(id)?.masked ?? null,
        total_spend: spend,
      }))
    })
  }

  /** GET /global/spend/models[?limit=]: models by spend over the last 30 days (10 by default), `[{model, total_spend}]` */
  async models(ctx: HttpContext) {
    return litellmManaged(async () => {
      const { limit = 10 } = await limitValidator.validate({ limit: ctx.request.input('limit') })
      await settleMetering()
      const top = await topBy('model', lastThirtyDays().from, limit)
      return top.map((t) => ({ model: t.key, total_spend: t.cost }))
    })
  }

  /**
   * GET /global/spend/report?start_date=&end_date=&group_by=team|customer|api_key:
   * LiteLLM's spend report over UTC days (the last 7 by default, at most a
   * year). `customer`: per day, each end user's spend with its models and
   * keys (at most END_USER_DAILY_LIMIT day, customer, model and key groups:
   * a 400 beyond, never a cut answer); `api_key`: per key over the range, with its models; `team` (LiteLLM's
   * default): per day, each team's spend with its models (each request for
   * the team its key was in when it was made; requests of no team left out).
   */
  async report(ctx: HttpContext) {
    return litellmManaged(async () => {
      const qs = ctx.request.qs()
      const groupBy = qs.group_by ?? 'team'
      if (!['team', 'customer', 'api_key'].includes(groupBy)) throw fieldError('group_by', 'team, customer or api_key')
      const dates = { from: qs.start_date, to: qs.end_date }
      await litellmRangeValidator.validate(datesOf(dates, ['from', 'to']))
      const filters = parseFilters(dates)
      await settleMetering()
      if (groupBy === 'team') return teamReport(await spendByTeamDay(DateTime.fromISO(filters.from, { zone: 'utc' }), DateTime.fromISO(filters.to, { zone: 'utc' })))
      if (groupBy === 'customer') {
        // Finished days from the end-user rollup, today live: any range the validator allows (a year at most).
        const rows = await endUserDailySpend(filters, END_USER_DAILY_LIMIT + 1)
        // More groups than are answered: refused rather than cut short without the caller knowing.
        if (rows.length > END_USER_DAILY_LIMIT) {
          throw fieldError('end_date', `the report by customer has more than ${END_USER_DAILY_LIMIT} day, customer, model and key groups in this range: ask for fewer days`)
        }
        return customerReport(rows)
      }
      const rows = await spendByKeyModel(DateTime.fromISO(filters.from, { zone: 'utc' }), DateTime.fromISO(filters.to, { zone: 'utc' }))
      const byKey = new Map<number, { api_key: string; total_cost: number; total_input_tokens: number; total_output_tokens: number; model_details: any[] }>()
      for (const r of rows) {
        const entry = byKey.get(r.keyId) ?? { api_key: String(r.keyId), total_cost: 0, total_input_tokens: 0, total_output_tokens: 0, model_details: [] }
        entry.total_cost += Number(r.cost)
        entry.total_input_tokens += r.input_tokens
        entry.total_output_tokens += r.output_tokens
        entry.model_details.push({ model: r.model, total_cost: Number(r.cost), total_input_tokens: r.input_tokens, total_output_tokens: r.output_tokens })
        byKey.set(r.keyId, entry)
      }
      return [...byKey.values()].sort((a, b) => b.total_cost - a.total_cost)
    })
  }
}

/** Rows per (day, team, model) as LiteLLM's `[{group_by_day, teams: [{team_name, team_id, total_spend, metadata: [{model, spend, total_tokens}]}]}]` */
function teamReport(rows: TeamDaySpend[]) {
  const days = new Map<string, Map<number, { team_name: string; team_id: string; total_spend: number; metadata: Array<{ model: string; spend: number; total_tokens: number }> }>>()
  for (const r of rows) {
    let teams = days.get(r.day)
    if (!teams) days.set(r.day, (teams = new Map()))
    let team = teams.get(r.teamId)
    if (!team) teams.set(r.teamId, (team = { team_name: r.alias, team_id: String(r.teamId), total_spend: 0, metadata: [] }))
    team.total_spend += Number(r.cost)
    team.metadata.push({ model: r.model, spend: Number(r.cost), total_tokens: r.tokens })
  }
  return [...days].map(([day, teams]) => ({
    group_by_day: day,
    teams: [...teams.values()].sort((a, b) => b.total_spend - a.total_spend),
  }))
}

/** Rows per (day, owner, end user, model, key) as LiteLLM's `[{group_by_day, customers: [{customer, total_spend, metadata}]}]` */
function customerReport(rows: Awaited<ReturnType<typeof endUserDailySpend>>) {
  const days = new Map<string, Map<string, { customer: string; owner: string; total_spend: number; metadata: any[] }>>()
  for (const r of rows) {
    const customers = days.get(r.day) ?? new Map()
    days.set(r.day, customers)
    const name = `${r.user_id}\u0000${r.end_user}`
    const entry = customers.get(name) ?? { customer: r.end_user, owner: String(r.user_id), total_spend: 0, metadata: [] }
    entry.total_spend += Number(r.cost)
    entry.metadata.push({ model: r.model, api_key: r.api_key_id === null ? null : String(r.api_key_id), spend: Number(r.cost), total_tokens: r.tokens })
    customers.set(name, entry)
  }
  return [...days.entries()].map(([day, customers]) => ({
    group_by_day: `${day}T00:00:00+00:00`,
    customers: [...customers.values()].sort((a, b) => b.total_spend - a.total_spend),
  }))
}
