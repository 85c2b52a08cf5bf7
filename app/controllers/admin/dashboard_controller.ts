import type { HttpContext } from '@adonisjs/core/http'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import Channel from '#models/channel'
import { dailyTotals, ensureRollups } from '#services/usage_rollup'

/** Figures of a period: requests, tokens, spend, error rate, p50 latency. */
async function liveFigures(start: Date, end: Date) {
  const row = await db
    .from('usage_records')
    .where('created_at', '>=', start)
    .where('created_at', '<', end)
    .select(db.raw('count(*)::int AS requests'))
    .select(db.raw('count(*) FILTER (WHERE status >= 400)::int AS errors'))
    .select(db.raw('coalesce(sum(prompt_tokens), 0)::bigint AS input'))
    .select(db.raw('coalesce(sum(completion_tokens), 0)::bigint AS output'))
    .select(db.raw('coalesce(sum(cost), 0)::text AS cost'))
    .select(db.raw('percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::int AS p50'))
    .first()
  return row
}

export default class DashboardController {
  /** The operator's overview: today and this month, top models/users/channels, 30-day chart, unhealthy channels. */
  async index({ view }: HttpContext) {
    const now = DateTime.utc()
    const today = now.startOf('day')
    const monthStart = now.startOf('month')
    await ensureRollups(today.minus({ days: 30 }) < monthStart ? today.minus({ days: 30 }) : monthStart, today)

    const [todayFigures, days, topModels, topUsers, topChannels, unhealthy] = await Promise.all([
      liveFigures(today.toJSDate(), today.plus({ days: 1 }).toJSDate()),
      dailyTotals(today.minus({ days: 29 }), today),
      topBy('model', monthStart),
      topBy('user_id', monthStart),
      topBy('channel_id', monthStart),
      Channel.query()
        .where((q) => q.where('enabled', false).orWhere('health', '<>', 'closed').orWhere('cooldown_until', '>', new Date()))
        .orderBy('name'),
    ])

    // This month = rolled-up past days of the month + today live.
    const monthDays = days.filter((d) => d.day >= monthStart.toISODate()!)
    const month = monthDays.reduce(
      (t, d) => ({
        requests: t.requests + d.requests,
        errors: t.errors + d.errors,
        input: t.input + d.input,
        output: t.output + d.output,
        cost: t.cost + d.cost,
      }),
      { requests: 0, errors: 0, input: 0, output: 0, cost: 0 }
    )
    const todayDay = days.find((d) => d.day === today.toISODate())
    const userIds = topUsers.map((u) => u.key)
    const channelIds = topChannels.map((c) => c.key)
    const [users, channels] = await Promise.all([
      userIds.length ? db.from('users').whereIn('id', userIds).select('id', 'email') : [],
      channelIds.length ? db.from('channels').whereIn('id', channelIds).select('id', 'name') : [],
    ])
    const emails = new Map(users.map((u: any) => [String(u.id), u.email]))
    const channelNames = new Map(channels.map((c: any) => [String(c.id), c.name]))

    return view.render('admin/dashboard', {
      today: todayFigures,
      todayDay,
      month,
      chart: { labels: days.map((d) => d.day), requests: days.map((d) => d.requests), cost: days.map((d) => d.cost) },
      topModels,
      topUsers: topUsers.map((u) => ({ ...u, label: emails.get(String(u.key)) ?? `user ${u.key}` })),
      topChannels: topChannels.map((c) => ({ ...c, label: channelNames.get(String(c.key)) ?? 'none' })),
      unhealthy,
      monthName: monthStart.toFormat('LLLL yyyy'),
    })
  }
}

/** Top 5 of a dimension this month by spend, from the daily rollups plus today. */
async function topBy(column: 'model' | 'user_id' | 'channel_id', since: DateTime) {
  const rows = await db
    .from('usage_daily')
    .where('day', '>=', since.toISODate()!)
    .whereNotNull(column)
    .groupBy(column)
    .select(db.raw(`${column}::text AS key`))
    .select(db.raw('sum(requests)::bigint AS requests'))
    .select(db.raw('sum(input_tokens + output_tokens)::bigint AS tokens'))
    .select(db.raw('sum(cost)::text AS cost'))
    .orderByRaw('sum(cost) DESC, sum(requests) DESC')
    .limit(5)
  return rows.map((r) => ({ key: r.key as string, requests: Number(r.requests), tokens: Number(r.tokens), cost: Number(r.cost) }))
}
