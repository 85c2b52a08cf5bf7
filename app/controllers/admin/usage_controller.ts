import app from '@adonisjs/core/services/app'
import type { HttpContext } from '@adonisjs/core/http'
import { recordId } from '#services/record_id'
import { notFound } from '#controllers/admin/panel'
import { loggedBodies } from '#services/logged_bodies'
import db from '@adonisjs/lucid/services/db'
import { DateTime } from 'luxon'
import { applyFilters, FILTER_NAMES, parseFilters, userIdOf, type UsageFilters } from '#services/usage_query'
import { dailyStatusTotals, dailyTotals, fillDays, statusTotalsPartial, type DayTotals } from '#services/usage_rollup'
import { streamUsageCsv } from '#services/usage_csv'
import { endUserDailyTotals, spendByEndUser } from '#services/end_user_spend'
import { retentionNotice } from '#services/usage_retention'
import { REQUEST_ID_PATTERN } from '#gateway/metering/request_id'
import { usageRangeErrors } from '#validators/usage_period'

const PAGE = 50
/** End users listed under a user's usage (the costliest); the management API's /spend/end-users has 100 */
const END_USERS_SHOWN = 20

export default class UsageController {
  /** The request log: filters, totals and a per-day chart for the filter, keyset pages of 50. */
  async index({ request, view, response, session }: HttpContext) {
    // A request id a user quotes (every answer's x-request-id, every error's): straight to its page.
    const quoted = String(request.input('request_id', '') ?? '').trim().toLowerCase()
    if (quoted) {
      const found = REQUEST_ID_PATTERN.test(quoted) ? await db.from('usage_records').where('request_id', quoted).select('id').first() : null
      if (found) return response.redirect(`/admin/usage/${found.id}`)
      session.flash('error', REQUEST_ID_PATTERN.test(quoted) ? `No request ${quoted} (never metered here, or pruned by the retention).` : 'A request id looks like 01937b2e-…: the x-request-id of an answer.')
      return response.redirect('/admin/usage')
    }
    // A range the report would not answer as typed (from after to, over a year, not a day): said beside
    // the date fields with the values kept, as the management API refuses it (400); nothing is read.
    const rangeErrors = await usageRangeErrors(request.qs())
    if (rangeErrors.from || rangeErrors.to) {
      response.status(422)
      const typed = { ...parseFilters(request.qs()), from: typedValue(request.qs().from), to: typedValue(request.qs().to) }
      const channels = await db.from('channels').select('id', 'name').orderBy('name')
      return view.render('admin/usage/index', { filters: typed, rangeErrors, channels, retention: retentionNotice() })
    }
    const filters = parseFilters(request.qs())
    const userId = await userIdOf(filters.user)
    const before = recordId(request.input('before'))

    const page = applyFilters(
      db
        .from('usage_records as u')
        .leftJoin('users', 'users.id', 'u.user_id')
        .leftJoin('channels', 'channels.id', 'u.channel_id')
        .leftJoin('api_keys', 'api_keys.id', 'u.api_key_id')
        .select('u.id', 'u.created_at', 'u.model', 'u.requested_model', 'u.cache_hit', 'u.status', 'u.error_code', 'u.prompt_tokens', 'u.completion_tokens',
          'u.cached_tokens', 'u.cost', 'u.latency_ms', 'u.estimated', 'u.stream', 'u.endpoint', 'u.user_id', 'u.channel_id', 'u.api_key_id', 'u.tags', 'u.end_user')
        .select('users.email as user_email', 'channels.name as channel_name', 'api_keys.name as key_name', 'api_keys.prefix as key_prefix')
        .orderBy('u.id', 'desc')
        .limit(PAGE + 1),
      filters,
      userId
    )
    if (before) page.where('u.id', '<', before)

    const [rows, { days, fromRows }, channels, endUsers] = await Promise.all([
      page,
      perDay(filters, userId),
      db.from('channels').select('id', 'name').orderBy('name'),
      // Spend per end user for one account's rows (a reseller's customers): the user's rows in the range.
      userId !== null ? spendByEndUser(filters, userId, END_USERS_SHOWN) : null,
    ])
    const records = rows.slice(0, PAGE)
    const next = rows.length > PAGE ? records[records.length - 1].id : null
    const totals = days.reduce(
      (t, d) => ({
        requests: t.requests + d.requests,
        errors: t.errors + d.errors,
        input: t.input + Number(d.input),
        output: t.output + Number(d.output),
        cost: t.cost + Number(d.cost),
      }),
      { requests: 0, errors: 0, input: 0, output: 0, cost: 0 }
    )
    const chart = { labels: days.map((d) => d.day), requests: days.map((d) => d.requests), cost: days.map((d) => d.cost) }
    const params = Object.fromEntries(FILTER_NAMES.map((n) => [n, filters[n]]))
    // With retention on, rows before `since` are gone: the rollups still have their totals, a filter
    // they cannot answer (key, status, several dimensions) counts only the rows kept.
    const retention = retentionNotice()
    const partialTotals = Boolean(retention && fromRows && filters.from < retention.since)
    return view.render('admin/usage/index', { filters, params, records, next, before, totals, chart, channels, retention, partialTotals, endUsers })
  }

  /** Streams the filtered rows as CSV (keyset batches, flat memory, backpressure respected). */
  async export({ request, response }: HttpContext) {
    // A refused range is explained on the page (the link is not offered there), not exported as another range.
    const rangeErrors = await usageRangeErrors(request.qs())
    if (rangeErrors.from || rangeErrors.to) return response.redirect(`/admin/usage?${request.url(true).split('?')[1] ?? ''}`)
    const filters = parseFilters(request.qs())
    const userId = await userIdOf(filters.user)
    await streamUsageCsv(response.response, filters, userId, `usage-${filters.from}-to-${filters.to}.csv`)
  }

  /** One request's whole story: tokens by kind, cost, attempts per channel with outcomes and timings, the ledger charge. */
  async show(ctx: HttpContext) {
    const { params, view } = ctx
    const record = await db
      .from('usage_records as u')
      .leftJoin('users', 'users.id', 'u.user_id')
      .leftJoin('channels', 'channels.id', 'u.channel_id')
      .leftJoin('api_keys', 'api_keys.id', 'u.api_key_id')
      .where('u.id', Number(params.id))
      .select('u.*', 'users.email as user_email', 'channels.name as channel_name', 'api_keys.name as key_name', 'api_keys.prefix as key_prefix', 'api_keys.last_four as key_last_four')
      .first()
    if (!record) return (await prunedRequest(ctx, Number(params.id))) ?? notFound(ctx)
    const [attempts, charge, bodies] = await Promise.all([
      db
        .from('request_attempts as a')
        .leftJoin('channels', 'channels.id', 'a.channel_id')
        .where('a.request_id', record.request_id)
        .orderBy('a.attempt')
        .select('a.*', 'channels.name as channel_name'),
      db.from('balance_ledger').where('usage_record_id', record.id).where('kind', 'charge').first(),
      loggedBodies(record.request_id),
    ])
    // A clean request (one attempt, answered) writes no attempts row: its one attempt is the record itself.
    if (attempts.length === 0 && record.channel_id && record.status < 400) {
      attempts.push({
        attempt: 1,
        channel_id: record.channel_id,
        channel_name: record.channel_name,
        outcome: 'ok',
        status: record.status,
        latency_ms: record.latency_ms,
        error: null,
      })
    }
    return view.render('admin/usage/show', {
      record,
      attempts,
      charge,
      bodies,
      logging: (await app.container.make('gateway')).requestLogs?.mode ?? 'off',
    })
  }
}

/** A query parameter as the user typed it, for the form (the first of a repeated one). */
function typedValue(value: unknown): string {
  return String((Array.isArray(value) ? value[0] : value) ?? '')
}

/**
 * Per-day totals of the filtered range (chart and totals). A date range with
 * at most one of model / user / channel / tag reads the daily rollups (plus
 * today live), an end user with or without user / key / model the end-user
 * rollup, a status (ok, error, a code) with or without a model the status
 * rollup; other filters aggregate the matching rows, which the indexes on
 * (user_id | channel_id | model, created_at) keep to the filtered set.
 */
async function perDay(filters: UsageFilters, userId: number | null): Promise<{ days: DayTotals[]; fromRows: boolean }> {
  const from = DateTime.fromISO(filters.from, { zone: 'utc' })
  const to = DateTime.fromISO(filters.to, { zone: 'utc' })
  const dims = [
    filters.model ? { dim: 'model' as const, key: filters.model } : null,
    userId !== null ? { dim: 'user' as const, key: String(userId) } : null,
    /^\d+$/.test(filters.channel) ? { dim: 'channel' as const, key: filters.channel } : null,
  ].filter((d) => d !== null)
  if (!filters.key && !filters.status && !filters.tag && !filters.end_user && dims.length <= 1) return { days: await dailyTotals(from, to, dims[0]), fromRows: false }
  // An end user, with or without an owner, key or model: the end-user rollup (usage_daily_end_users) and today's rows.
  const endUserDays = await endUserDailyTotals(filters, userId)
  if (endUserDays) return { days: fillDays(endUserDays, from, to), fromRows: false }
  // A tag alone: its rollup rows (the rollups hold one dimension at a time).
  if (!filters.key && !filters.status && !filters.end_user && filters.tag && dims.length === 0) {
    return { days: await dailyTotals(from, to, { dim: 'tag', key: filters.tag }), fromRows: false }
  }
  // A status (ok, error, an HTTP status), alone or with a model: the status rollup (model_status).
  // Days pruned before it existed (migration 1032) have it from their kept rows only: then the
  // retention notice stays (fromRows), as for totals read from the rows.
  if (!filters.key && !filters.tag && !filters.end_user && filters.status && dims.length === (filters.model ? 1 : 0)) {
    const [days, partial] = await Promise.all([dailyStatusTotals(from, to, filters.status, filters.model || undefined), statusTotalsPartial(from, to)])
    if (days) return { days, fromRows: partial }
  }

  const rows = await applyFilters(
    db
      .from('usage_records as u')
      .select(db.raw(`to_char(date_trunc('day', u.created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day`))
      .select(db.raw('count(*)::int AS requests'))
      .select(db.raw('count(*) FILTER (WHERE u.status >= 400)::int AS errors'))
      .select(db.raw('coalesce(sum(u.prompt_tokens), 0)::bigint AS input'))
      .select(db.raw('coalesce(sum(u.completion_tokens), 0)::bigint AS output'))
      .select(db.raw('coalesce(sum(u.cost), 0)::text AS cost'))
      .groupByRaw('1'),
    filters,
    userId
  )
  return { days: fillDays(new Map(rows.map((r: any) => [r.day, r])), from, to), fromRows: true }
}

/**
 * The 404 of a request whose row the usage retention deleted: which day it
 * was from and when it went (usage_pruned_days keeps each pruned day's id
 * range), and that its cost is still in the ledger and the totals. Null for
 * an id no prune took (the usual 404).
 */
async function prunedRequest(ctx: HttpContext, id: number) {
  if (!Number.isSafeInteger(id) || id <= 0) return null
  const day = await db
    .from('usage_pruned_days')
    .where('first_id', '<=', id)
    .where('last_id', '>=', id)
    .orderBy('day')
    .select(db.raw(`to_char(day, 'YYYY-MM-DD') AS day`), 'pruned_at')
    .first()
  if (!day) return null
  ctx.response.status(404)
  return ctx.view.render('admin/usage/pruned', { id, day: day.day, prunedAt: day.pruned_at, retention: retentionNotice() })
}
