import { test } from '@japa/runner'
import { budgetPeriod, budgetText, durationDays, modelGlobs, roleOf } from '#services/litellm_management'
import { GatewayError } from '#exceptions/gateway_error'
import { dialectForPath, renderError } from '#gateway/http/error_renderers'

/** LiteLLM's lengths and budgets as the gateway keeps them (services/litellm_management.ts). */
test.group('LiteLLM management: field mapping', () => {
  test('budget_duration: a UTC day, week or month, else a 400 naming the field', ({ assert }) => {
    for (const [given, period] of [['1d', 'day'], ['24h', 'day'], ['1440m', 'day'], ['86400s', 'day'], ['7d', 'week'], ['1w', 'week'], ['168h', 'week'], ['30d', 'month'], ['1mo', 'month']] as const) {
      assert.equal(budgetPeriod(given), period, given)
    }
    assert.isNull(budgetPeriod(undefined))
    assert.isNull(budgetPeriod(null))
    for (const refused of ['1h', '2d', '14d', '31d', '2mo', '1y', 'monthly', 30]) {
      const error = (() => {
        try {
          budgetPeriod(refused)
        } catch (caught) {
          return caught
        }
      })()
      assert.instanceOf(error, GatewayError, String(refused))
      assert.equal((error as GatewayError).param, 'budget_duration')
      assert.equal((error as GatewayError).status, 400)
    }
  })

  test('duration: whole days of life, null for none', ({ assert }) => {
    assert.equal(durationDays('30d'), 30)
    assert.equal(durationDays('48h'), 2)
    assert.equal(durationDays('2w'), 14)
    assert.isAtLeast(durationDays('1mo')!, 28)
    assert.isAtMost(durationDays('1mo')!, 31)
    for (const none of [undefined, null, '', 'permanent']) assert.isNull(durationDays(none))
    for (const refused of ['90m', '36h', '0d', '1y', 'soon', 30]) {
      assert.throws(() => durationDays(refused), /duration/)
    }
  })

  test('max_budget kept to the micro-dollar; all-proxy-models is every model; roles', ({ assert }) => {
    assert.equal(budgetText(0.1 + 0.2), '0.3')
    assert.equal(budgetText(5), '5')
    assert.equal(budgetText('12.5'), '12.5')
    assert.isNull(budgetText(null))
    assert.deepEqual(modelGlobs(['all-proxy-models']), [])
    assert.deepEqual(modelGlobs(['gpt-*']), ['gpt-*'])
    assert.equal(roleOf('proxy_admin'), 'admin')
    assert.equal(roleOf('internal_user_viewer'), 'user')
    assert.isUndefined(roleOf(undefined))
    assert.throws(() => roleOf('emperor'), /user_role/)
  })

  test('errors on /key/, /spend/, /user/ are LiteLLM\'s: the status as text in code', ({ assert }) => {
    for (const path of ['/key/generate', '/key/info?key=1', '/spend/logs', '/user/new']) assert.equal(dialectForPath(path), 'litellm', path)
    for (const path of ['/v1/key', '/api/v1/key', '/keys', '/users', '/v1/chat/completions']) assert.equal(dialectForPath(path), 'openai', path)
    const error = GatewayError.invalidRequest('max_budget: must be a number', 'invalid_field', 'max_budget')
    assert.deepEqual(renderError('litellm', error), { error: { message: 'max_budget: must be a number', type: 'bad_request_error', param: 'max_budget', code: '400' } })
    assert.equal((renderError('litellm', GatewayError.invalidApiKey()) as any).error.type, 'auth_error')
  })
})
