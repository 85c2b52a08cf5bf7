import { test } from '@japa/runner'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import logger from '@adonisjs/core/services/logger'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { updateAllChannelBalances, updateChannelBalance } from '#actions/channel_balance'
import { AlertSender } from '#gateway/alerts/alert_sender'
import { lowBalanceObserver } from '#services/channel_balance_alert'
import { parseBalanceAlertThresholds } from '#services/balance_alert_thresholds'
import { ChannelBalanceTimer } from '#services/channel_balance_timer'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, gateway, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'

/**
 * Channel balances (new-api's "update balance"): what each upstream account
 * has left, asked of OpenRouter, DeepSeek and OpenAI-compatible resellers
 * (the dashboard billing pair, which this gateway answers too) with the
 * channel's key, kept per channel, shown by the management API and alerted on.
 */
test.group('Channel balances', (group) => {
  let mock: MockUpstream
  let adminKey = ''
  let userKey = ''

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await createUser({ email: 'root@balance.test', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'root@balance.test', name: 'ops', manage: true })).key
    userKey = (await seedUser({ balance: '1' })).key
    return () => mock.stop()
  })
  group.each.setup(() => {
    mock.account.credits = { total_credits: 25, total_usage: 7.125 }
    mock.account.balanceInfos = [{ currency: 'CNY', total_balance: '110.00' }]
    mock.account.billing = { hard_limit_usd: 40, total_usage: 1250, has_payment_method: true }
  })

  const api = (method: string, path: string, key = adminKey) => adminApi(method, path, key)

  test('OpenRouter: credits bought less credits used, asked with the channel key; kept and shown', async ({ assert }) => {
    const channel = await seedChannel({ name: 'or', provider: 'openrouter', baseUrl: mock.url, apiKey: 'sk-or-1', models: ['or-*'] })
    const before = await api('GET', `/channels/${channel.id}/balance`)
    assert.equal(before.status, 200)
    assert.deepInclude(before.body, { channel_id: channel.id, amount: null, checked_at: null })

    const checked = await api('POST', `/channels/${channel.id}/balance`)
    assert.equal(checked.status, 200, JSON.stringify(checked.body))
    assert.deepInclude(checked.body, { object: 'channel_balance', ok: true, amount: '17.875000', currency: 'USD', error: null })
    const asked = mock.lastRequest()!
    assert.equal(asked.path, '/v1/credits')
    assert.equal(asked.headers.authorization, 'Bearer sk-or-1')
    const kept = await api('GET', `/channels/${channel.id}/balance`)
    assert.equal(kept.body.amount, '17.875000')
    assert.isString(kept.body.amount_at)
  })

  test('DeepSeek: its USD balance when it has one, else the first currency', async ({ assert }) => {
    const channel = await seedChannel({ name: 'ds', provider: 'deepseek', baseUrl: mock.url, models: ['ds-*'] })
    const cny = await updateChannelBalance(channel.id)
    assert.deepInclude(cny, { ok: true, amount: '110.000000', currency: 'CNY' })
    assert.equal(mock.lastRequest()!.path, '/user/balance', 'asked at the origin, without /v1')
    mock.account.balanceInfos = [
      { currency: 'CNY', total_balance: '110.00' },
      { currency: 'USD', total_balance: '3.5' },
    ]
    assert.deepInclude(await updateChannelBalance(channel.id), { amount: '3.500000', currency: 'USD' })
  })

  test('OpenAI-compatible resellers: the dashboard billing limit less this month\'s usage (cents); 100 days without a payment method', async ({ assert }) => {
    const channel = await seedChannel({ name: 'resold', provider: 'custom', baseUrl: mock.url, models: ['r-*'] })
    const check = await updateChannelBalance(channel.id)
    assert.deepInclude(check, { ok: true, amount: '27.500000', currency: 'USD' })
    const now = new Date()
    const monthStart = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}-01`
    assert.equal(mock.account.lastUsageQuery!.get('start_date'), monthStart)
    mock.account.billing = { hard_limit_usd: 10, total_usage: 250, has_payment_method: false }
    assert.equal((await updateChannelBalance(channel.id)).amount, '7.500000')
    const start = new Date(`${mock.account.lastUsageQuery!.get('start_date')}T00:00:00Z`).getTime()
    assert.approximately((Date.now() - start) / 86_400_000, 100, 1.01)
  })

  test('a negative usage, credit or limit is no balance (it raised or cut the amount); usage beyond the credits is an overdrawn account', async ({ assert }) => {
    const or = await seedChannel({ name: 'or-negative', provider: 'openrouter', baseUrl: mock.url, models: ['orn-*'] })
    mock.account.credits = { total_credits: 10, total_usage: -1000 }
    const raised = await updateChannelBalance(or.id)
    assert.isFalse(raised.ok)
    assert.include(raised.error, '"data.total_usage" is negative')
    assert.isNull((await db.from('channel_balances').where('channel_id', or.id).first()).amount)
    mock.account.credits = { total_credits: -5, total_usage: 0 }
    assert.include((await updateChannelBalance(or.id)).error, '"data.total_credits" is negative')
    mock.account.credits = { total_credits: 10, total_usage: 12.5 }
    assert.deepInclude(await updateChannelBalance(or.id), { ok: true, amount: '-2.500000' })

    const resold = await seedChannel({ name: 'resold-negative', provider: 'custom', baseUrl: mock.url, models: ['rn-*'] })
    mock.account.billing = { hard_limit_usd: 40, total_usage: -99_900, has_payment_method: true }
    const billing = await updateChannelBalance(resold.id)
    assert.isFalse(billing.ok)
    assert.include(billing.error, '"total_usage" is negative')
    // Gone again: the alert test below counts the low accounts of the channels there are.
    await db.from('channels').whereIn('id', [or.id, resold.id]).delete()
  })

  test('CHANNEL_BALANCE_ALERT_BELOW: an amount in USD, or CURRENCY:AMOUNT pairs; anything else fails the boot saying why', ({ assert }) => {
    const read = (value: string) => [...parseBalanceAlertThresholds('CHANNEL_BALANCE_ALERT_BELOW', value)]
    assert.deepEqual(read('10'), [['USD', 10]])
    assert.deepEqual(read(' 2.5 '), [['USD', 2.5]])
    assert.deepEqual(read('USD:10,cny:70'), [['USD', 10], ['CNY', 70]])
    for (const [value, why] of [
      ['-1', 'is not CURRENCY:AMOUNT'],
      ['0x10', 'is not CURRENCY:AMOUNT'],
      ['USD:1e3', 'is not an amount'],
      ['USD:10,USD:20', 'USD is given twice'],
      ['DOLLAR:10', 'is not a 3-letter currency code'],
      ['USD:10:1', 'is not CURRENCY:AMOUNT'],
      ['USD:', 'is not an amount'],
    ]) {
      assert.throws(() => read(value), new RegExp(`CHANNEL_BALANCE_ALERT_BELOW must be .*${why}`), value)
    }
  })

  test('a channel chained to another gateway of this kind reads the account balance it answers', async ({ assert }) => {
    const customer = await seedUser({ balance: '12.34' })
    const channel = await seedChannel({ name: 'chained', provider: 'openai', baseUrl: `${baseUrl()}/v1`, apiKey: customer.key, models: ['chain-*'] })
    const check = await updateChannelBalance(channel.id)
    assert.deepInclude(check, { ok: true, amount: '12.340000', currency: 'USD' })
  })

  test('a failed check keeps the last amount and says why; kinds without a balance and unknown channels are refused', async ({ assert }) => {
    const channel = await seedChannel({ name: 'flaky', provider: 'openrouter', baseUrl: mock.url, apiKey: 'sk-flaky-secret', models: ['fl-*'] })
    await updateChannelBalance(channel.id)
    const first = await db.from('channel_balances').where('channel_id', channel.id).first()
    mock.script({ status: 500 })
    const failed = await api('POST', `/channels/${channel.id}/balance`)
    assert.equal(failed.status, 200)
    assert.deepInclude(failed.body, { ok: false, amount: '17.875000', currency: 'USD' })
    assert.include(failed.body.error, 'HTTP 500')
    const row = await db.from('channel_balances').where('channel_id', channel.id).first()
    assert.equal(new Date(row.amount_at).getTime(), new Date(first.amount_at).getTime(), 'the amount keeps its own time')
    assert.isAbove(new Date(row.checked_at).getTime(), new Date(first.checked_at).getTime())

    mock.script({ raw: { status: 200, body: '{"data":{"total_credits":"lots"}}' } })
    const garbled = await updateChannelBalance(channel.id)
    assert.isFalse(garbled.ok)
    assert.include(garbled.error!, 'not a number')

    const claude = await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    const refused = await api('POST', `/channels/${claude.id}/balance`)
    assert.equal(refused.status, 400)
    assert.include(refused.body.error.message, 'publishes none')
    assert.equal((await api('POST', '/channels/999999/balance')).status, 404)
    assert.equal((await api('POST', '/channels/abc/balance')).status, 404)
    assert.equal((await api('POST', `/channels/${channel.id}/balance`, userKey)).status, 403)
  })

  test('update all: every channel whose kind publishes a balance; a low one is alerted once', async ({ assert }) => {
    const received: any[] = []
    const hook: Server = createServer(async (req, res) => {
      let raw = ''
      for await (const chunk of req) raw += chunk
      received.push(JSON.parse(raw))
      res.writeHead(200).end()
    })
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve))
    const gw = await gateway()
    gw.alerts = new AlertSender({ url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/`, format: 'json', repeatMs: 60_000, logger })
    try {
      const all = await api('POST', '/channels/balances')
      assert.equal(all.status, 200)
      const channels = await db.from('channels').select('id', 'provider')
      const expected = channels.filter((c) => ['openrouter', 'deepseek', 'openai', 'custom'].includes(c.provider)).map((c) => c.id)
      assert.sameMembers(all.body.data.map((row: any) => row.channel_id), expected)
      assert.equal(all.body.skipped, 0)

      // `20`: USD only (the 110 CNY account is not compared with it).
      const observe = lowBalanceObserver(gw, parseBalanceAlertThresholds('CHANNEL_BALANCE_ALERT_BELOW', '20'))
      await updateAllChannelBalances({ observe })
      await updateAllChannelBalances({ observe })
      await gw.alerts.flush()
      const low = received.filter((body) => body.event === 'channel.low_balance')
      // Below 20: OpenRouter's 17.875 USD (two channels), the chained account's 12.34 USD; not the resold 27.5 USD or 110 CNY.
      const names = low.map((body) => body.data.name).sort()
      assert.deepEqual(names, ['chained', 'flaky', 'or'])
      // Two runs, one alert per channel within the repeat window.
      assert.include(low.find((body) => body.data.name === 'or').text, 'has 17.875000 USD left upstream')

      // One threshold per currency: the CNY account is low below 200 CNY, the USD ones are not below 10 USD.
      const perCurrency = lowBalanceObserver(gw, parseBalanceAlertThresholds('CHANNEL_BALANCE_ALERT_BELOW', 'usd:10, CNY:200'))
      await updateAllChannelBalances({ observe: perCurrency })
      await gw.alerts.flush()
      const cny = received.filter((body) => body.event === 'channel.low_balance' && body.data.currency === 'CNY')
      assert.lengthOf(cny, 1)
      assert.include(cny[0].data, { amount: '110.000000', below: 200 })
      assert.include(cny[0].text, 'alert below 200 CNY')
    } finally {
      gw.alerts = null
      hook.closeAllConnections()
      await new Promise<void>((resolve) => hook.close(() => resolve()))
    }
  })

  test('panel: the Channels list shows each balance with its age; Update asks one, Update balances all; no CSRF token, nothing asked', async ({ assert }) => {
    const panel = new PanelClient()
    await panel.login('root@balance.test', 'password123')
    const fresh = await seedChannel({ name: 'panel-or', provider: 'openrouter', baseUrl: mock.url, models: ['pan-*'] })
    const list = await panel.get('/admin/channels')
    assert.include(textOf(list.html), 'Update balances')
    assert.match(list.html, new RegExp(`data-testid="balance-${fresh.id}">\\s*<div class="muted">not asked yet`))
    const claude = (await db.from('channels').where('name', 'claude').first()).id
    assert.match(list.html, new RegExp(`data-testid="balance-${claude}">\\s*<span class="muted" title="anthropic publishes no balance`))

    const before = mock.requests.length
    await panel.post(`/admin/channels/${fresh.id}/balance`, {}, { csrf: false })
    assert.equal(mock.requests.length, before, 'no CSRF token, no upstream call')
    const posted = await panel.post(`/admin/channels/${fresh.id}/balance`)
    assert.equal(posted.status, 302)
    const shown = await panel.follow(posted)
    assert.include(textOf(shown.html), 'Channel panel-or: 17.875000 USD left upstream.')
    assert.match(shown.html, new RegExp(`data-testid="balance-${fresh.id}">\\s*<span class="" title="read [^"]+">17.875 USD</span>`))

    mock.script({ status: 401 })
    const failed = await panel.follow(await panel.post(`/admin/channels/${fresh.id}/balance`))
    assert.include(textOf(failed.html), 'Channel panel-or: the balance could not be read: upstream answered HTTP 401')
    assert.include(textOf(failed.html), 'last check failed')

    const all = await panel.follow(await panel.post('/admin/channels/balances'))
    assert.match(textOf(all.html), /Balances asked of \d+ channels: \d+ read, \d+ failed\./)
    assert.equal((await panel.post('/admin/channels/999999/balance')).status, 404)
  })

  test('the background check runs at most once per half interval across instances', async ({ assert }) => {
    const logs: string[] = []
    await db.from('channel_balances').update({ checked_at: new Date(Date.now() - 3_600_000) })
    const timer = new ChannelBalanceTimer({ intervalMs: 600_000, log: (m) => logs.push(m) })
    const before = mock.requests.length
    await timer.tick()
    const asked = mock.requests.length - before
    assert.isAbove(asked, 0)
    await timer.tick()
    assert.equal(mock.requests.length - before, asked, 'a run within half the interval of the last check is skipped')
    await timer.stop()
  })
})
