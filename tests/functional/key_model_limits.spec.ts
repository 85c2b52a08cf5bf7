import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { useLimiterStore } from '#gateway/limits/rate_limits'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import ace from '@adonisjs/core/services/ace'
import ApiKey from '#models/api_key'
import KeyCreate from '#commands/key_create'
import KeyUpdate from '#commands/key_update'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'
import { adminApi, baseUrl, multipartBody, post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'
import { wavFile } from '#tests/fixtures/audio_files'
import { pngFile } from '#tests/fixtures/image_files'

/**
 * A key's own rpm/tpm per model (LiteLLM's model_rpm_limit / model_tpm_limit):
 * counted per key and model asked for, in both limiter stores; other models
 * of the key and other keys are not counted.
 */
const hello = [{ role: 'user', content: 'hi' }]

function chat(key: string, model: string) {
  return post('/v1/chat/completions', { model, messages: hello }, { authorization: `Bearer ${key}` })
}

/** The meter counts tokens after the answer (the database store's count is a promise): let it land. */
const settle = () => new Promise((r) => setTimeout(r, 60))

for (const store of ['memory', 'database'] as const) {
  test.group(`Per-model limits of a key, ${store} limiter store`, (group) => {
    let mock: MockUpstream

    group.setup(async () => {
      useLimiterStore(store)
      if (store === 'database') await db.rawQuery('TRUNCATE rate_limits')
      await resetDatabase()
      mock = await startMock()
      await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
      return async () => {
        await mock.stop()
        useLimiterStore('memory')
      }
    })

    test('model rpm: the model asked for is refused past its limit, 429 naming it; other models and keys go on', async ({ assert }) => {
      const user = await seedUser({ key: { modelLimits: { 'gpt-4o': { rpm: 2 } } } })
      const other = await seedUser({ key: { modelLimits: { 'gpt-4o': { rpm: 2 } } } })
      const first = await chat(user.key, 'gpt-4o')
      assert.equal(first.status, 200)
      assert.equal(first.headers.get('x-ratelimit-limit-requests'), '2')
      assert.equal(first.headers.get('x-ratelimit-remaining-requests'), '1')
      assert.equal((await chat(user.key, 'gpt-4o')).status, 200)
      const third = await chat(user.key, 'gpt-4o')
      assert.equal(third.status, 429)
      const body: any = await third.json()
      assert.equal(body.error.code, 'rate_limit_exceeded')
      assert.equal(body.error.type, 'rate_limit_error')
      assert.include(body.error.message, 'for model gpt-4o')
      assert.isAbove(Number(third.headers.get('retry-after')), 0)
      assert.isAbove(Number(third.headers.get('retry-after-ms')), 0)
      // Another model of the same key: no window of its own, nothing counted.
      for (let i = 0; i < 4; i++) {
        const response = await chat(user.key, 'gpt-4o-mini')
        assert.equal(response.status, 200)
        assert.isNull(response.headers.get('x-ratelimit-limit-requests'))
      }
      // Another key with the same model limit: its own window.
      assert.equal((await chat(other.key, 'gpt-4o')).status, 200)
      // A spelling the router takes for the same model counts on its window (spent here).
      assert.equal((await chat(user.key, 'GPT-4o')).status, 429)
    })

    test('the spellings the router serves as one model share its window (case, thinking/effort suffix, provider prefix)', async ({ assert }) => {
      const user = await seedUser({ key: { modelLimits: { 'gpt-4o': { rpm: 3 }, 'claude-x-thinking': { rpm: 1 } } } })
      // Each reaches the same upstream model gpt-4o: before, each had no window and went on without end.
      for (const spelling of ['GPT-4o', 'gpt-4o-high', 'deepseek/Gpt-4o-LOW']) {
        const response = await chat(user.key, spelling)
        assert.equal(response.status, 200, spelling)
        assert.equal(response.headers.get('x-ratelimit-limit-requests'), '3', spelling)
      }
      for (const spelling of ['gpt-4o', 'gpt-4o-medium', 'google/gpt-4o', 'gpt-4o-thinking-1024', 'GPT-4O-nothinking']) {
        const refused = await chat(user.key, spelling)
        assert.equal(refused.status, 429, spelling)
        assert.include(((await refused.json()) as any).error.message, 'for model gpt-4o:')
      }
      // A suffixed name with a limit of its own keeps it; other models stay apart.
      assert.equal((await chat(user.key, 'claude-x-thinking')).status, 200)
      assert.equal((await chat(user.key, 'Claude-X-Thinking')).status, 429)
      assert.equal((await chat(user.key, 'gpt-4o-mini')).status, 200)
      assert.equal((await chat(user.key, 'openrouter/gpt-4o')).status, 200)
    })

    test('model tpm: refused once the minute tokens spent on that model are used; other models go on', async ({ assert }) => {
      // Each call uses 12 + 5 = 17 tokens: 20 admits two.
      const user = await seedUser({ key: { modelLimits: { 'm-a': { tpm: 20 } } } })
      const first = await chat(user.key, 'm-a')
      assert.equal(first.status, 200)
      assert.equal(first.headers.get('x-ratelimit-limit-tokens'), '20')
      await settle()
      const second = await chat(user.key, 'm-a')
      assert.equal(second.status, 200)
      assert.equal(second.headers.get('x-ratelimit-remaining-tokens'), '3')
      await settle()
      const third = await chat(user.key, 'm-a')
      assert.equal(third.status, 429)
      assert.equal(((await third.json()) as any).error.code, 'rate_limit_exceeded')
      assert.equal(third.headers.get('x-ratelimit-remaining-tokens'), '0')
      assert.equal((await chat(user.key, 'm-b')).status, 200)
      await settle()
      assert.equal((await chat(user.key, 'm-b')).status, 200)
    })

    test('20 concurrent calls against a model rpm of 5: exactly 5 go through', async ({ assert }) => {
      const user = await seedUser({ key: { modelLimits: { 'm-c': { rpm: 5 } } } })
      const statuses = await Promise.all(Array.from({ length: 20 }, () => chat(user.key, 'm-c').then((r) => r.status)))
      assert.equal(statuses.filter((status) => status === 200).length, 5)
      assert.equal(statuses.filter((status) => status === 429).length, 15)
    })

    test('the longest model name (200 characters) has its own window (the shared store keys it in a 255-character column)', async ({ assert }) => {
      const model = 'm'.repeat(200)
      const user = await seedUser({ key: { modelLimits: { [model]: { rpm: 1 } } } })
      assert.equal((await chat(user.key, model)).status, 200)
      assert.equal((await chat(user.key, model)).status, 429)
    })

    test("the key's own rpm still counts every model; the tighter window's headers are shown", async ({ assert }) => {
      const user = await seedUser({ key: { rpm: 3, modelLimits: { 'm-a': { rpm: 1 } } } })
      const first = await chat(user.key, 'm-a')
      assert.equal(first.headers.get('x-ratelimit-limit-requests'), '1')
      assert.equal(first.headers.get('x-ratelimit-remaining-requests'), '0')
      assert.equal((await chat(user.key, 'm-a')).status, 429)
      assert.equal((await chat(user.key, 'm-b')).status, 200)
      // The key's window took all three (the refused one too, as a key's rpm always has).
      assert.equal((await chat(user.key, 'm-b')).status, 429)
    })
  })
}

test.group('Per-model limits of a key: wire formats and surfaces', (group) => {
  let mock: MockUpstream
  let adminKey = ''

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedChannel({ name: 'anthropic', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await createUser({ email: 'ops@limits.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@limits.local', manage: true })).key
    await createUser({ email: 'dev@limits.local', password: 'password123' })
    return () => mock.stop()
  })

  async function litellm(path: string, body: unknown) {
    const response = await fetch(`${baseUrl()}${path}`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    return { status: response.status, body: (await response.json()) as any }
  }

  test('an Anthropic call past its model rpm is an Anthropic 429', async ({ assert }) => {
    const user = await seedUser({ key: { modelLimits: { 'claude-x': { rpm: 1 } } } })
    const messages = () =>
      post('/v1/messages', { model: 'claude-x', max_tokens: 16, messages: hello }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    assert.equal((await messages()).status, 200)
    const limited = await messages()
    assert.equal(limited.status, 429)
    assert.isNotNull(limited.headers.get('retry-after'))
    const body: any = await limited.json()
    assert.equal(body.type, 'error')
    assert.equal(body.error.type, 'rate_limit_error')
  })

  test('multipart uploads count on their model too: a transcription or image-edit model limited is limited', async ({ assert }) => {
    const user = await seedUser({ balance: '5', key: { modelLimits: { 'whisper-1': { rpm: 1 }, 'gpt-image-1': { rpm: 1 } } } })
    const upload = (path: string, fields: Array<[string, string | Buffer, string?]>) => {
      const form = multipartBody(fields)
      return fetch(`${baseUrl()}${path}`, { method: 'POST', headers: { 'authorization': `Bearer ${user.key}`, 'content-type': form.contentType }, body: form.body })
    }
    const transcribe = () => upload('/v1/audio/transcriptions', [['file', wavFile(100), 'a.wav'], ['model', 'whisper-1']])
    const first = await transcribe()
    assert.equal(first.status, 200)
    assert.equal(first.headers.get('x-ratelimit-limit-requests'), '1')
    // Before, the upload was not counted: the model's only endpoint, its limit held nothing.
    const second = await transcribe()
    assert.equal(second.status, 429)
    const refused: any = await second.json()
    assert.equal(refused.error.code, 'rate_limit_exceeded')
    assert.include(refused.error.message, 'for model whisper-1')
    const edit = () => upload('/v1/images/edits', [['model', 'gpt-image-1'], ['prompt', 'add a hat'], ['image', pngFile(4), 'a.png']])
    assert.equal((await edit()).status, 200)
    assert.equal((await edit()).status, 429)
    // The JSON image generations count on the same window (spent by the edit).
    assert.equal((await post('/v1/images/generations', { model: 'gpt-image-1', prompt: 'p' }, { authorization: `Bearer ${user.key}` })).status, 429)
  })

  test('LiteLLM /key/generate, /key/info and /key/update carry model_rpm_limit and model_tpm_limit', async ({ assert }) => {
    const made = await litellm('/key/generate', {
      user_id: 'dev@limits.local',
      model_rpm_limit: { 'gpt-4o': 1 },
      model_tpm_limit: { 'gpt-4o': 20000, 'gpt-4o-mini': 5000 },
    })
    assert.equal(made.status, 200)
    assert.deepEqual(made.body.model_rpm_limit, { 'gpt-4o': 1 })
    assert.deepEqual(made.body.model_tpm_limit, { 'gpt-4o': 20000, 'gpt-4o-mini': 5000 })
    assert.deepEqual(made.body.metadata.model_rpm_limit, { 'gpt-4o': 1 })
    // In force at once (the key was never cached).
    assert.equal((await chat(made.body.key, 'gpt-4o')).status, 200)
    assert.equal((await chat(made.body.key, 'gpt-4o')).status, 429)

    // A map given replaces that kind; the other kind is kept.
    const updated = await litellm('/key/update', { key: made.body.token, model_rpm_limit: { 'gpt-4o-mini': 7 } })
    assert.equal(updated.status, 200)
    assert.deepEqual(updated.body.model_rpm_limit, { 'gpt-4o-mini': 7 })
    assert.deepEqual(updated.body.model_tpm_limit, { 'gpt-4o': 20000, 'gpt-4o-mini': 5000 })
    const info = await fetch(`${baseUrl()}/key/info?key=${made.body.token}`, { headers: { authorization: `Bearer ${adminKey}` } })
    const shown: any = await info.json()
    assert.deepEqual((shown.info ?? shown).model_rpm_limit, { 'gpt-4o-mini': 7 })
    // The change reaches the gateway's key cache (NOTIFY): gpt-4o has no rpm of its own any more.
    let free = false
    for (let i = 0; i < 60 && !free; i++) {
      free = (await chat(made.body.key, 'gpt-4o')).status === 200
      if (!free) await new Promise((r) => setTimeout(r, 50))
    }
    assert.isTrue(free)
    // null clears a kind.
    const cleared = await litellm('/key/update', { key: made.body.token, model_rpm_limit: null, model_tpm_limit: null })
    assert.deepEqual(cleared.body.model_rpm_limit, {})
    assert.deepEqual(cleared.body.metadata, {})
  })

  test('the management API takes and shows the same names', async ({ assert }) => {
    const made = await adminApi('POST', '/keys', adminKey, { user: 'dev@limits.local', model_rpm_limit: { m: 3 } })
    assert.equal(made.status, 201)
    assert.deepEqual(made.body.model_rpm_limit, { m: 3 })
    assert.deepEqual(made.body.model_tpm_limit, {})
    const patched = await adminApi('PATCH', `/keys/${made.body.id}`, adminKey, { model_tpm_limit: { m: 100 } })
    assert.equal(patched.status, 200)
    assert.deepEqual(patched.body.model_rpm_limit, { m: 3 })
    assert.deepEqual(patched.body.model_tpm_limit, { m: 100 })
  })

  test('hostile limits are refused with a 400 naming the field; __proto__ is only a model name', async ({ assert }) => {
    const tooMany: Record<string, number> = {}
    for (let i = 0; i < 101; i++) tooMany[`model-${i}`] = 1
    for (const [field, value] of [
      ['model_rpm_limit', { m: 0 }],
      ['model_rpm_limit', { m: 1.5 }],
      ['model_rpm_limit', { m: '1e3' }],
      ['model_rpm_limit', { m: true }],
      ['model_tpm_limit', { m: 2_147_483_648 }],
      ['model_rpm_limit', { 'a\u0000b': 1 }],
      ['model_rpm_limit', { ' m': 1 }],
      // A blank inside: the panel's text form could not show it back (every save of the key was refused).
      ['model_rpm_limit', { 'my model': 1 }],
      ['model_rpm_limit', { 'my\u00a0model': 1 }],
      ['model_rpm_limit', { 'a\u0085b': 1 }],
      ['model_rpm_limit', { 'a\ud800': 1 }],
      // One model twice (the router matches without case or the prefix): which limit held was a guess.
      ['model_rpm_limit', { 'gpt-4o': 1, 'GPT-4o': 5 }],
      ['model_rpm_limit', { 'gemini-x': 1, 'google/gemini-x': 5 }],
      ['model_rpm_limit', { ['x'.repeat(201)]: 1 }],
      ['model_rpm_limit', tooMany],
      ['model_rpm_limit', [1]],
      ['model_tpm_limit', 'gpt-4o=5'],
    ] as const) {
      const refused = await litellm('/key/generate', { user_id: 'dev@limits.local', [field]: value })
      assert.equal(refused.status, 400, `${field} ${JSON.stringify(value).slice(0, 60)}`)
      assert.include(JSON.stringify(refused.body), field)
    }
    // The JSON body parser drops a `__proto__` member: the key is made without it.
    const made = await litellm('/key/generate', { user_id: 'dev@limits.local', model_rpm_limit: JSON.parse('{"__proto__": 1}') })
    assert.equal(made.status, 200)
    assert.deepEqual(made.body.model_rpm_limit, {})
    // A row that names it anyway (written by hand): read into a Map, where it is only a model name.
    await db.from('api_keys').where('id', Number(made.body.token)).update({ model_limits: JSON.stringify(JSON.parse('{"__proto__": {"rpm": 1}}')) })
    let limited = false
    for (let i = 0; i < 60 && !limited; i++) {
      limited = (await chat(made.body.key, '__proto__')).status === 429
      if (!limited) await new Promise((r) => setTimeout(r, 50))
    }
    assert.isTrue(limited)
    assert.isUndefined(({} as any).rpm)
    assert.equal((await chat(made.body.key, 'constructor')).status, 200)
    assert.equal((await chat(made.body.key, 'constructor')).status, 200)
    const info = await fetch(`${baseUrl()}/key/info?key=${made.body.token}`, { headers: { authorization: `Bearer ${adminKey}` } })
    const shown: any = await info.json()
    assert.deepEqual(Object.keys((shown.info ?? shown).model_rpm_limit), ['__proto__'])
  })

  test('the panel: a textarea one model a line, checked beside the field, shown on the key; the portal shows them read-only', async ({ assert }) => {
    const user = await seedUser()
    const { user: admin } = await createUser({ email: `ml-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    const refused = await panel.post(`/admin/keys/${user.keyId}`, { name: 'k', modelLimits: 'gpt-4o rpm=ten' })
    assert.include(textOf((await panel.follow(refused)).html), 'Line 1: "rpm=ten" is not rpm=N, tpm=N')
    assert.isNull((await ApiKey.findOrFail(user.keyId)).modelLimits)
    // One limit twice on a line: the last one was kept without a word (`rpm=10 tpm=2000 rpm=5` saved 5).
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    const twice = await panel.post(`/admin/keys/${user.keyId}`, { name: 'k', modelLimits: 'gpt-4o rpm=10 tpm=2000 rpm=5' })
    assert.include(textOf((await panel.follow(twice)).html), 'Line 1: rpm is given twice for gpt-4o')
    assert.isNull((await ApiKey.findOrFail(user.keyId)).modelLimits)
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    const saved = await panel.post(`/admin/keys/${user.keyId}`, { name: 'k', modelLimits: 'gpt-4o rpm=1 tpm=20000\nclaude-x tpm=5' })
    assert.equal(saved.status, 302)
    assert.deepEqual({ ...(await ApiKey.findOrFail(user.keyId)).modelLimits }, { 'claude-x': { tpm: 5 }, 'gpt-4o': { rpm: 1, tpm: 20000 } })
    assert.include(textOf((await panel.get(`/admin/keys/${user.keyId}`)).html), 'gpt-4o rpm=1 tpm=20000')
    const editHtml = (await panel.get(`/admin/keys/${user.keyId}/edit`)).html
    assert.include(editHtml, 'claude-x tpm=5\ngpt-4o rpm=1 tpm=20000')
    const audit = await db.from('audit_log').where('action', 'key.update').where('subject_id', user.keyId).first()
    assert.include(audit.summary, 'modelLimits: — → claude-x tpm=5; gpt-4o rpm=1 tpm=20000')
    let limited = false
    for (let i = 0; i < 60 && !limited; i++) {
      limited = (await chat(user.key, 'gpt-4o')).status === 429
      if (!limited) await new Promise((r) => setTimeout(r, 50))
    }
    assert.isTrue(limited)

    // The owner sees them and cannot change them: their own save keeps them.
    const portal = new PageClient()
    await portal.login(user.email)
    const page = await portal.get(`/dashboard/keys/${user.keyId}/edit`)
    assert.include(htmlText(page.body), 'gpt-4o rpm=1 tpm=20000')
    assert.notInclude(page.body, 'name="modelLimits"')
    await portal.post(`/dashboard/keys/${user.keyId}`, { name: 'mine', modelLimits: '', model_limits: '' })
    const key = await ApiKey.findOrFail(user.keyId)
    assert.equal(key.name, 'mine')
    assert.deepEqual({ ...key.modelLimits }, { 'claude-x': { tpm: 5 }, 'gpt-4o': { rpm: 1, tpm: 20000 } })
  })

  test('key:create and key:update take --model-limits ("; " between models, "none" clears)', async ({ assert }) => {
    const run = async (command: typeof KeyCreate | typeof KeyUpdate, args: string[]) => {
      const instance = await ace.create(command, args)
      ace.ui.switchMode('raw')
      await instance.exec()
      return instance
    }
    ;(await run(KeyCreate, ['--user', 'dev@limits.local', '--name', 'cli-limits', '--model-limits', 'gpt-4o rpm=10; m tpm=7'])).assertSucceeded()
    const key = await ApiKey.query().where('name', 'cli-limits').firstOrFail()
    assert.deepEqual({ ...key.modelLimits }, { 'gpt-4o': { rpm: 10 }, 'm': { tpm: 7 } })
    ;(await run(KeyUpdate, ['--key', String(key.id), '--name', 'cli-limits-2'])).assertSucceeded()
    assert.deepEqual({ ...(await ApiKey.findOrFail(key.id)).modelLimits }, { 'gpt-4o': { rpm: 10 }, 'm': { tpm: 7 } })
    ;(await run(KeyUpdate, ['--key', String(key.id), '--model-limits', 'none'])).assertSucceeded()
    assert.isNull((await ApiKey.findOrFail(key.id)).modelLimits)
    ;(await run(KeyUpdate, ['--key', String(key.id), '--model-limits', 'm rpm=0'])).assertFailed()
  })
})
