import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { WebSocket } from 'ws'
import { regenerateApiKey } from '#actions/regenerate_api_key'
import { updateApiKey } from '#actions/update_api_key'
import { parallelInFlight } from '#gateway/limits/parallel_requests'
import { liveCalls } from '#gateway/realtime/realtime_calls'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/**
 * Hostile input on the Realtime API's client secrets and WebRTC calls merged
 * last pass: bodies of 32 MB taken (a secret's session kept whole in
 * Postgres, an SDP offer relayed whole), calls that gave back their key's
 * place among its calls in flight with the offer's answer and skipped its
 * window for the model (any number at once on a key capped to one), a
 * sideband dropped under a call that left the call running unmetered, and a
 * transcription model set through the browser's data channel (which the
 * gateway never sees) billed though the key may not use it, a leaked key's
 * secrets outliving its regeneration, and a secret's transcription model
 * applied though the key's globs no longer allow it.
 */

const OFFER = 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n'
const MB = 1024 * 1024

async function until(check: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

function post(path: string, key: string, body: unknown) {
  return fetch(`${baseUrl()}${path}`, { method: 'POST', headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

async function mint(key: string, session: Record<string, unknown> = { model: 'gpt-realtime' }): Promise<string> {
  const res = await post('/v1/realtime/client_secrets', key, { session })
  const body = (await res.json()) as any
  if (res.status !== 200) throw new Error(`minting refused: ${JSON.stringify(body)}`)
  return body.value
}

function offerCall(key: string, sdp: string = OFFER, query = '') {
  return fetch(`${baseUrl()}/v1/realtime/calls${query}`, { method: 'POST', headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/sdp' }, body: sdp })
}

/** A WebSocket session's refusal before the upgrade: its status and error JSON */
function wsRefusal(path: string, key: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${baseUrl().replace(/^http/, 'ws')}${path}`, { headers: { authorization: `Bearer ${key}` }, perMessageDeflate: false })
    ws.on('error', () => {})
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('the session was accepted'))
    })
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }))
    })
  })
}

test.group('Hostile s40: realtime client secrets and WebRTC calls', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'realtime', provider: 'openai', baseUrl: mock.url, models: ['gpt-realtime', 'gpt-4o-transcribe', 'whisper-1'] })
    await seedPrice('gpt-realtime', '4', '16')
    return () => mock.stop()
  })
  group.each.teardown(async () => {
    for (const call of mock.realtime.calls) if (!call.ended) mock.realtime.hangUp(call.id)
    await until(() => liveCalls() === 0, 'the calls to end')
    mock.realtime.closeAll()
  })

  test('a 2 MB session at minting and a 2 MB SDP offer are 413 (the realtime bodies had 32 MB): no secret kept, nothing relayed', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const minting = await post('/v1/realtime/client_secrets', user.key, { session: { model: 'gpt-realtime', instructions: 'x'.repeat(2 * MB) } })
    assert.equal(minting.status, 413)
    assert.equal(((await minting.json()) as any).error.code, 'request_too_large')
    assert.lengthOf(await db.from('realtime_client_secrets').where('api_key_id', user.keyId), 0)

    const secret = await mint(user.key)
    const calls = mock.realtime.calls.length
    const huge = await offerCall(secret, OFFER + 'a=candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host\r\n'.repeat(40_000))
    assert.equal(huge.status, 413)
    assert.equal(((await huge.json()) as any).error.code, 'request_too_large')
    assert.equal(mock.realtime.calls.length, calls, 'nothing relayed')
    // An offer of a real size still goes.
    const call = await offerCall(secret)
    assert.equal(call.status, 201)
  })

  test("a call holds its key's place among its calls in flight until it ends (the offer's answer gave it back: any number at once on a key capped to one)", async ({ assert }) => {
    const user = await seedUser({ balance: '5', key: { maxParallel: 1 } })
    const secret = await mint(user.key)
    const first = await offerCall(secret)
    assert.equal(first.status, 201)
    const location = first.headers.get('location')!
    assert.equal(parallelInFlight(user.keyId), 1)
    const calls = mock.realtime.calls.length

    // A second call (the secret or the key), or a WebSocket session: 429 while the first runs, nothing made upstream.
    for (const attempt of [() => offerCall(secret), () => offerCall(user.key, OFFER, '?model=gpt-realtime')]) {
      const refused = await attempt()
      assert.equal(refused.status, 429)
      assert.equal(((await refused.json()) as any).error.code, 'concurrency_limit_exceeded')
    }
    const session = await wsRefusal('/v1/realtime?model=gpt-realtime', user.key)
    assert.equal(session.status, 429)
    assert.equal(session.body.error.code, 'concurrency_limit_exceeded')
    assert.equal(mock.realtime.calls.length, calls)

    // Hung up: the place is free again.
    const hangup = await fetch(`${baseUrl()}${location}/hangup`, { method: 'POST', headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(hangup.status, 200)
    await until(() => liveCalls() === 0 && parallelInFlight(user.keyId) === 0, 'the place back')
    const next = await offerCall(secret)
    assert.equal(next.status, 201)
    // A refused offer gives its place back at once.
    const bad = await offerCall(user.key, 'not sdp', '?model=gpt-realtime')
    assert.equal(bad.status, 429)
    mock.realtime.hangUp(mock.realtime.calls.at(-1)!.id)
    await until(() => parallelInFlight(user.keyId) === 0, 'the place back')
    const refusedSdp = await offerCall(user.key, 'not sdp', '?model=gpt-realtime')
    assert.equal(refusedSdp.status, 400)
    assert.equal(parallelInFlight(user.keyId), 0)
  })

  test("a call counts one request of the key's window for its model, as a WebSocket session does (calls skipped it)", async ({ assert }) => {
    const user = await seedUser({ balance: '5', key: { modelLimits: { 'gpt-realtime': { rpm: 1 } } } })
    const secret = await mint(user.key)
    const first = await offerCall(secret)
    assert.equal(first.status, 201)
    const calls = mock.realtime.calls.length
    const second = await offerCall(secret)
    assert.equal(second.status, 429)
    assert.equal(((await second.json()) as any).error.code, 'rate_limit_exceeded')
    assert.equal(mock.realtime.calls.length, calls, 'no second call made upstream')
    // Its hangup is no request of the window (it ends work): the call is not left running for want of one.
    const hangup = await fetch(`${baseUrl()}${first.headers.get('location')}/hangup`, { method: 'POST', headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(hangup.status, 200)
    await until(() => liveCalls() === 0, 'the call to end')
  })

  test('a sideband dropped mid-call hangs the call up (it went on unmetered); what it reported is billed once, the response cut has its row', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const res = await offerCall(await mint(user.key))
    assert.equal(res.status, 201)
    const upstreamCall = mock.realtime.calls.at(-1)!
    const sideband = mock.realtime.sideband(upstreamCall.id)!
    await sideband.respond({})
    await until(async () => (await usageRows(user.userId)).length === 1, 'the first row')
    // A response running when the sideband drops (no close frame: a dead network path).
    await sideband.respond({ hang: true })
    await new Promise((r) => setTimeout(r, 50))
    sideband.socket.terminate()

    await until(() => upstreamCall.ended, 'the call hung up by the gateway')
    await until(() => liveCalls() === 0, 'the call to end')
    await new Promise((r) => setTimeout(r, 200))
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r: any) => [r.status, r.error_code, r.prompt_tokens, r.completion_tokens]),
      [
        [200, null, 1200, 640],
        [502, 'upstream_closed', 0, 0],
      ]
    )
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("a transcription model the key may not use, set through the browser's data channel, ends the call; an allowed one does not", async ({ assert }) => {
    const user = await seedUser({ balance: '5', keyModels: ['gpt-realtime', 'whisper-1'] })
    const res = await offerCall(await mint(user.key))
    assert.equal(res.status, 201)
    const upstreamCall = mock.realtime.calls.at(-1)!
    const transcription = (model: string) => ({
      type: 'session.updated',
      session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model } } } },
    })
    mock.realtime.callEvent(upstreamCall.id, transcription('whisper-1'))
    await new Promise((r) => setTimeout(r, 150))
    assert.isFalse(upstreamCall.ended)
    assert.equal(liveCalls(), 1)

    mock.realtime.callEvent(upstreamCall.id, transcription('gpt-4o-transcribe'))
    await until(() => upstreamCall.ended, 'the call hung up')
    await until(() => liveCalls() === 0, 'the call to end')
  })

  test("a key regenerated (leaked): the secrets its old value minted are refused with it (they stood for the key by its id)", async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const secret = await mint(user.key)
    const { key: fresh } = await regenerateApiKey(String(user.keyId))
    await refreshCaches()
    const session = await wsRefusal('/v1/realtime', secret)
    assert.equal(session.status, 401)
    assert.equal(session.body.error.message, 'Invalid or expired client secret')
    const calls = mock.realtime.calls.length
    const call = await offerCall(secret)
    assert.equal(call.status, 401)
    assert.equal(((await call.json()) as any).error.code, 'invalid_api_key')
    assert.equal(mock.realtime.calls.length, calls)
    // The new value mints and calls as before.
    const made = await offerCall(await mint(fresh))
    assert.equal(made.status, 201)
  })

  test("a secret's transcription model the key's globs no longer allow: the WebSocket is refused before the upgrade (it went up as minted)", async ({ assert }) => {
    const user = await seedUser({ balance: '5', keyModels: ['gpt-realtime', 'whisper-1'] })
    const secret = await mint(user.key, { model: 'gpt-realtime', audio: { input: { transcription: { model: 'whisper-1' } } } })
    await updateApiKey(user.keyId, { name: 'narrowed', models: ['gpt-realtime'] })
    await refreshCaches()
    const opened = mock.realtime.connections.length
    const session = await wsRefusal('/v1/realtime', secret)
    assert.equal(session.status, 403)
    assert.deepInclude(session.body.error, { code: 'model_not_allowed', param: 'session.audio.input.transcription.model' })
    assert.equal(mock.realtime.connections.length, opened, 'no upstream opened')
    // The call was already checked so (checkSessionModels on the secret's configuration).
    const call = await offerCall(secret)
    assert.equal(call.status, 403)
  })
})
