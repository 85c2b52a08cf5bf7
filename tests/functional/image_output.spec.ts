import { test } from '@japa/runner'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { IMAGE_TOKENS, PNG_1X1 } from '#tests/fixtures/mock_upstream/scenario'
import { balanceAndLedger, gateway, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'
import { answerBudget, answerLimits } from '#gateway/upstream/answer_limits'

/**
 * Image output through the generation endpoints: Google's image models
 * (gemini-2.5-flash-image, "nano banana") answer with `inlineData` image
 * parts, which a chat client reads as OpenRouter's and LiteLLM's
 * `message.images` (`delta.images` streamed), a Gemini client on an
 * OpenAI-compatible (OpenRouter) channel as `inlineData` again. The image's
 * tokens (Gemini's IMAGE modality, OpenRouter's `image_tokens`) are billed
 * at the model's image output price ($30 per 1M against $2.50 for text).
 * Anthropic's Messages format has no image output: the answer says what it
 * left out.
 */

const auth = (key: string) => ({ authorization: `Bearer ${key}` })
const draw = [{ role: 'user', content: 'Draw a banana' }]
const M = 1_000_000n
/** The mock's answer: 5 words of text ("tok0 " ... "tok4 ") and one image */
const TEXT = 'tok0 tok1 tok2 tok3 tok4 '
/** The mock's prompt (10 + 2 per content) of one message: 12 tokens at $0.30, 5 text tokens at $2.50, the image's at $30 (per 1M) */
const COST = 12n * 300_000n + 5n * 2_500_000n + BigInt(IMAGE_TOKENS) * 30n * M
/** The same answer at the output price alone: what it cost before image output had a price */
const COST_AT_OUTPUT_PRICE = 12n * 300_000n + BigInt(5 + IMAGE_TOKENS) * 2_500_000n
const DATA_URL = `data:image/png;base64,${PNG_1X1}`

/** The JSON of each `data:` line of an SSE body (not [DONE]) */
function sseData(text: string): any[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: ') && line !== 'data: [DONE]')
    .map((line) => JSON.parse(line.slice(6)))
}

test.group('Image output (Gemini image models) through chat completions and Gemini, billed at the image output price', (group) => {
  let mock: MockUpstream
  const sent = () => JSON.parse(mock.lastRequest()!.body)

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['gemini-*'] })
    await seedChannel({ name: 'openrouter', provider: 'openrouter', baseUrl: mock.url, models: ['or-*'] })
    await setPrice({ model: 'gemini-*-image*', input: '0.3', output: '2.5', imageOutput: '30' })
    await setPrice({ model: 'or-*-image', input: '0.3', output: '2.5', imageOutput: '30' })
    await setPrice({ model: 'gemini-2.5-flash', input: '0.3', output: '2.5' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('chat, whole: modalities and image_config reach Gemini as responseModalities and imageConfig; the image comes back in message.images, its tokens billed at the image output price', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await post(
      '/v1/chat/completions',
      { model: 'gemini-2.5-flash-image', messages: draw, modalities: ['image', 'text'], image_config: { aspect_ratio: '16:9', image_size: '2K' }, usage: { include: true } },
      auth(user.key)
    )
    assert.equal(answer.status, 200)
    const body = (await answer.json()) as any
    assert.deepEqual(sent().generationConfig.responseModalities, ['IMAGE', 'TEXT'])
    assert.deepEqual(sent().generationConfig.imageConfig, { aspectRatio: '16:9', imageSize: '2K' })
    const message = body.choices[0].message
    assert.equal(message.content, TEXT)
    assert.deepEqual(message.images, [{ type: 'image_url', image_url: { url: DATA_URL }, index: 0 }])
    assert.equal(body.usage.completion_tokens, 5 + IMAGE_TOKENS)
    assert.equal(body.usage.completion_tokens_details.image_tokens, IMAGE_TOKENS)
    // OpenRouter's usage accounting states the cost billed
    assert.closeTo(body.usage.cost, Number(COST) / 1e12, 1e-9)

    const rows = await usageRows(user.userId)
    assert.include(rows[0], { endpoint: 'chat.completions', provider: 'google', prompt_tokens: 12, completion_tokens: 5 + IMAGE_TOKENS, estimated: false })
    assert.equal(toPico(rows[0].cost), COST)
    assert.notEqual(COST, COST_AT_OUTPUT_PRICE)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
  })

  test('a large image answer translated holds its copies in the budget of answers until it is written: past it a 503 overloaded, the budget given back', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const saved = answerLimits.inflightBytes
    const ask = () =>
      post('/v1/chat/completions', { model: 'gemini-2.5-flash-image', messages: draw, modalities: ['image', 'text'] }, auth(user.key))
    // A 6 MB image is an 8 MB answer: 7 MB past the free MB while read; parsed and encoded for chat, 14 MB more.
    mock.script({ image_bytes: 6_000_000 })
    try {
      answerLimits.inflightBytes = 12 * 1024 * 1024
      const refused = await ask()
      assert.equal(refused.status, 503)
      const body: any = await refused.json()
      assert.equal(body.error.code, 'overloaded')
      assert.equal(answerBudget.used, 0)
      answerLimits.inflightBytes = 24 * 1024 * 1024
      mock.script({ image_bytes: 6_000_000 })
      const served = await ask()
      assert.equal(served.status, 200)
      const answer: any = await served.json()
      assert.lengthOf(answer.choices[0].message.images, 1)
      assert.equal(answerBudget.used, 0)
    } finally {
      answerLimits.inflightBytes = saved
    }
  })

  test('chat, streamed: a 1.5 MB image arrives whole in one delta.images chunk, after the text; billed as the whole answer', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const bytes = 1_500_000
    // A translated body carries no `mock`: the upstream is told apart.
    mock.script({ image_bytes: bytes })
    const answer = await post(
      '/v1/chat/completions',
      { model: 'gemini-2.5-flash-image', messages: draw, modalities: ['image', 'text'], stream: true, stream_options: { include_usage: true } },
      auth(user.key)
    )
    assert.equal(answer.status, 200)
    const chunks = sseData(await answer.text())
    const withImages = chunks.filter((c) => c.choices?.[0]?.delta?.images)
    assert.lengthOf(withImages, 1)
    const image = withImages[0].choices[0].delta.images
    assert.lengthOf(image, 1)
    assert.equal(image[0].type, 'image_url')
    const url: string = image[0].image_url.url
    assert.isTrue(url.startsWith('data:image/png;base64,iVBORw0KGg'), url.slice(0, 40))
    assert.equal(Buffer.from(url.slice(url.indexOf(',') + 1), 'base64').length, bytes)
    // Text order kept: every content delta before the image, none after
    const at = chunks.indexOf(withImages[0])
    const text = (list: any[]) => list.map((c) => c.choices?.[0]?.delta?.content ?? '').join('')
    assert.equal(text(chunks.slice(0, at)), TEXT)
    assert.equal(text(chunks.slice(at + 1)), '')
    const usage = chunks[chunks.length - 1].usage
    assert.equal(usage.completion_tokens_details.image_tokens, IMAGE_TOKENS)

    const rows = await usageRows(user.userId)
    assert.include(rows[0], { prompt_tokens: 12, completion_tokens: 5 + IMAGE_TOKENS, estimated: false })
    assert.equal(toPico(rows[0].cost), COST)
  })

  test('chat without modalities: nothing is added by model name (Google\'s image models answer images by default, as LiteLLM relies on); a text model without an image price bills image tokens at its output price', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await post('/v1/chat/completions', { model: 'gemini-2.5-flash-image', messages: draw }, auth(user.key))
    assert.equal(answer.status, 200)
    await answer.text()
    assert.notProperty(sent().generationConfig ?? {}, 'responseModalities')

    // A model priced without an image output price: its image tokens cost the output price
    const plain = await post('/v1/chat/completions', { model: 'gemini-2.5-flash', messages: draw, modalities: ['image', 'text'] }, auth(user.key))
    assert.equal(plain.status, 200)
    assert.lengthOf(((await plain.json()) as any).choices[0].message.images, 1)
    const rows = await usageRows(user.userId)
    assert.equal(toPico(rows[1].cost), COST_AT_OUTPUT_PRICE)
  })

  test('Gemini client on a Gemini channel (passed through), whole and streamed: inlineData as Google sent it, billed at the image output price', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const request = { contents: [{ role: 'user', parts: [{ text: 'Draw a banana' }] }], generationConfig: { responseModalities: ['TEXT', 'IMAGE'] } }
    const whole = await post('/v1beta/models/gemini-2.5-flash-image:generateContent', request, { 'x-goog-api-key': user.key })
    assert.equal(whole.status, 200)
    const body = (await whole.json()) as any
    assert.deepEqual(body.candidates[0].content.parts[1], { inlineData: { mimeType: 'image/png', data: PNG_1X1 } })

    const streamed = await post('/v1beta/models/gemini-2.5-flash-image:streamGenerateContent?alt=sse', request, { 'x-goog-api-key': user.key })
    assert.equal(streamed.status, 200)
    const chunks = sseData(await streamed.text())
    assert.isTrue(chunks.some((c) => c.candidates?.[0]?.content?.parts?.[0]?.inlineData?.data === PNG_1X1))

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    for (const row of rows) {
      assert.include(row, { prompt_tokens: 12, completion_tokens: 5 + IMAGE_TOKENS, estimated: false })
      assert.equal(toPico(row.cost), COST, row.endpoint)
    }
  })

  test('Gemini client on an OpenRouter channel (translated): responseModalities and imageConfig go as modalities and image_config, message.images / delta.images come back as inlineData parts, image_tokens billed at the image price', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const request = {
      contents: [{ role: 'user', parts: [{ text: 'Draw a banana' }] }],
      generationConfig: { responseModalities: ['TEXT', 'IMAGE'], imageConfig: { aspectRatio: '1:1' } },
    }
    const whole = await post('/v1beta/models/or-flash-image:generateContent', request, { 'x-goog-api-key': user.key })
    assert.equal(whole.status, 200)
    const upstream = sent()
    assert.deepEqual(upstream.modalities, ['text', 'image'])
    assert.deepEqual(upstream.image_config, { aspect_ratio: '1:1' })
    const body = (await whole.json()) as any
    assert.deepEqual(body.candidates[0].content.parts, [{ text: TEXT }, { inlineData: { mimeType: 'image/png', data: PNG_1X1 } }])
    assert.deepEqual(body.usageMetadata.candidatesTokensDetails, [
      { modality: 'TEXT', tokenCount: 5 },
      { modality: 'IMAGE', tokenCount: IMAGE_TOKENS },
    ])

    const streamed = await post('/v1beta/models/or-flash-image:streamGenerateContent?alt=sse', request, { 'x-goog-api-key': user.key })
    assert.equal(streamed.status, 200)
    const chunks = sseData(await streamed.text())
    const parts = chunks.flatMap((c) => c.candidates?.[0]?.content?.parts ?? [])
    const imageAt = parts.findIndex((p) => p.inlineData)
    assert.deepEqual(parts[imageAt], { inlineData: { mimeType: 'image/png', data: PNG_1X1 } })
    assert.equal(parts.slice(0, imageAt).map((p) => p.text ?? '').join(''), TEXT)

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    for (const row of rows) {
      assert.include(row, { provider: 'openrouter', prompt_tokens: 12, completion_tokens: 5 + IMAGE_TOKENS, estimated: false })
      assert.equal(toPico(row.cost), COST)
    }
  })

  test('Anthropic Messages has no image output: the image is left out with a note in its place (whole and streamed), and billed as the upstream billed it', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    // Google's image models answer images unasked; Messages has no field to ask or refuse them.
    const geminiAnswer = {
      candidates: [{ content: { role: 'model', parts: [{ text: 'Here it is.' }, { inlineData: { mimeType: 'image/png', data: PNG_1X1 } }] }, finishReason: 'STOP', index: 0 }],
      usageMetadata: { promptTokenCount: 12, candidatesTokenCount: 3 + IMAGE_TOKENS, totalTokenCount: 15 + IMAGE_TOKENS, candidatesTokensDetails: [{ modality: 'TEXT', tokenCount: 3 }, { modality: 'IMAGE', tokenCount: IMAGE_TOKENS }] },
      modelVersion: 'gemini-2.5-flash-image',
    }
    const headers = { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    mock.script({ raw: { body: JSON.stringify(geminiAnswer) } })
    const whole = await post('/v1/messages', { model: 'gemini-2.5-flash-image', max_tokens: 2000, messages: draw }, headers)
    assert.equal(whole.status, 200)
    const body = (await whole.json()) as any
    assert.equal(body.content[0].text, 'Here it is.')
    assert.equal(body.content[1].type, 'text')
    assert.include(body.content[1].text, 'cannot carry')
    assert.include(body.content[1].text, 'image/png')
    assert.notInclude(JSON.stringify(body), PNG_1X1)

    mock.script({ raw: { headers: { 'content-type': 'text/event-stream' }, chunks: [`data: ${JSON.stringify(geminiAnswer)}\r\n\r\n`] } })
    const streamed = await post('/v1/messages', { model: 'gemini-2.5-flash-image', max_tokens: 2000, messages: draw, stream: true }, headers)
    assert.equal(streamed.status, 200)
    const events = sseData(await streamed.text())
    const texts = events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text)
    assert.equal(texts[0], 'Here it is.')
    assert.include(texts[1], 'cannot carry')
    // Blocks numbered in order, each started and stopped
    assert.deepEqual(
      events.filter((e) => e.type === 'content_block_start').map((e) => e.index),
      [0, 1]
    )
    assert.equal(events.filter((e) => e.type === 'content_block_stop').length, 2)
    assert.equal(events[events.length - 1].type, 'message_stop')

    const rows = await usageRows(user.userId)
    for (const row of rows) assert.equal(toPico(row.cost), 12n * 300_000n + 3n * 2_500_000n + BigInt(IMAGE_TOKENS) * 30n * M)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('an answer that may be an image is held at the image output price: a second call the balance cannot pay for is refused meanwhile', async ({ assert }) => {
    // $0.03 pays for 1,000 image tokens ($30 per 1M) but 12,000 text ones ($2.50): held at the text price, a
    // 1,300-token image answer held $0.003 and a second one was let in, both to be billed ~$0.039.
    const user = await seedUser({ balance: '0.03' })
    const ask = (extra: Record<string, unknown>) => ({ model: 'gemini-2.5-flash-image', messages: draw, max_tokens: 1300, modalities: ['image', 'text'], stream: true, ...extra })
    mock.script({ chunk_delay_ms: 150 })
    const first = post('/v1/chat/completions', ask({}), auth(user.key))
    const gw = await gateway()
    for (let i = 0; i < 100 && (gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n) === 0n; i++) await new Promise((r) => setTimeout(r, 10))
    const held = gw.catalog.cachedUser(user.userId)!.reservedPico
    assert.isTrue(held >= 1300n * 30n * M, `held ${held}: not at the image output price`)

    const second = await post('/v1/chat/completions', ask({}), auth(user.key))
    assert.equal(second.status, 402)
    assert.include(((await second.json()) as any).error, { code: 'insufficient_balance' })
    const answer = await first
    assert.equal(answer.status, 200)
    await answer.text()
    assert.equal(gw.catalog.cachedUser(user.userId)!.reservedPico, 0n)

    // Asked for text only, the same model is held at its text price
    const other = await seedUser({ balance: '1' })
    mock.script({ chunk_delay_ms: 150 })
    const text = post('/v1/chat/completions', ask({ modalities: ['text'] }), auth(other.key))
    for (let i = 0; i < 100 && (gw.catalog.cachedUser(other.userId)?.reservedPico ?? 0n) === 0n; i++) await new Promise((r) => setTimeout(r, 10))
    const textHeld = gw.catalog.cachedUser(other.userId)!.reservedPico
    assert.isTrue(textHeld < 1300n * 30n * M, `held ${textHeld} for a text answer`)
    await (await text).text()
  })
  test('an image answer without max tokens holds one image per candidate, not the default 1,024 tokens: a balance between the two admits one call, not two', async ({ assert }) => {
    // $0.035 is more than 1,024 tokens at $30 per 1M ($0.0307) and less than one image's 1,290 ($0.0387): held
    // at the default allowance, a second call was let in beside the first, and their images took the balance below zero.
    const gw = await gateway()
    const heldOf = async (userId: number) => {
      for (let i = 0; i < 100 && (gw.catalog.cachedUser(userId)?.reservedPico ?? 0n) === 0n; i++) await new Promise((r) => setTimeout(r, 10))
      return gw.catalog.cachedUser(userId)!.reservedPico
    }
    const user = await seedUser({ balance: '0.035' })
    const ask = { model: 'gemini-2.5-flash-image', messages: draw, modalities: ['image', 'text'], stream: true }
    mock.script({ chunk_delay_ms: 150 })
    const first = post('/v1/chat/completions', ask, auth(user.key))
    const held = await heldOf(user.userId)
    assert.isTrue(held >= BigInt(IMAGE_TOKENS) * 30n * M, `held ${held}: less than one image`)
    const second = await post('/v1/chat/completions', ask, auth(user.key))
    assert.equal(second.status, 402)
    assert.include(((await second.json()) as any).error, { code: 'insufficient_balance' })
    await (await first).text()
    assert.equal(gw.catalog.cachedUser(user.userId)!.reservedPico, 0n)

    // Gemini's own format, two candidates, no generationConfig bound: two images held
    const gemini = await seedUser({ balance: '1' })
    mock.script({ chunk_delay_ms: 150 })
    const request = { contents: [{ role: 'user', parts: [{ text: 'Draw a banana' }] }], generationConfig: { candidateCount: 2 } }
    const streamed = post('/v1beta/models/gemini-2.5-flash-image:streamGenerateContent?alt=sse', request, { 'x-goog-api-key': gemini.key })
    const twoHeld = await heldOf(gemini.userId)
    assert.isTrue(twoHeld >= 2n * BigInt(IMAGE_TOKENS) * 30n * M, `held ${twoHeld}: less than two images`)
    await (await streamed).text()

    // A text model holds its default allowance as before
    const text = await seedUser({ balance: '1' })
    mock.script({ chunk_delay_ms: 150 })
    const plain = post('/v1/chat/completions', { model: 'gemini-2.5-flash', messages: draw, stream: true }, auth(text.key))
    const textHeld = await heldOf(text.userId)
    assert.isTrue(textHeld < 1100n * 2_500_000n, `held ${textHeld} for a text model`)
    await (await plain).text()
    assert.deepEqual(await ledgerProblems(), [])
  })
})
