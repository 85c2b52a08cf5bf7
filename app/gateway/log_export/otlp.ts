import { endTime, failed, type ExportItem } from '#gateway/log_export/export_row'

type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean } | { arrayValue: { values: AnyValue[] } }
interface KeyValue {
  key: string
  value: AnyValue
}

/** The GenAI conventions' operation for each endpoint the meter names (others keep the endpoint's name). */
const OPERATIONS: Record<string, string> = {
  'chat.completions': 'chat',
  'messages': 'chat',
  'responses': 'chat',
  'gemini.generateContent': 'chat',
  'completions': 'text_completion',
  'embeddings': 'embeddings',
}

/**
 * OTLP/HTTP JSON (`POST {endpoint}/v1/traces`): one span per request, with
 * the GenAI semantic conventions' attributes (`gen_ai.*`) and the gateway's
 * own (`gateway.*`: cost, key, user, team, tags). The trace id is the
 * request id's 128 bits (UUIDv7, the `x-request-id` a client saw), the span
 * id its last 64; status ERROR with the error code on a failed call.
 */
export function otlpTraces(items: readonly ExportItem[], serviceName: string): string {
  const spans: unknown[] = []
  for (const item of items) {
    const hex = item.requestId.replaceAll('-', '')
    const startNs = BigInt(Date.parse(item.createdAt)) * 1_000_000n
    const operation = OPERATIONS[item.endpoint] ?? item.endpoint
    const attributes: KeyValue[] = [
      str('gen_ai.operation.name', operation),
      str('gen_ai.system', item.provider ?? 'unknown'),
      str('gen_ai.provider.name', item.provider ?? 'unknown'),
      str('gen_ai.request.model', item.requestedModel),
      str('gen_ai.response.model', item.servedModel ?? item.model),
      int('gen_ai.usage.input_tokens', item.promptTokens),
      int('gen_ai.usage.output_tokens', item.completionTokens),
      int('http.response.status_code', item.status),
      str('gateway.request_id', item.requestId),
      str('gateway.endpoint', item.endpoint),
      str('gateway.model', item.model),
      dbl('gateway.cost_usd', Number(item.cost)),
      str('gateway.cost', item.cost),
      int('gateway.user_id', item.userId),
      int('gateway.usage.total_tokens', item.totalTokens),
      int('gateway.latency_ms', item.latencyMs),
      bool('gateway.stream', item.stream),
      bool('gateway.estimated', item.estimated),
      int('gateway.attempts', item.attempts),
    ]
    if (item.cachedTokens > 0) attributes.push(int('gen_ai.usage.cache_read.input_tokens', item.cachedTokens))
    if (item.reasoningTokens > 0) attributes.push(int('gateway.usage.reasoning_tokens', item.reasoningTokens))
    if (item.apiKeyId !== null) attributes.push(int('gateway.api_key_id', item.apiKeyId))
    if (item.keyName !== null) attributes.push(str('gateway.api_key_name', item.keyName))
    if (item.teamId !== null) attributes.push(int('gateway.team_id', item.teamId))
    if (item.team !== null) attributes.push(str('gateway.team', item.team))
    if (item.endUser !== null) attributes.push(str('gateway.end_user', item.endUser), str('user.id', item.endUser))
    if (item.channelId !== null) attributes.push(int('gateway.channel_id', item.channelId))
    if (item.channel !== null) attributes.push(str('gateway.channel', item.channel))
    if (item.ttftMs !== null) attributes.push(int('gateway.ttft_ms', item.ttftMs))
    if (item.tags.length > 0) attributes.push({ key: 'gateway.tags', value: { arrayValue: { values: item.tags.map((t) => ({ stringValue: t })) } } })
    if (item.cacheHit) attributes.push(bool('gateway.cache_hit', true))
    if (item.errorCode !== null) attributes.push(str('error.type', item.errorCode))
    else if (item.status >= 400) attributes.push(str('error.type', String(item.status)))
    if (item.bodies) {
      attributes.push(str('gateway.request.body', item.bodies.request))
      if (item.bodies.response !== null) attributes.push(str('gateway.response.body', item.bodies.response))
    }
    const isError = failed(item)
    spans.push({
      traceId: hex,
      spanId: hex.slice(16),
      name: `${operation} ${item.requestedModel}`,
      // CLIENT: the gateway's call to a model, as the GenAI conventions' inference spans are.
      kind: 3,
      startTimeUnixNano: startNs.toString(),
      endTimeUnixNano: (BigInt(Date.parse(endTime(item))) * 1_000_000n).toString(),
      attributes,
      status: isError ? { code: 2, message: item.errorCode ?? `HTTP ${item.status}` } : { code: 1 },
    })
  }
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [str('service.name', serviceName)] },
        scopeSpans: [{ scope: { name: 'gateway.log_export' }, spans }],
      },
    ],
  })
}

const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } })
// OTLP/JSON carries 64-bit integers as decimal strings.
const int = (key: string, value: number): KeyValue => ({ key, value: { intValue: String(value) } })
const dbl = (key: string, value: number): KeyValue => ({ key, value: { doubleValue: value } })
const bool = (key: string, value: boolean): KeyValue => ({ key, value: { boolValue: value } })

/** `OTEL_EXPORTER_OTLP_HEADERS`: `k1=v1,k2=v2`, values percent-decoded (the OTel SDKs' format). */
export function parseOtlpHeaders(spec: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {}
  if (!spec) return headers
  for (const pair of spec.split(',')) {
    const at = pair.indexOf('=')
    if (at <= 0) continue
    const name = pair.slice(0, at).trim().toLowerCase()
    let value = pair.slice(at + 1).trim()
    try {
      value = decodeURIComponent(value)
    } catch {}
    if (name) headers[name] = value
  }
  return headers
}

/** The traces URL: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, else OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces`. */
export function otlpTracesUrl(endpoint: string | undefined, tracesEndpoint: string | undefined): string | null {
  if (tracesEndpoint) return tracesEndpoint
  if (!endpoint) return null
  return endpoint.replace(/\/+$/, '') + '/v1/traces'
}
