import { test } from '@japa/runner'
import { getHeapSpaceStatistics } from 'node:v8'
import { settleHeap } from '#start/settle_heap'

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
