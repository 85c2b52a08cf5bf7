import { test } from '@japa/runner'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, gateway, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/**
 * Audio through the generation endpoints: gpt-4o-audio-preview / gpt-audio
 * on chat completions (`input_audio` parts heard, `modalities: ["text",
 * "audio"]` spoken) report their audio tokens in `prompt_tokens_details` and
 * `completion_tokens_details`, Gemini in its per-modality breakdowns. A model
 * priced with audio prices (`price:set --audio-input / --audio-output`, as
 * for the Realtime API) bills those tokens at them, whichever way the answer
 * came (whole, streamed, passed through or translated), the rest at the
 * token prices.
 */

const auth = (key: string) => ({ authorization: `Bearer ${key}` })
const hello = [{ role: 'user', content: 'hello there' }]
/** USD per 1M tokens, as pico-USD per token */
const M = 1_000_000n

/** A chat answer reporting `usage`, whole or as a stream whose last chunk carries it. */
function chatWith(usage: Record<string, unknown>, stream: boolean) {
  const message = { role: 'assistant', content: 'Hi.', audio: { id: 'audio_1', data: 'UklGRg==', transcript: 'Hi.', expires_at: 1 } }
  if (!stream) {
    return { body: JSON.stringify({ id: 'chatcmpl-a', object: 'chat.completion', created: 1, model: 'raw', choices: [{ index: 0, message, finish_reason: 'stop' }], usage }) }
  }
  const chunk = (extra: Record<string, unknown>) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'raw', ...extra })}\n\n`
  return {
    headers: { 'content-type': 'text/event-stream' },
    chunks: [
      chunk({ choices: [{ index: 0, delta: { role: 'assistant', audio: { id: 'audio_1', transcript: 'Hi.' } }, finish_reason: null }] }),
      chunk({ choices: [{ index: 0, delta: { content: 'Hi.' }, finish_reason: null }] }),
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
      chunk({ choices: [], usage }),
      'data: [DONE]\n\n',
    ],
  }
}

/** A Gemini answer reporting `usageMetadata`, whole or as an SSE stream whose last event carries it. */
function geminiWith(usageMetadata: Record<string, unknown>, stream: boolean) {
  const answer = { candidates: [{ content: { role: 'model', parts: [{ text: 'Hi.' }] }, finishReason: 'STOP', index: 0 }], usageMetadata, modelVersion: 'raw' }
  if (!stream) return { body: JSON.stringify(answer) }
  return { headers: { 'content-type': 'text/event-stream' }, chunks: [`data: ${JSON.stringify(answer)}\r\n\r\n`] }
}

test.group('Audio tokens of chat and Gemini answers at the model audio prices', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-audio*', 'gpt-4o-mini'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['gemini-*'] })
    await setPrice({ model: 'gpt-audio*', input: '2.5', output: '10', audioInput: '40', audioOutput: '80' })
    await setPrice({ model: 'gpt-4o-mini', input: '2.5', output: '10' })
    await setPrice({ model: 'gemini-*', input: '0.3', output: '2.5', cacheRead: '0.03', audioInput: '1', audioOutput: '10' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('chat completions: audio heard and spoken billed at the audio prices, whole and streamed; the cost OpenRouter accounting states is the one billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const usage = {
      prompt_tokens: 100,
      completion_tokens: 60,
      total_tokens: 160,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 30 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 50 },
    }
    // 70 text in x $2.5 + 30 audio in x $40 + 10 text out x $10 + 50 audio out x $80 (per 1M)
    const expected = 70n * 2_500_000n + 30n * 40n * M + 10n * 10n * M + 50n * 80n * M
    for (const stream of [false, true]) {
      const answer = await post(
        '/v1/chat/completions',
        {
          model: 'gpt-audio-mini',
          modalities: ['text', 'audio'],
          audio: { voice: 'alloy', format: 'wav' },
          messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } }] }],
          stream,
          ...(stream ? { stream_options: { include_usage: true } } : {}),
          usage: { include: true },
          mock: { raw: chatWith(usage, stream) },
        },
        auth(user.key)
      )
      assert.equal(answer.status, 200)
      const text = await answer.text()
      const rows = await usageRows(user.userId)
      const row = rows[rows.length - 1]
      assert.include(row, { model: 'gpt-audio-mini', prompt_tokens: 100, completion_tokens: 60, estimated: false }, `stream=${stream}`)
      assert.equal(toPico(row.cost), expected, `stream=${stream}`)
      // OpenRouter's usage accounting (usage.include) states the same cost
      assert.include(text, '"cost":0.005475', `stream=${stream}`)
    }
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('a model without audio prices bills audio tokens at its token prices; counts past their totals are held to them, unbelievable ones ignored', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const plain = { prompt_tokens: 100, completion_tokens: 60, total_tokens: 160, prompt_tokens_details: { audio_tokens: 30 }, completion_tokens_details: { audio_tokens: 50 } }
    const answer = await post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: hello, mock: { raw: chatWith(plain, false) } }, auth(user.key))
    assert.equal(answer.status, 200)
    await answer.text()
    let rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), 100n * 2_500_000n + 60n * 10n * M)

    // More audio than tokens in all: all of them audio, no more
    const over = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { audio_tokens: 900 }, completion_tokens_details: { audio_tokens: 700 } }
    await (await post('/v1/chat/completions', { model: 'gpt-audio', messages: hello, mock: { raw: chatWith(over, false) } }, auth(user.key))).text()
    rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), 10n * 40n * M + 5n * 80n * M)

    // A negative or absurd audio count is no audio: the tokens at the token prices
    for (const bad of [-5, 1e12, 'many']) {
      const weird = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { audio_tokens: bad }, completion_tokens_details: { audio_tokens: bad } }
      const reply = await post('/v1/chat/completions', { model: 'gpt-audio', messages: hello, mock: { raw: chatWith(weird, false) } }, auth(user.key))
      assert.equal(reply.status, 200, String(bad))
      await reply.text()
      rows = await usageRows(user.userId)
      assert.include(rows[rows.length - 1], { prompt_tokens: 10, completion_tokens: 5 }, String(bad))
      assert.equal(toPico(rows[rows.length - 1].cost), 10n * 2_500_000n + 5n * 10n * M, String(bad))
    }
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('Gemini: the AUDIO modality of the prompt, its cached part and the answer, passed through and translated', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const usageMetadata = {
      promptTokenCount: 200,
      candidatesTokenCount: 40,
      totalTokenCount: 240,
      cachedContentTokenCount: 100,
      promptTokensDetails: [
        { modality: 'TEXT', tokenCount: 50 },
        { modality: 'AUDIO', tokenCount: 150 },
      ],
      cacheTokensDetails: [{ modality: 'AUDIO', tokenCount: 100 }],
      candidatesTokensDetails: [{ modality: 'AUDIO', tokenCount: 40 }],
    }
    // 100 cached (all audio) at the cache-read $0.03; of the other 100, 50 audio at $1 and 50 text at $0.3; 40 audio out at $10
    const expected = 100n * 30_000n + 50n * M + 50n * 300_000n + 40n * 10n * M

    const native = await post(
      '/v1beta/models/gemini-2.5-flash-audio:generateContent',
      { contents: [{ role: 'user', parts: [{ inlineData: { mimeType: 'audio/wav', data: 'UklGRg==' } }] }], mock: { raw: geminiWith(usageMetadata, false) } },
      { 'x-goog-api-key': user.key }
    )
    assert.equal(native.status, 200)
    await native.text()
    let rows = await usageRows(user.userId)
    assert.include(rows[rows.length - 1], { endpoint: 'gemini.generateContent', prompt_tokens: 200, completion_tokens: 40, cached_tokens: 100 })
    assert.equal(toPico(rows[rows.length - 1].cost), expected)

    // An OpenAI client's chat to a google channel (translated), streamed
    mock.script({ raw: geminiWith(usageMetadata, true) })
    const translated = await post('/v1/chat/completions', { model: 'gemini-2.5-flash-audio', messages: hello, stream: true }, auth(user.key))
    assert.equal(translated.status, 200)
    await translated.text()
    rows = await usageRows(user.userId)
    assert.include(rows[rows.length - 1], { endpoint: 'chat.completions', provider: 'google', prompt_tokens: 200, completion_tokens: 40 })
    assert.equal(toPico(rows[rows.length - 1].cost), expected)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
  })

  test('an answer asked to speak is held at the audio output price: a second call the balance cannot pay for is refused meanwhile', async ({ assert }) => {
    // $0.05 pays for 625 audio tokens ($80 per 1M) but 5,000 text ones ($10): held at the text price, 1,000
    // tokens of a spoken answer held $0.01 and the second call was let in, both to be billed ~$0.08.
    const user = await seedUser({ balance: '0.05' })
    const usage = { prompt_tokens: 10, completion_tokens: 1000, total_tokens: 1010, completion_tokens_details: { audio_tokens: 1000 } }
    const spoken = (raw: Record<string, unknown>) => ({
      model: 'gpt-audio',
      modalities: ['text', 'audio'],
      audio: { voice: 'alloy', format: 'wav' },
      max_tokens: 1000,
      messages: hello,
      stream: true,
      stream_options: { include_usage: true },
      mock: { raw },
    })
    const first = post('/v1/chat/completions', spoken({ ...chatWith(usage, true), chunk_delay_ms: 150 }), auth(user.key))
    const gw = await gateway()
    for (let i = 0; i < 100 && (gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n) === 0n; i++) await new Promise((r) => setTimeout(r, 10))
    const held = gw.catalog.cachedUser(user.userId)!.reservedPico
    assert.isTrue(held >= 1000n * 80n * M, `held ${held}: not at the audio output price`)

    const second = await post('/v1/chat/completions', spoken(chatWith(usage, true)), auth(user.key))
    assert.equal(second.status, 402)
    assert.include(((await second.json()) as any).error, { code: 'insufficient_balance' })
    const answer = await first
    assert.equal(answer.status, 200)
    await answer.text()
    assert.equal(gw.catalog.cachedUser(user.userId)!.reservedPico, 0n)
  })

  test('a Gemini body passed through in snake_case (generation_config.response_modalities ["AUDIO"]) is held at the audio output price too', async ({ assert }) => {
    // Google takes either spelling; read as camelCase only, 1,000 tokens of this spoken answer were held at the
    // $2.50 text price, not the $10 audio one.
    const user = await seedUser({ balance: '1' })
    const request = {
      contents: [{ role: 'user', parts: [{ text: 'Say hello' }] }],
      generation_config: { response_modalities: ['AUDIO'], max_output_tokens: 1000 },
    }
    mock.script({ chunk_delay_ms: 150 })
    const pending = post('/v1beta/models/gemini-2.5-flash-tts:streamGenerateContent?alt=sse', request, { 'x-goog-api-key': user.key })
    const gw = await gateway()
    for (let i = 0; i < 100 && (gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n) === 0n; i++) await new Promise((r) => setTimeout(r, 10))
    const held = gw.catalog.cachedUser(user.userId)!.reservedPico
    assert.isTrue(held >= 1000n * 10n * M, `held ${held}: not at the audio output price`)
    const answer = await pending
    assert.equal(answer.status, 200)
    await answer.text()
    assert.equal(gw.catalog.cachedUser(user.userId)!.reservedPico, 0n)
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).generation_config, request.generation_config)
  })
})
