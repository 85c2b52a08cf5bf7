import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ChannelCreate from '#commands/channel_create'
import ChannelTest from '#commands/channel_test'
import { fetchChannelModels } from '#actions/channel_models'
import { setPrice } from '#actions/set_price'
import { testChannel } from '#actions/test_channel'
import { toPico } from '#gateway/metering/money'
import { forgetTokens } from '#gateway/providers/vertex/google_token'
import { MockVertex, MOCK_PROJECT } from '#tests/fixtures/mock_vertex'
import { anthropic, genai } from '#tests/clients'
import { balanceAndLedger, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

const FLASH = 'gemini-2.5-flash'
const SONNET = 'claude-sonnet-4-5@20250929'
const CLAUDE = `/v1/projects/${MOCK_PROJECT}/locations/us-central1/publishers/anthropic/models/${SONNET}`
const M = 1_000_000n
const MODELS = `/v1/projects/${MOCK_PROJECT}/locations/us-central1/publishers/google/models`
const hi = [{ role: 'user' as const, content: 'hi' }]
// $0.30 in, $2.50 out (per 1M): 11 in, 5 out a call
const COST = 11n * 300_000n + 5n * 2_500_000n

async function disabledRow(channelId: number) {
  let row = await db.from('channels').where('id', channelId).first()
  for (let i = 0; i < 50 && row.enabled; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    row = await db.from('channels').where('id', channelId).first()
  }
  return row
}

/**
 * `vertex` channels against a mock Vertex AI whose token endpoint checks the
 * service account's JWT signature and whose model endpoints check the
 * tokens it issued (tests/fixtures/mock_vertex.ts): Gemini clients passed
 * through, OpenAI clients translated, whole and streamed; one token exchange
 * for many calls, a new one near expiry; refused credentials; exact metering.
 */
test.group('Vertex AI channels', (group) => {
  let mock: MockVertex

  group.setup(async () => {
    await resetDatabase()
    forgetTokens()
    mock = new MockVertex()
    await mock.start()
    // The project comes from the key; the location from ?location= (the mock is no *-aiplatform host)
    await seedChannel({
      name: 'vertex',
      provider: 'vertex',
      baseUrl: `${mock.origin}/v1?location=us-central1`,
      apiKey: mock.serviceAccount(),
      models: [FLASH, 'claude-sonnet-4-5'],
      modelMapping: { 'claude-sonnet-4-5': SONNET },
    })
    await setPrice({ model: FLASH, input: '0.3', output: '2.5' })
    await setPrice({ model: 'claude-sonnet-4-5', input: '3', output: '15', cacheRead: '0.3', cacheWrite: '3.75' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('Gemini SDK passed through, whole and streamed: one token exchange for concurrent calls, usage rows and ledger exact', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)

    // Five calls at once with no token yet: one exchange, shared
    const answers = await Promise.all(Array.from({ length: 5 }, () => ai.models.generateContent({ model: FLASH, contents: 'hi' })))
    for (const answer of answers) {
      assert.equal(answer.text, 'Hello from Vertex.')
      assert.include(answer.usageMetadata as any, { promptTokenCount: 11, candidatesTokenCount: 5 })
    }
    assert.equal(mock.exchanges, 1)
    const seen = mock.lastRequest()
    assert.equal(seen.path, `${MODELS}/${FLASH}:generateContent`)
    assert.equal(seen.headers.authorization, 'Bearer ya29.mock-1')
    assert.notProperty(seen.headers, 'x-goog-api-key')

    let text = ''
    let last: any
    for await (const chunk of await ai.models.generateContentStream({ model: FLASH, contents: 'hi' })) {
      text += chunk.text ?? ''
      last = chunk
    }
    assert.equal(text, 'Hello from Vertex.')
    assert.include(last.usageMetadata, { promptTokenCount: 11, candidatesTokenCount: 5 })
    assert.equal(mock.lastRequest().path, `${MODELS}/${FLASH}:streamGenerateContent?alt=sse`)

    // countTokens on Vertex's path, same token
    const counted = await ai.models.countTokens({ model: FLASH, contents: 'hi' })
    assert.equal(counted.totalTokens, 11)
    assert.equal(mock.lastRequest().path, `${MODELS}/${FLASH}:countTokens`)
    assert.equal(mock.exchanges, 1)

    const rows = (await usageRows(user.userId)).filter((row) => row.prompt_tokens > 0 && row.completion_tokens > 0)
    assert.lengthOf(rows, 6)
    for (const row of rows) {
      assert.include(row, { status: 200, model: FLASH, provider: 'vertex', prompt_tokens: 11, completion_tokens: 5, estimated: false })
      assert.equal(toPico(row.cost), COST)
    }
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), 1_000_000_000_000n - 6n * COST)
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('OpenAI client translated, whole and streamed, with the cached token', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const exchanges = mock.exchanges
    const whole = await client.chat.completions.create({ model: FLASH, messages: hi })
    assert.equal(whole.choices[0].message.content, 'Hello from Vertex.')
    assert.include(whole.usage, { prompt_tokens: 11, completion_tokens: 5 })
    assert.equal(mock.lastRequest().path, `${MODELS}/${FLASH}:generateContent`)
    assert.deepEqual(JSON.parse(mock.lastRequest().body).contents, [{ role: 'user', parts: [{ text: 'hi' }] }])

    const stream = await client.chat.completions.create({ model: FLASH, messages: hi, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let usage: any = null
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(text, 'Hello from Vertex.')
    assert.include(usage, { prompt_tokens: 11, completion_tokens: 5 })
    assert.equal(mock.lastRequest().path, `${MODELS}/${FLASH}:streamGenerateContent?alt=sse`)
    assert.equal(mock.exchanges, exchanges)

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    for (const row of rows) {
      assert.include(row, { status: 200, provider: 'vertex', prompt_tokens: 11, completion_tokens: 5, estimated: false })
      assert.equal(toPico(row.cost), COST)
    }
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), 1_000_000_000_000n - 2n * COST)
  })

  test('Claude on Vertex: rawPredict / streamRawPredict with vertex-2023-10-16, Anthropic, OpenAI and Gemini clients, metered exactly', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const whole = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: hi }, { headers: { 'anthropic-beta': 'context-1m-2025-08-07' } })
    assert.equal(whole.content[0].type === 'text' && whole.content[0].text, 'Hello from Claude on Vertex.')
    assert.include(whole.usage, { input_tokens: 13, output_tokens: 6, cache_read_input_tokens: 100 })
    let seen = mock.lastRequest()
    assert.equal(seen.path, `${CLAUDE}:rawPredict`)
    assert.match(String(seen.headers.authorization), /^Bearer ya29\.mock-\d+$/)
    assert.equal(seen.headers['anthropic-beta'], 'context-1m-2025-08-07')
    const body = JSON.parse(seen.body)
    assert.equal(body.anthropic_version, 'vertex-2023-10-16')
    assert.notProperty(body, 'model')

    const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: hi })
    let text = ''
    stream.on('text', (delta) => (text += delta))
    const final = await stream.finalMessage()
    assert.equal(text, 'Hello from Claude on Vertex.')
    assert.include(final.usage, { input_tokens: 13, output_tokens: 6, cache_read_input_tokens: 100 })
    seen = mock.lastRequest()
    assert.equal(seen.path, `${CLAUDE}:streamRawPredict`)
    assert.isTrue(JSON.parse(seen.body).stream)

    // OpenAI and Gemini clients: translated to the Messages API
    const chat = await openai(user.key).chat.completions.create({ model: 'claude-sonnet-4-5', messages: hi, stream: true, stream_options: { include_usage: true } })
    let chatText = ''
    for await (const chunk of chat) chatText += chunk.choices[0]?.delta?.content ?? ''
    assert.equal(chatText, 'Hello from Claude on Vertex.')
    assert.equal(mock.lastRequest().path, `${CLAUDE}:streamRawPredict`)
    const gemini = await genai(user.key).models.generateContent({ model: 'claude-sonnet-4-5', contents: 'hi' })
    assert.equal(gemini.text, 'Hello from Claude on Vertex.')
    assert.equal(mock.lastRequest().path, `${CLAUDE}:rawPredict`)

    // count_tokens: the gateway's tokenizer, Vertex not called
    const sent = mock.requests.length
    const counted = await client.messages.countTokens({ model: 'claude-sonnet-4-5', messages: hi })
    assert.isAbove(counted.input_tokens, 0)
    assert.equal(mock.requests.length, sent)

    const rows = (await usageRows(user.userId)).filter((row) => row.endpoint !== 'messages.count_tokens')
    assert.lengthOf(rows, 4)
    // 13 x 3 + 100 x 0.3 + 6 x 15
    const cost = 13n * 3n * M + 100n * 300_000n + 6n * 15n * M
    for (const row of rows) {
      assert.include(row, { status: 200, model: 'claude-sonnet-4-5', served_model: SONNET, provider: 'vertex', prompt_tokens: 113, completion_tokens: 6, cached_tokens: 100, estimated: false })
      assert.equal(toPico(row.cost), cost)
    }
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), 1_000_000_000_000n - 4n * cost)
    assert.equal(money.balance, money.ledger)
  })

  test('a token is used until 5 minutes before it expires (half its life when shorter), then exchanged again', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    forgetTokens()
    // Tokens of 4 s: fresh for the gateway 2 s (half their life: the 300 s margin is longer). With the
    // margin alone such a token was never kept, and every request made an exchange of its own.
    mock.tokenLifetimeS = 4
    try {
      const before = mock.exchanges
      await client.chat.completions.create({ model: FLASH, messages: hi })
      await client.chat.completions.create({ model: FLASH, messages: hi })
      assert.equal(mock.exchanges, before + 1)
      const first = mock.lastRequest().headers.authorization
      await new Promise((resolve) => setTimeout(resolve, 2100))
      await client.chat.completions.create({ model: FLASH, messages: hi })
      assert.equal(mock.exchanges, before + 2)
      assert.notEqual(mock.lastRequest().headers.authorization, first)
    } finally {
      mock.tokenLifetimeS = 3600
    }
  }).timeout(15_000)

  test('a cached token Vertex refuses (revoked) is exchanged again, the channel kept; a fresh token refused takes the channel out', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    forgetTokens()
    await client.chat.completions.create({ model: FLASH, messages: hi })
    const exchanges = mock.exchanges
    mock.revokeTokens()
    const refused = await post('/v1/chat/completions', { model: FLASH, messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.include([502, 503], refused.status)
    assert.equal(((await refused.json()) as any).error.type !== undefined, true)
    const vertex = (await gateway()).catalog.channels.find((c) => c.name === 'vertex')!
    assert.isTrue(vertex.enabled, 'one revoked token does not disable the channel')
    assert.isTrue((await db.from('channels').where('id', vertex.id).first()).enabled)
    // The next request exchanges again and is served
    const served = await client.chat.completions.create({ model: FLASH, messages: hi })
    assert.equal(served.choices[0].message.content, 'Hello from Vertex.')
    assert.equal(mock.exchanges, exchanges + 1)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows.filter((row) => row.status === 200), 2)

    // A token refused as soon as it is issued: the account's tokens do not work, the channel is out
    const dead = new MockVertex()
    await dead.start()
    dead.deadTokens = true
    try {
      const channel = await seedChannel({ name: 'vertex-dead', provider: 'vertex', baseUrl: `${dead.origin}/v1?location=us-central1`, apiKey: dead.serviceAccount(), models: ['gemini-dead'], modelMapping: { 'gemini-dead': FLASH } })
      const answer = await post('/v1/chat/completions', { model: 'gemini-dead', messages: hi }, { authorization: `Bearer ${user.key}` })
      assert.equal(answer.status, 502)
      assert.include(((await answer.json()) as any).error.message, "rejected the channel's credentials (HTTP 401)")
      assert.isFalse((await disabledRow(channel.id)).enabled)
      assert.equal(dead.exchanges, 1)
    } finally {
      await dead.stop()
    }
  })

  test('a broken token endpoint (200 with junk, a body without end, expires_in 0): a clear failure or a token kept sanely, never a hang', async ({ assert }) => {
    const broken = new MockVertex()
    await broken.start()
    const user = await seedUser({ balance: '1' })
    try {
      const channel = await seedChannel({ name: 'vertex-broken-token', provider: 'vertex', baseUrl: `${broken.origin}/v1?location=us-central1`, apiKey: broken.serviceAccount(), models: ['gemini-bt'], modelMapping: { 'gemini-bt': FLASH } })
      broken.tokenAnswer = 'junk'
      let answer = await post('/v1/chat/completions', { model: 'gemini-bt', messages: hi }, { authorization: `Bearer ${user.key}` })
      assert.equal(answer.status, 502)
      assert.include(((await answer.json()) as any).error.message, 'no access_token')

      // An answer that never ends is read up to 64 KB, not to the exchange's 15 s timeout (nor held whole)
      broken.tokenAnswer = 'endless'
      const started = Date.now()
      answer = await post('/v1/chat/completions', { model: 'gemini-bt', messages: hi }, { authorization: `Bearer ${user.key}` })
      assert.equal(answer.status, 502)
      assert.isBelow(Date.now() - started, 5000)
      assert.isBelow(broken.endlessBytes, 1024 * 1024)
      // Neither is a refused key: the channel stays in rotation
      assert.isTrue((await db.from('channels').where('id', channel.id).first()).enabled)

      // expires_in 0: the token serves the request that asked for it, and is not kept for an hour
      broken.tokenAnswer = null
      broken.tokenExpiresIn = 0
      const client = openai(user.key)
      await client.chat.completions.create({ model: 'gemini-bt', messages: hi })
      await client.chat.completions.create({ model: 'gemini-bt', messages: hi })
      assert.equal(broken.exchanges, 2)
    } finally {
      await broken.stop()
    }
  }).timeout(30_000)

  test('a Cloud Storage URI (gs://) from a client is refused before Vertex reads it with the gateway\'s own credentials: passed through, escaped, translated, an assistant turn\'s images', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const gemini = (uri: string) => ({ contents: [{ role: 'user', parts: [{ text: 'describe' }, { fileData: { mimeType: 'application/pdf', fileUri: uri } }] }] })
    const native = await post(`/v1beta/models/${FLASH}:generateContent`, gemini('gs://operator-private/payroll.pdf'), { 'x-goog-api-key': user.key })
    assert.equal(native.status, 400)
    const nativeError: any = await native.json()
    assert.include(nativeError.error.message, 'gs://')
    assert.equal(nativeError.error.status, 'INVALID_ARGUMENT')
    // The scheme spelled with JSON escapes reads the same to Vertex
    const escaped = JSON.stringify(gemini('gs://operator-private/payroll.pdf')).replace('"gs://', '"\\u0067s://')
    assert.equal((await post(`/v1beta/models/${FLASH}:generateContent`, escaped, { 'x-goog-api-key': user.key })).status, 400)
    // OpenAI clients: an image_url, and an earlier answer's images sent back
    const chat = await post('/v1/chat/completions', { model: FLASH, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'gs://operator-private/face.png' } }] }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(chat.status, 400)
    const chatError: any = await chat.json()
    assert.include(chatError.error.message, 'gs://')
    const turn = [
      { role: 'user', content: 'draw' },
      { role: 'assistant', content: '', images: [{ type: 'image_url', image_url: { url: 'GS://operator-private/x.png' } }] },
      { role: 'user', content: 'again' },
    ]
    assert.equal((await post('/v1/chat/completions', { model: FLASH, messages: turn }, { authorization: `Bearer ${user.key}` })).status, 400)
    assert.equal(mock.requests.length, before, 'Vertex was never asked')
    // https URLs and inline data still go
    const web = await post(`/v1beta/models/${FLASH}:generateContent`, gemini('https://example.com/a.pdf'), { 'x-goog-api-key': user.key })
    assert.equal(web.status, 200)
    await web.text()
  })

  test("Vertex's errors: 429 to the client as a rate limit, 400 relayed", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    mock.script(400, 'INVALID_ARGUMENT', 'Unable to submit request because it has an empty text parameter.')
    let answer = await post('/v1/chat/completions', { model: FLASH, messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 400)
    let error: any = await answer.json()
    assert.include(error.error.message, 'empty text parameter')

    mock.script(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute')
    answer = await post(`/v1beta/models/${FLASH}:generateContent`, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(answer.status, 429)
    error = await answer.json()
    assert.equal(error.error.status, 'RESOURCE_EXHAUSTED')
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('a key the token endpoint refuses: the channel out of rotation, the client told, nothing charged, the key never shown', async ({ assert }) => {
    const channel = await seedChannel({ name: 'vertex-foreign', provider: 'vertex', baseUrl: `${mock.origin}/v1?location=us-central1`, apiKey: mock.serviceAccount({ foreignKey: true }), models: ['gemini-foreign'] })
    const user = await seedUser({ balance: '1' })
    const calls = mock.requests.length
    const refusals = mock.refusals
    const answer = await post('/v1/chat/completions', { model: 'gemini-foreign', messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 502)
    const error: any = await answer.json()
    assert.include(error.error.message, "rejected the channel's credentials (HTTP 401)")
    assert.notInclude(JSON.stringify(error), 'PRIVATE KEY')
    assert.equal(mock.refusals, refusals + 1)
    assert.equal(mock.requests.length, calls, 'Vertex itself not called')
    assert.isFalse((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled)
    const row = await disabledRow(channel.id)
    assert.isFalse(row.enabled)
    assert.include(row.disabled_reason, 'invalid_grant: Invalid JWT Signature.')
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), 1_000_000_000_000n)

    // A key that is no service account key at all: said so
    const broken = await seedChannel({ name: 'vertex-broken', provider: 'vertex', baseUrl: `${mock.origin}/v1?location=us-central1`, apiKey: '{"type":"service_account","project_id":"p"}', models: ['gemini-broken'] })
    const second = await post('/v1/chat/completions', { model: 'gemini-broken', messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(second.status, 502)
    assert.include((await disabledRow(broken.id)).disabled_reason, 'no client_email or private_key')
  })

  test("a token endpoint slower than the channel's first-byte limit: that attempt times out, the next channel serves", async ({ assert }) => {
    const slow = new MockVertex()
    await slow.start()
    slow.tokenDelayMs = 2500
    try {
      const channel = await seedChannel({ name: 'vertex-slow', provider: 'vertex', baseUrl: `${slow.origin}/v1?location=us-central1`, apiKey: slow.serviceAccount(), models: ['gemini-slow'], priority: 10, firstByteTimeoutMs: 1000 })
      await seedChannel({ name: 'vertex-second', provider: 'vertex', baseUrl: `${mock.origin}/v1?location=us-central1`, apiKey: mock.serviceAccount(), models: ['gemini-slow'], modelMapping: { 'gemini-slow': FLASH }, priority: 1 })
      const user = await seedUser({ balance: '1' })
      const started = Date.now()
      const answer = await openai(user.key).chat.completions.create({ model: 'gemini-slow', messages: hi })
      assert.equal(answer.choices[0].message.content, 'Hello from Vertex.')
      assert.isBelow(Date.now() - started, 2400, 'the slow exchange was not waited for')
      assert.lengthOf(slow.requests, 0)
      const rows = await usageRows(user.userId)
      assert.include(rows[0], { status: 200, prompt_tokens: 11, completion_tokens: 5 })
      assert.notEqual(rows[0].channel_id, channel.id)
      // A timeout is no bad key: the slow channel stays in rotation
      assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled)
    } finally {
      await new Promise((resolve) => setTimeout(resolve, 300))
      slow.tokenDelayMs = 0
      await slow.stop()
    }
  }).timeout(15_000)

  test('express mode: an API key, no project; the panel Test; channel:create takes a bare location', async ({ assert }) => {
    const channel = await seedChannel({ name: 'vertex-express', provider: 'vertex', baseUrl: `${mock.origin}/v1?location=global`, apiKey: mock.apiKey, models: ['gemini-express'], modelMapping: { 'gemini-express': FLASH } })
    const user = await seedUser({ balance: '1' })
    const whole = await openai(user.key).chat.completions.create({ model: 'gemini-express', messages: hi })
    assert.equal(whole.choices[0].message.content, 'Hello from Vertex.')
    assert.equal(mock.lastRequest().path, `/v1/publishers/google/models/${FLASH}:generateContent`)
    assert.equal(mock.lastRequest().headers['x-goog-api-key'], mock.apiKey)
    assert.notProperty(mock.lastRequest().headers, 'authorization')

    const result = await testChannel(channel.id)
    assert.isTrue(result.ok, String(result.error))
    const command = await run(ChannelTest, [String(channel.id)])
    command.assertSucceeded()
    assert.equal(mock.lastRequest().path, '/v1beta1/publishers/google/models?pageSize=1000')
    assert.equal(mock.lastRequest().headers['x-goog-api-key'], mock.apiKey)
    // The service account channel's list, with its token
    const listed = await fetchChannelModels((await db.from('channels').where('name', 'vertex').first()).id)
    assert.deepEqual(listed.models.map((m) => m.id), ['gemini-2.5-flash', 'gemini-2.5-pro'])
    assert.match(String(mock.lastRequest().headers.authorization), /^Bearer ya29\.mock-\d+$/)

    for (const [given, stored] of [
      ['us-central1', 'https://us-central1-aiplatform.googleapis.com/v1'],
      ['global', 'https://aiplatform.googleapis.com/v1'],
      ['https://europe-west4-aiplatform.googleapis.com', 'https://europe-west4-aiplatform.googleapis.com/v1'],
    ]) {
      const name = `vertex-cli-${given.length}`
      const created = await run(ChannelCreate, ['--name', name, '--provider', 'vertex', '--base-url', given, '--api-key', 'AQ.some-key', '--models', 'gemini-*'])
      created.assertSucceeded()
      assert.equal((await db.from('channels').where('name', name).first()).base_url, stored)
    }
    const refused = await run(ChannelCreate, ['--name', 'vertex-bad', '--provider', 'vertex', '--base-url', 'http://127.0.0.1:9/v1', '--api-key', 'AQ.k', '--models', 'gemini-*'])
    assert.equal(refused.exitCode, 1)
    await refreshCaches()
  })
})
