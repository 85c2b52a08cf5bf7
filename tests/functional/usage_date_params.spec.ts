import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'

/**
 * The usage reports' date parameters: a malformed day or month is a 400
 * naming the parameter (it used to fall back to the default range, answered
 * as if it were the range asked for); a good one is applied; absent or empty,
 * the documented default. /v1/dashboard/billing/usage stays lenient.
 */
let adminKey = ''

async function api(path: string) {
  const response = await fetch(`${baseUrl()}/api/admin${path}`, { headers: { authorization: `Bearer ${adminKey}` } })
  return { status: response.status, body: (await response.json()) as any }
}

const today = () => DateTime.utc().toISODate()!

test.group('Usage reports: date parameters', (group) => {
  let mock: MockUpstream
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['dated-model'] })
    await seedPrice('dated-model', '2', '8')
    await createUser({ email: 'dates-admin@test.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'dates-admin@test.local', name: 'billing', manage: true })).key
    user = await seedUser({ balance: '5' })
    await refreshCaches()
    // One tagged request today: the row the good ranges find and the old ones do not.
    const answer = await post('/v1/chat/completions', { model: 'dated-model', messages: [{ role: 'user', content: 'hi' }] }, { 'authorization': `Bearer ${user.key}`, 'x-gateway-tags': 'dated' })
    if (answer.status !== 200) throw new Error(`chat: ${answer.status}`)
    await answer.text()
    return () => mock.stop()
  })

  for (const path of ['/usage', '/spend/tags']) {
    test(`GET /api/admin${path}: a malformed from/to is a 400 naming it`, async ({ assert }) => {
      const cases: Array<[string, string]> = [
        ['from=2026-13-45', 'from'],
        ['from=yesterday', 'from'],
        ['to=2026-02-30', 'to'],
        ['from=2026-1-5', 'from'],
        ['to=1969-12-31', 'to'],
        ['from=2026-01-01&from=2026-02-01', 'from'],
        [`from=${today()}&to=12/31/2026`, 'to'],
      ]
      for (const [query, param] of cases) {
        const { status, body } = await api(`${path}?${query}`)
        assert.equal(status, 400, query)
        assert.equal(body.error.type, 'invalid_request_error', query)
        assert.equal(body.error.code, 'invalid_field', query)
        assert.equal(body.error.param, param, query)
        assert.match(body.error.message, new RegExp(`^${param}: `), query)
      }
    })

    test(`GET /api/admin${path}: from later than to, or more than a year before it, is a 400 naming from (not swapped, not clamped)`, async ({ assert }) => {
      const inAYear = DateTime.utc().plus({ days: 1 }).toISODate()!
      const yearAgo = DateTime.utc().minus({ days: 366 }).toISODate()!
      const tooLongAgo = DateTime.utc().minus({ days: 367 }).toISODate()!
      const cases: Array<[string, RegExp]> = [
        ['from=2026-03-02&to=2026-03-01', /^from: must not be later than to \(2026-03-01\)/],
        [`from=${inAYear}`, new RegExp(`^from: must not be later than to \\(today, ${today()}\\)`)],
        ['from=2024-01-01&to=2025-01-02', /^from: must be at most 366 days before to \(2025-01-02\): a report covers a year at most/],
        [`from=${tooLongAgo}`, new RegExp(`^from: must be at most 366 days before to \\(today, ${today()}\\)`)],
        ['from=1970-01-01&to=2026-01-01', /^from: must be at most 366 days/],
      ]
      for (const [query, message] of cases) {
        const { status, body } = await api(`${path}?${query}`)
        assert.equal(status, 400, query)
        assert.equal(body.error.code, 'invalid_field', query)
        assert.equal(body.error.param, 'from', query)
        assert.match(body.error.message, message, query)
      }
      // A malformed to is named as such, not compared.
      const badTo = await api(`${path}?from=2026-03-02&to=2026-02-30`)
      assert.equal(badTo.body.error.param, 'to')
      assert.notInclude(badTo.body.error.message, 'later than')
      // The edges are answered as asked: one day, exactly 366 days back.
      for (const [from, to] of [['2026-03-01', '2026-03-01'], ['2024-01-01', '2025-01-01'], [yearAgo, today()]]) {
        const { status, body } = await api(`${path}?from=${from}&to=${to}`)
        assert.equal(status, 200, `${from}..${to}`)
        assert.deepInclude(body, { from, to }, `${from}..${to}`)
      }
      const openEnded = await api(`${path}?from=${yearAgo}`)
      assert.deepInclude(openEnded.body, { from: yearAgo, to: today() })
    })

    test(`GET /api/admin${path}: a good range is applied; absent or empty, the last 7 days`, async ({ assert }) => {
      const rows = (body: any) => (path === '/usage' ? body.data.length : body.data.reduce((n: number, r: any) => n + r.requests, 0))
      const todays = await api(`${path}?from=${today()}&to=${today()}`)
      assert.equal(todays.status, 200)
      assert.deepInclude(todays.body, { from: today(), to: today() })
      assert.equal(rows(todays.body), 1)

      const past = await api(`${path}?from=2020-01-01&to=2020-01-31`)
      assert.equal(past.status, 200)
      assert.deepInclude(past.body, { from: '2020-01-01', to: '2020-01-31' })
      assert.equal(rows(past.body), 0)

      const weekAgo = DateTime.utc().minus({ days: 6 }).toISODate()!
      for (const query of ['', '?from=&to=', '?from=%20']) {
        const byDefault = await api(`${path}${query}`)
        assert.equal(byDefault.status, 200, query)
        assert.deepInclude(byDefault.body, { from: weekAgo, to: today() }, query)
        assert.equal(rows(byDefault.body), 1, query)
      }
    })
  }

  test('GET /api/admin/users/{id}/usage: a malformed month is a 400 naming it; a good one is applied', async ({ assert }) => {
    for (const month of ['2026-1', '2026-13', '2026-00', 'January', '1969-12', '2026-12-01']) {
      const { status, body } = await api(`/users/${user.userId}/usage?month=${month}`)
      assert.equal(status, 400, month)
      assert.equal(body.error.code, 'invalid_field', month)
      assert.equal(body.error.param, 'month', month)
      assert.match(body.error.message, /^month: /, month)
    }
    const thisMonth = today().slice(0, 7)
    for (const query of [`?month=${thisMonth}`, '', '?month=']) {
      const { status, body } = await api(`/users/${user.userId}/usage${query}`)
      assert.equal(status, 200, query)
      assert.equal(body.month, thisMonth, query)
      assert.equal(body.requests, 1, query)
    }
    const old = await api(`/users/${user.userId}/usage?month=2020-01`)
    assert.equal(old.status, 200)
    assert.equal(old.body.month, '2020-01')
    assert.deepEqual(old.body.models, [])
  })

  test('GET /v1/dashboard/billing/usage stays lenient: odd start_date/end_date are accepted, not applied', async ({ assert }) => {
    const response = await fetch(`${baseUrl()}/v1/dashboard/billing/usage?start_date=yesterday&end_date=2026-13-45`, {
      headers: { authorization: `Bearer ${user.key}` },
    })
    assert.equal(response.status, 200)
    assert.equal(((await response.json()) as any).object, 'list')
  })
})
