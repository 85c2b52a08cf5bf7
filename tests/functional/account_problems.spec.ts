import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { setModelFallbacks } from '#actions/set_model_fallbacks'
import { checkChannelKey, testChannel } from '#actions/test_channel'
import { accountProblemKeywords } from '#actions/set_account_problem_keywords'
import { createUser } from '#actions/create_user'
import { PanelClient } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import type { RawAnswer } from '#tests/fixtures/mock_upstream/raw_answer'
import { createApiKey } from '#actions/issue_api_key'
import { adminApi, balanceAndLedger, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { until } from '#tests/instances_harness'
import { ledgerProblems } from '#tests/money_checks'

/**
 * An upstream answer that says the channel's upstream account cannot serve
 * (out of credit, billing, deactivated: account_problems.ts) fails the
 * request over to the next channel and takes the channel out of rotation,
 * in the database and in memory; with no channel left the client gets 503
 * no_available_channel in its format and in the gateway's words.
 */

type Provider = 'custom' | 'anthropic' | 'google'

/** Each family of answer, as its provider sends it, and the kind of channel that gets it. */
const FAMILIES: Array<{ label: string; provider: Provider; status: number; body: unknown; words: string }> = [
  {
    label: 'OpenAI 429 insufficient_quota',
    provider: 'custom',
    status: 429,
    body: { error: { message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' } },
    words: 'exceeded your current quota',
  },
  {
    label: 'OpenAI 429 billing_not_active',
    provider: 'custom',
    status: 429,
    body: { error: { message: 'Your account is not active, please check your billing details on our website.', type: 'billing_not_active', param: null, code: 'billing_not_active' } },
    words: 'billing details',
  },
  {
    label: 'OpenAI 401 account_deactivated',
    provider: 'custom',
    status: 401,
    body: { error: { message: 'Your OpenAI account has been deactivated, please check your email.', type: 'invalid_request_error', param: null, code: 'account_deactivated' } },
    words: 'deactivated',
  },
  {
    label: 'OpenRouter 402',
    provider: 'custom',
    status: 402,
    body: { error: { code: 402, message: 'Insufficient credits. Add more using https://openrouter.ai/settings/credits' } },
    words: 'Insufficient credits',
  },
  {
    label: 'DeepSeek 402',
    provider: 'custom',
    status: 402,
    body: { error: { message: 'Insufficient Balance', type: 'unknown_error', param: null, code: 'invalid_request_error' } },
    words: 'Insufficient Balance',
  },
  {
    label: 'Anthropic 400 credit balance',
    provider: 'anthropic',
    status: 400,
    body: { type: 'error', error: { type: 'invalid_request_error', message: 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.' } },
    words: 'credit balance',
  },
  {
    label: 'Anthropic 403 organization disabled',
    provider: 'anthropic',
    status: 403,
    body: { type: 'error', error: { type: 'permission_error', message: 'This organization has been disabled.' } },
    words: 'organization',
  },
  {
    label: 'Gemini 400 FAILED_PRECONDITION billing',
    provider: 'google',
    status: 400,
    body: { error: { code: 400, message: 'Gemini API free tier is not available in your country. Please enable billing on your project in Google AI Studio.', status: 'FAILED_PRECONDITION' } },
    words: 'billing',
  },
  {
    label: 'Gemini 400 API key expired',
    provider: 'google',
    status: 400,
    body: {
      error: {
        code: 400,
        message: 'API key expired. Please renew the API key.',
        status: 'INVALID_ARGUMENT',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' }],
      },
    },
    words: 'expired',
  },
  {
    label: 'Gemini 403 CONSUMER_SUSPENDED',
    provider: 'google',
    status: 403,
    body: {
      error: {
        code: 403,
        message: "Permission denied: Consumer 'api_key:AIzaSy' has been suspended.",
        status: 'PERMISSION_DENIED',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'CONSUMER_SUSPENDED', domain: 'googleapis.com' }],
      },
    },
    words: 'suspended',
  },
]

const hello = [{ role: 'user', content: 'hi' }]

/** The client's request in every dialect, streamed or not, and what its end looks like. */
const INGRESS: Array<{ label: string; path: (model: string) => string; body: (model: string) => Record<string, unknown>; end: string }> = [
  { label: 'chat', path: () => '/v1/chat/completions', body: (model) => ({ model, messages: hello }), end: 'from the backup' },
  { label: 'chat stream', path: () => '/v1/chat/completions', body: (model) => ({ model, messages: hello, stream: true }), end: 'data: [DONE]' },
  { label: 'responses', path: () => '/v1/responses', body: (model) => ({ model, input: 'hi' }), end: 'from the backup' },
  { label: 'messages stream', path: () => '/v1/messages', body: (model) => ({ model, max_tokens: 20, messages: hello, stream: true }), end: 'event: message_stop' },
  {
    label: 'gemini',
    path: (model) => `/v1beta/models/${model}:generateContent`,
    body: () => ({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    end: 'from the backup',
  },
]

function baseUrlOf(mock: MockUpstream, provider: Provider) {
  return provider === 'google' ? `${mock.origin}/v1beta` : mock.url
}

function authOf(key: string) {
  return { 'authorization': `Bearer ${key}`, 'x-api-key': key, 'x-goog-api-key': key }
}

async function attemptsOf(requestId: string) {
  return db.from('request_attempts').where('request_id', requestId).orderBy('attempt')
}

test.group('Upstream account problems: failover, the channel out of rotation', (group) => {
  let bad: MockUpstream
  let good: MockUpstream
  /** What the broken account answers to every request (null: it answers as a working upstream) */
  let answer: RawAnswer | null = {}
  let n = 0

  group.setup(async () => {
    await resetDatabase()
    bad = await startMock({ faults: () => (answer ? { raw: answer } : undefined) })
    good = await startMock({ text: 'from the backup' })
    return async () => {
      ;(await gateway()).health.reset()
      await bad.stop()
      await good.stop()
    }
  })
  group.each.setup(async () => (await gateway()).health.reset())

  function answerWith(family: (typeof FAMILIES)[number]) {
    answer = { status: family.status, body: JSON.stringify(family.body) }
  }

  /** A fresh model served by the broken account first (priority 10), then by a good channel of the same kind */
  async function pair(provider: Provider) {
    n++
    const model = `acct${n}-model`
    const primary = await seedChannel({ name: `broke-${n}`, provider, baseUrl: baseUrlOf(bad, provider), models: [model], priority: 10 })
    const backup = await seedChannel({ name: `backup-${n}`, provider, baseUrl: baseUrlOf(good, provider), models: [model], priority: 0 })
    await seedPrice(model, '1', '2')
    return { model, primary, backup }
  }

  test('{label}: served by the next channel in every dialect; the channel disabled, in the database and in memory')
    .with(FAMILIES)
    .run(async ({ assert }, family) => {
      answerWith(family)
      for (const ingress of INGRESS) {
        const what = `${family.label}, ${ingress.label}`
        const { model, primary, backup } = await pair(family.provider)
        const user = await seedUser({ balance: '10' })
        const response = await post(ingress.path(model), ingress.body(model), authOf(user.key))
        const text = await response.text()
        assert.equal(response.status, 200, `${what}: ${text}`)
        assert.include(text, ingress.end, what)
        assert.notInclude(text, family.words, what)

        const [row] = await usageRows(user.userId)
        assert.include(row, { channel_id: backup.id, status: 200, error_code: null, attempts: 2 }, what)
        assert.isAbove(Number(row.cost), 0, what)
        const attempts = await attemptsOf(row.request_id)
        assert.deepEqual(
          attempts.map((a) => [a.channel_id, a.status, a.outcome]),
          [
            [primary.id, family.status, 'account_error'],
            [backup.id, 200, 'ok'],
          ],
          what
        )
        assert.include(attempts[0].error, family.words, `${what}: the operator sees the provider's words`)

        // Out of rotation here at once, and in the database (written in the background: waited for).
        const gw = await gateway()
        assert.isFalse(gw.catalog.channels.find((c) => c.id === primary.id)!.enabled, what)
        const stored = await until(
          () => db.from('channels').where('id', primary.id).first(),
          (r) => r.enabled === false && r.auto_disabled_at !== null
        )
        assert.include(stored.disabled_reason, 'upstream account problem', what)
        assert.include(stored.disabled_reason, `HTTP ${family.status}`, what)
        assert.include(stored.disabled_reason, family.words, what)

        // The next request does not try it.
        const seen = bad.requests.length
        const again = await post(ingress.path(model), ingress.body(model), authOf(user.key))
        assert.equal(again.status, 200, what)
        await again.text()
        assert.equal(bad.requests.length, seen, `${what}: the disabled channel is not tried again`)
        const rows = await usageRows(user.userId)
        assert.include(rows[1], { channel_id: backup.id, attempts: 1 }, what)
        const money = await balanceAndLedger(user.userId)
        assert.equal(money.balance, money.ledger, what)
      }
      assert.deepEqual(await ledgerProblems(), [])
    })

  test('every channel\'s account broken ({$self}): 503 no_available_channel in the client\'s format, the gateway\'s words; one row, nothing charged')
    .with(['chat', 'chat stream', 'responses', 'messages stream', 'gemini'])
    .run(async ({ assert }, label) => {
      const ingress = INGRESS.find((i) => i.label === label)!
      for (const family of [FAMILIES[0], FAMILIES[5], FAMILIES[7]]) {
        answerWith(family)
        const what = `${family.label}, ${label}`
        n++
        const model = `acct${n}-doomed`
        const first = await seedChannel({ name: `broke-a-${n}`, provider: family.provider, baseUrl: baseUrlOf(bad, family.provider), models: [model], priority: 10 })
        const second = await seedChannel({ name: `broke-b-${n}`, provider: family.provider, baseUrl: baseUrlOf(bad, family.provider), models: [model], priority: 0 })
        await seedPrice(model, '1', '2')
        const user = await seedUser({ balance: '10' })
        const response = await post(ingress.path(model), ingress.body(model), authOf(user.key))
        const text = await response.text()
        assert.equal(response.status, 503, `${what}: ${text}`)
        assert.notInclude(text, family.words, `${what}: the operator's billing is not the client's business`)
        const body = JSON.parse(text)
        if (label.startsWith('messages')) {
          assert.deepInclude(body, { type: 'error' }, what)
          assert.equal(body.error.type, 'overloaded_error', what)
          assert.include(body.error.message, 'No available upstream channel', what)
        } else if (label === 'gemini') {
          assert.include(body.error, { code: 503, status: 'UNAVAILABLE' }, what)
          assert.include(body.error.message, 'No available upstream channel', what)
        } else {
          assert.include(body.error, { code: 'no_available_channel' }, what)
          assert.include(body.error.message, 'No available upstream channel', what)
        }
        const rows = await usageRows(user.userId)
        assert.lengthOf(rows, 1, what)
        assert.include(rows[0], { status: 503, error_code: 'no_available_channel', attempts: 2 }, what)
        assert.equal(Number(rows[0].cost), 0, what)
        const attempts = await attemptsOf(rows[0].request_id)
        assert.deepEqual(attempts.map((a) => [a.channel_id, a.outcome]), [[first.id, 'account_error'], [second.id, 'account_error']], what)
        assert.equal(Number((await balanceAndLedger(user.userId)).balance), 10, what)

        // Both out of rotation now: the next request is refused without calling the upstream.
        const seen = bad.requests.length
        const next = await post(ingress.path(model), ingress.body(model), authOf(user.key))
        assert.equal(next.status, 503, what)
        await next.text()
        assert.equal(bad.requests.length, seen, what)
      }
      assert.deepEqual(await ledgerProblems(), [])
    })

  test('a reload of the channels before the disabling row is written does not put the channel back in rotation', async ({ assert }) => {
    answerWith(FAMILIES[3])
    const { model, primary } = await pair('custom')
    const user = await seedUser({ balance: '10' })
    const gw = await gateway()
    // The row locked: the gateway's UPDATE that disables the channel waits, as a busy database would make it.
    const trx = await db.transaction()
    try {
      await trx.from('channels').where('id', primary.id).forUpdate().select('id')
      const first = await post('/v1/chat/completions', { model, messages: hello }, authOf(user.key))
      assert.equal(first.status, 200, await first.text())
      // Any reload meanwhile (a price set, another instance's notice) reads the row still enabled.
      await gw.catalog.loadChannels()
      const seen = bad.requests.length
      const next = await post('/v1/chat/completions', { model, messages: hello }, authOf(user.key))
      assert.equal(next.status, 200, await next.text())
      assert.equal(bad.requests.length, seen, 'the broken account was called again')
    } finally {
      await trx.commit()
    }
    await until(async () => (await db.from('channels').where('id', primary.id).first()).enabled, (enabled) => enabled === false)
    // A load begun once the row is written reads it (disabled), and an operator's later enable is the truth again.
    await gw.catalog.loadChannels()
    assert.isFalse(gw.catalog.channels.find((c) => c.id === primary.id)!.enabled)
    await db.from('channels').where('id', primary.id).update({ enabled: true, disabled_reason: null })
    await gw.catalog.loadChannels()
    assert.isTrue(gw.catalog.channels.find((c) => c.id === primary.id)!.enabled)
  })

  test('embeddings, images, legacy completions and count_tokens fail over and disable the same way', async ({ assert }) => {
    answerWith(FAMILIES[3])
    const requests: Array<[Provider, string, Record<string, unknown>]> = [
      ['custom', '/v1/embeddings', { input: 'hi' }],
      ['custom', '/v1/images/generations', { prompt: 'a cat' }],
      ['custom', '/v1/completions', { prompt: 'hi' }],
      ['anthropic', '/v1/messages/count_tokens', { messages: hello }],
    ]
    for (const [provider, path, request] of requests) {
      const { model, primary, backup } = await pair(provider)
      const user = await seedUser({ balance: '10' })
      const response = await post(path, { ...request, model }, authOf(user.key))
      const text = await response.text()
      assert.equal(response.status, 200, `${path}: ${text}`)
      assert.notInclude(text, 'Insufficient credits', path)
      assert.isFalse((await gateway()).catalog.channels.find((c) => c.id === primary.id)!.enabled, path)
      if (path.endsWith('count_tokens')) continue
      const [row] = await usageRows(user.userId)
      assert.include(row, { channel_id: backup.id, status: 200, attempts: 2 }, path)
      const attempts = await attemptsOf(row.request_id)
      assert.deepEqual(attempts.map((a) => [a.channel_id, a.outcome]), [[primary.id, 'account_error'], [backup.id, 'ok']], path)
    }
  })

  test('a fallback model serves when the model\'s only channel is out of credit', async ({ assert }) => {
    answerWith(FAMILIES[3])
    n++
    const model = `acct${n}-big`
    const fallback = `acct${n}-small`
    const primary = await seedChannel({ name: `broke-only-${n}`, baseUrl: bad.url, models: [model] })
    const backup = await seedChannel({ name: `fallback-${n}`, baseUrl: good.url, models: [fallback] })
    await setModelFallbacks({ model, fallbacks: [fallback] })
    await refreshCaches()
    const user = await seedUser()
    const response = await post('/v1/chat/completions', { model, messages: hello }, authOf(user.key))
    assert.equal(response.status, 200)
    const body: any = await response.json()
    assert.equal(body.model, fallback)
    const [row] = await usageRows(user.userId)
    assert.include(row, { model: fallback, requested_model: model, channel_id: backup.id, attempts: 2 })
    const attempts = await attemptsOf(row.request_id)
    assert.deepEqual(attempts.map((a) => [a.channel_id, a.outcome]), [[primary.id, 'account_error'], [backup.id, 'ok']])
  })

  test('a Gemini per-day quota 429 (RESOURCE_EXHAUSTED, "You exceeded your current quota") stays a rate limit: cooled, not disabled', async ({ assert }) => {
    answer = {
      status: 429,
      body: JSON.stringify({
        error: {
          code: 429,
          message: 'You exceeded your current quota, please check your plan and billing details.',
          status: 'RESOURCE_EXHAUSTED',
          details: [{ '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaId: 'GenerateRequestsPerDayPerProjectPerModel-FreeTier' }] }],
        },
      }),
    }
    const { model, primary, backup } = await pair('google')
    const user = await seedUser({ balance: '10' })
    const response = await post(`/v1beta/models/${model}:generateContent`, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, authOf(user.key))
    assert.equal(response.status, 200)
    const [row] = await usageRows(user.userId)
    assert.equal(row.channel_id, backup.id)
    const attempts = await attemptsOf(row.request_id)
    assert.deepEqual(attempts.map((a) => [a.channel_id, a.outcome]), [[primary.id, 'rate_limited'], [backup.id, 'ok']])
    assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === primary.id)!.enabled)
    assert.isFalse((await gateway()).health.modelAvailable(primary.id, model))
  })

  test('OpenRouter\'s 402 for one request over the credit left ("can only afford N"): failed over, the channel kept', async ({ assert }) => {
    answer = {
      status: 402,
      body: JSON.stringify({
        error: {
          code: 402,
          message: 'This request requires more credits, or fewer max_tokens. You requested up to 64000 tokens, but can only afford 5017. To increase, visit https://openrouter.ai/settings/credits and upgrade to a paid account',
        },
      }),
    }
    const { model, primary, backup } = await pair('custom')
    const user = await seedUser({ balance: '10' })
    const response = await post('/v1/chat/completions', { model, messages: hello, max_tokens: 64000 }, authOf(user.key))
    assert.equal(response.status, 200)
    const [row] = await usageRows(user.userId)
    assert.equal(row.channel_id, backup.id)
    const attempts = await attemptsOf(row.request_id)
    assert.deepEqual(attempts.map((a) => [a.channel_id, a.outcome]), [[primary.id, 'account_error'], [backup.id, 'ok']])
    // Smaller requests still fit the account's credit: one client's large max_tokens takes it from no one.
    assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === primary.id)!.enabled)
    assert.isTrue((await db.from('channels').where('id', primary.id).first()).enabled)
  })

  test('an ordinary 400 is still the client\'s: relayed, no failover, the channel kept', async ({ assert }) => {
    answer = { status: 400, body: JSON.stringify({ error: { message: "Invalid value for 'temperature': must be at most 2.", type: 'invalid_request_error', code: null } }) }
    const { model, primary } = await pair('custom')
    const user = await seedUser({ balance: '10' })
    const seen = good.requests.length
    const response = await post('/v1/chat/completions', { model, messages: hello }, authOf(user.key))
    assert.equal(response.status, 400)
    assert.include(await response.text(), 'temperature')
    assert.equal(good.requests.length, seen)
    assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === primary.id)!.enabled)
  })

  test('the panel\'s Test puts a channel disabled for its account back once it answers; channel:test\'s model list does not', async ({ assert }) => {
    answerWith(FAMILIES[0])
    const { model, primary } = await pair('custom')
    const user = await seedUser({ balance: '10' })
    assert.equal((await post('/v1/chat/completions', { model, messages: hello }, authOf(user.key))).status, 200)
    await until(() => db.from('channels').where('id', primary.id).first(), (r) => r.enabled === false)

    // Still out of credit: the Test fails and the channel stays out.
    const failed = await testChannel(primary.id)
    assert.isFalse(failed.ok)
    assert.isFalse(failed.reEnabled)
    assert.include(failed.error, 'exceeded your current quota')

    // The key works (its model list is served, credit or not): channel:test says so and leaves the channel out.
    answer = null
    const checked = await checkChannelKey(primary.id)
    assert.isTrue(checked.ok, checked.message)
    assert.isFalse(checked.reEnabled)
    assert.include(checked.message, 'left disabled')
    assert.isFalse((await db.from('channels').where('id', primary.id).first()).enabled)

    // Topped up: the Test (a generation) passes and puts it back.
    const passed = await testChannel(primary.id)
    assert.isTrue(passed.ok, passed.error ?? '')
    assert.isTrue(passed.reEnabled)
    const stored = await db.from('channels').where('id', primary.id).first()
    assert.isTrue(stored.enabled)
    assert.isNull(stored.disabled_reason)
  })
})

test.group('Upstream account problems: the operator\'s extra phrases (Settings page)', (group) => {
  let bad: MockUpstream
  let good: MockUpstream
  let n = 0

  group.setup(async () => {
    await resetDatabase()
    // A provider the built-in list does not know: a 400 about its account.
    bad = await startMock({ faults: () => ({ raw: { status: 400, body: JSON.stringify({ code: 30011, message: 'Sorry, your account balance is insufficient' }) } }) })
    good = await startMock({ text: 'from the backup' })
    return async () => {
      await resetDatabase()
      await bad.stop()
      await good.stop()
    }
  })

  async function pair() {
    n++
    const model = `kw${n}-model`
    const primary = await seedChannel({ name: `kw-broke-${n}`, baseUrl: bad.url, models: [model], priority: 10 })
    await seedChannel({ name: `kw-backup-${n}`, baseUrl: good.url, models: [model], priority: 0 })
    return { model, primary }
  }

  test('saved on the Settings page (audited, short phrases refused), they make such an answer an account problem', async ({ assert }) => {
    const user = await seedUser()
    // Unknown phrase: the 400 is the client's, relayed, the channel kept.
    const before = await pair()
    const relayed = await post('/v1/chat/completions', { model: before.model, messages: hello }, authOf(user.key))
    assert.equal(relayed.status, 400)
    assert.include(await relayed.text(), 'balance is insufficient')
    assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === before.primary.id)!.enabled)

    await createUser({ email: 'kw-admin@test.local', password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login('kw-admin@test.local', 'password123')
    assert.include((await panel.get('/admin/settings')).html, 'data-account-keywords-form')
    const refused = await panel.follow(await panel.post('/admin/settings/account-keywords', { keywords: 'key' }))
    assert.include(refused.html, 'shorter than 4 characters')
    assert.deepEqual(await accountProblemKeywords(), [], 'nothing saved')
    const saved = await panel.post('/admin/settings/account-keywords', { keywords: '  Balance is INSUFFICIENT \r\n\r\naccount has been suspended\n' })
    assert.equal(saved.location, '/admin/settings#account-keywords')
    assert.deepEqual(await accountProblemKeywords(), ['balance is insufficient', 'account has been suspended'])
    assert.include((await panel.get('/admin/settings')).html, 'balance is insufficient\naccount has been suspended')
    const audit = await db.from('audit_log').where('action', 'settings.account_problem_keywords')
    assert.lengthOf(audit, 1)

    // The gateway has it (the setting's NOTIFY; reloaded here rather than waited for).
    await (await gateway()).catalog.loadAccountProblemKeywords()
    const { model, primary } = await pair()
    const response = await post('/v1/chat/completions', { model, messages: hello }, authOf(user.key))
    const text = await response.text()
    assert.equal(response.status, 200, text)
    assert.include(text, 'from the backup')
    const [, row] = await usageRows(user.userId)
    const attempts = await attemptsOf(row.request_id)
    assert.deepEqual(attempts.map((a) => [a.channel_id, a.status, a.outcome]), [[primary.id, 400, 'account_error'], [row.channel_id, 200, 'ok']])
    const stored = await until(() => db.from('channels').where('id', primary.id).first(), (r) => r.enabled === false)
    assert.include(stored.disabled_reason, 'keyword "balance is insufficient"')
  })

  test('GET and PATCH /api/admin/settings/account-keywords', async ({ assert }) => {
    await createUser({ email: 'kw-ops@test.local', password: 'password123', role: 'admin' })
    const key = (await createApiKey({ userRef: 'kw-ops@test.local', name: 'ops', manage: true })).key
    await refreshCaches()
    const patched = await adminApi('PATCH', '/settings/account-keywords', key, { keywords: ['Account Suspended', 'account suspended', 'wallet is empty'] })
    assert.deepEqual(patched, { status: 200, body: { object: 'account_keywords', keywords: ['account suspended', 'wallet is empty'] } })
    assert.deepEqual((await adminApi('GET', '/settings/account-keywords', key)).body, { object: 'account_keywords', keywords: ['account suspended', 'wallet is empty'] })
    const refused = await adminApi('PATCH', '/settings/account-keywords', key, { keywords: ['ok'] })
    assert.equal(refused.status, 400)
    assert.include(refused.body.error, { code: 'invalid_field', param: 'keywords' })
    assert.equal((await adminApi('PATCH', '/settings/account-keywords', key, { keywords: 5 })).status, 400)
    assert.deepEqual((await adminApi('PATCH', '/settings/account-keywords', key, { keywords: [] })).body.keywords, [])
    const sources = await db.from('audit_log').where('action', 'settings.account_problem_keywords').orderBy('id').select('source')
    assert.deepEqual(sources.map((r: any) => r.source), ['panel', 'api', 'api'])
  })

  test('the catalog follows the setting through its NOTIFY', async ({ assert }) => {
    const gw = await gateway()
    await db.from('app_settings').where('key', 'account_problem_keywords').delete()
    await until(async () => gw.catalog.accountProblemKeywords, (k) => k.length === 0)
    await db.table('app_settings').insert({ key: 'account_problem_keywords', value: JSON.stringify(['out of money']), updated_at: new Date() })
    const loaded = await until(async () => gw.catalog.accountProblemKeywords, (k) => k.length === 1)
    assert.deepEqual(loaded, ['out of money'])
  })
})
