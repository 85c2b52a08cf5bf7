import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { pruneUsage } from '#actions/prune_usage'
import { money } from '#services/management_api'
import { rollUpStaleDays } from '#services/usage_rollup'
import { endUserDailyTotals } from '#services/end_user_spend'
import { parseFilters } from '#services/usage_query'
import { PanelClient, textOf } from '#tests/panel_client'
import { adminApi, baseUrl, gateway, meterEvent, resetDatabase, seedUser, type SeededUser } from '#tests/helpers'

/**
 * The end-user dimension of the daily rollups (usage_daily_end_users,
 * migration 1008): the end-user spend reports read it for finished days and
 * today's rows live, so their sums equal the rows', survive the retention's
 * prune and a late row, and a report by customer may span any range the
 * usage views allow.
 */
let adminKey = ''

async function litellm(path: string) {
  const response = await fetch(`${baseUrl()}${path}`, { headers: { authorization: `Bearer ${adminKey}` } })
  return { status: response.status, body: (await response.json()) as any }
}

/** The rows' own sum of cost (exact numeric), as the management API prints money */
async function rowsCost(where: (q: any) => any) {
  const row = await where(db.from('usage_records').whereNotNull('end_user')).sum('cost as cost').first()
  return money(String(row.cost ?? '0'))
}

test.group('End-user rollups', (group) => {
  let alice: SeededUser
  let bob: SeededUser
  const today = DateTime.utc().startOf('day')
  const monthStart = today.startOf('month')
  /** A finished day of this month when there is one (today otherwise: the month is then today alone) */
  const inMonth = today.minus({ days: 1 }) >= monthStart ? today.minus({ days: 1 }) : today
  const D3 = today.minus({ days: 3 })
  const D40 = today.minus({ days: 40 })

  /** Costs with all 12 decimals used: a float sum would not land on them. */
  const at = (who: SeededUser, day: DateTime, endUser: string, model: string, cost: bigint, hours = 1) => ({
    ...meterEvent(who.userId, model),
    apiKeyId: who.keyId,
    endUser,
    costPico: cost,
    createdAt: day.plus({ hours }).toJSDate(),
  })

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops@eur.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@eur.local', name: 'eur-master', manage: true })).key
    alice = await seedUser()
    bob = await seedUser()
    const meter = (await gateway()).meter
    for (const day of [D40, D3, inMonth, today]) {
      meter.record(at(alice, day, 'cust-1', 'model-a', 1_234_567_891n))
      meter.record(at(alice, day, 'cust-1', 'model-b', 2_000_000_003n, 2))
      meter.record(at(alice, day, 'cust-2', 'model-a', 700_000_000_007n))
      meter.record(at(bob, day, 'cust-1', 'model-a', 333_333_333_333n))
    }
    // A row without an end user: in no end-user total.
    meter.record({ ...meterEvent(alice.userId, 'model-a'), costPico: 9_000_000_000_000n, createdAt: D3.plus({ hours: 1 }).toJSDate() })
    await meter.drain()
  })

  test('spend per end user over finished days and today equals the rows\' sum to the last decimal, read from the rollup', async ({ assert }) => {
    const from = D40.toISODate()!
    const spend = await adminApi('GET', `/spend/end-users?from=${from}&to=${today.toISODate()}`, adminKey)
    assert.equal(spend.status, 200, JSON.stringify(spend.body))
    const expected = async (userId: number, endUser: string) => rowsCost((q) => q.where('user_id', userId).where('end_user', endUser))
    assert.deepEqual(
      spend.body.data.map((r: any) => [r.user_id, r.end_user, r.requests, r.cost]),
      [
        [alice.userId, 'cust-2', 4, await expected(alice.userId, 'cust-2')],
        [bob.userId, 'cust-1', 4, await expected(bob.userId, 'cust-1')],
        [alice.userId, 'cust-1', 8, await expected(alice.userId, 'cust-1')],
      ]
    )
    assert.equal(spend.body.data[2].cost, '0.012938271576', '4 x (0.001234567891 + 0.002000000003)')
    // The finished days come from the rollup (today is never rolled up: read live).
    const finished = new Set([D40, D3, inMonth].filter((d) => d < today).map((d) => d.toISODate())).size
    const rolled = await db.from('usage_daily_end_users').where('user_id', alice.userId).where('end_user', 'cust-1')
    assert.lengthOf(rolled, 2 * finished, 'one row per finished day and model')
    assert.isTrue(rolled.every((r) => Number(r.api_key_id) === alice.keyId && Number(r.requests) === 1))
    // The filters the rollup answers (owner, key, model, end user) and one it does not (status: the rows).
    const filtered = await adminApi('GET', `/spend/end-users?from=${from}&user=${alice.userId}&key=${alice.keyId}&model=model-b&end_user=cust-1`, adminKey)
    assert.deepEqual(filtered.body.data.map((r: any) => [r.end_user, r.requests, r.cost]), [['cust-1', 4, '0.008000000012']])
    const ok = await adminApi('GET', `/spend/end-users?from=${from}&user=${bob.userId}&status=ok`, adminKey)
    assert.deepEqual(ok.body.data.map((r: any) => [r.end_user, r.cost]), [['cust-1', await expected(bob.userId, 'cust-1')]])
  })

  test('/customer/info, /customer/list, the End users page and /api/admin/end-users: this month\'s spend from the rollup plus today', async ({ assert }) => {
    const month = async (userId: number, endUser: string) => {
      const rows = db.from('usage_records').where('user_id', userId).where('end_user', endUser).where('created_at', '>=', monthStart.toJSDate())
      const row = await rows.count('* as n').sum('cost as cost').first()
      return [money(String(row.cost)), Number(row.n)] as const
    }
    const info = await litellm(`/customer/info?end_user_id=cust-2&owner=${alice.userId}`)
    assert.equal(info.status, 200, JSON.stringify(info.body))
    assert.equal(info.body.spend, Number((await month(alice.userId, 'cust-2'))[0]))
    const list = await litellm(`/customer/list?owner=${alice.userId}`)
    assert.deepEqual(list.body.map((c: any) => [c.user_id, c.spend]), [
      ['cust-2', Number((await month(alice.userId, 'cust-2'))[0])],
      ['cust-1', Number((await month(alice.userId, 'cust-1'))[0])],
    ])
    const api = await adminApi('GET', `/end-users?user=${alice.userId}`, adminKey)
    assert.deepEqual(
      api.body.data.map((e: any) => [e.end_user, e.spent_this_month, e.requests_this_month]),
      [['cust-2', ...(await month(alice.userId, 'cust-2'))], ['cust-1', ...(await month(alice.userId, 'cust-1'))]]
    )
    const admin = new PanelClient()
    await admin.login('ops@eur.local', 'password123')
    const page = await admin.get(`/admin/users/${alice.userId}/end-users`)
    assert.equal(page.status, 200)
    assert.include(page.html, 'data-end-user="cust-2"')
    assert.include(textOf(page.html), 'cust-1')
  })

  test('the report by customer spans more than 31 days (rollups + today), each day equal to its rows', async ({ assert }) => {
    const answer = await litellm(`/global/spend/report?group_by=customer&start_date=${D40.toISODate()}&end_date=${today.toISODate()}`)
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    const days = [...new Set([D40, D3, inMonth, today].map((d) => d.toISODate()!))]
    assert.deepEqual(answer.body.map((d: any) => d.group_by_day.slice(0, 10)), days)
    for (const day of answer.body) {
      const start = DateTime.fromISO(day.group_by_day.slice(0, 10), { zone: 'utc' })
      for (const c of day.customers) {
        const cost = await rowsCost((q) => q.where('user_id', Number(c.owner)).where('end_user', c.customer)
          .where('created_at', '>=', start.toJSDate()).where('created_at', '<', start.plus({ days: 1 }).toJSDate()))
        assert.equal(c.metadata.reduce((sum: bigint, m: any) => sum + BigInt(Math.round(m.spend * 1e12)), 0n), BigInt(Math.round(Number(cost) * 1e12)), `${day.group_by_day} ${c.customer}`)
            for (const m of c.metadata) assert.equal(m.api_key, String(Number(c.owner) === alice.userId ? alice.keyId : bob.keyId))
      }
    }
    const year = await litellm(`/global/spend/report?group_by=customer&start_date=${today.minus({ days: 364 }).toISODate()}&end_date=${today.toISODate()}`)
    assert.equal(year.status, 200, 'a year: the widest range the usage views take')
    assert.deepEqual(year.body, answer.body)
  })

  test('a late row marks its rolled-up day stale: the day is rolled up again and the totals include it', async ({ assert }) => {
    const range = `start_date=${D3.toISODate()}&end_date=${D3.toISODate()}&group_by=customer`
    const before = await litellm(`/global/spend/report?${range}`)
    const bobBefore = before.body[0].customers.find((c: any) => c.owner === String(bob.userId))
    const meter = (await gateway()).meter
    meter.record(at(bob, D3, 'cust-1', 'model-c', 10_000_000_001n, 5))
    await meter.drain()
    assert.lengthOf(await db.from('usage_daily_stale').where('day', D3.toISODate()!), 1, 'marked by the meter')
    assert.isAtLeast(await rollUpStaleDays(10, undefined, 0), 1)
    const row = await db.from('usage_daily_end_users').where('day', D3.toISODate()!).where('user_id', bob.userId).where('model', 'model-c').first()
    assert.equal(row?.cost, '0.010000000001', 'the late row is in the rollup')
    const after = await litellm(`/global/spend/report?${range}`)
    const bobAfter = after.body[0].customers.find((c: any) => c.owner === String(bob.userId))
    assert.deepEqual(bobAfter.metadata.map((m: any) => m.model).sort(), ['model-a', 'model-c'])
    assert.closeTo(bobAfter.total_spend, bobBefore.total_spend + 0.010000000001, 1e-12)
  })

  test('pruned days keep their end-user totals, also when rolled up again after the prune', async ({ assert }) => {
    const range = `from=${D40.toISODate()}&to=${D40.toISODate()}`
    const report = `start_date=${D40.toISODate()}&end_date=${D40.toISODate()}&group_by=customer`
    const before = await adminApi('GET', `/spend/end-users?${range}`, adminKey)
    const beforeReport = (await litellm(`/global/spend/report?${report}`)).body
    // The Usage page's totals and chart for an end user (the end-user rollup).
    const pageFilters = parseFilters({ end_user: 'cust-1', from: D40.toISODate(), to: D40.toISODate() })
    const beforeDays = await endUserDailyTotals(pageFilters, null)
    const d40 = beforeDays?.get(D40.toISODate()!)
    assert.deepEqual([Number(d40.requests), Number(d40.errors), Number(d40.input), Number(d40.output), d40.cost], [3, 0, 30, 15, '0.336567901227'])
    assert.lengthOf(before.body.data, 3)
    const pruned = await pruneUsage({ keepDays: 31 })
    assert.equal(pruned.rows, 4)
    assert.lengthOf(await db.from('usage_records').where('created_at', '<', D40.plus({ days: 1 }).toJSDate()), 0, 'the rows are gone')
    assert.isAbove(Number((await db.from('usage_daily_end_users_pruned').where('day', D40.toISODate()!).count('* as n').first()).n), 0)
    assert.deepEqual((await adminApi('GET', `/spend/end-users?${range}`, adminKey)).body.data, before.body.data)
    // Rolled up again from the rows left (none) plus what the pruned ones added up to.
    await db.table('usage_daily_stale').insert({ day: D40.toISODate() }).onConflict('day').ignore()
    assert.deepEqual((await adminApi('GET', `/spend/end-users?${range}`, adminKey)).body.data, before.body.data)
    assert.deepEqual((await litellm(`/global/spend/report?${report}`)).body, beforeReport)
    assert.deepEqual(await endUserDailyTotals(pageFilters, null), beforeDays)
  })

  test('/customer/info finds a customer that sent requests this month beyond the owner\'s 100 costliest', async ({ assert }) => {
    const carol = await seedUser()
    const meter = (await gateway()).meter
    for (let i = 0; i < 101; i++) meter.record(at(carol, inMonth, `big-${i}`, 'model-a', 5_000_000_000n))
    meter.record(at(carol, inMonth, 'small', 'model-a', 1_000n))
    await meter.drain()
    assert.lengthOf((await litellm(`/customer/list?owner=${carol.userId}`)).body, 100, 'the list: the costliest 100')
    const info = await litellm(`/customer/info?end_user_id=small&owner=${carol.userId}`)
    assert.equal(info.status, 200, JSON.stringify(info.body))
    assert.deepInclude(info.body, { user_id: 'small', spend: 0.000000001 })
  }).timeout(30_000)
})
