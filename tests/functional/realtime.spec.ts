import { test } from '@japa/runner'
import net from 'node:net'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import PriceSet from '#commands/price_set'
import { createUser } from '#actions/create_user'
import { setPrice } from '#actions/set_price'
import { PanelClient, textOf } from '#tests/panel_client'
import { PageClient, htmlText } from '#tests/page_client'
import { WebSocket } from 'ws'
import OpenAI from 'openai'
import { OpenAIRealtimeWS } from 'openai/realtime/ws'
import { OpenAIRealtimeWS as OpenAIRealtimeBetaWS } from 'openai/beta/realtime/ws'
import { parallelInFlight } from '#gateway/limits/parallel_requests'
import { realtimeLimits } from '#gateway/realtime/realtime_limits'
import { DEFAULT_REALTIME_USAGE } from '#tests/fixtures/mock_upstream/openai_realtime'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, baseUrl, gateway, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/** A WebSocket client of the gateway with every event it received, in order. */
interface Session {
  ws: WebSocket
  /** Text events parsed; binary frames as { binary: Buffer } */
  events: any[]
  /** Raw text frames as received */
  frames: Buffer[]
  closed: Promise<{ code: number; reason: string }>
  /** Resolves with the first event of this type (already received or to come) */
  next(type: string): Promise<any>
}

/** A refused handshake: the HTTP answer the client got instead of the upgrade. */
interface Refused {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: any
}

function wsUrl(path: string) {
  return `${baseUrl().replace(/^http/, 'ws')}${path}`
}

function connect(path: string, options: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<Session> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(path), options.protocols ?? [], { headers: options.headers ?? {}, perMessageDeflate: false })
    const events: any[] = []
    const frames: Buffer[] = []
    const waiters: Array<{ type: string; resolve: (e: any) => void }> = []
    ws.on('message', (data, isBinary) => {
      const event = isBinary ? { binary: data } : JSON.parse(data.toString())
      if (!isBinary) frames.push(data as Buffer)
      events.push(event)
      for (const waiter of waiters.filter((w) => w.type === event.type)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve(event)
      }
    })
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })))
    ws.on('error', () => {})
    ws.once('open', () =>
      resolve({
        ws,
        events,
        frames,
        closed,
        next: (type) => {
          const seen = events.find((e) => e.type === type)
          if (seen) return Promise.resolve(seen)
          return withTimeout(new Promise((r) => waiters.push({ type, resolve: r })), `event ${type}`)
        },
      })
    )
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        let body: any = text
        try {
          body = JSON.parse(text)
        } catch {}
        reject({ status: res.statusCode ?? 0, headers: res.headers, body } satisfies Refused)
      })
    })
  })
}

async function refused(path: string, options: Parameters<typeof connect>[1] = {}): Promise<Refused> {
  try {
    const session = await connect(path, options)
    session.ws.terminate()
  } catch (error) {
    if ((error as Refused).status) return error as Refused
    throw error
  }
  throw new Error(`the handshake of ${path} was accepted`)
}

function withTimeout<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms))])
}

async function until(check: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** pico-USD of `tokens` at `perMillion` USD per 1M tokens, as a decimal string of USD with 12 places. */
function usd(pico: bigint) {
  const negative = pico < 0n
  const abs = negative ? -pico : pico
  return `${negative ? '-' : ''}${abs / 10n ** 12n}.${(abs % 10n ** 12n).toString().padStart(12, '0')}`
}

/**
 * OpenAI's Realtime API through the gateway: WebSocket /v1/realtime,
 * authenticated as HTTP calls are, routed to an OpenAI-compatible channel's
 * `/realtime`, relayed frame for frame, each response.done metered.
 */
test.group('Realtime API (WebSocket /v1/realtime)', (group) => {
  let mock: MockUpstream
  let backup: MockUpstream
  const saved = { ...realtimeLimits }

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    backup = await startMock()
    await seedChannel({ name: 'realtime-main', baseUrl: mock.url, models: ['gpt-realtime', 'gpt-4o-realtime-preview', 'gpt-realtime-mini'], priority: 10, modelMapping: { 'gpt-4o-realtime-preview': 'gpt-4o-realtime-preview-2025-06-03' } })
    await seedChannel({ name: 'realtime-backup', baseUrl: backup.url, models: ['gpt-realtime'], priority: 1 })
    await seedChannel({ name: 'chat-only', provider: 'openrouter', baseUrl: mock.url, models: ['chat-model'] })
    await seedPrice('gpt-realtime', '4', '16')
    return async () => {
      await mock.stop()
      await backup.stop()
    }
  })
  group.each.teardown(() => {
    Object.assign(realtimeLimits, saved)
    mock.realtime.closeAll()
    backup.realtime.closeAll()
  })

  test('refusals before the upgrade are HTTP answers in OpenAI error JSON; no upstream is opened', async ({ assert }) => {
    const user = await seedUser({ balance: '5', keyModels: ['gpt-realtime', 'chat-model', 'not-served'] })
    const poor = await seedUser({})
    const before = mock.realtime.connections.length

    const none = await refused('/v1/realtime?model=gpt-realtime')
    assert.equal(none.status, 401)
    assert.deepInclude(none.body.error, { code: 'invalid_api_key' })
    assert.equal(none.headers['x-should-retry'], 'false')

    const bad = await refused('/v1/realtime?model=gpt-realtime', { headers: { authorization: 'Bearer sk-not-a-key' } })
    assert.equal(bad.status, 401)
    assert.equal(bad.body.error.message, 'Invalid API key')

    const notAllowed = await refused('/v1/realtime?model=gpt-4o-realtime-preview', { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(notAllowed.status, 403)
    assert.deepInclude(notAllowed.body.error, { code: 'model_not_allowed', type: 'permission_error' })
    assert.isString(notAllowed.headers['x-request-id'])

    const empty = await refused('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${poor.key}` } })
    assert.equal(empty.status, 402)
    assert.deepInclude(empty.body.error, { code: 'insufficient_balance' })

    const unknown = await refused('/v1/realtime?model=not-served', { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(unknown.status, 404)
    assert.deepInclude(unknown.body.error, { code: 'model_not_found' })

    const noRealtime = await refused('/v1/realtime?model=chat-model', { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(noRealtime.status, 400)
    assert.deepInclude(noRealtime.body.error, { code: 'unsupported_endpoint' })

    // Not a WebSocket: 426, and how to connect.
    const plain = await fetch(`${baseUrl()}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(plain.status, 426)
    assert.equal(((await plain.json()) as any).error.code, 'upgrade_required')

    const noModel = await refused('/v1/realtime', { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(noModel.status, 400)
    assert.deepInclude(noModel.body.error, { code: 'missing_model' })

    assert.equal(mock.realtime.connections.length, before)
    // Refused after the key was accepted: one row each, as an HTTP call's; the 401s have none.
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r: any) => [r.endpoint, r.status, r.error_code]), [
      ['realtime', 403, 'model_not_allowed'],
      ['realtime', 404, 'model_not_found'],
      ['realtime', 400, 'unsupported_endpoint'],
      ['realtime', 400, 'missing_model'],
    ])
    assert.deepEqual((await usageRows(poor.userId)).map((r: any) => r.status), [402])
  })

  test('a conversation is relayed untouched both ways and each response.done is metered exactly', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    const created = await session.next('session.created')
    assert.equal(created.session.model, 'gpt-realtime')
    const upstream = mock.realtime.connections.at(-1)!
    assert.equal(upstream.path, '/v1/realtime?model=gpt-realtime')
    assert.equal(upstream.headers.authorization, 'Bearer upstream-secret')
    assert.isUndefined(upstream.headers['openai-beta'])

    // Text frames byte for byte (key order, spacing and non-ASCII kept), binary frames as binary.
    const odd = '{ "type" : "mock.echo", "z": 1, "a": "héllo ✓" }'
    session.ws.send(odd)
    session.ws.send(Buffer.from([0, 1, 2, 250, 255]), { binary: true })
    await until(() => session.events.some((e) => e.binary), 'the binary echo')
    assert.equal(session.frames.find((f) => f.toString().includes('mock.echo'))!.toString(), odd)
    assert.deepEqual([...session.events.find((e) => e.binary).binary], [0, 1, 2, 250, 255])

    // The upstream's own error event is relayed without the channel's key and address.
    session.ws.send(JSON.stringify({ type: 'mock.error' }))
    const upstreamError = await session.next('error')
    assert.equal(upstreamError.error.code, 'invalid_api_key')
    assert.include(upstreamError.error.message, '[redacted]')
    assert.notInclude(upstreamError.error.message, 'upstream-secret')
    assert.notInclude(upstreamError.error.message, '127.0.0.1')

    session.ws.send(JSON.stringify({ type: 'response.create' }))
    await session.next('response.done')
    session.ws.send(JSON.stringify({ type: 'response.create', mock: { usage: { total_tokens: 30, input_tokens: 20, output_tokens: 10 } } }))
    await until(() => session.events.filter((e) => e.type === 'response.done').length === 2, 'the second response')
    assert.lengthOf(session.events.filter((e) => e.type === 'response.output_text.delta'), 6)
    session.ws.close(1000)
    assert.equal((await session.closed).code, 1000)

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    const [first, second] = rows
    assert.deepInclude(first, { endpoint: 'realtime', model: 'gpt-realtime', served_model: 'gpt-realtime', status: 200, error_code: null, stream: true })
    assert.deepInclude(first, { prompt_tokens: 1200, completion_tokens: 640, total_tokens: 1840, cached_tokens: 300, estimated: false })
    assert.deepInclude(second, { prompt_tokens: 20, completion_tokens: 10, total_tokens: 30, cached_tokens: 0 })
    // $4 / $16 per 1M tokens; audio tokens at the token prices, cached ones at the input price (none set).
    const firstCost = 1200n * 4_000_000n + 640n * 16_000_000n
    const secondCost = 20n * 4_000_000n + 10n * 16_000_000n
    assert.equal(first.cost, usd(firstCost))
    assert.equal(second.cost, usd(secondCost))
    const { balance, ledger } = await balanceAndLedger(user.userId)
    assert.equal(balance, usd(5n * 10n ** 12n - firstCost - secondCost))
    assert.equal(ledger, balance)
    assert.deepEqual(await ledgerProblems(), [])
    assert.equal(DEFAULT_REALTIME_USAGE.input_tokens, 1200)
  })

  test("audio tokens at the model's audio prices (price:set --audio-input / --audio-output, the panel's Prices form)", async ({ assert }) => {
    const command = await ace.create(PriceSet, ['--model', 'gpt-realtime-mini', '--input', '5', '--output', '20', '--cache-read', '2.5', '--audio-input', '40', '--audio-output', '80'])
    ace.ui.switchMode('raw')
    await command.exec()
    command.assertSucceeded()
    await refreshCaches()
    const user = await seedUser({ balance: '5' })
    const session = await connect('/v1/realtime?model=gpt-realtime-mini', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    session.ws.send(JSON.stringify({ type: 'response.create' }))
    await session.next('response.done')
    session.ws.close()
    await session.closed
    const [row] = await usageRows(user.userId)
    // 1,200 in (200 text, 1,000 audio; 300 cached: 100 text, 200 audio), 640 out (40 text, 600 audio):
    // 100 text x $5 + 800 audio x $40 + 300 cached x $2.5, 40 text x $20 + 600 audio x $80 (per 1M).
    const cost = (100n * 5n + 800n * 40n) * 1_000_000n + 300n * 2_500_000n + (40n * 20n + 600n * 80n) * 1_000_000n
    assert.equal(row.cost, usd(cost))
    assert.equal(row.cost, '0.082050000000')
    assert.deepEqual(await ledgerProblems(), [])

    // The panel's form sets them, lists them and carries them into its edit form.
    const email = `realtime-admin-${Date.now()}@test.local`
    await createUser({ email, password: 'admin-password', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(email, 'admin-password')
    await panel.get('/admin/prices')
    await panel.post('/admin/prices', { model: 'gpt-realtime-panel', input: '4', output: '16', audioInput: '32', audioOutput: '64' })
    const saved = await db.from('model_prices').where('model_pattern', 'gpt-realtime-panel').first()
    assert.deepInclude(saved, { audio_input_per_million: '32.000000', audio_output_per_million: '64.000000' })
    assert.include(textOf((await panel.get('/admin/prices')).html), '$32.00 / $64.00 per 1M tokens')
    assert.include((await panel.get(`/admin/prices?edit=${saved.id}`)).html, 'value="32"')
    // The public pricing page says what audio costs.
    await refreshCaches()
    assert.include(htmlText((await new PageClient().get('/pricing')).body), 'audio $40.00 in / $80.00 out per million tokens')
  })

  test("the transcription of the user's audio is metered apart, at the transcription model's prices", async ({ assert }) => {
    await seedPrice('gpt-4o-transcribe', '2.5', '10')
    await setPrice({ model: 'whisper-1', input: '0', output: '0', perSecond: '0.0001' })
    await refreshCaches()
    const user = await seedUser({ balance: '5' })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    // The GA shape of the setting; the upstream's session.updated says which model transcribes.
    session.ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } } }))
    await session.next('session.updated')
    session.ws.send(JSON.stringify({ type: 'mock.transcribe' }))
    await session.next('conversation.item.input_audio_transcription.completed')
    // The beta shape, whisper-1, billed per second.
    session.ws.send(JSON.stringify({ type: 'session.update', session: { input_audio_transcription: { model: 'whisper-1' } } }))
    await until(() => session.events.filter((e) => e.type === 'session.updated').length === 2, 'the second session.updated')
    session.ws.send(JSON.stringify({ type: 'mock.transcribe', usage: { type: 'duration', seconds: 2.5 } }))
    await until(() => session.events.filter((e) => e.type === 'conversation.item.input_audio_transcription.completed').length === 2, 'the second transcription')
    session.ws.close()
    await session.closed
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r: any) => [r.endpoint, r.model, r.prompt_tokens, r.completion_tokens, r.audio_seconds, r.cost]),
      [
        ['realtime.transcription', 'gpt-4o-transcribe', 50, 10, null, usd(50n * 2_500_000n + 10n * 10_000_000n)],
        ['realtime.transcription', 'whisper-1', 0, 0, '2.500', usd(2500n * 100_000_000n / 1000n)],
      ]
    )
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("a key's model globs hold for the transcription model a session.update names: an error event, nothing sent up", async ({ assert }) => {
    const user = await seedUser({ balance: '5', keyModels: ['gpt-realtime', 'gpt-4o-mini-transcribe'] })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    const errors = () => session.events.filter((e) => e.type === 'error')
    const refusedUpdates = [
      // GA shape, beta shape, the key spelled with a JSON escape, and a model repeated (the last one is what JSON.parse reads).
      { frame: JSON.stringify({ type: 'session.update', event_id: 'evt_ga', session: { type: 'realtime', audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } } }), param: 'session.audio.input.transcription.model', eventId: 'evt_ga' },
      { frame: JSON.stringify({ type: 'session.update', event_id: 'evt_beta', session: { input_audio_transcription: { model: 'whisper-1' } } }), param: 'session.input_audio_transcription.model', eventId: 'evt_beta' },
      { frame: '{"type":"session.update","session":{"input_audio_\\u0074ranscription":{"model":"whisper-1"}}}', param: 'session.input_audio_transcription.model', eventId: null },
      { frame: '{"type":"session.update","session":{"input_audio_transcription":{"model":"gpt-4o-mini-transcribe","model":"whisper-1"}}}', param: 'session.input_audio_transcription.model', eventId: null },
    ]
    for (const [i, { frame, param, eventId }] of refusedUpdates.entries()) {
      session.ws.send(frame)
      await until(() => errors().length === i + 1, `the error event of update ${i + 1}`)
      assert.deepInclude(errors()[i].error, { type: 'invalid_request_error', code: 'model_not_allowed', param, event_id: eventId })
      assert.match(errors()[i].error.message, /^Model '(gpt-4o-transcribe|whisper-1)' is not permitted on your plan or key/)
    }
    // Broken, an event that may set it and cannot be read is not sent on either.
    session.ws.send('{"type":"session.update","session":{"input_audio_transcription":{"model":"whisper-1"}},}')
    await until(() => errors().length === refusedUpdates.length + 1, 'the error event of the broken update')
    assert.equal(errors().at(-1).error.code, 'invalid_json')
    // A binary frame that is no JSON (raw audio) goes up untouched, whatever bytes it holds.
    const audio = Buffer.from([0x00, 0x5c, 0x75, 0xff, 0x22, 0x6d, 0x6f, 0x64, 0x65, 0x6c, 0x22])
    session.ws.send(audio, { binary: true })
    await until(() => upstream.received.some((e) => e.binary !== undefined), 'the binary frame upstream')
    assert.deepEqual(upstream.received.find((e) => e.binary !== undefined).binary, audio)
    // An allowed one goes up (as the gateway read it), and the session goes on.
    session.ws.send(JSON.stringify({ type: 'session.update', session: { input_audio_transcription: { model: 'gpt-4o-mini-transcribe' } } }))
    const updated = await session.next('session.updated')
    assert.equal(updated.session.input_audio_transcription.model, 'gpt-4o-mini-transcribe')
    assert.deepEqual(
      upstream.received.filter((e) => e.type === 'session.update').map((e) => e.session.input_audio_transcription?.model ?? e.session.audio?.input?.transcription?.model),
      ['gpt-4o-mini-transcribe']
    )
    // Text that only mentions the word is relayed untouched.
    session.ws.send(JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'what is a transcription?' }] } }))
    await until(() => upstream.received.some((e) => e.type === 'conversation.item.create'), 'the conversation item upstream')
    session.ws.send(JSON.stringify({ type: 'response.create' }))
    await session.next('response.done')
    session.ws.close()
    await session.closed
    assert.lengthOf(await usageRows(user.userId), 1)
  })

  test("a session.update naming another session model is refused with an error event (each response is metered as the session's model)", async ({ assert }) => {
    const user = await seedUser({ balance: '5', keyModels: ['gpt-realtime'] })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    const errors = () => session.events.filter((e) => e.type === 'error')
    // An OpenAI-compatible server (LocalAI) switches models on it: another model, even spelled with an escape, is not sent.
    for (const [i, frame] of [
      JSON.stringify({ type: 'session.update', event_id: 'evt_1', session: { type: 'realtime', model: 'gpt-realtime-mini' } }),
      '{"type":"session.update","session":{"mod\\u0065l":"gpt-4o-realtime-preview"}}',
    ].entries()) {
      session.ws.send(frame)
      await until(() => errors().length === i + 1, `the error event of update ${i + 1}`)
      assert.deepInclude(errors()[i].error, { type: 'invalid_request_error', code: 'model_change_not_supported', param: 'session.model', event_id: i === 0 ? 'evt_1' : null })
    }
    // The session's own model (as clients repeat it) goes up with the rest of the update.
    session.ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime', instructions: 'Be brief.' } }))
    const updated = await session.next('session.updated')
    assert.equal(updated.session.instructions, 'Be brief.')
    assert.deepEqual(upstream.received.filter((e) => e.type === 'session.update').map((e) => e.session.model), ['gpt-realtime'])
    session.ws.close()
    await session.closed
  })

  test("a mapped model goes up as the channel's name; the beta header goes up when the client sent it", async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const session = await connect('/v1/realtime?model=gpt-4o-realtime-preview', {
      headers: { 'authorization': `Bearer ${user.key}`, 'openai-beta': 'realtime=v1' },
    })
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    assert.equal(upstream.path, '/v1/realtime?model=gpt-4o-realtime-preview-2025-06-03')
    assert.equal(upstream.headers['openai-beta'], 'realtime=v1')
    session.ws.send(JSON.stringify({ type: 'response.create' }))
    await session.next('response.done')
    session.ws.close()
    await session.closed
    const rows = await usageRows(user.userId)
    assert.deepInclude(rows[0], { model: 'gpt-4o-realtime-preview', served_model: 'gpt-4o-realtime-preview-2025-06-03', cost: '0.000000000000' })
  })

  test("a browser's subprotocol key works; `realtime` is the protocol answered and the key is never sent on", async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const session = await connect('/v1/realtime?model=gpt-realtime', {
      protocols: ['realtime', `openai-insecure-api-key.${user.key}`, 'openai-beta.realtime-v1'],
    })
    assert.equal(session.ws.protocol, 'realtime')
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    assert.equal(upstream.headers['openai-beta'], 'realtime=v1')
    assert.notInclude(JSON.stringify(upstream.headers), user.key)

    // Without `realtime` offered, the beta one is answered (browsers fail a handshake that gets none back).
    const beta = await connect('/v1/realtime?model=gpt-realtime', { protocols: [`openai-insecure-api-key.${user.key}`, 'openai-beta.realtime-v1'] })
    assert.equal(beta.ws.protocol, 'openai-beta.realtime-v1')
    const wrong = await refused('/v1/realtime?model=gpt-realtime', { protocols: ['realtime', 'openai-insecure-api-key.sk-wrong'] })
    assert.equal(wrong.status, 401)
    session.ws.close()
    beta.ws.close()
    await Promise.all([session.closed, beta.closed])
  })

  test("Azure clients: the api-key header and /openai/realtime?deployment= are accepted", async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const session = await connect('/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-realtime', { headers: { 'api-key': user.key } })
    const created = await session.next('session.created')
    assert.equal(created.session.model, 'gpt-realtime')
    session.ws.close()
    await session.closed
  })

  test('Azure channels: classic bases at /openai/realtime?api-version=&deployment=, v1 bases at /openai/v1/realtime?model=, with api-key', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await seedChannel({ name: 'azure-classic', provider: 'azure', baseUrl: `${mock.origin}/openai`, apiKey: 'azure-secret', models: ['azure-realtime'] })
    await seedChannel({ name: 'azure-v1', provider: 'azure', baseUrl: `${backup.origin}/openai/v1`, apiKey: 'azure-secret', models: ['azure-v1-realtime'] })
    for (const [model, upstreamMock, path] of [
      ['azure-realtime', mock, '/openai/realtime?api-version=2025-04-01-preview&deployment=azure-realtime'],
      ['azure-v1-realtime', backup, '/openai/v1/realtime?model=azure-v1-realtime'],
    ] as const) {
      const session = await connect(`/v1/realtime?model=${model}`, { headers: { authorization: `Bearer ${user.key}` } })
      await session.next('session.created')
      const upstream = upstreamMock.realtime.connections.at(-1)!
      assert.equal(upstream.path, path)
      assert.equal(upstream.headers['api-key'], 'azure-secret')
      assert.isUndefined(upstream.headers.authorization)
      session.ws.close()
      await session.closed
    }
  })

  test("the openai SDK's realtime WebSocket clients (GA and beta) converse through the gateway", async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const client = new OpenAI({ apiKey: user.key, baseURL: `${baseUrl()}/v1`, maxRetries: 0 })
    const { hostname, port } = new URL(baseUrl())
    // The SDK always dials wss://; the test gateway speaks plain ws on loopback.
    const plain = { createConnection: () => net.connect(Number(port), hostname) }
    for (const Client of [OpenAIRealtimeWS, OpenAIRealtimeBetaWS]) {
      const rt = new (Client as any)({ model: 'gpt-realtime', options: plain }, client)
      const errors: unknown[] = []
      rt.on('error', (error: unknown) => errors.push(error))
      const done = new Promise<any>((resolve) => rt.on('response.done', resolve))
      await withTimeout(new Promise((resolve) => rt.socket.once('open', resolve)), 'the SDK socket to open')
      rt.send({ type: 'response.create' })
      const event = await withTimeout(done, 'response.done')
      assert.equal(event.response.usage.output_tokens, 640)
      rt.close()
      assert.deepEqual(errors, [])
    }
    const upstreams = mock.realtime.connections.slice(-2)
    assert.isUndefined(upstreams[0].headers['openai-beta'])
    assert.equal(upstreams[1].headers['openai-beta'], 'realtime=v1')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
  })

  test('an upstream refusing the handshake fails over to the next channel; all refusing is a clear 502', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    mock.script({ status: 503 })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    assert.equal(backup.realtime.open, 1)
    session.ws.send(JSON.stringify({ type: 'response.create' }))
    await session.next('response.done')
    session.ws.close()
    await session.closed
    const rows = await usageRows(user.userId)
    assert.equal(rows[0].provider, 'custom')
    assert.equal(rows[0].served_model, 'gpt-realtime')
    // The backup channel served it.
    const channels = (await gateway()).catalog.channels
    assert.equal(rows[0].channel_id, channels.find((c) => c.name === 'realtime-backup')!.id)

    mock.script({ status: 500 })
    backup.script({ status: 502 })
    const failed = await refused('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(failed.status, 502)
    assert.equal(failed.body.error.code, 'provider_error')
    assert.notInclude(JSON.stringify(failed.body), '127.0.0.1')
    const last = (await usageRows(user.userId)).at(-1)
    assert.deepInclude(last, { status: 502, error_code: 'provider_error', attempts: 2 })
    await (await gateway()).health.reset()
  })

  test('a handshake the upstream does not answer in the channel connect timeout fails over', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const gw = await gateway()
    const main = gw.catalog.channels.find((c) => c.name === 'realtime-main')!
    const saved = main.timeouts
    main.timeouts = { ...saved, connect: 200 }
    try {
      mock.script({ latency_ms: 1500 })
      const started = Date.now()
      const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
      await session.next('session.created')
      assert.isBelow(Date.now() - started, 1400)
      assert.equal(backup.realtime.open, 1)
      session.ws.close()
      await session.closed
    } finally {
      main.timeouts = saved
      await gw.health.reset()
    }
  })

  test('a client close ends the upstream with its code; an upstream close reaches the client with its code', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    session.ws.close(4000, 'bye')
    await until(() => upstream.closed !== null, 'the upstream to close')
    assert.deepEqual(upstream.closed, { code: 4000, reason: 'bye' })

    const second = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await second.next('session.created')
    second.ws.send(JSON.stringify({ type: 'mock.close', code: 4001, reason: 'upstream says bye' }))
    assert.deepEqual(await withTimeout(second.closed, 'the client to be closed'), { code: 4001, reason: 'upstream says bye' })

    // A client that vanishes (no close frame) ends the upstream too.
    const third = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await third.next('session.created')
    const thirdUpstream = mock.realtime.connections.at(-1)!
    third.ws.terminate()
    await until(() => thirdUpstream.closed !== null, 'the upstream of a vanished client to close')
    assert.equal((await gateway()).service.inFlight, 0)
  })

  test('a client gone mid-response: the response is cancelled upstream and its usage still metered', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    session.ws.send(JSON.stringify({ type: 'response.create', mock: { hang: true, usage: { total_tokens: 150, input_tokens: 100, output_tokens: 50 } } }))
    await session.next('response.output_audio.delta')
    session.ws.terminate()
    await until(() => upstream.closed !== null, 'the upstream to close')
    assert.isTrue(upstream.received.some((e) => e.type === 'response.cancel'))
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.deepInclude(rows[0], { status: 200, error_code: 'response_cancelled', prompt_tokens: 100, completion_tokens: 50 })
    assert.equal(rows[0].cost, usd(100n * 4_000_000n + 50n * 16_000_000n))
  })

  test('the balance running out mid-session: an OpenAI error event, then the session is closed (1008)', async ({ assert }) => {
    // One default response costs $0.01504: the second one starts on a balance it empties.
    const user = await seedUser({ balance: '0.02' })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    session.ws.send(JSON.stringify({ type: 'response.create' }))
    await session.next('response.done')
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(session.ws.readyState, WebSocket.OPEN)
    session.ws.send(JSON.stringify({ type: 'response.create' }))
    const error = await session.next('error')
    assert.deepInclude(error.error, { type: 'insufficient_quota', code: 'insufficient_balance' })
    assert.equal((await withTimeout(session.closed, 'the close')).code, 1008)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    assert.isTrue(rows.every((r: any) => r.status === 200 && r.prompt_tokens === 1200))
    const { balance } = await balanceAndLedger(user.userId)
    assert.equal(balance, usd(2n * 10n ** 10n - 2n * (1200n * 4_000_000n + 640n * 16_000_000n)))
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("a key's spend cap: the session's own running response does not count against it; the response that reaches it ends the session", async ({ assert }) => {
    // Each default response costs $0.01504; its hold (1,024 output tokens at $16/1M) is $0.016384.
    const user = await seedUser({ balance: '5', key: { spendLimit: '0.05' } })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    for (let i = 1; i <= 4; i++) {
      // Events 30 ms apart: the check when a response starts runs while it is in progress (its hold taken).
      session.ws.send(JSON.stringify({ type: 'response.create', mock: { delay_ms: 30 } }))
      await until(() => session.events.filter((e) => e.type === 'response.done').length === i, `response ${i}`)
    }
    const error = await session.next('error')
    assert.deepInclude(error.error, { code: 'spend_limit_exceeded' })
    assert.equal((await withTimeout(session.closed, 'the close')).code, 1008)
    // The fourth response started at $0.04512 spent: its own hold did not make it look over the cap.
    assert.isFalse(upstream.received.some((e) => e.type === 'response.cancel'))
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 4)
    assert.isTrue(rows.every((r: any) => r.error_code === null))
  })

  test("a key's budget for the model: the session's own running response does not count against it; the response that reaches it ends the session", async ({ assert }) => {
    // As the spend cap above: each default response costs $0.01504, its hold $0.016384.
    const user = await seedUser({ balance: '5', key: { modelLimits: { 'gpt-realtime': { budget: '0.05' } } } })
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    for (let i = 1; i <= 4; i++) {
      session.ws.send(JSON.stringify({ type: 'response.create', mock: { delay_ms: 30 } }))
      await until(() => session.events.filter((e) => e.type === 'response.done').length === i, `response ${i}`)
    }
    const error = await session.next('error')
    assert.deepInclude(error.error, { code: 'budget_exceeded' })
    assert.equal((await withTimeout(session.closed, 'the close')).code, 1008)
    // The fourth response started at $0.04512 spent: its own hold on the model's budget did not end it early.
    assert.isFalse(upstream.received.some((e) => e.type === 'response.cancel'))
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 4)
    assert.isTrue(rows.every((r: any) => r.error_code === null))
  })

  test('the session length and message size limits', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    realtimeLimits.maxSessionMs = 300
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    const expired = await session.next('error')
    assert.deepInclude(expired.error, { code: 'session_expired' })
    assert.equal((await withTimeout(session.closed, 'the close')).code, 1000)

    realtimeLimits.maxSessionMs = saved.maxSessionMs
    realtimeLimits.maxMessageBytes = 1024
    const small = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await small.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    small.ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(2048) }))
    assert.equal((await withTimeout(small.closed, 'the close')).code, 1009)
    await until(() => upstream.closed !== null, 'the upstream to close')
    assert.isFalse(upstream.received.some((e) => e.type === 'input_audio_buffer.append'))
  })

  test("a key's limit for the model: each session opened is one request of its window, each response's tokens count there", async ({ assert }) => {
    const user = await seedUser({ balance: '5', key: { modelLimits: { 'gpt-realtime': { rpm: 2, tpm: 25 } } } })
    const auth = { headers: { authorization: `Bearer ${user.key}` } }
    const session = await connect('/v1/realtime?model=gpt-realtime', auth)
    await session.next('session.created')
    // 30 tokens: the model's minute of 25 is spent.
    session.ws.send(JSON.stringify({ type: 'response.create', mock: { usage: { total_tokens: 30, input_tokens: 20, output_tokens: 10 } } }))
    await session.next('response.done')
    session.ws.close(1000)
    await session.closed
    await until(async () => (await usageRows(user.userId)).some((r: any) => r.endpoint === 'realtime'), 'the response metered')
    // Before, sessions were not counted on the model's window: opened as often as the key's own limits allowed.
    const second = await refused('/v1/realtime?model=GPT-Realtime', auth)
    assert.equal(second.status, 429)
    assert.deepInclude(second.body.error, { code: 'rate_limit_exceeded' })
    assert.include(second.body.error.message, 'tokens per minute')
    assert.include(second.body.error.message, 'for model gpt-realtime')
  })

  test("a key's budget for the model, once spent, refuses a session under another spelling of it (GPT-Realtime) too", async ({ assert }) => {
    const user = await seedUser({ balance: '5', key: { modelLimits: { 'gpt-realtime': { budget: '0.000001' } } } })
    const auth = { headers: { authorization: `Bearer ${user.key}` } }
    const session = await connect('/v1/realtime?model=gpt-realtime', auth)
    await session.next('session.created')
    session.ws.send(JSON.stringify({ type: 'response.create', mock: { usage: { total_tokens: 30, input_tokens: 20, output_tokens: 10 } } }))
    await session.next('response.done')
    session.ws.close(1000)
    await session.closed
    await until(async () => (await usageRows(user.userId)).some((r: any) => r.endpoint === 'realtime'), 'the response metered')
    for (const model of ['gpt-realtime', 'GPT-Realtime']) {
      const again = await refused(`/v1/realtime?model=${model}`, auth)
      assert.equal(again.status, 402, model)
      assert.deepInclude(again.body.error, { code: 'budget_exceeded' })
      assert.include(again.body.error.message, "budget for model 'gpt-realtime'")
    }
  })

  test("a session holds one of the key's places in flight until it closes", async ({ assert }) => {
    const user = await seedUser({ balance: '5', key: { maxParallel: 1 } })
    const auth = { headers: { authorization: `Bearer ${user.key}` } }
    const session = await connect('/v1/realtime?model=gpt-realtime', auth)
    await session.next('session.created')
    assert.equal(parallelInFlight(user.keyId), 1)
    const second = await refused('/v1/realtime?model=gpt-realtime', auth)
    assert.equal(second.status, 429)
    assert.deepInclude(second.body.error, { code: 'concurrency_limit_exceeded' })
    session.ws.close()
    await session.closed
    await until(() => parallelInFlight(user.keyId) === 0, 'the place to free')
    const third = await connect('/v1/realtime?model=gpt-realtime', auth)
    await third.next('session.created')
    third.ws.close()
    await third.closed
  })

  test('a client that stops answering pings is dropped, and its upstream closed', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    realtimeLimits.heartbeatMs = 100
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    // A dead network path: nothing the gateway sends is read, no pong comes back.
    ;(session.ws as any)._socket.pause()
    await until(() => upstream.closed !== null, 'the upstream of an unresponsive client to close')
    assert.equal((await gateway()).service.inFlight, 0)
    session.ws.terminate()
  })

  test('a slow client pauses the upstream instead of filling the gateway (backpressure)', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    realtimeLimits.highWaterBytes = 64 * 1024
    const session = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${user.key}` } })
    await session.next('session.created')
    const upstream = mock.realtime.connections.at(-1)!
    // The client stops reading; the upstream sends 32 MB.
    ;(session.ws as any)._socket.pause()
    session.ws.send(JSON.stringify({ type: 'mock.flood', count: 256, size: 128 * 1024 }))
    await new Promise((r) => setTimeout(r, 800))
    // The mock cannot write everything: the gateway stopped reading it, so the bytes wait in the mock's own buffer.
    assert.isAbove(upstream.socket.bufferedAmount, 8 * 1024 * 1024)
    ;(session.ws as any)._socket.resume()
    await until(() => session.events.filter((e) => e.type === 'mock.flood').length === 256, 'every flood frame')
    session.ws.close()
    await session.closed
  })
})
