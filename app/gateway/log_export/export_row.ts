/**
 * What a log destination receives for one metered request: the usage row as
 * the meter's batch statement took it (usage_meter.ts toRecord, the same
 * object, never a copy), plus what the export loop looks up behind the
 * requests (names from the caches, and the logged bodies when sent).
 */
export type UsageRow = Record<string, unknown>

/** Names the caches hold for the ids a row carries; looked up by the export loop, never on the request path. */
export interface ExportNames {
  keyName(keyId: number): string | null
  teamAlias(teamId: number): string | null
  channelName(channelId: number): string | null
  /**
   * Reads the names of keys `keyName` does not know (a key not used since the
   * cache let it go, rows replayed at boot): called by the export loop once
   * per batch with that batch's unknown ids, never per row nor on a request.
   */
  loadKeyNames?(keyIds: readonly number[]): Promise<void>
}

/** A request's bodies as LOG_BODIES kept them (already cut to LOG_BODIES_MAX_KB). */
export interface ExportBodies {
  request: string
  response: string | null
}

/** One row ready to encode: typed fields over the row's columns. */
export interface ExportItem {
  requestId: string
  userId: number
  apiKeyId: number | null
  keyName: string | null
  teamId: number | null
  team: string | null
  endUser: string | null
  endpoint: string
  /** The model billed (a fallback's when one answered) */
  model: string
  /** What the client asked for (the row's requested_model when a fallback answered, else its model) */
  requestedModel: string
  /** Sent upstream (null when no upstream answered) */
  servedModel: string | null
  provider: string | null
  channelId: number | null
  channel: string | null
  status: number
  errorCode: string | null
  promptTokens: number
  completionTokens: number
  totalTokens: number
  cachedTokens: number
  reasoningTokens: number
  /** The row's cost, USD, the decimal string the column holds */
  cost: string
  latencyMs: number
  ttftMs: number | null
  tags: string[]
  stream: boolean
  estimated: boolean
  cacheHit: boolean
  attempts: number
  createdAt: string
  bodies: ExportBodies | null
}

const num = (value: unknown) => (typeof value === 'number' ? value : 0)
const numOrNull = (value: unknown) => (typeof value === 'number' ? value : null)
const strOrNull = (value: unknown) => (typeof value === 'string' ? value : null)

/** Reads a row (column names of USAGE_COLUMNS) into the fields every destination encodes. */
export function exportItem(row: UsageRow, names: ExportNames, bodies: ExportBodies | null): ExportItem {
  const apiKeyId = numOrNull(row.api_key_id)
  const teamId = numOrNull(row.team_id)
  const channelId = numOrNull(row.channel_id)
  const model = String(row.model)
  return {
    requestId: String(row.request_id),
    userId: num(row.user_id),
    apiKeyId,
    keyName: apiKeyId === null ? null : names.keyName(apiKeyId),
    teamId,
    team: teamId === null ? null : names.teamAlias(teamId),
    endUser: strOrNull(row.end_user),
    endpoint: String(row.endpoint),
    model,
    requestedModel: strOrNull(row.requested_model) ?? model,
    servedModel: strOrNull(row.served_model),
    provider: strOrNull(row.provider),
    channelId,
    channel: channelId === null ? null : names.channelName(channelId),
    status: num(row.status),
    errorCode: strOrNull(row.error_code),
    promptTokens: num(row.prompt_tokens),
    completionTokens: num(row.completion_tokens),
    totalTokens: num(row.total_tokens),
    cachedTokens: num(row.cached_tokens),
    reasoningTokens: num(row.reasoning_tokens),
    cost: String(row.cost ?? '0'),
    latencyMs: num(row.latency_ms),
    ttftMs: numOrNull(row.ttft_ms),
    // Joined by ',' for the statement (no tag holds one); undefined when untagged.
    tags: typeof row.tags === 'string' && row.tags !== '' ? row.tags.split(',') : [],
    stream: row.stream === true,
    estimated: row.estimated === true,
    cacheHit: row.cache_hit === true,
    attempts: num(row.attempts),
    createdAt: String(row.created_at),
    bodies,
  }
}

/** A failed call: an error status, or an error code on a 2xx (a stream cut short, a cap reached mid-stream). */
export function failed(item: ExportItem): boolean {
  return item.status >= 400 || item.errorCode !== null
}

/** The request's end: its start plus its latency, ISO. */
export function endTime(item: ExportItem): string {
  return new Date(Date.parse(item.createdAt) + item.latencyMs).toISOString()
}
