import { test } from '@japa/runner'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import logger from '@adonisjs/core/services/logger'
import { AlertSender, type AlertFormat } from '#gateway/alerts/alert_sender'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'

/** A chat webhook on loopback: keeps every POSTed JSON body; `status` makes it fail. */
class Receiver {
  bodies: any[] = []
  status = 200
  url = ''
  #server: Server = createServer(async (req, res) => {
    let raw = ''
    for await (const chunk of req) raw += chunk
    if (this.status < 300) this.bodies.push(JSON.parse(raw))
    res.writeHead(this.status).end()
  })

  async start() {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hook`
    return this
  }

  stop() {
    this.#server.closeAllConnections()
    return new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

const sender = (url: string, format: AlertFormat = 'json', repeatMs = 60_000) => new AlertSender({ url, format, repeatMs, logger })
const hello = [{ role: 'user', content: 'hi' }]

test.group('Operator alerts to a webhook', (group) => {
  let receiver: Receiver
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    receiver = await new Receiver().start()
    mock = await startMock()
    await seedChannel({ name: 'alert-ok', baseUrl: mock.url, models: ['alert-*'] })
    await seedPrice('alert-priced', '1', '2')
    const gw = await gateway()
    return async () => {
      gw.alerts = null
      await receiver.stop()
      await mock.stop()
    }
  })
  group.each.setup(async () => {
    ;(await gateway()).alerts = sender(receiver.url)
    receiver.bodies = []
    receiver.status = 200
  })

  test('a charge that empties a balance is told once; refused calls after it tell nothing', async ({ assert }) => {
    const user = await seedUser({ balance: '0.00003' })
    const auth = { authorization: `Bearer ${user.key}` }
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) statuses.push((await post('/v1/chat/completions', { model: 'alert-priced', messages: hello }, auth)).status)
    assert.include(statuses, 402)
    const gw = await gateway()
    await gw.alerts!.flush()
    const alerts = receiver.bodies.filter((b) => b.event === 'user.balance_exhausted')
    assert.lengthOf(alerts, 1)
    assert.include(alerts[0].text, `User ${user.email} has run out of balance`)
    assert.equal(alerts[0].data.user_id, user.userId)
    assert.match(alerts[0].data.balance, /^-0\.0000\d+$/)
  })

  test('a key that reaches its spend cap is told once, with the period', async ({ assert }) => {
    const user = await seedUser({ balance: '5', key: { spendLimit: '0.00003', spendPeriod: 'day' } })
    const auth = { authorization: `Bearer ${user.key}` }
    for (let i = 0; i < 4; i++) await post('/v1/chat/completions', { model: 'alert-priced', messages: hello }, auth)
    // Claimed after the batch commits (budget_alerts.ts): once across instances.
    const gw = await gateway()
    await gw.meter.drain()
    await gw.budgets.idle()
    await gw.alerts!.flush()
    const alerts = receiver.bodies.filter((b) => b.event === 'key.spend_cap_reached')
    assert.lengthOf(alerts, 1)
    assert.include(alerts[0].text, 'reached its spend cap of $0.000030 per day (UTC)')
    assert.equal(alerts[0].data.key_id, user.keyId)
    assert.lengthOf(receiver.bodies.filter((b) => b.event === 'user.balance_exhausted'), 0)
  })

  test('a channel the gateway disables after a 401 is told with its name and reason', async ({ assert }) => {
    const bad = await startMock({ status: 401 })
    try {
      const channel = await seedChannel({ name: 'alert-bad-key', baseUrl: bad.url, models: ['badkey-*'] })
      const user = await seedUser()
      await post('/v1/chat/completions', { model: 'badkey-1', messages: hello }, { authorization: `Bearer ${user.key}` })
      await (await gateway()).alerts!.flush()
      const alerts = receiver.bodies.filter((b) => b.event === 'channel.disabled')
      assert.lengthOf(alerts, 1)
      assert.include(alerts[0].text, `Channel "alert-bad-key" (#${channel.id}, custom) was disabled by the gateway`)
      assert.include(alerts[0].text, 'HTTP 401')
    } finally {
      await bad.stop()
    }
  })

  test('a channel disabled for its upstream account (out of credit) is told so: top it up', async ({ assert }) => {
    const broke = await startMock({ faults: () => ({ raw: { status: 402, body: JSON.stringify({ error: { code: 402, message: 'Insufficient credits' } }) } }) })
    try {
      const channel = await seedChannel({ name: 'alert-broke', baseUrl: broke.url, models: ['broke-*'] })
      const user = await seedUser()
      await post('/v1/chat/completions', { model: 'broke-1', messages: hello }, { authorization: `Bearer ${user.key}` })
      await (await gateway()).alerts!.flush()
      const alerts = receiver.bodies.filter((b) => b.event === 'channel.disabled' && b.data.channel_id === channel.id)
      assert.lengthOf(alerts, 1)
      assert.include(alerts[0].text, `Channel "alert-broke" (#${channel.id}, custom) was disabled by the gateway`)
      assert.include(alerts[0].text, 'Top up or fix its upstream account')
      assert.include(alerts[0].data, { cause: 'account' })
      assert.include(alerts[0].data.reason, 'Insufficient credits')
    } finally {
      await broke.stop()
    }
  })

  test('a channel whose circuit opens is told once per repeat window', async ({ assert }) => {
    const failing = await startMock({ status: 500 })
    try {
      await seedChannel({ name: 'alert-failing', baseUrl: failing.url, models: ['failing-*'] })
      const user = await seedUser()
      for (let i = 0; i < 8; i++) await post('/v1/chat/completions', { model: 'failing-1', messages: hello }, { authorization: `Bearer ${user.key}` })
      await (await gateway()).alerts!.flush()
      const alerts = receiver.bodies.filter((b) => b.event === 'channel.circuit_open')
      assert.lengthOf(alerts, 1)
      assert.include(alerts[0].text, 'Channel "alert-failing"')
      assert.include(alerts[0].text, 'is failing: out of rotation until')
      const status = (await (await fetch(`http://${process.env.HOST}:${process.env.PORT}/api/status`)).json()) as any
      assert.isAtLeast(status.alerts.sent, 1)
      assert.notInclude(JSON.stringify(status), receiver.url)
    } finally {
      await failing.stop()
    }
  })
})

test.group('AlertSender', (group) => {
  let receiver: Receiver
  group.setup(async () => {
    receiver = await new Receiver().start()
    return () => receiver.stop()
  })
  group.each.setup(() => {
    receiver.bodies = []
    receiver.status = 200
  })

  test('Slack gets text, Discord content, json the event and its data', async ({ assert }) => {
    for (const format of ['slack', 'discord', 'json'] as const) {
      const alerts = sender(receiver.url, format)
      alerts.notify('channel.disabled', 1, async () => ({ text: 'hello', data: { a: 1 } }))
      await alerts.flush()
    }
    assert.deepEqual(receiver.bodies[0], { text: 'hello' })
    assert.deepEqual(receiver.bodies[1], { content: 'hello' })
    assert.equal(receiver.bodies[2].event, 'channel.disabled')
    assert.deepEqual(receiver.bodies[2].data, { a: 1 })
  })

  test('the same event about the same subject waits for the repeat window; others go at once', async ({ assert }) => {
    const alerts = sender(receiver.url, 'json', 1000)
    const text = async () => ({ text: 'x', data: {} })
    assert.isTrue(alerts.notify('key.spend_cap_reached', 7, text, 0))
    assert.isFalse(alerts.notify('key.spend_cap_reached', 7, text, 999))
    assert.isTrue(alerts.notify('key.spend_cap_reached', 8, text, 999))
    assert.isTrue(alerts.notify('user.balance_exhausted', 7, text, 999))
    assert.isTrue(alerts.notify('key.spend_cap_reached', 7, text, 1000))
    await alerts.flush()
    assert.lengthOf(receiver.bodies, 4)
  })

  test('a webhook that refuses is counted, never thrown; the queue is bounded', async ({ assert }) => {
    receiver.status = 404
    const alerts = new AlertSender({ url: receiver.url, format: 'slack', repeatMs: 0, logger, maxQueued: 2 })
    for (let i = 0; i < 5; i++) alerts.notify('channel.disabled', i, async () => ({ text: 'x', data: {} }))
    await alerts.flush()
    assert.equal(alerts.failed + alerts.sent + alerts.dropped, 5)
    assert.equal(alerts.sent, 0)
    assert.isAtLeast(alerts.dropped, 2)
    assert.equal(alerts.lastError, 'webhook answered HTTP 404')
  })
})
