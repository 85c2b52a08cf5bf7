import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { pruneUsage } from '#actions/prune_usage'
import { dailyStatusTotals, rollUpDay, statusTotalsPartial } from '#services/usage_rollup'
import { PanelClient, textOf } from '#tests/panel_client'
import { gateway, meterEvent, resetDatabase, seedUser } from '#tests/helpers'

/**
 * The status dimensions of the daily rollups (model_status, requested_status;
 * migration 1032): the Usage page's status filter, alone or with a model,
 * reads them for finished days and today's rows live. Their sums equal the
 * rows' and survive the retention's prune (which the rows' aggregate did
 * not: a pruned day's errors were gone from a status filter's totals).
 */
test.group('Status rollups', (group) => {
  const today = DateTime.utc().startOf('day')
  const D40 = today.minus({ days: 40 })
  const D3 = today.minus({ days: 3 })
  const from = today.minus({ days: 45 })
  let userId = 0

  /** Per day, the rows' own totals for a status filter (and a model: answered or asked for) */
  async function fromRows(status: (q: any) => any, model?: string) {
    const query = db
      .from('usage_records')
      .where('created_at', '>=', from.toJSDate())
      .select(db.raw(`to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day`))
      .select(db.raw('count(*)::int AS requests'), db.raw('count(*) FILTER (WHERE status >= 400)::int AS errors'))
      .select(db.raw('sum(prompt_tokens)::int AS input'), db.raw('sum(completion_tokens)::int AS output'), db.raw('sum(cost)::text AS cost'))
      .groupByRaw('1')
      .orderByRaw('1')
    status(query)
    if (model) query.where((q) => q.where('model', model).orWhere('requested_model', model))
    return (await query).map((r: any) => ({ ...r, cost: Number(r.cost) }))
  }

  async function fromRollup(status: string, model?: string) {
    const days = await dailyStatusTotals(from, today, status, model)
    return days!.filter((d) => d.requests > 0)
  }

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops@status.local', password: 'password123', role: 'admin' })
    userId = (await seedUser()).userId
    const meter = (await gateway()).meter
    let n = 0
    for (const day of [D40, D3, today]) {
      for (const [model, requested, status, errorCode] of [
        ['st-a', null, 200, null],
        ['st-a', null, 200, null],
        ['st-a', null, 502, 'provider_error'],
        ['st-b', null, 429, 'rate_limited'],
        ['st-b', 'st-a', 200, null],
        ['st-b', 'st-a', 502, 'provider_error'],
      ] as const) {
        n++
        meter.record({
          ...meterEvent(userId, model),
          requestedModel: requested,
          status,
          errorCode,
          usage: { promptTokens: 10 * n, completionTokens: n, totalTokens: 11 * n, cachedTokens: 0, reasoningTokens: 0, estimated: false },
          costPico: 1_000_000_007n * BigInt(n),
          createdAt: day.plus({ hours: 1 + (n % 20) }).toJSDate(),
        })
      }
    }
    await meter.drain()
  })

  test('a status alone or with a model: the rollup (finished days) and today live equal the rows, day by day', async ({ assert }) => {
    const cases: Array<[string, (q: any) => any]> = [
      ['error', (q) => q.where('status', '>=', 400)],
      ['ok', (q) => q.where('status', '<', 400)],
      ['502', (q) => q.where('status', 502)],
      ['429', (q) => q.where('status', 429)],
    ]
    for (const [status, where] of cases) {
      for (const model of [undefined, 'st-a', 'st-b', 'nope']) {
        assert.deepEqual(await fromRollup(status, model), await fromRows(where, model), `status=${status} model=${model}`)
      }
    }
    // Finished days were read from their rollup rows: model_status and requested_status (fallback rows only).
    const rolled = await db.from('usage_daily').where('day', D3.toISODate()!).whereIn('dim', ['model_status', 'requested_status']).orderBy(['dim', 'key']).select('dim', 'key', 'requests')
    assert.deepEqual(rolled.map((r) => [r.dim, r.key, Number(r.requests)]), [
      ['model_status', '200 st-a', 2],
      ['model_status', '200 st-b', 1],
      ['model_status', '429 st-b', 1],
      ['model_status', '502 st-a', 1],
      ['model_status', '502 st-b', 1],
      ['requested_status', '200 st-a', 1],
      ['requested_status', '502 st-a', 1],
    ])
    // An error code is not in the rollup: the page aggregates the rows for it.
    assert.isNull(await dailyStatusTotals(from, today, 'rate_limited'))
  })

  test("a pruned day's statuses stay in the totals (kept with the pruned totals); the page shows them", async ({ assert }) => {
    const before = await fromRollup('error')
    const pruned = await pruneUsage({ keepDays: 31 })
    assert.equal(pruned.rows, 6)
    assert.equal(await db.from('usage_records').where('created_at', '<', D3.toJSDate()).count('* as n').first().then((r) => Number(r.n)), 0)
    // The day is rolled up again from its pruned totals (as a late row would have it redone).
    await rollUpDay(D40)
    assert.deepEqual(await fromRollup('error'), before)
    assert.equal(before.find((d) => d.day === D40.toISODate())?.requests, 3)
    assert.isFalse(await statusTotalsPartial(from, today))

    const admin = new PanelClient()
    await admin.login('ops@status.local', 'password123')
    const page = await admin.get(`/admin/usage?status=error&from=${from.toISODate()}&to=${today.toISODate()}`)
    assert.equal(page.status, 200)
    // 3 errors a day over 3 days, the pruned day's included.
    assert.include(textOf(page.html), 'Requests 9 9 errors')
  })

  test('a day pruned before the status rollup existed counts its kept rows only, and the notice says so', async ({ assert }) => {
    // As a prune before migration 1032 left it: the pruned totals by model, none by status.
    await db.from('usage_daily_pruned').whereIn('dim', ['model_status', 'requested_status']).delete()
    assert.isTrue(await statusTotalsPartial(from, today))
    assert.isFalse(await statusTotalsPartial(D3, today), 'no pruned day in the range')
  })
})
