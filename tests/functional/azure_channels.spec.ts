import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ChannelCreate from '#commands/channel_create'
import ChannelTest from '#commands/channel_test'
import { apiVersion, deployment, type MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { toFile } from 'openai'
import { firstRun } from '#services/first_run'
import { wavFile } from '#tests/fixtures/audio_files'
import { createUser } from '#actions/create_user'
import { PanelClient } from '#tests/panel_client'
import { gateway, openai, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

const hi = [{ role: 'user', content: 'hi' }]

/**
 * Azure OpenAI channels against a mock serving only under /openai (like a
 * resource endpoint): classic deployments (`/openai/deployments/{d}/...?api-version=`)
 * and the v1 API (`/openai/v1/...`, model in the body), with the `api-key` header.
 */
test.group('Azure OpenAI channels', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ basePath: '/openai' })
    return () => mock.stop()
  })

  test('classic: the public model is sent to its deployment, with the default api-version and api-key, non-stream and stream', async ({
    assert,
  }) => {
    await seedChannel({
      name: 'az-classic',
      provider: 'azure',
      baseUrl: mock.origin,
      apiKey: 'az-resource-key',
      models: [],
      modelMapping: { 'gpt-4o': 'my-gpt4o-deployment' },
    })
    const user = await seedUser()
    const client = openai(user.key)

    const answer = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
    const seen = mock.lastRequest()!
    assert.equal(seen.path, '/openai/deployments/my-gpt4o-deployment/chat/completions?api-version=2024-10-21')
    assert.equal(deployment(seen), 'my-gpt4o-deployment')
    assert.equal(apiVersion(seen), '2024-10-21')
    assert.equal(seen.headers['api-key'], 'az-resource-key')
    assert.notProperty(seen.headers, 'authorization')
    assert.equal(answer.model, 'gpt-4o')
    assert.equal(answer.choices[0].message.content, 'tok0 tok1 tok2 tok3 tok4 ')

    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    let text = ''
    for await (const chunk of stream) {
      assert.equal(chunk.model, 'gpt-4o')
      text += chunk.choices[0]?.delta?.content ?? ''
    }
    assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(deployment(mock.lastRequest()!), 'my-gpt4o-deployment')
    assert.isTrue(JSON.parse(mock.lastRequest()!.body).stream)

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    for (const row of rows) assert.include(row, { status: 200, model: 'gpt-4o', served_model: 'my-gpt4o-deployment', provider: 'azure' })
  })

  test('classic: the api-version of the pasted URL is sent; embeddings go to their deployment', async ({ assert }) => {
    const channel = await seedChannel({
      name: 'az-pinned',
      provider: 'azure',
      baseUrl: `${mock.origin}/openai/deployments/x/chat/completions?api-version=2025-01-01-preview`,
      models: ['text-embedding-3-small', 'gpt-4.1-mini'],
    })
    assert.equal(channel.baseUrl, `${mock.origin}/openai?api-version=2025-01-01-preview`)
    const user = await seedUser()
    const client = openai(user.key)

    await client.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(mock.lastRequest()!.path, '/openai/deployments/gpt-4.1-mini/chat/completions?api-version=2025-01-01-preview')

    const embedded = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] })
    assert.lengthOf(embedded.data, 2)
    assert.equal(mock.lastRequest()!.path, '/openai/deployments/text-embedding-3-small/embeddings?api-version=2025-01-01-preview')
    assert.equal(mock.lastRequest()!.headers['api-key'], 'upstream-secret')
  })

  test('v1 API: OpenAI paths with the model in the body, no api-version', async ({ assert }) => {
    await seedChannel({ name: 'az-v1', provider: 'azure', baseUrl: `${mock.origin}/openai/v1/`, models: ['gpt-5-mini'] })
    const user = await seedUser()
    const answer = await openai(user.key).chat.completions.create({ model: 'gpt-5-mini', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(answer.model, 'gpt-5-mini')
    const seen = mock.lastRequest()!
    assert.equal(seen.path, '/openai/v1/chat/completions')
    assert.equal(JSON.parse(seen.body).model, 'gpt-5-mini')
    assert.equal(seen.headers['api-key'], 'upstream-secret')
  })

  test('classic: Responses at {base}/responses with a preview api-version, audio through its deployment, no rerank', async ({ assert }) => {
    await seedChannel({
      name: 'az-more',
      provider: 'azure',
      baseUrl: `${mock.origin}/openai`,
      models: ['codex-az', 'whisper-az', 'rerank-az'],
      modelMapping: { 'codex-az': 'codex-deployment', 'whisper-az': 'whisper-deployment' },
    })
    const user = await seedUser()
    const client = openai(user.key)

    const answer = await client.responses.create({ model: 'codex-az', input: 'hi' })
    assert.equal(answer.model, 'codex-az')
    let seen = mock.lastRequest()!
    assert.equal(seen.path, '/openai/responses?api-version=2025-03-01-preview')
    assert.equal(JSON.parse(seen.body).model, 'codex-deployment')
    assert.equal(seen.headers['api-key'], 'upstream-secret')

    const transcript = await client.audio.transcriptions.create({ model: 'whisper-az', file: await toFile(wavFile(500), 'a.wav') })
    assert.isString(transcript.text)
    seen = mock.lastRequest()!
    assert.equal(seen.path, '/openai/deployments/whisper-deployment/audio/transcriptions?api-version=2024-10-21')

    const before = mock.requests.length
    const rerank = await post(
      '/v1/rerank',
      { model: 'rerank-az', query: 'q', documents: ['a', 'b'] },
      { authorization: `Bearer ${user.key}` }
    )
    assert.equal(rerank.status, 400)
    assert.equal(((await rerank.json()) as any).error.code, 'unsupported_endpoint')
    assert.equal(mock.requests.length, before, 'Azure has no rerank endpoint: nothing sent')
  })

  test('an Anthropic client (Claude Code) is translated onto a classic deployment', async ({ assert }) => {
    await seedChannel({
      name: 'az-claude-code',
      provider: 'azure',
      baseUrl: `${mock.origin}/openai`,
      models: [],
      modelMapping: { 'claude-sonnet-4-5': 'gpt5-deployment' },
    })
    const user = await seedUser()
    const response = await post(
      '/v1/messages',
      { model: 'claude-sonnet-4-5', max_tokens: 200, stream: true, system: 'Be brief', messages: hi },
      { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    )
    assert.equal(response.status, 200)
    const text = await response.text()
    assert.include(text, 'event: message_start')
    assert.include(text, '"model":"claude-sonnet-4-5"')
    assert.include(text, 'tok0')
    assert.include(text, 'event: message_stop')
    const seen = mock.lastRequest()!
    assert.equal(seen.path, '/openai/deployments/gpt5-deployment/chat/completions?api-version=2024-10-21')
    const body = JSON.parse(seen.body)
    assert.equal(body.messages[0].role, 'system')
    // gpt-5 family: a reasoning model, so max_completion_tokens as OpenAI's.
    assert.equal(body.max_completion_tokens, 200)
    assert.notProperty(body, 'max_tokens')
    assert.equal(seen.headers['api-key'], 'upstream-secret')
  })

  test('a content-filter refusal is relayed as a 400, not retried on another channel, not held against the channel', async ({
    assert,
    cleanup,
  }) => {
    const other = await startMock()
    cleanup(() => other.stop())
    const filtered = await seedChannel({ name: 'az-filter', provider: 'azure', baseUrl: `${mock.origin}/openai`, models: ['filtered-*'], priority: 10 })
    await seedChannel({ name: 'az-backup', provider: 'openai', baseUrl: other.url, models: ['filtered-*'], priority: 0 })
    const user = await seedUser()
    const before = mock.requests.length
    const response = await post(
      '/v1/chat/completions',
      { model: 'filtered-gpt', messages: hi, mock: { content_filter: true } },
      { authorization: `Bearer ${user.key}` }
    )
    assert.equal(response.status, 400)
    const error = ((await response.json()) as any).error
    assert.equal(error.code, 'content_filter')
    assert.include(error.message, 'content management policy')
    assert.equal(mock.requests.length, before + 1)
    assert.equal(deployment(mock.lastRequest()!), 'filtered-gpt')
    assert.lengthOf(other.requests, 0, 'not retried on another channel')

    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 400, error_code: 'content_filter' })
    const [attempt] = await db.from('request_attempts').where('request_id', row.request_id)
    assert.include(attempt, { status: 400, outcome: 'client_error' })
    assert.equal((await gateway()).health.stateOf(filtered.id).state, 'closed')
    assert.isTrue((await db.from('channels').where('id', filtered.id).first()).enabled)
  })

  test('channel:create --provider azure completes pasted URLs; channel:test lists models with api-key and api-version', async ({
    assert,
  }) => {
    const forms: [string, string][] = [
      [mock.origin, `${mock.origin}/openai`],
      [`${mock.origin}/openai/`, `${mock.origin}/openai`],
      [`${mock.origin}/?api-version=2024-06-01`, `${mock.origin}/openai?api-version=2024-06-01`],
      [`${mock.origin}/openai/v1`, `${mock.origin}/openai/v1`],
    ]
    for (const [i, [pasted, stored]] of forms.entries()) {
      const args = ['--name', `az-cli-${i}`, '--provider', 'azure', '--base-url', pasted, '--api-key', `cli-key-${i}`, '--models', 'gpt-4o']
      ;(await run(ChannelCreate, [...args, '--mapping', `gpt-4o=dep-${i}`])).assertSucceeded()
      const row = await db.from('channels').where('name', `az-cli-${i}`).first()
      assert.equal(row.base_url, stored, pasted)
      assert.equal(row.provider, 'azure')
    }
    const refused = await run(ChannelCreate, ['--name', 'az-bad', '--provider', 'azure', '--base-url', `${mock.origin}/openai?foo=1`, '--models', 'x'])
    refused.assertFailed()

    const expected = ['/openai/models?api-version=2024-10-21', '/openai/models?api-version=2024-10-21', '/openai/models?api-version=2024-06-01', '/openai/v1/models']
    for (const [i, path] of expected.entries()) {
      ;(await run(ChannelTest, [`az-cli-${i}`])).assertSucceeded()
      const seen = mock.lastRequest()!
      assert.equal(`${seen.method} ${seen.path}`, `GET ${path}`)
      assert.equal(seen.headers['api-key'], `cli-key-${i}`)
    }
  })

  test('first start: AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT creates an azure channel', async ({ assert }) => {
    await resetDatabase()
    process.env.AZURE_OPENAI_API_KEY = 'env-azure-key'
    process.env.AZURE_OPENAI_ENDPOINT = 'https://my-resource.openai.azure.com/'
    try {
      await firstRun()
    } finally {
      delete process.env.AZURE_OPENAI_API_KEY
      delete process.env.AZURE_OPENAI_ENDPOINT
    }
    const row = await db.from('channels').where('provider', 'azure').first()
    assert.include(row, { name: 'azure', base_url: 'https://my-resource.openai.azure.com/openai', enabled: true })
    assert.include(row.models, 'gpt-*')
    await resetDatabase()
  })

  test('the panel offers azure with an example base URL and the two shapes explained; a pasted api-version is kept', async ({ assert }) => {
    await createUser({ email: 'azure-admin@test.local', password: 'admin-password', role: 'admin' })
    const client = new PanelClient()
    await client.login('azure-admin@test.local', 'admin-password')
    const form = await client.get('/admin/channels/new')
    assert.include(form.html, '<option value="azure"')
    assert.include(form.html, '&quot;azure&quot;:&quot;https://my-resource.openai.azure.com/openai&quot;')
    assert.include(form.html, 'https://{resource}.openai.azure.com/openai for deployments')
    assert.include(form.html, 'Azure deployments: gpt-4o = my-gpt4o-deployment')

    const created = await client.post('/admin/channels', {
      name: 'az-panel',
      provider: 'azure',
      baseUrl: `${mock.origin}/openai/?api-version=2024-06-01`,
      apiKey: 'panel-key',
      models: 'gpt-4o-mini',
      modelMapping: 'gpt-4o-mini = mini-deployment',
    })
    assert.match(created.location ?? '', /^\/admin\/channels\/\d+$/)
    const row = await db.from('channels').where('name', 'az-panel').first()
    assert.equal(row.base_url, `${mock.origin}/openai?api-version=2024-06-01`)
    assert.deepEqual(row.model_mapping, { 'gpt-4o-mini': 'mini-deployment' })
  })
})
