import { test } from '@japa/runner'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import { withApiLane } from '#gateway/http/api_lane'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import db from '@adonisjs/lucid/services/db'
import { DateTime } from 'luxon'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'

const get = (path: string, key?: string, base = baseUrl()) => fetch(`${base}${path}`, { headers: key ? { authorization: `Bearer ${key}` } : {} })
const json = async (path: string, key: string) => ((await (await get(path, key)).json()) as any).data

/**
 * Apps written against OpenRouter check a key's limit and the account's
 * credits at `GET /api/v1/key` and `/api/v1/credits` (OpenRouter's shapes,
 * the key as Bearer). The gateway answers them from what it knows: the key's
 * cap and spend, the account's balance and total spent.
 */
test.group("OpenRouter's GET /api/v1/key and /api/v1/credits", (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['gpt-4o'] })
    await seedPrice('gpt-4o', '2', '8')
    return () => mock.stop()
  })

  test("a paid account's capped key: the cap, its period and what it has left, the key's spend, the tightest RPM", async ({ assert }) => {
    const user = await seedUser({ balance: '42.5', plan: { name: 'rpm-plan', models: ['*'], rpm: 60 }, key: { spendLimit: '3', spendPeriod: 'month', rpm: 30 } })
    for (let i = 0; i < 2; i++) {
      const chat = await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }, { authorization: `Bearer ${user.key}` })
      assert.equal(chat.status, 200)
    }
    // 2 calls x (12 x $2/M + 5 x $8/M) = $0.000128
    const key = await json('/api/v1/key', user.key)
    assert.deepEqual(key, {
      label: 'default',
      limit: 3,
      limit_reset: 'monthly',
      limit_remaining: 2.999872,
      usage: 0.000128,
      usage_daily: 0.000128,
      usage_weekly: 0.000128,
      usage_monthly: 0.000128,
      byok_usage: 0,
      byok_usage_daily: 0,
      byok_usage_weekly: 0,
      byok_usage_monthly: 0,
      include_byok_in_limit: false,
      is_free_tier: false,
      expires_at: null,
      rate_limit: { requests: 30, interval: '1m' },
    })
    // The older path, and under /v1 (an app whose OpenRouter base URL became the gateway's /v1): the same.
    assert.deepEqual(await json('/api/v1/auth/key', user.key), key)
    assert.deepEqual(await json('/v1/key', user.key), key)

    const credits = await json('/api/v1/credits', user.key)
    assert.deepEqual(credits, { total_credits: 42.5, total_usage: 0.000128 })
    assert.deepEqual(await json('/v1/credits', user.key), credits)
    const balance: any = await (await get('/v1/balance', user.key)).json()
    assert.closeTo(credits.total_credits - credits.total_usage, balance.balance, 1e-9)
  })

  test("a daily cap: what it has left counts today, the key's usage its whole life", async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '2', spendPeriod: 'day' } })
    await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }, { authorization: `Bearer ${user.key}` })
    await (await gateway()).meter.drain()
    // What the key spent on earlier days: in its lifetime spend, not in today's period.
    await db.from('api_keys').where('id', user.keyId).increment('spent', 1.5)
    await refreshCaches()
    const key = await json('/api/v1/key', user.key)
    assert.include(key, { limit: 2, limit_reset: 'daily', limit_remaining: 1.999936, usage: 1.500064 })
  })

  test("usage_daily, usage_weekly and usage_monthly: the key's spend in the current UTC day, week (from Monday) and month", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const other = await seedUser({ balance: '10' })
    for (const key of [user.key, user.key, user.key, user.key, other.key]) {
      const chat = await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }, { authorization: `Bearer ${key}` })
      assert.equal(chat.status, 200)
    }
    await (await gateway()).meter.drain()
    // Each call $0.000064. One stays today; the others go back: to the last moment of yesterday, of the
    // day before the month began, and 40 days back.
    const now = DateTime.utc()
    const day = now.startOf('day')
    const week = now.startOf('week')
    const month = now.startOf('month')
    const times = [now, day.minus({ milliseconds: 1 }), month.minus({ days: 1 }), now.minus({ days: 40 })]
    const ids = (await db.from('usage_records').where('api_key_id', user.keyId).orderBy('id').select('id')).map((r) => r.id)
    assert.lengthOf(ids, 4)
    for (let i = 1; i < 4; i++) await db.from('usage_records').where('id', ids[i]).update({ created_at: times[i].toJSDate() })
    const spent = (from: DateTime) => Math.round(times.filter((t) => t >= from).length * 64) / 1e6
    const key = await json('/api/v1/key', user.key)
    assert.include(key, { usage: 0.000256, usage_daily: 0.000064, usage_weekly: spent(week), usage_monthly: spent(month) })
    // Whatever today's date: yesterday's last moment is this week's unless today is Monday, this month's unless it is the 1st.
    // (the day before the month began is this week's when the week began in the last month)
    assert.equal(key.usage_weekly, (64 + (now.weekday === 1 ? 0 : 64) + (month.minus({ days: 1 }) >= week ? 64 : 0)) / 1e6)
    assert.equal(key.usage_monthly, now.day === 1 ? 0.000064 : 0.000128)
    // Another key's spend is its own.
    assert.include(await json('/api/v1/key', other.key), { usage: 0.000064, usage_daily: 0.000064, usage_weekly: 0.000064, usage_monthly: 0.000064 })
  })

  test('an account never topped up, a key without cap or rate limit: nulls, the free tier, -1 requests', async ({ assert }) => {
    const user = await seedUser()
    assert.deepEqual(await json('/api/v1/key', user.key), {
      label: 'default',
      limit: null,
      limit_reset: null,
      limit_remaining: null,
      usage: 0,
      usage_daily: 0,
      usage_weekly: 0,
      usage_monthly: 0,
      byok_usage: 0,
      byok_usage_daily: 0,
      byok_usage_weekly: 0,
      byok_usage_monthly: 0,
      include_byok_in_limit: false,
      is_free_tier: true,
      expires_at: null,
      rate_limit: { requests: -1, interval: '1m' },
    })
    assert.deepEqual(await json('/api/v1/credits', user.key), { total_credits: 0, total_usage: 0 })
    // A cap spent past its end has nothing left, not a negative amount.
    const capped = await seedUser({ balance: '1', key: { spendLimit: '0.0001' } })
    for (let i = 0; i < 2; i++) await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }, { authorization: `Bearer ${capped.key}` })
    const key = await json('/api/v1/key', capped.key)
    assert.include(key, { limit: 0.0001, limit_reset: null, limit_remaining: 0 })
    assert.isAtLeast(key.usage, 0.0001)
  })

  test("errors in OpenAI's JSON, CORS as for /v1, and /api/admin still the management API's", async ({ assert }) => {
    for (const path of ['/api/v1/key', '/api/v1/credits']) {
      const noKey = await get(path)
      assert.equal(noKey.status, 401, path)
      assert.deepInclude(((await noKey.json()) as any).error, { code: 'invalid_api_key', type: 'authentication_error' })
    }
    const user = await seedUser()
    const unknown = await get('/api/v1/keys', user.key)
    assert.equal(unknown.status, 404)
    assert.match(unknown.headers.get('content-type') ?? '', /application\/json/)

    const preflight = await fetch(`${baseUrl()}/api/v1/key`, {
      method: 'OPTIONS',
      headers: { 'origin': 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    })
    assert.equal(preflight.status, 204)
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*')
    const fromPage = await fetch(`${baseUrl()}/api/v1/credits`, { headers: { authorization: `Bearer ${user.key}`, origin: 'https://app.example' } })
    assert.equal(fromPage.status, 200)
    assert.equal(fromPage.headers.get('access-control-allow-origin'), '*')

    // A user's key is still refused by the management API under /api/admin.
    const admin = await get('/api/admin/users', user.key)
    assert.equal(admin.status, 403)
  })

  test('the router serves them alike with the API lane off', async ({ assert }) => {
    const server = await app.container.make('server')
    const handler = server.handle.bind(server) as (req: IncomingMessage, res: ServerResponse) => unknown
    const routed: Server = createServer(withApiLane(handler, false))
    await new Promise<void>((resolve) => routed.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(routed.address() as AddressInfo).port}`
      const user = await seedUser({ balance: '2' })
      const key: any = await (await get('/api/v1/key', user.key, url)).json()
      assert.include(key.data, { label: 'default', is_free_tier: false })
      const credits: any = await (await get('/api/v1/credits', user.key, url)).json()
      assert.deepEqual(credits.data, { total_credits: 2, total_usage: 0 })
    } finally {
      await new Promise((resolve) => routed.close(resolve))
    }
  })
})
