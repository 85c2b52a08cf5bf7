import { test } from '@japa/runner'
import { randomUUID } from 'node:crypto'
import { requestId, requestIdTime } from '#gateway/metering/request_id'

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

test.group('Request ids (UUIDv7)', () => {
  test('an id is a version 7 UUID that carries its creation time', ({ assert }) => {
    const now = Date.now()
    const id = requestId(now)
    assert.match(id, UUID_V7)
    assert.equal(requestIdTime(id), now)
    // The extremes of the 48-bit field are written digit for digit.
    assert.equal(requestIdTime(requestId(0)), 0)
    assert.equal(requestIdTime(requestId(2 ** 48 - 1)), 2 ** 48 - 1)
    assert.isTrue(requestId(2 ** 48 - 1).startsWith('ffffffff-ffff-7'))
  })

  test('ids sort by time: a later millisecond always sorts after (what keeps index inserts on the rightmost pages)', ({
    assert,
  }) => {
    const base = Date.UTC(2026, 11, 4)
    let previous = requestId(base)
    for (let ms = 1; ms < 5000; ms += 7) {
      const next = requestId(base + ms)
      assert.isTrue(next > previous, `${next} should sort after ${previous}`)
      previous = next
    }
    // A random (version 4) id has no such order: the property is this generator's.
    const v4 = Array.from({ length: 50 }, () => randomUUID())
    assert.notDeepEqual([...v4].sort(), v4)
  })

  test('ids are unique across many draws in the same millisecond (the random part refills its pool)', ({ assert }) => {
    const now = Date.now()
    const seen = new Set<string>()
    for (let i = 0; i < 100_000; i++) seen.add(requestId(now))
    assert.equal(seen.size, 100_000)
  })
})
