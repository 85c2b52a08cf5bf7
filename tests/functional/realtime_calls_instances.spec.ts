import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { WebSocket } from 'ws'
import { liveCalls } from '#gateway/realtime/realtime_calls'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { startInstance, until, type Instance } from '#tests/instances_harness'
import { ledgerProblems } from '#tests/money_checks'

/**
 * WebRTC calls across instances: a call is metered by the instance that
 * made it (its sideband is there), yet its hangup and a server joining its
 * events may reach any instance behind the balancer. This test process is
 * instance A; B is a production gateway (`bin/start.js`) on the same
 * database.
 */

const OFFER = 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n'

function offerCall(origin: string, key: string) {
  return fetch(`${origin}/v1/realtime/calls?model=gpt-realtime`, { method: 'POST', headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/sdp' }, body: OFFER })
}

function hangup(origin: string, location: string, key: string) {
  return fetch(`${origin}${location}/hangup`, { method: 'POST', headers: { authorization: `Bearer ${key}` } })
}

/** A server's WebSocket joining a call's events: its events and its close */
function join(origin: string, id: string, key: string): Promise<{ ws: WebSocket; events: any[]; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${origin.replace(/^http/, 'ws')}/v1/realtime?call_id=${id}`, { headers: { authorization: `Bearer ${key}` }, perMessageDeflate: false })
    const events: any[] = []
    ws.on('message', (data) => events.push(JSON.parse(data.toString())))
    ws.on('error', () => {})
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)))
    ws.once('open', () => resolve({ ws, events, closed }))
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => reject(new Error(`join refused ${res.statusCode}: ${Buffer.concat(chunks).toString()}`)))
    })
  })
}

test.group('Realtime calls across instances', (group) => {
  let mock: MockUpstream
  let b: Instance

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'realtime', provider: 'openai', baseUrl: mock.url, models: ['gpt-realtime'] })
    await seedPrice('gpt-realtime', '4', '16')
    b = await startInstance('B')
    return async () => {
      mock.realtime.closeAll()
      await b?.stop()
      await mock.stop()
    }
  })

  test("a call made here is joined and hung up through another instance (404 call_not_found there before); one made there is hung up here", async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const stranger = await seedUser({ balance: '1' })
    const made = await offerCall(baseUrl(), user.key)
    assert.equal(made.status, 201)
    const location = made.headers.get('location')!
    const id = location.split('/').pop()!
    const upstreamCall = mock.realtime.calls.at(-1)!
    // Its row: ids only, what another instance needs to reach the call's channel.
    const rows = await db.from('realtime_calls').where('id', id)
    assert.lengthOf(rows, 1)
    assert.deepInclude({ ...rows[0], user_id: Number(rows[0].user_id) }, { user_id: user.userId, model: 'gpt-realtime', upstream_model: 'gpt-realtime', upstream_id: upstreamCall.id })

    // Another user's key on B: as unknown as on A.
    const strangers = await hangup(b.url, location, stranger.key)
    assert.equal(strangers.status, 404)
    assert.equal(((await strangers.json()) as any).error.code, 'call_not_found')
    assert.isFalse(upstreamCall.ended)

    // The app's server joins through B: the call's channel, its key, the provider's call id.
    const server = await join(b.url, id, user.key)
    const joined = mock.realtime.connections.at(-1)!
    assert.equal(joined.path, `/v1/realtime?call_id=${upstreamCall.id}`)
    assert.equal(joined.headers.authorization, 'Bearer upstream-secret')
    // A response reaches both sidebands; only A's meters it.
    await mock.realtime.sideband(upstreamCall.id)!.respond({})
    await until(async () => server.events.some((e) => e.type === 'response.done'), (seen) => seen, 5_000)
    assert.isTrue(server.events.some((e) => e.type === 'response.done'))
    await until(() => usageRows(user.userId), (r) => r.length >= 1, 5_000)

    // The owner's hangup through B: relayed to the channel; A's sideband closes and its call ends there.
    const hungUp = await hangup(b.url, location, user.key)
    assert.equal(hungUp.status, 200)
    assert.isTrue(upstreamCall.ended)
    assert.equal(await server.closed, 1000)
    await until(async () => liveCalls(), (n) => n === 0, 5_000)
    assert.equal(liveCalls(), 0)
    const left = await until(() => db.from('realtime_calls').where('id', id), (r) => r.length === 0, 5_000)
    assert.lengthOf(left, 0, 'its row deleted with the call')
    await new Promise((r) => setTimeout(r, 300))
    assert.deepEqual((await usageRows(user.userId)).map((r: any) => [r.endpoint, r.status, r.prompt_tokens]), [['realtime', 200, 1200]])
    assert.deepEqual(await ledgerProblems(), [])
    // Hung up: unknown on both.
    assert.equal((await hangup(b.url, location, user.key)).status, 404)
    assert.equal((await hangup(baseUrl(), location, user.key)).status, 404)

    // The other way: made on B, hung up here.
    const there = await offerCall(b.url, user.key)
    assert.equal(there.status, 201)
    const thereCall = mock.realtime.calls.at(-1)!
    const thereId = there.headers.get('location')!.split('/').pop()!
    assert.equal(liveCalls(), 0, 'not a call of this instance')
    const hereHangup = await hangup(baseUrl(), there.headers.get('location')!, user.key)
    assert.equal(hereHangup.status, 200)
    assert.isTrue(thereCall.ended)
    const gone = await until(() => db.from('realtime_calls').where('id', thereId), (r) => r.length === 0, 5_000)
    assert.lengthOf(gone, 0, "B ended the call and deleted its row")
  }).timeout(60_000)

  test('a call of an instance that died (killed: its sideband gone with it, the call running on unmetered) is hung up by another instance\'s sweep', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const made = await offerCall(b.url, user.key)
    assert.equal(made.status, 201)
    const upstreamCall = mock.realtime.calls.at(-1)!
    const [row] = await db.from('realtime_calls').where('id', made.headers.get('location')!.split('/').pop()!)
    b.child.kill('SIGKILL')
    await b.exited
    // The provider's call goes on: nothing told it.
    await new Promise((r) => setTimeout(r, 200))
    assert.isFalse(upstreamCall.ended)
    // B's heartbeat as it is a minute on (no beat since).
    await db.from('gateway_instances').where('id', row.instance_id).update({ seen_at: new Date(Date.now() - 3_600_000) })
    // A call of a live instance (this one's, another's with a fresh heartbeat) is left alone.
    const live = await offerCall(baseUrl(), user.key)
    assert.equal(live.status, 201)
    const liveCall = mock.realtime.calls.at(-1)!

    await (await gateway()).backgroundSweeper.sweep()
    assert.isTrue(upstreamCall.ended, 'hung up')
    assert.lengthOf(await db.from('realtime_calls').where('instance_id', row.instance_id), 0)
    assert.isFalse(liveCall.ended)
    assert.lengthOf(await db.from('realtime_calls').where('id', live.headers.get('location')!.split('/').pop()!), 1)
    mock.realtime.hangUp(liveCall.id)
    await until(async () => liveCalls(), (n) => n === 0, 5_000)
  }).timeout(30_000)
})
