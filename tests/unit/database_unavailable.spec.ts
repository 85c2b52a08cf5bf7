import { test } from '@japa/runner'
import { toGatewayError } from '#gateway/http/api_errors'

test.group('A database outage seen by a request', () => {
  test('{message} becomes 503 database_unavailable with Retry-After, not a 500')
    .with([
      { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:5432' },
      { code: '57P03', message: 'the database system is starting up' },
      { code: '57P01', message: 'terminating connection due to administrator command' },
      { message: 'Connection terminated unexpectedly' },
    ])
    .run(({ assert }, error) => {
      const mapped = toGatewayError(Object.assign(new Error(error.message), error))
      assert.equal(mapped.status, 503)
      assert.equal(mapped.code, 'database_unavailable')
      assert.equal(mapped.headers?.['retry-after'], '5')
    })

  test('any other unexpected error stays a 500 internal_error', ({ assert }) => {
    assert.equal(toGatewayError(new TypeError('x is undefined')).status, 500)
  })
})
