import { test } from '@japa/runner'
import { spawn } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { ChannelBalanceTimer } from '#services/channel_balance_timer'
import Channel from '#models/channel'
import { testAllChannels } from '#actions/test_all_channels'
import { TestSlots } from '#actions/test_slots'
import { PanelClient, textOf } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, resetDatabase, seedChannel, startMock } from '#tests/helpers'

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/**
 * Hostile input, this pass's merges: channel balances, LiteLLM's model
 * health check, the end-user rollup. Each test here failed before its fix.
 */
test.group('Hostile input s24b', (group) => {
  let mock: MockUpstream
  let adminKey = ''

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await createUser({ email: 'root@h24b.test', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'root@h24b.test', name: 'ops', manage: true })).key
    return () => mock.stop()
  })

  test('a balance answer with NUL bytes is a failed check with its reason kept, not a 400 blaming the admin', async ({ assert }) => {
    const channel = await seedChannel({ name: 'nul', provider: 'openrouter', baseUrl: mock.url, apiKey: 'sk-nul-secret', models: ['nul-*'] })
    mock.script({ raw: { status: 500, body: 'bad\u0000thing for sk-nul-secret' } })
    const failed = await adminApi('POST', `/channels/${channel.id}/balance`, adminKey)
    assert.equal(failed.status, 200, JSON.stringify(failed.body))
    assert.deepInclude(failed.body, { ok: false, amount: null })
    assert.include(failed.body.error, 'HTTP 500')
    assert.notInclude(failed.body.error, '\u0000')
    assert.notInclude(failed.body.error, 'sk-nul-secret')

    // A 2xx whose JSON error message decodes to a NUL
    mock.script({ raw: { status: 200, body: '{"error":{"message":"quota\\u0000gone"}}' } })
    const said = await adminApi('POST', `/channels/${channel.id}/balance`, adminKey)
    assert.equal(said.status, 200, JSON.stringify(said.body))
    assert.include(said.body.error, 'quota')
    const row = await db.from('channel_balances').where('channel_id', channel.id).first()
    assert.equal(row.error, said.body.error, 'the check is kept')
  })

  test('a channel id on the management paths is digits: 0x.., 1e.., 2.0 name no channel (they named the channel of that number)', async ({ assert }) => {
    const channel = await seedChannel({ name: 'ids', provider: 'openrouter', baseUrl: mock.url, models: ['ids-*'] })
    const lookalikes = [`0x${channel.id.toString(16)}`, `${channel.id}e0`, `${channel.id}.0`, `+${channel.id}`, `0b${channel.id.toString(2)}`]
    for (const id of lookalikes) {
      for (const [method, path] of [['GET', `/channels/${id}/balance`], ['POST', `/channels/${id}/balance`], ['GET', `/channels/${id}`], ['GET', `/channels/${id}/models`]]) {
        const answer = await adminApi(method, path, adminKey)
        assert.equal(answer.status, 404, `${method} ${path}: ${JSON.stringify(answer.body)}`)
        assert.equal(answer.body.error.type, 'not_found_error')
      }
    }
    for (const id of ['-1', '0', '99999999999', '12345678901234567890']) {
      assert.equal((await adminApi('POST', `/channels/${id}/balance`, adminKey)).status, 404, id)
      assert.equal((await adminApi('GET', `/channels/${id}`, adminKey)).status, 404, id)
    }
    assert.equal((await adminApi('GET', `/channels/${channel.id}/balance`, adminKey)).status, 200)
  })

  test('GET /health: monitors asking for different models at once share 4 upstream calls in all, each still answered', async ({ assert }) => {
    let inflight = 0
    let most = 0
    let calls = 0
    const upstream: Server = createServer((req, res) => {
      inflight++
      calls++
      most = Math.max(most, inflight)
      req.resume()
      setTimeout(() => {
        inflight--
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ id: 'h', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
      }, 150)
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', () => resolve()))
    try {
      const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`
      for (let i = 0; i < 3; i++) await seedChannel({ name: `glob${i}`, baseUrl: url, models: ['probe-*'] })
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          fetch(`${baseUrl()}/health?model=probe-${i}`, { headers: { authorization: `Bearer ${adminKey}` } }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }))
        )
      )
      for (const answer of answers) {
        assert.equal(answer.status, 200)
        assert.equal(answer.body.healthy_count, 3, JSON.stringify(answer.body))
      }
      assert.equal(calls, 24, 'each model through each of its channels')
      assert.isAtMost(most, 4, 'upstream calls at once over every run')
    } finally {
      upstream.close()
    }
  })

  test('update all balances: calls made while a run is under way share it (each upstream asked once, never more than 4 at once)', async ({ assert }) => {
    let inflight = 0
    let most = 0
    const asked = new Map<string, number>()
    const upstream: Server = createServer((req, res) => {
      inflight++
      most = Math.max(most, inflight)
      const who = String(req.headers.authorization)
      asked.set(who, (asked.get(who) ?? 0) + 1)
      req.resume()
      setTimeout(() => {
        inflight--
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"data":{"total_credits":10,"total_usage":1}}')
      }, 150)
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', () => resolve()))
    try {
      await db.from('channels').delete()
      const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api/v1`
      for (let i = 0; i < 3; i++) await seedChannel({ name: `acct${i}`, provider: 'openrouter', baseUrl: url, apiKey: `sk-acct-${i}`, models: [`acct${i}-*`] })
      const answers = await Promise.all(Array.from({ length: 6 }, () => adminApi('POST', '/channels/balances', adminKey)))
      for (const answer of answers) {
        assert.equal(answer.status, 200, JSON.stringify(answer.body))
        assert.lengthOf(answer.body.data, 3)
        assert.isTrue(answer.body.data.every((check: any) => check.ok && check.amount === '9.000000'))
      }
      assert.deepEqual([...asked.values()], [1, 1, 1], 'each account asked once')
      assert.isAtMost(most, 4)
    } finally {
      upstream.close()
    }
  })

  test('the background balance check ends at once when the gateway stops, a hanging upstream or not; the cut check keeps the last reading', async ({ assert }) => {
    let asked = 0
    const hanging: Server = createServer((req) => {
      asked++
      req.resume()
    })
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', () => resolve()))
    try {
      await db.from('channels').delete()
      const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/api/v1`
      const channel = await seedChannel({ name: 'hangs', provider: 'openrouter', baseUrl: url, models: ['hang-*'] })
      const logs: string[] = []
      const timer = new ChannelBalanceTimer({ intervalMs: 3_600_000, firstDelayMs: 0, log: (m) => logs.push(m) })
      timer.start()
      const until = Date.now() + 5000
      while (asked === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
      assert.equal(asked, 1, 'the run asked the upstream')
      const started = Date.now()
      await timer.stop()
      assert.isBelow(Date.now() - started, 2000, 'stop() waited for the hanging upstream')
      assert.isNull(await db.from('channel_balances').where('channel_id', channel.id).first(), 'a check cut by the stop is not recorded as the upstream failing')
    } finally {
      hanging.closeAllConnections()
      hanging.close()
    }
  })

  test('SIGTERM during a GET /health run: the run ends at once (503 shutting down), the shutdown keeps its grace', async ({ assert }) => {
    let asked = 0
    const hanging: Server = createServer((req) => {
      asked++
      req.resume()
    })
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', () => resolve()))
    const port = await freePort()
    // A grace of 3 s; 6 hanging channels tested 4 at a time for 20 s each held the stop ~43 s.
    const child = spawn(process.execPath, ['bin/start.js'], {
      env: { ...process.env, NODE_ENV: 'production', PORT: String(port), LOG_LEVEL: 'warn', SHUTDOWN_GRACE_MS: '3000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      await db.from('channels').delete()
      const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/v1`
      for (let i = 0; i < 6; i++) await seedChannel({ name: `hang${i}`, baseUrl: url, models: ['hang-m'] })
      let up = false
      for (let i = 0; i < 1200 && !up && child.exitCode === null; i++) {
        up = await fetch(`http://127.0.0.1:${port}/api/status`).then((r) => r.ok, () => false)
        if (!up) await new Promise((resolve) => setTimeout(resolve, 50))
      }
      assert.isTrue(up, `the server did not start:\n${output}`)
      const health = fetch(`http://127.0.0.1:${port}/health`, { headers: { authorization: `Bearer ${adminKey}` } }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }))
      while (asked < 4) await new Promise((resolve) => setTimeout(resolve, 20))
      const signalled = Date.now()
      child.kill('SIGTERM')
      const answer = await health
      assert.equal(answer.status, 503, JSON.stringify(answer.body))
      assert.include(answer.body.error.message, 'shutting down', JSON.stringify(answer.body))
      const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('running'), 15_000))])
      assert.equal(code, 0, output)
      assert.isBelow(Date.now() - signalled, 10_000)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      hanging.closeAllConnections()
      hanging.close()
    }
  }).timeout(120_000)

  test('GET /health?model= with a thinking suffix tests the model a request of that name reaches (the base), not the suffixed name', async ({ assert }) => {
    await db.from('channels').delete()
    const openai = await seedChannel({ name: 'o', provider: 'openai', baseUrl: mock.url, models: ['o3-mini'] })
    const claude = await seedChannel({ name: 'a', provider: 'anthropic', baseUrl: mock.url, models: ['claude-x'] })
    for (const [asked, base, channelId] of [
      ['o3-mini-high', 'o3-mini', openai.id],
      ['claude-x-thinking', 'claude-x', claude.id],
    ] as const) {
      const before = mock.requests.length
      const response = await fetch(`${baseUrl()}/health?model=${asked}`, { headers: { authorization: `Bearer ${adminKey}` } })
      const body = (await response.json()) as any
      assert.equal(response.status, 200, JSON.stringify(body))
      assert.deepEqual(body.healthy_endpoints.map((e: any) => e.channel_id), [channelId], JSON.stringify(body))
      const sent = mock.requests.slice(before).map((r) => JSON.parse(r.body).model)
      assert.deepEqual(sent, [base], `${asked}: the upstream knows no model of that name`)
    }
  })

  test("an upstream echoing the channel's extra headers: their values (write-only, as the key) are masked in a balance check's and a model list's error", async ({ assert }) => {
    const channel = await seedChannel({
      name: 'echoes',
      provider: 'openrouter',
      baseUrl: mock.url,
      apiKey: 'sk-echo-key-1',
      extraHeaders: { 'x-proxy-secret': 'proxy-secret-value-123' },
      models: ['echo-*'],
    })
    mock.script({ status: 401, echo_credentials: true })
    const check = await adminApi('POST', `/channels/${channel.id}/balance`, adminKey)
    assert.equal(check.status, 200)
    assert.isFalse(check.body.ok)
    assert.include(check.body.error, 'x-proxy-secret', 'the upstream did echo the headers')
    assert.notInclude(check.body.error, 'proxy-secret-value-123')
    assert.notInclude(check.body.error, 'sk-echo-key-1')
    const row = await db.from('channel_balances').where('channel_id', channel.id).first()
    assert.notInclude(row.error, 'proxy-secret-value-123')

    mock.script({ status: 401, echo_credentials: true })
    const models = await adminApi('GET', `/channels/${channel.id}/models`, adminKey)
    assert.equal(models.status, 502, JSON.stringify(models.body))
    assert.notInclude(JSON.stringify(models.body), 'proxy-secret-value-123')
  })

  test('a usage filter holding a NUL (end user, model, tag, status) matches no row: the Usage page is no 500, the API no 400 about storing', async ({ assert }) => {
    const admin = new PanelClient()
    await admin.login('root@h24b.test', 'password123')
    for (const name of ['end_user', 'model', 'tag', 'status']) {
      const page = await admin.get(`/admin/usage?${name}=a%00b`)
      assert.equal(page.status, 200, `/admin/usage?${name}=: ${textOf(page.html).slice(0, 200)}`)
      const api = await adminApi('GET', `/usage?${name}=a%00b`, adminKey)
      assert.equal(api.status, 200, `/api/admin/usage?${name}=: ${JSON.stringify(api.body)}`)
      assert.deepEqual(api.body.data, [])
    }
    const spend = await adminApi('GET', '/spend/end-users?end_user=%00', adminKey)
    assert.equal(spend.status, 200, JSON.stringify(spend.body))
    assert.deepEqual(spend.body.data, [])
  })

  test('DeepSeek: a currency sent in lower case or padded is still its currency, not relabelled CNY', async ({ assert }) => {
    const channel = await seedChannel({ name: 'ds-case', provider: 'deepseek', baseUrl: mock.url, models: ['dsc-*'] })
    mock.script({ raw: { status: 200, body: '{"balance_infos":[{"currency":"cny","total_balance":"70"},{"currency":" usd ","total_balance":"3"}]}' } })
    const check = await adminApi('POST', `/channels/${channel.id}/balance`, adminKey)
    assert.deepInclude(check.body, { ok: true, amount: '3.000000', currency: 'USD' })
    mock.script({ raw: { status: 200, body: '{"balance_infos":[{"currency":"eur","total_balance":"5"}]}' } })
    assert.deepInclude((await adminApi('POST', `/channels/${channel.id}/balance`, adminKey)).body, { amount: '5.000000', currency: 'EUR' })
  })

  test('a run waiting for a shared test place keeps its budget: past it, its channels are skipped without waiting for a place', async ({ assert }) => {
    const hanging: Server = createServer((req) => req.resume())
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', () => resolve()))
    try {
      await db.from('channels').delete()
      const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/v1`
      const slow = await Channel.findOrFail((await seedChannel({ name: 'slow', baseUrl: url, models: ['slow-m'] })).id)
      const other = await Channel.findOrFail((await seedChannel({ name: 'other', baseUrl: url, models: ['other-m'] })).id)
      const slots = new TestSlots(1)
      const holding = testAllChannels({ kind: 'generate', channels: [slow], perChannelMs: 1500, slots })
      await new Promise((resolve) => setTimeout(resolve, 50))
      const started = Date.now()
      const rows = await testAllChannels({ kind: 'generate', channels: [other], perChannelMs: 1500, budgetMs: 200, slots })
      assert.isBelow(Date.now() - started, 1000, 'waited for the other run to give its place back')
      assert.isTrue(rows[0].skipped)
      await holding
    } finally {
      hanging.closeAllConnections()
      hanging.close()
    }
  })

  test('an end user\'s owner named with a NUL is no user (404 naming it), not a 400 about storing', async ({ assert }) => {
    const litellm = await fetch(`${baseUrl()}/customer/list?owner=a%00b`, { headers: { authorization: `Bearer ${adminKey}` } })
    const body = (await litellm.json()) as any
    assert.equal(litellm.status, 404, JSON.stringify(body))
    assert.include(body.error.message, 'No user')
    const api = await adminApi('GET', '/end-users?user=a%00b', adminKey)
    assert.equal(api.status, 404, JSON.stringify(api.body))
  })
})
