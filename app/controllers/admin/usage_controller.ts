import type { HttpContext } from '@adonisjs/core/http'
import db from '@adonisjs/lucid/services/db'
import { applyFilters, FILTER_NAMES, parseFilters, rangeOf, userIdOf } from '#services/usage_query'
import { streamUsageCsv } from '#services/usage_csv'

const PAGE = 50

export default class UsageController {
  /** The request log: filters, totals and a per-day chart for the filter, keyset pages of 50. */
  async index({ request, view }: HttpContext) {
    const filters = parseFilters(request.qs())
    const userId = await userIdOf(filters.user)
    const before = Number(request.input('before')) || null

    const page = applyFilters(
      db
        .from('usage_records as u')
        .leftJoin('users', 'users.id', 'u.user_id')
        .leftJoin('channels', 'channels.id', 'u.channel_id')
        .leftJoin('api_keys', 'api_keys.id', 'u.api_key_id')
        .select('u.id', 'u.created_at', 'u.model', 'u.status', 'u.error_code', 'u.prompt_tokens', 'u.completion_tokens',
          'u.cached_tokens', 'u.cost', 'u.latency_ms', 'u.estimated', 'u.stream', 'u.endpoint', 'u.user_id', 'u.channel_id', 'u.api_key_id')
        .select('users.email as user_email', 'channels.name as channel_name', 'api_keys.name as key_name', 'api_keys.prefix as key_prefix')
        .orderBy('u.id', 'desc')
        .limit(PAGE + 1),
      filters,
      userId
    )
    if (before) page.where('u.id', '<', before)

    // One pass over the filtered range gives the chart and the totals.
    const daily = applyFilters(
      db
        .from('usage_records as u')
        .select(db.raw(`to_char(date_trunc('day', u.created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day`))
        .select(db.raw('count(*)::int AS requests'))
        .select(db.raw('count(*) FILTER (WHERE u.status >= 400)::int AS errors'))
        .select(db.raw('coalesce(sum(u.prompt_tokens), 0)::bigint AS input'))
        .select(db.raw('coalesce(sum(u.completion_tokens), 0)::bigint AS output'))
        .select(db.raw('coalesce(sum(u.cost), 0)::text AS cost'))
        .groupByRaw('1')
        .orderByRaw('1'),
      filters,
      userId
    )
    const [rows, days, channels] = await Promise.all([
      page,
      daily,
      db.from('channels').select('id', 'name').orderBy('name'),
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
    const chart = fillDays(filters.from, filters.to, days)
    const params = Object.fromEntries(FILTER_NAMES.map((n) => [n, filters[n]]))
    return view.render('admin/usage/index', { filters, params, records, next, before, totals, chart, channels })
  }

  /** Streams the filtered rows as CSV (keyset batches, flat memory, backpressure respected). */
  async export({ request, response }: HttpContext) {
    const filters = parseFilters(request.qs())
    const userId = await userIdOf(filters.user)
    await streamUsageCsv(response.response, filters, userId, `usage-${filters.from}-to-${filters.to}.csv`)
  }

  /** One request's whole story: tokens by kind, cost, attempts per channel with outcomes and timings, the ledger charge. */
  async show({ params, view, response }: HttpContext) {
    const record = await db
      .from('usage_records as u')
      .leftJoin('users', 'users.id', 'u.user_id')
      .leftJoin('channels', 'channels.id', 'u.channel_id')
      .leftJoin('api_keys', 'api_keys.id', 'u.api_key_id')
      .where('u.id', Number(params.id))
      .select('u.*', 'users.email as user_email', 'channels.name as channel_name', 'api_keys.name as key_name', 'api_keys.prefix as key_prefix', 'api_keys.last_four as key_last_four')
      .first()
    if (!record) return response.notFound('No such request')
    const [attempts, charge] = await Promise.all([
      db
        .from('request_attempts as a')
        .leftJoin('channels', 'channels.id', 'a.channel_id')
        .where('a.request_id', record.request_id)
        .orderBy('a.attempt')
        .select('a.*', 'channels.name as channel_name'),
      db.from('balance_ledger').where('usage_record_id', record.id).where('kind', 'charge').first(),
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
    return view.render('admin/usage/show', { record, attempts, charge })
  }
}

/** Every day of the range, zero-filled, for the chart. */
function fillDays(from: string, to: string, rows: Array<{ day: string; requests: number; cost: string }>) {
  const byDay = new Map(rows.map((r) => [r.day, r]))
  const labels: string[] = []
  const requests: number[] = []
  const cost: number[] = []
  const { start, end } = rangeOf({ from, to } as any)
  for (let t = start.getTime(); t < end.getTime() && labels.length < 400; t += 86_400_000) {
    const day = new Date(t).toISOString().slice(0, 10)
    labels.push(day)
    requests.push(byDay.get(day)?.requests ?? 0)
    cost.push(Number(byDay.get(day)?.cost ?? 0))
  }
  return { labels, requests, cost }
}
