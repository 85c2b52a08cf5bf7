import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ChannelCreate from '#commands/channel_create'
import ChannelTest from '#commands/channel_test'
import { setPrice } from '#actions/set_price'
import { testChannel } from '#actions/test_channel'
import { toPico } from '#gateway/metering/money'
import { MockBedrock } from '#tests/fixtures/mock_bedrock'
import { anthropic, parseSse } from '#tests/clients'
import { balanceAndLedger, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

const M = 1_000_000n
const SONNET = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0'
const SONNET_PATH = '/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0'
const hi = [{ role: 'user' as const, content: 'hi' }]
const anthropicHeaders = (key: string) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' })

/**
 * `bedrock` channels against a mock Bedrock that checks SigV4 with its own
 * secret (tests/fixtures/mock_bedrock.ts): Claude through InvokeModel, whole
 * and streamed (AWS's event stream, decoded as it comes), to Anthropic and
 * OpenAI clients; Bedrock's errors in each client's format; exact metering.
 */
test.group('Bedrock channels', (group) => {
  let mock: MockBedrock

  group.setup(async () => {
    await resetDatabase()
    mock = new MockBedrock({ region: 'us-east-1', accessKeyId: 'AKIDMOCKBEDROCK', secretAccessKey: 'mock/Secret+Key0', apiKey: 'ABSKbW9ja2JlZHJvY2s=' })
    await mock.start()
    await seedChannel({
      name: 'bedrock',
      provider: 'bedrock',
      baseUrl: `${mock.origin}?region=us-east-1`,
      apiKey: 'AKIDMOCKBEDROCK:mock/Secret+Key0',
      models: [],
      modelMapping: { 'claude-sonnet-4-5': SONNET, 'claude-throttled': 'anthropic.claude-throttled-v1:0' },
    })
    // $3 in, $15 out, $0.30 cache read, $3.75 cache write (per 1M)
    await setPrice({ model: 'claude-sonnet-*', input: '3', output: '15', cacheRead: '0.3', cacheWrite: '3.75' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('Anthropic SDK, whole and streamed: signed invoke calls, the answer, usage rows and ledger exact (cache reads and writes)', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)

    mock.script({ cacheRead: 200, cacheWrite: 1000 })
    const whole = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: hi })
    assert.equal(whole.content[0].type === 'text' && whole.content[0].text, 'Hello from Bedrock.')
    assert.include(whole.usage, { input_tokens: 12, output_tokens: 4, cache_read_input_tokens: 200, cache_creation_input_tokens: 1000 })
    let seen = mock.lastRequest()
    assert.isTrue(seen.signed)
    assert.equal(seen.path, `${SONNET_PATH}/invoke`)
    assert.match(String(seen.headers.authorization), /^AWS4-HMAC-SHA256 Credential=AKIDMOCKBEDROCK\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date, /)
    const body = JSON.parse(seen.body)
    assert.equal(body.anthropic_version, 'bedrock-2023-05-31')
    assert.notProperty(body, 'model')
    assert.notProperty(body, 'stream')

    mock.script({ cacheRead: 200, cacheWrite: 1000 })
    const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: hi })
    let text = ''
    stream.on('text', (delta) => (text += delta))
    const final = await stream.finalMessage()
    assert.equal(text, 'Hello from Bedrock.')
    assert.include(final.usage, { input_tokens: 12, output_tokens: 4, cache_read_input_tokens: 200, cache_creation_input_tokens: 1000 })
    seen = mock.lastRequest()
    assert.equal(seen.path, `${SONNET_PATH}/invoke-with-response-stream`)
    assert.equal(seen.headers.accept, 'application/vnd.amazon.eventstream')

    // count_tokens: Bedrock's CountTokens is not called, the gateway's tokenizer counts
    const sent = mock.requests.length
    const counted = await client.messages.countTokens({ model: 'claude-sonnet-4-5', messages: hi })
    assert.isAbove(counted.input_tokens, 0)
    assert.equal(mock.requests.length, sent)

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows.filter((row) => row.endpoint !== 'messages.count_tokens'), 2)
    // 12 x 3 + 200 x 0.3 + 1000 x 3.75 + 4 x 15
    const cost = 12n * 3n * M + 200n * 300_000n + 1000n * 3_750_000n + 4n * 15n * M
    for (const row of rows.filter((r) => r.endpoint !== 'messages.count_tokens')) {
      assert.include(row, { status: 200, model: 'claude-sonnet-4-5', served_model: SONNET, provider: 'bedrock', prompt_tokens: 1212, completion_tokens: 4, cached_tokens: 200, cache_write_tokens: 1000, estimated: false })
      assert.equal(toPico(row.cost), cost)
    }
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), 1_000_000_000_000n - 2n * cost)
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('OpenAI client, translated, whole and streamed; a Responses client', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const whole = await client.chat.completions.create({ model: 'claude-sonnet-4-5', messages: hi })
    assert.equal(whole.choices[0].message.content, 'Hello from Bedrock.')
    assert.include(whole.usage, { prompt_tokens: 12, completion_tokens: 4 })
    assert.equal(mock.lastRequest().path, `${SONNET_PATH}/invoke`)

    const stream = await client.chat.completions.create({ model: 'claude-sonnet-4-5', messages: hi, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let usage: any = null
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(text, 'Hello from Bedrock.')
    assert.include(usage, { prompt_tokens: 12, completion_tokens: 4 })
    assert.equal(mock.lastRequest().path, `${SONNET_PATH}/invoke-with-response-stream`)
    const responses = await client.responses.create({ model: 'claude-sonnet-4-5', input: 'hi' })
    assert.equal(responses.output_text, 'Hello from Bedrock.')
    assert.include(responses.usage, { input_tokens: 12, output_tokens: 4 })

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 3)
    for (const row of rows) {
      assert.include(row, { status: 200, provider: 'bedrock', prompt_tokens: 12, completion_tokens: 4, estimated: false })
      assert.equal(toPico(row.cost), 12n * 3n * M + 4n * 15n * M)
    }
  })

  test("Bedrock's errors in each client's format: validation 400, throttling 429, an exception mid-stream", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })

    mock.script({ error: [400, 'ValidationException', 'max_tokens: Input should be less than 64000'] })
    let answer = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 64, messages: hi }, anthropicHeaders(user.key))
    assert.equal(answer.status, 400)
    let error: any = await answer.json()
    assert.equal(error.type, 'error')
    assert.equal(error.error.type, 'invalid_request_error')
    assert.include(error.error.message, 'Input should be less than 64000')

    mock.script({ error: [400, 'ValidationException', 'max_tokens: Input should be less than 64000'] })
    answer = await post('/v1/chat/completions', { model: 'claude-sonnet-4-5', messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 400)
    error = await answer.json()
    assert.include(error.error.message, 'Input should be less than 64000')

    mock.script({ error: [400, 'ValidationException', 'max_tokens: Input should be less than 64000'] })
    answer = await post('/v1beta/models/claude-sonnet-4-5:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(answer.status, 400)
    error = await answer.json()
    assert.include(error.error, { code: 400, status: 'INVALID_ARGUMENT' })
    assert.include(error.error.message, 'Input should be less than 64000')

    // Throttling: 429 in the gateway's words, the (channel, model) cools down (its own mapped model here)
    mock.script({ error: [429, 'ThrottlingException', 'Too many requests, please wait before trying again.'] })
    answer = await post('/v1/chat/completions', { model: 'claude-throttled', messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 429)
    error = await answer.json()
    assert.equal(error.error.code, 'upstream_rate_limited')
    // ...and while it cools down, the gateway answers without calling Bedrock: in Anthropic's shape here
    const sent = mock.requests.length
    answer = await post('/v1/messages', { model: 'claude-throttled', max_tokens: 8, messages: hi }, anthropicHeaders(user.key))
    assert.equal(answer.status, 429)
    error = await answer.json()
    assert.equal(error.error.type, 'rate_limit_error')
    assert.equal(mock.requests.length, sent)

    // An exception after the stream began: Anthropic's error event to the client, billed as interrupted
    mock.script({ streamException: { after: 3, type: 'modelStreamErrorException', message: 'The model stopped.' } })
    answer = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 64, stream: true, messages: hi }, anthropicHeaders(user.key))
    assert.equal(answer.status, 200)
    const events = parseSse(await answer.text())
    assert.equal(events[0].event, 'message_start')
    const last = events[events.length - 1]
    assert.equal(last.event, 'error')
    const rows = await usageRows(user.userId)
    assert.include(rows[rows.length - 1], { provider: 'bedrock', error_code: 'stream_interrupted' })
    // ...and one that fails before its first event is the channel's failure: 502, not a stream
    mock.script({ streamException: { after: 0, type: 'serviceUnavailableException', message: 'Bedrock is unavailable.' } })
    answer = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 64, stream: true, messages: hi }, anthropicHeaders(user.key))
    assert.include([502, 503, 529], answer.status)
    error = await answer.json()
    assert.equal(error.type, 'error')
  })

  test('Bedrock API key mode: Authorization Bearer, no signature', async ({ assert }) => {
    const channel = await seedChannel({
      name: 'bedrock-key',
      provider: 'bedrock',
      baseUrl: `${mock.origin}?region=us-east-1`,
      apiKey: 'ABSKbW9ja2JlZHJvY2s=',
      models: [],
      modelMapping: { 'claude-by-key': 'anthropic.claude-3-5-haiku-20241022-v1:0' },
    })
    const user = await seedUser()
    const answer = await anthropic(user.key).messages.create({ model: 'claude-by-key', max_tokens: 16, messages: hi })
    assert.equal(answer.content[0].type === 'text' && answer.content[0].text, 'Hello from Bedrock.')
    const seen = mock.lastRequest()
    assert.equal(seen.headers.authorization, 'Bearer ABSKbW9ja2JlZHJvY2s=')
    assert.notProperty(seen.headers, 'x-amz-date')
    assert.equal(seen.path, '/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke')
    const rows = await usageRows(user.userId)
    assert.include(rows[0], { channel_id: channel.id, status: 200, prompt_tokens: 12, completion_tokens: 4 })
  })

  test('a wrong secret is refused by the mock: the channel is taken out of rotation as for a 401, the client told so', async ({ assert }) => {
    const channel = await seedChannel({
      name: 'bedrock-wrong',
      provider: 'bedrock',
      baseUrl: `${mock.origin}?region=us-east-1`,
      apiKey: 'AKIDMOCKBEDROCK:not-the-secret',
      models: [],
      modelMapping: { 'claude-wrong': 'anthropic.claude-wrong-v1:0' },
    })
    const user = await seedUser()
    const answer = await post('/v1/chat/completions', { model: 'claude-wrong', messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 502)
    const error: any = await answer.json()
    assert.include(error.error.message, "rejected the channel's credentials (HTTP 401)")
    assert.notInclude(JSON.stringify(error), 'not-the-secret')
    assert.isFalse(mock.lastRequest().signed)
    // Out of rotation at once; the row is written in the background
    assert.isFalse((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled)
    let row = await db.from('channels').where('id', channel.id).first()
    for (let i = 0; i < 50 && row.enabled; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      row = await db.from('channels').where('id', channel.id).first()
    }
    assert.isFalse(row.enabled)
    assert.include(row.disabled_reason, 'HTTP 401')
    assert.include(row.disabled_reason, 'signature we calculated does not match')
  })

  test('session token credentials; the panel Test and channel:test; channel:create takes a bare region', async ({ assert }) => {
    const sts = new MockBedrock({ region: 'eu-west-1', accessKeyId: 'ASIAMOCK', secretAccessKey: 'sts-secret', sessionToken: 'FwoGZXIvYXdzEBY//token==' })
    await sts.start()
    try {
      const channel = await seedChannel({
        name: 'bedrock-sts',
        provider: 'bedrock',
        baseUrl: `${sts.origin}?region=eu-west-1`,
        apiKey: 'ASIAMOCK:sts-secret:FwoGZXIvYXdzEBY//token==',
        models: [],
        modelMapping: { 'claude-sts': 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0' },
      })
      const result = await testChannel(channel.id)
      assert.isTrue(result.ok, String(result.error))
      assert.equal(result.text, 'Hello from Bedrock.')
      assert.isTrue(sts.lastRequest().signed)
      assert.equal(sts.lastRequest().headers['x-amz-security-token'], 'FwoGZXIvYXdzEBY//token==')

      const command = await run(ChannelTest, [String(channel.id)])
      command.assertSucceeded()
      assert.equal(sts.lastRequest().path, '/foundation-models')
      assert.isTrue(sts.lastRequest().signed)
    } finally {
      await sts.stop()
    }

    const created = await run(ChannelCreate, ['--name', 'bedrock-cli', '--provider', 'bedrock', '--base-url', 'us-west-2', '--api-key', 'AKID:SECRET', '--models', 'claude-*'])
    created.assertSucceeded()
    const row = await db.from('channels').where('name', 'bedrock-cli').first()
    assert.equal(row.base_url, 'https://bedrock-runtime.us-west-2.amazonaws.com')
    assert.notInclude(JSON.stringify(row), 'SECRET')
    const refused = await run(ChannelCreate, ['--name', 'bedrock-bad', '--provider', 'bedrock', '--base-url', 'http://127.0.0.1:9', '--api-key', 'AKID:SECRET', '--models', 'claude-*'])
    assert.equal(refused.exitCode, 1)
    await refreshCaches()
  })
})
