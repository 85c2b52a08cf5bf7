import { test } from '@japa/runner'
import { getHeapSpaceStatistics } from 'node:v8'
import { IdleHeapSettler, settleHeap } from '#start/settle_heap'

/** start/settle_heap.ts: the memory-reducing collection the web server runs once booted. */

const newSpaceBytes = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')!.space_size

test.group('settleHeap', () => {
  test('shrinks a young generation that allocation grew, without --expose-gc', ({ assert }) => {
    assert.notProperty(globalThis, 'gc')
    // Short-lived objects that survive a few scavenges make V8 grow the new space.
    let keep: object[] = []
    for (let i = 0; i < 2_000_000; i++) {
      keep.push({ i })
      if (keep.length > 200_000) keep = []
    }
    keep = []
    const grown = newSpaceBytes()
    assert.isAbove(grown, 4 * 1048576)

    const settled = settleHeap()
    assert.isNotNull(settled)
    assert.isAtMost(newSpaceBytes(), grown / 4)
    assert.isAtLeast(settled!.ms, 0)
    // The run-time flag is switched off again: nothing else gets a `gc` global.
    assert.notProperty(globalThis, 'gc')
  })
})

/** The idle settle: once per pause in traffic longer than the idle period, never while a request runs. */
test.group('IdleHeapSettler', () => {
  function settler(idleMs = 60_000) {
    const state = { admitted: 0, inFlight: 0, settles: 0, logs: [] as string[] }
    const watcher = new IdleHeapSettler({
      idleMs,
      activity: () => state.admitted,
      busy: () => state.inFlight,
      settle: () => {
        state.settles++
        return { beforeMb: 300, afterMb: 200, ms: 90 }
      },
      log: (message) => state.logs.push(message),
    })
    return { state, watcher }
  }

  test('does not settle again after boot until traffic has come and gone', ({ assert }) => {
    const { state, watcher } = settler()
    watcher.begin(0)
    for (let t = 0; t <= 600_000; t += 6_000) watcher.check(t)
    assert.equal(state.settles, 0)
  })

  test('settles once when no request came for the idle period, then not again', ({ assert }) => {
    const { state, watcher } = settler()
    watcher.begin(0)
    state.admitted = 5
    watcher.check(6_000)
    watcher.check(60_000)
    assert.equal(state.settles, 0, 'the idle period counts from the last check that saw traffic')
    watcher.check(66_000)
    assert.equal(state.settles, 1)
    for (let t = 72_000; t <= 600_000; t += 6_000) watcher.check(t)
    assert.equal(state.settles, 1)
    assert.match(state.logs[0], /heap settled after 60 s without requests: RSS 300 -> 200 MB in 90 ms/)
  })

  test('traffic within the idle period puts the settle off; each new pause settles once', ({ assert }) => {
    const { state, watcher } = settler()
    watcher.begin(0)
    for (let t = 6_000; t <= 300_000; t += 6_000) {
      if (t % 30_000 === 0) state.admitted++
      watcher.check(t)
    }
    assert.equal(state.settles, 0)
    watcher.check(360_000)
    assert.equal(state.settles, 1)
    state.admitted++
    watcher.check(366_000)
    watcher.check(426_000)
    assert.equal(state.settles, 2)
  })

  test('a request still running (a long stream) is traffic', ({ assert }) => {
    const { state, watcher } = settler()
    watcher.begin(0)
    state.admitted = 1
    state.inFlight = 1
    for (let t = 6_000; t <= 600_000; t += 6_000) watcher.check(t)
    assert.equal(state.settles, 0)
    state.inFlight = 0
    watcher.check(606_000)
    watcher.check(666_000)
    assert.equal(state.settles, 1)
  })

  test('a settle that throws is logged, not thrown from the timer', ({ assert }) => {
    const logs: string[] = []
    let admitted = 0
    const watcher = new IdleHeapSettler({
      idleMs: 1_000,
      activity: () => admitted,
      busy: () => 0,
      settle: () => {
        throw new Error('no gc here')
      },
      log: (message) => logs.push(message),
    })
    watcher.begin(0)
    admitted = 1
    watcher.check(100)
    assert.doesNotThrow(() => watcher.check(1_200))
    assert.deepEqual(logs, ['heap settle after a pause failed: no gc here'])
  })

  test('an idle period of 0 never starts the timer', ({ assert }) => {
    const { state, watcher } = settler(0)
    watcher.start()
    watcher.stop()
    assert.equal(state.settles, 0)
  })
})
