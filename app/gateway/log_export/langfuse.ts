import { endTime, failed, type ExportItem } from '#gateway/log_export/export_row'

/**
 * Langfuse's batch ingestion (`POST {host}/api/public/ingestion`, Basic auth
 * public:secret): per request a trace (its id the request id, so a trace is
 * found by the `x-request-id` a client saw) and one generation in it. Event
 * ids are derived from the request id: Langfuse deduplicates by event id, so
 * a row exported twice (a batch both committed and spilled at a timed-out
 * shutdown) is ingested once.
 */
export function langfuseBatch(items: readonly ExportItem[]): string {
  const batch: unknown[] = []
  for (const item of items) {
    const isError = failed(item)
    const metadata = {
      request_id: item.requestId,
      gateway_user_id: item.userId,
      api_key_id: item.apiKeyId,
      api_key_name: item.keyName,
      team_id: item.teamId,
      team: item.team,
      end_user: item.endUser,
      endpoint: item.endpoint,
      requested_model: item.requestedModel,
      provider: item.provider,
      channel_id: item.channelId,
      channel: item.channel,
      status: item.status,
      error_code: item.errorCode,
      stream: item.stream,
      tags: item.tags,
      latency_ms: item.latencyMs,
      ttft_ms: item.ttftMs,
      estimated: item.estimated,
      cache_hit: item.cacheHit,
      attempts: item.attempts,
    }
    const input = item.bodies ? parsed(item.bodies.request) : undefined
    const output = item.bodies?.response != null ? parsed(item.bodies.response) : undefined
    batch.push({
      id: `${item.requestId}-trace`,
      type: 'trace-create',
      timestamp: item.createdAt,
      body: {
        id: item.requestId,
        timestamp: item.createdAt,
        name: item.endpoint,
        // The end user the request named when there is one (LiteLLM's `user`), else the gateway's account.
        userId: item.endUser ?? `user-${item.userId}`,
        tags: item.tags,
        metadata,
        input,
        output,
      },
    })
    const cost = Number(item.cost)
    batch.push({
      id: `${item.requestId}-generation`,
      type: 'generation-create',
      timestamp: item.createdAt,
      body: {
        id: `${item.requestId}-generation`,
        traceId: item.requestId,
        name: item.endpoint,
        startTime: item.createdAt,
        endTime: endTime(item),
        completionStartTime: item.ttftMs === null ? undefined : new Date(Date.parse(item.createdAt) + item.ttftMs).toISOString(),
        model: item.servedModel ?? item.model,
        usageDetails: { input: item.promptTokens, output: item.completionTokens, total: item.totalTokens },
        // The gateway's own price (the usage row's cost), so Langfuse does not infer another from its model table.
        costDetails: { total: cost },
        level: isError ? 'ERROR' : 'DEFAULT',
        statusMessage: isError ? (item.errorCode ?? `HTTP ${item.status}`) : undefined,
        // The metadata is the trace's (Langfuse shows it with the generation): once per request, not twice.
        input,
        output,
      },
    })
  }
  return JSON.stringify({ batch })
}

/** A body as JSON when it is JSON (a request, a whole answer), else the text (an event stream). */
function parsed(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
