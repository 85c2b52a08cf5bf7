import { test } from '@japa/runner'
import { accountProblem } from '#gateway/upstream/account_problems'

/** Error bodies as the providers send them (see account_problems.ts for where each was seen). */
const ACCOUNT_PROBLEMS: Array<[string, number, unknown]> = [
  [
    'OpenAI insufficient_quota',
    429,
    {
      error: {
        message: 'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.',
        type: 'insufficient_quota',
        param: null,
        code: 'insufficient_quota',
      },
    },
  ],
  [
    'OpenAI billing_not_active',
    429,
    { error: { message: 'Your account is not active, please check your billing details on our website.', type: 'billing_not_active', param: null, code: 'billing_not_active' } },
  ],
  [
    'OpenAI account_deactivated',
    401,
    { error: { message: 'Your OpenAI account has been deactivated, please check your email for more information.', type: 'invalid_request_error', param: null, code: 'account_deactivated' } },
  ],
  ['OpenRouter 402', 402, { error: { code: 402, message: 'Insufficient credits. Add more using https://openrouter.ai/settings/credits' } }],
  ['DeepSeek 402', 402, { error: { message: 'Insufficient Balance', type: 'unknown_error', param: null, code: 'invalid_request_error' } }],
  ['a 402 that is not JSON', 402, 'Payment Required'],
  [
    'Anthropic credit balance',
    400,
    { type: 'error', error: { type: 'invalid_request_error', message: 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.' } },
  ],
  ['Anthropic organization disabled (400)', 400, { type: 'error', error: { type: 'invalid_request_error', message: 'This organization has been disabled.' } }],
  ['Anthropic organization disabled (403)', 403, { type: 'error', error: { type: 'permission_error', message: 'This organization has been disabled.' } }],
  [
    'Gemini billing precondition',
    400,
    { error: { code: 400, message: 'Gemini API free tier is not available in your country. Please enable billing on your project in Google AI Studio.', status: 'FAILED_PRECONDITION' } },
  ],
  [
    'Gemini location without billing (as an array)',
    400,
    [{ error: { code: 400, message: 'User location is not supported for the API use without a billing account linked.', status: 'FAILED_PRECONDITION' } }],
  ],
  [
    'Gemini API key expired',
    400,
    {
      error: {
        code: 400,
        message: 'API key expired. Please renew the API key.',
        status: 'INVALID_ARGUMENT',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' }],
      },
    },
  ],
  [
    'Gemini consumer suspended',
    403,
    {
      error: {
        code: 403,
        message: "Permission denied: Consumer 'api_key:AIza...' has been suspended.",
        status: 'PERMISSION_DENIED',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'CONSUMER_SUSPENDED', domain: 'googleapis.com' }],
      },
    },
  ],
  ['Gemini key leaked', 403, { error: { code: 403, message: 'Your API key was reported as leaked. Please use another API key.', status: 'PERMISSION_DENIED' } }],
  ['DashScope arrearage', 400, { error: { code: 'Arrearage', message: 'Access denied, please make sure your account is in good standing.', type: 'Arrearage' } }],
  ['a new-api upstream out of quota', 403, { error: { message: 'user quota is not enough', type: 'insufficient_user_quota', code: 'insufficient_user_quota' } }],
]

/** Answers that are not the account's: the client's request, a rate limit, a model permission. */
const NOT_ACCOUNT_PROBLEMS: Array<[string, number, unknown]> = [
  [
    'Gemini per-day quota (a rate limit, whatever its words)',
    429,
    {
      error: {
        code: 429,
        message: 'You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.',
        status: 'RESOURCE_EXHAUSTED',
        details: [{ '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaId: 'GenerateRequestsPerDayPerProjectPerModel-FreeTier' }] }],
      },
    },
  ],
  ['OpenAI rate limit', 429, { error: { message: 'Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29500.', type: 'tokens', code: 'rate_limit_exceeded' } }],
  ['Anthropic bad request', 400, { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } }],
  [
    'a 400 quoting the client\'s prompt',
    400,
    { error: { message: "Invalid value for 'messages[0].role': 'Your credit balance is too low to access the Anthropic API' is not one of ['system', 'user'].", type: 'invalid_request_error', code: null } },
  ],
  ['Gemini location unsupported without billing words', 400, { error: { code: 400, message: 'User location is not supported for the API use.', status: 'FAILED_PRECONDITION' } }],
  ['OpenAI model permission', 403, { error: { message: 'You do not have access to the model gpt-5.', type: 'invalid_request_error', code: 'model_not_found' } }],
  ['a plain 401', 401, { error: { message: 'Incorrect API key provided: sk-...', type: 'invalid_request_error', code: 'invalid_api_key' } }],
]

test.group('Upstream account problems', () => {
  test('{name}: an account problem')
    .with(ACCOUNT_PROBLEMS.map(([name, status, body]) => ({ name, status, body })))
    .run(({ assert }, { status, body }) => {
      const bytes = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))
      assert.isString(accountProblem(status, bytes))
    })

  test('{name}: not an account problem')
    .with(NOT_ACCOUNT_PROBLEMS.map(([name, status, body]) => ({ name, status, body })))
    .run(({ assert }, { status, body }) => {
      assert.isNull(accountProblem(status, Buffer.from(JSON.stringify(body))))
    })

  test('only 4xx other than 404 are looked at', ({ assert }) => {
    const body = JSON.stringify({ error: { type: 'insufficient_quota', code: 'insufficient_quota', message: 'x' } })
    assert.isString(accountProblem(429, body))
    assert.isNull(accountProblem(404, body))
    assert.isNull(accountProblem(500, body))
    assert.isNull(accountProblem(503, body))
    assert.isNull(accountProblem(200, body))
  })

  test('the operator\'s keywords match anywhere in the message, case aside', ({ assert }) => {
    const body = JSON.stringify({ error: { message: 'Sorry, your account balance is insufficient (code 30001)', code: 30001 } })
    assert.isNull(accountProblem(403, body))
    assert.equal(accountProblem(403, body, ['balance is insufficient']), 'keyword "balance is insufficient"')
    assert.isNull(accountProblem(500, body, ['balance is insufficient']))
  })
})
