import { test } from '@japa/runner'
import { IdleHeapSettler } from '#start/settle_heap'
import { gateway, post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'

/**
 * The idle settle (start/settle_heap.ts) on the real gateway's counters, as
 * providers/gateway_provider.ts wires it: a served API call is traffic and
 * puts the settle off, a refused key is not, a stream still open is.
 */
test.group('Idle heap settle on the gateway', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ chunks: 4, chunkDelayMs: 150 })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-*'] })
    return () => mock.stop()
  })

  test('served calls put the settle off; a refused key or a pause does not', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser()
    const settles: number[] = []
    const watcher = new IdleHeapSettler({
      idleMs: 60_000,
      activity: () => gw.service.admitted,
      busy: () => gw.service.inFlight,
      settle: () => {
        settles.push(Date.now())
        return { beforeMb: 1, afterMb: 1, ms: 0 }
      },
      log: () => {},
    })
    watcher.begin(0)

    const answered = await post('/v1/chat/completions', { model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(answered.status, 200)
    watcher.check(30_000)
    watcher.check(80_000)
    assert.lengthOf(settles, 0, 'the idle period counts from the check that saw the call')

    const refused = await post('/v1/chat/completions', { model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] }, { authorization: 'Bearer sk-not-a-key' })
    assert.equal(refused.status, 401)
    watcher.check(95_000)
    assert.lengthOf(settles, 1, 'a refused key is not traffic')

    // A stream in flight holds the settle off until it ends.
    const stream = post('/v1/chat/completions', { model: 'mock-a', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
    while (gw.service.inFlight === 0) await new Promise((r) => setTimeout(r, 5))
    watcher.check(100_000)
    watcher.check(200_000)
    watcher.check(300_000)
    assert.lengthOf(settles, 1)
    const streamed = await stream
    assert.equal(streamed.status, 200)
    await streamed.text()
    while (gw.service.inFlight > 0) await new Promise((r) => setTimeout(r, 5))
    watcher.check(310_000)
    watcher.check(370_000)
    assert.lengthOf(settles, 2)
  })
})
