import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'

/** Today's rollup is refreshed at most this often (the dashboard's today cards are live anyway). */
const TODAY_TTL_MS = 60_000
/** A past day is final once rolled up this long after it ended (late metering batches land first). */
const SETTLE_MS = 10 * 60_000

/**
 * Makes sure usage_daily holds every day of [from, today]: past days once
 * they have settled, today when older than a minute. Each day is replaced
 * in one transaction under an advisory lock, so two dashboards never
 * double-count.
 */
export async function ensureRollups(from: DateTime, today: DateTime) {
  const done = await db.from('usage_daily_days').where('day', '>=', from.toISODate()!).select('day', 'computed_at')
  const computed = new Map(done.map((r) => [toDay(r.day), new Date(r.computed_at).getTime()]))
  const now = Date.now()
  for (let day = from.startOf('day'); day <= today; day = day.plus({ days: 1 })) {
    const key = day.toISODate()!
    const at = computed.get(key)
    const dayEnd = day.plus({ days: 1 }).toMillis()
    const fresh = at !== undefined && (at >= dayEnd + SETTLE_MS || (dayEnd > now && now - at < TODAY_TTL_MS))
    if (!fresh) await rollUpDay(day)
  }
}

export async function rollUpDay(day: DateTime) {
  const start = day.startOf('day').toJSDate()
  const end = day.startOf('day').plus({ days: 1 }).toJSDate()
  const key = day.toISODate()!
  await db.transaction(async (trx) => {
    await trx.rawQuery('SELECT pg_advisory_xact_lock(hashtext(?))', [`usage_daily:${key}`])
    await trx.from('usage_daily').where('day', key).delete()
    await trx.rawQuery(
      `INSERT INTO usage_daily (day, user_id, model, channel_id, requests, errors, input_tokens, output_tokens, cost)
       SELECT ?::date, user_id, model, channel_id, count(*), count(*) FILTER (WHERE status >= 400),
              coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), coalesce(sum(cost), 0)
         FROM usage_records WHERE created_at >= ? AND created_at < ?
        GROUP BY user_id, model, channel_id`,
      [key, start, end]
    )
    await trx.rawQuery(
      `INSERT INTO usage_daily_days (day, computed_at) VALUES (?, now())
       ON CONFLICT (day) DO UPDATE SET computed_at = excluded.computed_at`,
      [key]
    )
  })
}

export interface DayTotals {
  day: string
  requests: number
  errors: number
  input: number
  output: number
  cost: number
}

/** Per-day totals from the rollups for [from, to], zero-filled. */
export async function dailyTotals(from: DateTime, to: DateTime): Promise<DayTotals[]> {
  const rows = await db
    .from('usage_daily')
    .whereBetween('day', [from.toISODate()!, to.toISODate()!])
    .groupBy('day')
    .select('day')
    .select(db.raw('sum(requests)::bigint AS requests'))
    .select(db.raw('sum(errors)::bigint AS errors'))
    .select(db.raw('sum(input_tokens)::bigint AS input'))
    .select(db.raw('sum(output_tokens)::bigint AS output'))
    .select(db.raw('sum(cost)::text AS cost'))
  const byDay = new Map(rows.map((r) => [toDay(r.day), r]))
  const out: DayTotals[] = []
  for (let day = from.startOf('day'); day <= to; day = day.plus({ days: 1 })) {
    const r = byDay.get(day.toISODate()!)
    out.push({
      day: day.toISODate()!,
      requests: Number(r?.requests ?? 0),
      errors: Number(r?.errors ?? 0),
      input: Number(r?.input ?? 0),
      output: Number(r?.output ?? 0),
      cost: Number(r?.cost ?? 0),
    })
  }
  return out
}

function toDay(value: unknown): string {
  if (value instanceof Date) return DateTime.fromJSDate(value, { zone: 'utc' }).toISODate()!
  return String(value).slice(0, 10)
}
