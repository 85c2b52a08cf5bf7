import { test } from '@japa/runner'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import OpenAI, { AzureOpenAI, toFile } from 'openai'
import { withApiLane } from '#gateway/http/api_lane'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { MOCK_TRANSCRIPT } from '#tests/fixtures/mock_upstream/openai_audio'
import { wavFile } from '#tests/fixtures/audio_files'
import { baseUrl, multipartBody, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Clients configured for Azure OpenAI (the openai package's `AzureOpenAI`,
 * LangChain's AzureChatOpenAI, Semantic Kernel, .NET apps) pointed at the
 * gateway, as teams moving from LiteLLM have them: classic
 * `/openai/deployments/{deployment}/...?api-version=` with the deployment as
 * the model, the v1 API's `/openai/v1/...`, the key in `api-key`.
 */
const API_VERSION = '2024-10-21'

function azure(key: string, options: { deployment?: string; url?: string } = {}) {
  return new AzureOpenAI({ endpoint: options.url ?? baseUrl(), apiKey: key, apiVersion: API_VERSION, deployment: options.deployment, maxRetries: 0 })
}

/** The JSON body the upstream received for the last request */
function upstreamBody(mock: MockUpstream): any {
  return JSON.parse(mock.lastRequest()!.body)
}

test.group('Azure OpenAI clients: /openai/deployments/{deployment} and /openai/v1', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-a', 'mock-*', 'team/mock-s'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['whisper-*', 'tts-*', 'gpt-image-*'] })
    return () => mock.stop()
  })

  test('the AzureOpenAI client chats (streamed and not) and embeds; the deployment is the usage row\'s model', async ({ assert }) => {
    const user = await seedUser()
    const client = azure(user.key)

    const answer = await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] })
    assert.isString(answer.choices[0].message.content)
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')
    assert.equal(upstreamBody(mock).model, 'mock-a')

    let streamed = ''
    const stream = await client.chat.completions.create({ model: 'mock-b', messages: [{ role: 'user', content: 'hi' }], stream: true })
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? ''
    assert.equal(streamed, 'tok0 tok1 tok2 tok3 tok4 ')

    const vectors = await client.embeddings.create({ model: 'mock-embed', input: 'hello' })
    assert.isAbove(vectors.data[0].embedding.length, 0)
    assert.equal(upstreamBody(mock).model, 'mock-embed')

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.status, r.stream]),
      [
        ['chat.completions', 'mock-a', 200, false],
        ['chat.completions', 'mock-b', 200, true],
        ['embeddings', 'mock-embed', 200, false],
      ]
    )
    assert.isAbove(rows[1].completion_tokens, 0)
  })

  test('a body without a model gets the deployment; a body naming another model is served the deployment, as LiteLLM does', async ({ assert }) => {
    const user = await seedUser()
    const headers = { 'api-key': user.key }
    const bare = await post(`/openai/deployments/mock-a/chat/completions?api-version=${API_VERSION}`, { messages: [{ role: 'user', content: 'hi' }] }, headers)
    assert.equal(bare.status, 200)
    assert.equal(((await bare.json()) as any).object, 'chat.completion')
    assert.equal(upstreamBody(mock).model, 'mock-a')

    // The member is added to the client's bytes: after the brace, whatever whitespace comes before it.
    const spaced = await post(`/openai/deployments/mock-a/chat/completions`, ' \n {"messages":[{"role":"user","content":"hi"}]}', headers)
    assert.equal(spaced.status, 200)
    assert.equal(mock.lastRequest()!.body, ' \n {"model":"mock-a","messages":[{"role":"user","content":"hi"}]}')

    const embed = await post(`/openai/deployments/mock-embed/embeddings?api-version=${API_VERSION}`, { input: ['a', 'b'] }, headers)
    assert.equal(embed.status, 200)
    assert.equal(upstreamBody(mock).model, 'mock-embed')

    const legacy = await post(`/openai/deployments/mock-a/completions?api-version=${API_VERSION}`, { prompt: 'Say' }, headers)
    assert.equal(legacy.status, 200)
    assert.equal(((await legacy.json()) as any).object, 'text_completion')
    assert.equal(upstreamBody(mock).model, 'mock-a')

    const image = await post(`/openai/deployments/gpt-image-1/images/generations?api-version=${API_VERSION}`, { prompt: 'a cat' }, headers)
    assert.equal(image.status, 200)
    assert.isAbove(((await image.json()) as any).data.length, 0)
    assert.equal(upstreamBody(mock).model, 'gpt-image-1')

    // The SDK with a client-level deployment sends the call's model in the body; Azure serves the deployment.
    const pinned = azure(user.key, { deployment: 'mock-a' })
    await pinned.chat.completions.create({ model: 'mock-other', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(upstreamBody(mock).model, 'mock-a')

    // A deployment with a slash (LiteLLM's {model:path}), sent as is or percent-encoded.
    for (const segment of ['team/mock-s', 'team%2Fmock-s']) {
      const slashed = await post(`/openai/deployments/${segment}/chat/completions`, { messages: [{ role: 'user', content: 'hi' }] }, headers)
      assert.equal(slashed.status, 200)
      assert.equal(upstreamBody(mock).model, 'team/mock-s')
    }

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model]),
      [
        ['chat.completions', 'mock-a'],
        ['chat.completions', 'mock-a'],
        ['embeddings', 'mock-embed'],
        ['completions', 'mock-a'],
        ['images.generations', 'gpt-image-1'],
        ['chat.completions', 'mock-a'],
        ['chat.completions', 'team/mock-s'],
        ['chat.completions', 'team/mock-s'],
      ]
    )
  })

  test('audio under a deployment: the form names the deployment (a model part added, or replaced), speech too', async ({ assert }) => {
    const user = await seedUser()
    const transcript = await azure(user.key).audio.transcriptions.create({ model: 'whisper-1', file: await toFile(wavFile(500), 'a.wav') })
    assert.equal(transcript.text, MOCK_TRANSCRIPT)
    assert.equal(mock.lastRequest()!.path, '/v1/audio/transcriptions')

    const wav = wavFile(500)
    const noModel = multipartBody([['file', wav, 'a.wav'], ['response_format', 'text']])
    const bare = await fetch(`${baseUrl()}/openai/deployments/whisper-2/audio/transcriptions?api-version=${API_VERSION}`, {
      method: 'POST',
      headers: { 'api-key': user.key, 'content-type': noModel.contentType },
      body: noModel.body,
    })
    assert.equal(bare.status, 200)
    assert.equal(await bare.text(), `${MOCK_TRANSCRIPT}\n`)
    let sent = mock.lastRequest()!
    assert.include(sent.body, 'name="model"\r\n\r\nwhisper-2\r\n')
    assert.isAbove(sent.bytes.indexOf(wav), 0, 'the file reached the upstream whole')

    const otherModel = multipartBody([['model', 'whisper-1'], ['file', wav, 'a.wav']])
    const replaced = await fetch(`${baseUrl()}/openai/deployments/whisper-3/audio/translations`, {
      method: 'POST',
      headers: { 'api-key': user.key, 'content-type': otherModel.contentType },
      body: otherModel.body,
    })
    assert.equal(replaced.status, 200)
    sent = mock.lastRequest()!
    assert.equal(sent.path, '/v1/audio/translations')
    assert.include(sent.body, 'name="model"\r\n\r\nwhisper-3\r\n')
    assert.notInclude(sent.body, 'whisper-1')

    const speech = await post(`/openai/deployments/tts-1/audio/speech?api-version=${API_VERSION}`, { input: 'Hello', voice: 'alloy' }, { 'api-key': user.key })
    assert.equal(speech.status, 200)
    assert.isAbove((await speech.arrayBuffer()).byteLength, 0)
    assert.equal(upstreamBody(mock).model, 'tts-1')

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.status]),
      [
        ['audio.transcriptions', 'whisper-1', 200],
        ['audio.transcriptions', 'whisper-2', 200],
        ['audio.translations', 'whisper-3', 200],
        ['audio.speech', 'tts-1', 200],
      ]
    )
  })

  test('the v1 API (/openai/v1) and AzureOpenAI\'s responses and model list', async ({ assert }) => {
    const user = await seedUser()
    const v1 = new OpenAI({ baseURL: `${baseUrl()}/openai/v1`, apiKey: user.key, maxRetries: 0 })
    const answer = await v1.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] })
    assert.isString(answer.choices[0].message.content)
    const response = await v1.responses.create({ model: 'mock-a', input: 'hi' })
    assert.equal(response.object, 'response')
    const vectors = await v1.embeddings.create({ model: 'mock-embed', input: 'hello' })
    assert.isAbove(vectors.data.length, 0)
    const listed = await v1.models.list()
    assert.include(
      listed.data.map((m) => m.id),
      'mock-a'
    )
    assert.equal((await v1.models.retrieve('mock-a')).id, 'mock-a')

    // The key in api-key, as Azure's v1 clients send it.
    const withHeader = await post('/openai/v1/chat/completions', { model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] }, { 'api-key': user.key })
    assert.equal(withHeader.status, 200)

    // AzureOpenAI: responses.create at /openai/responses, models.list at /openai/models.
    const client = azure(user.key)
    const azureResponse = await client.responses.create({ model: 'mock-a', input: 'hi' })
    assert.equal(azureResponse.object, 'response')
    const azureModels = await client.models.list()
    assert.include(
      azureModels.data.map((m) => m.id),
      'mock-a'
    )

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.status]),
      [
        ['chat.completions', 'mock-a', 200],
        ['responses', 'mock-a', 200],
        ['embeddings', 'mock-embed', 200],
        ['chat.completions', 'mock-a', 200],
        ['responses', 'mock-a', 200],
      ]
    )
  })

  test("errors in OpenAI's JSON: a bad api-key, an unknown operation, a malformed deployment; CORS as for /v1", async ({ assert }) => {
    const badKey = await post('/openai/deployments/mock-a/chat/completions?api-version=2024-10-21', { messages: [] }, { 'api-key': 'sk-gw-nope' })
    assert.equal(badKey.status, 401)
    assert.match(badKey.headers.get('content-type') ?? '', /application\/json/)
    assert.equal(((await badKey.json()) as any).error.code, 'invalid_api_key')

    const user = await seedUser()
    const headers = { 'api-key': user.key }
    const unknown = await post('/openai/deployments/mock-a/fine_tuning/jobs', {}, headers)
    assert.equal(unknown.status, 404)
    assert.equal(((await unknown.json()) as any).error.code, 'not_found')

    const malformed = await post('/openai/deployments/%zz/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }, headers)
    assert.equal(malformed.status, 400)
    assert.equal(((await malformed.json()) as any).error.code, 'invalid_url')

    const notJson = await post('/openai/deployments/mock-a/chat/completions', '{"messages":', headers)
    assert.equal(notJson.status, 400)
    assert.equal(((await notJson.json()) as any).error.code, 'invalid_json')

    const upstreamFailure = await post('/openai/deployments/mock-a/chat/completions', { messages: [{ role: 'user', content: 'hi' }], mock: { status: 400 } }, headers)
    assert.equal(upstreamFailure.status, 400)
    assert.equal(((await upstreamFailure.json()) as any).error.message, 'mock upstream failure 400')

    const preflight = await fetch(`${baseUrl()}/openai/deployments/mock-a/chat/completions?api-version=2024-10-21`, {
      method: 'OPTIONS',
      headers: { 'origin': 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'api-key, content-type' },
    })
    assert.equal(preflight.status, 204)
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*')
    assert.include(preflight.headers.get('access-control-allow-headers') ?? '', 'api-key')
    const unnamed = await fetch(`${baseUrl()}/openai/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { 'origin': 'https://app.example', 'access-control-request-method': 'POST' },
    })
    // Listed by its own name (x-api-key is another header).
    assert.match(unnamed.headers.get('access-control-allow-headers') ?? '', /(^|, )api-key(,|$)/)

    // Refused after the key was read: each has its usage row, under the deployment's name once it was read.
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.status, r.error_code]),
      [
        ['chat.completions', '(none)', 400, 'invalid_url'],
        ['chat.completions', 'mock-a', 400, 'invalid_json'],
        ['chat.completions', 'mock-a', 400, 'mock_400'],
      ]
    )
  })

  test('the router serves the same paths when the API lane is off', async ({ assert }) => {
    const server = await app.container.make('server')
    const handler = server.handle.bind(server) as (req: IncomingMessage, res: ServerResponse) => unknown
    const routed: Server = createServer(withApiLane(handler, false))
    await new Promise<void>((resolve) => routed.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(routed.address() as AddressInfo).port}`
      const user = await seedUser()
      const client = azure(user.key, { url })
      const answer = await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] })
      assert.isString(answer.choices[0].message.content)
      const vectors = await client.embeddings.create({ model: 'mock-embed', input: 'hello' })
      assert.isAbove(vectors.data.length, 0)
      const models = await client.models.list()
      assert.isAbove(models.data.length, 0)

      const bare = await fetch(`${url}/openai/deployments/mock-c/chat/completions?api-version=${API_VERSION}`, {
        method: 'POST',
        headers: { 'api-key': user.key, 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
      })
      assert.equal(bare.status, 200)
      assert.equal(upstreamBody(mock).model, 'mock-c')

      const v1 = await fetch(`${url}/openai/v1/responses`, {
        method: 'POST',
        headers: { 'api-key': user.key, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mock-a', input: 'hi' }),
      })
      assert.equal(v1.status, 200)

      const unknown = await fetch(`${url}/openai/deployments/mock-a/fine_tuning/jobs`, { method: 'POST', headers: { 'api-key': user.key }, body: '{}' })
      assert.equal(unknown.status, 404)
      assert.equal(((await unknown.json()) as any).error.code, 'not_found')
      const malformed = await fetch(`${url}/openai/deployments/%zz/chat/completions`, { method: 'POST', headers: { 'api-key': user.key }, body: '{}' })
      assert.equal(malformed.status, 400)
      assert.equal(((await malformed.json()) as any).error.code, 'invalid_url')
      const badKey = await fetch(`${url}/openai/deployments/mock-a/embeddings`, { method: 'POST', headers: { 'api-key': 'sk-gw-nope' }, body: '{}' })
      assert.equal(badKey.status, 401)
      assert.equal(((await badKey.json()) as any).error.code, 'invalid_api_key')

      const rows = await usageRows(user.userId)
      assert.deepEqual(
        rows.map((r) => [r.endpoint, r.model, r.status]),
        [
          ['chat.completions', 'mock-a', 200],
          ['embeddings', 'mock-embed', 200],
          ['chat.completions', 'mock-c', 200],
          ['responses', 'mock-a', 200],
        ]
      )
    } finally {
      await new Promise((resolve) => routed.close(resolve))
    }
  })
})
