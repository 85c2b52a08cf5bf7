import { test } from '@japa/runner'
import { GatewayError } from '#exceptions/gateway_error'
import { dialectForPath, renderError } from '#gateway/http/error_renderers'
import { toGatewayError } from '#gateway/http/api_errors'

test.group('Error rendering per wire format', () => {
  test('an unexpected exception is a 500 internal_error without its message or stack', ({ assert }) => {
    const error = toGatewayError(new TypeError('secret detail at /work/app.ts:1'))
    assert.equal(error.status, 500)
    const body = JSON.stringify(renderError('openai', error))
    assert.equal(body, '{"error":{"message":"Unexpected gateway error","type":"server_error","param":null,"code":"internal_error"}}')
  })

  test('the same error in OpenAI, Anthropic and Google shapes', ({ assert }) => {
    const error = GatewayError.insufficientBalance()
    assert.deepEqual(renderError(dialectForPath('/v1/chat/completions'), error), {
      error: { message: error.message, type: 'insufficient_quota', param: null, code: 'insufficient_balance' },
    })
    assert.deepEqual(renderError(dialectForPath('/v1/messages'), error), {
      type: 'error',
      error: { type: 'billing_error', message: error.message },
    })
    assert.deepEqual(renderError(dialectForPath('/v1beta/models/x:generateContent'), GatewayError.invalidApiKey()), {
      error: { code: 401, message: 'Missing or invalid API key', status: 'UNAUTHENTICATED' },
    })
  })
})
