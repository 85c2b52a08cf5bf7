import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ChannelList from '#commands/channel_list'
import ChannelTest from '#commands/channel_test'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

const hello = [{ role: 'user', content: 'hi' }]

async function runCommand(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

/** What a command printed (raw mode keeps it in memory). */
function printed(instance: any): string {
  return instance.ui.logger.getLogs().map((l: any) => l.message).join('\n')
}

async function waitFor<T>(read: () => Promise<T>, ok: (value: T) => boolean, ms = 3000): Promise<T> {
  const end = Date.now() + ms
  let value = await read()
  while (!ok(value) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50))
    value = await read()
  }
  return value
}

test.group('Cool-downs per (channel, model): 429 and 403', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    return () => mock.stop()
  })
  group.each.setup(async () => (await gateway()).health.reset())

  test('a 429 on model A cools only A: model B on the same channel is still served', async ({ assert }) => {
    const channel = await seedChannel({ name: 'shared-429', baseUrl: mock.url, models: ['rl-*'] })
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }

    const limited = await post('/v1/chat/completions', { model: 'rl-a', messages: hello, mock: { status: 429, retry_after: 20 } }, auth)
    assert.equal(limited.status, 429)
    assert.equal(limited.headers.get('retry-after'), '20')

    // Before the fix the whole channel cooled down: model B got 503 no_available_channel.
    const other = await post('/v1/chat/completions', { model: 'rl-b', messages: hello }, auth)
    assert.equal(other.status, 200)

    // Model A itself: no channel left to try, 429 (the provider's rate limit) with the wait.
    const seen = mock.requests.length
    const cooling = await post('/v1/chat/completions', { model: 'rl-a', messages: hello }, auth)
    assert.equal(cooling.status, 429)
    assert.equal(((await cooling.json()) as any).error.code, 'upstream_rate_limited')
    assert.closeTo(Number(cooling.headers.get('retry-after')), 20, 1)
    assert.equal(mock.requests.length, seen, 'the cooling (channel, model) is not tried')

    const status: any = await (await fetch(`${baseUrl()}/api/status`)).json()
    assert.equal(status.channels.cooling_down, 0)
    assert.deepInclude(status.model_cooldowns.map((c: any) => [c.channel_id, c.model, c.reason]), [channel.id, 'rl-a', 'rate_limited'])

    // Mirrored for admins (coalesced, ~500 ms) and shown by channel:list.
    const stored = await waitFor(
      () => db.from('channels').where('id', channel.id).first(),
      (row) => Object.keys(row.model_cooldowns).length > 0
    )
    assert.equal(stored.model_cooldowns['rl-a'].kind, 'rate_limited')
    assert.include(stored.model_cooldowns['rl-a'].reason, 'HTTP 429')
    assert.equal(stored.health, 'closed')
    const list = printed(await runCommand(ChannelList, []))
    assert.include(list, 'rl-a rate_limited until')
  })

  test('every candidate cooling after a 429: 429 with the soonest Retry-After', async ({ assert, cleanup }) => {
    const a = await startMock({ status: 429, retryAfter: 9 })
    const b = await startMock({ status: 429, retryAfter: 4 })
    cleanup(async () => void (await Promise.all([a.stop(), b.stop()])))
    await seedChannel({ name: 'slow-limit', baseUrl: a.url, models: ['both-*'], priority: 1 })
    await seedChannel({ name: 'fast-limit', baseUrl: b.url, models: ['both-*'], priority: 0 })
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const first = await post('/v1/chat/completions', { model: 'both-x', messages: hello }, auth)
    assert.equal(first.status, 429)
    const next = await post('/v1/chat/completions', { model: 'both-x', messages: hello }, auth)
    assert.equal(next.status, 429)
    assert.closeTo(Number(next.headers.get('retry-after')), 4, 1)
    assert.include(((await next.json()) as any).error.message, 'rate limiting')
  })

  test('every candidate rate limited: 429 in each wire format with Retry-After, metered as sent; not tried', async ({ assert, cleanup }) => {
    const limited = await startMock({ status: 429, retryAfter: 30 })
    cleanup(() => limited.stop())
    await seedChannel({ name: 'rl-chat', baseUrl: limited.url, models: ['rlall-*'] })
    const user = await seedUser()
    const first = await post('/v1/chat/completions', { model: 'rlall-x', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(first.status, 429, 'the upstream 429 itself')
    const tried = limited.requests.length

    // LiteLLM and OpenRouter answer 429 here; the gateway said 503 no_available_channel.
    const chat = await post('/v1/chat/completions', { model: 'rlall-x', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(chat.status, 429)
    assert.closeTo(Number(chat.headers.get('retry-after')), 30, 1)
    assert.isNull(chat.headers.get('x-should-retry'), 'a rate limit passes: the SDKs may retry')
    const chatError = ((await chat.json()) as any).error
    assert.include(chatError, { type: 'rate_limit_error', code: 'upstream_rate_limited' })
    assert.include(chatError.message, "upstream provider is rate limiting 'rlall-x'")

    const messages = await post(
      '/v1/messages',
      { model: 'rlall-x', max_tokens: 10, messages: hello },
      { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    )
    assert.equal(messages.status, 429)
    assert.closeTo(Number(messages.headers.get('retry-after')), 30, 1)
    const anthropic = (await messages.json()) as any
    assert.equal(anthropic.type, 'error')
    assert.equal(anthropic.error.type, 'rate_limit_error')
    assert.include(anthropic.error.message, 'rate limiting')

    const gemini = await post('/v1beta/models/rlall-x:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 429)
    assert.closeTo(Number(gemini.headers.get('retry-after')), 30, 1)
    assert.include(((await gemini.json()) as any).error, { code: 429, status: 'RESOURCE_EXHAUSTED' })

    assert.equal(limited.requests.length, tried, 'the cooling channel is not called')
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.status, r.error_code, r.channel_id, r.attempts]),
      [
        // The upstream's own 429 is told in the gateway's words (its message names the operator's account: upstream_leaks.spec.ts).
        ['chat.completions', 429, 'upstream_rate_limited', rows[0].channel_id, 1],
        ['chat.completions', 429, 'upstream_rate_limited', null, 0],
        ['messages', 429, 'upstream_rate_limited', null, 0],
        ['gemini.generateContent', 429, 'upstream_rate_limited', null, 0],
      ]
    )
  })

  test('cooling for other reasons too (a 403 cool-down beside a 429): still 503 no_available_channel', async ({ assert, cleanup }) => {
    const limited = await startMock({ status: 429, retryAfter: 30 })
    const refusing = await startMock({ status: 403 })
    cleanup(async () => void (await Promise.all([limited.stop(), refusing.stop()])))
    await seedChannel({ name: 'mixed-429', baseUrl: limited.url, models: ['mixed-*'], priority: 1 })
    await seedChannel({ name: 'mixed-403', baseUrl: refusing.url, models: ['mixed-*'], priority: 0 })
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await post('/v1/chat/completions', { model: 'mixed-x', messages: hello }, auth)).status, 502)
    const cooling = await post('/v1/chat/completions', { model: 'mixed-x', messages: hello }, auth)
    assert.equal(cooling.status, 503)
    assert.equal(((await cooling.json()) as any).error.code, 'no_available_channel')
    assert.closeTo(Number(cooling.headers.get('retry-after')), 30, 1)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code]).at(-1), [503, 'no_available_channel'])
  })

  test('the cool-down ends: a success on the model clears it', async ({ assert }) => {
    const channel = await seedChannel({ name: 'brief-429', baseUrl: mock.url, models: ['brief-*'] })
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    await post('/v1/chat/completions', { model: 'brief-a', messages: hello, mock: { status: 429, retry_after: 0.2 } }, auth)
    const health = (await gateway()).health
    assert.isFalse(health.modelAvailable(channel.id, 'brief-a'))
    await new Promise((r) => setTimeout(r, 250))
    assert.equal((await post('/v1/chat/completions', { model: 'brief-a', messages: hello }, auth)).status, 200)
    assert.lengthOf(health.modelCooldowns(channel.id), 0)
  })
})

test.group('Upstream 403: a model refused is not a dead key', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    return () => mock.stop()
  })
  group.each.setup(async () => (await gateway()).health.reset())

  test('one 403 cools that (channel, model) only; the channel stays enabled for other models', async ({ assert }) => {
    const primary = await seedChannel({ name: 'p403', baseUrl: mock.url, models: ['f1-*'], priority: 10 })
    const backup = await seedChannel({ name: 'b403', baseUrl: mock.url, models: ['f1-*'], priority: 0 })
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    // The primary answers 403 once (scripted), the backup serves.
    mock.script({ status: 403 })
    const served = await post('/v1/chat/completions', { model: 'f1-a', messages: hello }, auth)
    assert.equal(served.status, 200)
    await new Promise((r) => setTimeout(r, 100))
    const stored = await db.from('channels').where('id', primary.id).first()
    assert.isTrue(stored.enabled, 'before the fix a single 403 disabled the channel for good')
    const health = (await gateway()).health
    assert.isFalse(health.modelAvailable(primary.id, 'f1-a'))
    assert.isTrue(health.modelAvailable(primary.id, 'f1-b'))
    // Model B still goes to the primary.
    const before = mock.requests.length
    assert.equal((await post('/v1/chat/completions', { model: 'f1-b', messages: hello }, auth)).status, 200)
    assert.equal(mock.requests.length, before + 1)
    assert.isTrue((await db.from('channels').where('id', backup.id).first()).enabled)
    const mirrored = await waitFor(
      () => db.from('channels').where('id', primary.id).first(),
      (row) => Object.keys(row.model_cooldowns).length > 0
    )
    assert.equal(mirrored.model_cooldowns['f1-a'].kind, 'forbidden')
    assert.include(mirrored.model_cooldowns['f1-a'].reason, 'HTTP 403')
  })

  test('403 for a second model too: the key is refused, the channel is disabled with why; channel:test re-enables it', async ({ assert }) => {
    const refusing = await startMock({ status: 403 })
    const channel = await seedChannel({ name: 'dead403', baseUrl: refusing.url, models: ['f2-*'], priority: 10 })
    await seedChannel({ name: 'alive403', baseUrl: mock.url, models: ['f2-*'], priority: 0 })
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await post('/v1/chat/completions', { model: 'f2-a', messages: hello }, auth)).status, 200)
    assert.isTrue((await db.from('channels').where('id', channel.id).first()).enabled)
    assert.equal((await post('/v1/chat/completions', { model: 'f2-b', messages: hello }, auth)).status, 200)
    const disabled = await waitFor(
      () => db.from('channels').where('id', channel.id).first(),
      (row) => !row.enabled
    )
    assert.isFalse(disabled.enabled)
    assert.include(disabled.disabled_reason, 'HTTP 403 for several models')
    assert.exists(disabled.auto_disabled_at)
    const list = printed(await runCommand(ChannelList, []))
    assert.include(list, 'disabled by the gateway: upstream answered HTTP 403 for several models')

    // The test fails while the upstream refuses; passes once the key works again, and re-enables.
    const failing = await runCommand(ChannelTest, ['dead403'])
    assert.equal(failing.exitCode, 1)
    assert.isFalse((await db.from('channels').where('id', channel.id).first()).enabled)
    refusing.options.status = undefined
    const passing = await runCommand(ChannelTest, [String(channel.id)])
    passing.assertSucceeded()
    const back = await db.from('channels').where('id', channel.id).first()
    assert.isTrue(back.enabled)
    assert.isNull(back.disabled_reason)
    assert.isNull(back.auto_disabled_at)
    await refreshCaches()
    const before = refusing.requests.length
    assert.equal((await post('/v1/chat/completions', { model: 'f2-c', messages: hello }, auth)).status, 200)
    assert.equal(refusing.requests.length, before + 1, 'back in rotation')
    await refusing.stop()
  })

  test('channel:test leaves a channel an admin disabled alone', async ({ assert }) => {
    const channel = await seedChannel({ name: 'manual-off', baseUrl: mock.url, models: ['f3-*'] })
    await db.from('channels').where('id', channel.id).update({ enabled: false, disabled_reason: 'maintenance' })
    ;(await runCommand(ChannelTest, ['manual-off'])).assertSucceeded()
    assert.isFalse((await db.from('channels').where('id', channel.id).first()).enabled)
  })
})
