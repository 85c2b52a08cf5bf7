import type { Logger } from '@adonisjs/core/logger'
import { LogExporter, type DestinationSpec } from '#gateway/log_export/log_exporter'
import type { ExportNames } from '#gateway/log_export/export_row'
import { langfuseBatch } from '#gateway/log_export/langfuse'
import { otlpTraces, otlpTracesUrl, parseOtlpHeaders } from '#gateway/log_export/otlp'
import { jsonLines } from '#gateway/log_export/webhook_lines'

/** The environment variables that configure log export (start/env.ts validates them). */
export interface LogExportEnv {
  LANGFUSE_PUBLIC_KEY?: string
  LANGFUSE_SECRET_KEY?: string
  LANGFUSE_HOST?: string
  OTEL_EXPORTER_OTLP_ENDPOINT?: string
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string
  OTEL_EXPORTER_OTLP_HEADERS?: string
  OTEL_SERVICE_NAME?: string
  LOG_EXPORT_WEBHOOK_URL?: string
  LOG_EXPORT_BODIES?: boolean
  LOG_EXPORT_BATCH_SIZE?: number
  LOG_EXPORT_INTERVAL_MS?: number
  LOG_EXPORT_MAX_QUEUE?: number
  LOG_EXPORT_TIMEOUT_MS?: number
  LOG_EXPORT_MAX_QUEUE_MB?: number
  LOG_EXPORT_MAX_AGE_S?: number
}

/**
 * Rows per POST when LOG_EXPORT_BATCH_SIZE is not set. Measured (`npm run
 * bench:export`, docs/benchmarks.md "Log export"): at 500 rows a POST every
 * destination costs the loop 30-40% less CPU a row than at 100 (webhook
 * ~16 -> ~9.5 µs, Langfuse ~21 -> ~16, OTLP ~23 -> ~17), 1000 gains nothing
 * more; a POST of 500 is 0.3 / 0.6 / 0.8 MB, far under Langfuse's 3.5 MB.
 */
export const DEFAULT_BATCH_SIZES = { langfuse: 500, otlp: 500, webhook: 500 } as const

/**
 * A user name and password in a destination's URL (`https://user:pass@collector/...`, how Vector's or
 * Logstash's HTTP input with basic auth is often written, and what Node's http, under the OTel SDK,
 * sends as Basic auth): undici ignores them, so the collector got no credentials and refused every
 * batch. They become the Authorization header (unless one is given) and leave the URL.
 */
function withUrlCredentials(spec: DestinationSpec): DestinationSpec {
  let url: URL
  try {
    url = new URL(spec.url)
  } catch {
    return spec // Not a URL: each POST fails and the failure is logged (never the URL).
  }
  if (url.username === '' && url.password === '') return spec
  const user = safeDecode(url.username)
  const password = safeDecode(url.password)
  url.username = ''
  url.password = ''
  const headers = { ...spec.headers }
  if (!('authorization' in headers)) headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
  return { ...spec, url: url.href, headers }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** The destinations the environment names (none: an empty list, and no exporter is built). */
export function destinationsFrom(env: LogExportEnv): DestinationSpec[] {
  const out: DestinationSpec[] = []
  if (env.LANGFUSE_PUBLIC_KEY && env.LANGFUSE_SECRET_KEY) {
    const host = (env.LANGFUSE_HOST || 'https://cloud.langfuse.com').replace(/\/+$/, '')
    out.push({
      name: 'langfuse',
      url: `${host}/api/public/ingestion`,
      headers: {
        'content-type': 'application/json',
        'authorization': `Basic ${Buffer.from(`${env.LANGFUSE_PUBLIC_KEY}:${env.LANGFUSE_SECRET_KEY}`).toString('base64')}`,
      },
      encode: langfuseBatch,
      batchSize: DEFAULT_BATCH_SIZES.langfuse,
    })
  }
  const tracesUrl = otlpTracesUrl(env.OTEL_EXPORTER_OTLP_ENDPOINT, env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  if (tracesUrl) {
    const serviceName = env.OTEL_SERVICE_NAME || 'ai-gateway'
    out.push({
      name: 'otlp',
      url: tracesUrl,
      headers: { ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS), 'content-type': 'application/json' },
      encode: (items) => otlpTraces(items, serviceName),
      batchSize: DEFAULT_BATCH_SIZES.otlp,
    })
  }
  if (env.LOG_EXPORT_WEBHOOK_URL) {
    out.push({
      name: 'webhook',
      url: env.LOG_EXPORT_WEBHOOK_URL,
      headers: { 'content-type': 'application/x-ndjson' },
      encode: jsonLines,
      batchSize: DEFAULT_BATCH_SIZES.webhook,
    })
  }
  return out.map(withUrlCredentials)
}

/** The exporter the environment asks for; null when it names no destination (the meter then pays one null test). */
export function logExporterFrom(env: LogExportEnv, names: ExportNames, logger: Logger): LogExporter | null {
  const destinations = destinationsFrom(env)
  if (destinations.length === 0) return null
  return new LogExporter({
    destinations,
    logger,
    names,
    bodies: env.LOG_EXPORT_BODIES === true,
    // Unset: each destination's own (DEFAULT_BATCH_SIZES).
    batchSize: env.LOG_EXPORT_BATCH_SIZE === undefined ? undefined : Math.max(1, env.LOG_EXPORT_BATCH_SIZE),
    intervalMs: Math.max(10, env.LOG_EXPORT_INTERVAL_MS ?? 1000),
    maxQueued: Math.max(1, env.LOG_EXPORT_MAX_QUEUE ?? 10_000),
    maxQueuedBytes: Math.max(1, env.LOG_EXPORT_MAX_QUEUE_MB ?? 64) * 1024 * 1024,
    maxAgeMs: Math.max(1, env.LOG_EXPORT_MAX_AGE_S ?? 600) * 1000,
    timeoutMs: Math.max(100, env.LOG_EXPORT_TIMEOUT_MS ?? 10_000),
  })
}
