import { test } from '@japa/runner'
import { DEFAULT_RETRY_DELAYS_MS, ExportHttpError, parseRetryAfter, retryable, retryDelay } from '#gateway/log_export/export_retry'

test.group('Log export retry policy', () => {
  test('network errors, timeouts, 5xx, 408 and 429 are retried; another 4xx or a redirect is not', ({ assert }) => {
    assert.isTrue(retryable(new Error('connect ECONNREFUSED')))
    for (const status of [500, 502, 503, 504, 408, 429]) assert.isTrue(retryable(new ExportHttpError(status, null)), String(status))
    for (const status of [301, 302, 400, 401, 403, 404, 413, 422]) assert.isFalse(retryable(new ExportHttpError(status, null)), String(status))
  })

  test('the steps 1 s, 5 s, 30 s, 2 min with ±20% jitter, then 2 min again', ({ assert }) => {
    const low = () => 0
    const high = () => 0.999999
    const expected = [1_000, 5_000, 30_000, 120_000, 120_000, 120_000]
    expected.forEach((step, i) => {
      assert.equal(retryDelay(i + 1, DEFAULT_RETRY_DELAYS_MS, new Error('x'), low), step * 0.8)
      assert.approximately(retryDelay(i + 1, DEFAULT_RETRY_DELAYS_MS, new Error('x'), high), step * 1.2, 1)
    })
  })

  test("a 429's Retry-After is the wait, never past the longest step", ({ assert }) => {
    assert.equal(retryDelay(1, DEFAULT_RETRY_DELAYS_MS, new ExportHttpError(429, 7_000)), 7_000)
    assert.equal(retryDelay(1, DEFAULT_RETRY_DELAYS_MS, new ExportHttpError(429, 3_600_000)), 120_000)
    assert.equal(parseRetryAfter('7'), 7_000)
    assert.equal(parseRetryAfter(new Date(Date.parse('2030-01-01T00:00:30Z')).toUTCString(), Date.parse('2030-01-01T00:00:00Z')), 30_000)
    assert.isNull(parseRetryAfter(undefined))
    assert.isNull(parseRetryAfter('soon'))
  })
})
