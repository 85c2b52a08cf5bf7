import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import logger from '@adonisjs/core/services/logger'
import { setModelFallbacks } from '#actions/set_model_fallbacks'
import { LogExporter, type LogExportOptions } from '#gateway/log_export/log_exporter'
import { destinationsFrom, logExporterFrom, type LogExportEnv } from '#gateway/log_export/log_export_config'
import { parseOtlpHeaders } from '#gateway/log_export/otlp'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { MockCollector, spanAttributes } from '#tests/fixtures/mock_collector'
import { spawn } from 'node:child_process'
import { mkdtempSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UsageMeter } from '#gateway/metering/usage_meter'
import { cuttableProxy } from '#tests/fixtures/cuttable_proxy'
import { freePort } from '#tests/fixtures/gateway_process'
import { baseUrl, gateway, meterEvent, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

const hello = [{ role: 'user', content: 'hi' }]

/** Every destination at one collector (paths tell them apart). */
const allAt = (collector: MockCollector): LogExportEnv => ({
  LANGFUSE_PUBLIC_KEY: 'pk-lf-test',
  LANGFUSE_SECRET_KEY: 'sk-lf-secret-value',
  LANGFUSE_HOST: collector.url,
  OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
  OTEL_EXPORTER_OTLP_HEADERS: 'x-otlp-token=otlp%20secret,x-scope=gw',
  LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines`,
})

async function useExporter(env: LogExportEnv, options: Partial<LogExportOptions> = {}) {
  const gw = await gateway()
  const exporter = new LogExporter({
    destinations: destinationsFrom(env),
    logger,
    names: gw.exportNames,
    bodies: env.LOG_EXPORT_BODIES === true,
    batchSize: 100,
    intervalMs: 20,
    maxQueued: 1000,
    timeoutMs: 2000,
    ...options,
  })
  await gw.setLogExport(exporter)
  return exporter
}

/** Waits for the user's `count` usage rows (a stream's row is written as it closes), then for the exporter. */
async function settled(userId: number, count: number, exporter: LogExporter) {
  let rows: any[] = []
  for (let i = 0; i < 100 && rows.length < count; i++) {
    rows = await usageRows(userId)
    if (rows.length < count) await new Promise((r) => setTimeout(r, 20))
  }
  await exporter.flush()
  return rows
}

test.group('Log export: Langfuse, OTLP and a JSON-lines webhook', (group) => {
  let collector: MockCollector
  let mock: MockUpstream
  let failing: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    collector = await new MockCollector().start()
    mock = await startMock()
    failing = await startMock({ status: 500 })
    await seedChannel({ name: 'export-up', baseUrl: mock.url, models: ['exp-*', 'small-exp'] })
    await seedChannel({ name: 'export-down', baseUrl: failing.url, models: ['broken-exp', 'big-exp'] })
    await seedPrice('exp-*', '1', '2')
    await seedPrice('small-exp', '3', '4')
    return async () => {
      const gw = await gateway()
      await gw.setLogExport(null)
      await gw.logBodies('off')
      gw.health.reset()
      await collector.stop()
      await mock.stop()
      await failing.stop()
    }
  })
  group.each.setup(async () => {
    collector.reset()
    return async () => {
      await (await gateway()).setLogExport(null)
    }
  })

  test('a non-stream call arrives once at each destination, with the usage row tokens, cost, key, team, tags and end user', async ({ assert }) => {
    const exporter = await useExporter(allAt(collector))
    const user = await seedUser({ balance: '5' })
    const answer = await post(
      '/v1/chat/completions',
      { model: 'exp-one', messages: hello, user: 'customer-7' },
      { 'authorization': `Bearer ${user.key}`, 'x-gateway-tags': 'feature-a,prod' }
    )
    assert.equal(answer.status, 200)
    const [row] = await settled(user.userId, 1, exporter)
    const keyName = (await db.from('api_keys').where('id', user.keyId).first()).name
    assert.isAbove(row.prompt_tokens, 0)
    assert.isAbove(Number(row.cost), 0)

    // Langfuse: a trace and a generation, Basic auth public:secret, usage and cost in its fields.
    const ingestion = collector.received.filter((r) => r.path === '/api/public/ingestion')
    assert.isAtLeast(ingestion.length, 1)
    assert.equal(ingestion[0].headers.authorization, `Basic ${Buffer.from('pk-lf-test:sk-lf-secret-value').toString('base64')}`)
    const events = collector.langfuseEvents().filter((e) => e.body.id === row.request_id || e.body.traceId === row.request_id)
    assert.deepEqual(events.map((e) => e.type), ['trace-create', 'generation-create'])
    const [trace, generation] = events
    assert.equal(trace.body.userId, 'customer-7')
    assert.deepEqual(trace.body.tags, ['feature-a', 'prod'])
    assert.include(trace.body.metadata, { api_key_id: user.keyId, api_key_name: keyName, gateway_user_id: user.userId, end_user: 'customer-7' })
    assert.deepEqual(generation.body.usageDetails, { input: row.prompt_tokens, output: row.completion_tokens, total: row.total_tokens })
    assert.deepEqual(generation.body.costDetails, { total: Number(row.cost) })
    assert.equal(generation.body.model, 'exp-one')
    assert.equal(generation.body.level, 'DEFAULT')
    assert.notProperty(trace.body, 'input')
    assert.equal(Date.parse(generation.body.endTime) - Date.parse(generation.body.startTime), row.latency_ms)

    // OTLP: one span, GenAI attributes, the gateway's own, the configured headers.
    const traces = collector.received.filter((r) => r.path === '/v1/traces')
    assert.equal(traces[0].headers['x-otlp-token'], 'otlp secret')
    assert.equal(traces[0].headers['content-type'], 'application/json')
    const spans = collector.spans().filter((s) => s.traceId === row.request_id.replaceAll('-', ''))
    assert.lengthOf(spans, 1)
    // Event ids derived from the request id alone: a row sent again is the same event everywhere.
    assert.equal(spans[0].spanId, row.request_id.replaceAll('-', '').slice(16))
    assert.sameMembers(events.map((e) => e.id), [`${row.request_id}-trace`, `${row.request_id}-generation`])
    const attrs = spanAttributes(spans[0])
    assert.include(attrs, {
      'gen_ai.system': 'custom',
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'exp-one',
      'gen_ai.response.model': 'exp-one',
      'gen_ai.usage.input_tokens': row.prompt_tokens,
      'gen_ai.usage.output_tokens': row.completion_tokens,
      'gateway.cost_usd': Number(row.cost),
      'gateway.api_key_id': user.keyId,
      'gateway.api_key_name': keyName,
      'gateway.user_id': user.userId,
      'gateway.end_user': 'customer-7',
      'http.response.status_code': 200,
    })
    assert.deepEqual(attrs['gateway.tags'], ['feature-a', 'prod'])
    assert.deepEqual(spans[0].status, { code: 1 })
    assert.equal(BigInt(spans[0].endTimeUnixNano) - BigInt(spans[0].startTimeUnixNano), BigInt(row.latency_ms) * 1_000_000n)

    // The webhook: one JSON line.
    const lines = collector.lines().filter((l) => l.request_id === row.request_id)
    assert.lengthOf(lines, 1)
    assert.equal(lines[0].id, row.request_id)
    assert.include(lines[0], { prompt_tokens: row.prompt_tokens, completion_tokens: row.completion_tokens, status: 200, api_key_name: keyName, end_user: 'customer-7' })
    assert.equal(Number(lines[0].cost), Number(row.cost))
    assert.equal(collector.received.find((r) => r.path === '/lines')!.headers['content-type'], 'application/x-ndjson')

    // /api/status counts per destination, numbers only: no URL, no key.
    const status = (await (await fetch(`${baseUrl()}/api/status`)).json()) as any
    for (const name of ['langfuse', 'otlp', 'webhook']) {
      assert.isAtLeast(status.log_export[name].exported, 1)
      assert.equal(status.log_export[name].failed, 0)
    }
    const text = JSON.stringify(status)
    for (const secret of [collector.url, 'sk-lf-secret-value', 'otlp secret', 'pk-lf-test']) assert.notInclude(text, secret)
  })

  test('a stream arrives once, with the row tokens, cost, stream flag and time to first token', async ({ assert }) => {
    const exporter = await useExporter(allAt(collector))
    const user = await seedUser({ balance: '5' })
    const answer = await post(
      '/v1/chat/completions',
      { model: 'exp-stream', messages: hello, stream: true, stream_options: { include_usage: true } },
      { authorization: `Bearer ${user.key}` }
    )
    assert.include(await answer.text(), '[DONE]')
    const [row] = await settled(user.userId, 1, exporter)
    assert.isTrue(row.stream)
    assert.isNotNull(row.ttft_ms)
    const generations = collector.langfuseEvents().filter((e) => e.type === 'generation-create' && e.body.traceId === row.request_id)
    assert.lengthOf(generations, 1)
    assert.deepEqual(generations[0].body.usageDetails, { input: row.prompt_tokens, output: row.completion_tokens, total: row.total_tokens })
    assert.deepEqual(generations[0].body.costDetails, { total: Number(row.cost) })
    assert.equal(Date.parse(generations[0].body.completionStartTime) - Date.parse(generations[0].body.startTime), row.ttft_ms)
    const trace = collector.langfuseEvents().find((e) => e.type === 'trace-create' && e.body.id === row.request_id)
    assert.isTrue(trace.body.metadata.stream)
    const spans = collector.spans().filter((s) => s.traceId === row.request_id.replaceAll('-', ''))
    assert.lengthOf(spans, 1)
    assert.include(spanAttributes(spans[0]), { 'gateway.stream': true, 'gateway.ttft_ms': row.ttft_ms, 'gen_ai.usage.output_tokens': row.completion_tokens })
    assert.lengthOf(collector.lines().filter((l) => l.request_id === row.request_id), 1)
  })

  test('a failed call arrives once as an error: Langfuse level ERROR with its status message, OTLP status ERROR', async ({ assert }) => {
    const exporter = await useExporter(allAt(collector))
    const user = await seedUser({ balance: '5' })
    const answer = await post('/v1/chat/completions', { model: 'broken-exp', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.isAtLeast(answer.status, 500)
    const [row] = await settled(user.userId, 1, exporter)
    const generation = collector.langfuseEvents().find((e) => e.type === 'generation-create' && e.body.traceId === row.request_id)
    assert.equal(generation.body.level, 'ERROR')
    assert.equal(generation.body.statusMessage, row.error_code ?? `HTTP ${row.status}`)
    assert.deepEqual(generation.body.costDetails, { total: Number(row.cost) })
    const spans = collector.spans().filter((s) => s.traceId === row.request_id.replaceAll('-', ''))
    assert.lengthOf(spans, 1)
    assert.equal(spans[0].status.code, 2)
    assert.equal(spanAttributes(spans[0])['http.response.status_code'], row.status)
    const line = collector.lines().find((l) => l.request_id === row.request_id)
    assert.include(line, { status: row.status, error_code: row.error_code })
  })

  test('a fallback arrives once: the model asked for, the model that answered, billed as the row says', async ({ assert }) => {
    await setModelFallbacks({ model: 'big-exp', fallbacks: ['small-exp'] })
    await refreshCaches()
    const exporter = await useExporter(allAt(collector))
    const user = await seedUser({ balance: '5' })
    const answer = await post('/v1/chat/completions', { model: 'big-exp', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    const [row] = await settled(user.userId, 1, exporter)
    assert.include(row, { model: 'small-exp', requested_model: 'big-exp' })
    const events = collector.langfuseEvents().filter((e) => e.body.id === row.request_id || e.body.traceId === row.request_id)
    assert.lengthOf(events, 2)
    const generation = events.find((e) => e.type === 'generation-create')
    assert.equal(generation.body.model, 'small-exp')
    assert.equal(events.find((e) => e.type === 'trace-create').body.metadata.requested_model, 'big-exp')
    assert.deepEqual(generation.body.costDetails, { total: Number(row.cost) })
    const spans = collector.spans().filter((s) => s.traceId === row.request_id.replaceAll('-', ''))
    assert.lengthOf(spans, 1)
    assert.include(spanAttributes(spans[0]), { 'gen_ai.request.model': 'big-exp', 'gen_ai.response.model': 'small-exp', 'gateway.attempts': row.attempts })
  })

  test('bodies go only with the switch, and only those LOG_BODIES kept', async ({ assert }) => {
    const gw = await gateway()
    await gw.logBodies('all')
    try {
      // LOG_BODIES on, export switch off: nothing of the prompt leaves.
      let exporter = await useExporter(allAt(collector))
      let user = await seedUser({ balance: '5' })
      await post('/v1/chat/completions', { model: 'exp-secret', messages: [{ role: 'user', content: 'prompt-without-switch' }] }, { authorization: `Bearer ${user.key}` })
      await settled(user.userId, 1, exporter)
      assert.isAbove(collector.received.length, 0)
      for (const r of collector.received) assert.notInclude(r.body, 'prompt-without-switch')

      // The switch on: the request and the answer as LOG_BODIES kept them.
      collector.reset()
      exporter = await useExporter({ ...allAt(collector), LOG_EXPORT_BODIES: true })
      user = await seedUser({ balance: '5' })
      await post('/v1/chat/completions', { model: 'exp-secret', messages: [{ role: 'user', content: 'prompt-with-switch' }] }, { authorization: `Bearer ${user.key}` })
      const [row] = await settled(user.userId, 1, exporter)
      const trace = collector.langfuseEvents().find((e) => e.type === 'trace-create' && e.body.id === row.request_id)
      assert.equal(trace.body.input.messages[0].content, 'prompt-with-switch')
      assert.equal(trace.body.output.object, 'chat.completion')
      const span = collector.spans().find((s) => s.traceId === row.request_id.replaceAll('-', ''))
      assert.include(String(spanAttributes(span)['gateway.request.body']), 'prompt-with-switch')
      assert.include(collector.lines().find((l) => l.request_id === row.request_id).request_body, 'prompt-with-switch')

      // The switch on but LOG_BODIES off: no bodies (the export never captures any itself).
      await gw.logBodies('off')
      collector.reset()
      user = await seedUser({ balance: '5' })
      await post('/v1/chat/completions', { model: 'exp-secret', messages: [{ role: 'user', content: 'prompt-not-logged' }] }, { authorization: `Bearer ${user.key}` })
      await settled(user.userId, 1, exporter)
      assert.isAbove(collector.received.length, 0)
      for (const r of collector.received) assert.notInclude(r.body, 'prompt-not-logged')
    } finally {
      await gw.logBodies('off')
    }
  })

  test('with bodies, a POST is cut before 2 MB of them (Langfuse takes 3.5 MB a batch)', async ({ assert }) => {
    const gw = await gateway()
    await gw.logBodies('all', 1024 * 1024)
    try {
      // Ten calls of ~600 KB of prompt each: one batch by count, four POSTs by size.
      const exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines`, LOG_EXPORT_BODIES: true }, { intervalMs: 600_000 })
      const user = await seedUser({ balance: '5' })
      const big = 'x'.repeat(600 * 1024)
      for (let i = 0; i < 10; i++) {
        const answer = await post('/v1/chat/completions', { model: 'exp-big', messages: [{ role: 'user', content: big }] }, { authorization: `Bearer ${user.key}` })
        assert.equal(answer.status, 200)
      }
      await settled(user.userId, 10, exporter)
      const posts = collector.received.filter((r) => r.path === '/lines')
      assert.lengthOf(collector.lines(), 10)
      assert.isAtLeast(posts.length, 4)
      for (const p of posts) assert.isBelow(p.body.length, 3 * 1024 * 1024)
    } finally {
      await gw.logBodies('off')
    }
  }).timeout(60_000)

  test('a key the cache does not hold is exported with its name, read once per batch and then kept', async ({ assert }) => {
    const gw = await gateway()
    // Two keys never used through the gateway: the key cache holds neither.
    const users = [await seedUser({ balance: '1' }), await seedUser({ balance: '1' })]
    for (const user of users) assert.isNull(gw.catalog.keyName(user.keyId))
    const names = ['export-key-a', 'export-key-b']
    for (const [i, user] of users.entries()) await db.from('api_keys').where('id', user.keyId).update({ name: names[i] })
    const loads: number[][] = []
    const exporter = new LogExporter({
      ...plain(`${collector.url}/lines`),
      intervalMs: 600_000,
      names: { ...gw.exportNames, loadKeyNames: (ids) => (loads.push([...ids]), gw.exportNames.loadKeyNames!(ids)) },
    })
    const meter = new UsageMeter({ connectionString: process.env.DATABASE_URL!, batchSize: 50, flushMs: 600_000, logger })
    meter.exporter = exporter
    const event = (user: (typeof users)[number]) => ({ ...meterEvent(user.userId, 'exp-names'), apiKeyId: user.keyId })
    try {
      for (const user of [...users, ...users, users[0]]) meter.record(event(user))
      await meter.drain()
      await exporter.flush()
      let lines = collector.lines()
      assert.lengthOf(lines, 5)
      for (const line of lines) assert.equal(line.api_key_name, names[users.findIndex((u) => u.keyId === line.api_key_id)])
      // One read for the batch, each id once.
      assert.lengthOf(loads, 1)
      assert.sameMembers(loads[0], users.map((u) => u.keyId))
      // The next batch: the names are kept, nothing read.
      collector.reset()
      for (const user of users) meter.record(event(user))
      await meter.drain()
      await exporter.flush()
      lines = collector.lines()
      assert.lengthOf(lines, 2)
      for (const line of lines) assert.isNotNull(line.api_key_name)
      assert.lengthOf(loads, 1)
    } finally {
      await meter.close(2000)
      await exporter.close(1000)
    }
  })

  test('bodies of queued rows are bounded in characters, not only rows: past the bound a row goes without its own', async ({ assert }) => {
    // Two destinations, nothing sent until flushed: what a stuck collector's queue holds.
    const lines = (path: string) => ({ ...destinationsFrom({ LOG_EXPORT_WEBHOOK_URL: `${collector.url}${path}` })[0], name: path })
    const exporter = new LogExporter({
      ...plain(`${collector.url}/lines`),
      destinations: [lines('/lines'), lines('/lines2')],
      bodies: true,
      intervalMs: 600_000,
      maxBodyBytes: 1000,
      names: (await gateway()).exportNames,
    })
    try {
      // Ten calls of 300 characters of bodies, each committed before the next (as the meter hands rows over).
      const commit = (i: number) => {
        const id = `00000000-0000-7000-8000-0000000000${String(i).padStart(2, '0')}`
        exporter.keepBodies(id, `{"prompt":"${'q'.repeat(186)}-${i}"}`, 'a'.repeat(100))
        exporter.take([{ request_id: id, user_id: 1, endpoint: 'chat.completions', model: 'exp-q', status: 200, created_at: new Date().toISOString() }])
      }
      for (let i = 0; i < 10; i++) commit(i)
      assert.isAtMost(exporter.heldBodyBytes, 1000)
      await exporter.flush()
      for (const path of ['/lines', '/lines2']) {
        const got = collector.lines(path)
        assert.lengthOf(got, 10, path)
        // The first three fit (900 characters), each with its bodies at both destinations; the rest went without.
        assert.deepEqual(got.map((l) => l.request_body !== undefined), [true, true, true, false, false, false, false, false, false, false], path)
        assert.include(got[2].request_body, '-2')
      }
      // Sent by every destination: the room is free again.
      assert.equal(exporter.heldBodyBytes, 0)
      collector.reset()
      commit(10)
      await exporter.flush()
      assert.include(collector.lines('/lines')[0].request_body, '-10')
      assert.equal(exporter.heldBodyBytes, 0)
    } finally {
      await exporter.close(100)
    }
  })


  test('nothing configured: no exporter, the meter holds none, status says null', async ({ assert }) => {
    const gw = await gateway()
    assert.isNull(logExporterFrom({}, gw.exportNames, logger))
    assert.isNull(logExporterFrom({ LANGFUSE_PUBLIC_KEY: 'pk-only' }, gw.exportNames, logger))
    assert.isNull(gw.meter.exporter)
    const user = await seedUser({ balance: '5' })
    assert.equal((await post('/v1/chat/completions', { model: 'exp-off', messages: hello }, { authorization: `Bearer ${user.key}` })).status, 200)
    await usageRows(user.userId)
    assert.lengthOf(collector.received, 0)
    const status = (await (await fetch(`${baseUrl()}/api/status`)).json()) as any
    assert.isNull(status.log_export)
  })
})

test.group('Log export: collectors that are down, slow or failing', (group) => {
  let collector: MockCollector
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    collector = await new MockCollector().start()
    mock = await startMock()
    await seedChannel({ name: 'export-up2', baseUrl: mock.url, models: ['exp-*'] })
    return async () => {
      await (await gateway()).setLogExport(null)
      await collector.stop()
      await mock.stop()
    }
  })
  group.each.setup(async () => {
    collector.reset()
    return async () => {
      await (await gateway()).setLogExport(null)
    }
  })

  /** 12 calls, each answered as usual and quickly whatever the collector does. */
  async function twelveCalls(assert: any) {
    const user = await seedUser({ balance: '5' })
    for (let i = 0; i < 12; i++) {
      const started = performance.now()
      const answer = await post('/v1/chat/completions', { model: 'exp-x', messages: hello }, { authorization: `Bearer ${user.key}` })
      assert.equal(answer.status, 200)
      assert.isBelow(performance.now() - started, 1000)
    }
    await usageRows(user.userId)
    return user
  }

  /**
   * `count` rows wait at a destination, none of them sent or given up on, a failed batch among them
   * (waited for a moment: a POST out, its answer not yet read, holds its rows in neither count).
   */
  async function waiting(assert: any, exporter: LogExporter, name: string, count: number) {
    await until(() => exporter.counts()[name].queued + exporter.counts()[name].retrying === count, 2000)
    const counts = exporter.counts()[name]
    assert.isAbove(counts.retrying, 0)
    assert.deepEqual({ ...counts, queued: counts.queued + counts.retrying, retrying: 0 }, { exported: 0, failed: 0, dropped: counts.dropped, queued: count, retrying: 0 })
  }

  /** Until `done()` holds (the loop's interval and backoffs are short here), at most `ms`. */
  async function until(done: () => boolean, ms = 5000) {
    for (const started = Date.now(); !done() && Date.now() - started < ms; ) await new Promise((r) => setTimeout(r, 10))
  }

  test('credentials in a destination URL are sent as Basic auth, not dropped (and leave the URL)', async ({ assert }) => {
    const host = collector.url.replace('http://', '')
    const exporter = await useExporter({
      LOG_EXPORT_WEBHOOK_URL: `http://vector:s%40cret@${host}/lines`,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://otel:pw@${host}`,
      // An explicit header wins over the URL's.
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20explicit',
    })
    const user = await seedUser({ balance: '5' })
    assert.equal((await post('/v1/chat/completions', { model: 'exp-auth', messages: hello }, { authorization: `Bearer ${user.key}` })).status, 200)
    await settled(user.userId, 1, exporter)
    const lines = collector.received.find((r) => r.path === '/lines')!
    assert.equal(lines.headers.authorization, `Basic ${Buffer.from('vector:s@cret').toString('base64')}`)
    assert.equal(collector.received.find((r) => r.path === '/v1/traces')!.headers.authorization, 'Bearer explicit')
    assert.deepInclude(exporter.counts().webhook, { exported: 1, failed: 0 })
    for (const spec of destinationsFrom({ LOG_EXPORT_WEBHOOK_URL: `http://vector:s%40cret@${host}/lines` })) assert.notInclude(spec.url, 'cret')
  })


  test('a timeout or interval longer than Node timers hold (~24.8 days) is that long, not 1 ms', async ({ assert }) => {
    const exporter = new LogExporter({ ...plain(`${collector.url}/lines`), timeoutMs: 3_000_000_000, intervalMs: 3_000_000_000, names: (await gateway()).exportNames })
    try {
      const rows = [1, 2].map((i) => ({ request_id: `00000000-0000-7000-8000-00000000010${i}`, user_id: 1, endpoint: 'chat.completions', model: 'exp-t', status: 200, created_at: new Date().toISOString() }))
      exporter.take(rows.slice(0, 1))
      // A 1 ms interval would have sent it by now.
      await new Promise((r) => setTimeout(r, 50))
      assert.equal(collector.received.length, 0)
      // The POST (slowed past 1 ms by a busy loop once it is under way) is not aborted.
      const sent = exporter.flush()
      const until = Date.now() + 20
      while (Date.now() < until);
      await sent
      assert.deepInclude(exporter.counts().webhook, { exported: 1, failed: 0 })
      assert.lengthOf(collector.lines(), 1)
    } finally {
      await exporter.close(100)
    }
  })


  test('a collector down then up: its batches are sent again after a backoff and every row arrives once', async ({ assert }) => {
    const down = await new MockCollector().start()
    await down.stop()
    try {
      const exporter = await useExporter(
        { LOG_EXPORT_WEBHOOK_URL: `${down.url}/lines`, OTEL_EXPORTER_OTLP_ENDPOINT: down.url },
        { retryDelaysMs: [100, 200] }
      )
      const user = await twelveCalls(assert)
      await exporter.flush()
      // Refused connections: nothing lost, nothing counted failed; the rows wait (the failed batch to be sent again).
      for (const name of ['webhook', 'otlp']) await waiting(assert, exporter, name, 12)
      const status = (await (await fetch(`${baseUrl()}/api/status`)).json()) as any
      assert.isAbove(status.log_export.webhook.retrying, 0)
      assert.equal(status.log_export.webhook.retrying + status.log_export.webhook.queued, 12)
      // The collector restarts on its port: the next attempt after the backoff takes them.
      await down.start()
      await until(() => exporter.counts().webhook.exported === 12 && exporter.counts().otlp.exported === 12)
      assert.deepEqual(exporter.counts().webhook, { exported: 12, failed: 0, dropped: 0, queued: 0, retrying: 0 })
      assert.deepEqual(exporter.counts().otlp, { exported: 12, failed: 0, dropped: 0, queued: 0, retrying: 0 })
      const ids = (await usageRows(user.userId)).map((r: any) => r.request_id)
      assert.sameMembers(down.lines().map((l) => l.id), ids)
      assert.sameMembers(down.spans().map((s) => s.traceId), ids.map((id: string) => id.replaceAll('-', '')))
    } finally {
      await down.stop()
    }
  })

  test('a collector that answers 500 is retried until it takes the batch', async ({ assert }) => {
    collector.reset('fail')
    const exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines` }, { retryDelaysMs: [50, 100] })
    await twelveCalls(assert)
    await until(() => collector.hits >= 3)
    await waiting(assert, exporter, 'webhook', 12)
    collector.mode = 'ok'
    await until(() => exporter.counts().webhook.exported === 12)
    assert.deepEqual(exporter.counts().webhook, { exported: 12, failed: 0, dropped: 0, queued: 0, retrying: 0 })
    assert.lengthOf(collector.lines(), 12)
  })

  test('with bodies, a batch sent again carries them again; they are freed once it is taken', async ({ assert }) => {
    collector.reset('fail')
    const exporter = new LogExporter({
      ...plain(`${collector.url}/lines`),
      bodies: true,
      intervalMs: 600_000,
      retryDelaysMs: [10],
      names: (await gateway()).exportNames,
    })
    try {
      const id = '00000000-0000-7000-8000-000000000301'
      exporter.keepBodies(id, '{"prompt":"kept-for-the-retry"}', 'the answer')
      exporter.take([{ request_id: id, user_id: 1, endpoint: 'chat.completions', model: 'exp-r', status: 200, created_at: new Date().toISOString() }])
      await exporter.flush()
      assert.deepInclude(exporter.counts().webhook, { retrying: 1, exported: 0 })
      // Still held for the retry (the first encoding did not free them).
      assert.isAbove(exporter.heldBodyBytes, 0)
      collector.mode = 'ok'
      await new Promise((r) => setTimeout(r, 20))
      await exporter.flush()
      const [line] = collector.lines()
      assert.include(line.request_body, 'kept-for-the-retry')
      assert.equal(exporter.heldBodyBytes, 0)
    } finally {
      await exporter.close(100)
    }
  })

  test('a collector that answers 400 is not retried: the batch is counted failed and the rows behind it go on', async ({ assert }) => {
    collector.reset('status', { status: 400 })
    const exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines` }, { retryDelaysMs: [20] })
    await twelveCalls(assert)
    await exporter.flush()
    assert.deepEqual(exporter.counts().webhook, { exported: 0, failed: 12, dropped: 0, queued: 0, retrying: 0 })
    // Several backoffs later: no POST again.
    const hits = collector.hits
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(collector.hits, hits)
    // The next rows are sent at once, no backoff held them.
    collector.reset()
    await twelveCalls(assert)
    await exporter.flush()
    assert.equal(exporter.counts().webhook.exported, 12)
    assert.lengthOf(collector.lines(), 12)
  })

  test('a 429 is retried after its Retry-After, not before', async ({ assert }) => {
    collector.reset('status', { status: 429, retryAfter: '1' })
    const exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines` }, { retryDelaysMs: [20, 50, 5000] })
    await twelveCalls(assert)
    await until(() => collector.hits === 1)
    collector.mode = 'ok'
    // Without the header the next attempt would have come after ~20 ms.
    await new Promise((r) => setTimeout(r, 600))
    assert.equal(collector.hits, 1)
    await waiting(assert, exporter, 'webhook', 12)
    await until(() => exporter.counts().webhook.exported === 12, 3000)
    assert.equal(exporter.counts().webhook.exported, 12)
    assert.lengthOf(collector.lines(), 12)
  })

  test('while a collector is down what waits is bounded by rows, bytes and age, the rest counted dropped', async ({ assert }) => {
    const down = await new MockCollector().start()
    await down.stop()
    // Rows: at most 5 wait (the failed batch and the new rows behind it).
    let exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${down.url}/lines` }, { maxQueued: 5, retryDelaysMs: [60_000] })
    await twelveCalls(assert)
    await exporter.flush()
    await waiting(assert, exporter, 'webhook', 5)
    assert.equal(exporter.counts().webhook.dropped, 7)
    await twelveCalls(assert)
    await waiting(assert, exporter, 'webhook', 5)
    assert.equal(exporter.counts().webhook.dropped, 19)

    // Bytes: ~1 KB a row, a 3 KB bound holds 3 rows.
    exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${down.url}/lines` }, { maxQueuedBytes: 3 * 1024, retryDelaysMs: [60_000] })
    await twelveCalls(assert)
    await exporter.flush()
    await waiting(assert, exporter, 'webhook', 3)
    assert.equal(exporter.counts().webhook.dropped, 9)

    // Age: a row waiting longer than the bound is dropped when the loop next looks, retried or not.
    exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${down.url}/lines` }, { maxAgeMs: 300, retryDelaysMs: [50] })
    await twelveCalls(assert)
    await exporter.flush()
    await waiting(assert, exporter, 'webhook', 12)
    await until(() => exporter.counts().webhook.dropped === 12)
    assert.deepEqual(exporter.counts().webhook, { exported: 0, failed: 0, dropped: 12, queued: 0, retrying: 0 })
    // Up again: nothing old is sent, the new rows are.
    await down.start()
    try {
      await twelveCalls(assert)
      await exporter.flush()
      assert.equal(exporter.counts().webhook.exported, 12)
      assert.lengthOf(down.lines(), 12)
    } finally {
      await down.stop()
    }
  })

  test('a collector that never answers: requests unaffected, the queue stays bounded, the overflow counted dropped', async ({ assert }) => {
    collector.reset('hang')
    // A long timeout: the first batch hangs while the others queue behind it, up to 5 rows with it.
    const exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines` }, { batchSize: 2, maxQueued: 5, timeoutMs: 60_000 })
    const user = await seedUser({ balance: '5' })
    // One call first, so the loop is stuck on it before the rest arrive.
    await post('/v1/chat/completions', { model: 'exp-x', messages: hello }, { authorization: `Bearer ${user.key}` })
    await usageRows(user.userId)
    for (let i = 0; i < 200 && collector.hits === 0; i++) await new Promise((r) => setTimeout(r, 10))
    assert.equal(collector.hits, 1)
    await twelveCalls(assert)
    const counts = exporter.counts()
    // The row out in the hung POST counts against the bound (it may come back to be sent again).
    assert.equal(counts.webhook.queued, 4)
    assert.equal(counts.webhook.dropped, 12 - 4)
    assert.equal(collector.hits, 1)
    // Closing gives up on the hung POST within the grace; what waited is counted dropped.
    const started = Date.now()
    await exporter.close(300)
    assert.isBelow(Date.now() - started, 2000)
    assert.equal(exporter.counts().webhook.dropped, 12)
    assert.equal(exporter.counts().webhook.queued, 0)
  })

  test('shutdown gives up on a POST its collector never answers when the grace is over, not at its timeout', async ({ assert }) => {
    collector.reset('hang')
    const exporter = new LogExporter({ ...plain(`${collector.url}/lines`), timeoutMs: 60_000, names: (await gateway()).exportNames })
    exporter.take([{ request_id: '00000000-0000-7000-8000-000000000201', user_id: 1, endpoint: 'chat.completions', model: 'exp-h', status: 200, created_at: new Date().toISOString() }])
    for (let i = 0; i < 200 && collector.hits === 0; i++) await new Promise((r) => setTimeout(r, 10))
    assert.equal(collector.hits, 1)
    const started = Date.now()
    await exporter.close(200)
    assert.isBelow(Date.now() - started, 2000)
    // The hung POST ends with the grace (its socket no longer keeps a stopping process alive), its row dropped (a shutdown has nowhere to put it back).
    for (let i = 0; i < 100 && exporter.counts().webhook.dropped === 0; i++) await new Promise((r) => setTimeout(r, 10))
    assert.deepInclude(exporter.counts().webhook, { dropped: 1, failed: 0, queued: 0 })
  })


  test('a slow collector is given up on after the timeout, and the batch sent again', async ({ assert }) => {
    collector.reset('hang')
    const exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines` }, { timeoutMs: 200, retryDelaysMs: [50] })
    await twelveCalls(assert)
    await exporter.flush()
    await waiting(assert, exporter, 'webhook', 12)
    collector.mode = 'ok'
    await until(() => exporter.counts().webhook.exported === 12)
    assert.lengthOf(collector.lines(), 12)
  })

  test('shutdown flushes what waits within the grace, before the next interval', async ({ assert }) => {
    // An interval longer than the test and no full batch: only the close sends.
    const exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines` }, { intervalMs: 600_000, batchSize: 50 })
    const user = await twelveCalls(assert)
    assert.lengthOf(collector.received, 0)
    assert.equal(exporter.counts().webhook.queued, 12)
    await exporter.close(5000)
    const rows = await usageRows(user.userId)
    const lines = collector.lines()
    assert.lengthOf(lines, 12)
    assert.sameMembers(lines.map((l) => l.request_id), rows.map((r: any) => r.request_id))
    assert.deepEqual(exporter.counts().webhook, { exported: 12, failed: 0, dropped: 0, queued: 0, retrying: 0 })
  })

  test('a full batch goes at once, not at the next interval; a part batch left waits for it', async ({ assert }) => {
    const exporter = await useExporter({ LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines` }, { intervalMs: 600_000, batchSize: 5 })
    await twelveCalls(assert)
    // The first full batch went, and whatever queued while it was out went after it; a part batch left waits.
    // (A POST may still be out: wait until every row is either received or queued.)
    const settledCounts = () => exporter.counts().webhook.exported + exporter.counts().webhook.queued === 12
    for (let i = 0; i < 200 && !settledCounts(); i++) await new Promise((r) => setTimeout(r, 10))
    const sent = collector.lines().length
    assert.isAtLeast(sent, 5)
    assert.equal(exporter.counts().webhook.exported, sent)
    assert.isBelow(exporter.counts().webhook.queued, 5)
    await exporter.flush()
    assert.lengthOf(collector.lines(), 12)
  })

  test('a meter closing at shutdown hands its last commit over; the exporter closing after it sends it', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const exporter = new LogExporter({ ...plain(`${collector.url}/lines`), intervalMs: 600_000, names: (await gateway()).exportNames })
    // A flush delay longer than the test: only the close writes (Gateway.stop closes the meter, then the exporter).
    const meter = new UsageMeter({ connectionString: process.env.DATABASE_URL!, batchSize: 50, flushMs: 600_000, logger })
    meter.exporter = exporter
    const events = [1, 2, 3].map(() => meterEvent(user.userId, 'exp-meter'))
    for (const event of events) meter.record(event)
    assert.equal(exporter.counts().webhook.queued, 0)
    await meter.close(5000)
    assert.equal(exporter.counts().webhook.queued, 3)
    await exporter.close(5000)
    assert.sameMembers(collector.lines().map((l) => l.request_id), events.map((e) => e.requestId))
    assert.deepInclude(collector.lines()[0], { prompt_tokens: 10, completion_tokens: 5, model: 'exp-meter' })
    assert.equal(Number(collector.lines()[0].cost), 0.001)
  })

  test('rows spilled while the database is away are exported once, when the replay commits them', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const proxy = await cuttableProxy(new URL(process.env.DATABASE_URL!))
    const dir = mkdtempSync(join(tmpdir(), 'gw-export-spill-'))
    chmodSync(dir, 0o755)
    const exporter = new LogExporter({ ...plain(`${collector.url}/lines`), names: (await gateway()).exportNames })
    const meter = new UsageMeter({ connectionString: proxy.url, batchSize: 10, flushMs: 5, logger, spillDir: dir })
    meter.exporter = exporter
    try {
      proxy.cut()
      const events = Array.from({ length: 5 }, () => meterEvent(user.userId, 'exp-spill'))
      for (const event of events) meter.record(event)
      await meter.drain()
      assert.isAbove(meter.spilledPending, 0)
      await exporter.flush()
      // Not committed: not exported.
      assert.lengthOf(collector.lines(), 0)
      proxy.restore()
      for (let i = 0; i < 100 && (meter.degraded || meter.spilledPending > 0); i++) await new Promise((r) => setTimeout(r, 100))
      await meter.drain()
      await exporter.flush()
      const ids = collector.lines().map((l) => l.request_id)
      assert.lengthOf(ids, 5)
      assert.sameMembers(ids, events.map((e) => e.requestId))
    } finally {
      await meter.close(2000)
      await exporter.close(1000)
      await proxy.close()
    }
  }).timeout(30000)

  test('a row the meter refuses as a data error is not exported while the rest of its batch is', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const exporter = new LogExporter({ ...plain(`${collector.url}/lines`), intervalMs: 600_000, names: (await gateway()).exportNames })
    const meter = new UsageMeter({ connectionString: process.env.DATABASE_URL!, batchSize: 50, flushMs: 600_000, logger })
    meter.exporter = exporter
    try {
      // No such user: the row's foreign key fails the batch, the one-by-one retry writes the two others.
      const good = [meterEvent(user.userId, 'exp-meter'), meterEvent(user.userId, 'exp-meter')]
      const bad = meterEvent(2_000_000_000, 'exp-meter')
      meter.record(good[0])
      meter.record(bad)
      meter.record(good[1])
      await meter.drain()
      assert.sameMembers((await usageRows(user.userId)).map((r: any) => r.request_id), good.map((e) => e.requestId))
      await exporter.flush()
      assert.sameMembers(collector.lines().map((l) => l.request_id), good.map((e) => e.requestId))
      assert.equal(exporter.counts().webhook.exported, 2)
    } finally {
      await meter.close(2000)
      await exporter.close(1000)
    }
  })

  test('a batch both committed and spilled by a timed-out shutdown is exported once by the replay of the spill', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const dir = mkdtempSync(join(tmpdir(), 'gw-export-twice-'))
    chmodSync(dir, 0o755)
    const exporter = new LogExporter({ ...plain(`${collector.url}/lines`), names: (await gateway()).exportNames })
    const meter = new UsageMeter({ connectionString: process.env.DATABASE_URL!, batchSize: 10, flushMs: 5, logger, spillDir: dir })
    meter.exporter = exporter
    // The user's row locked elsewhere: the batch's charge waits on it, in flight when the close gives up.
    const lock = await db.transaction()
    await lock.from('users').where('id', user.userId).forUpdate().first()
    const events = [1, 2, 3].map(() => meterEvent(user.userId, 'exp-twice'))
    try {
      for (const event of events) meter.record(event)
      for (let i = 0; i < 100 && meter.writesUnderWay === 0; i++) await new Promise((r) => setTimeout(r, 10))
      assert.equal(meter.writesUnderWay, 1)
      const closing = meter.close(100)
      await new Promise((r) => setTimeout(r, 300))
      // The lock goes: the batch in flight commits after it was spilled.
      await lock.commit()
      await closing
      for (let i = 0; i < 100 && meter.writesUnderWay > 0; i++) await new Promise((r) => setTimeout(r, 10))
      assert.lengthOf(await usageRows(user.userId), 3)
      await exporter.flush()
      // The next start replays the spill (its rows already there: nothing written twice) and exports them.
      const next = new UsageMeter({ connectionString: process.env.DATABASE_URL!, batchSize: 10, flushMs: 5, logger, spillDir: dir })
      next.exporter = exporter
      await new Promise((r) => setTimeout(r, 5))
      assert.equal(await next.replayOrphans(), 3)
      await next.close(2000)
      await exporter.flush()
      const ids = collector.lines().map((l) => l.request_id)
      assert.sameMembers(ids, events.map((e) => e.requestId), 'each row exported once')
      assert.lengthOf(await usageRows(user.userId), 3)
    } finally {
      if (!lock.isCompleted) await lock.rollback()
      await exporter.close(1000)
    }
  }).timeout(30000)
})

/** An exporter's options with only a webhook destination (the meter-level tests build their own). */
function plain(url: string): Omit<LogExportOptions, 'names'> {
  return {
    destinations: destinationsFrom({ LOG_EXPORT_WEBHOOK_URL: url }),
    logger,
    bodies: false,
    batchSize: 100,
    intervalMs: 20,
    maxQueued: 1000,
    timeoutMs: 2000,
  }
}

test.group('Log export in the production server (bin/start.js)', (group) => {
  let collector: MockCollector
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    collector = await new MockCollector().start()
    mock = await startMock()
    await seedChannel({ name: 'export-e2e', baseUrl: mock.url, models: ['*'] })
    await seedPrice('e2e-*', '1', '1')
    return async () => {
      await collector.stop()
      await mock.stop()
    }
  })

  test('configured by the environment; SIGTERM: streams in flight finish, the metering flush commits every row, and each is exported before exit; no secret in the logs', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const port = await freePort()
    const child = spawn(process.execPath, ['bin/start.js'], {
      env: {
        ...process.env,
        NODE_ENV: 'production',
        PORT: String(port),
        LOG_LEVEL: 'info',
        SHUTDOWN_GRACE_MS: '15000',
        LANGFUSE_PUBLIC_KEY: 'pk-lf-e2e',
        LANGFUSE_SECRET_KEY: 'sk-lf-e2e-secret',
        LANGFUSE_HOST: collector.url,
        LOG_EXPORT_WEBHOOK_URL: `${collector.url}/lines`,
        // Longer than the test: what arrives is what the shutdown sent, and the rows are written
        // only by the shutdown's metering flush (whose commits must still reach the exporter).
        LOG_EXPORT_INTERVAL_MS: '600000',
        METER_FLUSH_MS: '600000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      let up = false
      for (let i = 0; i < 1200 && !up && child.exitCode === null; i++) {
        up = await fetch(`http://127.0.0.1:${port}/api/status`).then((r) => r.ok, () => false)
        if (!up) await new Promise((r) => setTimeout(r, 50))
      }
      assert.isTrue(up, output)
      const call = (body: unknown) =>
        fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      for (let i = 0; i < 2; i++) assert.equal((await call({ model: 'e2e-1', messages: hello })).status, 200)
      const streams = await Promise.all(
        [1, 2, 3].map(() => call({ model: 'e2e-1', stream: true, messages: hello, mock: { chunks: 20, chunk_delay_ms: 50 } }))
      )
      const texts = Promise.all(streams.map((r) => r.text()))
      // Before the signal: the two finished calls wait in the meter, not committed, so not yet handed over
      // (status counts per destination, and names no URL or key).
      let status: any
      for (let i = 0; i < 100; i++) {
        status = await (await fetch(`http://127.0.0.1:${port}/api/status`)).json()
        if (status.metering.queued === 2) break
        await new Promise((r) => setTimeout(r, 20))
      }
      assert.equal(status.metering.queued, 2)
      assert.deepEqual(status.log_export.webhook, { exported: 0, failed: 0, dropped: 0, queued: 0, retrying: 0 })
      assert.deepEqual(status.log_export.langfuse, { exported: 0, failed: 0, dropped: 0, queued: 0, retrying: 0 })
      assert.notInclude(JSON.stringify(status), collector.url)
      child.kill('SIGTERM')
      for (const text of await texts) assert.include(text, '[DONE]')
      assert.equal(await exited, 0, output)
      const rows = await usageRows(user.userId)
      assert.lengthOf(rows, 5)
      const ids = rows.map((r: any) => r.request_id)
      assert.sameMembers(collector.lines().map((l) => l.request_id), ids)
      const traces = collector.langfuseEvents().filter((e) => e.type === 'trace-create')
      assert.sameMembers(traces.map((e) => e.body.id), ids)
      for (const secret of ['sk-lf-e2e-secret', Buffer.from('pk-lf-e2e:sk-lf-e2e-secret').toString('base64')]) assert.notInclude(output, secret)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  }).timeout(120_000)
})

test.group('Log export: configuration', () => {
  test('OTEL_EXPORTER_OTLP_HEADERS and endpoints read as the OTel SDKs read them', ({ assert }) => {
    assert.deepEqual(parseOtlpHeaders('Authorization=Bearer%20abc, x-a = 1,bad,=x'), { 'authorization': 'Bearer abc', 'x-a': '1' })
    const [otlp] = destinationsFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/' })
    assert.equal(otlp.url, 'http://127.0.0.1:4318/v1/traces')
    const [traces] = destinationsFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2/custom' })
    assert.equal(traces.url, 'http://b:2/custom')
    const [langfuse] = destinationsFrom({ LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk' })
    assert.equal(langfuse.url, 'https://cloud.langfuse.com/api/public/ingestion')
  })

  test('each destination posts 500 rows at a time unless LOG_EXPORT_BATCH_SIZE says otherwise', async ({ assert }) => {
    const env = { LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', LOG_EXPORT_WEBHOOK_URL: 'http://127.0.0.1:9/x' }
    assert.deepEqual(destinationsFrom(env).map((d) => [d.name, d.batchSize]), [['langfuse', 500], ['otlp', 500], ['webhook', 500]])
    const names = (await gateway()).exportNames
    const byDefault = logExporterFrom(env, names, logger)!
    const set = logExporterFrom({ ...env, LOG_EXPORT_BATCH_SIZE: 100 }, names, logger)!
    assert.isUndefined(byDefault.options.batchSize)
    assert.equal(set.options.batchSize, 100)
    await byDefault.close(0)
    await set.close(0)
  })
})
