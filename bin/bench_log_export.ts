/*
| `npm run bench:export`: the CPU log export costs per row, per destination
| and batch size (docs/benchmarks.md, "Log export"). Each case runs in a
| child process of its own: rows built as the meter builds them are handed
| over as the meter does (handovers of 20, BENCH_EXPORT_RATE rows a second,
| BENCH_EXPORT_ROWS rows), the exporter posts them to a collector in another
| process (a loopback server that reads each POST and answers 200), and the
| process's CPU (user + system, `process.cpuUsage`) is read around it. A
| case with no exporter measures the feeding alone, subtracted from the
| others. Bounded: ROWS / RATE seconds a case, 7 cases, loopback only.
*/
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'

const ROWS = Number(process.env.BENCH_EXPORT_ROWS ?? 20_000)
const RATE = Number(process.env.BENCH_EXPORT_RATE ?? 4_000)
const HANDOVER = 20

/** A usage row as usage_meter.ts toRecord builds it (the object log export is handed). */
function row(i: number): Record<string, unknown> {
  return {
    request_id: randomUUID(),
    user_id: 1 + (i % 50),
    api_key_id: 1 + (i % 200),
    channel_id: 1 + (i % 3),
    provider: 'openai',
    model: 'gpt-4o-mini',
    requested_model: undefined,
    cache_hit: undefined,
    served_model: 'gpt-4o-mini-2024-07-18',
    endpoint: 'chat.completions',
    stream: i % 2 === 0,
    status: 200,
    error_code: null,
    prompt_tokens: 120 + (i % 17),
    completion_tokens: 40 + (i % 13),
    total_tokens: 160 + (i % 30),
    cached_tokens: 0,
    reasoning_tokens: 0,
    cache_write_tokens: 0,
    images: 0,
    audio_seconds: undefined,
    characters: undefined,
    estimated: false,
    cost: '0.000042',
    latency_ms: 300 + (i % 200),
    ttft_ms: i % 2 === 0 ? 120 : null,
    created_at: new Date().toISOString(),
    attempts: 1,
    tags: i % 5 === 0 ? 'feature-a,prod' : undefined,
    end_user: i % 3 === 0 ? `customer-${i % 100}` : undefined,
    team_id: undefined,
    organization_id: undefined,
  }
}

async function runCase(destination: string, batchSize: number, collectorUrl: string) {
  const { LogExporter } = await import('#gateway/log_export/log_exporter')
  const { destinationsFrom } = await import('#gateway/log_export/log_export_config')
  const silent = { warn() {}, info() {}, error() {} } as any
  const env =
    destination === 'langfuse'
      ? { LANGFUSE_PUBLIC_KEY: 'pk', LANGFUSE_SECRET_KEY: 'sk', LANGFUSE_HOST: collectorUrl }
      : destination === 'otlp'
        ? { OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl }
        : destination === 'webhook'
          ? { LOG_EXPORT_WEBHOOK_URL: `${collectorUrl}/lines` }
          : {}
  const destinations = destinationsFrom(env)
  const exporter =
    destinations.length === 0
      ? null
      : new LogExporter({
          destinations,
          logger: silent,
          names: { keyName: (id) => `key-${id}`, teamAlias: () => null, channelName: (id) => `channel-${id}` },
          bodies: false,
          batchSize,
          intervalMs: 1000,
          maxQueued: 1_000_000,
          timeoutMs: 10_000,
        })
  const sink: unknown[] = []
  const before = process.cpuUsage()
  const started = performance.now()
  for (let sent = 0; sent < ROWS; ) {
    const rows = []
    for (let i = 0; i < HANDOVER; i++) rows.push(row(sent + i))
    sent += HANDOVER
    if (exporter) exporter.take(rows)
    else sink[0] = rows
    // On schedule: RATE rows a second.
    const due = (sent / RATE) * 1000 - (performance.now() - started)
    if (due > 0) await new Promise((r) => setTimeout(r, due))
  }
  if (exporter) {
    await exporter.flush()
    const counts = Object.values(exporter.counts())[0]
    if (counts.exported !== ROWS) throw new Error(`exported ${counts.exported} of ${ROWS}`)
    await exporter.close(1000)
  }
  const cpu = process.cpuUsage(before)
  return { cpuUs: cpu.user + cpu.system }
}

if (process.argv[2] === '--case') {
  const result = await runCase(process.argv[3], Number(process.argv[4]), process.argv[5])
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

// The collector: another process's CPU, not the measured one's.
let received = 0
const collector = createServer((req, res) => {
  req.on('data', (chunk: Buffer) => (received += chunk.length))
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'))
})
await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r))
const collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`

function child(destination: string, batchSize: number): Promise<{ cpuUs: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, '--case', destination, String(batchSize), collectorUrl], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    proc.stdout.on('data', (d) => (out += d))
    proc.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`case ${destination} ${batchSize}: exit ${code}`))))
  })
}

const base = await child('none', 0)
console.log(`${ROWS} rows at ${RATE}/s in handovers of ${HANDOVER}; feeding alone ${(base.cpuUs / ROWS).toFixed(1)} µs a row`)
console.log('destination  batch  µs CPU a row (feeding subtracted)  bytes a row (a POST of a batch)')
const batches = (process.env.BENCH_EXPORT_BATCHES ?? '100,500').split(',').map(Number)
for (const destination of ['webhook', 'langfuse', 'otlp']) {
  for (const batch of batches) {
    received = 0
    const { cpuUs } = await child(destination, batch)
    const perRow = received / ROWS
    console.log(
      `${destination.padEnd(11)}  ${String(batch).padStart(5)}  ${((cpuUs - base.cpuUs) / ROWS).toFixed(1).padStart(5)}` +
        `${' '.repeat(30)}${perRow.toFixed(0)} (${((perRow * batch) / 1024 / 1024).toFixed(2)} MB)`
    )
  }
}
collector.close()
