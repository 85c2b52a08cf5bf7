import { test } from '@japa/runner'
import { rememberBounded } from '#gateway/bounded_memo'

test.group('rememberBounded (memos keyed by client-chosen names)', () => {
  test('past its limit the oldest entries go, not the whole map', ({ assert }) => {
    const memo = new Map<string, number>()
    for (let i = 0; i < 5; i++) rememberBounded(memo, `m${i}`, i, 5)
    assert.equal(memo.size, 5)
    rememberBounded(memo, 'new', 99, 5)
    // Before (the catalog's price and fallback memos): a clear, every name in use read again.
    assert.deepEqual([...memo.keys()], ['m1', 'm2', 'm3', 'm4', 'new'])
    for (let i = 0; i < 20_000; i++) rememberBounded(memo, `flood-${i}`, i, 5)
    assert.equal(memo.size, 5)
    assert.deepEqual([...memo.keys()], ['flood-19995', 'flood-19996', 'flood-19997', 'flood-19998', 'flood-19999'])
  })

  test('a memo over its limit (a smaller limit than before) is brought back under it', ({ assert }) => {
    const memo = new Map([['a', 1], ['b', 2], ['c', 3], ['d', 4]])
    rememberBounded(memo, 'e', 5, 2)
    assert.deepEqual([...memo.keys()], ['d', 'e'])
  })
})
