import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { toFile } from 'openai'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { IMAGE_TOKENS } from '#tests/fixtures/mock_upstream/scenario'
import { anthropic } from '#tests/clients'
import { balanceAndLedger, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * A batch pays what the same requests pay one by one, at the batch
 * percentage: the one-hour cache writes and web searches of a message
 * batch's results, the audio tokens of a chat batch's answers and the web
 * searches of a Responses batch's answers too (batch_output.ts). They were
 * summed as plain tokens (1h writes at the 5-minute price, audio at the text
 * prices) or not at all (searches): a batch of searching requests cost
 * what it would have without them.
 */

/** pico-USD per token of a price per 1M tokens, and per USD */
const PER_TOKEN = 1_000_000n
const PER_USD = 1_000_000_000_000n
/** A batch pays half (BATCH_PRICE_PERCENT's default) */
const half = (pico: bigint) => (pico * 50n + 50n) / 100n

test.group('Batches bill one-hour cache writes, web searches and audio tokens', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-sonnet-4'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-audio', 'gpt-5', 'gpt-4o-search-preview', 'gemini-2.5-flash-image'] })
    await setPrice({ model: 'claude-sonnet-4', input: '3', output: '15', cacheRead: '0.3', cacheWrite: '3.75', cacheWrite1h: '6', perWebSearch: '0.01' })
    await setPrice({ model: 'gpt-audio', input: '2.5', output: '10', audioInput: '40', audioOutput: '80' })
    await setPrice({ model: 'gpt-5', input: '2', output: '8', perWebSearch: '0.01' })
    await setPrice({ model: 'gpt-4o-search-preview', input: '2.5', output: '10', perWebSearch: '0.025' })
    await setPrice({ model: 'gemini-2.5-flash-image', input: '0.3', output: '2.5', imageOutput: '30' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('a message batch: its results\' one-hour cache writes at their price and its web searches per search', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = anthropic(user.key)
    const usage = {
      input_tokens: 100,
      output_tokens: 20,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 1000,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 1000 },
      server_tool_use: { web_search_requests: 3 },
    }
    const requests = [0, 1].map((i) => ({
      custom_id: `req-${i}`,
      params: { model: 'claude-sonnet-4', max_tokens: 50, messages: [{ role: 'user' as const, content: 'search it' }], mock_usage: usage },
    }))
    const batch = await client.messages.batches.create({ requests, mock_polls: 0 } as any)
    assert.include(await client.messages.batches.retrieve(batch.id), { processing_status: 'ended' })

    // Each request as /v1/messages bills it: 100 in at $3, 1,000 one-hour writes at $6, 20 out at $15, 3 searches at $0.01.
    const each = (100n * 3n + 1000n * 6n + 20n * 15n) * PER_TOKEN + 3n * (PER_USD / 100n)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'messages.batch', prompt_tokens: 2200, completion_tokens: 40, cache_write_tokens: 2000 })
    assert.equal(toPico(rows[0].cost), half(2n * each))
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), 10n * PER_USD - half(2n * each))
  })

  test('an OpenAI chat batch: its answers\' audio tokens at the audio prices', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const usage = {
      prompt_tokens: 100,
      completion_tokens: 50,
      total_tokens: 150,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 60 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 40 },
    }
    const lines = [0, 1].map((i) =>
      JSON.stringify({ custom_id: `req-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-audio', messages: [{ role: 'user', content: 'say it' }], mock_usage: usage } })
    )
    const file = await client.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), 'in.jsonl'), purpose: 'batch' })
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '0' } })
    assert.include(await client.batches.retrieve(batch.id), { status: 'completed' })

    // Each line as /v1/chat/completions bills it: 40 text in at $2.5, 60 audio in at $40, 10 text out at $10, 40 audio out at $80.
    const each = (40n * 25n) / 10n * PER_TOKEN + (60n * 40n + 10n * 10n + 40n * 80n) * PER_TOKEN
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', prompt_tokens: 200, completion_tokens: 100 })
    assert.equal(toPico(rows[0].cost), half(2n * each))
  })

  test('an OpenAI Responses batch: its answers\' web_search_call items per search', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const usage = { input_tokens: 100, output_tokens: 30, total_tokens: 130 }
    const output = [
      { type: 'web_search_call', id: 'ws_1', status: 'completed', action: { type: 'search', query: 'a' } },
      { type: 'web_search_call', id: 'ws_2', status: 'completed', action: { type: 'search', query: 'b' } },
      { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Found.', annotations: [] }] },
    ]
    const lines = [0, 1, 2].map((i) =>
      JSON.stringify({
        custom_id: `req-${i}`,
        method: 'POST',
        url: '/v1/responses',
        body: { model: 'gpt-5', input: 'search it', tools: [{ type: 'web_search' }], mock_usage: usage, mock_output: output },
      })
    )
    const file = await client.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), 'in.jsonl'), purpose: 'batch' })
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/responses', completion_window: '24h', metadata: { mock_polls: '0' } })
    assert.include(await client.batches.retrieve(batch.id), { status: 'completed' })

    // Each line as /v1/responses bills it: 100 in at $2, 30 out at $8, 2 searches at $0.01.
    const each = (100n * 2n + 30n * 8n) * PER_TOKEN + 2n * (PER_USD / 100n)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', prompt_tokens: 300, completion_tokens: 90 })
    assert.equal(toPico(rows[0].cost), half(3n * each))
  })

  test('a message batch that may search holds its searches: refused when the balance cannot cover them', async ({ assert }) => {
    // 2 requests x 5 searches at $0.01, at half price: $0.05 held besides the tokens, more than $0.04.
    const user = await seedUser({ balance: '0.04' })
    const client = anthropic(user.key)
    const requests = [0, 1].map((i) => ({
      custom_id: `req-${i}`,
      params: {
        model: 'claude-sonnet-4',
        max_tokens: 50,
        tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 5 }],
        messages: [{ role: 'user' as const, content: 'search it' }],
      },
    }))
    let refused: any = null
    try {
      await client.messages.batches.create({ requests, mock_polls: 0 } as any)
    } catch (error) {
      refused = error
    }
    assert.equal(refused?.status, 402)
    assert.equal(refused?.error?.error?.type, 'billing_error')
    assert.include(refused?.error?.error?.message, 'this batch holds up to $0.05')
    // Without the tool, the same batch fits.
    const plain = await client.messages.batches.create({ requests: requests.map((r) => ({ ...r, params: { ...r.params, tools: undefined } })), mock_polls: 0 } as any)
    assert.include(plain, { processing_status: 'in_progress' })
  })
  test('an OpenAI batch whose lines may search or speak holds that too, as the requests alone would: refused when the balance cannot cover it', async ({ assert }) => {
    const batchOf = async (key: string, endpoint: '/v1/responses' | '/v1/chat/completions', bodies: Array<Record<string, unknown>>) => {
      const client = openai(key)
      const lines = bodies.map((body, i) => JSON.stringify({ custom_id: `req-${i}`, method: 'POST', url: endpoint, body }))
      const file = await client.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), 'in.jsonl'), purpose: 'batch' })
      try {
        return await client.batches.create({ input_file_id: file.id, endpoint, completion_window: '24h', metadata: { mock_polls: '5' } })
      } catch (error: any) {
        return error
      }
    }
    // 3 lines x 10 searches (a web_search tool without max_uses) at $0.01, at half price: $0.15 besides the tokens.
    const searcher = await seedUser({ balance: '0.1' })
    const searching = [0, 1, 2].map(() => ({ model: 'gpt-5', input: 'search it', max_output_tokens: 50, tools: [{ type: 'web_search' }] }))
    const refused = await batchOf(searcher.key, '/v1/responses', searching)
    assert.equal(refused?.status, 402, String(refused?.message))
    assert.include(refused?.error?.message, 'this batch holds up to $0.15')
    const plain = await batchOf(searcher.key, '/v1/responses', searching.map(({ tools: _tools, ...body }) => body))
    assert.include(plain, { object: 'batch' })

    // 3 spoken answers of up to 1,000 tokens at the $80 audio output price, at half price: $0.12 (at $10, $0.015).
    const speaker = await seedUser({ balance: '0.05' })
    const speaking = [0, 1, 2].map(() => ({ model: 'gpt-audio', max_tokens: 1000, modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' }, messages: [{ role: 'user', content: 'say hi' }] }))
    const spoken = await batchOf(speaker.key, '/v1/chat/completions', speaking)
    assert.equal(spoken?.status, 402, String(spoken?.message))
    assert.include(spoken?.error?.message, 'this batch holds up to $0.12')
    const written = await batchOf(speaker.key, '/v1/chat/completions', speaking.map(({ modalities: _m, audio: _a, ...body }) => body))
    assert.include(written, { object: 'batch' })
  })

  test('a chat batch of an image model holds its answers at the image output price, as each request alone holds them', async ({ assert }) => {
    // 3 answers of up to 1,000 tokens at the $30 image output price, at half price: $0.045 (at $2.50, under $0.004).
    const user = await seedUser({ balance: '0.03' })
    const client = openai(user.key)
    const lines = [0, 1, 2].map((i) =>
      JSON.stringify({ custom_id: `req-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gemini-2.5-flash-image', max_tokens: 1000, messages: [{ role: 'user', content: 'draw a banana' }] } })
    )
    const file = await client.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), 'in.jsonl'), purpose: 'batch' })
    const refused: any = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } }).catch((error) => error)
    assert.equal(refused?.status, 402, String(refused?.message))
    assert.include(refused?.error?.message, 'this batch holds up to $0.04')
    // Lines asking for text alone hold at the text price
    const textOnly = lines.map((line) => line.replace('"max_tokens":1000', '"max_tokens":1000,"modalities":["text"]'))
    const textFile = await client.files.create({ file: await toFile(Buffer.from(textOnly.join('\n') + '\n'), 'in.jsonl'), purpose: 'batch' })
    const batch = await client.batches.create({ input_file_id: textFile.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    assert.include(batch, { object: 'batch' })
  })

  test('a chat batch of image lines without max tokens holds one image a line at the image price, as the chat path holds each request', async ({ assert }) => {
    const gw = await gateway()
    const body = { model: 'gemini-2.5-flash-image', messages: [{ role: 'user', content: 'draw a banana' }] }
    // The chat path: one such request in flight holds its prompt (one token per 3 bytes at $0.30) and one image's
    // 1,290 tokens at $30 per 1M (access_policy.ts requestHold), not the default 1,024.
    const chatUser = await seedUser({ balance: '1' })
    const chatBody = JSON.stringify({ ...body, stream: true })
    mock.script({ chunk_delay_ms: 150 })
    const inFlight = post('/v1/chat/completions', chatBody, { authorization: `Bearer ${chatUser.key}` })
    let chatHold = 0n
    for (let i = 0; i < 100 && chatHold === 0n; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      chatHold = gw.catalog.cachedUser(chatUser.userId)?.reservedPico ?? 0n
    }
    await (await inFlight).text()
    const chatAnswerHold = chatHold - BigInt(Math.ceil(Buffer.byteLength(chatBody) / 3)) * 300_000n
    assert.equal(chatAnswerHold, BigInt(IMAGE_TOKENS) * 30n * PER_TOKEN)

    // A batch of three such lines (one asking for images, two naming no modalities) holds three of them, at half price.
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const lines = [0, 1, 2].map((i) =>
      JSON.stringify({ custom_id: `img-${i}`, method: 'POST', url: '/v1/chat/completions', body: i === 0 ? { ...body, modalities: ['image', 'text'] } : body })
    )
    const bytes = Buffer.from(lines.join('\n') + '\n')
    const file = await client.files.create({ file: await toFile(bytes, 'in.jsonl'), purpose: 'batch' })
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    const row = await db.from('batch_objects').where('public_id', batch.id).first()
    const expected = half(BigInt(Math.ceil(bytes.length / 3)) * 300_000n + 3n * chatAnswerHold)
    assert.equal(toPico(row.hold), expected)
    assert.equal(gw.batches.holds.heldFor(user.userId), expected)

    // A balance between three default allowances (1,024 tokens: $0.046 at half price) and three images ($0.058) is refused.
    const short = await seedUser({ balance: '0.05' })
    const shortClient = openai(short.key)
    const shortFile = await shortClient.files.create({ file: await toFile(bytes, 'in.jsonl'), purpose: 'batch' })
    const refused: any = await shortClient.batches
      .create({ input_file_id: shortFile.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
      .catch((error) => error)
    assert.equal(refused?.status, 402, String(refused?.message))
    assert.include(refused?.error?.message, 'this batch holds up to $0.058')

    // A model whose image tokens cost no more than its text holds the default allowance as before (gpt-5: $8 out).
    const textLines = lines.map((line) => line.replaceAll('gemini-2.5-flash-image', 'gpt-5'))
    const textBytes = Buffer.from(textLines.join('\n') + '\n')
    const textFile = await client.files.create({ file: await toFile(textBytes, 'in.jsonl'), purpose: 'batch' })
    const textBatch = await client.batches.create({ input_file_id: textFile.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    const textRow = await db.from('batch_objects').where('public_id', textBatch.id).first()
    assert.equal(toPico(textRow.hold), half(BigInt(Math.ceil(textBytes.length / 3)) * 2n * PER_TOKEN + 3n * 1024n * 8n * PER_TOKEN))
  })

  test("an OpenAI chat batch of a search model: each answer bills its one search, cited or not", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const usage = { prompt_tokens: 100, completion_tokens: 30, total_tokens: 130 }
    const cited = [{ type: 'url_citation', url_citation: { url: 'https://example.com', title: 'x', start_index: 0, end_index: 5 } }]
    const lines = [0, 1, 2].map((i) =>
      JSON.stringify({
        custom_id: `req-${i}`,
        method: 'POST',
        url: '/v1/chat/completions',
        body: { model: 'gpt-4o-search-preview', web_search_options: {}, messages: [{ role: 'user', content: 'search it' }], mock_usage: usage, mock_annotations: i < 2 ? cited : [] },
      })
    )
    const file = await client.files.create({ file: await toFile(Buffer.from(lines.join('\n') + '\n'), 'in.jsonl'), purpose: 'batch' })
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '0' } })
    assert.include(await client.batches.retrieve(batch.id), { status: 'completed' })
    // 3 x (100 in at $2.5, 30 out at $10), and each answer's search at $0.025 (the one citing nothing searched too)
    const tokens = 3n * (100n * 2_500_000n + 30n * 10n * PER_TOKEN)
    const rows = await usageRows(user.userId)
    assert.equal(toPico(rows[0].cost), half(tokens + 3n * 25_000_000_000n))
  })
})
