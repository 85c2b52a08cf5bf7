import { endTime, failed, type ExportItem } from '#gateway/log_export/export_row'

/**
 * Langfuse's batch ingestion (`POST {host}/api/public/ingestion`, Basic auth
 * public:secret): per request a trace (its id the request id, so a trace is
 * found by the `x-request-id` a client saw; the metadata) and one generation
 * in it (model, usage, cost, times, level). Event ids are derived from the
 * request id: Langfuse deduplicates by event id, so a row exported twice (a
 * batch both committed and spilled at a timed-out shutdown) is ingested once.
 *
 * Written as text like otlp.ts (every string through JSON.stringify): built
 * as objects and stringified it cost the export loop about twice as much.
 */
export function langfuseBatch(items: readonly ExportItem[]): string {
  let batch = ''
  for (const item of items) {
    const id = q(item.requestId)
    const at = q(item.createdAt)
    const name = q(item.endpoint)
    const isError = failed(item)
    const metadata =
      `{"request_id":${id},"gateway_user_id":${item.userId},"api_key_id":${item.apiKeyId},"api_key_name":${q(item.keyName)},` +
      `"team_id":${item.teamId},"team":${q(item.team)},"end_user":${q(item.endUser)},"endpoint":${name},` +
      `"requested_model":${q(item.requestedModel)},"provider":${q(item.provider)},"channel_id":${item.channelId},"channel":${q(item.channel)},` +
      `"status":${item.status},"error_code":${q(item.errorCode)},"stream":${item.stream},"tags":${q(item.tags)},` +
      `"latency_ms":${item.latencyMs},"ttft_ms":${item.ttftMs},"estimated":${item.estimated},"cache_hit":${item.cacheHit},"attempts":${item.attempts}}`
    let io = ''
    if (item.bodies) {
      io += `,"input":${parsedJson(item.bodies.request)}`
      if (item.bodies.response !== null) io += `,"output":${parsedJson(item.bodies.response)}`
    }
    // The end user the request named when there is one (LiteLLM's `user`), else the gateway's account.
    const userId = q(item.endUser ?? `user-${item.userId}`)
    if (batch !== '') batch += ','
    batch +=
      `{"id":${q(`${item.requestId}-trace`)},"type":"trace-create","timestamp":${at},"body":{"id":${id},"timestamp":${at},` +
      `"name":${name},"userId":${userId},"tags":${q(item.tags)},"metadata":${metadata}${io}}}`
    const generationId = q(`${item.requestId}-generation`)
    const firstToken = item.ttftMs === null ? '' : `"completionStartTime":${q(new Date(Date.parse(item.createdAt) + item.ttftMs).toISOString())},`
    const level = isError ? `"level":"ERROR","statusMessage":${q(item.errorCode ?? `HTTP ${item.status}`)}` : '"level":"DEFAULT"'
    // costDetails: the gateway's own price (the usage row's cost), so Langfuse does not infer another from its model table.
    // The metadata is the trace's (Langfuse shows it with the generation): once per request, not twice.
    batch +=
      `,{"id":${generationId},"type":"generation-create","timestamp":${at},"body":{"id":${generationId},"traceId":${id},"name":${name},` +
      `"startTime":${at},"endTime":${q(endTime(item))},${firstToken}"model":${q(item.servedModel ?? item.model)},` +
      `"usageDetails":{"input":${item.promptTokens},"output":${item.completionTokens},"total":${item.totalTokens}},` +
      `"costDetails":{"total":${finite(Number(item.cost))}},${level}${io}}}`
  }
  return `{"batch":[${batch}]}`
}

const q = (value: unknown) => JSON.stringify(value ?? null)
const finite = (value: number) => (Number.isFinite(value) ? value : 0)

/** A body as JSON when it is JSON (a request, a whole answer), else as the text (an event stream, a cut body). */
function parsedJson(text: string): string {
  try {
    JSON.parse(text)
    return text
  } catch {
    return JSON.stringify(text)
  }
}
