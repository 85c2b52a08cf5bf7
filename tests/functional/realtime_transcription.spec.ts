import { test } from '@japa/runner'
import { WebSocket } from 'ws'
import { setPrice } from '#actions/set_price'
import { realtimeLimits } from '#gateway/realtime/realtime_limits'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, baseUrl, gateway, openai, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/** A WebSocket client of the gateway with every event it received, in order. */
interface Session {
  ws: WebSocket
  events: any[]
  closed: Promise<{ code: number; reason: string }>
  next(type: string): Promise<any>
  count(type: string): number
}

function connect(path: string, options: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<Session> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${baseUrl().replace(/^http/, 'ws')}${path}`, options.protocols ?? [], { headers: options.headers ?? {}, perMessageDeflate: false })
    const events: any[] = []
    const waiters: Array<{ type: string; resolve: (e: any) => void }> = []
    ws.on('message', (data) => {
      const event = JSON.parse(data.toString())
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
        closed,
        count: (type) => events.filter((e) => e.type === type).length,
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
      res.on('end', () => reject({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }))
    })
  })
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

function usd(pico: bigint) {
  return `${pico / 10n ** 12n}.${(pico % 10n ** 12n).toString().padStart(12, '0')}`
}

/** `seconds` of 24 kHz 16-bit mono audio, appended in one event */
function append(session: Session, seconds: number) {
  session.ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: Buffer.alloc(Math.round(seconds * 48_000)).toString('base64') }))
}

const GA_UPDATE = (model: string, extra: Record<string, any> = {}, eventId = 'evt_update') =>
  JSON.stringify({ type: 'session.update', event_id: eventId, session: { type: 'transcription', audio: { input: { transcription: { model, ...extra } } } } })
const BETA_UPDATE = (model: string, eventId = 'evt_update') =>
  JSON.stringify({ type: 'transcription_session.update', event_id: eventId, session: { input_audio_transcription: { model } } })

/**
 * OpenAI's realtime transcription sessions through the gateway:
 * `?intent=transcription`, the model named by the client's session update
 * (GA or beta), routed, checked and metered per completed transcription.
 */
test.group('Realtime transcription sessions (?intent=transcription)', (group) => {
  let mock: MockUpstream
  let backup: MockUpstream
  const saved = { ...realtimeLimits }

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    backup = await startMock()
    await seedChannel({
      name: 'transcribe-main',
      baseUrl: mock.url,
      models: ['gpt-4o-transcribe', 'gpt-4o-mini-transcribe', 'whisper-1'],
      priority: 10,
      modelMapping: { 'gpt-4o-mini-transcribe': 'gpt-4o-mini-transcribe-2025-03-20' },
    })
    await seedChannel({ name: 'transcribe-backup', baseUrl: backup.url, models: ['gpt-4o-transcribe', 'other-transcribe'], priority: 1 })
    await seedChannel({ name: 'chat-only', provider: 'openrouter', baseUrl: mock.url, models: ['chat-model'] })
    await setPrice({ model: 'gpt-4o-transcribe', input: '2.5', output: '10', audioInput: '6' })
    await setPrice({ model: 'gpt-4o-mini-transcribe', input: '1.25', output: '5', audioInput: '3' })
    await setPrice({ model: 'other-transcribe', input: '1', output: '1' })
    await setPrice({ model: 'chat-model', input: '1', output: '1' })
    await setPrice({ model: 'whisper-1', input: '0', output: '0', perSecond: '0.0001' })
    await refreshCaches()
    return async () => {
      await mock.stop()
      await backup.stop()
    }
  })
  group.each.teardown(async () => {
    Object.assign(realtimeLimits, saved)
    mock.realtime.closeAll()
    backup.realtime.closeAll()
    await (await gateway()).health.reset()
  })

  test('GA: the session.update names the model; routed by it, the channel name goes up, each completed transcription metered once at its token prices', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const before = mock.realtime.connections.length
    const session = await connect('/v1/realtime?intent=transcription', { headers: { authorization: `Bearer ${user.key}` } })
    // Nothing is opened upstream before the model is known.
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(mock.realtime.connections.length, before)
    session.ws.send(GA_UPDATE('gpt-4o-mini-transcribe', { prompt: 'names: Anya' }))
    const created = await session.next('session.created')
    assert.equal(created.session.type, 'transcription')
    const updated = await session.next('session.updated')
    assert.equal(updated.session.audio.input.transcription.model, 'gpt-4o-mini-transcribe-2025-03-20')
    const upstream = mock.realtime.connections.at(-1)!
    assert.equal(upstream.path, '/v1/realtime?intent=transcription')
    assert.equal(upstream.headers.authorization, 'Bearer upstream-secret')
    assert.deepEqual(upstream.transcriptionModels, ['gpt-4o-mini-transcribe-2025-03-20'])

    // 1.5 s of audio, committed; the upstream repeats its completed event: relayed twice, billed once.
    append(session, 1)
    append(session, 0.5)
    session.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit', mock: { repeat: true } }))
    await until(() => session.count('conversation.item.input_audio_transcription.completed') === 2, 'the completed events')
    assert.equal(session.count('conversation.item.input_audio_transcription.delta'), 2)
    assert.equal(session.count('input_audio_buffer.committed'), 1)
    const completed = await session.next('conversation.item.input_audio_transcription.completed')
    assert.deepEqual(completed.usage, { type: 'tokens', total_tokens: 22, input_tokens: 17, input_token_details: { audio_tokens: 15, text_tokens: 2 }, output_tokens: 5 })
    // A second utterance (the prompt's words again among its input tokens).
    append(session, 1)
    session.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit' }))
    await until(() => session.count('conversation.item.input_audio_transcription.completed') === 3, 'the second utterance')
    session.ws.close(1000)
    assert.equal((await session.closed).code, 1000)

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r: any) => [r.endpoint, r.model, r.served_model, r.status, r.prompt_tokens, r.completion_tokens, r.stream]),
      [
        ['realtime.transcription', 'gpt-4o-mini-transcribe', 'gpt-4o-mini-transcribe-2025-03-20', 200, 17, 5, false],
        ['realtime.transcription', 'gpt-4o-mini-transcribe', 'gpt-4o-mini-transcribe-2025-03-20', 200, 12, 5, false],
      ]
    )
    // Audio tokens at the audio input price ($3), text tokens at the input price ($1.25), output at $5 (per 1M).
    const first = 15n * 3_000_000n + 2n * 1_250_000n + 5n * 5_000_000n
    const second = 10n * 3_000_000n + 2n * 1_250_000n + 5n * 5_000_000n
    assert.deepEqual(rows.map((r: any) => r.cost), [usd(first), usd(second)])
    const { balance, ledger } = await balanceAndLedger(user.userId)
    assert.equal(balance, usd(5n * 10n ** 12n - first - second))
    assert.equal(ledger, balance)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('beta: transcription_session.update with whisper-1 is billed per second; a change to a model the channel serves goes on, to one it does not is refused', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const session = await connect('/v1/realtime?intent=transcription', { headers: { authorization: `Bearer ${user.key}`, 'openai-beta': 'realtime=v1' } })
    session.ws.send(BETA_UPDATE('whisper-1'))
    await session.next('transcription_session.created')
    await session.next('transcription_session.updated')
    const upstream = mock.realtime.connections.at(-1)!
    assert.equal(upstream.headers['openai-beta'], 'realtime=v1')
    append(session, 2.5)
    session.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit' }))
    const completed = await session.next('conversation.item.input_audio_transcription.completed')
    assert.deepEqual(completed.usage, { type: 'duration', seconds: 2.5 })

    // Served by the session's channel: goes up, and the next transcription is that model's.
    session.ws.send(BETA_UPDATE('gpt-4o-transcribe', 'evt_change'))
    await until(() => session.count('transcription_session.updated') === 2, 'the second update')
    // Only on another channel: refused, the session going on as it was.
    session.ws.send(BETA_UPDATE('other-transcribe', 'evt_other'))
    const refusal = await session.next('error')
    assert.deepInclude(refusal.error, { code: 'model_change_not_supported', param: 'session.input_audio_transcription.model', event_id: 'evt_other' })
    append(session, 1)
    session.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit' }))
    await until(() => session.count('conversation.item.input_audio_transcription.completed') === 2, 'the second transcription')
    assert.deepEqual(upstream.transcriptionModels, ['whisper-1', 'gpt-4o-transcribe'])
    session.ws.close()
    await session.closed

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r: any) => [r.endpoint, r.model, r.prompt_tokens, r.completion_tokens, r.audio_seconds, r.cost]),
      [
        ['realtime.transcription', 'whisper-1', 0, 0, '2.500', usd((2500n * 100_000_000n) / 1000n)],
        ['realtime.transcription', 'gpt-4o-transcribe', 10, 5, null, usd(10n * 6_000_000n + 5n * 10_000_000n)],
      ]
    )
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("the key's model globs and balance hold for the model the update names: an error event answering it, a close, no upstream, the refusal's row", async ({ assert }) => {
    const allowed = await seedUser({ balance: '5', keyModels: ['gpt-4o-transcribe', 'chat-model'] })
    const poor = await seedUser({})
    const before = mock.realtime.connections.length + backup.realtime.connections.length
    const refusedWith = async (key: string, frame: string) => {
      const session = await connect('/v1/realtime?intent=transcription', { headers: { authorization: `Bearer ${key}` } })
      session.ws.send(frame)
      const error = await session.next('error')
      return { error: error.error, close: await withTimeout(session.closed, 'the close') }
    }

    const notAllowed = await refusedWith(allowed.key, GA_UPDATE('whisper-1'))
    assert.deepInclude(notAllowed.error, { code: 'model_not_allowed', type: 'permission_error', param: 'session.audio.input.transcription.model', event_id: 'evt_update' })
    assert.equal(notAllowed.close.code, 1008)
    const noRealtime = await refusedWith(allowed.key, BETA_UPDATE('chat-model', 'evt_chat'))
    assert.deepInclude(noRealtime.error, { code: 'unsupported_endpoint', event_id: 'evt_chat' })
    const empty = await refusedWith(poor.key, GA_UPDATE('gpt-4o-transcribe'))
    assert.deepInclude(empty.error, { code: 'insufficient_balance' })
    assert.equal(empty.close.code, 1008)
    assert.equal(mock.realtime.connections.length + backup.realtime.connections.length, before)

    // A key that is no key: refused before the upgrade, as plain HTTP.
    const bad = await connect('/v1/realtime?intent=transcription', { headers: { authorization: 'Bearer sk-not-a-key' } }).catch((e) => e)
    assert.equal(bad.status, 401)
    assert.equal(bad.body.error.code, 'invalid_api_key')
    // The model in the handshake (?intent=transcription&model=): checked before the upgrade, as a conversation session's.
    const early = await connect('/v1/realtime?intent=transcription&model=whisper-1', { headers: { authorization: `Bearer ${allowed.key}` } }).catch((e) => e)
    assert.equal(early.status, 403)
    assert.equal(early.body.error.code, 'model_not_allowed')

    assert.deepEqual(
      (await usageRows(allowed.userId)).map((r: any) => [r.endpoint, r.model, r.status, r.error_code]),
      [
        ['realtime.transcription', 'whisper-1', 403, 'model_not_allowed'],
        ['realtime.transcription', 'chat-model', 400, 'unsupported_endpoint'],
        ['realtime.transcription', 'whisper-1', 403, 'model_not_allowed'],
      ]
    )
    assert.deepEqual((await usageRows(poor.userId)).map((r: any) => [r.endpoint, r.status]), [['realtime.transcription', 402]])
  })

  test('no update naming the model in time, or audio before it: missing_model, close 1008', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    realtimeLimits.modelWaitMs = 300
    const idle = await connect('/v1/realtime?intent=transcription', { headers: { authorization: `Bearer ${user.key}` } })
    const error = await idle.next('error')
    assert.deepInclude(error.error, { code: 'missing_model', type: 'invalid_request_error' })
    assert.equal((await withTimeout(idle.closed, 'the close')).code, 1008)

    realtimeLimits.modelWaitMs = saved.modelWaitMs
    const talker = await connect('/v1/realtime?intent=transcription', { headers: { authorization: `Bearer ${user.key}` } })
    for (let i = 0; i < 12; i++) append(talker, 2)
    assert.deepInclude((await talker.next('error')).error, { code: 'missing_model' })
    assert.equal((await withTimeout(talker.closed, 'the close')).code, 1008)
  })

  test('an upstream refusing the handshake fails over to the next channel serving the model; all refusing: an error event, 1011, the row', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    mock.script({ status: 503 })
    const session = await connect('/v1/realtime?intent=transcription', { headers: { authorization: `Bearer ${user.key}` } })
    session.ws.send(GA_UPDATE('gpt-4o-transcribe'))
    await session.next('session.updated')
    assert.equal(backup.realtime.open, 1)
    append(session, 1)
    session.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit' }))
    await session.next('conversation.item.input_audio_transcription.completed')
    session.ws.close()
    await session.closed
    const channels = (await gateway()).catalog.channels
    const [served] = await usageRows(user.userId)
    assert.equal(served.channel_id, channels.find((c) => c.name === 'transcribe-backup')!.id)
    assert.deepInclude(served, { model: 'gpt-4o-transcribe', status: 200, prompt_tokens: 10 })

    mock.script({ status: 500 })
    backup.script({ status: 502 })
    const failing = await connect('/v1/realtime?intent=transcription', { headers: { authorization: `Bearer ${user.key}` } })
    failing.ws.send(GA_UPDATE('gpt-4o-transcribe', {}, 'evt_failing'))
    const error = await failing.next('error')
    assert.deepInclude(error.error, { code: 'provider_error', event_id: 'evt_failing' })
    assert.notInclude(JSON.stringify(error), '127.0.0.1')
    assert.equal((await withTimeout(failing.closed, 'the close')).code, 1011)
    assert.deepInclude((await usageRows(user.userId)).at(-1), { endpoint: 'realtime.transcription', status: 502, error_code: 'provider_error', attempts: 2 })
  })

  test('a client gone right after committing its audio: the transcription the provider bills is waited for and metered', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const session = await connect('/v1/realtime?intent=transcription', { headers: { authorization: `Bearer ${user.key}` } })
    session.ws.send(GA_UPDATE('gpt-4o-transcribe'))
    await session.next('session.updated')
    const upstream = mock.realtime.connections.at(-1)!
    append(session, 2)
    session.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit', mock: { delay_ms: 300 } }))
    await session.next('input_audio_buffer.committed')
    session.ws.close(1000)
    await session.closed
    await until(async () => (await usageRows(user.userId)).length === 1, 'the transcription row')
    assert.deepInclude((await usageRows(user.userId))[0], { endpoint: 'realtime.transcription', model: 'gpt-4o-transcribe', status: 200, prompt_tokens: 20, completion_tokens: 5 })
    await until(() => upstream.closed !== null, 'the upstream to close')
  })

  test('the balance running out on a transcription: billed in full, then an error event and close 1008', async ({ assert }) => {
    const user = await seedUser({ balance: '0.0001' })
    const session = await connect('/v1/realtime?intent=transcription', { headers: { authorization: `Bearer ${user.key}` } })
    session.ws.send(GA_UPDATE('whisper-1'))
    await session.next('session.updated')
    append(session, 2.5)
    session.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit' }))
    await session.next('conversation.item.input_audio_transcription.completed')
    const error = await session.next('error')
    assert.deepInclude(error.error, { type: 'insufficient_quota', code: 'insufficient_balance' })
    assert.equal((await withTimeout(session.closed, 'the close')).code, 1008)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r: any) => [r.status, r.audio_seconds]), [[200, '2.500']])
    // $0.0001 less 2.5 s at $0.0001 a second.
    assert.equal((await balanceAndLedger(user.userId)).balance, '-0.000150000000')
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("client secrets for transcription sessions: the SDKs' beta transcriptionSessions.create and GA clientSecrets.create, the session opened at once with the secret's configuration", async ({ assert }) => {
    const user = await seedUser({ balance: '5', keyModels: ['gpt-4o-*', 'whisper-1'] })
    const client = openai(user.key)

    const beta = await client.beta.realtime.transcriptionSessions.create({
      input_audio_transcription: { model: 'gpt-4o-mini-transcribe', language: 'en' },
      turn_detection: null,
    } as any)
    assert.match(beta.client_secret.value, /^ek_gw_/)
    assert.equal((beta as any).object, 'realtime.transcription_session')
    assert.deepEqual(beta.input_audio_transcription, { model: 'gpt-4o-mini-transcribe', language: 'en' } as any)
    // A browser: the secret in the subprotocol, the beta dialect; no ?intent needed (the secret is a transcription session's).
    const browser = await connect('/v1/realtime', { protocols: ['realtime', `openai-insecure-api-key.${beta.client_secret.value}`, 'openai-beta.realtime-v1'] })
    await browser.next('transcription_session.updated')
    const upstream = mock.realtime.connections.at(-1)!
    assert.equal(upstream.path, '/v1/realtime?intent=transcription')
    assert.deepEqual(upstream.received[0], {
      type: 'transcription_session.update',
      session: { input_audio_transcription: { model: 'gpt-4o-mini-transcribe-2025-03-20', language: 'en' }, turn_detection: null },
    })
    append(browser, 1)
    browser.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit' }))
    await browser.next('conversation.item.input_audio_transcription.completed')
    browser.ws.close()
    await browser.closed

    const ga = await client.realtime.clientSecrets.create({ session: { type: 'transcription', audio: { input: { transcription: { model: 'whisper-1' } } } } })
    assert.match(ga.value, /^ek_gw_/)
    assert.equal(ga.session.type, 'transcription')
    const server = await connect('/v1/realtime', { headers: { authorization: `Bearer ${ga.value}` } })
    const updated = await server.next('session.updated')
    assert.equal(updated.session.audio.input.transcription.model, 'whisper-1')
    append(server, 1.5)
    server.ws.send(JSON.stringify({ type: 'input_audio_buffer.commit' }))
    await server.next('conversation.item.input_audio_transcription.completed')
    server.ws.close()
    await server.closed

    assert.deepEqual(
      (await usageRows(user.userId)).map((r: any) => [r.endpoint, r.model, r.prompt_tokens, r.audio_seconds]),
      [
        ['realtime.transcription', 'gpt-4o-mini-transcribe', 10, null],
        ['realtime.transcription', 'whisper-1', 0, '1.500'],
      ]
    )

    // Minting is checked as the session would be: the key's globs, a model named, a transcription session not taken as a call.
    const notAllowed = await client.beta.realtime.transcriptionSessions.create({ input_audio_transcription: { model: 'other-transcribe' } } as any).catch((e) => e)
    assert.equal(notAllowed.status, 403)
    assert.equal(notAllowed.error.code, 'model_not_allowed')
    const noModel = await client.realtime.clientSecrets.create({ session: { type: 'transcription' } }).catch((e) => e)
    assert.equal(noModel.status, 400)
    assert.deepInclude(noModel.error, { code: 'missing_model', param: 'session.audio.input.transcription.model' })
    const call = await fetch(`${baseUrl()}/v1/realtime/calls`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${ga.value}`, 'content-type': 'application/sdp' },
      body: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n',
    })
    assert.equal(call.status, 400)
    assert.equal(((await call.json()) as any).error.code, 'unsupported_session_type')
  })
})
