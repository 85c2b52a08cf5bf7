import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ChannelCreate from '#commands/channel_create'
import ChannelList from '#commands/channel_list'
import NormaliseBaseUrls from '#database/migrations/1700000000701_normalise_channel_base_urls'
import { VENDORS } from '#gateway/providers/vendors'
import type { ProviderKind } from '#gateway/types'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Issue 12: for each provider kind, one mock upstream that (like the real
 * provider) answers only under the kind's version path, reached through every
 * form people paste for its base URL. `o` is the mock's origin.
 */
// Bedrock's base names its region (AWS's host or ?region=) and its mock signs: bedrock_channels.spec.ts.
// Vertex's names its location and its mock checks OAuth tokens: vertex_channels.spec.ts.
const PASTED: Record<Exclude<ProviderKind, 'bedrock' | 'vertex'>, ((o: string) => string)[]> = {
  anthropic: [(o) => o, (o) => `${o}/`, (o) => `${o}/v1`, (o) => `${o}/v1/`, (o) => `${o}/v1/messages`],
  google: [
    (o) => o,
    (o) => `${o}/`,
    (o) => `${o}/v1beta`,
    (o) => `${o}/v1beta/`,
    (o) => `${o}/v1beta/models/gemini-2.5-flash:generateContent`,
  ],
  gemini: [
    (o) => o,
    (o) => `${o}/v1beta`,
    (o) => `${o}/v1beta/openai`,
    (o) => `${o}/v1beta/openai/`,
    (o) => `${o}/v1beta/openai/chat/completions`,
  ],
  openai: [(o) => o, (o) => `${o}/`, (o) => `${o}/v1`, (o) => `${o}/v1/`, (o) => `${o}/v1/chat/completions`],
  openrouter: [(o) => o, (o) => `${o}/api`, (o) => `${o}/api/`, (o) => `${o}/api/v1`, (o) => `${o}/api/v1/`],
  deepseek: [(o) => o, (o) => `${o}/`, (o) => `${o}/v1`, (o) => `${o}/v1/`],
  zai: [(o) => o, (o) => `${o}/api/paas`, (o) => `${o}/api/paas/v4`, (o) => `${o}/api/paas/v4/`, (o) => `${o}/api/paas/v4/chat/completions`],
  // Azure OpenAI: the resource host, /openai, a classic endpoint with its deployment (the v1 shape: azure_channels.spec.ts)
  azure: [(o) => o, (o) => `${o}/`, (o) => `${o}/openai`, (o) => `${o}/openai/`, (o) => `${o}/openai/deployments/d/chat/completions`],
  // vLLM (http://host:8000/v1), Ollama (http://host:11434), LM Studio (http://host:1234/v1), with and without /v1
  custom: [(o) => o, (o) => `${o}/`, (o) => `${o}/v1`, (o) => `${o}/v1/`],
}

/** The path the kind's real provider serves under (from its default base URL). */
function versionPath(kind: ProviderKind) {
  if (kind === 'azure') return '/openai'
  const url = VENDORS[kind].defaultBaseUrl
  return url ? new URL(url).pathname : '/v1'
}

const CASES = Object.entries(PASTED).flatMap(([kind, forms]) =>
  forms.map((form, i) => ({ kind: kind as ProviderKind, form, label: form('http://host'), n: i }))
)

/** One request through the gateway in a dialect the kind speaks; the channel serves `model` only. */
function callThrough(kind: ProviderKind, model: string, key: string) {
  if (kind === 'anthropic') {
    return post('/v1/messages', { model, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': key })
  }
  if (kind === 'google') {
    return post(`/v1beta/models/${model}:generateContent`, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': key })
  }
  return post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
}

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

test.group('Channel base URLs as people paste them', (group) => {
  const mocks = new Map<ProviderKind, MockUpstream>()
  let key: string

  group.setup(async () => {
    await resetDatabase()
    for (const kind of Object.keys(PASTED) as ProviderKind[]) {
      mocks.set(kind, await startMock({ basePath: versionPath(kind) }))
    }
    key = (await seedUser()).key
    return async () => {
      for (const mock of mocks.values()) await mock.stop()
    }
  })

  test('{kind} channel created with {label}')
    .with(CASES)
    .run(async ({ assert }, { kind, form, n }) => {
      const mock = mocks.get(kind)!
      const model = kind === 'google' || kind === 'gemini' ? `gemini-${kind}-form${n}` : `${kind}-form${n}`
      const channel = await seedChannel({ name: `${kind}-${n}`, provider: kind, baseUrl: form(mock.origin), models: [model] })
      assert.equal(channel.baseUrl, `${mock.origin}${versionPath(kind)}`)

      const response = await callThrough(kind, model, key)
      assert.equal(response.status, 200, await response.clone().text())
      assert.isTrue(mock.lastRequest()!.path.startsWith(`${versionPath(kind)}/`), mock.lastRequest()!.path)
    })

  test('a 404 from a wrong base URL: the attempt and the channel say which URL was called and the form expected', async ({
    assert,
  }) => {
    const mock = mocks.get('custom')!
    const channel = await seedChannel({ name: 'wrong', provider: 'custom', baseUrl: `${mock.origin}/openai`, models: ['wrong-base'] })
    const user = await seedUser()
    const response = await callThrough('custom', 'wrong-base', user.key)
    assert.equal(response.status, 404)
    // The client is not told the upstream's address.
    assert.notInclude(await response.text(), mock.origin)

    const called = `POST ${mock.origin}/openai/chat/completions`
    const [row] = await usageRows(user.userId)
    const [attempt] = await db.from('request_attempts').where('request_id', row.request_id)
    assert.include(attempt, { status: 404, outcome: 'client_error' })
    assert.include(attempt.error, `HTTP 404 from ${called} (Not Found)`)
    assert.include(attempt.error, `check the channel's base URL ${mock.origin}/openai: provider kind custom expects`)

    let lastError: string | null = null
    for (let i = 0; i < 50 && !lastError; i++) {
      lastError = (await db.from('channels').where('id', channel.id).first()).last_error
      if (!lastError) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.include(lastError, called)
    assert.include(lastError, 'usually ending in /v1')
  })

  test('channel:create stores the canonical form, channel:list shows it, a query string is refused', async ({ assert }) => {
    const mock = mocks.get('anthropic')!
    ;(await run(ChannelCreate, ['--name', 'claude-cli', '--provider', 'anthropic', '--base-url', `${mock.origin}/`, '--models', 'claude-cli'])).assertSucceeded()
    const row = await db.from('channels').where('name', 'claude-cli').first()
    assert.equal(row.base_url, `${mock.origin}/v1`)

    const list = await run(ChannelList, [])
    list.assertSucceeded()
    assert.isTrue(
      list.ui.logger.getLogs().some((log: any) => log.message.includes(`${mock.origin}/v1`) && log.message.includes('claude-cli')),
      'channel:list shows the canonical base URL'
    )

    const refused = await run(ChannelCreate, ['--name', 'keyed', '--provider', 'google', '--base-url', `${mock.origin}/v1beta?key=secret`, '--models', 'x'])
    refused.assertFailed()
    assert.isNull(await db.from('channels').where('name', 'keyed').first())
  })

  test('the migration brings stored base URLs to the canonical form', async ({ assert }) => {
    const rows = [
      { provider: 'anthropic', base_url: 'https://api.anthropic.com/', canonical: 'https://api.anthropic.com/v1' },
      { provider: 'google', base_url: 'https://generativelanguage.googleapis.com', canonical: 'https://generativelanguage.googleapis.com/v1beta' },
      { provider: 'openrouter', base_url: 'https://openrouter.ai/api', canonical: 'https://openrouter.ai/api/v1' },
      { provider: 'custom', base_url: 'http://127.0.0.1:11434?x=1', canonical: 'http://127.0.0.1:11434/v1' },
      { provider: 'custom', base_url: 'not a url', canonical: 'not a url' },
    ]
    const ids: number[] = []
    for (const [i, r] of rows.entries()) {
      const [inserted] = await db
        .table('channels')
        .insert({ name: `legacy-${i}`, provider: r.provider, base_url: r.base_url, models: JSON.stringify([]) })
        .returning('id')
      ids.push(inserted.id ?? inserted)
    }
    const migration = new NormaliseBaseUrls(db.connection(), 'normalise', false)
    await migration.execUp()
    for (const [i, r] of rows.entries()) {
      assert.equal((await db.from('channels').where('id', ids[i]).first()).base_url, r.canonical)
    }
    await refreshCaches()
  })
})
