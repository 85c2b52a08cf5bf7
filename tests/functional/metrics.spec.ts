import { createRequire } from "node:module"; const require = createRequire(import.meta.url)
import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { setModelFallbacks } from '#actions/set_model_fallbacks'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, meterEvent, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'
import { parseExposition, samplesOf, sumOf, type Exposition } from '#tests/prometheus_text'

/**
 * GET /metrics, as Prometheus scrapes it: the text format parses strictly,
 * the request counters equal the usage rows (non-stream, stream, an error, a
 * fallback, a batch-like record straight into the meter), the spend equals
 * the rows' cost, histograms are cumulative, junk model names fold into one
 * series, and the endpoint is refused without the management key or the
 * scrape token.
 */

const hello = [{ role: 'user', content: 'hi' }]

async function scrape(authorization?: string): Promise<Response> {
  return fetch(`${baseUrl()}/metrics`, { headers: authorization ? { authorization } : {} })
}

test.group('GET /metrics', (group) => {
  let up: MockUpstream
  let down: MockUpstream
  let adminKey: string
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    up = await startMock({ text: 'metered answer' })
    down = await startMock({ status: 503 })
    await seedChannel({ name: 'prom-up', baseUrl: up.url, models: ['prom-chat', 'prom-small'] })
    await seedChannel({ name: 'prom-down', baseUrl: down.url, models: ['prom-big'] })
    await seedPrice('prom-*', '1', '2')
    await setModelFallbacks({ model: 'prom-big', fallbacks: ['prom-small'] })
    await createUser({ email: 'ops@metrics.test', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@metrics.test', name: 'ops', manage: true })).key
    user = await seedUser({ balance: '10' })
    await refreshCaches()
    ;(await gateway()).metrics.reset()
    return async () => {
      ;(await gateway()).health.reset()
      await up.stop()
      await down.stop()
    }
  })

  test('the counters equal the usage rows: non-stream, stream, an error, a fallback, a record of the meter', async ({ assert }) => {
    const auth = { authorization: `Bearer ${user.key}` }
    for (let i = 0; i < 2; i++) assert.equal((await post('/v1/chat/completions', { model: 'prom-chat', messages: hello }, auth)).status, 200)
    const stream = await post('/v1/chat/completions', { model: 'prom-chat', messages: hello, stream: true }, auth)
    assert.equal(stream.status, 200)
    assert.include(await stream.text(), '[DONE]')
    const failed = await post('/v1/chat/completions', { model: 'prom-chat', messages: hello, mock: { status: 400 } }, auth)
    assert.equal(failed.status, 400)
    const fallback = await post('/v1/chat/completions', { model: 'prom-big', messages: hello }, auth)
    assert.equal(fallback.status, 200)
    // What batches and realtime responses do: a record handed to the meter directly.
    const gw = await gateway()
    gw.meter.record({ ...meterEvent(user.userId, 'prom-chat'), endpoint: 'batch', latencyMs: 3_600_000 })
    await gw.meter.drain()

    const response = await scrape(`Bearer ${adminKey}`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
    const metrics = parseExposition(await response.text())

    const rows = await db.from('usage_records').select('endpoint', 'model', 'requested_model', 'status', 'stream', 'cost', 'prompt_tokens', 'completion_tokens')
    assert.lengthOf(rows, 6)
    for (const row of rows) {
      const where = { endpoint: row.endpoint, model: row.model, requested_model: row.requested_model ?? row.model, status: String(row.status) }
      const expected = rows.filter((r) => r.endpoint === row.endpoint && r.model === row.model && r.status === row.status && r.requested_model === row.requested_model).length
      assert.equal(sumOf(metrics, 'gateway_requests_total', where), expected, JSON.stringify(where))
    }
    assert.equal(sumOf(metrics, 'gateway_requests_total'), 6)
    assert.equal(sumOf(metrics, 'gateway_requests_total', { model: 'prom-chat', status: '400', channel: 'prom-up', provider: 'custom' }), 1)
    assert.equal(sumOf(metrics, 'gateway_requests_total', { model: 'prom-small', requested_model: 'prom-big', channel: 'prom-up', status: '200' }), 1)

    // Money and tokens: what the rows hold, to the pico-dollar.
    const cost = rows.reduce((total, r) => total + Number(r.cost), 0)
    assert.isAbove(cost, 0)
    assert.closeTo(sumOf(metrics, 'gateway_spend_usd_total'), cost, 1e-12)
    assert.equal(sumOf(metrics, 'gateway_input_tokens_total'), rows.reduce((t, r) => t + r.prompt_tokens, 0))
    assert.equal(sumOf(metrics, 'gateway_output_tokens_total'), rows.reduce((t, r) => t + r.completion_tokens, 0))

    // The failover: prom-down tried and failed, prom-up answered.
    const downAttempts = sumOf(metrics, 'gateway_upstream_attempts_total', { channel: 'prom-down' })
    assert.isAtLeast(downAttempts, 1)
    assert.equal(sumOf(metrics, 'gateway_upstream_failures_total', { channel: 'prom-down' }), downAttempts)
    assert.equal(down.requests.length, downAttempts)
    assert.equal(sumOf(metrics, 'gateway_upstream_attempts_total', { channel: 'prom-up' }), up.requests.length)

    // Histograms: cumulative buckets, +Inf = _count; every request observed once; one stream's first token.
    assertCumulative(assert, metrics, 'gateway_request_duration_seconds')
    assertCumulative(assert, metrics, 'gateway_time_to_first_token_seconds')
    assert.equal(sumOf(metrics, 'gateway_request_duration_seconds_count'), 6)
    assert.equal(sumOf(metrics, 'gateway_time_to_first_token_seconds_count'), 1)
    // The batch's hour is past every bound: in +Inf only.
    const batchBuckets = samplesOf(metrics, 'gateway_request_duration_seconds_bucket', { endpoint: 'batch' })
    assert.equal(batchBuckets.find((s) => s.labels.le === '600')!.value, 0)
    assert.equal(batchBuckets.find((s) => s.labels.le === '+Inf')!.value, 1)

    // Gauges read at the scrape.
    assert.equal(sumOf(metrics, 'gateway_requests_in_flight'), 0)
    assert.equal(sumOf(metrics, 'gateway_streams_open'), 0)
    assert.equal(sumOf(metrics, 'gateway_channel_state', { channel: 'prom-up', state: 'enabled' }), 1)
    for (const channel of ['prom-up', 'prom-down']) assert.equal(sumOf(metrics, 'gateway_channel_state', { channel }), 1, channel)
    assert.equal(sumOf(metrics, 'gateway_meter_queued_records'), 0)
    // Read at the scrape: prom-down's circuit opened after failures is its state at the next one.
    const downId = gw.catalog.channels.find((c) => c.name === 'prom-down')!.id
    for (let i = 0; i < 5; i++) gw.health.failure(downId, 'down', 60_000)
    const later = parseExposition(await (await scrape(`Bearer ${adminKey}`)).text())
    assert.equal(sumOf(later, 'gateway_channel_state', { channel: 'prom-down', state: 'circuit_open' }), 1)
    assert.equal(sumOf(later, 'gateway_channel_state', { channel: 'prom-down' }), 1)
    assert.isAbove(sumOf(metrics, 'process_resident_memory_bytes'), 0)
    assert.lengthOf(samplesOf(metrics, 'gateway_build_info'), 1)
    assert.lengthOf(samplesOf(metrics, 'nodejs_eventloop_lag_p99_seconds'), 1)
    // Nobody's key or e-mail is a label.
    for (const sample of metrics.samples) {
      for (const value of Object.values(sample.labels)) {
        assert.notInclude(value, user.key.slice(0, 12))
        assert.notInclude(value, user.email)
      }
    }
  })

  test('model names no channel serves fold into one series', async ({ assert }) => {
    const gw = await gateway()
    gw.metrics.reset()
    const auth = { authorization: `Bearer ${user.key}` }
    const junk = ['junk-one', 'junk-two', 'typo"model\\x']
    for (const model of junk) assert.equal((await post('/v1/chat/completions', { model, messages: hello }, auth)).status, 404)
    assert.equal((await post('/v1/chat/completions', { model: 'prom-chat', messages: hello }, auth)).status, 200)
    await gw.meter.drain()
    const text = await (await scrape(`Bearer ${adminKey}`)).text(); require("node:fs").writeFileSync("/tmp/metrics_sample.txt", text)
    const metrics = parseExposition(text)
    for (const model of junk) assert.notInclude(text, model.slice(0, 8))
    assert.equal(sumOf(metrics, 'gateway_requests_total', { model: '(other)', status: '404' }), 3)
    assert.lengthOf(samplesOf(metrics, 'gateway_requests_total', { model: '(other)' }), 1)
    assert.equal(sumOf(metrics, 'gateway_requests_total', { model: 'prom-chat', status: '200' }), 1)
  })

  test('refused without the management key or METRICS_TOKEN, in OpenAI error format; METRICS_PUBLIC opens it', async ({ assert, cleanup }) => {
    const gw = await gateway()
    const before = gw.metricsAccess
    cleanup(() => {
      gw.metricsAccess = before
    })
    gw.metricsAccess = { token: null, public: false }

    // LiteLLM's scrape configs say `metrics_path: /metrics/`: the same answer there.
    for (const path of ['/metrics/', '/metrics?x=1']) {
      const refused = await fetch(`${baseUrl()}${path}`)
      assert.equal(refused.status, 401, path)
      assert.equal(((await refused.json()) as any).error.code, 'invalid_api_key', path)
    }
    const anonymous = await scrape()
    assert.equal(anonymous.status, 401)
    const body: any = await anonymous.json()
    assert.equal(body.error.code, 'invalid_api_key')
    assert.equal(body.error.type, 'authentication_error')
    assert.isString(body.error.message)
    assert.notInclude(JSON.stringify(body), 'gateway_requests_total')

    const ordinary = await scrape(`Bearer ${user.key}`)
    assert.equal(ordinary.status, 403)
    assert.equal(((await ordinary.json()) as any).error.code, 'admin_required')
    assert.equal((await scrape('Bearer scrape-secret-123')).status, 401)

    gw.metricsAccess = { token: 'scrape-secret-123', public: false }
    assert.equal((await scrape('Bearer scrape-secret-123')).status, 200)
    assert.equal((await scrape('Bearer scrape-secret-12')).status, 401)
    assert.equal((await scrape()).status, 401)
    assert.equal((await scrape(`Bearer ${adminKey}`)).status, 200)

    gw.metricsAccess = { token: null, public: true }
    const open = await scrape()
    assert.equal(open.status, 200)
    parseExposition(await open.text())
    const slashed = await fetch(`${baseUrl()}/metrics/`)
    assert.equal(slashed.status, 200)
    assert.equal(slashed.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  })
})

function assertCumulative(assert: any, metrics: Exposition, family: string) {
  assert.equal(metrics.types.get(family), 'histogram')
  const bySeries = new Map<string, Array<{ le: number; value: number }>>()
  for (const s of samplesOf(metrics, `${family}_bucket`)) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    if (!bySeries.has(key)) bySeries.set(key, [])
    bySeries.get(key)!.push({ le: le === '+Inf' ? Infinity : Number(le), value: s.value })
  }
  assert.isAbove(bySeries.size, 0, family)
  for (const [key, buckets] of bySeries) {
    for (let i = 1; i < buckets.length; i++) {
      assert.isAbove(buckets[i].le, buckets[i - 1].le, `${family} ${key}: le ascending`)
      assert.isAtLeast(buckets[i].value, buckets[i - 1].value, `${family} ${key}: cumulative`)
    }
    assert.equal(buckets.at(-1)!.le, Infinity)
    const labels = Object.fromEntries(JSON.parse(key))
    assert.equal(sumOf(metrics, `${family}_count`, labels), buckets.at(-1)!.value, `${family} ${key}: +Inf = _count`)
    assert.lengthOf(samplesOf(metrics, `${family}_sum`, labels), 1)
  }
}
