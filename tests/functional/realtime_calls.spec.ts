import { test } from '@japa/runner'
import { createHash } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import { WebSocket } from 'ws'
import { liveCalls } from '#gateway/realtime/realtime_calls'
import { clientSecretsSweep } from '#services/retention_sweeps'
import { UsageRetentionTimer } from '#services/usage_retention_timer'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, baseUrl, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/** A gateway WebSocket client: its events, its close. */
interface Session {
  ws: WebSocket
  events: any[]
  closed: Promise<{ code: number; reason: string }>
  next(type: string): Promise<any>
}

interface Refused {
  status: number
  body: any
}

function connect(path: string, options: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<Session> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${baseUrl().replace(/^http/, 'ws')}${path}`, options.protocols ?? [], { headers: options.headers ?? {}, perMessageDeflate: false })
    const events: any[] = []
    ws.on('message', (data, isBinary) => {
      if (!isBinary) events.push(JSON.parse(data.toString()))
    })
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })))
    ws.on('error', () => {})
    ws.once('open', () =>
      resolve({
        ws,
        events,
        closed,
        next: async (type) => {
          await until(() => events.some((e) => e.type === type), `event ${type}`)
          return events.find((e) => e.type === type)
        },
      })
    )
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => reject({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') } satisfies Refused))
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

async function until(check: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

function post(path: string, key: string | null, body: unknown) {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (key !== null) headers.authorization = `Bearer ${key}`
  return fetch(`${baseUrl()}${path}`, { method: 'POST', headers, body: JSON.stringify(body) })
}

async function mint(key: string, body: unknown = { session: { type: 'realtime', model: 'gpt-realtime' } }) {
  const res = await post('/v1/realtime/client_secrets', key, body)
  return { status: res.status, body: (await res.json()) as any }
}

const OFFER = 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n'

function offerCall(key: string, options: { form?: Record<string, string>; query?: string } = {}) {
  if (options.form) {
    const form = new FormData()
    for (const [name, value] of Object.entries(options.form)) form.append(name, value)
    return fetch(`${baseUrl()}/v1/realtime/calls${options.query ?? ''}`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form })
  }
  return fetch(`${baseUrl()}/v1/realtime/calls${options.query ?? ''}`, {
    method: 'POST',
    headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/sdp', 'origin': 'https://voice.example.com' },
    body: OFFER,
  })
}

/** One default mock response: 1200 input and 640 output tokens at $4 / $16 per 1M */
const RESPONSE_PICO = 1200n * 4_000_000n + 640n * 16_000_000n

/**
 * What browser voice apps use: client secrets minted by a server with its
 * key (POST /v1/realtime/client_secrets), a WebSocket opened with one, and
 * WebRTC calls (POST /v1/realtime/calls) metered from OpenAI's sideband.
 */
test.group('Realtime client secrets and WebRTC calls', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'realtime-main', baseUrl: mock.url, models: ['gpt-realtime', 'gpt-realtime-mini'], priority: 10, modelMapping: { 'gpt-realtime-mini': 'gpt-realtime-mini-2025-10-06' } })
    await seedChannel({ name: 'chat-only', provider: 'openrouter', baseUrl: mock.url, models: ['chat-model'] })
    await seedPrice('gpt-realtime', '4', '16')
    await seedPrice('gpt-realtime-mini', '4', '16')
    return () => mock.stop()
  })
  group.each.teardown(() => mock.realtime.closeAll())

  test('a minted secret opens the WebSocket as its key: the session configured as minted, each response metered to the key', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const before = Math.floor(Date.now() / 1000)
    const minted = await mint(user.key, {
      expires_after: { anchor: 'created_at', seconds: 120 },
      session: { type: 'realtime', model: 'gpt-realtime', instructions: 'Speak like a pirate.', audio: { output: { voice: 'marin' } } },
    })
    assert.equal(minted.status, 200)
    assert.match(minted.body.value, /^ek_gw_[A-Za-z0-9_-]{43}$/)
    assert.closeTo(minted.body.expires_at, before + 120, 2)
    assert.deepInclude(minted.body.session, { type: 'realtime', model: 'gpt-realtime', instructions: 'Speak like a pirate.', object: 'realtime.session' })
    // Only its hash is kept.
    const stored = await db.from('realtime_client_secrets').where('api_key_id', user.keyId)
    assert.lengthOf(stored, 1)
    assert.equal(stored[0].secret_hash, createHash('sha256').update(minted.body.value).digest('hex'))
    assert.notInclude(JSON.stringify(stored[0]), minted.body.value)

    // A browser: the secret in the subprotocol, no model in the URL (the secret's).
    const session = await connect('/v1/realtime', { protocols: ['realtime', `openai-insecure-api-key.${minted.body.value}`] })
    assert.equal(session.ws.protocol, 'realtime')
    const upstream = mock.realtime.connections.at(-1)!
    assert.equal(upstream.path, '/v1/realtime?model=gpt-realtime')
    assert.equal(upstream.headers.authorization, 'Bearer upstream-secret')
    // The minted configuration went up first, without the model; the client sees the upstream's session.updated.
    const updated = await session.next('session.updated')
    assert.equal(updated.session.instructions, 'Speak like a pirate.')
    assert.deepEqual(upstream.received[0], { type: 'session.update', session: { type: 'realtime', instructions: 'Speak like a pirate.', audio: { output: { voice: 'marin' } } } })
    session.ws.send(JSON.stringify({ type: 'response.create' }))
    await session.next('response.done')
    session.ws.close(1000)
    await session.closed

    // Server SDKs: the secret as the Bearer key, the model named as minted.
    const again = await connect('/v1/realtime?model=gpt-realtime', { headers: { authorization: `Bearer ${minted.body.value}` } })
    again.ws.send(JSON.stringify({ type: 'response.create', mock: { usage: { total_tokens: 30, input_tokens: 20, output_tokens: 10 } } }))
    await again.next('response.done')
    again.ws.close(1000)
    await again.closed

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r: any) => [r.endpoint, r.status, r.api_key_id, r.model, r.prompt_tokens, r.completion_tokens]),
      [
        ['realtime', 200, user.keyId, 'gpt-realtime', 1200, 640],
        ['realtime', 200, user.keyId, 'gpt-realtime', 20, 10],
      ]
    )
    const { balance } = await balanceAndLedger(user.userId)
    const spent = RESPONSE_PICO + 20n * 4_000_000n + 10n * 16_000_000n
    assert.equal(balance, `4.${(10n ** 12n - spent).toString().padStart(12, '0')}`)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('expired, unknown and mismatched secrets are refused before the upgrade in OpenAI error JSON; no upstream is opened', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const minted = await mint(user.key, { expires_after: { seconds: 10 }, session: { model: 'gpt-realtime' } })
    assert.equal(minted.status, 200)
    const opened = mock.realtime.connections.length

    const wrong = await refused('/v1/realtime?model=gpt-realtime', { headers: { authorization: 'Bearer ek_gw_not-a-secret' } })
    assert.equal(wrong.status, 401)
    assert.deepEqual(wrong.body.error, { message: 'Invalid or expired client secret', type: 'authentication_error', code: 'invalid_api_key', param: null })

    const otherModel = await refused('/v1/realtime?model=gpt-realtime-mini', { headers: { authorization: `Bearer ${minted.body.value}` } })
    assert.equal(otherModel.status, 400)
    assert.deepInclude(otherModel.body.error, { code: 'model_mismatch', param: 'model' })

    await db.from('realtime_client_secrets').where('api_key_id', user.keyId).update({ expires_at: new Date(Date.now() - 1000) })
    const expired = await refused('/v1/realtime', { protocols: ['realtime', `openai-insecure-api-key.${minted.body.value}`] })
    assert.equal(expired.status, 401)
    assert.equal(expired.body.error.message, 'Invalid or expired client secret')

    assert.equal(mock.realtime.connections.length, opened)
    // Refused after the secret was read (the model mismatch): one row, as a key's refusal; the 401s none.
    assert.deepEqual((await usageRows(user.userId)).map((r: any) => [r.status, r.error_code]), [[400, 'model_mismatch']])
    // A minting deletes nothing (it stays one insert): the hourly retention timer deletes the expired rows, in batches.
    await db.rawQuery(
      `INSERT INTO realtime_client_secrets (secret_hash, api_key_id, model, session, expires_at)
       SELECT md5('expired ' || i) || md5('more ' || i), ?, 'gpt-realtime', '{}', now() - interval '1 hour' - i * interval '1 second'
       FROM generate_series(1, 2500) i`,
      [user.keyId]
    )
    const expiredCount = async () => Number((await db.from('realtime_client_secrets').where('expires_at', '<', new Date()).count('* as n').first()).n)
    assert.equal((await mint(user.key)).status, 200)
    assert.equal(await expiredCount(), 2501)
    const said: string[] = []
    const timer = new UsageRetentionTimer({ days: () => 0, log: (m) => said.push(m), sweeps: [clientSecretsSweep] })
    await timer.tick()
    assert.equal(await expiredCount(), 0)
    assert.lengthOf(await db.from('realtime_client_secrets').where('api_key_id', user.keyId), 1, 'the live secret stays')
    assert.deepEqual(said, ['realtime client secrets: 2501 expired deleted'])
    await timer.stop()
  })

  test('a secret is no key: refused on the HTTP API; minting is checked as a call of the model would be', async ({ assert }) => {
    const user = await seedUser({ balance: '5', keyModels: ['gpt-realtime', 'chat-model'] })
    const minted = await mint(user.key)
    assert.equal(minted.status, 200)
    const chat = await post('/v1/chat/completions', minted.body.value, { model: 'chat-model', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(chat.status, 401)
    assert.equal(((await chat.json()) as any).error.code, 'invalid_api_key')
    const models = await fetch(`${baseUrl()}/v1/models`, { headers: { authorization: `Bearer ${minted.body.value}` } })
    assert.equal(models.status, 401)
    // Nor may a secret mint another.
    assert.equal((await mint(minted.body.value)).status, 401)

    const refusals = [
      [() => mint(user.key, { expires_after: { seconds: 5 }, session: { model: 'gpt-realtime' } }), 400, 'invalid_request'],
      [() => mint(user.key, { expires_after: { seconds: 7201 }, session: { model: 'gpt-realtime' } }), 400, 'invalid_request'],
      [() => mint(user.key, { session: { type: 'realtime' } }), 400, 'missing_model'],
      [() => mint(user.key, { session: { model: 'gpt-realtime-mini' } }), 403, 'model_not_allowed'],
      [() => mint(user.key, { session: { model: 'chat-model' } }), 400, 'unsupported_endpoint'],
      [() => mint(user.key, { session: { model: 'gpt-realtime', audio: { input: { transcription: { model: 'whisper-1' } } } } }), 403, 'model_not_allowed'],
    ] as const
    for (const [call, status, code] of refusals) {
      const answer = await call()
      assert.equal(answer.status, status, JSON.stringify(answer.body))
      assert.equal(answer.body.error.code, code)
    }
    const poor = await seedUser({})
    const empty = await mint(poor.key)
    assert.equal(empty.status, 402)
    assert.equal(empty.body.error.code, 'insufficient_balance')
    assert.equal((await post('/v1/realtime/client_secrets', null, {})).status, 401)
    assert.lengthOf(await db.from('realtime_client_secrets').where('api_key_id', user.keyId), 1)

    // The beta form: the session's fields at the top, a one-minute secret inside the session.
    const now = Math.floor(Date.now() / 1000)
    const beta = await post('/v1/realtime/sessions', user.key, { model: 'gpt-realtime', voice: 'verse' })
    const session = (await beta.json()) as any
    assert.equal(beta.status, 200)
    assert.deepInclude(session, { object: 'realtime.session', model: 'gpt-realtime', voice: 'verse' })
    assert.match(session.client_secret.value, /^ek_gw_/)
    assert.closeTo(session.client_secret.expires_at, now + 60, 2)
  })

  test('a WebRTC call with a secret: the offer relayed with the channel key, the answer under a gateway id, its sideband metered once per response.done, the hangup relayed', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const minted = await mint(user.key, { session: { type: 'realtime', model: 'gpt-realtime-mini', instructions: 'Be brief.' } })
    const res = await offerCall(minted.body.value)
    assert.equal(res.status, 201)
    assert.equal(res.headers.get('content-type'), 'application/sdp')
    const location = res.headers.get('location')!
    assert.match(location, /^\/v1\/realtime\/calls\/rtc_gw_[0-9a-f]{32}$/)
    // A browser page may read it (to hand its server the call's id).
    assert.include(res.headers.get('access-control-expose-headers')!, 'location')
    const answer = await res.text()
    const upstreamCall = mock.realtime.calls.at(-1)!
    assert.equal(answer, `v=0\r\no=- ${upstreamCall.id.slice(9)} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=mock-answer:${upstreamCall.id}\r\n`)
    // The provider got the offer, the secret's session under the channel's model name, and the channel's key.
    assert.equal(upstreamCall.sdp, OFFER)
    assert.deepEqual(upstreamCall.session, { type: 'realtime', model: 'gpt-realtime-mini-2025-10-06', instructions: 'Be brief.' })
    assert.equal(upstreamCall.authorization, 'Bearer upstream-secret')
    // The sideband is open with the channel's key before the answer was given.
    const sideband = mock.realtime.sideband(upstreamCall.id)!
    assert.equal(sideband.path, `/v1/realtime?call_id=${upstreamCall.id}`)
    assert.equal(sideband.headers.authorization, 'Bearer upstream-secret')
    assert.equal(liveCalls(), 1)

    await sideband.respond({})
    await sideband.respond({ usage: { total_tokens: 30, input_tokens: 20, output_tokens: 10 } })
    await until(async () => (await usageRows(user.userId)).length === 2, 'two rows')
    // Exactly once each: nothing more comes of them.
    await new Promise((r) => setTimeout(r, 200))
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r: any) => [r.endpoint, r.status, r.api_key_id, r.model, r.served_model, r.prompt_tokens, r.completion_tokens]),
      [
        ['realtime', 200, user.keyId, 'gpt-realtime-mini', 'gpt-realtime-mini-2025-10-06', 1200, 640],
        ['realtime', 200, user.keyId, 'gpt-realtime-mini', 'gpt-realtime-mini-2025-10-06', 20, 10],
      ]
    )

    // Another user's hangup finds no such call; the owner's is relayed, and the sideband closes with the call.
    const stranger = await seedUser({ balance: '1' })
    const other = await fetch(`${baseUrl()}${location}/hangup`, { method: 'POST', headers: { authorization: `Bearer ${stranger.key}` } })
    assert.equal(other.status, 404)
    assert.equal(((await other.json()) as any).error.code, 'call_not_found')
    const hangup = await fetch(`${baseUrl()}${location}/hangup`, { method: 'POST', headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(hangup.status, 200)
    assert.isTrue(upstreamCall.ended)
    await until(() => liveCalls() === 0, 'the call to end')
    assert.lengthOf(await usageRows(user.userId), 2)
    const { balance } = await balanceAndLedger(user.userId)
    const spent = RESPONSE_PICO + 20n * 4_000_000n + 10n * 16_000_000n
    assert.equal(balance, `4.${(10n ** 12n - spent).toString().padStart(12, '0')}`)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("the app's server joins its call's events through the gateway (?call_id=): relayed, not metered again", async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const minted = await mint(user.key)
    const res = await offerCall(minted.body.value)
    assert.equal(res.status, 201)
    const id = res.headers.get('location')!.split('/').pop()!
    const upstreamCall = mock.realtime.calls.at(-1)!

    // Another user's key, or the browser's secret: refused before the upgrade.
    const stranger = await seedUser({ balance: '1' })
    const unknown = await refused(`/v1/realtime?call_id=${id}`, { headers: { authorization: `Bearer ${stranger.key}` } })
    assert.equal(unknown.status, 404)
    assert.equal(unknown.body.error.code, 'call_not_found')
    const bySecret = await refused(`/v1/realtime?call_id=${id}`, { headers: { authorization: `Bearer ${minted.body.value}` } })
    assert.equal(bySecret.status, 401)

    const server = await connect(`/v1/realtime?call_id=${id}`, { headers: { authorization: `Bearer ${user.key}` } })
    await server.next('session.created')
    const joined = mock.realtime.connections.at(-1)!
    assert.equal(joined.path, `/v1/realtime?call_id=${upstreamCall.id}`)
    assert.equal(joined.headers.authorization, 'Bearer upstream-secret')
    // The server's own event goes up (tools, instructions); the response reaches both sidebands.
    server.ws.send(JSON.stringify({ type: 'response.create' }))
    await server.next('response.done')
    await until(async () => (await usageRows(user.userId)).length === 1, 'the row')
    await new Promise((r) => setTimeout(r, 200))
    assert.deepEqual((await usageRows(user.userId)).map((r: any) => [r.status, r.prompt_tokens]), [[200, 1200]])

    // The call ends: every sideband closes.
    mock.realtime.hangUp(upstreamCall.id)
    assert.equal((await server.closed).code, 1000)
    await until(() => liveCalls() === 0, 'the call to end')
    assert.lengthOf(await usageRows(user.userId), 1)
  })

  test('a call with a key (multipart sdp and session): the balance checked before the call; a call that cannot be metered is hung up; one that empties the balance is ended', async ({ assert }) => {
    const poor = await seedUser({})
    const calls = mock.realtime.calls.length
    const refusedCall = await offerCall(poor.key, { form: { sdp: OFFER, session: JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }) } })
    assert.equal(refusedCall.status, 402)
    assert.equal(((await refusedCall.json()) as any).error.code, 'insufficient_balance')
    assert.equal(mock.realtime.calls.length, calls)
    assert.deepEqual((await usageRows(poor.userId)).map((r: any) => [r.endpoint, r.status]), [['realtime', 402]])

    const user = await seedUser({ balance: '0.02' })
    const notSdp = await offerCall(user.key, { form: { sdp: 'hello', session: JSON.stringify({ model: 'gpt-realtime' }) } })
    assert.equal(notSdp.status, 400)
    assert.equal(((await notSdp.json()) as any).error.code, 'invalid_sdp')
    const chatModel = await offerCall(user.key, { query: '?model=chat-model' })
    assert.equal(chatModel.status, 400)
    assert.equal(((await chatModel.json()) as any).error.code, 'unsupported_endpoint')

    // The sideband refused (the call made, its usage unreadable): 502, and the provider's call hung up.
    mock.script({}).script({ status: 500 })
    const unmetered = await offerCall(user.key, { query: '?model=gpt-realtime' })
    assert.equal(unmetered.status, 502)
    assert.equal(((await unmetered.json()) as any).error.code, 'provider_error')
    await until(() => mock.realtime.calls.at(-1)!.ended, 'the unmetered call hung up')
    assert.equal(liveCalls(), 0)

    // A call whose second response empties the balance: the sideband ends it, the call is hung up.
    const res = await offerCall(user.key, { form: { sdp: OFFER, session: JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }) } })
    assert.equal(res.status, 201)
    const upstreamCall = mock.realtime.calls.at(-1)!
    assert.equal(upstreamCall.model, 'gpt-realtime')
    const sideband = mock.realtime.sideband(upstreamCall.id)!
    await sideband.respond({})
    await new Promise((r) => setTimeout(r, 100))
    assert.isFalse(upstreamCall.ended)
    await sideband.respond({})
    await until(() => upstreamCall.ended, 'the call hung up by the gateway')
    await until(() => liveCalls() === 0, 'the sideband closed')
    const rows = (await usageRows(user.userId)).filter((r: any) => r.status === 200)
    assert.lengthOf(rows, 2)
    const { balance } = await balanceAndLedger(user.userId)
    assert.equal(balance, `-0.${(2n * RESPONSE_PICO - 2n * 10n ** 10n).toString().padStart(12, '0')}`)
    assert.deepEqual(await ledgerProblems(), [])
  })
})
