import { test } from '@japa/runner'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, refreshCaches, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * LiteLLM's model health check, `GET /health`: a test generation through each
 * channel (or each channel serving `?model=`), in LiteLLM's answer shape, for
 * monitors set up against a LiteLLM proxy.
 */
let adminKey = ''

async function health(query = '', authorization: string | null = `Bearer ${adminKey}`) {
  const response = await fetch(`${baseUrl()}/health${query}`, { headers: authorization ? { authorization } : {} })
  const text = await response.text()
  try {
    return { status: response.status, body: JSON.parse(text) as any }
  } catch {
    throw new Error(`GET /health${query}: ${response.status} ${text.slice(0, 300)}`)
  }
}

test.group('LiteLLM GET /health (model health)', (group) => {
  let mock: MockUpstream
  let deadUrl = ''
  let liveId = 0
  let deadId = 0
  let userKey = ''

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    const closed = await startMock()
    deadUrl = closed.url
    await closed.stop()
    liveId = (await seedChannel({ name: 'live', baseUrl: mock.url, models: ['health-live'] })).id
    deadId = (await seedChannel({ name: 'dead', baseUrl: deadUrl, models: ['health-dead'] })).id
    await createUser({ email: 'ops@health.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@health.local', name: 'litellm-master', manage: true })).key
    userKey = (await seedUser({ balance: '1' })).key
    await refreshCaches()
    return () => mock.stop()
  })

  test('every channel: a generation through each; the healthy and the unhealthy apart, with their base URLs', async ({ assert }) => {
    const before = mock.requests.length
    const answer = await health()
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    assert.equal(answer.body.healthy_count, 1)
    assert.equal(answer.body.unhealthy_count, 1)
    assert.deepInclude(answer.body.healthy_endpoints[0], { model: 'health-live', api_base: mock.url, channel_id: liveId, channel: 'live' })
    const dead = answer.body.unhealthy_endpoints[0]
    assert.deepInclude(dead, { model: 'health-dead', api_base: deadUrl, channel_id: deadId, channel: 'dead', status: null })
    assert.include(dead.error, 'ECONNREFUSED')
    const sent = mock.requests.slice(before)
    assert.lengthOf(sent, 1, 'one test generation reached the live upstream')
    assert.equal(JSON.parse(sent[0].body).model, 'health-live')
  })

  test('?model= checks only the channels that serve it; an unknown model is a 404, a bad one a 400, in LiteLLM\'s shape', async ({ assert }) => {
    const answer = await health('?model=health-live')
    assert.equal(answer.status, 200)
    assert.deepEqual([answer.body.healthy_count, answer.body.unhealthy_count], [1, 0])
    assert.equal(answer.body.healthy_endpoints[0].channel_id, liveId)

    const unknown = await health('?model=no-such-model')
    assert.equal(unknown.status, 404)
    assert.include(unknown.body.error.message, 'no-such-model')
    const bad = await health('?model=a%00b')
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error.param, 'model')
    assert.equal((await health('?model=a&model=b')).status, 400)
  })

  test('monitors polling at once share one run; no key is a 401, a user\'s key a 403', async ({ assert }) => {
    const before = mock.requests.length
    mock.script({ latency_ms: 300 })
    const answers = await Promise.all([health('?model=health-live'), health('?model=health-live'), health('?model=health-live')])
    for (const answer of answers) assert.equal(answer.body.healthy_count, 1)
    assert.lengthOf(mock.requests.slice(before), 1, 'three calls, one test generation')

    assert.equal((await health('', null)).status, 401)
    assert.equal((await health('', `Bearer ${userKey}`)).status, 403)
    assert.lengthOf(mock.requests.slice(before), 1)
  })
})
