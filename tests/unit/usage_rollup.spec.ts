import { test } from '@japa/runner'
import { LATENCY_BOUNDS_MS, medianOfHistogram } from '#services/usage_rollup'

test.group('Latency histogram median', () => {
  test('interpolates inside the median bucket; empty is null', ({ assert }) => {
    const counts = new Array(LATENCY_BOUNDS_MS.length + 1).fill(0)
    assert.isNull(medianOfHistogram(counts))
    // 10 requests in [100, 150) and 10 in [1000, 1500): the 10th is the end of the first bucket.
    counts[LATENCY_BOUNDS_MS.indexOf(150)] = 10
    counts[LATENCY_BOUNDS_MS.indexOf(1500)] = 10
    assert.equal(medianOfHistogram(counts), 150)
    // All in [200, 300): the middle of the bucket.
    const one = new Array(LATENCY_BOUNDS_MS.length + 1).fill(0)
    one[LATENCY_BOUNDS_MS.indexOf(300)] = 4
    assert.equal(medianOfHistogram(one), 250)
  })
})
