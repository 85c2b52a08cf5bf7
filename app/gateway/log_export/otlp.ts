import { failed, type ExportItem } from '#gateway/log_export/export_row'

/** The GenAI conventions' operation for each endpoint the meter names (others keep the endpoint's name). */
const OPERATIONS: Record<string, string> = {
  'chat.completions': 'chat',
  'messages': 'chat',
  'responses': 'chat',
  'completions': 'text_completion',
  'embeddings': 'embeddings',
}

/**
 * OTLP/HTTP JSON (`POST {endpoint}/v1/traces`): one span per request, with
 * the GenAI semantic conventions' attributes (`gen_ai.*`) and the gateway's
 * own (`gateway.*`: cost, key, user, team, tags). The trace id is the
 * request id's 128 bits (UUIDv7, the `x-request-id` a client saw), the span
 * id its last 64; status ERROR with the error code on a failed call.
 *
 * Written as text, not built as objects and stringified: an attribute is two
 * nested objects in OTLP's JSON, and building ~25 of them per row cost the
 * export loop about as much as the rest of the request (docs/benchmarks.md,
 * twenty-fifth pass). Every string goes through JSON.stringify.
 */
export function otlpTraces(items: readonly ExportItem[], serviceName: string): string {
  let spans = ''
  for (const item of items) {
    const hex = item.requestId.replaceAll('-', '')
    const startMs = Date.parse(item.createdAt)
    const operation = OPERATIONS[item.endpoint] ?? item.endpoint
    const provider = item.provider ?? 'unknown'
    let a =
      str('gen_ai.operation.name', operation) +
      str('gen_ai.system', provider) +
      str('gen_ai.provider.name', provider) +
      str('gen_ai.request.model', item.requestedModel) +
      str('gen_ai.response.model', item.servedModel ?? item.model) +
      int('gen_ai.usage.input_tokens', item.promptTokens) +
      int('gen_ai.usage.output_tokens', item.completionTokens) +
      int('http.response.status_code', item.status) +
      str('gateway.request_id', item.requestId) +
      str('gateway.endpoint', item.endpoint) +
      str('gateway.model', item.model) +
      dbl('gateway.cost_usd', Number(item.cost)) +
      str('gateway.cost', item.cost) +
      int('gateway.user_id', item.userId) +
      int('gateway.usage.total_tokens', item.totalTokens) +
      int('gateway.latency_ms', item.latencyMs) +
      bool('gateway.stream', item.stream) +
      bool('gateway.estimated', item.estimated) +
      int('gateway.attempts', item.attempts)
    if (item.cachedTokens > 0) a += int('gen_ai.usage.cache_read.input_tokens', item.cachedTokens)
    if (item.reasoningTokens > 0) a += int('gateway.usage.reasoning_tokens', item.reasoningTokens)
    if (item.apiKeyId !== null) a += int('gateway.api_key_id', item.apiKeyId)
    if (item.keyName !== null) a += str('gateway.api_key_name', item.keyName)
    if (item.teamId !== null) a += int('gateway.team_id', item.teamId)
    if (item.team !== null) a += str('gateway.team', item.team)
    if (item.endUser !== null) a += str('gateway.end_user', item.endUser) + str('user.id', item.endUser)
    if (item.channelId !== null) a += int('gateway.channel_id', item.channelId)
    if (item.channel !== null) a += str('gateway.channel', item.channel)
    if (item.ttftMs !== null) a += int('gateway.ttft_ms', item.ttftMs)
    if (item.tags.length > 0) {
      a += `{"key":"gateway.tags","value":{"arrayValue":{"values":[${item.tags.map((t) => `{"stringValue":${JSON.stringify(t)}}`).join(',')}]}}},`
    }
    if (item.cacheHit) a += bool('gateway.cache_hit', true)
    if (item.errorCode !== null) a += str('error.type', item.errorCode)
    else if (item.status >= 400) a += str('error.type', String(item.status))
    if (item.bodies) {
      a += str('gateway.request.body', item.bodies.request)
      if (item.bodies.response !== null) a += str('gateway.response.body', item.bodies.response)
    }
    const status = failed(item) ? `{"code":2,"message":${JSON.stringify(item.errorCode ?? `HTTP ${item.status}`)}}` : '{"code":1}'
    if (spans !== '') spans += ','
    // Nanoseconds as OTLP/JSON's decimal strings: whole milliseconds, six zeros (exact, no BigInt).
    // kind 3, CLIENT: the gateway's call to a model, as the GenAI conventions' inference spans are.
    spans +=
      `{"traceId":"${hex}","spanId":"${hex.slice(16)}","name":${JSON.stringify(`${operation} ${item.requestedModel}`)},"kind":3,` +
      `"startTimeUnixNano":"${startMs}000000","endTimeUnixNano":"${startMs + item.latencyMs}000000",` +
      `"attributes":[${a.slice(0, -1)}],"status":${status}}`
  }
  return (
    `{"resourceSpans":[{"resource":{"attributes":[${str('service.name', serviceName).slice(0, -1)}]},` +
    `"scopeSpans":[{"scope":{"name":"gateway.log_export"},"spans":[${spans}]}]}]}`
  )
}

// Each attribute ends with a comma (the last one's is cut where the list closes).
const str = (key: string, value: string) => `{"key":"${key}","value":{"stringValue":${JSON.stringify(value)}}},`
// OTLP/JSON carries 64-bit integers as decimal strings.
const int = (key: string, value: number) => `{"key":"${key}","value":{"intValue":"${Math.trunc(value)}"}},`
const dbl = (key: string, value: number) => `{"key":"${key}","value":{"doubleValue":${Number.isFinite(value) ? value : 0}}},`
const bool = (key: string, value: boolean) => `{"key":"${key}","value":{"boolValue":${value}}},`

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
