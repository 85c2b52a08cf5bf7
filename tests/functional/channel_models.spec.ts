import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import { AES256GCM } from '@adonisjs/core/encryption/drivers/aes_256_gcm'
import ChannelModels from '#commands/channel_models'
import ChannelTest from '#commands/channel_test'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { fetchChannelModels, previewUpstreamModels, setChannelModels } from '#actions/channel_models'
import { testAllChannels } from '#actions/test_all_channels'
import { checkChannelKey } from '#actions/test_channel'
import { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, refreshCaches, resetDatabase, seedChannel, startMock } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return { instance, said: instance.ui.logger.getLogs().map((l: { message: string }) => l.message).join('\n') }
}

async function failure(work: Promise<unknown>): Promise<string> {
  try {
    await work
  } catch (error) {
    return (error as Error).message
  }
  throw new Error('expected a failure')
}

const GET_MODELS = (mock: MockUpstream) => mock.requests.filter((r) => r.method === 'GET' && r.path.split('?')[0].endsWith('/models'))

test.group('Channel model lists: fetched through the channel adapter', (group) => {
  let mock: MockUpstream
  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    return () => mock.stop()
  })
  group.each.setup(async () => {
    await db.from('channels').delete()
    mock.requests.length = 0
  })

  test('OpenAI-compatible: GET {base}/models with the Bearer key; served by globs or the mapping, or not', async ({ assert }) => {
    const channel = await seedChannel({ name: 'oa', baseUrl: mock.url, apiKey: 'sk-oa-1234', models: ['mock-*'], modelMapping: { mini: 'gpt-4o-mini' } })
    const report = await fetchChannelModels(channel.id)
    assert.deepEqual(report.models, [
      { id: 'gpt-4o-mini', served: true, mappedFrom: ['mini'] },
      { id: 'mock-small', served: true, mappedFrom: [] },
    ])
    const [sent] = GET_MODELS(mock)
    assert.equal(sent.path, '/v1/models')
    assert.equal(sent.headers.authorization, 'Bearer sk-oa-1234')
    const unserved = await fetchChannelModels('oa')
    assert.lengthOf(unserved.models, 2, 'found by name too')
  })

  test('Anthropic: x-api-key and anthropic-version, paged by after_id while has_more', async ({ assert }) => {
    const channel = await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-9', models: ['claude-mock-haiku'] })
    const report = await fetchChannelModels(channel.id)
    assert.deepEqual(report.models.map((m) => [m.id, m.served]), [
      ['claude-mock-haiku', true],
      ['claude-mock-opus', false],
      ['claude-mock-sonnet', false],
    ])
    const sent = GET_MODELS(mock)
    assert.deepEqual(sent.map((r) => r.path), ['/v1/models?limit=1000', '/v1/models?limit=1000&after_id=claude-mock-opus'])
    assert.equal(sent[0].headers['x-api-key'], 'sk-ant-9')
    assert.exists(sent[0].headers['anthropic-version'])
  })

  test('Google: the key header, paged by pageToken, names without models/, only models that generate or embed', async ({ assert }) => {
    const channel = await seedChannel({ name: 'gem', provider: 'google', baseUrl: mock.origin, apiKey: 'AIza-key', models: ['gemini-*'] })
    const report = await fetchChannelModels(channel.id)
    assert.deepEqual(report.models.map((m) => [m.id, m.served]), [
      ['gemini-mock', true],
      ['gemini-mock-flash', true],
      ['text-embedding-mock', false],
    ])
    const sent = GET_MODELS(mock)
    assert.deepEqual(sent.map((r) => r.path), ['/v1beta/models?pageSize=1000', '/v1beta/models?pageSize=1000&pageToken=2'])
    assert.equal(sent[0].headers['x-goog-api-key'], 'AIza-key')
  })

  test('Azure (classic): {base}/models?api-version= with api-key; extra headers go along', async ({ assert }) => {
    const channel = await seedChannel({ name: 'az', provider: 'azure', baseUrl: `${mock.origin}/openai`, apiKey: 'az-key', models: ['gpt-4o'], extraHeaders: { 'X-Tenant': 't1' } })
    await fetchChannelModels(channel.id)
    const [sent] = GET_MODELS(mock)
    assert.equal(sent.path, '/openai/models?api-version=2024-10-21')
    assert.equal(sent.headers['api-key'], 'az-key')
    assert.equal(sent.headers['x-tenant'], 't1')
  })

  test('an error answer, a non-JSON answer, an unreachable upstream and a timeout are clear errors; the key is never in them', async ({ assert }) => {
    const key = 'sk-secret-echo-123456'
    const channel = await seedChannel({ name: 'bad', baseUrl: mock.url, apiKey: key, models: ['x'], firstByteTimeoutMs: 1000 })
    mock.script({ raw: { status: 401, body: JSON.stringify({ error: { message: `Incorrect API key provided: ${key}` } }) } })
    const denied = await failure(fetchChannelModels(channel.id))
    assert.include(denied, 'upstream answered HTTP 401')
    assert.include(denied, 'Incorrect API key provided: ••••')
    assert.notInclude(denied, key)

    mock.script({ raw: { status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>Welcome to nginx</body></html>' } })
    const html = await failure(fetchChannelModels(channel.id))
    assert.include(html, 'with text/html, not JSON')

    mock.script({ raw: { status: 200, body: '{"models": "none"}' } })
    assert.include(await failure(fetchChannelModels(channel.id)), 'no model list')

    // Answered 100 ms past the channel's 1 s first-byte limit: the limit holds to the millisecond (a
    // plain timer), not to undici's coarse clock, which let a 1.5 s answer through on a loaded machine.
    mock.script({ latency_ms: 1100 })
    assert.include(await failure(fetchChannelModels(channel.id)), 'first byte timeout')

    const closed = await startMock()
    const url = closed.url
    await closed.stop()
    const gone = await seedChannel({ name: 'gone', baseUrl: url, models: ['x'] })
    assert.include(await failure(fetchChannelModels(gone.id)), 'upstream unreachable: ECONNREFUSED')
  })

  test('an error body or a redirect under a 2xx/3xx says what came, the redirect target masked like the rest', async ({ assert }) => {
    const key = 'sk-in-the-location-42'
    const channel = await seedChannel({ name: 'odd', baseUrl: mock.url, apiKey: key, models: ['x'] })
    mock.script({ raw: { status: 200, body: '{"error":{"message":"quota exhausted","type":"insufficient_quota"}}' } })
    assert.include(await failure(fetchChannelModels(channel.id)), 'Model list: upstream answered HTTP 200 with an error: quota exhausted')
    mock.script({ raw: { status: 302, headers: { location: `https://example.test/login?key=${key}` }, body: '' } })
    const redirected = await failure(fetchChannelModels(channel.id))
    assert.include(redirected, 'upstream answered HTTP 302, a redirect to https://example.test/login?key=••••, not followed: check the base URL')
    assert.notInclude(redirected, key)
  })

  test('channel:test asks through the same client, one page only: the key masked, 16 MB a page, the status kept', async ({ assert }) => {
    // One page: Anthropic's list has a second page (the mock pages by two), which the key check does not read.
    const claude = await seedChannel({ name: 'claude-key', provider: 'anthropic', baseUrl: mock.url, apiKey: 'sk-ant-1', models: ['claude-*'] })
    const passed = await checkChannelKey(claude.id)
    assert.include(passed, { ok: true, status: 200, message: 'upstream listed 2+ models' })
    assert.deepEqual(GET_MODELS(mock).map((r) => r.path), ['/v1/models?limit=1000'])
    assert.equal(GET_MODELS(mock)[0].headers['x-api-key'], 'sk-ant-1')

    const key = 'sk-echoed-back-987654'
    const channel = await seedChannel({ name: 'echo', baseUrl: mock.url, apiKey: key, models: ['x'] })
    mock.script({ raw: { status: 401, body: JSON.stringify({ error: { message: `Incorrect API key provided: ${key}` } }) } })
    const denied = await checkChannelKey(channel.id)
    assert.include(denied, { ok: false, status: 401 })
    assert.include(denied.message, 'upstream answered HTTP 401: {"error":{"message":"Incorrect API key provided: ••••"}}')
    assert.notInclude(denied.message, key)

    // A body past 16 MB is cut there, not read whole into memory.
    mock.script({ raw: { status: 200, body: `{"data":[${'"x",'.repeat(4.5 * 1024 * 1024)}"y"]}` } })
    const huge = await checkChannelKey(channel.id)
    assert.include(huge, { ok: false, status: 200, message: 'the model list is larger than 16 MB a page' })
  }).timeout(30_000)

  test('a key saved with another APP_KEY is refused with its reason, and nothing is sent', async ({ assert }) => {
    const channel = await seedChannel({ name: 'moved', baseUrl: mock.url, models: ['x'] })
    const other = new AES256GCM({ id: 'gcm', key: 'another-app-key-another-app-key-42' })
    await db.from('channels').where('id', channel.id).update({ api_key_encrypted: other.encrypt('sk-up') })
    assert.include(await failure(fetchChannelModels(channel.id)), 'APP_KEY')
    assert.lengthOf(GET_MODELS(mock), 0)
  })

  test('at most 5,000 ids are kept (the rest said cut); ids with spaces or commas are dropped', async ({ assert }) => {
    const big = await startMock({ models: [...Array.from({ length: 5100 }, (_, i) => `m-${String(i).padStart(5, '0')}`), 'has space', 'a,b'] })
    try {
      const report = await previewUpstreamModels({ provider: 'custom', baseUrl: big.url })
      assert.lengthOf(report.models, 5000)
      assert.isTrue(report.truncated)
      assert.notInclude(report.models.map((m) => m.id), 'has space')
    } finally {
      await big.stop()
    }
  })

  test('chosen ids are added to the channel models or replace them, audited; more than 500 refused', async ({ assert }) => {
    const channel = await seedChannel({ name: 'grow', baseUrl: mock.url, models: ['mock-*'] })
    const added = await setChannelModels(channel.id, ['gpt-4o-mini', 'mock-*', 'gpt-4o-mini'], 'add')
    assert.deepEqual(added.channel.models, ['mock-*', 'gpt-4o-mini'])
    assert.deepEqual(added.added, ['gpt-4o-mini'])
    const audit = await db.from('audit_log').where('action', 'channel.update').where('subject_id', channel.id).orderBy('id', 'desc').first()
    assert.include(audit.summary, 'gpt-4o-mini')
    const replaced = await setChannelModels(channel.id, ['only-this'], 'replace')
    assert.deepEqual(replaced.channel.models, ['only-this'])
    assert.deepEqual(replaced.removed, ['mock-*', 'gpt-4o-mini'])
    const many = Array.from({ length: 501 }, (_, i) => `m${i}`)
    const refused = await failure(setChannelModels(channel.id, many, 'replace'))
    assert.match(refused, /validation|500/i)
    await assert.rejects(() => setChannelModels(channel.id, [], 'add'))
  })

  test('channel:models lists with served marks; --add adds the others; an upstream failure exits 1 with the reason', async ({ assert }) => {
    const channel = await seedChannel({ name: 'cli', baseUrl: mock.url, models: ['mock-*'] })
    const listed = await run(ChannelModels, [String(channel.id)])
    listed.instance.assertSucceeded()
    assert.include(listed.said, 'mock-small  served')
    assert.include(listed.said, '2 models upstream, 1 not served')
    const added = await run(ChannelModels, ['cli', '--add'])
    added.instance.assertSucceeded()
    const row = await db.from('channels').where('id', channel.id).first()
    assert.deepEqual(row.models, ['mock-*', 'gpt-4o-mini'])
    const audit = await db.from('audit_log').where('action', 'channel.update').orderBy('id', 'desc').first()
    assert.equal(audit.source, 'cli')

    mock.script({ status: 403 })
    const refused = await run(ChannelModels, ['cli'])
    assert.equal(refused.instance.exitCode, 1)
    assert.include(refused.said, 'HTTP 403')
    const unknown = await run(ChannelModels, ['nope'])
    assert.equal(unknown.instance.exitCode, 1)
  })

  test('channel:test --all checks every enabled channel and those the gateway disabled, re-enabling them; admin-disabled ones are skipped', async ({ assert }) => {
    const good = await seedChannel({ name: 'good', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    const auto = await seedChannel({ name: 'auto-off', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    const manual = await seedChannel({ name: 'admin-off', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await db.from('channels').where('id', auto.id).update({ enabled: false, disabled_reason: 'upstream answered HTTP 401', auto_disabled_at: new Date() })
    await db.from('channels').where('id', manual.id).update({ enabled: false, disabled_reason: 'maintenance' })
    const { instance, said } = await run(ChannelTest, ['--all'])
    instance.assertSucceeded()
    assert.include(said, `channel ${good.id} (good): upstream listed 2 models`)
    assert.include(said, `channel ${auto.id} is back in rotation`)
    assert.notInclude(said, 'admin-off')
    assert.include(said, '2 of 2 channels passed')
    assert.isTrue((await db.from('channels').where('id', auto.id).first()).enabled)
    assert.isFalse((await db.from('channels').where('id', manual.id).first()).enabled)
    const audit = await db.from('audit_log').where({ action: 'channel.enable', subject_id: auto.id }).first()
    assert.equal(audit.source, 'cli')
    assert.include(audit.summary, 'upstream listed 2 models')
    assert.include(audit.summary, 'the gateway had disabled it: upstream answered HTTP 401')
    assert.notExists(await db.from('audit_log').where({ action: 'channel.enable', subject_id: good.id }).first())

    mock.script({ status: 500 })
    const failed = await run(ChannelTest, ['--all'])
    assert.equal(failed.instance.exitCode, 1)
    assert.include(failed.said, 'HTTP 500')
    const neither = await run(ChannelTest, [])
    assert.equal(neither.instance.exitCode, 1)
  })

  test('test all: a few at a time, within the per-channel limit, nothing started after the budget', async ({ assert }) => {
    const slow = await startMock({ latencyMs: 1500 })
    try {
      for (let i = 0; i < 5; i++) await seedChannel({ name: `slow-${i}`, baseUrl: slow.url, models: ['gpt-4o-mini'] })
      await refreshCaches()
      const started = Date.now()
      const rows = await testAllChannels({ kind: 'generate', concurrency: 2, perChannelMs: 400, budgetMs: 500 })
      const took = Date.now() - started
      assert.lengthOf(rows, 5)
      assert.isBelow(took, 1400, 'each test ended at its limit')
      assert.isTrue(rows.every((r) => !r.ok))
      // Two at a time, each ended at 400 ms: the second pair starts at ~400 ms (within the 500 ms budget), the fifth at ~800 ms would not.
      assert.deepEqual(rows.map((r) => r.skipped), [false, false, false, false, true])
      assert.include(rows[4].message, 'not tested')
    } finally {
      await slow.stop()
    }
  })
})

test.group('Channel model lists: panel and management API', (group) => {
  let mock: MockUpstream
  let adminKey = ''
  let userKey = ''
  const panel = new PanelClient()
  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await createUser({ email: 'root@models.test', password: 'admin-password', role: 'admin' })
    await createUser({ email: 'ann@models.test', password: 'user-password' })
    adminKey = (await createApiKey({ userRef: 'root@models.test', name: 'ops', manage: true })).key
    userKey = (await createApiKey({ userRef: 'ann@models.test', name: 'mine' })).key
    await panel.login('root@models.test', 'admin-password')
    return () => mock.stop()
  })
  group.each.setup(async () => {
    await db.from('channels').delete()
  })

  async function api(method: string, path: string, body?: unknown, key = adminKey) {
    return adminApi(method, path, key, body)
  }

  test('panel: Fetch models lists the ids with served marks; the chosen ones are saved through the update (audited)', async ({ assert }) => {
    const channel = await seedChannel({ name: 'pick', baseUrl: mock.url, apiKey: 'sk-pick-777', models: ['mock-*'] })
    const show = await panel.get(`/admin/channels/${channel.id}`)
    assert.include(textOf(show.html), 'Fetch models')
    const page = await panel.post(`/admin/channels/${channel.id}/models`)
    assert.equal(page.status, 200)
    const text = textOf(page.html)
    assert.include(text, '2 models')
    assert.include(text, '1 served by this channel (its globs or mapping), 1 not')
    assert.match(text, /gpt-4o-mini not served/)
    assert.notInclude(page.html, 'sk-pick-777')

    panel.lastPage = `/admin/channels/${channel.id}`
    const saved = await panel.post(`/admin/channels/${channel.id}/models/save`, { 'models[]': ['gpt-4o-mini'], 'mode': 'add' })
    assert.equal(saved.location, `/admin/channels/${channel.id}`)
    assert.include(textOf((await panel.follow(saved)).html), '1 models added')
    assert.deepEqual((await db.from('channels').where('id', channel.id).first()).models, ['mock-*', 'gpt-4o-mini'])
    const audit = await db.from('audit_log').where('action', 'channel.update').orderBy('id', 'desc').first()
    assert.equal(audit.source, 'panel')

    const replaced = await panel.post(`/admin/channels/${channel.id}/models/save`, { 'models[]': ['mock-small', 'gpt-4o-mini'], 'mode': 'replace' })
    assert.include(textOf((await panel.follow(replaced)).html), 'models replaced')
    assert.deepEqual((await db.from('channels').where('id', channel.id).first()).models, ['mock-small', 'gpt-4o-mini'])
  })

  test('panel: an upstream failure is a flash on the channel page, no stack; no CSRF token, no call; a user gets 403', async ({ assert }) => {
    const channel = await seedChannel({ name: 'flaky', baseUrl: mock.url, models: ['mock-*'] })
    await panel.get(`/admin/channels/${channel.id}`)
    mock.script({ raw: { status: 502, headers: { 'content-type': 'text/html' }, body: '<h1>Bad gateway</h1>' } })
    const failed = await panel.post(`/admin/channels/${channel.id}/models`)
    assert.equal(failed.status, 302)
    const shown = textOf((await panel.follow(failed)).html)
    assert.include(shown, 'Model list: upstream answered HTTP 502')
    assert.notInclude(shown, 'at async')

    const before = mock.requests.length
    const forged = await panel.post(`/admin/channels/${channel.id}/models`, {}, { csrf: false })
    assert.notEqual(forged.status, 200)
    assert.equal(mock.requests.length, before, 'nothing asked upstream without the CSRF token')

    const user = new PanelClient()
    await user.login('ann@models.test', 'user-password')
    await user.get('/dashboard')
    assert.equal((await user.post(`/admin/channels/${channel.id}/models`)).status, 403)
    assert.equal((await user.post('/admin/channels/test-all')).status, 403)
    assert.equal(mock.requests.length, before)
  })

  test('panel: the new-channel form previews the typed upstream as JSON; errors are JSON too', async ({ assert }) => {
    await panel.get('/admin/channels/new')
    const preview = async (form: Record<string, string>) => {
      const body = new URLSearchParams({ ...form, _csrf: panel.csrf! })
      const response = await fetch(`${baseUrl()}/admin/channels/models/preview`, {
        method: 'POST',
        headers: { 'cookie': [...panel.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'accept': 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
        body,
      })
      return { status: response.status, body: (await response.json()) as any }
    }
    const found = await preview({ provider: 'anthropic', baseUrl: mock.url, apiKey: 'sk-typed', models: 'claude-mock-opus' })
    assert.equal(found.status, 200)
    assert.deepEqual(found.body.models.map((m: any) => [m.id, m.served]), [
      ['claude-mock-haiku', false],
      ['claude-mock-opus', true],
      ['claude-mock-sonnet', false],
    ])
    assert.equal(mock.lastRequest()!.headers['x-api-key'], 'sk-typed')
    const noUrl = await preview({ provider: 'custom', baseUrl: '' })
    assert.equal(noUrl.status, 400)
    assert.include(noUrl.body.error, 'base URL')
    mock.script({ status: 401 })
    const denied = await preview({ provider: 'custom', baseUrl: mock.url, apiKey: 'wrong' })
    assert.equal(denied.status, 400)
    assert.include(denied.body.error, 'HTTP 401')
    assert.equal((await preview({ provider: 'nope', baseUrl: mock.url })).status, 400)
  })

  test('panel: Test all shows each channel result on the list and puts a channel the gateway disabled back', async ({ assert }) => {
    const good = await seedChannel({ name: 'fine', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    const auto = await seedChannel({ name: 'auto', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    const manual = await seedChannel({ name: 'manual', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await db.from('channels').where('id', auto.id).update({ enabled: false, disabled_reason: 'upstream answered HTTP 401', auto_disabled_at: new Date() })
    await db.from('channels').where('id', manual.id).update({ enabled: false, disabled_reason: 'maintenance' })
    await refreshCaches()
    const list = await panel.get('/admin/channels')
    assert.include(textOf(list.html), 'Test all')
    // Post/redirect/get: the results come to the list through the flash, so a refresh there runs nothing again.
    const posted = await panel.post('/admin/channels/test-all')
    assert.equal(posted.status, 302)
    assert.equal(posted.location, '/admin/channels')
    const generations = mock.requests.filter((r) => r.method === 'POST').length
    const tested = await panel.follow(posted)
    assert.equal(tested.status, 200)
    const text = textOf(tested.html)
    assert.include(text, 'Tested 2 channels: 2 passed, 0 failed')
    assert.include(text, '1 channel the gateway had disabled is back in rotation')
    assert.match(tested.html, new RegExp(`data-testid="test-result-${good.id}">\\s*<span class="badge badge--ok">OK</span>`))
    assert.match(tested.html, new RegExp(`data-testid="test-result-${manual.id}">\\s*<span class="muted">not tested`))
    assert.isTrue((await db.from('channels').where('id', auto.id).first()).enabled)
    assert.isFalse((await db.from('channels').where('id', manual.id).first()).enabled)
    const refreshed = await panel.get('/admin/channels')
    assert.notInclude(refreshed.html, 'test-all-summary', 'the results were shown once')
    assert.equal(mock.requests.filter((r) => r.method === 'POST').length, generations, 'and nothing was tested again')
    await panel.post('/admin/channels/test-all', {}, { csrf: false })
    assert.equal(mock.requests.filter((r) => r.method === 'POST').length, generations, 'no CSRF token, no test')
  })

  test('panel: Test all of many failing channels fits the session cookie; the counts stay exact', async ({ assert }) => {
    const closed = await startMock()
    const url = closed.url
    await closed.stop()
    for (let i = 0; i < 60; i++) await seedChannel({ name: `down-${String(i).padStart(2, '0')}-${'x'.repeat(40)}`, baseUrl: url, models: [`m-${i}`] })
    await seedChannel({ name: 'up', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await refreshCaches()
    await panel.get('/admin/channels')
    const posted = await panel.post('/admin/channels/test-all')
    assert.equal(posted.status, 302)
    // A browser drops a cookie past 4,096 bytes (name and value): the session, flash and all, would be lost.
    const sizes = posted.headers.getSetCookie().map((cookie) => cookie.split(';')[0].length)
    for (const length of sizes) assert.isBelow(length, 4096)
    const text = textOf((await panel.follow(posted)).html)
    assert.include(text, 'Tested 61 channels: 1 passed, 60 failed')
    assert.include(text, 'ECONNREFUSED')
  }).timeout(60_000)

  test('management API: GET and POST /channels/{id}/models, 502 for the upstream failure, 404, 403 for a user key; test-all', async ({ assert }) => {
    const channel = await seedChannel({ name: 'api', baseUrl: mock.url, models: ['mock-*'] })
    const listed = await api('GET', `/channels/${channel.id}/models`)
    assert.equal(listed.status, 200)
    assert.deepEqual(listed.body.data, [
      { id: 'gpt-4o-mini', served: false, mapped_from: [] },
      { id: 'mock-small', served: true, mapped_from: [] },
    ])
    const set = await api('POST', `/channels/${channel.id}/models`, { models: ['gpt-4o-mini'] })
    assert.equal(set.status, 200)
    assert.deepEqual(set.body.models, ['mock-*', 'gpt-4o-mini'])
    const audit = await db.from('audit_log').where('action', 'channel.update').orderBy('id', 'desc').first()
    assert.equal(audit.source, 'api')
    const bad = await api('POST', `/channels/${channel.id}/models`, { models: 'gpt', mode: 'merge' })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error.code, 'invalid_field')

    mock.script({ status: 500 })
    const failed = await api('GET', `/channels/${channel.id}/models`)
    assert.equal(failed.status, 502)
    assert.equal(failed.body.error.code, 'provider_error')
    assert.include(failed.body.error.message, 'HTTP 500')
    assert.equal((await api('GET', '/channels/99999/models')).status, 404)
    assert.equal((await api('GET', `/channels/${channel.id}/models`, undefined, userKey)).status, 403)

    await refreshCaches()
    const all = await api('POST', '/channels/test-all')
    assert.equal(all.status, 200)
    assert.equal(all.body.data.length, 1)
    assert.include(all.body.data[0], { channel_id: channel.id, ok: true, skipped: false })
  })
})
