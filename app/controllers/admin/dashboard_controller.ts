import type { HttpContext } from '@adonisjs/core/http'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import Channel from '#models/channel'
import { dailyTotals, medianLatencySince, topBy } from '#services/usage_rollup'

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
    const chartStart = today.minus({ days: 29 })
    const from = chartStart < monthStart ? chartStart : monthStart

    // Rollups first (a no-op once the days are settled), then the reads in parallel.
    const days = await dailyTotals(from, today)
    const [todayFigures, topModels, topUsers, topChannels, unhealthy, monthP50] = await Promise.all([
      liveFigures(today.toJSDate(), today.plus({ days: 1 }).toJSDate()),
      topBy('model', monthStart),
      topBy('user', monthStart),
      topBy('channel', monthStart),
      Channel.query()
        .where((q) => q.where('enabled', false).orWhere('health', '<>', 'closed').orWhere('cooldown_until', '>', new Date()))
        .orderBy('name'),
      medianLatencySince(monthStart),
    ])

    const month = days
      .filter((d) => d.day >= monthStart.toISODate()!)
      .reduce(
        (t, d) => ({
          requests: t.requests + d.requests,
          errors: t.errors + d.errors,
          input: t.input + d.input,
          output: t.output + d.output,
          cost: t.cost + d.cost,
        }),
        { requests: 0, errors: 0, input: 0, output: 0, cost: 0 }
      )
    const chartDays = days.filter((d) => d.day >= chartStart.toISODate()!)
    const [users, channels] = await Promise.all([
      topUsers.length ? db.from('users').whereIn('id', topUsers.map((u) => Number(u.key))).select('id', 'email') : [],
      topChannels.length ? db.from('channels').whereIn('id', topChannels.map((c) => Number(c.key))).select('id', 'name') : [],
    ])
    const emails = new Map(users.map((u: any) => [String(u.id), u.email]))
    const channelNames = new Map(channels.map((c: any) => [String(c.id), c.name]))

    return view.render('admin/dashboard', {
      today: todayFigures,
      month,
      chart: {
        labels: chartDays.map((d) => d.day),
        requests: chartDays.map((d) => d.requests),
        cost: chartDays.map((d) => d.cost),
      },
      topModels,
      topUsers: topUsers.map((u) => ({ ...u, label: emails.get(u.key) ?? `user ${u.key}` })),
      topChannels: topChannels.map((c) => ({ ...c, label: channelNames.get(c.key) ?? `channel ${c.key}` })),
      unhealthy,
      monthName: monthStart.toFormat('LLLL yyyy'),
      monthP50,
    })
  }
}
