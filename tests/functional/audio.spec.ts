import { test } from '@japa/runner'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import { withApiLane } from '#gateway/http/api_lane'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import PriceSet from '#commands/price_set'
import { PanelClient, textOf } from '#tests/panel_client'
import { PageClient, htmlText } from '#tests/page_client'
import { toFile } from 'openai'
import { setPrice } from '#actions/set_price'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { MOCK_TRANSCRIPT, mockSpeechBytes } from '#tests/fixtures/mock_upstream/openai_audio'
import { mp3File, mp3Ms, wavFile } from '#tests/fixtures/audio_files'
import { balanceAndLedger, baseUrl, multipartBody, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * OpenAI's audio endpoints through the gateway: multipart uploads passed
 * through byte for byte (only the model part rewritten for a mapped name),
 * answers relayed as the upstream's bytes and content type, speech streamed,
 * and each request's one usage row billed in LiteLLM's units (per second of
 * audio, per character, plus tokens when reported).
 */

async function upload(path: string, key: string, form: { body: Buffer; contentType: string }) {
  return fetch(`${baseUrl()}${path}`, {
    method: 'POST',
    headers: { 'authorization': `Bearer ${key}`, 'content-type': form.contentType },
    body: form.body,
  })
}

/** pico-USD under $1 as Postgres prints numeric(24,12) */
function usd(pico: bigint) {
  return `0.${pico.toString().padStart(12, '0')}`
}

interface RawAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  body: any
}

/** A request whose body is sent in pieces under the caller's control (a huge upload announced, not sent). */
function rawRequest(path: string, headers: Record<string, string>, send: (req: http.ClientRequest) => void): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${baseUrl()}${path}`)
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => {
        let body: any = text
        try {
          body = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode!, headers: res.headers, body })
      })
    })
    req.on('error', (error) => ((error as any).code === 'EPIPE' || (error as any).code === 'ECONNRESET' ? undefined : reject(error)))
    send(req)
  })
}

test.group('POST /v1/audio/transcriptions and /v1/audio/translations', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({
      name: 'openai',
      provider: 'openai',
      baseUrl: mock.url,
      models: ['whisper-*', 'gpt-4o-*', 'stt-alias', 'tts-*'],
      modelMapping: { 'stt-alias': 'whisper-large-v3' },
    })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await setPrice({ model: 'whisper-*', input: '0', output: '0', perSecond: '0.0001' })
    await setPrice({ model: 'stt-alias', input: '0', output: '0', perSecond: '0.000123456' })
    await setPrice({ model: 'gpt-4o-transcribe', input: '2.5', output: '10', perSecond: '0.00001' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('json through the openai SDK: the bytes pass through, billed per second of the answer\'s usage', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const wav = wavFile(1500)
    const answer = await openai(user.key).audio.transcriptions.create({ model: 'whisper-1', file: await toFile(wav, 'speech.wav') })
    assert.equal(answer.text, MOCK_TRANSCRIPT)
    assert.deepEqual((answer as any).usage, { type: 'duration', seconds: 7 })
    const upstream = mock.lastRequest()!
    assert.equal(upstream.path, '/v1/audio/transcriptions')
    assert.equal(upstream.headers.authorization, 'Bearer upstream-secret')
    assert.match(String(upstream.headers['content-type']), /^multipart\/form-data; boundary=/)
    assert.isAbove(upstream.bytes.indexOf(wav), 0, 'the file reached the upstream whole')

    const [row] = await usageRows(user.userId)
    // The answer's 7 seconds (usage.type duration), not the file's 1.5: the upstream's own count is what it bills.
    assert.include(row, { endpoint: 'audio.transcriptions', status: 200, model: 'whisper-1', audio_seconds: '7.000', characters: null, estimated: false })
    assert.equal(row.cost, '0.000700000000')
    assert.equal((await balanceAndLedger(user.userId)).balance, '0.999300000000')
  })

  test("an upload counts on the key's budget for its model (model_max_budget): its cost in the model's spend, refused once spent", async ({ assert }) => {
    // Each call bills the answer's 7 seconds: $0.0007; a budget of $0.001 takes two.
    const user = await seedUser({ balance: '1', key: { modelLimits: { 'whisper-1': { budget: '0.001' } } } })
    const send = () => upload('/v1/audio/transcriptions', user.key, multipartBody([['file', wavFile(1500), 'a.wav'], ['model', 'whisper-1']]))
    assert.equal((await send()).status, 200)
    assert.equal((await send()).status, 200)
    const refused = await send()
    assert.equal(refused.status, 402)
    assert.equal(((await refused.json()) as any).error.code, 'budget_exceeded')
    assert.lengthOf(await usageRows(user.userId), 3)
    const spend = await db.from('api_key_model_spend').where('api_key_id', user.keyId).where('model', 'whisper-1').first()
    assert.equal(spend.spent, '0.001400000000')
  })

  test('text, srt, vtt and verbose_json come back as the upstream wrote them; text billed from the WAV header', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const wav = wavFile(2500)
    const text = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', wav, 'a.wav'], ['model', 'whisper-1'], ['response_format', 'text']]))
    assert.equal(text.status, 200)
    assert.equal(text.headers.get('content-type'), 'text/plain; charset=utf-8')
    assert.equal(await text.text(), `${MOCK_TRANSCRIPT}\n`)
    const srt = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', mp3File(100), 'a.mp3'], ['model', 'whisper-1'], ['response_format', 'srt']]))
    assert.equal(srt.headers.get('content-type'), 'application/x-subrip')
    assert.match(await srt.text(), /^1\n00:00:00,000 --> /)
    const vtt = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', wav, 'a.wav'], ['model', 'whisper-1'], ['response_format', 'vtt']]))
    assert.match(await vtt.text(), /^WEBVTT/)
    const verbose = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', wav, 'a.wav'], ['model', 'whisper-1'], ['response_format', 'verbose_json']]))
    assert.equal(((await verbose.json()) as any).duration, 7.25)
    const ogg = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', Buffer.from('OggS\0\x02not parsed'), 'a.ogg'], ['model', 'whisper-1'], ['response_format', 'text']]))
    assert.equal(ogg.status, 200)

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.audio_seconds, r.cost, r.estimated]),
      [
        ['2.500', '0.000250000000', false],
        // 100 MP3 frames of 1152 samples at 44.1 kHz, walked frame by frame
        [(mp3Ms(100) / 1000).toFixed(3), usd((BigInt(mp3Ms(100)) * 100_000_000n) / 1000n), false],
        ['2.500', '0.000250000000', false],
        ['7.250', '0.000725000000', false],
        // A format the gateway does not measure: recorded, 0 seconds, marked estimated
        ['0.000', '0.000000000000', true],
      ]
    )
  })

  test('a mapped model: only the model part is rewritten, every other byte reaches the upstream as sent', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const fields: Array<[string, string | Buffer, string?]> = [
      ['file', Buffer.concat([wavFile(1000), Buffer.from('\r\n--tricky\r\n\r\n')]), 'a.wav'],
      ['model', 'stt-alias'],
      ['prompt', 'Ünïcode prompt, "quoted"'],
      ['timestamp_granularities[]', 'word'],
      ['response_format', 'json'],
    ]
    const sent = multipartBody(fields)
    const response = await upload('/v1/audio/transcriptions', user.key, sent)
    assert.equal(response.status, 200)
    const upstream = mock.lastRequest()!
    const expected = multipartBody(fields.map(([name, value, filename]) => [name, name === 'model' ? 'whisper-large-v3' : value, filename]))
    assert.isTrue(upstream.bytes.equals(expected.body), 'the upstream saw the client\'s bytes with the model part replaced')
    assert.equal(upstream.headers['content-type'], sent.contentType)
    // And without a mapping, the client's bytes themselves.
    const plain = multipartBody([['model', 'whisper-1'], ['file', wavFile(10), 'b.wav']], 'other-boundary')
    await upload('/v1/audio/transcriptions', user.key, plain)
    assert.isTrue(mock.lastRequest()!.bytes.equals(plain.body))

    const rows = await usageRows(user.userId)
    assert.include(rows[0], { model: 'stt-alias', served_model: 'whisper-large-v3', audio_seconds: '7.000' })
    // 7 s x $0.000123456: nine decimals, exact
    assert.equal(rows[0].cost, '0.000864192000')
  })

  test('translations, through the openai SDK', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await openai(user.key).audio.translations.create({ model: 'whisper-1', file: await toFile(wavFile(500), 'fr.wav') })
    assert.equal(answer.text, `(en) ${MOCK_TRANSCRIPT}`)
    assert.equal(mock.lastRequest()!.path, '/v1/audio/translations')
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'audio.translations', audio_seconds: '7.000', cost: '0.000700000000' })
  })

  test('gpt-4o-transcribe: tokens at token prices plus the MP3\'s seconds; its SSE stream relayed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const mp3 = mp3File(383, { id3: true })
    const json = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', mp3, 'a.mp3'], ['model', 'gpt-4o-transcribe']]))
    assert.deepEqual(((await json.json()) as any).usage, { type: 'tokens', input_tokens: 140, output_tokens: 12, total_tokens: 152 })

    const streamed = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', mp3, 'a.mp3'], ['model', 'gpt-4o-transcribe'], ['stream', 'true']]))
    assert.equal(streamed.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    const events = (await streamed.text()).split('\n\n').filter(Boolean).map((e) => JSON.parse(e.slice('data: '.length)))
    assert.deepEqual(events.map((e) => e.type), ['transcript.text.delta', 'transcript.text.delta', 'transcript.text.done'])

    const rows = await usageRows(user.userId)
    const seconds = mp3Ms(383) // 10.005 s
    // 140 x $2.5/1M + 12 x $10/1M + 10.005 s x $0.00001
    const cost = 140n * 2_500_000n + 12n * 10_000_000n + BigInt(seconds) * 10_000_000n / 1000n
    for (const [i, row] of rows.entries()) {
      assert.include(row, { prompt_tokens: 140, completion_tokens: 12, audio_seconds: (seconds / 1000).toFixed(3), stream: i === 1, estimated: false })
      assert.equal(row.cost, usd(cost))
    }
  })

  test('refusals, each in OpenAI\'s shape with its usage row', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const noModel = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', wavFile(10), 'a.wav']]))
    assert.equal(noModel.status, 400)
    assert.equal(((await noModel.json()) as any).error.code, 'missing_model')
    const json = await post('/v1/audio/transcriptions', { model: 'whisper-1', file: 'x' }, { authorization: `Bearer ${user.key}` })
    assert.equal(json.status, 400)
    const jsonError = ((await json.json()) as any).error
    assert.equal(jsonError.code, 'invalid_content_type')
    assert.equal(jsonError.type, 'invalid_request_error')
    const broken = await upload('/v1/audio/translations', user.key, { body: Buffer.from('--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1'), contentType: 'multipart/form-data; boundary=b' })
    assert.equal(((await broken.json()) as any).error.code, 'invalid_multipart')
    const claude = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', wavFile(10), 'a.wav'], ['model', 'claude-x']]))
    assert.equal(claude.status, 400)
    assert.equal(((await claude.json()) as any).error.code, 'unsupported_endpoint')
    // 26 MB announced, a few bytes sent: refused before the body is read.
    const big = await rawRequest(
      '/v1/audio/transcriptions',
      { 'authorization': `Bearer ${user.key}`, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(26 * 1024 * 1024) },
      (req) => req.write('--x\r\n')
    )
    assert.equal(big.status, 413)
    assert.equal(big.body.error.code, 'request_too_large')
    assert.match(big.body.error.message, /at most 25 MB/)
    assert.equal(mock.requests.length, before, 'no refusal reached the upstream')

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.status, r.error_code]),
      [
        ['audio.transcriptions', 400, 'missing_model'],
        ['audio.transcriptions', 400, 'invalid_content_type'],
        ['audio.translations', 400, 'invalid_multipart'],
        ['audio.transcriptions', 400, 'unsupported_endpoint'],
        ['audio.transcriptions', 413, 'request_too_large'],
      ]
    )
  })

  test("a model or stream sent as a file part is refused as image uploads refuse it, not read as the field", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const wav = wavFile(10)
    const forms = [
      // The gateway does not read a file part as the model: without this it answered missing_model, an upstream may read it.
      multipartBody([['model', 'whisper-1', 'model.txt'], ['file', wav, 'a.wav']]),
      // Nor as stream: a stream the upstream reads as true would answer SSE where the gateway accounts one JSON answer.
      multipartBody([['model', 'whisper-1'], ['stream', 'true', 'stream.txt'], ['file', wav, 'a.wav']]),
    ]
    for (const [i, form] of forms.entries()) {
      const response = await upload(i === 0 ? '/v1/audio/transcriptions' : '/v1/audio/translations', user.key, form)
      assert.equal(response.status, 400)
      const error = ((await response.json()) as any).error
      assert.deepInclude(error, { code: 'invalid_multipart', type: 'invalid_request_error', param: i === 0 ? 'model' : 'stream' })
    }
    // Under an Azure deployment too: the deployment is not written into the file part.
    const azure = forms[0]
    const deployed = await fetch(`${baseUrl()}/openai/deployments/whisper-1/audio/transcriptions?api-version=2024-10-21`, {
      method: 'POST',
      headers: { 'api-key': user.key, 'content-type': azure.contentType },
      body: azure.body,
    })
    assert.equal(deployed.status, 400)
    assert.equal(((await deployed.json()) as any).error.code, 'invalid_multipart')
    assert.equal(mock.requests.length, before, 'nothing reached the upstream')
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.status, r.error_code]),
      [
        ['audio.transcriptions', 400, 'invalid_multipart'],
        ['audio.translations', 400, 'invalid_multipart'],
        ['audio.transcriptions', 400, 'invalid_multipart'],
      ]
    )
  })

  test('a priced model with an empty balance is 402 before any upstream call', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    const response = await upload('/v1/audio/transcriptions', user.key, multipartBody([['file', wavFile(10), 'a.wav'], ['model', 'whisper-1']]))
    assert.equal(response.status, 402)
    assert.equal(((await response.json()) as any).error.code, 'insufficient_balance')
    assert.equal(mock.requests.length, before)
    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 402, endpoint: 'audio.transcriptions' })
  })
})

test.group('Audio: failover and upstream errors', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'first', provider: 'openai', baseUrl: mock.url, models: ['whisper-1', 'tts-1'], apiKey: 'key-first', priority: 10 })
    await seedChannel({ name: 'second', provider: 'openai', baseUrl: mock.url, models: ['whisper-1', 'tts-1'], apiKey: 'key-second', priority: 1 })
    return () => mock.stop()
  })

  test('a 503 before the first byte moves the same upload to the next channel; a 4xx is relayed', async ({ assert }) => {
    const user = await seedUser()
    const form = multipartBody([['file', wavFile(100), 'a.wav'], ['model', 'whisper-1']])
    mock.script({ status: 503 })
    const before = mock.requests.length
    const ok = await upload('/v1/audio/transcriptions', user.key, form)
    assert.equal(ok.status, 200)
    const [failed, served] = mock.requests.slice(before)
    assert.deepEqual([failed.headers.authorization, served.headers.authorization], ['Bearer key-first', 'Bearer key-second'])
    assert.isTrue(failed.bytes.equals(form.body) && served.bytes.equals(form.body), 'both attempts carried the client\'s bytes')

    mock.script({ status: 400 })
    const refused = await upload('/v1/audio/transcriptions', user.key, form)
    assert.equal(refused.status, 400)
    assert.deepEqual(((await refused.json()) as any).error, { message: 'mock upstream failure 400', type: 'invalid_request_error', code: 'mock_400', param: null })

    mock.script({ status: 503 })
    const speech = await post('/v1/audio/speech', { model: 'tts-1', voice: 'alloy', input: 'hi' }, { authorization: `Bearer ${user.key}` })
    assert.equal(speech.status, 200)
    assert.equal((await speech.arrayBuffer()).byteLength, mockSpeechBytes().length)

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.attempts]), [[200, 2], [400, 1], [200, 2]])
  })
})

test.group('POST /v1/audio/speech', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['tts-*', 'voice-alias'], modelMapping: { 'voice-alias': 'tts-1-hd' } })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await setPrice({ model: 'tts-*', input: '0', output: '0', perCharacter: '0.000015' })
    await setPrice({ model: 'voice-alias', input: '0', output: '0', perCharacter: '0.00003' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('the audio streams through chunk by chunk with the upstream\'s content type; characters billed exactly', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const input = 'Héllo 👋 world' // 13 characters (code points), 15 UTF-16 units
    const response = await openai(user.key).audio.speech.create({ model: 'tts-1', voice: 'alloy', input })
    assert.equal(response.headers.get('content-type'), 'audio/mpeg')
    assert.isNotNull(response.headers.get('x-request-id'))
    const reader = response.body!.getReader()
    const received: Buffer[] = []
    const times: number[] = []
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      received.push(Buffer.from(value))
      times.push(performance.now())
    }
    assert.isTrue(Buffer.concat(received).equals(mockSpeechBytes()))
    // The mock pauses between its chunks: a gateway that buffered the file would deliver it all at once.
    assert.isAbove(times[times.length - 1] - times[0], 50)
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body), { model: 'tts-1', voice: 'alloy', input })

    const wav = await post('/v1/audio/speech', { model: 'voice-alias', voice: 'nova', input: 'abc', response_format: 'wav' }, { authorization: `Bearer ${user.key}` })
    assert.equal(wav.headers.get('content-type'), 'audio/wav')
    assert.equal((await wav.arrayBuffer()).byteLength, mockSpeechBytes().length)
    assert.equal(JSON.parse(mock.lastRequest()!.body).model, 'tts-1-hd')

    const rows = await usageRows(user.userId)
    assert.include(rows[0], { endpoint: 'audio.speech', characters: 13, audio_seconds: null, cost: '0.000195000000', status: 200 })
    assert.include(rows[1], { model: 'voice-alias', served_model: 'tts-1-hd', characters: 3, cost: '0.000090000000' })
    assert.equal((await balanceAndLedger(user.userId)).balance, '0.999715000000')
  })

  test('refusals: no input, an Anthropic-only model, an empty balance', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const headers = { authorization: `Bearer ${user.key}` }
    const noInput = await post('/v1/audio/speech', { model: 'tts-1', voice: 'alloy' }, headers)
    assert.equal(noInput.status, 400)
    assert.equal(((await noInput.json()) as any).error.type, 'invalid_request_error')
    const claude = await post('/v1/audio/speech', { model: 'claude-x', voice: 'alloy', input: 'hi' }, headers)
    assert.equal(((await claude.json()) as any).error.code, 'unsupported_endpoint')
    const broke = await seedUser()
    const unpaid = await post('/v1/audio/speech', { model: 'tts-1', voice: 'alloy', input: 'hi' }, { authorization: `Bearer ${broke.key}` })
    assert.equal(unpaid.status, 402)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code]), [[400, rows[0].error_code], [400, 'unsupported_endpoint']])
    assert.lengthOf(await usageRows(broke.userId), 1)
  })
})

test.group('Audio prices: price:set, the panel, the pricing page', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['whisper-1', 'tts-1'] })
    return () => mock.stop()
  })

  test('price:set --per-second / --per-character, the Prices form, and /pricing show them', async ({ assert }) => {
    const run = async (args: string[]) => {
      const command = await ace.create(PriceSet, args)
      ace.ui.switchMode('raw')
      await command.exec()
      return command
    }
    ;(await run(['--model', 'tts-1', '--input', '0', '--output', '0', '--per-character', '0.000015'])).assertSucceeded()
    ;(await run(['--model', 'whisper-1', '--input', '0', '--output', '0', '--per-second', '0.0000000001'])).assertFailed()
    const tts = await db.from('model_prices').where('model_pattern', 'tts-1').first()
    assert.equal(tts.per_character, '0.000015000')
    assert.isNull(tts.per_second)

    const email = `audio-admin-${Date.now()}@test.local`
    await createUser({ email, password: 'admin-password', role: 'admin' })
    const client = new PanelClient()
    await client.login(email, 'admin-password')
    await client.get('/admin/prices')
    await client.post('/admin/prices', { model: 'whisper-1', input: '0', output: '0', perSecond: '0.0001' })
    const whisper = await db.from('model_prices').where('model_pattern', 'whisper-1').first()
    assert.equal(whisper.per_second, '0.000100000')
    const list = textOf((await client.get('/admin/prices')).html)
    assert.include(list, 'whisper-1 $0.00 $0.00 input / input — — $0.0001 / s')
    assert.include(list, 'tts-1 $0.00 $0.00 input / input — — $0.000015 / char')
    const edit = await client.get(`/admin/prices?edit=${tts.id}`)
    assert.include(edit.html, 'value="0.000015"')

    await refreshCaches()
    const pricing = htmlText((await new PageClient().get('/pricing')).body)
    assert.include(pricing, '$0.0001 per second of audio')
    assert.include(pricing, '$0.000015 per character')
  })
})

test.group('Audio: through the router (API_LANE=false) as through the lane; a client that hangs up', (group) => {
  let mock: MockUpstream
  let routed: { server: http.Server; url: string }

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['whisper-1', 'tts-1'] })
    await setPrice({ model: 'tts-1', input: '0', output: '0', perCharacter: '0.000015' })
    await refreshCaches()
    const adonis = await app.container.make('server')
    const server = http.createServer(withApiLane(adonis.handle.bind(adonis) as any, false))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    routed = { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
    return async () => {
      await new Promise((resolve) => routed.server.close(resolve))
      await mock.stop()
    }
  })

  test('the same answers and rows either way', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const form = multipartBody([['file', wavFile(1000), 'a.wav'], ['model', 'whisper-1'], ['response_format', 'text']])
    for (const base of [baseUrl(), routed.url]) {
      const text = await fetch(`${base}/v1/audio/translations`, { method: 'POST', headers: { 'authorization': `Bearer ${user.key}`, 'content-type': form.contentType }, body: form.body })
      assert.deepEqual([text.status, text.headers.get('content-type'), await text.text()], [200, 'text/plain; charset=utf-8', `(en) ${MOCK_TRANSCRIPT}\n`])
      const speech = await fetch(`${base}/v1/audio/speech`, { method: 'POST', headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tts-1', voice: 'alloy', input: 'four' }) })
      assert.equal(speech.headers.get('content-type'), 'audio/mpeg')
      assert.isTrue(Buffer.from(await speech.arrayBuffer()).equals(mockSpeechBytes()))
    }
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.status, r.audio_seconds, r.characters, r.cost]), [
      ['audio.translations', 200, '1.000', null, '0.000000000000'],
      ['audio.speech', 200, null, 4, '0.000060000000'],
      ['audio.translations', 200, '1.000', null, '0.000000000000'],
      ['audio.speech', 200, null, 4, '0.000060000000'],
    ])
  })

  test('speech: a client that hangs up after the first chunk is a 499 row, its characters billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    await new Promise<void>((resolve, reject) => {
      const url = new URL(`${baseUrl()}/v1/audio/speech`)
      const req = http.request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' } },
        (res) => {
          res.once('data', () => {
            req.destroy()
            resolve()
          })
        }
      )
      req.on('error', (error) => ((error as any).code === 'ECONNRESET' ? undefined : reject(error)))
      req.end(JSON.stringify({ model: 'tts-1', voice: 'alloy', input: 'hello' }))
    })
    let rows = await usageRows(user.userId)
    for (let i = 0; i < 50 && rows.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      rows = await usageRows(user.userId)
    }
    assert.include(rows[0], { status: 499, error_code: 'client_closed', characters: 5, cost: '0.000075000000' })
  })
})
