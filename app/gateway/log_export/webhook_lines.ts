import type { ExportItem } from '#gateway/log_export/export_row'

/**
 * The plain destination (`LOG_EXPORT_WEBHOOK_URL`): one JSON object per line
 * (application/x-ndjson), the usage row's fields in snake_case, for a log
 * shipper (Vector, Fluent Bit, Logstash's http input) or a script. `id` is
 * the event's stable id (the request id): a line sent again (a retried POST
 * the collector had taken before its answer was lost) carries the same one,
 * for the receiver to deduplicate on.
 */
export function jsonLines(items: readonly ExportItem[]): string {
  let out = ''
  for (const item of items) {
    out +=
      JSON.stringify({
        id: item.requestId,
        request_id: item.requestId,
        created_at: item.createdAt,
        user_id: item.userId,
        api_key_id: item.apiKeyId,
        api_key_name: item.keyName,
        team_id: item.teamId,
        team: item.team,
        end_user: item.endUser,
        endpoint: item.endpoint,
        model: item.model,
        requested_model: item.requestedModel,
        served_model: item.servedModel,
        provider: item.provider,
        channel_id: item.channelId,
        channel: item.channel,
        status: item.status,
        error_code: item.errorCode,
        prompt_tokens: item.promptTokens,
        completion_tokens: item.completionTokens,
        total_tokens: item.totalTokens,
        cached_tokens: item.cachedTokens,
        reasoning_tokens: item.reasoningTokens,
        cost: item.cost,
        latency_ms: item.latencyMs,
        ttft_ms: item.ttftMs,
        tags: item.tags,
        stream: item.stream,
        estimated: item.estimated,
        cache_hit: item.cacheHit,
        attempts: item.attempts,
        ...(item.bodies ? { request_body: item.bodies.request, response_body: item.bodies.response } : null),
      }) + '\n'
  }
  return out
}
