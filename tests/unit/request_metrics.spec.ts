import { test } from '@japa/runner'
import { ExpositionWriter, escapeLabelValue } from '#gateway/metrics/exposition'
import { OTHER_MODEL, RequestMetrics, type MetricsCatalog } from '#gateway/metrics/request_metrics'
import type { ChannelInfo } from '#gateway/types'
import { meterEvent } from '#tests/helpers'
import { parseExposition, samplesOf, sumOf } from '#tests/prometheus_text'

function catalogWith(channels: Array<Partial<ChannelInfo> & { id: number; name: string }>): MetricsCatalog {
  return {
    channels: channels.map((c) => ({ provider: 'custom', models: [], modelMapping: {}, ...c }) as ChannelInfo),
    prices: [],
  }
}

function scrape(metrics: RequestMetrics, names: Map<number, string>) {
  const out = new ExpositionWriter()
  metrics.write(out, (id) => names.get(id) ?? `#${id}`)
  return parseExposition(out.text())
}

test.group('Prometheus exposition and the per-request metrics', () => {
  test('label values escape backslash, double quote and line feed', ({ assert }) => {
    assert.equal(escapeLabelValue('plain-name'), 'plain-name')
    assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd')
  })

  test('a channel name with quotes and a backslash round-trips through the text format', ({ assert }) => {
    const name = 'ops "primary" \\ eu\nwest'
    const metrics = new RequestMetrics(catalogWith([{ id: 7, name, models: ['m'] }]))
    metrics.record({ ...meterEvent(1, 'm'), channelId: 7 })
    const parsed = scrape(metrics, new Map([[7, name]]))
    assert.equal(sumOf(parsed, 'gateway_requests_total', { channel: name, model: 'm', status: '200' }), 1)
  })

  test('histogram buckets are cumulative and a value on a bound falls in that bucket', ({ assert }) => {
    const metrics = new RequestMetrics(catalogWith([{ id: 1, name: 'c', models: ['m'] }]))
    for (const latencyMs of [50, 50, 51, 700, 4_000_000]) metrics.record({ ...meterEvent(1, 'm'), channelId: 1, latencyMs })
    metrics.record({ ...meterEvent(1, 'm'), channelId: 1, stream: true, ttftMs: 30, latencyMs: 90 })
    const parsed = scrape(metrics, new Map([[1, 'c']]))
    const bucket = (le: string) => samplesOf(parsed, 'gateway_request_duration_seconds_bucket', { le })[0].value
    assert.equal(bucket('0.05'), 2)
    assert.equal(bucket('0.1'), 4)
    assert.equal(bucket('1'), 5)
    assert.equal(bucket('600'), 5)
    assert.equal(bucket('+Inf'), 6)
    assert.equal(sumOf(parsed, 'gateway_request_duration_seconds_count'), 6)
    assert.closeTo(sumOf(parsed, 'gateway_request_duration_seconds_sum'), (50 + 50 + 51 + 700 + 4_000_000 + 90) / 1000, 1e-9)
    assert.equal(samplesOf(parsed, 'gateway_time_to_first_token_seconds_bucket', { le: '0.025' })[0].value, 0)
    assert.equal(samplesOf(parsed, 'gateway_time_to_first_token_seconds_bucket', { le: '0.05' })[0].value, 1)
  })

  test('names no channel or price names fold into (other) unless answered; at most maxModels names get a series', ({ assert }) => {
    const metrics = new RequestMetrics(catalogWith([{ id: 1, name: 'c', models: ['listed', 'gpt-*'], modelMapping: { mapped: 'up' } }]), 4)
    // Refused before any channel (404 model_not_found): folded.
    for (const model of ['junk-1', 'junk-2', 'junk-3']) metrics.record({ ...meterEvent(1, model), status: 404, errorCode: 'model_not_found', attemptCount: 0 })
    // Named exactly by a channel (listed, mapped): their own series even when they failed.
    metrics.record({ ...meterEvent(1, 'listed'), status: 402, errorCode: 'insufficient_balance', attemptCount: 0 })
    metrics.record({ ...meterEvent(1, 'mapped'), status: 502, errorCode: 'provider_error', channelId: 1 })
    // Served through a glob: its own series once an upstream answered it; its upstream's 404 before that folds.
    metrics.record({ ...meterEvent(1, 'gpt-typo'), status: 404, errorCode: 'model_not_found', channelId: 1 })
    metrics.record({ ...meterEvent(1, 'gpt-real'), channelId: 1 })
    // The cap (4: listed, mapped, gpt-real, and this one); the next answered name folds.
    metrics.record({ ...meterEvent(1, 'gpt-fourth'), channelId: 1 })
    metrics.record({ ...meterEvent(1, 'gpt-fifth'), channelId: 1 })
    const parsed = scrape(metrics, new Map([[1, 'c']]))
    const models = new Set(samplesOf(parsed, 'gateway_requests_total').map((s) => s.labels.model))
    assert.deepEqual([...models].sort(), [OTHER_MODEL, 'gpt-fourth', 'gpt-real', 'listed', 'mapped'].sort())
    assert.equal(sumOf(parsed, 'gateway_requests_total', { model: OTHER_MODEL }), 5)
    assert.equal(sumOf(parsed, 'gateway_requests_total', { model: OTHER_MODEL, status: '404' }), 4)
  })

  test('at most maxSeries label combinations: past it a new one counts under (other), no request lost', ({ assert }) => {
    // A glob channel whose upstream answers any name: each name answered once, then provoked into other statuses.
    const metrics = new RequestMetrics(catalogWith([{ id: 1, name: 'c', models: ['*'] }]), 500, 40)
    const endpoints = ['chat.completions', 'messages', 'responses']
    let recorded = 0
    for (let m = 0; m < 30; m++) {
      for (const endpoint of endpoints) {
        for (const status of [200, 499, 400, 429]) {
          metrics.record({ ...meterEvent(1, `made-up-${m}`), endpoint, channelId: 1, status, errorCode: status === 200 ? null : 'x' })
          recorded++
        }
      }
    }
    const parsed = scrape(metrics, new Map([[1, 'c']]))
    const series = samplesOf(parsed, 'gateway_requests_total')
    // 40 named combinations, and (other)'s: at most endpoints × statuses of them.
    assert.lengthOf(series.filter((s) => s.labels.model !== OTHER_MODEL), 40)
    assert.isAtMost(series.filter((s) => s.labels.model === OTHER_MODEL).length, endpoints.length * 4)
    assert.equal(sumOf(parsed, 'gateway_requests_total'), recorded)
    assert.equal(sumOf(parsed, 'gateway_request_duration_seconds_count'), recorded)
    // A combination that has its series keeps counting there.
    metrics.record({ ...meterEvent(1, 'made-up-0'), endpoint: 'chat.completions', channelId: 1 })
    assert.equal(sumOf(scrape(metrics, new Map([[1, 'c']])), 'gateway_requests_total', { model: 'made-up-0', endpoint: 'chat.completions', status: '200' }), 2)
  })

  test('attempts and failures per channel, from the attempt records of a failover', ({ assert }) => {
    const metrics = new RequestMetrics(catalogWith([{ id: 1, name: 'a', models: ['m'] }, { id: 2, name: 'b', models: ['m'] }]))
    metrics.record({
      ...meterEvent(1, 'm'),
      channelId: 2,
      attemptCount: 3,
      attempts: [
        { attempt: 1, channelId: 1, status: 503, outcome: 'http_error', error: 'down', latencyMs: 3 },
        { attempt: 2, channelId: 1, status: null, outcome: 'timeout', error: 'slow', latencyMs: 30 },
        { attempt: 3, channelId: 2, status: 200, outcome: 'ok', error: null, latencyMs: 5 },
      ],
    })
    metrics.record({ ...meterEvent(1, 'm'), channelId: 2 })
    const parsed = scrape(metrics, new Map([[1, 'a'], [2, 'b']]))
    assert.equal(sumOf(parsed, 'gateway_upstream_attempts_total', { channel: 'a' }), 2)
    assert.equal(sumOf(parsed, 'gateway_upstream_attempts_total', { channel: 'b' }), 2)
    assert.equal(sumOf(parsed, 'gateway_upstream_failures_total', { channel: 'a', outcome: 'http_error' }), 1)
    assert.equal(sumOf(parsed, 'gateway_upstream_failures_total', { channel: 'a', outcome: 'timeout' }), 1)
    assert.lengthOf(samplesOf(parsed, 'gateway_upstream_failures_total', { channel: 'b' }), 0)
  })
})
